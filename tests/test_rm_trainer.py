"""Reward-model trainer: eval math, scoring consistency, smoke runs of every loss through the
Runner, the δ term, loading back from run id or folder, the CLI, an encoder backbone.

Runs use the 1-layer tiny local model from conftest (seconds each); the learning tests on
the real built-in tiny-gpt2 are in test_rm_learning.py.
"""
from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch

from rmcore.config import RewardModelConfig, TrainConfig
from rmcore.errors import ConfigError
from rmcore.rewards import build_composite
from rmcore.rm_eval import (
    calibration_bins,
    calibration_from_metrics,
    eval_summary,
    expected_calibration_error,
    pairwise_metrics,
)
from rmcore.run_refs import load_reward_model_scorer, resolve_reward_model
from rmcore.rm_trainer import (
    loss_kwargs,
    pair_batches,
    reward_model_kind,
    train_reward_model,
    trained_reward_models,
)
from rmcore.runner import Runner
from rmcore.store import RunStore

LOSSES = ["bradley_terry", "hinge", "mse", "cross_entropy", "focal", "triplet"]


def tiny_cfg(path: str, **changes) -> RewardModelConfig:
    base = RewardModelConfig(backbone=path, steps=3, batch_size=2, eval_pairs=6, eval_every=0, max_length=128,
                             device="cpu", margin=1.0 if changes.get("loss") in ("hinge", "triplet") else 0.0)
    return base.replace(**changes)


@pytest.fixture(scope="module")
def trained(tiny_lm_path, tmp_path_factory) -> dict:
    """One Bradley-Terry model trained briefly (held-out margin > 0), through the Runner."""
    runs = tmp_path_factory.mktemp("rm-runs")
    runner = Runner(runs)
    cfg = tiny_cfg(tiny_lm_path, steps=40, batch_size=16, lr=3e-3, eval_pairs=60)
    run_id = runner.submit(cfg)
    assert runner.wait(run_id, 180) == "done", runner.store.get_run(run_id)["error"]
    runner.store.close()
    return {"runs": runs, "run_id": run_id, "cfg": cfg, "checkpoint": RunStore(runs).latest_checkpoint(run_id)}


# --------------------------------------------------------------------------- eval math
def test_calibration_bins_hand_values() -> None:
    # Δ = 0: both orders predict 0.5 and half of them were won -> one bin, perfectly calibrated.
    bins = calibration_bins(torch.tensor([1.0, 2.0]), torch.tensor([1.0, 2.0]))
    assert bins == [{"bin": 5, "pred": 0.5, "obs": 0.5, "count": 4}]
    assert expected_calibration_error(bins) == 0.0
    # Δ = ln 3: p = 0.75 (bin 7, won) and 0.25 (bin 2, lost): ECE = |1 - .75|/2 + |0 - .25|/2.
    bins = calibration_bins(torch.tensor([math.log(3.0)]), torch.tensor([0.0]))
    assert [(b["bin"], b["obs"], b["count"]) for b in bins] == [(2, 0.0, 1), (7, 1.0, 1)]
    assert [b["pred"] for b in bins] == pytest.approx([0.25, 0.75])
    assert expected_calibration_error(bins) == pytest.approx(0.25)
    # Confidently wrong: ECE -> 1; confidently right: ECE -> 0.
    assert expected_calibration_error(calibration_bins(torch.tensor([-30.0]), torch.tensor([0.0]))) > 0.999
    assert expected_calibration_error(calibration_bins(torch.tensor([30.0]), torch.tensor([0.0]))) < 1e-6


def test_calibration_matches_a_naive_loop() -> None:
    gen = torch.Generator().manual_seed(0)
    chosen, rejected = torch.randn(200, generator=gen) * 2, torch.randn(200, generator=gen)
    items = []
    for c, r in zip(chosen.tolist(), rejected.tolist()):
        p = 1 / (1 + math.exp(-(c - r)))
        items += [(p, 1.0), (1 - p, 0.0)]
    expected = {}
    for p, won in items:
        expected.setdefault(min(int(p * 10), 9), []).append((p, won))
    bins = calibration_bins(chosen, rejected)
    assert [b["bin"] for b in bins] == sorted(expected)
    for b in bins:
        rows = expected[b["bin"]]
        assert b["count"] == len(rows)
        assert b["pred"] == pytest.approx(sum(p for p, _ in rows) / len(rows))
        assert b["obs"] == pytest.approx(sum(w for _, w in rows) / len(rows))
        assert b["obs"] == pytest.approx(1 - next(x for x in bins if x["bin"] == 9 - b["bin"])["obs"])  # symmetry


def test_pairwise_metrics_hand_values() -> None:
    chosen, rejected = torch.tensor([1.0, 0.0, 2.0, 3.0]), torch.tensor([0.0, 1.0, 2.0, 1.0])
    m = pairwise_metrics(chosen, rejected, ["a", "a", "b", ""])
    assert m["eval/accuracy"] == 0.5                      # the tie counts as wrong
    assert (m["eval/accuracy/a"], m["eval/accuracy/b"]) == (0.5, 0.0)
    assert not any(k.startswith("eval/accuracy/") and k.endswith("/") for k in m)  # "" has no split
    assert m["eval/margin"] == pytest.approx(0.5)
    assert m["eval/chosen_mean"] == pytest.approx(1.5) and m["eval/rejected_std"] == pytest.approx(math.sqrt(0.5))
    bins = calibration_from_metrics(m)
    assert bins == calibration_bins(chosen, rejected)
    assert m["eval/ece"] == pytest.approx(expected_calibration_error(bins))


def test_eval_summary_takes_each_runs_last_evaluated_step() -> None:
    import pandas as pd

    rows = [("a", 0, "eval/accuracy", 0.5), ("a", 0, "eval/ece", 0.1), ("a", 1, "loss/total", 1.0),
            ("a", 2, "eval/accuracy", 0.7), ("a", 2, "eval/accuracy/x", 1.0), ("b", 0, "eval/accuracy", 0.4),
            ("c", 1, "loss/total", 2.0)]
    summary = eval_summary(pd.DataFrame([(*r, 0.0) for r in rows], columns=["run_id", "step", "key", "value", "time"]))
    assert list(summary.index) == ["a", "b"] and list(summary["step"]) == [2, 0]   # c never evaluated
    assert summary.loc["a", "eval/accuracy"] == 0.7 and summary.loc["a", "eval/accuracy/x"] == 1.0
    assert "eval/ece" not in summary or math.isnan(summary.loc["a", "eval/ece"])   # step 0's, not step 2's
    assert math.isnan(summary.loc["b", "eval/accuracy/x"])


def test_loss_kwargs_and_batches() -> None:
    assert loss_kwargs(RewardModelConfig(loss="mse", margin=2.0)) == {"center_coef": 0.0}
    assert loss_kwargs(RewardModelConfig(loss="focal", margin=0.5, focal_gamma=1.0)) == {
        "center_coef": 0.0, "margin": 0.5, "gamma": 1.0}
    # No margin given: the loss's own (hinge 1, Bradley-Terry 0); an explicit 0 on hinge is refused.
    assert loss_kwargs(RewardModelConfig(loss="hinge")) == {"center_coef": 0.0, "margin": 1.0}
    assert loss_kwargs(RewardModelConfig(loss="bradley_terry")) == {"center_coef": 0.0, "margin": 0.0}
    with pytest.raises(ConfigError, match="positive margin"):
        loss_kwargs(RewardModelConfig(loss="hinge", margin=0.0))
    import random
    batches = pair_batches(10, 3, random.Random(0))
    epoch = [next(batches) for _ in range(3)]
    flat = [i for b in epoch for i in b]
    assert all(len(b) == 3 for b in epoch) and len(set(flat)) == 9   # no pair twice in one pass


def test_family_of_each_loss() -> None:
    """auto: embedding for triplet, scalar otherwise; the pairwise losses take either family;
    a loss the family cannot take is one ConfigError naming the fix."""
    kind = lambda loss, family: reward_model_kind(RewardModelConfig(loss=loss, family=family))  # noqa: E731
    assert [kind(loss, "auto") for loss in ("bradley_terry", "mse", "triplet")] == ["scalar", "scalar", "embedding"]
    for loss in ("bradley_terry", "hinge", "focal"):
        assert kind(loss, "embedding") == "embedding" and kind(loss, "scalar") == "scalar"
    with pytest.raises(ConfigError, match="use the embedding family"):
        kind("triplet", "scalar")
    for loss in ("mse", "cross_entropy"):
        with pytest.raises(ConfigError, match="use the scalar family"):
            kind(loss, "embedding")
    with pytest.raises(ConfigError, match="family"):
        RewardModelConfig(family="siamese").validate()


def test_embedding_rewards_reach_each_loss_as_it_expects() -> None:
    """Triplet takes distances d = −r; Bradley-Terry on an embedding model takes r = −d, so
    its loss is −log σ(d_r − d_c) (hand value: d_c = 1, d_r = 3 → −log σ(2) = 0.126928)."""
    from rmcore.losses import get_reward_model_loss
    from rmcore.rm_eval import loss_inputs

    r_c, r_r = torch.tensor([-1.0]), torch.tensor([-3.0])  # rewards −d
    bt, _ = get_reward_model_loss("bradley_terry")(*loss_inputs("bradley_terry", r_c, r_r))
    assert bt.item() == pytest.approx(0.126928, abs=1e-6)
    triplet, _ = get_reward_model_loss("triplet")(*loss_inputs("triplet", r_c, r_r), margin=1.0)
    assert triplet.item() == 0.0  # rejected farther than chosen by more than the margin
    triplet, _ = get_reward_model_loss("triplet")(*loss_inputs("triplet", r_c, r_r), margin=3.0)
    assert triplet.item() == pytest.approx(1.0)  # max(0, 3 + 1 − 3)


# --------------------------------------------------------------------------- smoke, through the Runner
@pytest.mark.parametrize("loss", LOSSES)
def test_each_loss_trains_three_steps_into_the_store(loss, tiny_lm_path, runs_dir) -> None:
    runner = Runner(runs_dir)
    run_id = runner.submit(tiny_cfg(tiny_lm_path, loss=loss))
    assert runner.wait(run_id, 120) == "done", runner.store.get_run(run_id)["error"]
    store = runner.store
    metrics = store.metrics([run_id])
    assert sorted(metrics["step"].unique()) == [0, 1, 2, 3]
    last = metrics[metrics["step"] == 3].set_index("key")["value"]
    for key in ("loss/total", f"loss/{loss}", "rm/accuracy", "rm/margin", "perf/step_time", "eval/accuracy",
                "eval/ece", "eval/accuracy/truncation"):
        assert math.isfinite(last[key]), key
    assert len(store.sample_rewards(run_id, "chosen", steps=[3])) == 6
    checkpoint = Path(store.latest_checkpoint(run_id))
    assert (checkpoint / "model.safetensors").is_file() and (checkpoint / "tokenizer_config.json").is_file()
    info = json.loads((checkpoint / "rm_info.json").read_text())
    assert info["kind"] == ("embedding" if loss == "triplet" else "scalar") and info["loss"] == loss
    runner.store.close()


def test_stop_ends_with_an_eval_and_a_checkpoint(tiny_lm_path, tmp_path) -> None:
    reports, calls = [], []

    def stop_after_first_step() -> bool:  # asked once before training, then after each step
        calls.append(1)
        return len(calls) >= 2

    train_reward_model(tiny_cfg(tiny_lm_path, steps=50), on_step=reports.append,
                       should_stop=stop_after_first_step, run_dir=tmp_path / "run")
    assert [r.step for r in reports] == [0, 1]
    assert "eval/accuracy" in reports[-1].metrics and reports[-1].checkpoint


def test_bad_input_is_one_config_error(tiny_lm_path, tmp_path) -> None:
    with pytest.raises(ConfigError, match="larger than the training pairs"):
        train_reward_model(tiny_cfg(tiny_lm_path, batch_size=5000))
    data = tmp_path / "summaries.csv"
    data.write_text("prompt,reference\n" + "".join(f"doc {i},sum {i}\n" for i in range(30)))
    with pytest.raises(ConfigError, match="no preference pairs"):
        train_reward_model(tiny_cfg(tiny_lm_path, task=str(data)))


def test_pairs_from_a_local_file(tiny_lm_path, tmp_path) -> None:
    rows = [{"prompt": f"Doc {i}: the price is {i} dollars.\nTL;DR:", "chosen": f" Price {i} dollars.",
             "rejected": f" Price {i + 1} dollars."} for i in range(40)]
    data = tmp_path / "pairs.jsonl"
    data.write_text("".join(json.dumps(row) + "\n" for row in rows))
    reports = []
    train_reward_model(tiny_cfg(tiny_lm_path, task=str(data), eval_pairs=50), on_step=reports.append)
    metrics = reports[-1].metrics
    assert 1 <= len(reports[-1].sample_rewards["chosen"]) < 40          # a held-out split, not the training pairs
    assert math.isfinite(metrics["eval/accuracy"])
    assert not [k for k in metrics if k.startswith("eval/accuracy/")]  # no corruption types recorded


# --------------------------------------------------------------------------- as a reward
@pytest.mark.parametrize("loss, family", [("bradley_terry", "auto"), ("triplet", "auto"),
                                          ("bradley_terry", "embedding")])
def test_scorer_gives_the_scores_training_evaluated(loss, family, tiny_lm_path, tmp_path) -> None:
    """The δ term must see what the eval measured: same tokenisation, truncation and padding."""
    from rmcore.data import load_task

    reports = []
    # max_length 48 < prompt lengths: truncation is exercised (on the left, keeping the response).
    cfg = tiny_cfg(tiny_lm_path, loss=loss, family=family, steps=2, max_length=48, eval_pairs=8)
    train_reward_model(cfg, on_step=reports.append, run_dir=tmp_path / "run")
    info = json.loads((Path(reports[-1].checkpoint) / "rm_info.json").read_text())
    assert info["kind"] == ("scalar" if (loss, family) == ("bradley_terry", "auto") else "embedding")
    scorer = load_reward_model_scorer(reports[-1].checkpoint, device="cpu", batch_size=3)
    pairs = load_task("synth-news").pairs_eval[:8]
    prompts = [p.prompt for p in pairs]
    assert scorer(prompts, [p.chosen for p in pairs], [""] * 8) == pytest.approx(
        reports[-1].sample_rewards["chosen"], abs=1e-5)
    assert scorer(prompts, [p.rejected for p in pairs], [""] * 8) == pytest.approx(
        reports[-1].sample_rewards["rejected"], abs=1e-5)
    if info["kind"] == "scalar":  # responses differ only at the end, past 48 tokens: still told apart
        a, b = scorer([prompts[0]] * 2, [pairs[0].chosen, pairs[0].chosen + " Extra words here."], ["", ""])
        assert a != b


def test_load_scorer_from_run_id_and_folder_and_errors(trained, tiny_lm_path, monkeypatch) -> None:
    monkeypatch.setenv("RMCORE_RUNS_DIR", str(trained["runs"]))
    assert resolve_reward_model(trained["run_id"]) == Path(trained["checkpoint"])
    by_id = load_reward_model_scorer(trained["run_id"], device="cpu")
    by_folder = load_reward_model_scorer(trained["checkpoint"], device=torch.device("cpu"))
    args = (["doc one\nTL;DR:", "doc two\nTL;DR:"], [" A summary.", " Another."], ["", ""])
    assert by_id(*args) == by_folder(*args)
    listed = trained_reward_models(RunStore(trained["runs"]))
    assert [r["id"] for r in listed] == [trained["run_id"]] and listed[0]["eval_accuracy"] is not None

    for ref, message in [("nope-123", "neither a checkpoint folder nor a run id"),
                         ("../etc", "neither a checkpoint folder nor a run id"),
                         ("", "No reward model given"), (str(Path(tiny_lm_path).parent), "no config.json")]:
        with pytest.raises(ConfigError, match=message):
            load_reward_model_scorer(ref, device="cpu")
    store = RunStore(trained["runs"])
    policy = store.create_run(kind="policy", config=TrainConfig().to_dict())
    with pytest.raises(ConfigError, match="not a reward model"):
        load_reward_model_scorer(policy, device="cpu")
    pending = store.create_run(kind="reward_model", config=RewardModelConfig().to_dict())
    with pytest.raises(ConfigError, match="no checkpoint yet"):
        load_reward_model_scorer(pending, device="cpu")


def test_delta_term_moves_rewards_towards_the_reward_model(trained) -> None:
    from rmcore.data import load_task

    scorer = load_reward_model_scorer(trained["checkpoint"], device="cpu")
    pairs = load_task("synth-news").pairs_eval[:60]
    prompts, refs = [p.prompt for p in pairs], [p.chosen for p in pairs]
    chosen, rejected = [p.chosen for p in pairs], [p.rejected for p in pairs]
    margins = [c - r for c, r in zip(scorer(prompts, chosen, refs), scorer(prompts, rejected, refs))]
    assert sum(margins) / len(margins) > 0.1 and sum(m > 0 for m in margins) > len(margins) * 0.6

    base = build_composite({"diversity": 1.0})
    with_rm = build_composite({"diversity": 1.0, "rm": 0.5}, rm_scorer=scorer)
    for texts in (chosen, rejected):
        b, w = base(prompts, texts, refs), with_rm(prompts, texts, refs)
        assert w.terms["rm"] == pytest.approx(scorer(prompts, texts, refs))
        assert w.total == pytest.approx([t + 0.5 * s for t, s in zip(b.total, w.terms["rm"])])
    gap = lambda reward: sum(reward(prompts, chosen, refs).total) - sum(reward(prompts, rejected, refs).total)
    assert gap(with_rm) > gap(base)


def test_policy_training_uses_the_reward_model_as_delta(trained, tiny_lm_path) -> None:
    from rmcore.trainer import train

    cfg = TrainConfig(backbone=tiny_lm_path, loss="reinforce", alpha=0.0, beta=0.0, gamma=0.0, delta=1.0,
                      reward_model=trained["checkpoint"], steps=1, batch_size=2, samples_per_prompt=1,
                      max_new_tokens=6, eval_every=0, eval_prompts=2, kl_coef=0.0, device="cpu")
    metrics = train(cfg)
    assert math.isfinite(metrics["reward/rm"]) and metrics["reward/total"] == pytest.approx(metrics["reward/rm"])


def test_policy_run_finds_a_reward_model_run_id_in_its_own_runs_dir(trained, tiny_lm_path, tmp_path,
                                                                    monkeypatch) -> None:
    """Regression: the δ term's run id was looked up in the default runs dir, not the policy's.
    rmcore.train (the public entry, like the runner) resolves it; the trainer sees a folder."""
    from rmcore import train

    monkeypatch.setenv("RMCORE_RUNS_DIR", str(tmp_path / "elsewhere"))
    cfg = TrainConfig(backbone=tiny_lm_path, loss="reinforce", alpha=0.0, beta=0.0, gamma=0.0, delta=1.0,
                      reward_model=trained["run_id"], steps=1, batch_size=2, samples_per_prompt=1,
                      max_new_tokens=6, eval_every=0, eval_prompts=2, kl_coef=0.0, device="cpu")
    metrics = train(cfg, run_dir=trained["runs"] / "policy-run")
    assert math.isfinite(metrics["reward/rm"])
    with pytest.raises(ConfigError, match="neither a checkpoint folder nor a run id"):
        train(cfg)  # no run dir: the default runs dir, which does not hold it


def test_cli_train_rm_end_to_end(tiny_lm_path, tmp_path, capsys) -> None:
    from rmcore.cli import main

    runs = tmp_path / "cli-runs"
    # `--loss hinge` as typed: no --margin, so hinge's own margin 1.
    code = main(["--runs-dir", str(runs), "train-rm", "--backbone", tiny_lm_path, "--loss", "hinge",
                 "--steps", "2", "--batch-size", "2", "--eval-pairs", "6", "--device", "cpu", "--quiet"])
    assert code == 0, capsys.readouterr().err
    runs_table = RunStore(runs).list_runs()
    assert list(runs_table["status"]) == ["done"] and list(runs_table["kind"]) == ["reward_model"]
    assert RunStore(runs).latest_checkpoint(runs_table["id"][0])
    # An explicit margin 0 with hinge: refused before a run is written (exit 2), with the reason.
    assert main(["--runs-dir", str(runs), "train-rm", "--loss", "hinge", "--margin", "0", "--quiet"]) == 2
    assert "needs a positive margin" in capsys.readouterr().err
    assert len(RunStore(runs).list_runs()) == 1


@pytest.fixture(scope="module")
def tiny_encoder_path(tmp_path_factory) -> str:
    """A 1-layer BERT with a WordPiece tokenizer ([CLS] … [SEP]) trained on synth-news."""
    from tokenizers import (
        Tokenizer,
        models,
        normalizers,
        pre_tokenizers,
        processors,
        trainers,
    )
    from transformers import BertConfig, BertModel, PreTrainedTokenizerFast

    from rmcore.data.synth_news import load_synth_news

    task = load_synth_news(seed=0, n_train=200, n_eval=10)
    wordpiece = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    wordpiece.normalizer = normalizers.BertNormalizer(lowercase=True)
    wordpiece.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    wordpiece.train_from_iterator([e.prompt + e.reference for e in task.train],
                                  trainers.WordPieceTrainer(vocab_size=500, special_tokens=specials))
    cls_id, sep_id = wordpiece.token_to_id("[CLS]"), wordpiece.token_to_id("[SEP]")
    wordpiece.post_processor = processors.TemplateProcessing(single="[CLS] $A [SEP]",
                                                             special_tokens=[("[CLS]", cls_id), ("[SEP]", sep_id)])
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=wordpiece, unk_token="[UNK]", pad_token="[PAD]",
                                        cls_token="[CLS]", sep_token="[SEP]", mask_token="[MASK]")
    torch.manual_seed(0)
    model = BertModel(BertConfig(vocab_size=len(tokenizer), hidden_size=32, num_hidden_layers=1,
                                 num_attention_heads=2, intermediate_size=64, max_position_embeddings=256,
                                 pad_token_id=tokenizer.pad_token_id))
    path = tmp_path_factory.mktemp("tiny-bert")
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    return str(path)


@pytest.mark.parametrize("loss", ["bradley_terry", "triplet"])
def test_an_encoder_backbone_trains_and_scores(loss, tiny_encoder_path, tmp_path) -> None:
    from rmcore.data import load_task

    reports = []
    train_reward_model(tiny_cfg(tiny_encoder_path, loss=loss, steps=2, max_length=40),
                       on_step=reports.append, run_dir=tmp_path / "run")
    scorer = load_reward_model_scorer(reports[-1].checkpoint, device="cpu")
    pairs = load_task("synth-news").pairs_eval[:6]
    scores = scorer([p.prompt for p in pairs], [p.chosen for p in pairs], [""] * 6)
    assert scores == pytest.approx(reports[-1].sample_rewards["chosen"], abs=1e-5)
    if loss == "bradley_terry":  # [CLS] survives left truncation: the head reads it
        ids = scorer.tokenizer(pairs[0].prompt + pairs[0].chosen, truncation=True, max_length=40)["input_ids"]
        assert len(ids) == 40 and ids[0] == scorer.tokenizer.cls_token_id

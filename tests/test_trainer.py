"""The policy trainer end to end: every loss through the runner, determinism, rollout math."""
from __future__ import annotations

import math

import pytest
import torch

import rmcore
from rmcore.algorithms import POLICY_LOSSES, get_algorithm
from rmcore.config import TrainConfig
from rmcore.errors import ConfigError


def tiny(path: str, **changes) -> TrainConfig:
    base = dict(backbone=path, steps=3, batch_size=2, samples_per_prompt=2, max_new_tokens=8,
                eval_every=0, eval_prompts=2, log_generations=2)
    return TrainConfig(**{**base, **changes})


@pytest.mark.parametrize("loss", list(POLICY_LOSSES))
def test_each_loss_trains_through_the_runner_into_the_store(loss, tiny_lm_path, runs_dir):
    from rmcore.runner import Runner

    runner = Runner(runs_dir)
    run_id = runner.submit(tiny(tiny_lm_path, loss=loss, kl_coef=0.05))
    assert runner.wait(run_id, timeout=120) == "done", runner.store.get_run(run_id)["error"]
    metrics = runner.store.metrics([run_id])
    steps = sorted(metrics["step"].unique())
    assert steps == [0, 1, 2, 3]
    losses = metrics[metrics.key == "loss/total"]["value"]
    assert len(losses) == 3 and all(math.isfinite(v) for v in losses)
    assert {"reward/total", "eval/reward", "eval/rougeL", "eval/entity_acc", "eval/number_acc",
            "perf/step_time"} <= set(metrics.key)
    gens = runner.store.generations(run_id)
    assert set(gens["split"]) == {"train", "eval"}
    assert runner.store.latest_checkpoint(run_id) is not None
    runner.shutdown(5)


def test_same_config_and_seed_give_the_same_metrics(tiny_lm_path):
    def run():
        reports = []
        rmcore.train(tiny(tiny_lm_path, loss="ppo", kl_coef=0.1, entropy_coef=0.01), on_step=reports.append)
        return [{k: v for k, v in r.metrics.items() if not k.startswith("perf/")} for r in reports]

    assert run() == run()


def test_should_stop_ends_the_loop_between_steps(tiny_lm_path):
    reports = []
    rmcore.train(tiny(tiny_lm_path, loss="reinforce", steps=50), on_step=reports.append,
                 should_stop=lambda: len(reports) >= 3)
    assert [r.step for r in reports] == [0, 1, 2]


def test_reference_model_only_when_kl_fluency_or_dpo_read_it(tiny_lm_path):
    from rmcore.backbones import load_causal_lm
    from rmcore.trainer import make_session

    model, tok = load_causal_lm(tiny_lm_path, device=torch.device("cpu"))
    no_ref = make_session(tiny(tiny_lm_path, kl_coef=0.0, beta=0.0), get_algorithm("grpo"), model, tok, torch.device("cpu"))
    assert no_ref.ref is None
    dpo = make_session(tiny(tiny_lm_path, loss="dpo", kl_coef=0.0, beta=0.0), get_algorithm("dpo"), model, tok,
                       torch.device("cpu"))
    assert dpo.ref is not None and not any(p.requires_grad for p in dpo.ref.parameters())


def test_scored_logprobs_do_not_depend_on_padding(tiny_lm_path):
    """Left padding + explicit position ids: a row scores the same alone or in a padded batch."""
    from rmcore.backbones import load_causal_lm
    from rmcore.rollout import encode_pairs, response_logprobs

    model, tok = load_causal_lm(tiny_lm_path, device=torch.device("cpu"))
    prompts = ["Short doc.\nTL;DR:", "A much longer document with many more words in it.\nTL;DR:"]
    completions = ["a b", "some longer summary text here"]
    batch = encode_pairs(tok, prompts, completions)
    together = response_logprobs(model, batch)[0]
    for i in range(2):
        alone = encode_pairs(tok, [prompts[i]], [completions[i]])
        lp = response_logprobs(model, alone)[0][0]
        n = int(alone.response_mask.sum())
        torch.testing.assert_close(together[i][:n], lp[:n], atol=1e-5, rtol=1e-5)


def test_sampled_tokens_are_scored_on_policy(tiny_lm_path):
    """Greedy tokens from the KV-cache loop are the argmax of the re-scored logits (same context)."""
    from rmcore.backbones import load_causal_lm
    from rmcore.rollout import encode_prompts, response_logprobs, sample

    model, tok = load_causal_lm(tiny_lm_path, device=torch.device("cpu"))
    ids, mask = encode_prompts(tok, ["One.\nTL;DR:", "Two words here.\nTL;DR:"], max_new_tokens=6, model=model)
    out = sample(model, tok, ids, mask, max_new_tokens=6, greedy=True)
    positions = (out.attention_mask.cumsum(-1) - 1).clamp(min=0)
    logits = model(input_ids=out.input_ids, attention_mask=out.attention_mask, position_ids=positions).logits
    argmax = logits[:, out.prompt_len - 1:-1].argmax(-1)
    m = out.response_mask.bool()
    assert torch.equal(argmax[m], out.response_ids[m])
    lp = response_logprobs(model, out)[0]
    assert torch.all(lp[m] <= 0) and torch.isfinite(lp[m]).all()


def test_response_mask_stops_after_first_eos():
    from rmcore.rollout import response_mask_from_ids

    ids = torch.tensor([[5, 7, 2, 9, 2], [2, 4, 4, 4, 4], [3, 3, 3, 3, 3]])
    assert response_mask_from_ids(ids, eos_id=2).tolist() == [[1, 1, 1, 0, 0], [1, 0, 0, 0, 0], [1, 1, 1, 1, 1]]


@pytest.mark.parametrize("changes, words", [
    (dict(loss="grpo", samples_per_prompt=1), "samples_per_prompt"),
    (dict(alpha=0.0, beta=0.0, gamma=0.0), "All reward weights are zero"),
    (dict(batch_size=10_000), "larger than the dataset"),
    (dict(max_new_tokens=400), "context length"),
    (dict(loss="nope"), "valid policy losses"),
])
def test_bad_configs_fail_before_training_with_one_sentence(changes, words, tiny_lm_path):
    with pytest.raises(ConfigError, match=words):
        rmcore.train(tiny(tiny_lm_path, **changes))


def test_resume_continues_exactly_where_an_unbroken_run_would_be(tiny_lm_path, tmp_path):
    """Stop after step 2, resume from its checkpoint: steps 3–4 match the unbroken run."""
    cfg = tiny(tiny_lm_path, loss="ppo", steps=4, checkpoint_every=2, kl_coef=0.1)
    unbroken = []
    rmcore.train(cfg, on_step=unbroken.append, run_dir=tmp_path / "a")
    first = []
    rmcore.train(cfg, on_step=first.append, run_dir=tmp_path / "b", should_stop=lambda: len(first) >= 3)
    assert [r.step for r in first] == [0, 1, 2] and first[-1].checkpoint  # step 2 checkpoints anyway
    resumed = []
    rmcore.train(cfg, on_step=resumed.append, run_dir=tmp_path / "b", resume_from=first[-1].checkpoint)
    assert [r.step for r in resumed] == [3, 4]

    def clean(r):
        return {k: round(v, 5) for k, v in r.metrics.items() if not k.startswith("perf/")}

    assert [clean(r) for r in resumed] == [clean(r) for r in unbroken[3:]]
    assert sorted(p.name for p in (tmp_path / "b" / "checkpoints").iterdir()) == ["step-000002", "step-000004"]


def test_preflight_catches_data_and_context_errors_without_weights(tiny_lm_path):
    from rmcore.trainer import preflight

    preflight(tiny(tiny_lm_path))  # fine
    with pytest.raises(ConfigError, match="larger than the dataset"):
        preflight(tiny(tiny_lm_path, batch_size=10_000))
    with pytest.raises(ConfigError, match="context length \\(256\\)"):
        preflight(tiny(tiny_lm_path, max_new_tokens=300))
    with pytest.raises(ConfigError, match="context length \\(256\\)"):
        preflight(TrainConfig(max_new_tokens=256))  # the built-in model, without building it


def test_dropout_is_off_during_training_so_on_policy_ratio_is_one(tiny_lm_path, tmp_path):
    """A backbone with dropout: first-epoch PPO ratios are exactly 1 (rollout and update agree)."""
    from transformers import AutoTokenizer, GPT2LMHeadModel

    model = GPT2LMHeadModel.from_pretrained(tiny_lm_path)
    model.config.resid_pdrop = model.config.attn_pdrop = model.config.embd_pdrop = 0.5
    GPT2LMHeadModel(model.config).save_pretrained(tmp_path)
    AutoTokenizer.from_pretrained(tiny_lm_path).save_pretrained(tmp_path)
    reports = []
    rmcore.train(tiny(str(tmp_path), loss="grpo", steps=1, ppo_epochs=1), on_step=reports.append)
    assert reports[-1].metrics["policy/ratio_mean"] == pytest.approx(1.0, abs=1e-5)
    assert reports[-1].metrics["policy/clipfrac"] == 0.0


def test_a_stopped_run_checkpoints_the_step_it_stopped_after(tiny_lm_path, tmp_path):
    reports = []
    rmcore.train(tiny(tiny_lm_path, loss="rloo", steps=10, checkpoint_every=0), on_step=reports.append,
                 run_dir=tmp_path, should_stop=lambda: len(reports) >= 3)
    # the last report carries only the checkpoint of the last finished step (the store records it)
    assert [r.step for r in reports] == [0, 1, 2, 2] and reports[-1].metrics == {}
    assert reports[-1].checkpoint.endswith("step-000002")


def test_training_fluency_skips_the_eos_and_equals_the_playgrounds(tiny_lm_path):
    """Training scores fluency from the reference log-probs of the rollout; the EOS that ends a
    sample is trained but is not text: an EOS-only answer scores 0 (not p_ref(EOS | x)), and a
    normal answer scores what Fluency(LMScorer) — the playground's path — gives its text."""
    from rmcore.backbones import load_causal_lm
    from rmcore.policy_step import reference_logprobs, score
    from rmcore.rewards import Fluency, LMScorer
    from rmcore.rollout import Rollout, encode_pairs
    from rmcore.trainer import make_session

    cpu = torch.device("cpu")
    model, tok = load_causal_lm(tiny_lm_path, device=cpu)
    s = make_session(tiny(tiny_lm_path, alpha=0.0, beta=1.0, gamma=0.0, kl_coef=0.0), get_algorithm("reinforce"),
                     model, tok, cpu)
    prompt, text = "Quarterly sales at Haltron rose. TL;DR:", "Haltron sales rose"
    batch = encode_pairs(tok, [prompt], [text], model=model)          # ' text' + EOS, EOS in the mask
    assert batch.response_ids[0, -1].item() == tok.eos_token_id and batch.response_mask[0, -1] == 1
    with torch.inference_mode():
        ref_t1 = reference_logprobs(s, batch)[3]
    trained = score(s, batch, [prompt], [text], ref_t1).terms["fluency"][0]
    playground = Fluency(LMScorer(s.ref, tok, cpu))([prompt], [" " + text], [text])[0]
    # The same fp32 reference on both paths; only the padding layout and the order of the
    # reductions differ (measured 1.2e-7 relative); counting the EOS moved it by 1.3%.
    assert trained == pytest.approx(playground, rel=1e-6)

    eos_only = Rollout(torch.cat([batch.input_ids[:, :batch.prompt_len], torch.tensor([[tok.eos_token_id]])], 1),
                       torch.cat([batch.attention_mask[:, :batch.prompt_len], torch.ones(1, 1, dtype=torch.long)], 1),
                       torch.ones(1, 1), batch.prompt_len, [""])
    with torch.inference_mode():
        ref_t1 = reference_logprobs(s, eos_only)[3]
    assert ref_t1[0, 0].exp().item() > 0                              # p_ref(EOS | x), the old fluency
    assert score(s, eos_only, [prompt], [""], ref_t1).terms["fluency"] == [0.0]

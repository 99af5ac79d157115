"""Issue 15's algorithms end to end: the CLI runs each to `done` with its diagnostics logged, DAPO's
dynamic sampling drops tied groups and refills, resumes are exact, and the Train page launches
GRPO and its successors side by side."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

import rmcore
from rmcore.algorithms import get_algorithm
from rmcore.algorithms import dapo
from rmcore.config import TrainConfig
from rmcore.rewards import RewardBreakdown
from rmcore.rollout import Rollout
from rmcore.scored_rollouts import concat_scored, select_rows, tied_groups
from rmcore.store import RunStore

ROOT = Path(__file__).resolve().parents[1]
NEW = ["dr_grpo", "dapo", "gspo", "cispo", "reinforce_pp", "reinforce_pp_baseline", "ipo", "slic", "simpo"]


@pytest.mark.parametrize("loss", NEW)
def test_cli_trains_each_new_loss_three_steps_to_done(loss, tiny_lm_path, runs_dir, capsys):
    from rmcore.cli import main

    code = main(["--runs-dir", str(runs_dir), "train", "--loss", loss, "--steps", "3", "--backbone", tiny_lm_path,
                 "--batch-size", "2", "--samples-per-prompt", "2", "--max-new-tokens", "8", "--eval-prompts", "2",
                 "--eval-every", "0", "--quiet"])
    assert code == 0, capsys.readouterr()
    store = RunStore(runs_dir)
    (run_id,) = store.list_runs()["id"]
    run = store.get_run(run_id)
    assert run["status"] == "done"
    keys = set(store.metric_keys(run_id))
    algo = get_algorithm(loss)
    assert f"loss/{loss}" in keys and set(algo.diagnostics) <= keys, set(algo.diagnostics) - keys
    assert run["config"]["loss_norm"] != "auto" and run["config"]["kl_placement"] != "auto"


def scored(totals: list[float], prompt_len: int = 2, length: int = 3) -> dict:
    """A fabricated scored rollout: row i's tokens are all i, its reward totals[i]."""
    n = len(totals)
    ids = torch.arange(n).repeat_interleave(prompt_len + length).view(n, -1)
    return dict(batch=Rollout(ids, torch.ones_like(ids), torch.ones(n, length), prompt_len, [f"c{i}" for i in range(n)]),
                prompts=[f"p{i}" for i in range(n)], refs=[f"r{i}" for i in range(n)],
                old_lp=torch.full((n, length), -1.0), entropy=torch.zeros(n, length), old_values=None,
                ref_lp=torch.full((n, length), -2.0),
                rewards=RewardBreakdown(total=totals, terms={"rouge": totals}, weights={"rouge": 1.0}),
                timings={"perf/generate_s": 1.0})


def test_tied_groups_and_row_selection():
    assert tied_groups([0.5, 0.5, 0.2, 0.3], 2) == [True, False]
    assert tied_groups([1.0, 1.0 + 1e-9], 2) == [True]  # a rounding error is no signal
    picked = select_rows(scored([0.0, 1.0, 2.0, 3.0]), [2, 3])
    assert picked["batch"].input_ids[:, 0].tolist() == [2, 3] and picked["rewards"].total == [2.0, 3.0]
    assert picked["prompts"] == ["p2", "p3"] and picked["batch"].completions == ["c2", "c3"]


def test_concat_repads_prompts_left_and_responses_right():
    a, b = scored([1.0, 2.0], prompt_len=2, length=3), scored([3.0, 4.0], prompt_len=4, length=1)
    joined = concat_scored([a, b], pad_id=99)
    batch = joined["batch"]
    assert batch.prompt_len == 4 and batch.response_mask.shape == (4, 3)
    assert batch.input_ids[0].tolist() == [99, 99, 0, 0, 0, 0, 0]          # prompt padded on the left
    assert batch.input_ids[2].tolist() == [0, 0, 0, 0, 0, 99, 99]          # response padded on the right
    assert batch.attention_mask[0].tolist() == [0, 0, 1, 1, 1, 1, 1]
    assert batch.response_mask[2].tolist() == [1.0, 0.0, 0.0]
    assert joined["old_lp"][2].tolist() == [-1.0, 0.0, 0.0] and joined["old_values"] is None
    assert joined["rewards"].total == [1.0, 2.0, 3.0, 4.0] and joined["timings"]["perf/generate_s"] == 2.0


class FakeSession:
    def __init__(self, rounds: int):
        self.cfg = TrainConfig(loss="dapo", samples_per_prompt=2, dapo_oversample_rounds=rounds)
        self.tokenizer = type("T", (), {"pad_token_id": 0})()
        self.draws: list[tuple[int, int]] = []

    def draw(self, round_: int, n: int):
        self.draws.append((round_, n))
        return [type("E", (), {"prompt": "p", "reference": "r"})()] * n


def test_dapo_drops_tied_groups_and_refills_the_batch(monkeypatch):
    refills = iter([scored([0.3, 0.3, 0.1, 0.9, 0.4, 0.4]), scored([0.2, 0.7, 0.5, 0.5, 0.6, 0.1])])
    monkeypatch.setattr(dapo, "rollout_and_score", lambda *a, **k: next(refills))
    s = FakeSession(rounds=3)
    first = scored([1.0, 0.0, 0.5, 0.5, 0.2, 0.2])  # groups: spread, tie, tie
    everything, rows, metrics = dapo.dynamic_sampling(s, first, 3)
    # round 1 adds one group with spread (its 2nd), round 2 one more (its 1st): 3 groups, so it stops.
    assert s.draws == [(1, 3), (2, 3)]
    assert rows == [0, 1, 8, 9, 12, 13]
    assert metrics == {"policy/zero_std_frac": pytest.approx(2 / 3), "policy/refill_rounds": 2.0,
                       "policy/kept_groups": 1.0}
    assert len(everything["rewards"].total) == 18  # every sample drawn stays in the charts


def test_dapo_without_refills_learns_from_fewer_groups_or_skips(monkeypatch):
    s = FakeSession(rounds=0)
    _, rows, metrics = dapo.dynamic_sampling(s, scored([1.0, 0.0, 0.5, 0.5]), 2)
    assert rows == [0, 1] and metrics["policy/kept_groups"] == 0.5 and s.draws == []
    _, rows, _ = dapo.dynamic_sampling(s, scored([0.5, 0.5]), 1)
    assert rows == []


def test_dapo_overlong_term_joins_the_reward():
    s = FakeSession(rounds=0)
    s.cfg = s.cfg.replace(max_new_tokens=5, dapo_overlong_buffer=0.4, dapo_overlong_coef=0.5)
    r = scored([1.0, 0.0], length=5)
    r["batch"].response_mask[1, 4] = 0  # lengths 5 and 4; ramp from 3 to 5 tokens: −1 and −0.5
    out = dapo.with_overlong_term(s, r)
    assert out["rewards"].terms["overlong"] == [-1.0, -0.5]
    assert out["rewards"].total == [1.0 - 0.5, 0.0 - 0.25] and out["rewards"].weights["overlong"] == 0.5


def tiny(path: str, **changes) -> TrainConfig:
    base = dict(backbone=path, steps=4, batch_size=2, samples_per_prompt=2, max_new_tokens=8, eval_every=0,
                eval_prompts=2, log_generations=2, checkpoint_every=2, device="cpu", lr=1e-3)
    return TrainConfig(**{**base, **changes})


@pytest.mark.parametrize("changes", [dict(loss="dapo", temperature=0.3), dict(loss="grpo", kl_target=0.5,
                                                                              kl_horizon=4)],
                         ids=["dapo-refills", "adaptive-kl"])
def test_resume_is_exact_with_refills_and_an_adaptive_kl(changes, tiny_lm_path, tmp_path):
    cfg = tiny(tiny_lm_path, **changes)
    unbroken: list = []
    rmcore.train(cfg, on_step=unbroken.append, run_dir=tmp_path / "a")
    first: list = []
    rmcore.train(cfg, on_step=first.append, run_dir=tmp_path / "b", should_stop=lambda: len(first) >= 3)
    resumed: list = []
    rmcore.train(cfg, on_step=resumed.append, run_dir=tmp_path / "b", resume_from=first[-1].checkpoint)

    def clean(r):
        return {k: round(v, 5) for k, v in r.metrics.items() if not k.startswith("perf/")}

    assert [clean(r) for r in resumed] == [clean(r) for r in unbroken[3:]]
    state = json.loads((Path(first[-1].checkpoint) / "trainer_state.json").read_text())
    if cfg.kl_target:  # the checkpoint after step 2 holds the coefficient step 3 then used
        assert state["kl_coef"] == unbroken[3].metrics["policy/kl_coef"] != cfg.kl_coef


def test_train_page_launches_grpo_and_its_successors_side_by_side(tiny_lm_path, runs_dir, fresh_runner):
    from streamlit.testing.v1 import AppTest

    from rmcore.runner import get_runner

    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=60)
    at.switch_page("pages/train.py")
    at.run()
    at.selectbox(key="cfg.backbone_choice").set_value("Other (hub id or local folder)…").run()
    at.text_input(key="cfg.backbone_custom").set_value(tiny_lm_path)
    at.number_input(key="cfg.steps").set_value(2)
    at.number_input(key="cfg.max_new_tokens").set_value(8)
    at.multiselect(key="cfg.compare_losses").set_value(["grpo", "dr_grpo", "dapo", "gspo"])
    at.button(key="launch_per_loss").click().run()
    assert not at.exception and not at.error
    store = RunStore(runs_dir)
    assert set(at.multiselect(key="cmp_runs").value) == set(store.list_runs()["id"])  # Compare opened on them
    runs = store.list_runs()
    assert sorted(runs["loss"]) == ["dapo", "dr_grpo", "grpo", "gspo"]
    for run_id in runs["id"]:
        assert get_runner(runs_dir).wait(run_id, 180) == "done"
    configs = {store.get_run(r)["config"]["loss"]: store.get_run(r)["config"] for r in runs["id"]}
    assert {c: configs[c]["loss_norm"] for c in configs} == {"grpo": "token_mean", "dr_grpo": "fixed_sum",
                                                             "dapo": "token_mean", "gspo": "seq_mean"}
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=60)  # Compare, the runs done
    at.query_params["runs"] = ",".join(runs["id"])
    at.switch_page("pages/compare.py")
    at.run()
    assert not at.exception
    specs = [json.loads(el.proto.spec) for el in at.get("plotly_chart")]
    traced = {t.get("meta") for s in specs for t in s["data"]}
    assert set(runs["id"]) <= traced  # every run has its curve


@pytest.mark.slow
@pytest.mark.parametrize("loss", ["dapo", "gspo"])
def test_dapo_and_gspo_raise_eval_rouge_over_40_steps(loss, warm150_path):
    """From the 150-step warm-start (eval ROUGE-L 0.524 on the 16 eval prompts), at the defaults.
    Measured on this 2-core CPU (about 45 s each): DAPO 0.524 -> 0.615 / 0.596 / 0.608 / 0.589 at
    steps 10–40, GSPO 0.524 -> 0.627 / 0.608 / 0.614 / 0.599."""
    rouge: dict[int, float] = {}
    cfg = TrainConfig(backbone=warm150_path, loss=loss, steps=40, eval_every=10, checkpoint_every=0, device="cpu")
    rmcore.train(cfg, on_step=lambda r: rouge.update({r.step: r.metrics["eval/rougeL"]} if "eval/rougeL" in r.metrics
                                                     else {}))
    assert sorted(rouge) == [0, 10, 20, 30, 40]
    assert rouge[40] > rouge[0] + 0.03, rouge


def test_train_page_says_when_terms_were_z_scored_and_charts_the_signal_shares(runs_dir, fresh_runner):
    from streamlit.testing.v1 import AppTest

    from rmcore.events import StepReport

    store = RunStore(runs_dir)
    config = TrainConfig(loss="grpo", reward_aggregation="normalize_per_term", kl_target=0.5).resolved().to_dict()
    run_id = store.create_run(kind="policy", config=config, name="per term")
    for step in (1, 2):
        store.record_step(run_id, StepReport(step, 2, {"reward/total": 1.0, "reward/rouge": 0.5, "policy/kl": 0.1,
                                                       "policy/kl_coef": 0.05 * step, "policy/signal_share/rouge": 0.7,
                                                       "policy/signal_share/fluency": 0.3}))
    store.set_status(run_id, "done")
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=30)
    at.query_params["run"] = run_id
    at.switch_page("pages/train.py")
    at.run()
    assert not at.exception
    charts = {s["layout"]["title"]["text"]: {t["name"] for t in s["data"]}
              for s in (json.loads(el.proto.spec) for el in at.get("plotly_chart")) if s["layout"].get("title")}
    assert {"reward/total", "reward/rouge"} <= charts["Reward: total and each term (z-scored per group to learn)"]
    assert "policy/kl_coef" in charts["Policy: KL and entropy"]
    shares = next(names for title, names in charts.items() if title.startswith("Learning signal"))
    assert shares == {"policy/signal_share/rouge", "policy/signal_share/fluency"}

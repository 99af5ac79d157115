"""The policy-algorithm registry: one module per algorithm, no dispatch on names elsewhere,
every algorithm's own loss key, and a new algorithm trains and charts without other edits."""
from __future__ import annotations

import ast
import importlib
import json
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from rmcore import advantages as adv
from rmcore.algorithms import POLICY_LOSSES, Algorithm, get_algorithm
from rmcore.config import TrainConfig
from rmcore.events import StepReport
from rmcore.losses import policy_gradient_loss
from rmcore.online_step import online_step
from rmcore.step_inputs import AdvantageInputs, LossInputs, PairInputs
from rmcore.store import TERMINAL_STATUSES, RunStore

ROOT = Path(__file__).resolve().parents[1]


def test_every_algorithm_lives_in_a_module_of_its_name():
    assert list(POLICY_LOSSES) == ["mle", "reinforce", "reinforce_baseline", "reinforce_pp", "reinforce_pp_baseline",
                                   "actor_critic", "ppo", "rloo", "grpo", "dr_grpo", "dapo", "gspo", "cispo", "dpo",
                                   "ipo", "slic", "simpo"]
    for name, algo in POLICY_LOSSES.items():
        module = importlib.import_module(f"rmcore.algorithms.{name}")
        assert module.ALGORITHM is algo and algo.name == name
        assert module.__doc__ and len(module.__doc__.splitlines()) >= 3, f"{name}: no docstring with its equations"
        assert algo.loss.__module__ == module.__name__, f"{name} borrows another module's loss"
        assert (algo.advantages is None) == (algo.data == "pairs" or algo.kind == "sft")


def inputs_for(algo: Algorithm, cfg: TrainConfig):
    """Synthetic inputs of the algorithm's step kind: 4 rows, 3 tokens."""
    g = torch.Generator().manual_seed(0)
    lp = torch.randn(4, 3, generator=g).clamp(max=-0.1).requires_grad_()
    mask = torch.tensor([[1.0, 1, 1], [1, 1, 0], [1, 0, 0], [1, 1, 1]])
    if algo.data == "pairs":
        ref = None if algo.reference_free else torch.zeros(2)
        lengths = mask.sum(1)
        return PairInputs(cfg=cfg, chosen_logps=lp.sum(1)[:2], rejected_logps=lp.sum(1)[2:],
                          ref_chosen_logps=ref, ref_rejected_logps=ref, chosen_lengths=lengths[:2],
                          rejected_lengths=lengths[2:])
    values = torch.randn(4, 3, generator=g).requires_grad_()
    return LossInputs(cfg=cfg, logprobs=lp, mask=mask, old_logprobs=lp.detach() - 0.1,
                      advantages=torch.tensor([1.0, -1.0, 0.5, -0.5]), values=values,
                      old_values=values.detach(), returns=torch.ones(4, 3) * mask)


@pytest.mark.parametrize("name", list(POLICY_LOSSES))
def test_each_algorithm_logs_its_own_loss_key_with_a_gradient(name):
    algo = get_algorithm(name)
    cfg = TrainConfig(loss=name, max_new_tokens=3).resolved()
    loss, stats = algo.loss(inputs_for(algo, cfg))
    assert f"loss/{name}" in stats and stats[f"loss/{name}"] == pytest.approx(loss.item())
    assert loss.requires_grad and torch.isfinite(loss)
    for key in algo.diagnostics:
        assert key.startswith(("loss/", "policy/")), key
        # The rest come from the step (zero_std_frac, DAPO's refills): test_algorithms_smoke checks them.
        assert key in stats or key not in loss_level_keys(), f"{name} declares {key} but its loss does not log it"


def loss_level_keys() -> set[str]:
    """Every diagnostic that some algorithm's loss (not its step) logs."""
    keys: set[str] = set()
    for name, algo in POLICY_LOSSES.items():
        cfg = TrainConfig(loss=name, max_new_tokens=3).resolved()
        keys |= set(algo.loss(inputs_for(algo, cfg))[1])
    return keys


def test_no_module_outside_an_algorithm_compares_against_an_algorithm_name():
    names = set(POLICY_LOSSES)
    offenders = []
    # The playground's variance demo has estimators of its own (rmcore.playground_bandit.PG_ESTIMATORS)
    # on a toy bandit; two share a spelling with algorithms, none is an algorithm dispatch.
    exempt = {ROOT / "rmcore" / "playground_bandit.py"}
    for path in [*ROOT.glob("rmcore/**/*.py"), *ROOT.glob("ui/*.py"), *ROOT.glob("pages/*.py"), ROOT / "app.py"]:
        if "algorithms" in path.parts or path in exempt:
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Compare):
                consts = [c for c in ast.walk(node) if isinstance(c, ast.Constant) and c.value in names]
                offenders += [f"{path.relative_to(ROOT)}:{c.lineno} {c.value!r}" for c in consts]
    assert not offenders, offenders


# --- a throwaway algorithm: registered here, trained and charted through the app's own paths
def _sign_advantages(x: AdvantageInputs):
    """A_i = sign(R_i − mean R): a deliberately odd estimator no shipped algorithm uses."""
    return torch.sign(x.rewards - x.rewards.mean()), None


def _sign_loss(x: LossInputs):
    loss, stats = policy_gradient_loss(x.logprobs, x.advantages, x.mask, **x.norm())
    return loss, {**stats, "loss/sign_reinforce": loss.item(), "policy/positive_share": float((x.advantages > 0)
                                                                                             .float().mean())}


SIGN = Algorithm(name="sign_reinforce", label="Sign REINFORCE", description="REINFORCE on sign(R − mean).",
                 step=online_step, advantages=_sign_advantages, loss=_sign_loss,
                 diagnostics=("policy/positive_share",))


def test_a_registered_algorithm_trains_through_the_runner_and_charts_its_diagnostics(tiny_lm_path, runs_dir,
                                                                                    fresh_runner, monkeypatch):
    from streamlit.testing.v1 import AppTest

    from rmcore.runner import get_runner

    monkeypatch.setitem(POLICY_LOSSES, SIGN.name, SIGN)
    cfg = TrainConfig(backbone=tiny_lm_path, loss="sign_reinforce", steps=2, batch_size=2, samples_per_prompt=2,
                      max_new_tokens=6, eval_every=0, eval_prompts=2)
    run_id = get_runner(runs_dir).submit(cfg)  # what ui.launch.launch_runs calls
    assert get_runner(runs_dir).wait(run_id, 120) == "done"
    store = RunStore(runs_dir)
    keys = store.metric_keys(run_id)
    assert {"loss/sign_reinforce", "policy/positive_share"} <= set(keys)
    assert "loss/reinforce" not in keys  # not trained as REINFORCE under another name

    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=30)
    at.query_params["run"] = run_id
    at.switch_page("pages/train.py")
    at.run()
    assert not at.exception
    specs = [json.loads(el.proto.spec) for el in at.get("plotly_chart")]
    own = [s for s in specs if s["layout"].get("title", {}).get("text", "").startswith("Sign REINFORCE")]
    assert own and [t["name"] for t in own[0]["data"]] == ["policy/positive_share"]


@pytest.mark.parametrize("loss,keys", [
    ("ppo", ["policy/clipfrac", "policy/approx_kl", "policy/ratio_mean", "policy/value_clipfrac"]),
    ("grpo", ["policy/clipfrac", "policy/approx_kl", "policy/ratio_mean"]),
    ("dpo", ["policy/implicit_reward_accuracy", "policy/implicit_reward_margin"]),
])
def test_train_page_charts_the_algorithms_own_diagnostics(loss, keys, runs_dir, fresh_runner):
    from streamlit.testing.v1 import AppTest

    store = RunStore(runs_dir)
    run_id = store.create_run(kind="policy", config=TrainConfig(loss=loss, steps=3).to_dict(), name=loss)
    store.set_status(run_id, "running")
    for step in range(1, 4):
        store.record_step(run_id, StepReport(step, 3, {"loss/total": 1.0, **{k: 0.1 * step for k in keys}}))
    store.set_status(run_id, "done")
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=30)
    at.query_params["run"] = run_id
    at.switch_page("pages/train.py")
    at.run()
    specs = {s["layout"].get("title", {}).get("text", ""): s for s in
             (json.loads(el.proto.spec) for el in at.get("plotly_chart"))}
    title = f"{get_algorithm(loss).label}: its own diagnostics"
    assert title in specs, list(specs)
    assert {t["name"] for t in specs[title]["data"]} == set(keys)


def test_old_runs_keys_are_read_under_the_vocabulary(runs_dir):
    store = RunStore(runs_dir)
    run_id = store.create_run(kind="policy", config=TrainConfig(loss="dpo").to_dict(), name="old")
    store.record_step(run_id, StepReport(1, 2, {"gen/response_length": 7.0, "rewards/accuracy": 0.5,
                                                "batch/self_bleu": 0.2, "loss/total": 1.0}))
    store.record_step(run_id, StepReport(2, 2, {"gen/response_length": 9.0, "rewards/accuracy": 0.75,
                                                "batch/self_bleu": 0.1, "loss/total": 0.5}))
    assert store.metric_keys(run_id) == ["loss/total", "policy/implicit_reward_accuracy", "policy/response_length",
                                         "policy/self_bleu"]
    frame = store.metrics([run_id], keys=["policy/response_length"])
    assert list(frame["key"]) == ["policy/response_length"] * 2 and list(frame["value"]) == [7.0, 9.0]
    best = store.final_and_best([run_id], ["policy/implicit_reward_accuracy", "policy/self_bleu"]).set_index("key")
    assert best.loc["policy/implicit_reward_accuracy", "final"] == 0.75
    assert best.loc["policy/self_bleu", "best"] == 0.1  # lower is better, under its new name too


def test_advantage_inputs_reach_the_estimator_unchanged():
    """The estimators the modules call are the tested ones in rmcore.advantages (values: test_advantages_kl)."""
    R = torch.tensor([1.0, 0.0, 0.5, 0.5])
    session = SimpleNamespace(cfg=TrainConfig(samples_per_prompt=2))
    x = AdvantageInputs(session=session, rewards=R, raw_rewards=R, token_kl=None, mask=torch.ones(4, 2),
                        old_values=None, prompts=["a", "b"], refs=["x", "y"])
    for name, expected in [("rloo", adv.rloo_advantages(R, 2)), ("grpo", adv.group_normalized_advantages(R, 2)),
                           ("reinforce", R)]:
        got, returns = get_algorithm(name).advantages(x)
        torch.testing.assert_close(got, expected)
        assert returns is None
    _, returns = get_algorithm("actor_critic").advantages(x)
    torch.testing.assert_close(returns, R[:, None].expand(4, 2))


@pytest.mark.parametrize("loss", ["ppo", "dpo", "mle"])
def test_train_form_shows_the_chosen_losss_options_under_it_and_the_rest_apart(loss, runs_dir, fresh_runner):
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=30)
    at.switch_page("pages/train.py")
    at.run()
    at.selectbox(key="cfg.loss").set_value(loss).run()
    owned = {n for a in POLICY_LOSSES.values() for n in a.options}
    assert owned, "no algorithm declares options"

    def keys_in(label):
        block = next(e for e in at.expander if e.label == label)
        return {w.key.removeprefix("cfg.") for kind in ("number_input", "selectbox", "checkbox", "text_input")
                for w in getattr(block, kind)}
    advanced, others = keys_in("Advanced options"), keys_in("Options of the other losses")
    mine = set(get_algorithm(loss).options)
    assert not (advanced & owned)                 # general fields only
    assert others == owned - mine                 # every other loss's field, none of this one's
    drawn = {w.key.removeprefix("cfg.") for w in at.number_input} | {w.key.removeprefix("cfg.") for w in at.selectbox}
    assert mine <= drawn                          # this loss's own fields are on the form, outside both

"""AppTest of the Reward model page: renders alone, launches a tiny run and draws its charts,
compares runs with the values they logged, rejects a zero hinge margin, and hands a
trained reward model to the Train page.

Timed fragment reruns are not simulated by AppTest, so live updates are polled with
repeated ``at.run()``. Real runs use the tiny local model from conftest.
"""
from __future__ import annotations

import base64
import json
import time
from pathlib import Path

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

from rmcore.config import RewardModelConfig
from rmcore.events import StepReport
from rmcore.store import TERMINAL_STATUSES, RunStore

ROOT = Path(__file__).resolve().parents[1]
APP = str(ROOT / "app.py")
PAGE = "pages/reward_model.py"


pytestmark = pytest.mark.usefixtures("fresh_runner")  # conftest.py


def page(**query) -> AppTest:
    """The page inside the app's entry point, as a user reaches it (see ui.nav.require_entrypoint)."""
    at = AppTest.from_file(APP, default_timeout=60)
    at.query_params.update(query)
    at.switch_page(PAGE)
    return at.run()


def specs(at: AppTest) -> dict[str, dict]:
    """Plotly figures by title."""
    out = {}
    for element in at.get("plotly_chart"):
        spec = json.loads(element.proto.spec)
        out[spec["layout"].get("title", {}).get("text", "")] = spec
    return out


def decode(array) -> np.ndarray:
    if isinstance(array, dict):  # plotly sends numpy arrays as {dtype, bdata}
        return np.frombuffer(base64.b64decode(array["bdata"]), dtype=np.dtype(array["dtype"]))
    return np.asarray(array)


def wait_done(at: AppTest, store: RunStore, run_ids: list[str], timeout: float = 180) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        at.run()
        assert not at.exception, at.exception
        if all(store.get_run(r)["status"] in TERMINAL_STATUSES for r in run_ids):
            break
        time.sleep(0.5)
    at.run()
    for run_id in run_ids:
        run = store.get_run(run_id)
        assert run["status"] == "done", run["error"]


def fake_rm_run(store: RunStore, loss: str, accuracy: dict[str, float], checkpoint: str | None = None) -> str:
    """A finished reward-model run written straight into the store, with known eval values."""
    run_id = store.create_run(kind="reward_model", config=RewardModelConfig(loss=loss, steps=2).to_dict(), name=loss)
    store.set_status(run_id, "running")
    for step in (0, 2):
        metrics = {"loss/total": 1.0 - 0.1 * step, "eval/accuracy": 0.5 if step == 0 else accuracy["all"],
                   "eval/ece": 0.1, "eval/calibration/bin_2_pred": 0.25, "eval/calibration/bin_2_obs": 0.2,
                   "eval/calibration/bin_2_count": 4.0, "eval/calibration/bin_7_pred": 0.75,
                   "eval/calibration/bin_7_obs": 0.8, "eval/calibration/bin_7_count": 4.0}
        metrics.update({f"eval/accuracy/{k}": v for k, v in accuracy.items() if k != "all"})
        store.record_step(run_id, StepReport(step, 2, metrics, sample_rewards={"chosen": [1.0, 2.0],
                                                                               "rejected": [0.0, 0.5]},
                                             checkpoint=checkpoint if step == 2 else None))
    store.set_status(run_id, "done")
    return run_id


def test_page_renders_alone_without_runs() -> None:
    at = page()
    assert not at.exception
    assert any("No reward model yet" in info.value for info in at.info)


def test_launch_a_tiny_run_and_watch_it(tiny_lm_path, runs_dir) -> None:
    at = page()
    at.selectbox(key="rm.backbone_choice").set_value("Other…").run()
    at.text_input(key="rm.backbone_custom").set_value(tiny_lm_path)
    for name, value in {"steps": 3, "batch_size": 2, "eval_every": 2, "eval_pairs": 6}.items():
        at.number_input(key=f"rm.{name}").set_value(value)
    at.button(key="rm_launch").click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    run_id = at.selectbox(key="rm_run").value
    assert at.query_params["run"] == run_id
    wait_done(at, RunStore(runs_dir), [run_id])

    assert any(m.value == "3 / 3" for m in at.metric)
    figures = specs(at)
    assert {"Loss", "Pairwise accuracy", "Mean reward of each side"} <= set(figures)
    hist = next(spec for title, spec in figures.items() if "chosen vs rejected" in title)
    assert [trace["name"] for trace in hist["data"]] == ["chosen", "rejected"]
    assert all(len(decode(trace["x"])) == 6 for trace in hist["data"])
    bars = figures["Held-out accuracy per corruption type"]["data"]
    assert len(bars) == 1 and len(bars[0]["x"]) >= 1      # 6 held-out pairs cover some corruption types
    calibration = figures["Calibration: σ(Δ) against the observed win rate"]["data"]
    assert calibration[0]["name"] == "perfectly calibrated" and len(calibration) == 2
    assert not at.button(key="rm_use").disabled             # the checkpoint is there


def test_compare_shows_what_each_run_logged(runs_dir) -> None:
    store = RunStore(runs_dir)
    bt = fake_rm_run(store, "bradley_terry", {"all": 0.9, "truncation": 1.0, "wrong_number": 0.7})
    hinge = fake_rm_run(store, "hinge", {"all": 0.8, "truncation": 0.95, "wrong_number": 0.55})
    at = page(run=bt, compare=f"{bt},{hinge}")
    assert not at.exception
    assert at.multiselect(key="rm_compare").value == [bt, hinge]
    table = at.dataframe[0].value
    assert list(table["loss"]) == ["bradley_terry", "hinge"]
    assert list(table["eval/accuracy"]) == [0.9, 0.8] and list(table["wrong_number"]) == [0.7, 0.55]
    assert list(table["step"]) == [2, 2]
    bars = [s for t, s in specs(at).items() if t == "Held-out accuracy per corruption type"]
    assert bars, "the per-corruption bar chart is missing"
    by_run = {trace["name"]: dict(zip(trace["x"], decode(trace["y"]))) for trace in bars[-1]["data"]}
    assert by_run == {"bradley_terry": {"truncation": 1.0, "wrong_number": 0.7},
                      "hinge": {"truncation": 0.95, "wrong_number": 0.55}}
    line = specs(at)["eval/accuracy"]["data"]
    assert len(line) == 2


def test_zero_margin_for_hinge_is_refused_before_a_run_starts(runs_dir) -> None:
    at = page()
    at.selectbox(key="rm.loss").set_value("hinge")
    at.number_input(key="rm.margin_rank").set_value(0.0)
    at.button(key="rm_launch").click().run()
    assert not at.exception
    assert any("positive margin" in e.value for e in at.error)
    assert RunStore(runs_dir).list_runs().empty


def test_a_loss_the_family_cannot_take_is_refused_before_a_run_starts(runs_dir) -> None:
    at = page()
    at.selectbox(key="rm.family").set_value("embedding")
    at.selectbox(key="rm.loss").set_value("mse")
    at.button(key="rm_launch").click().run()
    assert not at.exception
    assert any("use the scalar family" in e.value for e in at.error)
    assert RunStore(runs_dir).list_runs().empty


def test_use_as_reward_opens_train_with_the_run_id(runs_dir, tmp_path) -> None:
    store = RunStore(runs_dir)
    (tmp_path / "ckpt").mkdir()
    run_id = fake_rm_run(store, "bradley_terry", {"all": 0.9}, checkpoint=str(tmp_path / "ckpt"))
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=60)
    at.switch_page("pages/reward_model.py")
    at.run()
    assert not at.exception and at.selectbox(key="rm_run").value == run_id
    at.button(key="rm_use").click().run()
    assert not at.exception
    assert at.query_params["reward_model"] == run_id
    assert at.title[0].value == "Train"
    # The form opens with δ on and this model picked from the list of trained reward models.
    assert at.text_input(key="cfg.delta").value == "1"
    assert at.selectbox(key="cfg.reward_model_choice").value == run_id
    assert "bradley_terry" in at.selectbox(key="cfg.reward_model_choice").format_func(run_id)
    # The link seeds the form once: edits made after it stay (a fresh session on the link).
    train = AppTest.from_file(str(ROOT / "app.py"), default_timeout=60)
    train.query_params["reward_model"] = run_id
    train.switch_page("pages/train.py").run()
    train.text_input(key="cfg.delta").set_value("0.5").run()
    assert train.text_input(key="cfg.delta").value == "0.5"
    assert train.selectbox(key="cfg.reward_model_choice").value == run_id

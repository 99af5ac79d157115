"""AppTest for app.py and every page: renders, launches, live panel, compare, runs actions.

Timed fragment reruns are not simulated by AppTest, so live updates are polled with
repeated ``at.run()``. Runs use the tiny local model from conftest (seconds per run).
"""
from __future__ import annotations

import base64
import json
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from streamlit.testing.v1 import AppTest

from rmcore.config import TrainConfig
from rmcore.events import StepReport
from rmcore.runner import get_runner
from rmcore.store import TERMINAL_STATUSES, RunStore

ROOT = Path(__file__).resolve().parents[1]
APP = str(ROOT / "app.py")
PAGES = ["pages/home.py", "pages/train.py", "pages/compare.py", "pages/runs.py"]


pytestmark = pytest.mark.usefixtures("fresh_runner")  # conftest.py


def tiny(path: str, **changes) -> TrainConfig:
    return TrainConfig(backbone=path, steps=3, batch_size=2, samples_per_prompt=2, max_new_tokens=8,
                       eval_every=0, eval_prompts=2, log_generations=2).replace(**changes)


def app(page: str | None = None, **query) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=30)
    at.query_params.update(query)
    if page:
        at.switch_page(page)
    return at.run()


def fake_run(store: RunStore, loss: str, steps: int = 5) -> str:
    """A finished run written straight into the store (no training), for Compare and Runs."""
    run_id = store.create_run(kind="policy", config=TrainConfig(loss=loss, steps=steps).to_dict(), name=loss)
    store.set_status(run_id, "running")
    for step in range(1, steps + 1):
        store.record_step(run_id, StepReport(
            step, steps, {"loss/total": 1.0 / step, "reward/total": 0.1 * step, "reward/rouge": 0.05 * step},
            sample_rewards={"total": [0.1 * step, 0.2 * step]},
            generations=[{"split": "eval", "prompt": "doc\nTL;DR:", "completion": f"{loss} says {step}",
                          "reference": "ref", "reward": 0.5, "terms": {"rouge": 0.5}}]), time=1000.0 + step)
    store.set_status(run_id, "done")
    return run_id


def plotly_specs(at: AppTest) -> list[dict]:
    return [json.loads(el.proto.spec) for el in at.get("plotly_chart")]


def decode(array) -> np.ndarray:
    """Plotly sends numpy arrays as typed-array dicts {dtype, bdata}."""
    if isinstance(array, dict):
        return np.frombuffer(base64.b64decode(array["bdata"]), dtype=np.dtype(array["dtype"]))
    return np.asarray(array)


@pytest.mark.parametrize("page", [None, *PAGES])
def test_every_page_renders_without_runs(page) -> None:
    at = app(page)
    assert not at.exception
    assert "Device" in at.sidebar.caption[0].value      # every page runs inside the entry point


def test_every_page_renders_with_runs(runs_dir) -> None:
    store = RunStore(runs_dir)
    ids = [fake_run(store, "ppo"), fake_run(store, "grpo")]
    for page in PAGES:
        at = app(page)
        assert not at.exception, page
    at = app("pages/train.py", run=ids[0])
    assert at.selectbox(key="train_run").value == ids[0]
    assert len(plotly_specs(at)) >= 3      # loss, reward, histogram, heatmap


def test_launch_from_train_reaches_done_and_draws_live_panel(tiny_lm_path, runs_dir) -> None:
    at = app("pages/train.py")
    at.selectbox(key="cfg.backbone_choice").set_value("Other (hub id or local folder)…").run()
    at.text_input(key="cfg.backbone_custom").set_value(tiny_lm_path)
    for name, value in {"steps": 3, "batch_size": 2, "samples_per_prompt": 2, "max_new_tokens": 8,
                        "eval_every": 0, "eval_prompts": 2}.items():
        at.number_input(key=f"cfg.{name}").set_value(value)
    at.button(key="launch").click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    run_id = at.selectbox(key="train_run").value
    assert at.query_params["run"] == run_id

    deadline, status = time.monotonic() + 120, ""
    while time.monotonic() < deadline:
        at.run()
        assert not at.exception
        status = RunStore(runs_dir).get_run(run_id)["status"]
        if status in TERMINAL_STATUSES:
            break
        time.sleep(0.5)
    at.run()
    assert status == "done", RunStore(runs_dir).get_run(run_id).get("error")
    assert any(m.value == "3 / 3" for m in at.metric)
    titles = [spec["layout"].get("title", {}).get("text", "") for spec in plotly_specs(at)]
    assert "Loss" in titles and any(t.startswith("Reward") for t in titles)
    assert at.dataframe, "the generations table is missing"
    assert RunStore(runs_dir).get_run(run_id)["config"]["backbone"] == tiny_lm_path


def test_bad_config_shows_one_sentence_and_keeps_values() -> None:
    at = app("pages/train.py")
    at.number_input(key="cfg.temperature").set_value(0.0)
    at.number_input(key="cfg.steps").set_value(7)
    at.button(key="launch").click().run()
    assert not at.exception
    assert [e.value for e in at.error] == ["temperature must be positive, got 0.0."]
    assert at.number_input(key="cfg.steps").value == 7
    assert at.number_input(key="cfg.temperature").value == 0.0


def test_launch_one_run_per_loss_opens_compare(tiny_lm_path, runs_dir) -> None:
    at = app("pages/train.py")
    at.selectbox(key="cfg.backbone_choice").set_value("Other (hub id or local folder)…").run()
    at.text_input(key="cfg.backbone_custom").set_value(tiny_lm_path)
    at.number_input(key="cfg.steps").set_value(2)
    at.multiselect(key="cfg.compare_losses").set_value(["reinforce", "grpo"])
    at.button(key="launch_per_loss").click().run()
    assert not at.exception
    runs = RunStore(runs_dir).list_runs()
    assert sorted(runs["loss"]) == ["grpo", "reinforce"]
    assert set(at.multiselect(key="cmp_runs").value) == set(runs["id"])
    configs = [RunStore(runs_dir).get_run(r)["config"] for r in runs["id"]]
    differing = {k for k in configs[0] if configs[0][k] != configs[1][k]}
    assert differing == {"loss"}


def test_one_run_per_loss_is_all_or_nothing(tiny_lm_path, runs_dir) -> None:
    at = app("pages/train.py")
    at.selectbox(key="cfg.backbone_choice").set_value("Other (hub id or local folder)…").run()
    at.text_input(key="cfg.backbone_custom").set_value(tiny_lm_path)
    at.number_input(key="cfg.samples_per_prompt").set_value(1)      # RLOO needs G >= 2
    at.multiselect(key="cfg.compare_losses").set_value(["reinforce", "rloo"])
    at.button(key="launch_per_loss").click().run()
    assert not at.exception
    assert len(at.error) == 1 and "samples_per_prompt" in at.error[0].value
    assert RunStore(runs_dir).list_runs().empty                        # REINFORCE was not queued alone


def test_compare_draws_one_trace_per_selected_run(runs_dir) -> None:
    store = RunStore(runs_dir)
    ids = [fake_run(store, "ppo", steps=6), fake_run(store, "grpo", steps=4), fake_run(store, "rloo")]
    at = app("pages/compare.py", runs=",".join(ids[:2]), metric="loss/total")
    assert not at.exception
    assert at.multiselect(key="cmp_runs").value == ids[:2]
    line = plotly_specs(at)[0]
    legend = [t for t in line["data"] if t.get("showlegend", True)]
    assert sorted(t["meta"] for t in legend) == sorted(ids[:2])
    lengths = sorted(len(decode(t["y"])) for t in legend)
    assert lengths == [4, 6]
    assert line["layout"]["yaxis"]["title"]["text"] == "loss/total"
    # The config table flags the loss; the eval answers of both runs are side by side.
    assert any("ppo says" in m.value for m in at.markdown) and any("grpo says" in m.value for m in at.markdown)
    # Changing the selection updates the URL (a reload keeps it).
    at.multiselect(key="cmp_runs").set_value(ids).run()
    assert at.query_params["runs"] == ",".join(ids)
    assert len([t for t in plotly_specs(at)[0]["data"] if t.get("showlegend", True)]) == 3


def test_compare_many_runs_reads_as_tables(runs_dir) -> None:
    """Beyond 6 runs: the eval answers and the reward distributions are tables (a row per
    run), the curves have no faint raw lines, and the final/best table (aggregated in SQL)
    has a row per run."""
    store = RunStore(runs_dir)
    losses = ["ppo", "grpo", "rloo", "reinforce", "dpo", "mle", "actor_critic"]
    ids = [fake_run(store, loss, steps=3 + i) for i, loss in enumerate(losses)]
    at = app("pages/compare.py", runs=",".join(ids), metric="loss/total")
    assert not at.exception
    assert len(plotly_specs(at)[0]["data"]) == 7  # one smoothed line per run
    assert len(plotly_specs(at)) == 1  # the reward distributions are a table too
    final, _, rewards, answers = at.dataframe  # final/best, configs, reward distributions, eval answers
    assert list(rewards.value.index) == [f"{loss} (step {s})" for loss, s in zip(losses, range(3, 10))]
    np.testing.assert_allclose(rewards.value["mean"], [0.15 * s for s in range(3, 10)])  # of 0.1·s and 0.2·s
    assert list(final.value.index) == losses and list(final.value["last step"]) == [3, 4, 5, 6, 7, 8, 9]
    np.testing.assert_allclose(final.value["loss/total · final"], [1 / s for s in range(3, 10)])
    np.testing.assert_allclose(final.value["loss/total · best"], [1 / s for s in range(3, 10)])
    np.testing.assert_allclose(final.value["reward/total · best"], [0.1 * s for s in range(3, 10)])
    assert list(answers.value["run"]) == losses
    assert list(answers.value["answer"]) == [f"{loss} says {s}" for loss, s in zip(losses, range(3, 10))]
    assert not any("says" in m.value for m in at.markdown)  # no cards


def test_compare_reads_new_steps_past_its_cache(runs_dir) -> None:
    """Compare caches its reads per (run, last step): a step recorded since is read."""
    store = RunStore(runs_dir)
    run_id = fake_run(store, "grpo", steps=3)
    at = app("pages/compare.py", runs=run_id, metric="reward/total")
    assert at.dataframe[0].value["last step"].tolist() == [3]
    store.record_step(run_id, StepReport(4, 4, {"reward/total": 2.0, "loss/total": 0.1},
                                         sample_rewards={"total": [7.0, 8.0]}), time=1004.0)
    at.run()
    assert not at.exception
    assert at.dataframe[0].value["last step"].tolist() == [4]
    assert at.dataframe[0].value["reward/total · best"].tolist() == [2.0]
    assert "(step 4)" in plotly_specs(at)[1]["data"][0]["name"]  # the reward histogram's last step


def test_compare_x_axis_and_log_scale(runs_dir) -> None:
    store = RunStore(runs_dir)
    ids = [fake_run(store, "ppo"), fake_run(store, "grpo")]
    at = app("pages/compare.py", runs=",".join(ids), metric="reward/total", x="time")
    at.toggle(key="cmp_log").set_value(True).run()
    line = plotly_specs(at)[0]
    assert line["layout"]["yaxis"]["type"] == "log"
    assert line["layout"]["xaxis"]["title"]["text"] == "Wall time (s)"
    np.testing.assert_allclose(decode(line["data"][0]["x"]), [0, 1, 2, 3, 4])


def test_runs_page_delete_with_confirmation_and_open_in_compare(runs_dir) -> None:
    store = RunStore(runs_dir)
    ids = [fake_run(store, "ppo"), fake_run(store, "grpo")]
    at = app("pages/runs.py")
    at.multiselect(key="runs_pick").set_value([ids[0]]).run()
    at.button(key="runs_delete").click().run()
    assert ids[0] in store.list_runs()["id"].tolist()        # nothing deleted before "Yes"
    at.button(key="runs_delete_yes").click().run()
    assert not at.exception
    assert store.list_runs()["id"].tolist() == [ids[1]]
    at.multiselect(key="runs_pick").set_value([ids[1]]).run()
    at.button(key="runs_compare").click().run()
    assert not at.exception
    assert at.multiselect(key="cmp_runs").value == [ids[1]]


def test_home_cards_say_what_you_should_see() -> None:
    from ui.presets import PRESETS

    at = app()
    captions = [c.value for c in at.caption]
    for preset in PRESETS:
        assert f"What you should see: {preset.expect}" in captions


@pytest.mark.parametrize("preset, differing", [("tour", {"loss", "name"}), ("hacking", {"length_weight", "name"}),
                                              ("kl", {"kl_coef", "name"})])
def test_home_presets_queue_runs_and_open_compare(preset, differing, tiny_lm_path, runs_dir, monkeypatch) -> None:
    import ui.presets

    monkeypatch.setattr(ui.presets, "SMALL", tiny(tiny_lm_path, steps=2))
    at = app()
    at.button(key=f"preset-{preset}").click().run()
    assert not at.exception
    store = RunStore(runs_dir)
    runs = store.list_runs()
    assert sorted(at.multiselect(key="cmp_runs").value) == sorted(runs["id"])
    configs = [store.get_run(r)["config"] for r in runs["id"]]
    assert {k for c in configs[1:] for k in c if c[k] != configs[0][k]} == differing
    assert all(c["backbone"] == tiny_lm_path for c in configs)


def test_reuse_loads_a_run_config_into_the_form(runs_dir) -> None:
    store = RunStore(runs_dir)
    config = TrainConfig(loss="rloo", alpha=2, steps=7, backbone="/models/mine", task="xsum").to_dict()
    run_id = store.create_run(kind="policy", config=config)
    store.set_status(run_id, "done")
    at = app("pages/train.py", run=run_id)
    assert "cfg.loss" not in [w.key for w in at.selectbox]  # a closed form is not built
    at.button(key="reuse").click().run()                      # Reuse fills the form and opens it
    assert not at.exception
    assert at.selectbox(key="cfg.loss").value == "rloo"
    assert at.text_input(key="cfg.alpha").value == "2" and at.number_input(key="cfg.steps").value == 7
    assert at.text_input(key="cfg.backbone_custom").value == "/models/mine"
    assert at.text_input(key="cfg.task_hub").value == "xsum"


def test_failed_run_shows_message_and_traceback(runs_dir) -> None:
    store = RunStore(runs_dir)
    run_id = store.create_run(kind="policy", config=TrainConfig().to_dict())
    store.set_status(run_id, "failed", error="TrainingError: the loss is NaN at step 3.",
                     traceback="Traceback (most recent call last):\n  File \"trainer.py\"\nTrainingError")
    at = app("pages/train.py", run=run_id)
    assert not at.exception
    assert "the loss is NaN at step 3" in at.error[0].value
    assert at.expander and "Traceback" in at.code[0].value


def test_preparing_run_shows_its_progress(runs_dir) -> None:
    # The runner first: a new runner marks runs of this process that it does not own interrupted.
    store = get_runner(runs_dir).store
    run_id = store.create_run(kind="policy", config=TrainConfig().to_dict())
    store.set_status(run_id, "preparing", message="Building tiny-gpt2: warm-start 40%")
    at = app("pages/train.py", run=run_id)
    bars = at.get("progress")
    assert [(b.proto.value, b.proto.text) for b in bars] == [(40, "Building tiny-gpt2: warm-start 40%")]
    assert at.button(key="stop")  # a live run can be stopped


# ---------------------------------------------------------------- helpers behind the pages

def test_presets_are_valid_and_differ_only_where_they_say() -> None:
    from ui.presets import PRESETS, quick_tour

    for preset in PRESETS:
        for config in preset.configs():
            config.validate()
    tour = [c.to_dict() for c in quick_tour()]
    assert [c["loss"] for c in tour] == ["reinforce", "ppo", "grpo"]
    assert {k for c in tour[1:] for k in c if c[k] != tour[0][k]} == {"loss", "name"}


def test_navigation_lists_every_page_file_once() -> None:
    from ui import nav

    files = sorted(str(path.relative_to(ROOT)) for path in (ROOT / "pages").glob("*.py"))
    assert sorted(page.path for page in nav.PAGES) == files
    assert [page.title for page in nav.PAGES] == ["Home", "Train", "Reward model", "Compare", "Runs",
                                                   "Loss playground"]
    assert [page.default for page in nav.PAGES].count(True) == 1


def test_small_helpers() -> None:
    from ui.compare import samples_per_step
    from ui.live import _fraction, generation_table
    from ui.runtime import duration_text

    assert _fraction("Building tiny-gpt2: warm-start 40%") == 0.4 and _fraction("Loading data") == 0.0
    assert samples_per_step({"loss": "grpo", "batch_size": 4, "samples_per_prompt": 3}) == 12
    assert samples_per_step({"loss": "dpo", "batch_size": 4, "samples_per_prompt": 3}) == 4
    assert [duration_text(s) for s in (None, 5, 185, 3720)] == ["—", "5s", "3m 05s", "1h 02m"]
    gens = pd.DataFrame({"split": ["train"], "completion": ["c"], "reward": [0.5], "reference": ["r"],
                         "prompt": ["p"], "terms": [{"rouge": 0.4, "fluency": 0.1}]})
    assert list(generation_table(gens).columns) == ["split", "completion", "reward", "reference", "prompt",
                                                    "r/rouge", "r/fluency"]


def test_generations_follow_the_latest_step_until_the_toggle_is_off(runs_dir) -> None:
    store = RunStore(runs_dir)
    run_id = fake_run(store, "grpo", steps=5)
    at = app("pages/train.py", run=run_id)
    assert at.toggle(key="live-gen-follow").value is True and not at.select_slider
    shown = at.dataframe[-1].value
    assert list(shown["completion"]) == ["grpo says 5"]           # the latest step
    at.toggle(key="live-gen-follow").set_value(False).run()
    assert at.select_slider(key="live-gen-step").value == 5        # the pick starts at the latest
    at.select_slider(key="live-gen-step").set_value(2).run()
    assert list(at.dataframe[-1].value["completion"]) == ["grpo says 2"]

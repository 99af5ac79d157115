"""Issue 7 in the app (AppTest): bad input in the Train form, bad run ids in links, and Resume.

Every bad input is typed into the form as a user would, then *Launch*: the page shows exactly
one st.error sentence, raises nothing, and the store holds no new run (the runner's preflight
refuses before writing). Run ids from the URL are checked, not trusted. An interrupted run
with checkpoints shows its metrics and *Resume*, which continues it to its planned steps.
"""
from __future__ import annotations

import time
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from rmcore.config import TrainConfig
from rmcore.events import StepReport
from rmcore.runner import get_runner
from rmcore.store import RunStore
from ui.text import md_escape

ROOT = Path(__file__).resolve().parents[1]
APP = str(ROOT / "app.py")
OTHER = "Other (hub id or local folder)…"


pytestmark = pytest.mark.usefixtures("fresh_runner")  # conftest.py


def app(page: str, **query) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=30)
    at.query_params.update(query)
    return at.switch_page(page).run()


def launch(at: AppTest) -> list[str]:
    """Press Launch; return the error sentences shown (the page must not raise)."""
    at.button(key="launch").click().run()
    assert not at.exception, [e.value for e in at.exception]
    return [e.value for e in at.error]


def assert_refused(errors: list[str], expected: str, runs_dir: Path) -> None:
    """One error, one sentence, holding `expected`; no run and no saved upload left behind."""
    assert len(errors) == 1, errors
    assert expected in errors[0], errors[0]
    assert "\n" not in errors[0] and errors[0].endswith("."), errors[0]
    assert RunStore(runs_dir).list_runs().empty
    uploads = runs_dir / "uploads"
    assert not uploads.exists() or not any(uploads.iterdir())


# --------------------------------------------------------------------------- the Train form
FIELD_CASES = {  # case -> (text boxes, number inputs, the sentence's distinctive part)
    "alpha NaN": ({"alpha": "nan"}, {}, "alpha must be a finite number, got nan."),
    "alpha inf": ({"alpha": "inf"}, {}, "alpha must be a finite number, got inf."),
    "alpha text": ({"alpha": "a lot"}, {}, "alpha must be a number, got 'a lot'."),
    "all weights zero": ({"alpha": "0", "beta": "0", "gamma": "0", "delta": "0"}, {}, "All reward weights are zero"),
    "steps 0": ({}, {"steps": 0}, "steps must be at least 1, got 0."),
    "batch larger than the dataset": ({}, {"batch_size": 5000}, "batch_size (5000) is larger than the dataset"),
    "max new tokens beyond the context": ({}, {"max_new_tokens": 256},
                                          "must be below the model's context length (256)"),
}


@pytest.mark.parametrize("case", list(FIELD_CASES))
def test_bad_field_is_one_error_and_no_run(case, tiny_lm_path, runs_dir) -> None:
    texts, numbers, expected = FIELD_CASES[case]
    at = app("pages/train.py")
    at.selectbox(key="cfg.backbone_choice").set_value(OTHER).run()
    at.text_input(key="cfg.backbone_custom").set_value(tiny_lm_path)  # 1 layer, 256 positions
    for name, value in texts.items():
        at.text_input(key=f"cfg.{name}").set_value(value)
    for name, value in numbers.items():
        at.number_input(key=f"cfg.{name}").set_value(value)
    assert_refused(launch(at), expected, runs_dir)
    for name, value in texts.items():  # the form keeps what the user typed, to correct it
        assert at.text_input(key=f"cfg.{name}").value == value


def test_unknown_backbone_folder_is_one_error(tmp_path, runs_dir) -> None:
    at = app("pages/train.py")
    at.selectbox(key="cfg.backbone_choice").set_value(OTHER).run()
    at.text_input(key="cfg.backbone_custom").set_value(str(tmp_path / "no-such-model"))
    assert_refused(launch(at), "no-such-model", runs_dir)


@pytest.mark.parametrize("task, expected", [
    ("no-such-task", "no-such-task"),
    ("BAD_CSV", "is a malformed CSV"),
])
def test_unknown_task_or_malformed_file_is_one_error(task, expected, tmp_path, runs_dir) -> None:
    if task == "BAD_CSV":  # a local file path typed as the task: the second row has three fields
        path = tmp_path / "bad.csv"
        path.write_text("prompt,reference\nsome document,its summary\nx,y,z\n", encoding="utf-8")
        task = str(path)
    at = app("pages/train.py")
    at.radio(key="cfg.task_source").set_value("Hub dataset").run()
    at.text_input(key="cfg.task_hub").set_value(task)
    assert_refused(launch(at), expected, runs_dir)


ROWS = "".join(f"document number {i} about things,summary {i}\n" for i in range(12))
UPLOAD_CASES = {  # file name, bytes, the sentence's distinctive part
    "malformed": ("news.csv", b"prompt,reference\n" + ROWS.encode() + b"x,y,z\n", "is a malformed CSV"),
    "empty": ("news.csv", b"", "is empty"),
    "missing columns": ("news.csv", b"title,body\n" + ROWS.encode(), "needs columns"),
    "not UTF-8": ("news.csv", b"prompt,reference\n" + ROWS.encode() + "café,\u00e9\n".encode("latin-1"),
                  "is not UTF-8"),
    "over the size limit": ("news.csv", b"prompt,reference\n" + ROWS.encode() * 2150,
                            "news.csv is 1.0 MB; uploads are limited to 1 MB."),
}


@pytest.mark.parametrize("case", list(UPLOAD_CASES))
def test_bad_upload_is_one_error_naming_the_file_and_leaves_nothing(case, runs_dir, monkeypatch) -> None:
    import ui.launch

    name, data, expected = UPLOAD_CASES[case]
    if case == "over the size limit":
        monkeypatch.setattr(ui.launch, "MAX_UPLOAD_BYTES", 2**20)  # 50 MB in the app; the check is the same
        assert 2**20 < len(data) < 1.05 * 2**20
    at = app("pages/train.py")
    at.radio(key="cfg.task_source").set_value("Upload a file").run()
    at.get("file_uploader")[0].upload(name, data, "text/csv").run()
    assert not at.exception and not at.error  # nothing is checked or saved before Launch
    errors = launch(at)
    assert_refused(errors, expected, runs_dir)
    assert name in errors[0] and str(runs_dir) not in errors[0]  # the user's file, not the saved copy


def test_upload_source_without_a_file_is_one_error(runs_dir) -> None:
    at = app("pages/train.py")
    at.radio(key="cfg.task_source").set_value("Upload a file").run()
    assert_refused(launch(at), "Choose a data file to upload", runs_dir)


def test_good_upload_launches_and_keeps_the_file(tiny_lm_path, runs_dir) -> None:
    """The same path succeeds with a well-formed file: the checks above are not refusing everything."""
    at = app("pages/train.py")
    at.selectbox(key="cfg.backbone_choice").set_value(OTHER).run()
    at.text_input(key="cfg.backbone_custom").set_value(tiny_lm_path)
    at.radio(key="cfg.task_source").set_value("Upload a file").run()
    at.get("file_uploader")[0].upload("news.csv", b"prompt,reference\n" + ROWS.encode(), "text/csv")
    for name, value in {"steps": 1, "batch_size": 2, "samples_per_prompt": 2, "max_new_tokens": 4}.items():
        at.number_input(key=f"cfg.{name}").set_value(value)
    assert launch(at) == []
    runs = RunStore(runs_dir).list_runs()
    assert len(runs) == 1
    task = Path(RunStore(runs_dir).get_run(runs["id"][0])["config"]["task"])
    assert task.parent == runs_dir / "uploads" and task.name.endswith("-news.csv") and task.is_file()


# --------------------------------------------------------------------------- run ids in links
@pytest.mark.parametrize("page, query", [("pages/train.py", {"run": "../etc"}),
                                         ("pages/compare.py", {"runs": "../etc"})])
def test_run_id_with_a_path_in_the_url_is_an_error_not_an_exception(page, query, runs_dir) -> None:
    store = RunStore(runs_dir)
    run_id = store.create_run(kind="policy", config=TrainConfig().to_dict(), name="kept")
    store.set_status(run_id, "done")
    at = app(page, **query)
    assert not at.exception
    # The page escapes the id's Markdown (tests/test_inert_text.py); it reads as typed on screen.
    assert [e.value for e in at.error] == [md_escape("Invalid run id '../etc': use letters, digits, '_', '.' and '-' only.")]
    if page == "pages/train.py":  # another run is shown, and the link is mended
        assert at.selectbox(key="train_run").value == run_id and at.query_params["run"] == run_id


# --------------------------------------------------------------------------- failed and interrupted runs
def test_failed_run_shows_message_traceback_metrics_and_why_it_cannot_resume(runs_dir) -> None:
    store = RunStore(runs_dir)
    run_id = store.create_run(kind="policy", config=TrainConfig(steps=5).to_dict(), total_steps=5)
    store.set_status(run_id, "running")
    for step in (1, 2):
        store.record_step(run_id, StepReport(step, 5, {"loss/total": 1.0 / step, "reward/total": 0.1 * step}))
    store.set_status(run_id, "failed", error="non-finite loss at step 3 (nan); try a smaller learning rate.",
                     traceback="Traceback (most recent call last):\n  File \"trainer.py\"\nTrainingError")
    at = app("pages/train.py", run=run_id)
    assert not at.exception
    assert "non-finite loss at step 3" in at.error[0].value and "TrainingError" in at.code[0].value
    assert any(m.value == "2 / 5" for m in at.metric) and at.get("plotly_chart")  # its metrics are kept
    at.button(key="resume").click().run()  # no checkpoint was recorded: the runner says so
    assert not at.exception
    assert any("has no checkpoint to resume from" in e.value for e in at.error)
    assert store.get_run(run_id)["status"] == "failed"


def test_interrupted_run_shows_resume_which_continues_to_done(tiny_lm_path, runs_dir) -> None:
    runner = get_runner(runs_dir)
    config = TrainConfig(backbone=tiny_lm_path, loss="reinforce", steps=8, batch_size=2, samples_per_prompt=2,
                         max_new_tokens=6, eval_every=0, eval_prompts=2, log_generations=2, checkpoint_every=1)
    run_id = runner.submit(config)
    deadline = time.monotonic() + 120
    while runner.store.get_run(run_id)["last_step"] < 2 and time.monotonic() < deadline:
        time.sleep(0.05)  # polling the store for the second step, not waiting on the page
    runner.stop(run_id)
    assert runner.wait(run_id, timeout=60) == "stopped"
    stopped_at = runner.store.get_run(run_id)["last_step"]
    assert 2 <= stopped_at < 8
    runner.store.set_status(run_id, "interrupted", message="The process running it stopped before it finished.")

    at = app("pages/train.py", run=run_id)
    assert not at.exception
    assert any(m.value == "interrupted" for m in at.metric) and any(m.value == f"{stopped_at} / 8" for m in at.metric)
    assert at.get("plotly_chart")  # the metrics it recorded are drawn
    assert not any(b.key == "stop" for b in at.button)  # nothing to stop: it is not running
    clicked = time.time()
    at.button(key="resume").click().run()
    assert not at.exception and not at.error
    assert runner.store.get_run(run_id)["status"] in ("queued", "preparing", "running", "done")
    deadline = time.monotonic() + 120
    while runner.store.get_run(run_id)["status"] != "done" and time.monotonic() < deadline:
        at.run()  # timed fragment reruns are not simulated: poll the page
        assert not at.exception
        time.sleep(0.3)
    at.run()
    run = runner.store.get_run(run_id)
    assert run["status"] == "done" and run["last_step"] == 8, run.get("error")
    assert any(m.value == "8 / 8" for m in at.metric) and not any(b.key == "resume" for b in at.button)
    losses = runner.store.metrics([run_id], keys=["loss/total"])
    assert losses["step"].tolist() == list(range(1, 9))  # every step once, none repeated
    assert losses.loc[losses["step"] <= 2, "time"].max() < clicked  # steps up to a checkpoint were not redone


def test_runs_page_resumes_the_runs_it_can_and_says_why_not_for_the_others(runs_dir, monkeypatch) -> None:
    import rmcore.runner

    calls = []

    def fake_train(config, on_step, should_stop, on_progress, run_dir, resume_from=None):
        calls.append(resume_from)  # the engine's resume itself is tested in test_reliability.py
        for step in range(3, config.steps + 1):
            on_step(StepReport(step, config.steps, {"loss/total": 1.0 / step}))

    monkeypatch.setitem(rmcore.runner.DEFAULT_TRAIN_FNS, "policy", fake_train)
    store = RunStore(runs_dir)
    config = TrainConfig(steps=4).to_dict()
    resumable, hopeless = (store.create_run(kind="policy", config=config, name=n, total_steps=4) for n in "ab")
    checkpoint = store.run_dir(resumable) / "checkpoint-2"
    checkpoint.mkdir(parents=True)
    (checkpoint / "trainer_state.json").write_text('{"step": 2}')
    for step in (1, 2):
        store.record_step(resumable, StepReport(step, 4, {"loss/total": 1.0 / step},
                                                checkpoint=str(checkpoint) if step == 2 else None))
    store.set_status(resumable, "interrupted", message="The process running it stopped before it finished.")
    store.set_status(hopeless, "failed", error="TrainingError: boom.")

    at = app("pages/runs.py")
    assert at.button(key="runs_resume").disabled  # nothing selected yet
    at.multiselect(key="runs_pick").set_value([resumable, hopeless]).run()
    at.button(key="runs_resume").click().run()
    assert not at.exception
    assert [i.value for i in at.info] == ["Resumed 1 run(s) from their latest checkpoint."]
    assert [e.value for e in at.error] == [f"Run {hopeless} has no checkpoint to resume from; start it again instead."]
    assert get_runner(runs_dir).wait(resumable, timeout=30) == "done"
    assert calls == [str(checkpoint)] and store.get_run(hopeless)["status"] == "failed"
    assert store.metrics([resumable])["step"].tolist() == [1, 2, 3, 4]

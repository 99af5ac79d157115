"""The runner with fake trainers: lifecycle, stop, failure, queueing and restart."""
from __future__ import annotations

import math
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import torch

from rmcore.config import RewardModelConfig, TrainConfig
from rmcore.errors import ConfigError, DataError
from rmcore.events import ProgressReport, StepReport
from rmcore.runner import OOM_HINT, Runner, get_runner, resolve_device
from rmcore.store import RunStore

CONFIG = TrainConfig(steps=5, device="cpu")


def fake_train(config, on_step, should_stop, on_progress, run_dir, *, sleep: float = 0.005,
               fail_after: int | None = None, exc: BaseException | None = None) -> None:
    """Emit one StepReport per step like a trainer; optionally raise after some steps."""
    on_progress(ProgressReport("load-data", 1.0, "Loading synth-news"))
    for step in range(1, config.steps + 1):
        if should_stop():
            return
        if fail_after is not None and step > fail_after:
            raise exc
        time.sleep(sleep)
        on_step(StepReport(step, config.steps, {"loss/total": 1.0 / step, "reward/total": 0.1 * step},
                           sample_rewards={"total": [0.1 * step] * 4}))


@pytest.fixture
def make_runner(tmp_path: Path):
    runners: list[Runner] = []

    def make(fn=fake_train, **kwargs) -> Runner:
        runner = Runner(tmp_path / "runs", train_fns={"policy": fn, "reward_model": fn}, **kwargs)
        runners.append(runner)
        return runner

    yield make
    for runner in runners:
        assert runner.shutdown(timeout=10)
        runner.store.close()


def test_submit_runs_to_done(make_runner) -> None:
    runner = make_runner()
    run_id = runner.submit(CONFIG, name="smoke")
    assert runner.wait(run_id, 10) == "done"
    run = runner.store.get_run(run_id)
    assert (run["name"], run["kind"], run["device"], run["last_step"], run["total_steps"]) == (
        "smoke", "policy", "cpu", 5, 5)
    assert run["started"] <= run["finished"] and run["message"] == ""
    metrics = runner.store.metrics([run_id])
    assert len(metrics) == 10
    assert metrics[metrics.key == "loss/total"].value.tolist() == [1.0, 0.5, 1 / 3, 0.25, 0.2]
    assert runner.store.run_dir(run_id).is_dir()
    assert not runner.is_live(run_id) and runner.queue_position(run_id) is None

    rm_id = runner.submit(RewardModelConfig(steps=3, device="cpu"))
    assert runner.wait(rm_id, 10) == "done" and runner.store.get_run(rm_id)["kind"] == "reward_model"


def test_stop_takes_effect_within_a_step(make_runner) -> None:
    runner = make_runner(lambda *a: fake_train(*a, sleep=0.02))
    run_id = runner.submit(CONFIG.replace(steps=1000))
    while runner.store.get_run(run_id)["last_step"] < 2:
        time.sleep(0.01)
    assert runner.queue_position(run_id) == 0 and runner.active()[0]["status"] == "running"
    assert runner.stop(run_id)
    step_at_stop = runner.store.get_run(run_id)["last_step"]
    assert runner.wait(run_id, 5) == "stopped"
    assert runner.store.get_run(run_id)["last_step"] <= step_at_stop + 1


def test_failure_keeps_metrics_and_runner_keeps_serving(make_runner) -> None:
    runner = make_runner(lambda *a: fake_train(*a, fail_after=3, exc=ValueError("boom\nsecond line")))
    run_id = runner.submit(CONFIG)
    assert runner.wait(run_id, 10) == "failed"
    run = runner.store.get_run(run_id)
    assert run["error"] == "ValueError: boom"
    assert "Traceback" in run["traceback"] and "second line" in run["traceback"]
    assert run["last_step"] == 3 and len(runner.store.metrics([run_id])) == 6
    assert runner.wait(runner.submit(CONFIG.replace(steps=2)), 10) == "done"  # still serving


@pytest.mark.parametrize("exc, expected", [
    (DataError("The file has no text column."), "The file has no text column."),
    (torch.cuda.OutOfMemoryError("CUDA out of memory."), "OutOfMemoryError: CUDA out of memory." + OOM_HINT),
])
def test_error_messages(make_runner, exc: BaseException, expected: str) -> None:
    runner = make_runner(lambda *a: fake_train(*a, fail_after=0, exc=exc))
    run_id = runner.submit(CONFIG)
    assert runner.wait(run_id, 10) == "failed"
    assert runner.store.get_run(run_id)["error"] == expected


def test_queue_runs_one_at_a_time(make_runner) -> None:
    gate, spans, lock = threading.Event(), [], threading.Lock()

    def gated_train(config, *args) -> None:
        gate.wait(10)
        start = time.monotonic()
        fake_train(config, *args)
        with lock:
            spans.append((start, time.monotonic()))

    runner = make_runner(gated_train, max_concurrent=1)
    run_ids = [runner.submit(CONFIG) for _ in range(5)]
    assert [runner.queue_position(r) for r in run_ids] == [0, 1, 2, 3, 4]
    assert runner.stop(run_ids[2])                  # a queued run is dropped at once
    assert runner.status(run_ids[2]) == "stopped"
    assert [runner.queue_position(r) for r in run_ids] == [0, 1, None, 2, 3]
    assert [(a["position"], a["device"]) for a in runner.active()] == [(0, "cpu"), (1, "cpu"), (2, "cpu"), (3, "cpu")]
    gate.set()
    kept = [r for r in run_ids if r != run_ids[2]]
    assert [runner.wait(r, 10) for r in kept] == ["done"] * 4
    spans.sort()
    assert len(spans) == 4
    assert all(end <= next_start for (_, end), (next_start, _) in zip(spans, spans[1:]))
    assert runner.store.get_run(run_ids[2])["started"] is None


def test_two_slots_overlap(make_runner) -> None:
    both_running = threading.Barrier(2, timeout=5)

    def meet(config, *args) -> None:
        both_running.wait()                         # times out unless two run at once
        fake_train(config, *args)

    runner = make_runner(meet, max_concurrent=2)
    run_ids = [runner.submit(CONFIG) for _ in range(2)]
    assert [runner.wait(r, 10) for r in run_ids] == ["done", "done"]


def test_progress_writes_are_throttled(make_runner) -> None:
    submitted = threading.Event()   # the worker may start before submit() has returned the id

    def chatty(config, on_step, should_stop, on_progress, run_dir) -> None:
        assert submitted.wait(5)
        started = time.monotonic()
        for i in range(200):
            on_progress(ProgressReport("build-backbone", i / 200, f"Building {i}"))
        elapsed.append(time.monotonic() - started)
        observed.append(runner.store.get_run(runner_ids[0])["message"])

    elapsed: list[float] = []

    observed: list[str] = []
    runner = make_runner(chatty)
    writes: list[str] = []
    set_status = runner.store.set_status

    def counting_set_status(run_id: str, status: str, **kwargs) -> None:
        writes.append(status)
        set_status(run_id, status, **kwargs)

    runner.store.set_status = counting_set_status
    runner_ids = [runner.submit(CONFIG)]
    submitted.set()
    assert runner.wait(runner_ids[0], 10) == "done"
    # "Starting…", the first report, then at most one more per 0.5 s window the loop spanned
    # (on a loaded machine 200 calls can take longer than one window)
    assert writes.count("preparing") <= 2 + math.ceil(elapsed[0] / 0.5)
    assert observed[0].startswith("Building ") and writes.count("preparing") < 200


def test_invalid_config_writes_nothing(make_runner) -> None:
    runner = make_runner()
    with pytest.raises(ConfigError, match="steps"):
        runner.submit(TrainConfig(steps=0))
    with pytest.raises(ConfigError):
        runner.submit({"steps": 5})
    assert runner.store.list_runs().empty and runner.active() == []


def test_new_runner_marks_leftover_runs_interrupted(make_runner, tmp_path: Path) -> None:
    store = RunStore(tmp_path / "runs")
    leftover = store.create_run(kind="policy", config={}, status="running")   # this pid, no thread
    gate = threading.Event()

    def gated_train(*args) -> None:
        gate.wait(10)
        fake_train(*args)

    first = make_runner(gated_train)
    live = first.submit(CONFIG)
    try:
        second = make_runner()                      # e.g. the app's cached runner rebuilt
        assert store.get_run(leftover)["status"] == "interrupted"
        assert store.get_run(live)["status"] in ("queued", "preparing")  # its thread waits at the gate
    finally:
        gate.set()
    assert second.wait(live, 10) == "done"
    store.close()


def test_get_runner_is_one_per_folder(tmp_path: Path) -> None:
    runner = get_runner(tmp_path / "a")
    assert get_runner(str(tmp_path / "a")) is runner and get_runner(tmp_path / "b") is not runner
    assert resolve_device("cpu") == "cpu"
    if not torch.cuda.is_available() and not torch.backends.mps.is_available():
        assert resolve_device("auto") == "cpu"
    assert torch.get_num_threads() <= max(1, os.cpu_count() - 1)   # a core left for the UI


def test_rmcore_store_and_runner_import_light() -> None:
    code = ("import sys, rmcore.runner, rmcore.store; "
            "print(sorted({'streamlit', 'pandas', 'torch', 'transformers'} & set(sys.modules)))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=Path(__file__).resolve().parents[1])
    assert out.stdout.strip() == "[]"

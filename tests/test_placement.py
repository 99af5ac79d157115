"""Device placement with fake GPU lists on CPU: queues per device, least-loaded first, one run per GPU.

torch.cuda.is_available / device_count are patched, and so are the two calls that would
touch a real GPU (claim_device, gpu_metrics); the trainer is a fake that records where and
how many runs train at once, as in test_runner.py.
"""
from __future__ import annotations

import collections
import threading
import time
from pathlib import Path

import pytest
import torch

from streamlit.testing.v1 import AppTest

from rmcore import placement
from rmcore.config import TrainConfig
from rmcore.errors import ConfigError
from rmcore.events import StepReport
from rmcore.runner import Runner
from rmcore.store import RunStore

CONFIG = TrainConfig(steps=3, device="auto")
APP = str(Path(__file__).resolve().parents[1] / "app.py")


def fake_train(config, on_step, should_stop, on_progress, run_dir, resume_from=None) -> None:
    for step in range(1, config.steps + 1):
        if should_stop():
            return
        time.sleep(0.005)
        on_step(StepReport(step, config.steps, {"loss/total": 1.0 / step}))


@pytest.fixture
def fake_gpus(monkeypatch):
    """fake_gpus(n): n visible GPUs; returns the devices claim_device was called with."""
    claimed: list[str] = []

    def patch(n: int) -> list[str]:
        monkeypatch.setattr(torch.cuda, "is_available", lambda: n > 0)
        monkeypatch.setattr(torch.cuda, "device_count", lambda: n)
        monkeypatch.setattr(placement, "claim_device", claimed.append)
        monkeypatch.setattr(placement, "gpu_metrics",
                            lambda device: {"perf/gpu_mem_gb": 1.5} if device.startswith("cuda") else {})
        return claimed

    return patch


@pytest.fixture
def make_runner(tmp_path: Path):
    runners: list[Runner] = []

    def make(fn=fake_train, **kwargs) -> Runner:
        runners.append(Runner(tmp_path / "runs", train_fns={"policy": fn, "reward_model": fn}, **kwargs))
        return runners[-1]

    yield make
    for runner in runners:
        assert runner.shutdown(timeout=10)
        runner.store.close()


class Recorder:
    """A gated fake trainer that counts the runs training at once, per device and in all."""

    def __init__(self) -> None:
        self.gate, self.lock = threading.Event(), threading.Lock()
        self.active: collections.Counter[str] = collections.Counter()
        self.peak: collections.Counter[str] = collections.Counter()
        self.peak_total, self.entered = 0, 0

    def __call__(self, config, *args, **kwargs) -> None:
        with self.lock:
            self.active[config.device] += 1
            self.entered += 1
            self.peak[config.device] = max(self.peak[config.device], self.active[config.device])
            self.peak_total = max(self.peak_total, sum(self.active.values()))
        self.gate.wait(10)
        try:
            fake_train(config, *args, **kwargs)
        finally:
            with self.lock:
                self.active[config.device] -= 1

    def wait_entered(self, n: int) -> None:
        deadline = time.monotonic() + 5
        while self.entered < n and time.monotonic() < deadline:
            time.sleep(0.01)
        assert self.entered == n


@pytest.mark.parametrize("max_concurrent", [1, 2])  # 2 slots per device still give a GPU of several one run
def test_five_runs_spread_over_three_gpus_one_at_a_time(make_runner, fake_gpus, max_concurrent) -> None:
    claimed = fake_gpus(3)
    train = Recorder()
    runner = make_runner(train, max_concurrent=max_concurrent)
    run_ids = [runner.submit(CONFIG) for _ in range(5)]
    devices = [runner.store.get_run(r)["device"] for r in run_ids]
    assert devices == ["cuda:0", "cuda:1", "cuda:2", "cuda:0", "cuda:1"]
    assert [runner.queue_position(r) for r in run_ids] == [0, 0, 0, 1, 1]
    train.wait_entered(3)                                 # one per GPU; the last two wait in their queues
    train.gate.set()
    assert [runner.wait(r, 10) for r in run_ids] == ["done"] * 5
    assert train.peak == {"cuda:0": 1, "cuda:1": 1, "cuda:2": 1} and train.peak_total == 3
    assert sorted(claimed) == sorted(devices)             # each worker claimed its own GPU
    metrics = runner.store.metrics(run_ids)
    assert set(metrics[metrics.key == "perf/gpu_mem_gb"].run_id) == set(run_ids)
    assert all(runner.store.get_run(r)["config"]["device"] == "auto" for r in run_ids)  # kept as given


def test_an_explicit_gpu_joins_that_gpus_queue(make_runner, fake_gpus) -> None:
    fake_gpus(3)
    train = Recorder()
    runner = make_runner(train)
    first = runner.submit(CONFIG)                         # cuda:0
    picked = [runner.submit(CONFIG.replace(device="cuda:2")) for _ in range(2)]
    later = [runner.submit(CONFIG) for _ in range(2)]     # loads 1, 0, 2 -> cuda:1; then 1, 1, 2 -> cuda:0
    by_id = {a["run_id"]: (a["device"], a["position"]) for a in runner.active()}
    assert [by_id[r] for r in [first, *picked, *later]] == [
        ("cuda:0", 0), ("cuda:2", 0), ("cuda:2", 1), ("cuda:1", 0), ("cuda:0", 1)]
    train.gate.set()
    assert [runner.wait(r, 10) for r in [first, *picked, *later]] == ["done"] * 5
    assert train.peak["cuda:2"] == 1


def test_a_gpu_that_is_not_there_is_one_error_and_writes_nothing(make_runner, fake_gpus) -> None:
    fake_gpus(3)
    runner = make_runner()
    with pytest.raises(ConfigError, match=r"^device 'cuda:7' is not a visible GPU: there are 3 \(cuda:0 to cuda:2\)"):
        runner.submit(CONFIG.replace(device="cuda:7"))
    with pytest.raises(ConfigError, match="cuda:7"):     # all or nothing: the good first run is not written
        runner.submit_many([CONFIG, CONFIG.replace(device="cuda:7")])
    assert runner.store.list_runs().empty and runner.active() == []
    for bad in ("gpu", "cuda:x", "cuda:-1"):
        with pytest.raises(ConfigError, match="device must be one of auto, cpu, cuda, mps or cuda:N"):
            CONFIG.replace(device=bad).validate()


def test_no_gpu_or_one_gpu_place_as_before(fake_gpus) -> None:
    fake_gpus(0)
    assert placement.place("cpu", {}) == "cpu" and placement.place("cuda", {}) == "cuda"
    assert placement.place("auto", {}) == ("mps" if torch.backends.mps.is_available() else "cpu")
    with pytest.raises(ConfigError, match="no CUDA GPU is visible"):
        placement.place("cuda:0", {})
    assert placement.device_choices() == ("auto", "cpu", "cuda", "mps")
    fake_gpus(1)
    assert [placement.place(d, {"cuda": 5}) for d in ("auto", "cuda", "cuda:0")] == ["cuda"] * 3
    assert placement.slots("cuda", 2) == 2 and placement.device_choices() == ("auto", "cpu", "cuda", "mps")
    with pytest.raises(ConfigError, match="there are 1"):
        placement.place("cuda:1", {})
    fake_gpus(3)
    assert placement.place("auto", {"cuda:0": 2, "cuda:1": 1, "cuda:2": 1}) == "cuda:1"  # tie -> lowest index
    assert placement.place("cuda:01", {}) == "cuda:1" and placement.slots("cuda:1", 2) == 1
    assert placement.device_choices()[-3:] == ("cuda:0", "cuda:1", "cuda:2")


def test_resume_goes_back_to_the_gpu_it_ran_on(make_runner, fake_gpus, tmp_path: Path) -> None:
    fake_gpus(3)
    store = RunStore(tmp_path / "runs")
    run_id = store.create_run(kind="policy", config=CONFIG.replace(steps=4).to_dict(), total_steps=4, device="cuda:2")
    folder = tmp_path / "step-000002"
    folder.mkdir()
    (folder / "trainer_state.json").write_text('{"step": 2}')
    for step in (1, 2):
        store.record_step(run_id, StepReport(step, 4, {"loss/total": 1.0}, checkpoint=str(folder) if step == 2 else None))
    store.set_status(run_id, "interrupted")
    trained_on: list[str] = []
    runner = make_runner(lambda config, *a, **k: (trained_on.append(config.device), fake_train(config, *a, **k)))
    runner.resume(run_id)
    assert runner.wait(run_id, 10) == "done" and trained_on == ["cuda:2"]
    store.close()


def test_gpu_metrics_off_cuda_are_empty_and_on_cuda_read_torch(monkeypatch) -> None:
    assert placement.gpu_metrics("cpu") == {} and placement.gpu_metrics("mps") == {}
    placement.claim_device("cpu")                         # nothing to claim, nothing raised
    monkeypatch.setattr(torch.cuda, "max_memory_allocated", lambda device=None: 2.5e9)

    def no_nvml(device=None):
        raise ModuleNotFoundError("pynvml does not seem to be installed")

    monkeypatch.setattr(torch.cuda, "utilization", no_nvml)
    assert placement.gpu_metrics("cuda:1") == {"perf/gpu_mem_gb": 2.5}
    monkeypatch.setattr(torch.cuda, "utilization", lambda device=None: 87)
    assert placement.gpu_metrics("cuda") == {"perf/gpu_mem_gb": 2.5, "perf/gpu_util": 87.0}


# --------------------------------------------------------------------------- the Train page
def train_page(**query) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=30)
    at.query_params.update(query)
    at.switch_page("pages/train.py")
    return at.run()


def recorded_run(store: RunStore, device: str, metrics: dict[str, float]) -> str:
    run_id = store.create_run(kind="policy", config=CONFIG.to_dict(), name=f"on {device}", total_steps=2, device=device)
    for step in (1, 2):
        store.record_step(run_id, StepReport(step, 2, {"loss/total": 1.0 / step,
                                                       **{k: v * step for k, v in metrics.items()}}))
    store.set_status(run_id, "done")
    return run_id


@pytest.mark.usefixtures("fresh_runner")  # conftest.py
def test_train_page_shows_the_device_and_its_gpu_figures(runs_dir) -> None:
    store = RunStore(runs_dir)
    on_gpu = recorded_run(store, "cuda:1", {"perf/gpu_mem_gb": 1.25, "perf/gpu_util": 40.0})
    on_cpu = recorded_run(store, "cpu", {})
    at = train_page(run=on_gpu)
    assert not at.exception
    assert [m.value for m in at.metric if m.label == "Device"] == ["cuda:1"]
    assert "Peak GPU memory 2.50 GB · GPU utilisation 80% (latest step)" in [c.value for c in at.caption]
    at = train_page(run=on_cpu)
    assert not at.exception
    assert [m.value for m in at.metric if m.label == "Device"] == ["cpu"]
    assert not any("Peak GPU memory" in c.value for c in at.caption)
    store.close()


@pytest.mark.usefixtures("fresh_runner")
def test_train_form_lists_each_gpu_of_several(fake_gpus) -> None:
    fake_gpus(3)
    at = train_page()                                     # no runs yet: the form is open
    assert not at.exception
    assert at.selectbox(key="cfg.device").options == ["auto", "cpu", "cuda", "mps", "cuda:0", "cuda:1", "cuda:2"]


@pytest.mark.usefixtures("fresh_runner")
def test_a_queued_run_says_which_gpus_queue_it_waits_in(runs_dir, fake_gpus) -> None:
    from rmcore.runner import get_runner  # the app's runner (ui.runtime finds the same one)

    fake_gpus(3)
    train = Recorder()
    runner = get_runner(runs_dir)
    runner.train_fns = {**runner.train_fns, "policy": train}
    run_ids = [runner.submit(CONFIG, name=f"r{i}") for i in range(4)]
    try:
        at = train_page(run=run_ids[3])
        assert not at.exception
        assert [m.value for m in at.metric if m.label == "Device"] == ["cuda:0"]
        assert [i.value for i in at.info] == ["Queued (#1 in line for cuda:0): it starts when the runs ahead of it finish."]
        links = sorted(link.proto.label for link in at.sidebar.get("page_link"))
        assert links == ["r0 · running on cuda:0", "r1 · running on cuda:1", "r2 · running on cuda:2",
                         "r3 · queued #1 on cuda:0"]
    finally:
        train.gate.set()
    assert [runner.wait(r, 10) for r in run_ids] == ["done"] * 4

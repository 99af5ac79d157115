"""Run training in background threads, one queue per device, and wire it to the run store.

The app gets one process-wide Runner (``get_runner``, wrapped in ``st.cache_resource``);
pages submit configs, stop runs and read status here, and read everything else from the
store. Nothing in this module touches Streamlit: worker threads talk to the UI only
through the SQLite store, which the pages poll.

A run's life: queued -> preparing (thread started; trainer progress messages) -> running
(first step recorded) -> done | stopped | failed, or interrupted (``interrupt``: ended at
once, its step unfinished). A run whose thread is gone without a final status (the process
died) is marked interrupted by the next Runner on that store. An ended policy run can be
resumed from its latest checkpoint (rmcore.resume).

How a run ended is also kept in memory (``outcome``): when the store cannot take the final
status (a full disk, the database deleted under the run), the CLI following the run still
learns that it failed and why, instead of polling a "running" row forever.

Bad input never reaches the store: submit() runs the trainer's preflight checks (config,
device, data, context length, safetensors weights) before it writes anything. Which device a
run trains on (the least-loaded GPU of several) is rmcore.placement's job; what a run's thread
does (train, write steps, record how it ended) is rmcore.run_worker's.
"""
from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

from rmcore import placement
from rmcore.config import RewardModelConfig, TrainConfig
from rmcore.errors import ConfigError, StoreError
from rmcore.errors import DISK_FULL, OOM_HINT, TrainingError, failure_message  # noqa: F401  (re-exported)
from rmcore.placement import DeviceQueues, resolve_device  # noqa: F401  (re-exported)
from rmcore.preflight import preflight
from rmcore.resume import RESUMABLE_STATUSES, resume_plan
# re-exported; monkeypatch PROGRESS_INTERVAL_S and disk_full in rmcore.run_worker, which reads them
from rmcore.run_worker import DEFAULT_TRAIN_FNS, PROGRESS_INTERVAL_S, TrainFn, disk_full  # noqa: F401  (re-exported)
from rmcore.run_worker import Job, work
from rmcore.store import TERMINAL_STATUSES, RunStore, default_runs_dir, validate_run_id

# Run ids owned by live runner threads of this process, across Runner instances: when the
# app's cached runner is rebuilt, the old runner's threads run on, and the new one must not
# mark their runs interrupted.
_LIVE_IDS: set[str] = set()
_LIVE_LOCK = threading.Lock()


class Runner:
    """Queue, start, stop and watch training runs; one per GPU of several, else max_concurrent per device."""

    def __init__(self, runs_dir: str | Path | None = None, *, max_concurrent: int = 1,
                 train_fns: dict[str, TrainFn] | None = None) -> None:
        if max_concurrent < 1:
            raise ConfigError(f"max_concurrent must be at least 1, got {max_concurrent}.")
        self.store = RunStore(runs_dir)
        self.train_fns = {**DEFAULT_TRAIN_FNS, **(train_fns or {})}
        self._lock = threading.Lock()
        self._resume_lock = threading.Lock()
        self._jobs: dict[str, Job] = {}  # queued or running in this runner
        self._ended: dict[str, tuple[str, str | None]] = {}  # run id -> (status, error), as its thread saw it
        self._queues = DeviceQueues(max_concurrent)
        placement.leave_a_core_for_the_ui()
        with _LIVE_LOCK:
            live = set(_LIVE_IDS)
        self.store.mark_interrupted(except_ids=live)

    # --- control

    def submit(self, config: TrainConfig | RewardModelConfig, name: str = "") -> str:
        """Check (preflight), record the run as queued, and start it when its device has a free slot."""
        kind = self._kind(config)
        preflight(config, self.store.runs_dir)  # before any write: bad input leaves the store as it was
        return self._record_and_enqueue(config, kind, name)

    def submit_many(self, configs: list[TrainConfig | RewardModelConfig],
                    names: list[str] | None = None) -> list[str]:
        """Submit several runs (e.g. "compare losses") all or nothing: every config passes its
        checks before the first run is written."""
        names = names if names is not None else [""] * len(configs)
        if len(names) != len(configs):
            raise ConfigError(f"Got {len(configs)} configs but {len(names)} names.")
        kinds = [self._kind(config) for config in configs]
        for config in configs:
            preflight(config, self.store.runs_dir)
        return [self._record_and_enqueue(c, k, n) for c, k, n in zip(configs, kinds, names)]

    def _kind(self, config: TrainConfig | RewardModelConfig) -> str:
        if isinstance(config, TrainConfig):
            kind = "policy"
        elif isinstance(config, RewardModelConfig):
            kind = "reward_model"
        else:
            raise ConfigError(f"A run needs a TrainConfig or RewardModelConfig, got {type(config).__name__}.")
        if kind not in self.train_fns:
            raise ConfigError(f"No trainer for runs of kind {kind!r}.")
        return kind

    def _record_and_enqueue(self, config: TrainConfig | RewardModelConfig, kind: str, name: str) -> str:
        """The store keeps the device as given ("auto") beside the one it was placed on, and the
        trainer gets that device, so "auto" on several GPUs trains where it was queued; the rest
        of the config is stored as the run trains it (TrainConfig.resolved: the algorithm's own
        reduction and KL placement in place of "auto")."""
        config = config.resolved()
        with self._lock:  # place, record and queue as one step (DeviceQueues)
            device = self._queues.place(config.device)
            run_id = self.store.create_run(kind=kind, config=config.to_dict(), name=name or config.name,
                                           total_steps=config.steps, device=device)
            self._enqueue(Job(run_id, kind, config.replace(device=device), device))
        return run_id

    def resume(self, run_id: str) -> str:
        """Queue an interrupted, failed or stopped policy run again from its latest checkpoint.

        The run keeps its id, config and the metrics up to the checkpoint; anything it
        recorded after the checkpoint is deleted (the resumed run records those steps again,
        identically), and it trains on to its planned step count. ConfigError, with nothing
        changed, when the run is live or done, is a reward-model run, or has no usable
        checkpoint before its last step.
        """
        with self._resume_lock:  # two tabs clicking Resume at once: the second sees it live
            return self._resume(run_id)

    def _resume(self, run_id: str) -> str:
        run, config, step, checkpoint = resume_plan(self.store, run_id, live=self.is_live(run_id))
        preflight(config, self.store.runs_dir)  # the data or backbone may have gone since the run started
        with self._lock:
            device = self._resume_device(run["device"], config.device)
            self.store.reopen(run_id, step, message=f"Resuming from the checkpoint at step {step}…",
                              from_statuses=RESUMABLE_STATUSES)
            self._enqueue(Job(run_id, "policy", config.replace(device=device), device,
                               resume_from=checkpoint, last_step=step))
        return run_id

    def _resume_device(self, recorded: str | None, requested: str) -> str:
        """The device the run was on, so the store's device stays true (reopen keeps it); its
        config's choice again when that device is gone (fewer GPUs now). Call with self._lock held."""
        try:
            return self._queues.place(recorded or requested)
        except ConfigError:
            return self._queues.place(requested)

    def _enqueue(self, job: Job) -> None:
        """Call with self._lock held."""
        with _LIVE_LOCK:
            _LIVE_IDS.add(job.run_id)
        self._jobs[job.run_id] = job
        self._queues.push(job)
        self._start_ready(job.device)

    def stop(self, run_id: str) -> bool:
        """Ask a run to stop; a queued run is dropped at once. False if it is not live here."""
        validate_run_id(run_id)
        with self._lock:
            job = self._jobs.get(run_id)
            if job is None:
                return False
            job.stop_event.set()
            queued = self._queues.drop(job)
            if queued:
                del self._jobs[run_id]
        if queued:
            self.store.set_status(run_id, "stopped", message="Stopped before it started.")
            _forget(run_id)
        return True

    def interrupt(self, run_id: str, message: str) -> bool:
        """End a run now, without waiting for its step to finish: status interrupted.

        A thread cannot be killed, so it runs on to the end of its step, then stops and
        writes nothing more (abandoned); a process that exits (the CLI) takes it along. The
        last checkpoint is what a resume starts from. False if the run is not live here.
        """
        validate_run_id(run_id)
        with self._lock:
            job = self._jobs.get(run_id)
            if job is None:
                return False
            job.abandoned = True
            job.stop_event.set()
            if self._queues.drop(job):
                del self._jobs[run_id]
                _forget(run_id)
            self._ended[run_id] = ("interrupted", None)
        self.store.set_status(run_id, "interrupted", message=message)
        return True

    def stop_all(self) -> None:
        with self._lock:
            run_ids = list(self._jobs)
        for run_id in run_ids:
            self.stop(run_id)

    def shutdown(self, timeout: float = 10.0) -> bool:
        """Stop every run and wait up to timeout seconds; True if all threads ended."""
        self.stop_all()
        deadline = time.monotonic() + timeout
        with self._lock:
            threads = [job.thread for job in self._jobs.values() if job.thread is not None]
        for thread in threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        return not any(thread.is_alive() for thread in threads)

    # --- status

    def status(self, run_id: str) -> str:
        return self.store.get_run(run_id)["status"]

    def is_live(self, run_id: str) -> bool:
        with self._lock:
            return run_id in self._jobs

    def queue_position(self, run_id: str) -> int | None:
        """0 while it runs, 1 for the next in its device's queue, None if not live here."""
        with self._lock:
            job = self._jobs.get(run_id)
            return None if job is None else self._queues.position(job)

    def active(self) -> list[dict[str, Any]]:
        """Live runs for the sidebar: run_id, status, device, position (0 = running)."""
        with self._lock:
            return [{"run_id": job.run_id, "status": job.status, "device": job.device,
                     "position": self._queues.position(job)} for job in self._jobs.values()]

    def outcome(self, run_id: str) -> tuple[str, str | None] | None:
        """(status, error) of a run that ended in this runner, as its thread saw it; else None.

        The store says the same unless it could not be written; then this is the truth."""
        with self._lock:
            return self._ended.get(run_id)

    def wait(self, run_id: str, timeout: float = 60.0) -> str:
        """Block until the run reaches a terminal status or timeout; return the status then.

        A run of this runner whose store cannot be read (deleted, damaged) is waited on
        through its thread's outcome; any other StoreError is raised."""
        deadline = time.monotonic() + timeout
        while True:
            ended = self.outcome(run_id)
            if ended is not None:
                return ended[0]
            try:
                status = self.status(run_id)
            except StoreError:
                if not self.is_live(run_id):
                    raise
                status = "running"
            if status in TERMINAL_STATUSES or time.monotonic() >= deadline:
                return status
            time.sleep(0.02)

    # --- workers

    def _start_ready(self, device: str) -> None:
        """Start queued jobs while the device has free slots; call with self._lock held."""
        for job in self._queues.ready(device):
            job.status = "preparing"
            job.thread = threading.Thread(target=self._work, args=(job,), daemon=True,
                                          name=f"rmcore-run-{job.run_id}")
            job.thread.start()

    def _work(self, job: Job) -> None:
        """Thread target: rmcore.run_worker trains and records the end; _finish frees the slot."""
        work(job, self.store, self.train_fns, self._finish)

    def _finish(self, job: Job, ended: tuple[str, str | None]) -> None:
        """The run's thread is done with it: keep how it ended, start the next on its device."""
        with self._lock:
            self._ended[job.run_id] = ended
            self._queues.finish(job)
            self._jobs.pop(job.run_id, None)
            self._start_ready(job.device)
        _forget(job.run_id)


def _forget(run_id: str) -> None:
    with _LIVE_LOCK:
        _LIVE_IDS.discard(run_id)


_RUNNERS: dict[Path, Runner] = {}
_RUNNERS_LOCK = threading.Lock()


def get_runner(runs_dir: str | Path | None = None) -> Runner:
    """The process-wide Runner for a runs folder (default: default_runs_dir())."""
    key = Path(runs_dir if runs_dir is not None else default_runs_dir()).resolve()
    with _RUNNERS_LOCK:
        if key not in _RUNNERS:
            _RUNNERS[key] = Runner(key)
        return _RUNNERS[key]

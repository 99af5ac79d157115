"""The worker side of a run: what one runner thread does, from "Starting…" to its final status.

rmcore.runner decides when a run starts (queues, slots, stop, interrupt); this module is the
thread body it starts: call the trainer with callbacks that write progress and steps to the
store, turn whatever the trainer raised into one failure sentence, and record how the run
ended, which the runner also keeps in memory (``Runner.outcome``) for when the store cannot
take it. It holds no lock and no queue: the runner's ``on_end`` does that bookkeeping.

The default trainers are imported inside their wrappers: transformers and torch load only
when a run starts, so importing the runner (the app, the CLI) stays light.
"""
from __future__ import annotations

import dataclasses
import shutil
import threading
import time
import traceback as traceback_module
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Mapping

from rmcore import placement
from rmcore.config import RewardModelConfig, TrainConfig
from rmcore.errors import DISK_FULL, TrainingError, failure_message
from rmcore.events import ProgressReport, StepReport

if TYPE_CHECKING:
    from rmcore.store import RunStore

# kind -> fn(config, on_step, should_stop, on_progress, run_dir); the trainer's return value is ignored.
TrainFn = Callable[..., Any]
PROGRESS_INTERVAL_S = 0.5  # at most 2 progress writes per second per run


def _train_policy(config: TrainConfig, on_step, should_stop, on_progress, run_dir: Path,
                  resume_from: str | None = None) -> Any:
    from rmcore.run_refs import resolved_config
    from rmcore.trainer import train  # heavy (transformers); only when a run starts

    config = resolved_config(config, run_dir.parent)  # the trainer sees folders, never run ids
    return train(config, on_step=on_step, should_stop=should_stop, on_progress=on_progress,
                 run_dir=run_dir, resume_from=resume_from)


def _train_reward_model(config: RewardModelConfig, on_step, should_stop, on_progress,
                        run_dir: Path) -> Any:
    from rmcore.rm_trainer import train_reward_model
    return train_reward_model(config, on_step=on_step, should_stop=should_stop,
                              on_progress=on_progress, run_dir=run_dir)


DEFAULT_TRAIN_FNS: dict[str, TrainFn] = {"policy": _train_policy, "reward_model": _train_reward_model}


@dataclass
class Job:
    """One run queued or running in a Runner; its thread updates status and last_step."""

    run_id: str
    kind: str
    config: TrainConfig | RewardModelConfig
    device: str
    status: str = "queued"
    resume_from: str | None = None
    last_step: int = 0
    stop_event: threading.Event = field(default_factory=threading.Event)
    thread: threading.Thread | None = None
    abandoned: bool = False  # interrupt(): the thread may run on to its step's end, but writes nothing


def work(job: Job, store: RunStore, train_fns: Mapping[str, TrainFn],
         on_end: Callable[[Job, tuple[str, str | None]], None]) -> None:
    """Thread body: train, record how it ended, then on_end(job, (status, error)) whatever happened.

    Never lets an exception of the trainer escape: the app must keep serving.
    """
    run_id = job.run_id
    last_progress = {"time": 0.0, "stage": ""}

    def on_progress(report: ProgressReport) -> None:
        now = time.monotonic()
        if report.stage == last_progress["stage"] and now - last_progress["time"] < PROGRESS_INTERVAL_S:
            return
        last_progress.update(time=now, stage=report.stage)
        store.set_status(run_id, "preparing", message=report.message)

    def on_step(report: StepReport) -> None:
        if job.abandoned:  # interrupted: end the trainer at its next report, writing nothing
            raise TrainingError("interrupted")
        if gpu := placement.gpu_metrics(job.device):  # here, not in the trainers: they know no device queue
            report = dataclasses.replace(report, metrics={**report.metrics, **gpu})
        store.record_step(run_id, report)
        job.status, job.last_step = "running", int(report.step)

    final, error, trace = "done", None, None
    try:
        store.set_status(run_id, "preparing", message="Starting…")
        placement.claim_device(job.device)
        run_dir = store.run_dir(run_id)
        run_dir.mkdir(parents=True, exist_ok=True)
        resume = {"resume_from": job.resume_from} if job.resume_from else {}
        train_fns[job.kind](job.config, on_step, job.stop_event.is_set, on_progress, run_dir, **resume)
        final = "stopped" if job.stop_event.is_set() else "done"
    except BaseException as exc:  # the app must keep serving whatever the trainer raised
        final, error, trace = "failed", failure_message(exc, job.last_step + 1), traceback_module.format_exc()
        if disk_full(store.runs_dir):  # torch's and safetensors' own words for it are cryptic
            error = f"{DISK_FULL.format(path=store.runs_dir)} free some space, then resume the run."
    finally:
        on_end(job, ("interrupted", None) if job.abandoned else _record_end(store, run_id, final, error, trace))


def _record_end(store: RunStore, run_id: str, status: str, error: str | None,
                trace: str | None) -> tuple[str, str | None]:
    """Write how the run ended; (status, error) as it really ended, for Runner.outcome.

    When the store cannot take it (the disk is full, the database was deleted), the run
    failed, whatever the trainer did: what it recorded is not all in the store.
    """
    try:
        store.set_status(run_id, status, message="" if error is None else None, error=error, traceback=trace)
        return status, error
    except Exception as exc:
        why = failure_message(exc)
        if error in (None, why) or (_says_disk_full(error) and _says_disk_full(why)):
            return "failed", error or why  # a full disk explains both
        return "failed", f"{error} It could not be recorded: {why}"


def _says_disk_full(text: str) -> bool:
    return text.startswith(DISK_FULL.split("{")[0]) and " is full;" in text


def disk_full(path: Path, below: int = 64 * 2**20) -> bool:
    """Less than `below` bytes free where the run writes: the likely cause of a failed save."""
    try:
        return shutil.disk_usage(path).free < below
    except OSError:
        return False

"""Resume: whether an ended run can continue, and from which checkpoint.

An interrupted, failed or stopped policy run with a checkpoint can be resumed: the same run
id is queued again and continues from its latest checkpoint to its planned steps. This
module only reads the store and the checkpoints on disk; the runner re-queues the run.

Reopening a run deletes what it recorded after the checkpoint, so the checkpoint is checked
here first (rmcore.checkpoints.checkpoint_problem): a damaged newest one falls back to the
newest intact one, and with none intact the resume is refused with nothing changed.
"""
from __future__ import annotations

from typing import Any

from rmcore.checkpoints import checkpoint_problem
from rmcore.config import TrainConfig
from rmcore.errors import ConfigError
from rmcore.store import ACTIVE_STATUSES, RunStore

RESUMABLE_STATUSES = ("interrupted", "failed", "stopped")


def resume_plan(store: RunStore, run_id: str, *, live: bool) -> tuple[dict[str, Any], TrainConfig, int, str]:
    """(run row, config, step, checkpoint folder) a resume of run_id continues from.

    ConfigError, with nothing changed, when the run is live (here: ``live``) or active or
    done, is a reward-model run, or has no usable checkpoint before its last step.
    """
    run = store.get_run(run_id)
    status = run["status"]
    if live or status in ACTIVE_STATUSES:
        raise ConfigError(f"Run {run_id} is {status}; only a run that has ended can be resumed.")
    if status not in RESUMABLE_STATUSES:
        raise ConfigError(f"Run {run_id} is {status}; only interrupted, failed or stopped runs can be resumed.")
    if run["kind"] != "policy":
        raise ConfigError(f"Run {run_id} is a reward-model run; those cannot be resumed, start a new one.")
    config = TrainConfig.from_dict(run["config"])
    step, checkpoint = resume_point(store, run_id, int(run["last_step"] or 0))
    if step >= config.steps:
        raise ConfigError(f"Run {run_id} already reached its last step ({config.steps}); nothing to resume.")
    return run, config, step, checkpoint


def resume_point(store: RunStore, run_id: str, last_step: int) -> tuple[int, str]:
    """(step, folder) of the newest recorded checkpoint that is whole on disk.

    The store is the source of truth: a checkpoint written but not yet recorded when the
    process died may be half-saved. Older recorded ones may have been pruned from disk;
    one that is there but damaged is named in the refusal when no other is usable.
    """
    damaged = []
    for step, path in reversed(store.checkpoints(run_id)):
        if step > last_step:
            continue
        problem = checkpoint_problem(path, step)
        if problem is None:
            return step, path
        if not problem.endswith("is missing"):  # pruned: the usual fate of older checkpoints
            damaged.append(problem)
    if damaged:
        raise ConfigError(f"Run {run_id} has no intact checkpoint to resume from ({damaged[0]}); "
                          "start it again instead.")
    raise ConfigError(f"Run {run_id} has no checkpoint to resume from; start it again instead.")

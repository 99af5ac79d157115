"""Resume: whether an ended run can continue, and from which checkpoint.

An interrupted, failed or stopped policy run with a checkpoint can be resumed: the same run
id is queued again and continues from its latest checkpoint to its planned steps. This
module only reads the store and the checkpoints on disk; the runner re-queues the run.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

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
    """(step, folder) of the newest recorded checkpoint that is complete on disk.

    The store is the source of truth: a checkpoint written but not yet recorded when the
    process died may be half-saved. Older recorded ones may have been pruned from disk.
    """
    for step, path in reversed(store.checkpoints(run_id)):
        state = Path(path) / "trainer_state.json"
        if step <= last_step and state.is_file():
            return int(json.loads(state.read_text())["step"]), path
    raise ConfigError(f"Run {run_id} has no checkpoint to resume from; start it again instead.")

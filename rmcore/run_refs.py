"""Run ids become folders here, before a trainer starts, so that no trainer reads the run store.

A policy's δ term may name a reward model by its run id; the runner (rmcore.runner), the
public ``rmcore.train`` and the preflight resolve it to that run's latest checkpoint folder
with ``resolved_config``. The trainers (rmcore.trainer, rmcore.rm_trainer) then see folders only.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from rmcore.errors import ConfigError
from rmcore.rm_eval import checkpoint_folder, load_scorer
from rmcore.store import RunStore, default_runs_dir, validate_run_id


def resolve_reward_model(ref: str, runs_dir: str | Path | None = None) -> Path:
    """The checkpoint folder named by ``ref``: a folder, or a reward-model run's latest checkpoint."""
    ref = str(ref).strip()
    if not ref or Path(ref).expanduser().is_dir():
        return checkpoint_folder(ref)
    runs = Path(runs_dir) if runs_dir is not None else default_runs_dir()
    try:
        validate_run_id(ref)
        run = RunStore(runs).get_run(ref) if (runs / "rmcore.db").is_file() else None
    except ConfigError:
        run = None
    if run is None:
        raise ConfigError(f"Reward model {ref!r} is neither a checkpoint folder nor a run id in {runs}.")
    if run["kind"] != "reward_model":
        raise ConfigError(f"Run {ref} is a {run['kind']} run, not a reward model.")
    checkpoint = RunStore(runs).latest_checkpoint(ref)
    if checkpoint is None:
        raise ConfigError(f"Reward-model run {ref} has no checkpoint yet (it is {run['status']}); "
                          "one is saved when it finishes or is stopped.")
    return Path(checkpoint)


def load_reward_model_scorer(ref: str, *, device: Any, trust_remote_code: bool = False,
                             runs_dir: str | Path | None = None, batch_size: int = 16,
                             dtype: torch.dtype = torch.float32):
    """rmcore.rm_eval.load_scorer of a run id's latest checkpoint or of a folder."""
    return load_scorer(resolve_reward_model(ref, runs_dir), device=device, trust_remote_code=trust_remote_code,
                       batch_size=batch_size, dtype=dtype)


def resolved_config(config: Any, runs_dir: str | Path | None = None) -> Any:
    """A TrainConfig whose δ reward model, given as a run id, is replaced by its checkpoint folder
    (the config saved with the run keeps the id); any other config unchanged."""
    if getattr(config, "delta", 0) == 0 or not getattr(config, "reward_model", ""):
        return config
    return config.replace(reward_model=str(resolve_reward_model(config.reward_model, runs_dir)))

"""Launch from the Train form: check everything first, then queue, all or nothing.

Form values -> TrainConfig (weights parsed, fields validated, then the upload saved) ->
``Runner.submit`` or ``submit_many``, whose preflight reads the data and the model's shape
before any run is written. Every problem is an RmcoreError with one sentence for st.error;
a refused launch leaves the store as it was and deletes the upload it saved for it.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from rmcore.config import TrainConfig
from rmcore.errors import ConfigError, RmcoreError
from rmcore.safety import MAX_UPLOAD_BYTES, save_upload
from ui.forms import WEIGHTS, PendingUpload, parse_number

NO_UPLOAD = "Choose a data file to upload (CSV, JSONL, JSON or Parquet), or pick another task source."
NO_LOSSES = "Pick at least one loss under 'Compare losses' to launch one run per loss."


def form_config(values: dict[str, Any]) -> TrainConfig:
    """The form's values as a validated config; an upload's file name stands in for its task.

    Field checks come before the upload is saved, so a bad field never writes a file.
    """
    values = dict(values)
    for name in WEIGHTS:
        values[name] = parse_number(name, values[name])
    task = values.get("task")
    if task is None:
        raise ConfigError(NO_UPLOAD)
    if isinstance(task, PendingUpload):
        values["task"] = task.name
    return TrainConfig.from_dict(values).validate()


def launch_runs(values: dict[str, Any], uploads_dir: Path, losses: list[str] | None = None) -> list[str]:
    """Queue the form's run, or one run per loss in `losses` (all or nothing); return their ids.

    Raises RmcoreError (one sentence) with nothing written: the runner's preflight refuses
    bad data, an unknown model or task, a batch larger than the dataset, too many new tokens
    for the context; an upload saved for this launch is deleted again, and errors about it
    name the file the user chose, not the saved copy.
    """
    from rmcore.algorithms import POLICY_LOSSES

    if losses is not None and not losses:
        raise ConfigError(NO_LOSSES)
    config = form_config(values)
    upload, saved = values.get("task"), None
    if isinstance(upload, PendingUpload):
        existing = set(uploads_dir.iterdir()) if uploads_dir.is_dir() else set()
        saved = save_upload(upload.data, upload.name, uploads_dir, max_bytes=MAX_UPLOAD_BYTES)
        config = config.replace(task=str(saved))
    try:
        if losses is None:
            return submit_runs([config], [config.name])
        configs = [config.replace(loss=loss) for loss in losses]
        return submit_runs(configs, [f"{config.name} · {POLICY_LOSSES[c.loss].label}" if config.name else ""
                                     for c in configs])
    except RmcoreError as err:
        if saved is None:
            raise
        if saved not in existing:  # another run may use the same file (same bytes, same name)
            saved.unlink(missing_ok=True)
        raise type(err)(str(err).replace(str(saved), upload.name)) from None


def submit_runs(configs: list, names: list[str]) -> list[str]:
    """Queue one run per config, all or nothing (Runner.submit_many): the Reward model page's
    launch, and the end of launch_runs. Raises RmcoreError with nothing written."""
    from ui.runtime import runner

    if not configs:
        raise ConfigError(NO_LOSSES)
    if len(configs) == 1:
        return [runner().submit(configs[0], name=names[0])]
    return runner().submit_many(configs, names)

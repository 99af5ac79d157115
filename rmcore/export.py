"""Export a run from the store: its config, metrics, per-sample rewards and generations.

Flat files a user can open elsewhere (CSV for spreadsheets, Parquet for pandas/polars),
and the same files zipped in memory for the app's download button.
"""
from __future__ import annotations

import io
import json
import tempfile
import zipfile
from pathlib import Path
from typing import TYPE_CHECKING

from rmcore.errors import ConfigError
from rmcore.safety import redact_secrets

if TYPE_CHECKING:
    from rmcore.store import RunStore

EXPORT_FORMATS = ("csv", "parquet")


def export_run(store: "RunStore", run_id: str, fmt: str, out_dir: Path | None = None) -> list[Path]:
    """Write run_config.json and metrics / sample_rewards / generations as csv or parquet."""
    if fmt not in EXPORT_FORMATS:
        raise ConfigError(f"Export format must be one of {', '.join(EXPORT_FORMATS)}; got {fmt!r}.")
    run = store.get_run(run_id)
    out = Path(out_dir) if out_dir is not None else store.run_dir(run_id) / "export"
    out.mkdir(parents=True, exist_ok=True)
    config_path = out / "run_config.json"
    # Runs are redacted when written; this catches rows written before that (older stores).
    config_path.write_text(json.dumps(redact_secrets(run), indent=2, default=str))
    generations = store.generations(run_id)
    generations["terms"] = [json.dumps(t) for t in generations["terms"]]  # flat files need text
    tables = {"metrics": store.metrics([run_id]),
              "sample_rewards": store.all_sample_rewards(run_id),
              "generations": generations}
    paths = [config_path]
    for table, frame in tables.items():
        path = out / f"{table}.{fmt}"
        if fmt == "csv":
            frame.to_csv(path, index=False)
        else:
            frame.to_parquet(path, index=False)
        paths.append(path)
    return paths


def export_zip(store: "RunStore", run_id: str, fmt: str) -> bytes:
    """The export files zipped in memory, for a download button."""
    buffer = io.BytesIO()
    with tempfile.TemporaryDirectory() as tmp, zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as zf:
        for path in export_run(store, run_id, fmt, Path(tmp)):
            zf.write(path, arcname=f"{run_id}/{path.name}")
    return buffer.getvalue()

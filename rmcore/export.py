"""Export a run from the store: its config, metrics, per-sample rewards and generations.

Flat files a user can open elsewhere (CSV for spreadsheets, Parquet for pandas/polars),
and the same files zipped in memory for the app's download button. Everything comes from the
store; files are written beside their name and moved onto it, so a link planted in the export
folder is replaced, never written through, and the default folder must be the run's own
(rmcore.store_files).
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
from rmcore.store_files import own_subfolder, write_replacing

if TYPE_CHECKING:
    import pandas as pd

EXPORT_FORMATS = ("csv", "parquet")


def export_run(store, run_id: str, fmt: str, out_dir: Path | None = None) -> list[Path]:
    """Write run_config.json and metrics / sample_rewards / generations as csv or parquet.

    store: a rmcore.store.RunStore, not imported here (rmcore.store imports this module)."""
    if fmt not in EXPORT_FORMATS:
        raise ConfigError(f"Export format must be one of {', '.join(EXPORT_FORMATS)}; got {fmt!r}.")
    run = store.get_run(run_id)
    if out_dir is None:
        out = own_subfolder(store.run_dir(run_id), "export")
    else:
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
    generations = store.generations(run_id)
    generations["terms"] = [json.dumps(t) for t in generations["terms"]]  # flat files need text
    tables = {"metrics": store.metrics([run_id]),
              "sample_rewards": store.all_sample_rewards(run_id),
              "generations": generations}
    # Runs are redacted when written; this catches rows written before that (older stores).
    config_text = json.dumps(redact_secrets(run), indent=2, default=str)
    paths = [write_replacing(out / "run_config.json", lambda tmp: tmp.write_text(config_text))]
    for table, frame in tables.items():
        paths.append(write_replacing(out / f"{table}.{fmt}", _table_writer(frame, fmt)))
    return paths


def _table_writer(frame: "pd.DataFrame", fmt: str):
    def write(path: Path) -> None:
        if fmt == "csv":
            frame.to_csv(path, index=False)
        else:
            frame.to_parquet(path, index=False)
    return write


def export_zip(store: "RunStore", run_id: str, fmt: str) -> bytes:
    """The export files zipped in memory, for a download button."""
    buffer = io.BytesIO()
    with tempfile.TemporaryDirectory() as tmp, zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as zf:
        for path in export_run(store, run_id, fmt, Path(tmp)):
            zf.write(path, arcname=f"{run_id}/{path.name}")
    return buffer.getvalue()

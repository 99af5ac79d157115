"""Table helpers for the app: pure functions of DataFrames and configs, no Plotly, no
Streamlit (rmcore.viz draws the figures).

Input frames follow the store: metrics are long ``[run_id, step, key, value, time]``.
"""
from __future__ import annotations

from typing import Any, Mapping

import numpy as np
import pandas as pd

from rmcore.metrics import lower_is_better


def distribution_table(values_by_run: Mapping[str, np.ndarray]) -> pd.DataFrame:
    """One row per run (same keys, same order): samples, mean, std (population), min,
    median and max of its finite values; NaN statistics for a run with none."""
    rows = []
    for label, values in values_by_run.items():
        finite = np.asarray(values, dtype=float)
        finite = finite[np.isfinite(finite)]
        stats = ((finite.mean(), finite.std(), finite.min(), np.median(finite), finite.max())
                 if len(finite) else (np.nan,) * 5)
        rows.append({"run": str(label), "samples": len(finite),
                     **dict(zip(("mean", "std", "min", "median", "max"), map(float, stats)))})
    return pd.DataFrame(rows, columns=["run", "samples", "mean", "std", "min", "median", "max"]).set_index("run")


def config_diff(configs: Mapping[str, Mapping[str, Any]]) -> pd.DataFrame:
    """Side-by-side configs: one row per field, one column per run, and ``differs`` True
    where the runs do not all agree (a field missing from a run counts as different).
    Cells are display strings so mixed types render in one table."""
    run_ids = list(configs)
    fields = sorted({name for cfg in configs.values() for name in cfg})
    missing = object()
    rows = []
    for name in fields:
        raw = [_resolved(name, configs[r].get(name, missing), configs[r]) for r in run_ids]
        differs = any(v is missing or v != raw[0] for v in raw[1:]) or (raw[0] is missing and len(raw) > 1)
        cells = {r: _fmt(v, missing) for r, v in zip(run_ids, raw)}
        rows.append({"field": name, **cells, "differs": differs})
    return pd.DataFrame(rows, columns=["field", *run_ids, "differs"]).set_index("field")


def _resolved(name: str, value: Any, config: Mapping[str, Any]) -> Any:
    """What the trainer used where the config says "the default": a reward-model run's margin
    -1 is its loss's own (1 for hinge and triplet), and the table says both."""
    from rmcore.losses.registry import REWARD_MODEL_LOSSES
    from rmcore.rm_family import MARGIN_DEFAULT

    entry = REWARD_MODEL_LOSSES.get(config.get("loss"))
    if name == "margin" and value == MARGIN_DEFAULT and entry is not None:
        return f"{entry.default('margin'):g} (the loss's own)"
    return value


def _fmt(value: Any, missing: object) -> str:
    if value is missing:
        return "—"
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def final_and_best(df: pd.DataFrame, keys: list[str] | None = None) -> pd.DataFrame:
    """Per run and metric: the value at the last step, the best value and its step.

    "Best" is the minimum for losses, KL, step time and self-BLEU, the maximum otherwise
    (rmcore.metrics.lower_is_better); ties go to the earliest step. The store's
    RunStore.final_and_best computes the same in SQL without loading the rows.
    df: long metrics -> [run_id, key, final, best, best_step, last_step].
    """
    rows = df if keys is None else df[df["key"].isin(keys)]
    out = []
    for (run_id, key), group in rows.dropna(subset=["value"]).groupby(["run_id", "key"], sort=False):
        group = group.sort_values("step")
        best_at = group["value"].idxmin() if lower_is_better(key) else group["value"].idxmax()
        out.append({"run_id": run_id, "key": key, "final": float(group["value"].iloc[-1]),
                    "best": float(group.at[best_at, "value"]), "best_step": int(group.at[best_at, "step"]),
                    "last_step": int(group["step"].iloc[-1])})
    return pd.DataFrame(out, columns=["run_id", "key", "final", "best", "best_step", "last_step"])


def eta_seconds(last_step: int, total_steps: int, elapsed_s: float) -> float | None:
    """Time left at the mean pace so far: elapsed / done × remaining; None before step 1."""
    if last_step <= 0 or total_steps <= 0 or elapsed_s < 0:
        return None
    return elapsed_s / last_step * max(total_steps - last_step, 0)

"""Plotly figure builders for the app: pure functions of DataFrames (tables: rmcore.tables).

Every figure is cheap to send on each live tick: at most ``MAX_POINTS`` points per trace
(W&B's budget; downsampling keeps each bucket's min and max so spikes survive), numpy
arrays (serialised as typed arrays, 10–20x faster than lists), and a ``uirevision`` so
zoom and legend clicks survive updates. Lines are SVG ``go.Scatter``, not WebGL
``Scattergl``: at this many points SVG draws fast, while a browser without a GPU (a
server's, a VM's) emulates WebGL on its CPU: three live line charts cost Chromium 0.70
CPU-s per second as Scattergl and 0.25 as Scatter (bench/ui_overhead.py's machine).
No Streamlit here.

Input frames follow the store: metrics are long ``[run_id, step, key, value, time]``;
per-sample rewards are ``[step, idx, value]``.
"""
from __future__ import annotations

import html
import math
from typing import Any, Mapping

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import plotly.io as pio
from plotly.colors import qualitative

MAX_POINTS = 1500     # per trace
FIGURE_POINTS = 6000  # per figure: many overlaid runs share it, down to MIN_TRACE_POINTS each
MIN_TRACE_POINTS = 300
MAX_RAW_RUNS = 6      # line_figure: more runs than this get no faint raw line behind the smoothed one
X_AXES = {"step": "Step", "samples": "Samples seen", "time": "Wall time (s)"}
PALETTE = qualitative.Plotly + qualitative.D3


def _template() -> go.layout.Template:
    """The app's chart look, set on the figure: plotly_white with the app theme's font and
    colors (.streamlit/config.toml), horizontal grid lines only.

    The app draws with ``theme=None`` (ui/plots.py): Streamlit's own Plotly theme is merged
    into every figure in the browser on every draw, and with it a Train page switch cost
    Chromium 0.12 to 0.16 s more CPU (six charts, bench/ui_overhead.py's machine).
    """
    # Its layout part only: plotly_white's per-trace-type defaults (marker outlines, table
    # fills, ...) are nothing these figures use, and tripled the time to validate and apply it.
    template = go.layout.Template(layout=pio.templates["plotly_white"].layout)
    template.layout.update(
        font={"family": '"Source Sans", "Source Sans Pro", sans-serif', "color": "#1F2430", "size": 13},
        title={"font": {"size": 15, "weight": 600}, "x": 0, "xanchor": "left", "xref": "container", "pad": {"l": 4}},
        paper_bgcolor="rgba(0,0,0,0)", plot_bgcolor="rgba(0,0,0,0)", colorway=PALETTE,
        xaxis={"showgrid": False, "tickfont": {"color": "#808495"}, "title": {"font": {"color": "#808495"}}},
        yaxis={"gridcolor": "#E6EAF1", "tickfont": {"color": "#808495"}, "title": {"font": {"color": "#808495"}}})
    return template


TEMPLATE = _template()


def plotly_escape(value: Any) -> str:
    """``value`` as Plotly text that shows as typed. Trace names, titles and tick labels render
    <a href>, <b>, <br>, <span> and entities: a run named ``<a href="https://evil.example">``
    would be a live link in the legend. Every name and title of these figures passes through it."""
    return html.escape(str(value), quote=False)


def downsample(x: np.ndarray, y: np.ndarray, max_points: int = MAX_POINTS) -> tuple[np.ndarray, np.ndarray]:
    """Shrink a line to at most ``max_points`` points, keeping its extremes.

    The interior is cut into (max_points - 2) // 2 equal-count buckets; each keeps the point
    of its minimum and of its maximum, in x order, and the first and last points are always
    kept. Averaging would hide the spike a user is looking for (a loss blow-up), so min/max.
    NaN values are dropped first (a line cannot draw them anyway).
    x, y: (N,) -> (M,), M <= max_points.
    """
    x, y = np.asarray(x), np.asarray(y, dtype=float)
    keep = ~np.isnan(y)
    x, y = x[keep], y[keep]
    n = len(y)
    if n <= max_points:
        return x, y
    n_buckets = max(1, (max_points - 2) // 2)
    interior = np.arange(1, n - 1)                                          # (N-2,)
    starts = np.linspace(0, len(interior), n_buckets + 1).astype(int)[:-1]  # (K,) bucket starts
    bucket = np.searchsorted(starts, np.arange(len(interior)), side="right") - 1
    vals = y[interior]
    lows = np.minimum.reduceat(vals, starts)[bucket]                        # (N-2,) bucket min per point
    highs = np.maximum.reduceat(vals, starts)[bucket]
    # The first index of each bucket reaching its min (and max): one point each per bucket.
    first_low = _first_per_bucket(bucket, vals == lows)
    first_high = _first_per_bucket(bucket, vals == highs)
    picked = np.unique(np.concatenate([[0], interior[first_low], interior[first_high], [n - 1]]))
    return x[picked], y[picked]


def _first_per_bucket(bucket: np.ndarray, hit: np.ndarray) -> np.ndarray:
    """Positions of the first True of ``hit`` within each bucket id."""
    positions = np.flatnonzero(hit)
    _, first = np.unique(bucket[positions], return_index=True)
    return positions[first]


def trace_points(n_traces: int) -> int:
    """Points per trace when ``n_traces`` lines share one figure: MAX_POINTS each up to
    FIGURE_POINTS in all, then an equal share, never below MIN_TRACE_POINTS. Plotly's
    drawing time grows with the points: 20 runs (40 lines) at 1,500 points each took
    Chromium 0.29 s per draw, at 300 each 0.16 s; and twenty overlaid lines are read for
    their trends, which min/max buckets at 300 points still show, spikes included."""
    return max(MIN_TRACE_POINTS, min(MAX_POINTS, FIGURE_POINTS // max(n_traces, 1)))


def ema_smooth(values: np.ndarray, weight: float) -> np.ndarray:
    """TensorBoard's debiased exponential moving average.

        last_n = w·last_{n-1} + (1 - w)·v_n,  last_0 = 0
        smoothed_n = last_n / (1 - w^n)

    Debiasing removes the pull towards 0 of the first points (Adam's bias correction).
    Non-finite values pass through unchanged and do not count (as in TensorBoard).
    Ref: tensorboard/plugins/scalar/vz_line_chart2/line-chart.ts, resmoothDataset.
    values: (N,) -> (N,).
    """
    values = np.asarray(values, dtype=float)
    if weight <= 0 or len(values) == 0:
        return values.copy()
    smoothed = values.copy()
    last, count = 0.0, 0
    for i, value in enumerate(values):
        if not math.isfinite(value):
            continue
        last = last * weight + (1.0 - weight) * value
        count += 1
        smoothed[i] = last / (1.0 - weight**count) if weight < 1 else last
    return smoothed


def x_values(run_df: pd.DataFrame, x: str, samples_per_step: float = 1.0) -> np.ndarray:
    """The x coordinate of one run's rows: step, samples seen (step × samples per step), or
    seconds since the run's first logged point."""
    if x == "step":
        return run_df["step"].to_numpy()
    if x == "samples":
        return run_df["step"].to_numpy() * samples_per_step
    if x == "time":
        t = run_df["time"].to_numpy(dtype=float)
        return t - t.min() if len(t) else t
    raise ValueError(f"x must be one of {', '.join(X_AXES)}; got {x!r}.")


def run_colors(run_ids: list[str]) -> dict[str, str]:
    """One color per run, by its position in the selection, shared by every chart of a page."""
    return {run_id: PALETTE[i % len(PALETTE)] for i, run_id in enumerate(run_ids)}


def line_figure(df: pd.DataFrame, metric: str, x: str = "step", smoothing: float = 0.0,
                log_y: bool = False, uirevision: str = "", names: Mapping[str, str] | None = None,
                samples_per_step: Mapping[str, float] | None = None, title: str = "",
                runs: list[str] | None = None) -> go.Figure:
    """One metric of several runs overlaid: per run a faint raw line and a smoothed line
    (the only one in the legend). ``names`` maps run ids to legend labels; ``runs`` sets the
    order (and so the colors, see run_colors), default sorted run ids.

    Beyond MAX_RAW_RUNS runs the faint raw lines are left out: under that many curves they
    are a grey band, and they doubled what the browser draws (smoothing 0 shows raw values)."""
    fig = go.Figure()
    rows = df[df["key"] == metric]
    by_run = {run_id: run_df for run_id, run_df in rows.groupby("run_id", sort=False)}
    order = runs if runs is not None else sorted(by_run)
    colors = run_colors(order)
    n_runs = sum(run_id in by_run for run_id in order)
    raw_lines = smoothing > 0 and n_runs <= MAX_RAW_RUNS
    points = trace_points(n_runs * (2 if raw_lines else 1))
    for run_id in order:
        if run_id not in by_run:
            continue
        run_df = by_run[run_id].sort_values("step")
        color = colors[run_id]
        label = (names or {}).get(run_id, run_id)
        xs = x_values(run_df, x, (samples_per_step or {}).get(run_id, 1.0))
        ys = run_df["value"].to_numpy(dtype=float)
        if raw_lines:
            rx, ry = downsample(xs, ys, points)
            fig.add_trace(go.Scatter(x=rx, y=ry, mode="lines", line={"color": color, "width": 1},
                                       opacity=0.25, legendgroup=run_id, showlegend=False,
                                       name=plotly_escape(f"{label} (raw)"), hoverinfo="skip"))
        sx, sy = downsample(xs, ema_smooth(ys, smoothing), points)
        fig.add_trace(go.Scatter(x=sx, y=sy, mode="lines+markers" if len(sx) < 3 else "lines",
                                   line={"color": color, "width": 2}, legendgroup=run_id,
                                   name=plotly_escape(label), meta=run_id))
    fig.update_layout(title=plotly_escape(title or metric), xaxis_title=plotly_escape(X_AXES.get(x, x)),
                      yaxis_title=plotly_escape(metric),
                      yaxis_type="log" if log_y else "linear", uirevision=uirevision or metric,
                      legend={"orientation": "h", "y": -0.2}, margin={"t": 40, "b": 10, "l": 10, "r": 10},
                      height=340)
    return fig


def terms_figure(df: pd.DataFrame, keys: list[str], smoothing: float = 0.0, uirevision: str = "",
                 title: str = "", right_axis: tuple[str, ...] = ()) -> go.Figure:
    """Several metrics of one run on one chart (e.g. reward/total and each reward term).
    Keys in ``right_axis`` get their own y axis on the right (e.g. entropy next to a KL
    a hundred times smaller)."""
    fig = go.Figure()
    for i, key in enumerate(keys):
        rows = df[df["key"] == key].sort_values("step")
        if rows.empty:
            continue
        xs, ys = downsample(rows["step"].to_numpy(), ema_smooth(rows["value"].to_numpy(float), smoothing))
        fig.add_trace(go.Scatter(x=xs, y=ys, mode="lines+markers" if len(xs) < 3 else "lines",
                                   name=plotly_escape(key), line={"color": PALETTE[i % len(PALETTE)]},
                                   yaxis="y2" if key in right_axis else "y"))
    if any(trace.yaxis == "y2" for trace in fig.data):
        fig.update_layout(yaxis2={"overlaying": "y", "side": "right", "showgrid": False})
    fig.update_layout(title=plotly_escape(title), xaxis_title="Step", uirevision=uirevision or title, height=320,
                      legend={"orientation": "h", "y": -0.25}, margin={"t": 40, "b": 10, "l": 10, "r": 10})
    return fig


def histogram_figure(values_by_run: Mapping[str, np.ndarray], nbins: int = 30, title: str = "",
                     uirevision: str = "", colors: Mapping[str, str] | None = None) -> go.Figure:
    """Overlaid histograms of per-sample rewards, one per run (or per step); ``colors`` maps
    the same keys to colors (default: the palette in order).

    Every trace gets the same ``nbins`` equal bins over the pooled range (shared_bins), so
    bars of different runs line up; computed here, because Plotly's own automatic binning
    of overlaid traces cost Chromium 163 ms for 20 runs against 53 ms with the bins given."""
    fig = go.Figure()
    arrays = {label: np.asarray(values, dtype=float) for label, values in values_by_run.items()}
    xbins = shared_bins(list(arrays.values()), nbins)
    for i, (label, values) in enumerate(arrays.items()):
        color = (colors or {}).get(label, PALETTE[i % len(PALETTE)])
        fig.add_trace(go.Histogram(x=values, name=plotly_escape(label), opacity=0.6, xbins=xbins,
                                   marker={"color": color}))
    fig.update_layout(barmode="overlay", title=plotly_escape(title), xaxis_title="reward", yaxis_title="samples",
                      uirevision=uirevision or title, height=320,
                      legend={"orientation": "h", "y": -0.25}, margin={"t": 40, "b": 10, "l": 10, "r": 10})
    return fig


def shared_bins(arrays: list[np.ndarray], nbins: int) -> dict[str, float]:
    """Plotly ``xbins`` (start, end, size) of ``nbins`` equal bins over the finite values of
    all arrays; a single value (or none) gets unit-wide bins around it."""
    finite = np.concatenate([a[np.isfinite(a)] for a in arrays]) if arrays else np.zeros(0)
    lo, hi = (float(finite.min()), float(finite.max())) if len(finite) else (0.0, 0.0)
    if hi <= lo:
        lo, hi = lo - 0.5, lo + 0.5
    size = (hi - lo) / nbins
    # The end a hair past the maximum: Plotly's bins are [start, start + size), so the
    # largest value would otherwise fall outside the last one.
    return {"start": lo, "end": hi + size * 1e-6, "size": size}


def heatmap_counts(df: pd.DataFrame, value_bins: int = 30, max_steps: int = 300
                   ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Counts of per-sample rewards in (step bucket × reward bin).

    Steps are grouped into at most ``max_steps`` equal-width buckets (so a long run still
    draws a small heatmap); rewards into ``value_bins`` bins over their overall range.
    df: [step, idx, value] -> step_centers (S,), value_centers (V,), counts (V, S).
    """
    values = df["value"].to_numpy(dtype=float)
    steps = df["step"].to_numpy(dtype=float)
    keep = np.isfinite(values)
    values, steps = values[keep], steps[keep]
    if len(values) == 0:
        return np.zeros(0), np.zeros(0), np.zeros((0, 0))
    n_steps = len(np.unique(steps))
    lo, hi = values.min(), values.max()
    value_edges = np.linspace(lo, hi if hi > lo else lo + 1.0, value_bins + 1)       # (V+1,)
    s_lo, s_hi = steps.min() - 0.5, steps.max() + 0.5
    step_edges = np.linspace(s_lo, s_hi, min(n_steps, max_steps) + 1)               # (S+1,)
    counts, _, _ = np.histogram2d(values, steps, bins=[value_edges, step_edges])    # (V, S)
    return (step_edges[:-1] + step_edges[1:]) / 2, (value_edges[:-1] + value_edges[1:]) / 2, counts


def reward_heatmap(df: pd.DataFrame, value_bins: int = 30, title: str = "", uirevision: str = "") -> go.Figure:
    """How the distribution of per-sample rewards moves over training: step × reward bins."""
    step_centers, value_centers, counts = heatmap_counts(df, value_bins)
    fig = go.Figure(go.Heatmap(x=step_centers, y=value_centers, z=counts, colorscale="Viridis",
                               colorbar={"title": "samples"},
                               hovertemplate="step %{x:.0f}<br>reward %{y:.3f}<br>%{z} samples<extra></extra>"))
    fig.update_layout(title=plotly_escape(title), xaxis_title="Step", yaxis_title="reward", height=320,
                      uirevision=uirevision or title, margin={"t": 40, "b": 10, "l": 10, "r": 10})
    return fig

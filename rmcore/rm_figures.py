"""Plotly figures of reward-model evaluation: accuracy per corruption type, calibration.

Pure builders like rmcore.viz (which holds the general ones): a summary table in
(rmcore.rm_eval.eval_summary: one row per run), a figure out; every run name and category
passes through viz.plotly_escape, so user text shows as typed.
"""
from __future__ import annotations

import plotly.graph_objects as go

from rmcore import viz
from rmcore.rm_eval import calibration_from_metrics


def corruption_bars(summary, names: dict[str, str]) -> go.Figure:
    """Held-out accuracy per corruption type, one bar per run in each group."""
    columns = sorted(c for c in summary.columns if c.startswith("eval/accuracy/"))
    fig = go.Figure()
    for i, (run_id, row) in enumerate(summary.iterrows()):
        fig.add_trace(go.Bar(x=[viz.plotly_escape(c.split("/", 2)[2]) for c in columns],
                             y=[row[c] for c in columns],
                             name=viz.plotly_escape(names.get(run_id, run_id)),
                             marker={"color": viz.PALETTE[i % len(viz.PALETTE)]}))
    fig.update_layout(title="Held-out accuracy per corruption type", barmode="group", yaxis_range=[0, 1.05],
                      height=320, uirevision=",".join(summary.index), legend={"orientation": "h", "y": -0.3},
                      margin={"t": 40, "b": 10, "l": 10, "r": 10})
    return fig


def calibration_figure(summary, names: dict[str, str]) -> go.Figure:
    """Reliability diagram: observed win rate against σ(Δ), per run; the diagonal is perfect."""
    fig = go.Figure(go.Scatter(x=[0, 1], y=[0, 1], mode="lines", line={"dash": "dash", "color": "grey"},
                               name="perfectly calibrated"))
    for i, (run_id, row) in enumerate(summary.iterrows()):
        bins = calibration_from_metrics(row.dropna().to_dict())
        fig.add_trace(go.Scatter(x=[b["pred"] for b in bins], y=[b["obs"] for b in bins], mode="lines+markers",
                                 name=f"{viz.plotly_escape(names.get(run_id, run_id))} "
                                      f"(ECE {row.get('eval/ece', float('nan')):.3f})",
                                 marker={"color": viz.PALETTE[i % len(viz.PALETTE)]},
                                 customdata=[b["count"] for b in bins],
                                 hovertemplate="σ(Δ) %{x:.2f}<br>won %{y:.2f}<br>%{customdata} pairs<extra></extra>"))
    fig.update_layout(title="Calibration: σ(Δ) against the observed win rate", xaxis_title="predicted σ(r_a − r_b)",
                      yaxis_title="observed win rate", height=320, uirevision=",".join(summary.index),
                      legend={"orientation": "h", "y": -0.3}, margin={"t": 40, "b": 10, "l": 10, "r": 10})
    return fig

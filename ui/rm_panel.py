"""The Reward model page's live panel (one run) and its comparison of runs on the same pairs.

Polling as ui.live does (STREAMLIT.md): a fragment with run_every only while a run is
active, and one full rerun when it ends so the page redraws with polling off.
"""
from __future__ import annotations

import streamlit as st

from rmcore import viz
from rmcore.rm_eval import eval_summary
from rmcore.rm_figures import calibration_figure, corruption_bars
from rmcore.store import ACTIVE_STATUSES, TERMINAL_STATUSES
from ui.live import run_header
from ui.plots import plotly_chart
from ui.runtime import store

SUMMARY = ["eval/accuracy", "eval/margin", "eval/ece", "eval/loss"]


def live_panel(run_id: str, live: bool, names: dict[str, str], smoothing: float) -> None:
    """Header, loss and accuracy curves, held-out reward histogram, corruption bars, calibration."""
    @st.fragment(run_every=1.0 if live else None)
    def panel() -> None:
        run = store().get_run(run_id)
        if live and run["status"] in TERMINAL_STATUSES:
            st.rerun()  # the page redraws once with polling off and the Use button enabled
        metrics = store().metrics([run_id])
        run_header(run, metrics)
        if metrics.empty:
            return
        left, right = st.columns(2)
        for col, title, keys in ((left, "Loss", ["loss/total", "eval/loss"]),
                                 (right, "Pairwise accuracy", ["rm/accuracy", "eval/accuracy"])):
            fig = viz.terms_figure(metrics, keys, smoothing=smoothing, uirevision=f"{run_id}:{title}", title=title)
            plotly_chart(fig, f"rm-{title}", col)
        summary = eval_summary(metrics)
        if summary.empty:
            return
        step = int(summary["step"].iloc[0])
        scores = {side: store().sample_rewards(run_id, side, steps=[step])["value"].to_numpy()
                  for side in ("chosen", "rejected")}
        hist = viz.histogram_figure(scores, title=f"Held-out rewards at step {step}: chosen vs rejected",
                                    uirevision=f"{run_id}:hist")
        left, right = st.columns(2)
        plotly_chart(hist, "rm-hist", left)
        plotly_chart(corruption_bars(summary, names), "rm-bars", right)
        left, right = st.columns(2)
        plotly_chart(calibration_figure(summary, names), "rm-calib", left)
        fig = viz.terms_figure(metrics, ["rm/chosen_mean", "rm/rejected_mean", "eval/chosen_mean",
                                         "eval/rejected_mean"], smoothing=smoothing,
                               uirevision=f"{run_id}:scores", title="Mean reward of each side")
        plotly_chart(fig, "rm-scores", right)

    panel()


def compare_panel(selected: list[str], names: dict[str, str], statuses: dict[str, str], configs: dict[str, dict],
                  metric: str) -> None:
    """The chosen metric over steps for each selected run, their last eval as a table and figures."""
    @st.fragment(run_every=2.0 if any(statuses[r] in ACTIVE_STATUSES for r in selected) else None)
    def compare() -> None:
        if not selected:
            st.caption("Pick runs above, or launch one run per loss.")
            return
        metrics = store().metrics(selected)
        fig = viz.line_figure(metrics, metric, names=names, uirevision=f"{','.join(sorted(selected))}|{metric}")
        plotly_chart(fig, "rm-cmp-line")
        summary = eval_summary(metrics)
        if summary.empty:
            st.caption("No evaluation yet.")
            return
        table = summary[["step", *[c for c in SUMMARY if c in summary]]].copy()
        table.insert(0, "family", [configs[r].get("family", "auto") for r in table.index])
        table.insert(0, "loss", [configs[r].get("loss") for r in table.index])
        for column in sorted(c for c in summary.columns if c.startswith("eval/accuracy/")):
            table[column.split("/", 2)[2]] = summary[column]
        table.index = [f"{names[r]} ({r[-4:]})" for r in table.index]
        st.dataframe(table, width="stretch", column_config={c: st.column_config.NumberColumn(format="%.3f")
                                                            for c in table.columns if c not in ("loss", "family", "step")})
        left, right = st.columns(2)
        plotly_chart(corruption_bars(summary, names), "rm-cmp-bars", left)
        plotly_chart(calibration_figure(summary, names), "rm-cmp-calib", right)

    compare()

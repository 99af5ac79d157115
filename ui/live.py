"""The live panel of one run: status, progress, curves, reward distributions, generations.

It polls with ``@st.fragment(run_every=...)`` only while the run is queued, preparing or
running (STREAMLIT.md's "start and stop a streaming fragment" recipe): ``live`` is read
before the decorator, and when the run reaches a final status the fragment calls
``st.rerun()`` so the page redraws once with polling off. Controls that must not reset on
each tick (run picker, Stop, smoothing) live outside, in the page.

Two fragments, two paces: the header (status, step, ETA) every POLL_S, the charts every
CHARTS_POLL_S. Each chart refresh is a Plotly redraw in the browser, which on a 2-core
machine shares the CPU with the training thread; curves that move every few seconds still
read as live. Measured costs are in bench/README.md.
"""
from __future__ import annotations

import re
import time
from typing import Any

import pandas as pd
import streamlit as st

from rmcore import tables, viz
from rmcore.algorithms import POLICY_LOSSES
from rmcore.metrics import (EVAL_RESPONSE_LENGTH, KL_COEF, POLICY_ENTROPY, POLICY_KL, RATIO_MEAN, REWARD_TOTAL_STD,
                            SIGNAL_SHARE)
from rmcore.store import ACTIVE_STATUSES, TERMINAL_STATUSES
from ui.plots import plotly_chart
from ui.runtime import duration_text, runner, store
from ui.text import md_escape

POLL_S = 1.0         # header
CHARTS_POLL_S = 3.0  # curves, reward distributions, generations
CHARTS = (  # (title, key prefixes or keys); empty charts are skipped
    ("Loss", ("loss/",)),
    ("Reward: total and each term", ("reward/",)),
    ("Policy: KL and entropy", (POLICY_KL, POLICY_ENTROPY, KL_COEF)),
    ("Eval (greedy, fixed prompts)", ("eval/",)),
    ("Learning signal: each term's share of the reward spread within groups", (SIGNAL_SHARE,)),
)
HIDDEN_KEYS = (REWARD_TOTAL_STD,)
RIGHT_AXIS = (POLICY_ENTROPY, EVAL_RESPONSE_LENGTH, RATIO_MEAN, KL_COEF)  # other units and scales than their neighbours
PER_TERM_TITLE = "Reward: total and each term (z-scored per group to learn)"
HEADER_KEYS = ("perf/step_time", "perf/samples_per_s",  # one row per training step: pace and throughput
               "perf/gpu_mem_gb", "perf/gpu_util")        # on a GPU (rmcore.placement.gpu_metrics)


def run_charts(config: dict[str, Any]) -> tuple[tuple[str, tuple[str, ...]], ...]:
    """CHARTS, then the run's algorithm's own diagnostics (Algorithm.diagnostics) on a chart of
    their own, the ones under loss/ aside (the Loss chart has them): a new algorithm's numbers
    appear here without an edit to this page. A group run whose terms were z-scored per term
    says so on its reward chart, whose curves are the raw terms."""
    algo = POLICY_LOSSES.get(str(config.get("loss", "")))
    charts = CHARTS
    if config.get("reward_aggregation") == "normalize_per_term" and algo is not None and algo.is_group:
        charts = tuple((PER_TERM_TITLE, keys) if keys == ("reward/",) else (title, keys) for title, keys in charts)
    own = tuple(k for k in algo.diagnostics if not k.startswith("loss/")) if algo else ()
    return charts + ((f"{algo.label}: its own diagnostics", own),) if own else charts


def live_panel(run_id: str, smoothing: float = 0.0) -> None:
    """Draw the panel; while the run is live its header refreshes every POLL_S seconds and
    its charts every CHARTS_POLL_S."""
    run = store().get_run(run_id)
    live = run["status"] in ACTIVE_STATUSES
    chart_list = run_charts(run["config"] if isinstance(run.get("config"), dict) else {})

    @st.fragment(run_every=POLL_S if live else None)
    def header() -> None:
        run = store().get_run(run_id)
        if live and run["status"] in TERMINAL_STATUSES:
            st.rerun()  # full rerun: the page redraws with auto-refresh off and Stop hidden
        run_header(run, store().metrics([run_id], keys=list(HEADER_KEYS)))

    @st.fragment(run_every=CHARTS_POLL_S if live else None)
    def charts() -> None:
        # Only the charted keys: perf/ metrics and the samples' length and diversity are a third of a run's rows.
        keys = store().metric_keys(run_id)
        charted = [k for _, patterns in chart_list for k in _matching(keys, patterns)]
        metrics = store().metrics([run_id], keys=charted)
        if metrics.empty:
            return
        metric_charts(run_id, metrics, smoothing, chart_list)
        distributions(run_id, metrics)
        generations(run_id)

    header()
    charts()


def run_header(run: dict[str, Any], metrics: pd.DataFrame) -> None:
    """Status, step counter, progress bar, ETA, throughput, device and its GPU's figures; the
    failure or preparing message."""
    status, last, total = run["status"], int(run["last_step"] or 0), int(run["total_steps"] or 0)
    cols = st.columns(6)
    with cols[0].container(key="live-status"):
        st.metric("Status", md_escape(status))
    with cols[1].container(key="live-step"):
        st.metric("Step", f"{last:d} / {total:d}")
    eta = _eta(run, metrics)
    cols[2].metric("ETA", "—" if eta is None or status not in ACTIVE_STATUSES else duration_text(eta))
    speed = _latest(metrics, "perf/samples_per_s")
    cols[3].metric("Samples / s", "—" if speed is None else f"{speed:.1f}")
    cols[4].metric("Elapsed", duration_text(_elapsed(run)))
    with cols[5].container(key="live-device"):
        st.metric("Device", md_escape(run.get("device") or "—"))
    if gpu := gpu_text(metrics):
        st.caption(gpu)
    if status == "queued":
        position = runner().queue_position(run["id"])
        st.info(f"Queued (#{position:d} in line for {md_escape(run['device'])}): it starts when the runs ahead of "
                "it finish." if position else "Queued: it starts when the runs ahead of it finish.")
    elif status == "preparing":
        message = run.get("message") or "Preparing…"
        st.progress(_fraction(message), text=md_escape(message))
    elif status == "failed":
        st.error(f"**This run failed:** {md_escape(run.get('error') or 'no message was recorded.')}")
        if run.get("traceback"):
            with st.expander("Traceback"):
                st.code(run["traceback"], language="text")
    elif status in ("stopped", "interrupted") and run.get("message"):
        st.warning(md_escape(run["message"]))
    if total and status in ("running", "done", "stopped", "interrupted"):
        st.progress(min(last / total, 1.0), text=f"{last / total:.0%} of {total:d} steps")


def gpu_text(metrics: pd.DataFrame) -> str:
    """'Peak GPU memory 3.21 GB · GPU utilisation 87%' from a run's perf/gpu_* rows; '' without them.

    perf/gpu_mem_gb is the peak since the run started, so its largest value is the run's peak.
    """
    parts = []
    peak = metrics.loc[metrics["key"] == "perf/gpu_mem_gb", "value"].max()
    if pd.notna(peak):
        parts.append(f"Peak GPU memory {peak:.2f} GB")
    if (util := _latest(metrics, "perf/gpu_util")) is not None:
        parts.append(f"GPU utilisation {util:.0f}% (latest step)")
    return " · ".join(parts)


def metric_charts(run_id: str, metrics: pd.DataFrame, smoothing: float, chart_list=CHARTS) -> None:
    keys = sorted(k for k in metrics["key"].unique() if k not in HIDDEN_KEYS)
    charts = [(title, _matching(keys, patterns)) for title, patterns in chart_list]
    charts = [(title, found) for title, found in charts if found]
    for row in range(0, len(charts), 2):
        for col, (title, found) in zip(st.columns(2), charts[row:row + 2]):
            fig = viz.terms_figure(metrics, found, smoothing=smoothing, uirevision=f"{run_id}:{title}", title=title,
                                   right_axis=RIGHT_AXIS)
            plotly_chart(fig, f"live-{title}", col)


def distributions(run_id: str, metrics: pd.DataFrame) -> None:
    """Histogram of per-sample rewards at the latest step, and its heatmap over steps."""
    terms = ["total"] + sorted(k.split("/", 1)[1] for k in metrics["key"].unique()
                               if k.startswith("reward/") and k not in ("reward/total", *HIDDEN_KEYS))
    term = st.segmented_control("Reward distribution of", terms, default="total", key="live-term",
                                format_func=md_escape) or "total"
    rewards = store().sample_rewards(run_id, term=term)
    if rewards.empty:
        st.caption("No per-sample rewards for this run (MLE and DPO runs do not sample).")
        return
    last = int(rewards["step"].max())
    left, right = st.columns(2)
    hist = viz.histogram_figure({f"step {last}": rewards.loc[rewards["step"] == last, "value"].to_numpy()},
                                title=f"{term} reward per sample, step {last}", uirevision=f"{run_id}:hist")
    plotly_chart(hist, "live-hist", left)
    heat = viz.reward_heatmap(rewards, title=f"{term} reward per sample over training", uirevision=f"{run_id}:heat")
    plotly_chart(heat, "live-heat", right)


def generations(run_id: str) -> None:
    """Generations at a chosen step (follows the latest step until the user picks one)."""
    steps = store().generation_steps(run_id)
    st.markdown("**Generations**")
    if not steps:
        st.caption("No generations yet.")
        return
    # An explicit toggle rather than "the slider follows until moved": a browser that lags
    # behind the refreshes sends back an old slider value, which read as a pick and froze it.
    follow = len(steps) == 1 or st.toggle("Follow the latest step", value=True, key="live-gen-follow")
    if follow:
        step = steps[-1]
        st.caption(f"Step {step:d}")
    else:
        if st.session_state.get("live-gen-step") not in steps:
            st.session_state["live-gen-step"] = steps[-1]  # start the pick at the latest step
        step = st.select_slider("Step", options=steps, key="live-gen-step", format_func=md_escape)
    table = generation_table(store().generations(run_id, step=step))
    with st.container(key="live-generations"):
        st.dataframe(table, hide_index=True, width="stretch", column_config={
            "prompt": st.column_config.TextColumn(width="medium"),
            "completion": st.column_config.TextColumn(width="large"),
            "reward": st.column_config.NumberColumn(format="%.3f")})


def generation_table(gens: pd.DataFrame) -> pd.DataFrame:
    """Generations with each reward term as its own column."""
    terms = pd.DataFrame(list(gens["terms"]), index=gens.index).add_prefix("r/") if len(gens) else pd.DataFrame()
    return pd.concat([gens[["split", "completion", "reward", "reference", "prompt"]], terms], axis=1)


def _matching(keys: list[str], patterns: tuple[str, ...]) -> list[str]:
    found = [k for k in keys if any(k == p or (p.endswith("/") and k.startswith(p)) for p in patterns)]
    # The total first, then its parts.
    return sorted(found, key=lambda k: (not k.endswith("/total"), k))


def _latest(metrics: pd.DataFrame, metric: str) -> float | None:
    rows = metrics[metrics["key"] == metric]
    return None if rows.empty else float(rows.sort_values("step")["value"].iloc[-1])


def _eta(run: dict[str, Any], metrics: pd.DataFrame) -> float | None:
    """Seconds left at the pace since the first training step (model loading and step 0's eval excluded)."""
    total, last = int(run["total_steps"] or 0), int(run["last_step"] or 0)
    steps = metrics.drop_duplicates("step").sort_values("step")
    if len(steps) >= 2:
        first, t_first, t_last = int(steps["step"].iloc[0]), steps["time"].iloc[0], steps["time"].iloc[-1]
        return tables.eta_seconds(last - first, total - first, float(t_last - t_first))
    step_time = _latest(metrics, "perf/step_time")
    return None if step_time is None else step_time * max(total - last, 0)


def _elapsed(run: dict[str, Any]) -> float:
    if not run.get("started"):
        return 0.0
    return (run.get("finished") or time.time()) - run["started"]


def _fraction(message: str) -> float:
    """The last percentage in a progress message ("warm-start 40%" -> 0.4), else 0."""
    found = re.findall(r"(\d+(?:\.\d+)?)\s*%", message)
    return min(float(found[-1]) / 100, 1.0) if found else 0.0

"""The process-wide runner and store, the device label, and the sidebar.

The runner is created once per runs folder by an ``st.cache_resource`` getter that lives
here, in a module that does not change while the app runs (STREAMLIT.md: a getter in a
page would be rebuilt on every edit while old training threads run on). rmcore's own
``get_runner`` is process-wide too, so even a cleared cache finds the same runner.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

import streamlit as st

from rmcore.store import RunStore, default_runs_dir
from ui.text import md_escape

if TYPE_CHECKING:
    from rmcore.runner import Runner

ACTIVE_POLL_S = 2.0


@st.cache_resource(show_spinner="Starting the run manager…")
def _runner_for(runs_dir: str) -> "Runner":
    from rmcore.runner import get_runner
    return get_runner(runs_dir)


def runner() -> "Runner":
    """The runner of the current runs folder ($RMCORE_RUNS_DIR, else ./runs)."""
    return _runner_for(str(default_runs_dir().resolve()))


def store() -> RunStore:
    return runner().store


@st.cache_resource(show_spinner=False)
def device_label() -> str:
    """'GPU: <name>' or 'CPU (n threads)'; imports torch once per process."""
    from rmcore.placement import describe_device
    try:
        return describe_device("auto")
    except Exception as exc:  # a broken driver must not take the whole app down
        return f"unknown ({type(exc).__name__})"


def duration_text(seconds: float | None) -> str:
    """12s, 3m 05s, 1h 02m; an em dash when unknown."""
    if seconds is None or seconds != seconds:  # None or NaN
        return "—"
    seconds = max(0, int(round(seconds)))
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m {seconds % 60:02d}s"
    return f"{seconds // 3600}h {seconds % 3600 // 60:02d}m"


def sidebar() -> None:
    """Device and the runs running or queued in this server; refreshes while any is live."""
    with st.sidebar:
        st.caption(f"**Device:** {md_escape(device_label())}")
        _active_runs(bool(runner().active()))


def _active_runs(live_at_start: bool) -> None:
    @st.fragment(run_every=ACTIVE_POLL_S if live_at_start else None)
    def panel() -> None:
        active = runner().active()
        if live_at_start and not active:
            st.rerun()  # the last run ended: redraw the page once, with polling off
        if not active:
            st.caption("No run in progress.")
            return
        st.caption("**Runs in progress**")
        for entry in sorted(active, key=lambda e: (e["device"], e["position"])):
            where = "running" if entry["position"] == 0 else f"queued #{entry['position']}"
            if entry["device"].startswith("cuda:"):  # several GPUs, a queue each: say whose #2 it is
                where += f" on {entry['device']}"
            name = store().get_run(entry["run_id"])["name"]
            st.page_link("pages/train.py", label=f"{md_escape(name)} · {md_escape(where)}",
                         icon=":material/play_circle:" if entry["position"] == 0 else ":material/schedule:",
                         query_params={"run": entry["run_id"]}, help=md_escape(entry["run_id"]))

    panel()

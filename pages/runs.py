"""Runs: every run in the store; stop, resume, delete, download, open in Compare or Train."""
from datetime import datetime
from functools import partial

import pandas as pd
import streamlit as st

from rmcore.errors import RmcoreError
from rmcore.runner import RESUMABLE_STATUSES
from rmcore.store import ACTIVE_STATUSES
from ui.nav import require_entrypoint
from ui.runtime import duration_text, runner, store
from ui.text import md_escape

require_entrypoint()

PICK, CONFIRM, NOTICE, ERRORS = "runs_pick", "runs_confirm_delete", "runs_notice", "runs_errors"


def select_rows(ids: list[str]) -> None:
    """Clicking rows in the table selects those runs in the picker below it."""
    st.session_state[PICK] = [ids[i] for i in st.session_state["runs_table"].selection.rows if i < len(ids)]


def delete_confirmed() -> None:
    """Runs as a callback, before the picker is drawn, so it can also clear the selection."""
    deleted, errors = [], []
    for run_id in st.session_state.pop(CONFIRM, []):
        try:
            store().delete_run(run_id)
            deleted.append(run_id)
        except RmcoreError as err:
            errors.append(str(err))
    st.session_state[PICK] = [r for r in st.session_state.get(PICK, []) if r not in deleted]
    st.session_state[NOTICE] = (f"Deleted {len(deleted)} run(s). " if deleted else "") + " ".join(errors)


def resume(run_ids: list[str]) -> None:
    """Queue each run again from its latest checkpoint; the runner's sentence for each it cannot."""
    resumed, errors = [], []
    for run_id in run_ids:
        try:
            resumed.append(runner().resume(run_id))
        except RmcoreError as err:
            errors.append(str(err))
    st.session_state[NOTICE] = f"Resumed {len(resumed)} run(s) from their latest checkpoint." if resumed else ""
    st.session_state[ERRORS] = errors


title_col, refresh_col = st.columns([6, 1], vertical_alignment="bottom")
title_col.title("Runs")
refresh_col.button("Refresh", key="runs_refresh", icon=":material/refresh:",
                   help="Statuses and steps are read when the page is drawn.")
runs = store().list_runs()
if runs.empty:
    st.info("No runs yet. Launch one from **Train**, or a one-click experiment on **Home**.")
    st.stop()
ids = runs["id"].tolist()
table = pd.DataFrame({
    "name": runs["name"], "status": runs["status"], "kind": runs["kind"],
    "loss": runs["loss"], "backbone": runs["backbone"], "task": runs["task"],
    "steps": [f"{last or 0} / {total or 0}" for last, total in zip(runs["last_step"], runs["steps"])],
    "best eval reward": runs["best_eval_reward"], "final loss": runs["final_loss"],
    "duration": [duration_text(d) for d in runs["duration_s"]],
    "created": [datetime.fromtimestamp(t).strftime("%Y-%m-%d %H:%M") for t in runs["created"]],
    "id": runs["id"]})
st.dataframe(table, key="runs_table", hide_index=True, width="stretch", on_select=partial(select_rows, ids),
             selection_mode="multi-row", column_config={
                 "best eval reward": st.column_config.NumberColumn(format="%.3f"),
                 "final loss": st.column_config.NumberColumn(format="%.4g")})

if st.session_state.get(PICK):
    st.session_state[PICK] = [r for r in st.session_state[PICK] if r in ids]
names = dict(zip(runs["id"], runs["name"]))
selected = st.multiselect("Selected runs", ids, key=PICK, format_func=lambda r: f"{names[r]} · {r}",
                          placeholder="Click rows above or pick runs here")
if notice := st.session_state.pop(NOTICE, ""):
    st.info(md_escape(notice))
for error in st.session_state.pop(ERRORS, []):
    st.error(md_escape(error))

buttons = st.columns(6)
if buttons[0].button("Open in Compare", key="runs_compare", disabled=not selected,
                     icon=":material/stacked_line_chart:"):
    st.switch_page("pages/compare.py", query_params={"runs": ",".join(selected)})
if buttons[1].button("Open in Train", key="runs_train", disabled=len(selected) != 1, icon=":material/monitoring:",
                     help="Watch one run's live panel."):
    st.switch_page("pages/train.py", query_params={"run": selected[0]})
statuses = dict(zip(runs["id"], runs["status"]))
live = [r for r in selected if statuses[r] in ACTIVE_STATUSES]
if buttons[2].button("Stop", key="runs_stop", disabled=not live, icon=":material/stop_circle:"):
    stopped = [r for r in live if runner().stop(r)]
    st.toast(f"Stopping {len(stopped)} run(s).")
ended = [r for r in selected if statuses[r] in RESUMABLE_STATUSES]
buttons[3].button("Resume", key="runs_resume", disabled=not ended, icon=":material/play_circle:",
                  on_click=resume, args=(ended,),
                  help="Continue interrupted, failed or stopped runs from their latest checkpoint.")
if buttons[4].button("Delete…", key="runs_delete", disabled=not selected, icon=":material/delete:"):
    st.session_state[CONFIRM] = list(selected)

if pending := st.session_state.get(CONFIRM):
    with st.container(border=True):
        st.warning(f"Delete {len(pending)} run(s) with all their metrics, samples and checkpoints? "
                   "This cannot be undone.")
        yes, no = st.columns(2)
        yes.button("Yes, delete", key="runs_delete_yes", type="primary", on_click=delete_confirmed)
        if no.button("Cancel", key="runs_delete_no"):
            del st.session_state[CONFIRM]
            st.rerun()

with buttons[5]:
    if len(selected) == 1:
        run_id = selected[0]
        with st.popover("Download", icon=":material/download:"):
            for fmt in ("csv", "parquet"):
                st.download_button(f"{fmt.upper()} (zip)", key=f"runs_dl_{fmt}", on_click="ignore",
                                   data=lambda fmt=fmt: store().export_bytes(run_id, fmt),
                                   file_name=f"{run_id}-{fmt}.zip", mime="application/zip")
    else:
        st.caption("Select one run to download it.")

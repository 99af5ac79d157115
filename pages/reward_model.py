"""Reward model: train one with a pairwise loss, see what it gets wrong, use it as the δ term."""
import sys
from pathlib import Path

ROOT = str(Path(__file__).resolve().parent.parent)
if ROOT not in sys.path:  # run alone (AppTest.from_file, `streamlit run pages/...`): find ui/ and rmcore/
    sys.path.insert(0, ROOT)

import streamlit as st

from rmcore.errors import RmcoreError
from rmcore.losses import REWARD_MODEL_LOSSES
from rmcore.store import ACTIVE_STATUSES
from ui.launch import submit_runs
from ui.nav import require_entrypoint
from ui.rm_form import config_for, config_form
from ui.rm_panel import compare_panel, live_panel
from ui.runtime import runner, store
from ui.state import seed_from_url, url_list, write_url
from ui.text import md_escape

require_entrypoint()

st.title("Reward model")
st.caption("Train a reward model on preference pairs (built-in: a faithful summary against a corrupted one), "
           "see which corruptions each loss learns to catch, then use it as the δ term of a policy's reward.")

# --- the form and the launch buttons
with st.container(border=True):
    values, margins = config_form()
    launch_col, losses_col, many_col = st.columns([1, 2, 1], vertical_alignment="bottom")
    launch = launch_col.button("Launch", type="primary", key="rm_launch", icon=":material/rocket_launch:")
    losses = losses_col.multiselect("Compare losses", list(REWARD_MODEL_LOSSES), key="rm.compare_losses",
                                    persist_state="session", placeholder="Pick losses to launch one run each",
                                    help="Identical runs on the same pairs that differ only in the loss.")
    launch_many = many_col.button("Launch one run per loss", key="rm_launch_per_loss")

if launch or launch_many:
    try:  # every config valid and checked before any run is written (ui.launch.submit_runs)
        configs = [config_for(values, margins, loss) for loss in ([values["loss"]] if launch else losses)]
        run_ids = submit_runs(configs, [f"{c.name} · {c.loss}" if c.name and launch_many else c.name
                                        for c in configs])
    except RmcoreError as err:
        st.error(md_escape(str(err)))
    else:
        st.session_state["rm_run"] = run_ids[0]
        if launch_many:
            st.query_params["compare"] = ",".join(run_ids)
        st.rerun()

# --- the run picker and its controls (outside the polling fragments)
runs = store().list_runs()
runs = runs[runs["kind"] == "reward_model"]
if runs.empty:
    st.info("No reward model yet: keep the defaults and press **Launch**.")
    st.stop()
names = dict(zip(runs["id"], runs["name"]))
statuses = dict(zip(runs["id"], runs["status"]))
ids = list(names)
seed_from_url("rm_run", st.query_params.get("run"), valid=lambda v: v in names, default=ids[0])
pick_col, smooth_col, stop_col, use_col = st.columns([3, 1, 1, 2], vertical_alignment="bottom")
# No status in the label (as on Train): it is drawn once per page run, and a browser showed
# "preparing" in it beside a finished run's "done"; the panel below shows the live status.
run_id = pick_col.selectbox("Run", ids, key="rm_run", format_func=lambda r: f"{names[r]} · {r}")
write_url("rm_run", "run", run_id)
smoothing = smooth_col.slider("Smoothing", 0.0, 0.99, 0.0, 0.01, key="rm_smoothing",
                              help="TensorBoard's debiased exponential moving average.")
run = store().get_run(run_id)
if run["status"] in ACTIVE_STATUSES and stop_col.button("Stop", key="rm_stop", icon=":material/stop_circle:"):
    if runner().stop(run_id):
        st.toast("Stopping: the run evaluates and saves after its current step.")
    else:
        st.warning("This run is not managed by this app (started from the command line?).")
ready = store().latest_checkpoint(run_id) is not None
if use_col.button("Use as reward in a policy run", key="rm_use", disabled=not ready, icon=":material/east:",
                  help="Opens Train with this reward model as the δ term." if ready
                  else "Available once the run has saved its checkpoint (when it ends or is stopped)."):
    st.switch_page("pages/train.py", query_params={"reward_model": run_id})

live_panel(run_id, run["status"] in ACTIVE_STATUSES, names, smoothing)

# --- compare reward-model losses trained on the same pairs
st.subheader("Compare reward models")
all_configs = {r: store().get_run(r)["config"] for r in ids}
pairs_of = {r: (c.get("task"), c.get("seed"), c.get("eval_pairs")) for r, c in all_configs.items()}
same_pairs = [r for r in ids if pairs_of[r] == pairs_of[run_id]]
seed_from_url("rm_compare", url_list("compare"), valid=lambda v: isinstance(v, list) and set(v) <= set(ids),
              default=same_pairs[:6])
selected = st.multiselect("Runs", ids, key="rm_compare", format_func=lambda r: f"{names[r]} · {r}",
                          placeholder="Pick reward-model runs to compare")
write_url("rm_compare", "compare", selected)
if len({pairs_of[r] for r in selected}) > 1:
    st.warning("These runs were not evaluated on the same pairs (task, seed or held-out count differ).")
metric = st.segmented_control("Metric", ["eval/accuracy", "eval/ece", "eval/margin", "loss/total"],
                              default="eval/accuracy", key="rm_compare_metric") or "eval/accuracy"
compare_panel(selected, names, statuses, {r: all_configs[r] for r in selected}, metric)

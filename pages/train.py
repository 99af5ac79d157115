"""Train: configure and launch runs, then watch the selected run learn, live."""
import streamlit as st

from rmcore.algorithms import POLICY_LOSSES
from rmcore.errors import RmcoreError
from rmcore.runner import RESUMABLE_STATUSES
from rmcore.store import ACTIVE_STATUSES
from ui import forms
from ui.launch import launch_runs
from ui.live import live_panel
from ui.nav import require_entrypoint
from ui.runtime import runner, store
from ui.state import seed_from_url, url_run_problem, write_url
from ui.text import md_escape

require_entrypoint()

RUN_KEY, FORM_KEY = "train_run", "train_form_open"


def reuse(config: dict) -> None:
    forms.fill_form(config)
    st.session_state[FORM_KEY] = True  # open the form to show what was loaded

st.title("Train")
runs = store().list_runs()
runs = runs[runs["kind"] == "policy"]

# "Use as reward" on the Reward model page links here with ?reward_model=RUN_ID: once per
# link, the form opens with δ on and that model picked.
if (linked_rm := st.query_params.get("reward_model")) and st.session_state.get("train_linked_rm") != linked_rm:
    forms.use_reward_model(linked_rm)
    st.session_state["train_linked_rm"] = linked_rm
    st.session_state[FORM_KEY] = True
    st.session_state.pop("train_collapse_form", None)

# --- the form and the launch buttons; folded away after a launch so the live panel shows
if st.session_state.pop("train_collapse_form", False):
    st.session_state[FORM_KEY] = False
elif FORM_KEY not in st.session_state:  # open until a run is picked (from the URL or earlier in this session)
    st.session_state[FORM_KEY] = runs.empty or ("run" not in st.query_params
                                                 and f"{RUN_KEY}__copy" not in st.session_state)
form = st.expander("New run", key=FORM_KEY, on_change="rerun", icon=":material/tune:")
launch = launch_many = False
with form:
    # Built only while open: closed, the form's widgets were 1,800 of the page's 3,100 DOM
    # nodes, and drawing them hidden doubled the page's render time (bench/ui_overhead.py).
    # Their values persist in session state meanwhile.
    if form.open:
        values = forms.train_form()
        launch_col, losses_col, many_col = st.columns([1, 2, 1], vertical_alignment="bottom")
        launch = launch_col.button("Launch", type="primary", key="launch", icon=":material/rocket_launch:")
        losses = losses_col.multiselect("Compare losses", list(POLICY_LOSSES), key="cfg.compare_losses",
                                        format_func=lambda n: POLICY_LOSSES[n].label, persist_state="session",
                                        placeholder="Pick losses to launch one run each",
                                        help="Identical runs that differ only in the loss, opened in Compare.")
        launch_many = many_col.button("Launch one run per loss", key="launch_per_loss")

if launch or launch_many:
    try:
        run_ids = launch_runs(values, store().runs_dir / "uploads", None if launch else losses)
    except RmcoreError as err:
        st.error(md_escape(str(err)))  # one sentence; nothing was written
    else:
        if launch:
            st.session_state[RUN_KEY] = run_ids[0]
            st.session_state["train_collapse_form"] = True
            st.rerun()  # redraw everything, sidebar included, with the new run selected
        st.switch_page("pages/compare.py", query_params={"runs": ",".join(run_ids)})

# --- the run picker and its controls (outside the polling fragment)
labels = {row.id: f"{row.name} · {row.id}" for row in runs.itertuples()}
if problem := url_run_problem(st.query_params.get("run"), labels):
    st.error(md_escape(problem))  # a hand-edited or stale link: say so, then show another run
if runs.empty:
    st.info("No runs yet: keep the defaults and press **Launch** to watch a model learn.")
    st.stop()
# No status in the label: it is drawn once per page run and would go stale while polling.
ids = list(labels)
seed_from_url(RUN_KEY, st.query_params.get("run"), valid=lambda v: v in labels, default=ids[0])
pick_col, smooth_col, actions_col = st.columns([4, 2, 4], vertical_alignment="bottom")
run_id = pick_col.selectbox("Run", ids, key=RUN_KEY, format_func=labels.get)
write_url(RUN_KEY, "run", run_id)
smoothing = smooth_col.slider("Smoothing", 0.0, 0.99, 0.0, 0.01, key="train_smoothing",
                              help="TensorBoard's debiased exponential moving average.")
run = store().get_run(run_id)
resume_error = ""
with actions_col:
    buttons = st.columns(3)
    if run["status"] in ACTIVE_STATUSES:
        if buttons[0].button("Stop", key="stop", icon=":material/stop_circle:"):
            if runner().stop(run_id):
                st.toast("Stopping: the run ends after its current step.")
            else:
                st.warning("This run is not managed by this app (started from the command line?).")
    elif run["status"] in RESUMABLE_STATUSES:
        if buttons[0].button("Resume", key="resume", icon=":material/play_circle:",
                             help="Continue from its latest checkpoint to its planned steps."):
            try:
                runner().resume(run_id)
            except RmcoreError as err:
                resume_error = str(err)
            else:
                st.rerun()  # the sidebar and the panel poll again
    buttons[1].button("Reuse", key="reuse", icon=":material/content_copy:", on_click=reuse,
                      args=(run["config"],), help="Load this run's configuration into the form above.")
    buttons[2].page_link("pages/compare.py", label="Compare", icon=":material/stacked_line_chart:",
                         query_params={"runs": run_id})
if resume_error:
    st.error(md_escape(resume_error))

live_panel(run_id, smoothing)

"""Compare: overlay runs, diff their configs, and read the same eval prompt answered by each."""
import streamlit as st

from rmcore import tables, viz
from rmcore.store import ACTIVE_STATUSES
from ui.compare import eval_side_by_side, final_table, reward_distributions, samples_per_step
from ui.nav import require_entrypoint
from ui.plots import plotly_chart
from ui.runtime import store
from ui.state import seed_from_url, url_list, url_run_problem, write_url
from ui.text import md_escape

require_entrypoint()

SUMMARY_KEYS = ["reward/total", "eval/reward", "eval/rouge", "eval/entity_acc", "eval/number_acc", "loss/total",
                "policy/kl", "policy/entropy", "policy/response_length", "perf/samples_per_s"]
PREFERRED_METRICS = ("reward/total", "eval/reward", "loss/total")

st.title("Compare")
runs = store().list_runs()
if runs.empty:
    st.info("No runs yet. Launch some from **Train**, or a one-click experiment on **Home**.")
    st.stop()
names = dict(zip(runs["id"], runs["name"]))
statuses = dict(zip(runs["id"], runs["status"]))
ids = list(names)

# Runs deleted since the link was made, or mistyped ids, are dropped from it with a note.
if problems := [p for r in url_list("runs") if (p := url_run_problem(r, names))]:
    st.error(" ".join(md_escape(p) for p in problems))
seed_from_url("cmp_runs", [r for r in url_list("runs") if r in names],
              valid=lambda v: isinstance(v, list) and set(v) <= set(ids), default=ids[:2])
selected = st.multiselect("Runs", ids, key="cmp_runs", placeholder="Pick runs to compare",
                          format_func=lambda r: f"{names[r]} · {r}")
write_url("cmp_runs", "runs", selected)
if not selected:
    st.info("Pick one or more runs above.")
    st.stop()

configs = {r: store().get_run(r)["config"] for r in selected}
keys = sorted({k for r in selected for k in store().metric_keys(r)})
if keys:
    default_metric = next((k for k in PREFERRED_METRICS if k in keys), keys[0])
    seed_from_url("cmp_metric", st.query_params.get("metric"), valid=lambda v: v in keys, default=default_metric)
    metric_col, x_col, smooth_col, log_col = st.columns([3, 3, 2, 1], vertical_alignment="bottom")
    metric = metric_col.selectbox("Metric", keys, key="cmp_metric")
    write_url("cmp_metric", "metric", metric)
    seed_from_url("cmp_x", st.query_params.get("x"), valid=lambda v: v in viz.X_AXES, default="step")
    x_axis = x_col.segmented_control("x axis", list(viz.X_AXES), key="cmp_x", format_func=viz.X_AXES.get) or "step"
    write_url("cmp_x", "x", x_axis)
    smoothing = smooth_col.slider("Smoothing", 0.0, 0.99, 0.6, 0.01, key="cmp_smoothing",
                                  help="TensorBoard's debiased EMA; the raw line stays faint behind.")
    log_y = log_col.toggle("Log y", key="cmp_log")
else:
    st.info("The selected runs have no metrics yet.")

live = any(statuses[r] in ACTIVE_STATUSES for r in selected)


@st.fragment(run_every=2.0 if live else None)
def overlay() -> None:
    """The overlaid curves and the final/best table; refreshes while a selected run is live."""
    if live and not any(store().get_run(r)["status"] in ACTIVE_STATUSES for r in selected):
        st.rerun()  # all finished: redraw the whole page (distributions, eval answers), polling off
    if not keys:
        if any(store().metric_keys(r) for r in selected):
            st.rerun()  # the first metrics arrived: draw the metric and axis controls
        return
    summary = [k for k in SUMMARY_KEYS if k in keys] or keys[:8]
    metrics = store().metrics(selected, keys=[metric])  # the table below is aggregated in SQL
    fig = viz.line_figure(metrics, metric, x=x_axis, smoothing=smoothing, log_y=log_y,
                          uirevision=f"{','.join(sorted(selected))}|{metric}|{x_axis}",
                          names=names, samples_per_step={r: samples_per_step(c) for r, c in configs.items()},
                          runs=selected)
    with st.container(key="cmp-chart"):
        plotly_chart(fig, "cmp-line")
    st.markdown("**Final and best values**")
    final_table(summary, names, selected)


overlay()

st.markdown("**Configs**")
only_diff = st.toggle("Only fields that differ", value=len(selected) > 1, key="cmp_only_diff")
diff = tables.config_diff({names[r] + f" ({r[-4:]})": configs[r] for r in selected})
if only_diff:  # every row shown differs: no highlight, and no Styler (it cost Chromium ~0.2 s for 20 runs)
    st.dataframe(diff[diff["differs"]].drop(columns="differs"), width="stretch")
else:
    st.dataframe(diff.drop(columns="differs").style.apply(
        lambda row: ["background-color: #FFF1C2" if diff.at[row.name, "differs"] else ""] * len(row), axis=1),
        width="stretch")

reward_distributions(selected, names)
eval_side_by_side(selected, names)

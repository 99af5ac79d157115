"""Reward model: train one with a pairwise loss, see what it gets wrong, use it as the δ term."""
import sys
from pathlib import Path

ROOT = str(Path(__file__).resolve().parent.parent)
if ROOT not in sys.path:  # run alone (AppTest.from_file, `streamlit run pages/...`): find ui/ and rmcore/
    sys.path.insert(0, ROOT)

import plotly.graph_objects as go
import streamlit as st

from rmcore import viz
from rmcore.backbones import BACKBONES
from rmcore.config import DEVICES, PRECISIONS, RM_FAMILIES, RewardModelConfig, field_help
from rmcore.data import TASKS
from rmcore.errors import RmcoreError
from rmcore.losses import REWARD_MODEL_LOSSES
from rmcore.rm_eval import calibration_from_metrics, eval_summary
from rmcore.rm_trainer import MARGIN_LOSSES, loss_kwargs, reward_model_kind
from rmcore.store import ACTIVE_STATUSES, TERMINAL_STATUSES
from ui.live import run_header
from ui.nav import require_entrypoint
from ui.plots import plotly_chart
from ui.runtime import runner, store
from ui.state import seed_from_url, url_list, write_url
from ui.text import md_escape

require_entrypoint()

OTHER = "Other…"
DEFAULTS = RewardModelConfig()  # the CLI's defaults too
SUMMARY = ["eval/accuracy", "eval/margin", "eval/ece", "eval/loss"]
FAMILY_LABELS = {"auto": "auto (embedding for triplet, else scalar)", "scalar": "scalar head",
                 "embedding": "embedding: −distance"}


def loss_label(name: str) -> str:
    return f"{name} — {REWARD_MODEL_LOSSES[name].__doc__.splitlines()[0].split(':')[0]}"


def initial(key: str, value) -> dict:
    """A widget's default only on first draw: after that its value lives in session state."""
    return {} if key in st.session_state else {"value": value}


def number(name: str, label: str, column, **kwargs):
    return column.number_input(label, key=f"rm.{name}", help=field_help(RewardModelConfig, name),
                               persist_state="session", **initial(f"rm.{name}", getattr(DEFAULTS, name)), **kwargs)


def config_form() -> tuple[dict, dict[str, float]]:
    """The form's field values, and the two margins (one per family of losses)."""
    values: dict = {}
    model_col, loss_col, optim_col = st.columns(3, gap="large")
    model_col.markdown("**Model and pairs**")
    backbone = model_col.selectbox("Backbone", [*BACKBONES, OTHER], key="rm.backbone_choice",
                                   persist_state="session", help=field_help(RewardModelConfig, "backbone"))
    values["backbone"] = backbone if backbone != OTHER else model_col.text_input(
        "Model id or folder", key="rm.backbone_custom", persist_state="session",
        placeholder="distilbert-base-uncased, /path/to/model").strip()
    task = model_col.selectbox("Preference pairs", [*TASKS, OTHER], key="rm.task_choice",
                               persist_state="session", help=field_help(RewardModelConfig, "task"))
    values["task"] = task if task != OTHER else model_col.text_input(
        "Hub dataset or local file", key="rm.task_custom", persist_state="session",
        placeholder="Anthropic/hh-rlhf, trl-lib/ultrafeedback_binarized, pairs.jsonl").strip()
    loss_col.markdown("**Loss**")
    values["loss"] = loss_col.selectbox("Loss", list(REWARD_MODEL_LOSSES), key="rm.loss", format_func=loss_label,
                                        persist_state="session", help=field_help(RewardModelConfig, "loss"))
    values["family"] = loss_col.selectbox("Family", list(RM_FAMILIES), key="rm.family", format_func=FAMILY_LABELS.get,
                                          persist_state="session", help=field_help(RewardModelConfig, "family"))
    left, right = loss_col.columns(2)
    margins = {"pairwise": left.number_input("Margin m (Bradley-Terry, focal)", step=0.1, key="rm.margin_bt",
                                             persist_state="session", **initial("rm.margin_bt", 0.0)),
               "ranking": right.number_input("Margin m (hinge, triplet)", step=0.1, min_value=0.0,
                                             key="rm.margin_rank", persist_state="session",
                                             help="Must be positive: with m = 0 constant rewards reach zero loss.",
                                             **initial("rm.margin_rank", 1.0))}
    values["focal_gamma"] = number("focal_gamma", "Focal γ", left, min_value=0.0, step=0.5)
    values["center_coef"] = number("center_coef", "Reward centering", right, min_value=0.0, step=0.01,
                                   format="%.3f")
    optim_col.markdown("**Optimisation and eval**")
    left, right = optim_col.columns(2)
    values["lr"] = number("lr", "Learning rate", left, min_value=1e-7, step=1e-5, format="%.2e")
    for i, (name, label) in enumerate([("steps", "Steps"), ("batch_size", "Pairs per step"),
                                       ("eval_every", "Eval every"), ("eval_pairs", "Held-out pairs"),
                                       ("seed", "Seed")]):
        values[name] = int(number(name, label, right if i % 2 == 0 else left, min_value=0, step=1))
    values["name"] = optim_col.text_input("Run name (optional)", key="rm.name", persist_state="session")
    with st.expander("Advanced options"):
        cols = st.columns(4)
        values["max_length"] = int(number("max_length", "Max tokens", cols[0], min_value=1, step=16))
        values["max_grad_norm"] = number("max_grad_norm", "Grad clip", cols[1], min_value=0.0, step=0.5)
        values["device"] = cols[2].selectbox("Device", DEVICES, key="rm.device", persist_state="session")
        values["precision"] = cols[2].selectbox("Precision", PRECISIONS, key="rm.precision", persist_state="session",
                                                help=field_help(RewardModelConfig, "precision"))
        values["trust_remote_code"] = cols[3].checkbox("Trust remote code", key="rm.trust_remote_code",
                                                       help=field_help(RewardModelConfig, "trust_remote_code"))
        for col, name in zip(st.columns(4), ("dataset_split", "prompt_column", "chosen_column", "rejected_column")):
            values[name] = col.text_input(name.replace("_", " ").capitalize(), value=getattr(DEFAULTS, name),
                                          key=f"rm.{name}", help=field_help(RewardModelConfig, name))
    return values, margins


def config_for(values: dict, margins: dict[str, float], loss: str) -> RewardModelConfig:
    margin = margins["ranking"] if loss in MARGIN_LOSSES else margins["pairwise"]
    cfg = RewardModelConfig.from_dict({**values, "loss": loss, "margin": float(margin)}).validate()
    loss_kwargs(cfg)  # the margin check, before a run is written
    reward_model_kind(cfg)  # a loss the chosen family cannot take
    return cfg


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
    try:
        if launch:
            config = config_for(values, margins, values["loss"])
            st.session_state["rm_run"] = runner().submit(config, name=config.name)
        elif not losses:
            st.error("Pick at least one loss under 'Compare losses' to launch one run per loss.")
        else:
            configs = [config_for(values, margins, loss) for loss in losses]  # all valid before any starts
            run_ids = [runner().submit(c, name=f"{c.name} · {c.loss}" if c.name else "") for c in configs]
            st.session_state["rm_run"] = run_ids[0]
            st.query_params["compare"] = ",".join(run_ids)
        if launch or losses:
            st.rerun()
    except RmcoreError as err:
        st.error(md_escape(str(err)))

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


def live_panel(run_id: str, live: bool) -> None:
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


live_panel(run_id, run["status"] in ACTIVE_STATUSES)

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
configs = {r: all_configs[r] for r in selected}
if len({pairs_of[r] for r in selected}) > 1:
    st.warning("These runs were not evaluated on the same pairs (task, seed or held-out count differ).")
metric = st.segmented_control("Metric", ["eval/accuracy", "eval/ece", "eval/margin", "loss/total"],
                              default="eval/accuracy", key="rm_compare_metric") or "eval/accuracy"


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

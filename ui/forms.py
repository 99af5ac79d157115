"""Config widgets built from the dataclass fields: type -> widget, field docs -> tooltips.

Every widget's key is ``cfg.<field>``, so a config can be loaded into the form by setting
session state (``fill_form``), and ``persist_state="session"`` keeps the values when the
user visits another page and comes back.

The form only collects; nothing is checked or written while it is drawn. The reward weights
α, β, γ, δ are text boxes (a number input silently puts its default back in place of
"nan", "inf" or text, and the run would start with a weight the user did not ask for), and
an uploaded file is kept in memory as a ``PendingUpload``. ui.launch turns the values into a
config on *Launch*, where every problem becomes one error sentence.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import streamlit as st

from rmcore.config import TrainConfig, field_help
from rmcore.errors import ConfigError
from rmcore.placement import device_choices
from rmcore.safety import MAX_UPLOAD_BYTES, UPLOAD_EXTENSIONS
from ui.form_fields import CHOICES, FLOAT_FORMATS, FLOAT_STEPS, LABELS

PREFIX = "cfg."
OTHER = "Other (hub id or local folder)…"
TASK_SOURCES = ("Built-in", "Hub dataset", "Upload a file")
WEIGHTS = ("alpha", "beta", "gamma", "delta")  # text boxes, parsed on Launch (parse_number)
DEFAULTS = TrainConfig().to_dict()


@dataclass(frozen=True)
class PendingUpload:
    """An uploaded data file, held until Launch saves and checks it (ui.launch)."""
    name: str
    data: bytes


def key(name: str) -> str:
    return PREFIX + name


def number_text(value: float) -> str:
    """A weight as its text box shows it: 1.0 -> "1", 0.05 -> "0.05"."""
    return f"{float(value):g}"


def parse_number(name: str, text: str) -> float:
    """A weight typed in its text box; "nan" and "inf" parse, and TrainConfig.validate refuses them."""
    try:
        return float(str(text).strip())
    except ValueError:
        raise ConfigError(f"{name} must be a number, got {str(text).strip()!r}.") from None


def _is_zero(text: str) -> bool:
    try:
        return float(text) == 0
    except ValueError:
        return False


def weight_input(name: str) -> str:
    """A reward weight's text box; returns the text as typed."""
    seeded = key(name) in st.session_state
    return st.text_input(LABELS[name], key=key(name), help=field_help(TrainConfig, name), persist_state="session",
                         **({} if seeded else {"value": number_text(DEFAULTS[name])})).strip()


def field_input(name: str, *, label: str | None = None, cls: type = TrainConfig) -> Any:
    """One widget for one config field, chosen by the field's type; returns its value."""
    default = {f.name: f.default for f in dataclasses.fields(cls)}[name]
    common = {"label": label or LABELS.get(name, name.replace("_", " ").capitalize()), "key": key(name),
              "help": field_help(cls, name), "persist_state": "session"}
    seeded = key(name) in st.session_state  # then the widget takes its value from session state
    if name in CHOICES:  # the device list is the machine's: cuda:0 … cuda:n-1 join it when n > 1 GPUs
        options = device_choices() if name == "device" else CHOICES[name]
        return st.selectbox(options=options, **common, **({} if seeded else {"index": options.index(default)}))
    if isinstance(default, bool):
        return st.checkbox(**common, **({} if seeded else {"value": default}))
    if isinstance(default, int):
        return int(st.number_input(min_value=0, step=1, **common, **({} if seeded else {"value": default})))
    if isinstance(default, float):
        return float(st.number_input(step=FLOAT_STEPS.get(name, 0.05), format=FLOAT_FORMATS.get(name, "%.3f"),
                                     **common, **({} if seeded else {"value": default})))
    return st.text_input(**common, **({} if seeded else {"value": default}))


def fill_form(config: dict[str, Any]) -> None:
    """Load a run's config into the form (call from a button's on_click, before widgets draw)."""
    from rmcore.backbones import BACKBONES
    from rmcore.data import TASKS

    for name, value in config.items():
        if name in WEIGHTS:
            st.session_state[key(name)] = number_text(value)
        elif name in DEFAULTS and name not in ("backbone", "task"):
            default = DEFAULTS[name]
            # A config written by the CLI may hold 1 for 1.0; number inputs refuse mixed types.
            if isinstance(default, (int, float)) and not isinstance(default, bool):
                value = type(default)(value)
            st.session_state[key(name)] = value
    st.session_state.pop(key("reward_model_choice"), None)  # re-seeded from the loaded reward_model
    backbone = config.get("backbone", DEFAULTS["backbone"])
    st.session_state[key("backbone_choice")] = backbone if backbone in BACKBONES else OTHER
    st.session_state[key("backbone_custom")] = "" if backbone in BACKBONES else backbone
    task = config.get("task", DEFAULTS["task"])
    if task in TASKS:
        st.session_state[key("task_source")] = TASK_SOURCES[0]
        st.session_state[key("task_builtin")] = task
    else:  # a saved upload path or a hub name: both load by name, so the hub box holds it
        st.session_state[key("task_source")] = TASK_SOURCES[1]
        st.session_state[key("task_hub")] = task


def backbone_input() -> str:
    from rmcore.backbones import BACKBONES

    options = [*BACKBONES, OTHER]
    choice = st.selectbox("Backbone", options, key=key("backbone_choice"), persist_state="session",
                          help=field_help(TrainConfig, "backbone"))
    if choice == OTHER:
        return st.text_input("Model id or folder", key=key("backbone_custom"), persist_state="session",
                             placeholder="gpt2, Qwen/Qwen2.5-0.5B-Instruct, /path/to/model").strip()
    st.caption(BACKBONES[choice].description)
    return choice


def task_input() -> dict[str, Any]:
    """Task name (built-in or hub), or a PendingUpload (None before a file is chosen), and its column mapping."""
    from rmcore.data import HUB_DATASET_PRESETS, TASKS

    source = st.radio("Task", TASK_SOURCES, key=key("task_source"), horizontal=True, persist_state="session",
                      help=field_help(TrainConfig, "task"))
    if source == TASK_SOURCES[0]:
        return {"task": st.selectbox("Built-in task", list(TASKS), key=key("task_builtin"), persist_state="session")}
    if source == TASK_SOURCES[1]:
        task = st.text_input("Dataset name", key=key("task_hub"), persist_state="session",
                             placeholder=", ".join(HUB_DATASET_PRESETS)).strip()
        values = {"task": task, "dataset_split": field_input("dataset_split", label="Split")}
    else:
        upload = st.file_uploader(f"CSV, JSONL or Parquet (≤ {MAX_UPLOAD_BYTES // 2**20} MB)",
                                  type=list(UPLOAD_EXTENSIONS), key=key("task_upload"))
        values = {"task": None if upload is None else PendingUpload(upload.name, upload.getvalue())}
    left, right = st.columns(2)
    with left:
        values["prompt_column"] = field_input("prompt_column", label="Prompt column")
    with right:
        values["reference_column"] = field_input("reference_column", label="Reference column")
    return values


MAIN_FIELDS = ("backbone", "task", "dataset_split", "prompt_column", "reference_column", "loss", "alpha",
               "beta", "gamma", "delta", "reward_model", "reward_aggregation", "kl_coef", "kl_estimator",
               "kl_placement", "kl_target",
               "entropy_coef", "lr", "steps", "batch_size", "samples_per_prompt", "max_new_tokens",
               "temperature", "seed", "name")


OTHER_RM = "Other: a run id or checkpoint folder…"


def reward_model_input() -> str:
    """δ's reward model: a trained reward-model run of this store (name, loss, family and
    held-out accuracy in the list), or any run id or folder typed in."""
    from rmcore.rm_trainer import trained_reward_models
    from ui.runtime import store

    models = {m["id"]: m for m in trained_reward_models(store())}
    options = [*models, OTHER_RM]
    choice_key = key("reward_model_choice")
    if st.session_state.get(choice_key) not in options:  # first draw, or after Reuse / a link
        typed = str(st.session_state.get(key("reward_model"), "")).strip()
        st.session_state[choice_key] = typed if typed in models else (OTHER_RM if typed or not models else options[0])

    def label(run_id: str) -> str:
        if run_id == OTHER_RM:
            return run_id
        m = models[run_id]
        accuracy = "" if m["eval_accuracy"] is None else f" · held-out {m['eval_accuracy']:.0%}"
        return f"{m['name'] or run_id} · {m['loss']}{accuracy} · {run_id}"

    choice = st.selectbox("Reward model", options, key=choice_key, format_func=label,
                          help="A trained reward-model run (Reward model page), or type a run id or folder.")
    if choice != OTHER_RM:
        st.session_state[key("reward_model")] = choice  # what Reuse and a later "Other" start from
        return choice
    return field_input("reward_model", label="Run id or checkpoint folder")


def use_reward_model(run_id: str) -> None:
    """Set the form to weigh reward model ``run_id`` (δ = 1 unless δ is already on)."""
    if _is_zero(str(st.session_state.get(key("delta"), number_text(DEFAULTS["delta"])))):
        st.session_state[key("delta")] = "1"
    st.session_state[key("reward_model")] = run_id
    st.session_state.pop(key("reward_model_choice"), None)  # re-seeded from reward_model


def loss_input(name: str = "loss", label: str = "Loss") -> str:
    from rmcore.algorithms import POLICY_LOSSES

    options = list(POLICY_LOSSES)
    seeded = {} if key(name) in st.session_state else {"index": options.index(DEFAULTS["loss"])}
    loss = st.selectbox(label, options, key=key(name), persist_state="session",
                        format_func=lambda n: POLICY_LOSSES[n].label, help=field_help(TrainConfig, "loss"), **seeded)
    st.caption(POLICY_LOSSES[loss].description)
    return loss


def algorithm_fields() -> tuple[str, ...]:
    """Every TrainConfig field some algorithm declares as its own (Algorithm.options), once each."""
    from rmcore.algorithms import POLICY_LOSSES

    return tuple(dict.fromkeys(name for algo in POLICY_LOSSES.values() for name in algo.options))


def options_input(names: tuple[str, ...] | list[str], columns: int = 2) -> dict[str, Any]:
    """Widgets for the named fields, laid out in columns; returns their values."""
    values, cols = {}, st.columns(columns)
    for i, name in enumerate(names):
        with cols[i % columns]:
            values[name] = field_input(name)
    return values


def train_form() -> dict[str, Any]:
    """The whole Train form; returns the field values as drawn (ui.launch.form_config checks them)."""
    from rmcore.algorithms import POLICY_LOSSES

    values: dict[str, Any] = {}
    model_col, reward_col, optim_col = st.columns(3, gap="large")
    with model_col:
        st.markdown("**Model and data**")
        values["backbone"] = backbone_input()
        values.update(task_input())
    with reward_col:
        st.markdown("**Loss and reward**")
        values["loss"] = loss_input()
        # The chosen loss's own options (its Algorithm.options) sit under it, so a new
        # algorithm's fields appear here without a page edit.
        values.update(options_input(POLICY_LOSSES[values["loss"]].options))
        left, right = st.columns(2)
        for i, name in enumerate(WEIGHTS):
            with (left if i % 2 == 0 else right):
                values[name] = weight_input(name)
        if not _is_zero(values["delta"]):  # δ on: the reward model it weighs
            values["reward_model"] = reward_model_input()
        values["reward_aggregation"] = field_input("reward_aggregation")  # how group algorithms combine the terms
        left, right = st.columns(2)
        with left:
            values["kl_coef"] = field_input("kl_coef")
            values["kl_placement"] = field_input("kl_placement")
            values["kl_target"] = field_input("kl_target")
        with right:
            values["kl_estimator"] = field_input("kl_estimator")
            values["entropy_coef"] = field_input("entropy_coef")
    with optim_col:
        st.markdown("**Optimisation and sampling**")
        left, right = st.columns(2)
        for i, name in enumerate(("lr", "steps", "batch_size", "samples_per_prompt", "max_new_tokens",
                                  "temperature", "seed")):
            with (left if i % 2 == 0 else right):
                values[name] = field_input(name)
        values["name"] = field_input("name")
    owned = algorithm_fields()
    with st.expander("Advanced options"):
        values.update(options_input([f.name for f in dataclasses.fields(TrainConfig)
                                     if f.name not in MAIN_FIELDS and f.name not in owned], columns=4))
    # The other losses' options: "Launch one run per loss" gives each run its own loss's.
    with st.expander("Options of the other losses"):
        values.update(options_input([n for n in owned if n not in values], columns=4))
    return values

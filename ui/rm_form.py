"""The Reward model page's form: every RewardModelConfig field, and the config it launches."""
from __future__ import annotations

import streamlit as st

from rmcore.backbones import BACKBONES
from rmcore.config import DEVICES, PRECISIONS, RM_FAMILIES, RewardModelConfig, field_help
from rmcore.data import TASKS
from rmcore.losses import REWARD_MODEL_LOSSES
from rmcore.rm_family import MARGIN_LOSSES, loss_kwargs, reward_model_kind

OTHER = "Other…"
DEFAULTS = RewardModelConfig()  # the CLI's defaults too
FAMILY_LABELS = {"auto": "auto (embedding for triplet, else scalar)", "scalar": "scalar head",
                 "embedding": "embedding: −distance"}


def loss_label(name: str) -> str:
    return f"{name} — {REWARD_MODEL_LOSSES[name].label}"


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

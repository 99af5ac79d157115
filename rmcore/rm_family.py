"""Which reward-model family a run trains, and which hyperparameters its loss takes.

Pure checks on a RewardModelConfig's loss, family and margin, kept apart from the trainer
so that the config's own validation (rmcore.config) can run them without importing the
trainer and its model-loading stack. The rules come from the loss's registry entry
(rmcore.losses.registry), read at call time, so a newly registered loss follows them too; the
name tuples below are the same rules evaluated once, for code that lists losses.
"""
from __future__ import annotations

from typing import Any

from rmcore.errors import ConfigError
from rmcore.losses.registry import EMBEDDING, REWARD_MODEL_LOSSES, SCALAR, RewardModelLoss, get_reward_model_loss

__all__ = ["EMBEDDING", "EMBEDDING_LOSSES", "MARGIN_DEFAULT", "MARGIN_LOSSES", "SCALAR", "SCALAR_LOSSES",
           "loss_kwargs", "needs_positive_margin", "resolved_margin", "reward_model_kind"]

# RewardModelConfig.margin's default, "the loss's own margin": rmcore.config.MARGIN_DEFAULT, written
# out again because rmcore.config imports this module (tests/test_rm_registry.py checks they agree).
MARGIN_DEFAULT = -1.0
# The hyperparameters a RewardModelConfig field sets, by keyword; the others stay at the loss's default.
CONFIG_FIELDS = {"margin": "margin", "gamma": "focal_gamma"}


def needs_positive_margin(entry: RewardModelLoss) -> bool:
    """A loss whose own default margin is positive is a margin loss (hinge, triplet): with
    m = 0 a model giving every response the same reward already has zero loss."""
    return entry.default("margin") > 0


EMBEDDING_LOSSES = tuple(n for n, e in REWARD_MODEL_LOSSES.items() if SCALAR not in e.families)  # ("triplet",)
SCALAR_LOSSES = tuple(n for n, e in REWARD_MODEL_LOSSES.items() if EMBEDDING not in e.families)  # mse, cross_entropy
MARGIN_LOSSES = tuple(n for n, e in REWARD_MODEL_LOSSES.items() if needs_positive_margin(e))  # hinge, triplet


def reward_model_kind(cfg: Any) -> str:
    """The family a run trains (SCALAR or EMBEDDING): ``cfg.family``, where "auto" is scalar
    for every loss that takes it and embedding for the rest (triplet). The pairwise losses
    (Bradley-Terry, hinge, focal) take either family's rewards; the others fit one family only."""
    families = get_reward_model_loss(cfg.loss).families
    if cfg.family == "auto":
        return SCALAR if SCALAR in families else EMBEDDING
    if cfg.family == SCALAR and SCALAR not in families:
        raise ConfigError(f"The {cfg.loss} loss compares embedding distances: use the embedding family "
                          "(--family embedding or auto).")
    if cfg.family == EMBEDDING and EMBEDDING not in families:
        raise ConfigError(f"The {cfg.loss} loss fits each response's score to a target, and an embedding "
                          "reward (−distance) is never above 0: use the scalar family for it.")
    return cfg.family


def resolved_margin(cfg: Any) -> float:
    """``cfg.margin``, or the loss's own default margin where it is MARGIN_DEFAULT (not given):
    1 for hinge and triplet, 0 for Bradley-Terry and focal, 0 for a loss that takes none."""
    if cfg.margin == MARGIN_DEFAULT:
        return get_reward_model_loss(cfg.loss).default("margin")
    return cfg.margin


def loss_kwargs(cfg: Any) -> dict[str, float]:
    """The config's hyperparameters that the chosen loss takes, by keyword; the margin resolved.

    Focal takes the margin too, so that focal with γ = 0 is Bradley-Terry with the same m.
    """
    entry = get_reward_model_loss(cfg.loss)
    margin = resolved_margin(cfg)
    if needs_positive_margin(entry) and margin <= 0:
        raise ConfigError(f"The {cfg.loss} loss needs a positive margin (e.g. --margin 1): with m = 0 "
                          "a model giving every response the same reward already has zero loss.")
    kwargs = {"center_coef": cfg.center_coef}
    for name in entry.hyperparameters:
        if name in CONFIG_FIELDS:
            kwargs[name] = margin if name == "margin" else getattr(cfg, CONFIG_FIELDS[name])
    return kwargs

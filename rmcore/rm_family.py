"""Which reward-model family a run trains, and which hyperparameters its loss takes.

Pure checks on a RewardModelConfig's loss, family and margin, kept apart from the trainer
so that the config's own validation (rmcore.config) can run them without importing the
trainer and its model-loading stack.
"""
from __future__ import annotations

from typing import Any

from rmcore.errors import ConfigError

SCALAR, EMBEDDING = "scalar", "embedding"
EMBEDDING_LOSSES = ("triplet",)  # defined on distances: embedding family only
SCALAR_LOSSES = ("mse", "cross_entropy")  # each response against a target: needs an unbounded score
MARGIN_LOSSES = ("hinge", "triplet")  # with m = 0, constant rewards already reach zero loss


def reward_model_kind(cfg: Any) -> str:
    """The family a run trains (SCALAR or EMBEDDING): ``cfg.family``, where "auto" is
    embedding for triplet and scalar for the rest. The pairwise losses (Bradley-Terry, hinge,
    focal) take either family's rewards; the others fit one family only."""
    if cfg.family == "auto":
        return EMBEDDING if cfg.loss in EMBEDDING_LOSSES else SCALAR
    if cfg.family == SCALAR and cfg.loss in EMBEDDING_LOSSES:
        raise ConfigError(f"The {cfg.loss} loss compares embedding distances: use the embedding family "
                          "(--family embedding or auto).")
    if cfg.family == EMBEDDING and cfg.loss in SCALAR_LOSSES:
        raise ConfigError(f"The {cfg.loss} loss fits each response's score to a target, and an embedding "
                          "reward (−distance) is never above 0: use the scalar family for it.")
    return cfg.family


def loss_kwargs(cfg: Any) -> dict[str, float]:
    """The config's hyperparameters that the chosen loss takes, by keyword.

    Focal takes the margin too, so that focal with γ = 0 is Bradley-Terry with the same m.
    """
    if cfg.loss in MARGIN_LOSSES and cfg.margin <= 0:
        raise ConfigError(f"The {cfg.loss} loss needs a positive margin (e.g. --margin 1): with m = 0 "
                          "a model giving every response the same reward already has zero loss.")
    kwargs = {"center_coef": cfg.center_coef}
    if cfg.loss in ("bradley_terry", "focal", *MARGIN_LOSSES):
        kwargs["margin"] = cfg.margin
    if cfg.loss == "focal":
        kwargs["gamma"] = cfg.focal_gamma
    return kwargs

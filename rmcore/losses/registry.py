"""The reward-model loss registry: one entry per loss, everything the config, trainer and app need.

An entry holds the function, the label the app shows, the families whose rewards it can
train on, its own hyperparameters with their defaults (hinge and triplet default to margin 1,
so ``train-rm --loss hinge`` trains as typed), a sentence on what it does, and how the Loss
Playground draws it. rmcore.rm_family derives the family and margin rules from these entries
and the playground builds its reward-model section from them, so adding a loss is one entry
here, not an edit of ui/ or of hand-kept name lists.
"""
from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from torch import Tensor

from rmcore.errors import ConfigError
from rmcore.losses.reward_model import (
    bradley_terry_loss,
    cross_entropy_loss,
    focal_loss,
    hinge_loss,
    mse_loss,
    triplet_loss,
)

SCALAR, EMBEDDING = "scalar", "embedding"  # the reward-model families (rmcore.rm_family re-exports them)
FAMILIES = (SCALAR, EMBEDDING)
REWARDS, DISTANCES = "rewards", "distances"  # what a loss takes: r_c, r_r or d_c, d_r with r = −d
LossFn = Callable[..., tuple[Tensor, dict[str, float]]]


@dataclass(frozen=True)
class Knob:
    """One Loss-Playground slider for a hyperparameter: its URL key, label, range and step.

    Entries that give the same key share one slider (Bradley-Terry and focal share m, so focal
    at γ = 0 draws exactly over Bradley-Terry). start: the slider's first value where the
    loss's default would hide another curve; None = the entry's default.
    """
    key: str
    label: str
    low: float
    high: float
    step: float
    advanced: bool = True
    start: float | None = None


@dataclass(frozen=True)
class PlaygroundCurve:
    """How the Loss Playground draws the loss against the score margin Δ = r_c − r_r.

    formula: LaTeX shown above the chart. knobs: hyperparameter -> its slider; one not listed
    stays at its default. color: the curve's colour ("" = the next one of the page's palette).
    """
    formula: str
    knobs: Mapping[str, Knob] = field(default_factory=dict)
    color: str = ""


@dataclass(frozen=True)
class RewardModelLoss:
    """A registered reward-model loss. Calling it calls ``fn``, and its ``__doc__`` is fn's,
    so the entry stands in for the bare function that callers got before entries existed.

    hyperparameters: the loss's own keywords with their defaults (center_coef, which every loss
    takes, is not listed). inputs: REWARDS, or DISTANCES for a loss defined on embedding
    distances (its arguments are d = −r).
    """
    name: str
    label: str
    fn: LossFn
    families: frozenset[str]
    hyperparameters: Mapping[str, float]
    description: str
    curve: PlaygroundCurve
    inputs: str = REWARDS

    def __post_init__(self) -> None:
        """Refuse an entry that could not work, when it is registered rather than mid-run."""
        keywords = {p.name for p in inspect.signature(self.fn).parameters.values() if p.kind is p.KEYWORD_ONLY}
        if not self.families or not self.families <= set(FAMILIES):
            raise ValueError(f"{self.name}: families must be a non-empty subset of {FAMILIES}.")
        if not set(self.hyperparameters) <= keywords or "center_coef" not in keywords:
            raise ValueError(f"{self.name}: hyperparameters and center_coef must be keywords of {self.fn.__name__}.")
        if not set(self.curve.knobs) <= set(self.hyperparameters) or self.inputs not in (REWARDS, DISTANCES):
            raise ValueError(f"{self.name}: knobs must name hyperparameters; inputs must be rewards or distances.")
        object.__setattr__(self, "__doc__", self.fn.__doc__)

    def __call__(self, chosen: Tensor, rejected: Tensor, **kwargs: float) -> tuple[Tensor, dict[str, float]]:
        return self.fn(chosen, rejected, **kwargs)

    def default(self, name: str, fallback: float = 0.0) -> float:
        """The loss's default for hyperparameter ``name``; fallback when it takes none."""
        return self.hyperparameters.get(name, fallback)


BT_MARGIN = Knob("rm_m", "BT / focal margin m", -2.0, 3.0, 0.1, advanced=False)  # shared: see Knob

REWARD_MODEL_LOSSES: dict[str, RewardModelLoss] = {loss.name: loss for loss in (
    RewardModelLoss(
        "bradley_terry", "Bradley-Terry", bradley_terry_loss, frozenset(FAMILIES), {"margin": 0.0},
        "Never stops pushing: its gradient only fades as Δ grows.",
        PlaygroundCurve(r"\mathrm{BT} = -\log\sigma(\Delta - m)", {"margin": BT_MARGIN}, "#4C5FD5")),
    RewardModelLoss(
        "hinge", "Margin ranking", hinge_loss, frozenset(FAMILIES), {"margin": 1.0},
        "Stops dead once Δ clears the margin; it needs m > 0, since with m = 0 equal rewards already score 0.",
        PlaygroundCurve(r"\mathrm{hinge} = \max(0, m_h - \Delta)",
                        {"margin": Knob("rm_hm", "Hinge margin m_h", 0.0, 3.0, 0.1)}, "#E4572E")),
    RewardModelLoss(
        "mse", "Regression on target scores", mse_loss, frozenset({SCALAR}),
        {"chosen_target": 1.0, "rejected_target": 0.0},
        "Scores each response alone and pulls Δ back towards t_c − t_r from both sides, so a reward model "
        "trained with it never becomes over-confident.",
        PlaygroundCurve(r"\mathrm{MSE} = \tfrac12\big[(r_c - t_c)^2 + (r_r - t_r)^2\big]",
                        {"chosen_target": Knob("rm_tc", "MSE target t_c", -2.0, 2.0, 0.1),
                         "rejected_target": Knob("rm_tr", "MSE target t_r", -2.0, 2.0, 0.1)}, "#17BEBB")),
    RewardModelLoss(
        "cross_entropy", "Pointwise good/bad classification", cross_entropy_loss, frozenset({SCALAR}), {},
        "Scores each response alone, as the logit of \"this response is good\".",
        PlaygroundCurve(r"\mathrm{CE} = \tfrac12\big[-\log\sigma(r_c) - \log(1-\sigma(r_r))\big]",
                        color="#76B041")),
    RewardModelLoss(
        "focal", "Focal Bradley-Terry", focal_loss, frozenset(FAMILIES), {"gamma": 2.0, "margin": 0.0},
        "Bradley-Terry with the pairs already ranked well turned down by (1 − p)^γ; γ = 0 is Bradley-Terry.",
        PlaygroundCurve(r"\mathrm{focal} = -(1-p)^{\gamma}\log p,\; p = \sigma(\Delta - m)",
                        {"gamma": Knob("rm_gamma", "Focal γ", 0.0, 5.0, 0.5, advanced=False), "margin": BT_MARGIN},
                        "#FFC914")),
    RewardModelLoss(
        "triplet", "Triplet margin loss", triplet_loss, frozenset({EMBEDDING}), {"margin": 1.0},
        "The hinge on embedding distances, with the prompt as anchor: stops once the rejected response is "
        "farther than the chosen one by the margin.",
        PlaygroundCurve(r"\mathrm{triplet} = \max(0, m_t + d_c - d_r),\; d_r - d_c = \Delta",
                        # starts at 0.5, not its default 1, so that its curve does not hide hinge's
                        {"margin": Knob("rm_tm", "Triplet margin m_t", 0.0, 3.0, 0.1, start=0.5)}, "#9B5DE5"),
        inputs=DISTANCES),
)}


def get_reward_model_loss(name: str) -> RewardModelLoss:
    """The reward-model loss registered under ``name``; ConfigError (a ValueError) if none."""
    if name not in REWARD_MODEL_LOSSES:
        raise ConfigError(f"Unknown reward-model loss '{name}'; valid: {', '.join(REWARD_MODEL_LOSSES)}.")
    return REWARD_MODEL_LOSSES[name]

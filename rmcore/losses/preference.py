"""Preference losses on summed response log-probs: DPO and its relatives (IPO, SLiC), and SimPO.

Every loss here reads a pair (chosen y_c, rejected y_r) of responses to one prompt and
returns ``(loss, stats)``; the stats hold the implicit rewards the loss assigns, so that
each relative's accuracy and margin are read on one scale. DPO, IPO and SLiC compare the
policy to a frozen reference through

    h = (log π(y_c) − log π_ref(y_c)) − (log π(y_r) − log π_ref(y_r))

and differ only in the function of h they minimise; SimPO needs no reference at all.
"""
from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F
from torch import Tensor

from rmcore.errors import ConfigError
from rmcore.metrics import IMPLICIT_ACCURACY, IMPLICIT_CHOSEN, IMPLICIT_MARGIN, IMPLICIT_REJECTED

# Each variant as a per-pair loss of the log-ratio margin h and its coefficient; DPO_VARIANTS
# names them in order (the ipo and slic algorithms select theirs by name).
_PER_PAIR: dict[str, Callable[[Tensor, float], Tensor]] = {
    "sigmoid": lambda h, beta: -F.logsigmoid(beta * h),
    "ipo": lambda h, beta: (h - 1 / (2 * beta)) ** 2,
    "hinge": lambda h, beta: torch.relu(1 - beta * h),
}
DPO_VARIANTS = tuple(_PER_PAIR)


def implicit_reward_stats(chosen_rewards: Tensor, rejected_rewards: Tensor) -> dict[str, float]:
    """Means of the implicit rewards of chosen and rejected (B,), their margin, and the accuracy
    (share of pairs whose chosen reward is strictly the higher)."""
    chosen_rewards, rejected_rewards = chosen_rewards.detach(), rejected_rewards.detach()
    return {IMPLICIT_CHOSEN: chosen_rewards.mean().item(),
            IMPLICIT_REJECTED: rejected_rewards.mean().item(),
            IMPLICIT_MARGIN: (chosen_rewards - rejected_rewards).mean().item(),
            IMPLICIT_ACCURACY: (chosen_rewards > rejected_rewards).float().mean().item()}


def dpo_loss(policy_chosen_logps: Tensor, policy_rejected_logps: Tensor,
             ref_chosen_logps: Tensor, ref_rejected_logps: Tensor, *, beta: float = 0.1,
             variant: str = "sigmoid", name: str = "dpo") -> tuple[Tensor, dict[str, float]]:
    """Direct preference optimisation and two relatives, on summed response log-probs.

        h = (log π(y_c) − log π_ref(y_c)) − (log π(y_r) − log π_ref(y_r)),  logits = β·h
        sigmoid: −log σ(β h)            Rafailov et al. 2023, arXiv:2305.18290 eq. 7
        ipo:     (h − 1/(2β))²          Azar et al. 2023, arXiv:2310.12036 eq. 17 (β is their τ)
        hinge:   max(0, 1 − β h)        SLiC-HF, Zhao et al. 2023, arXiv:2305.10425 (margin 1/β)

    All inputs: (B,) log-probs summed over each response's tokens. Mean over B.
    stats: loss/<name> (loss/dpo; the ipo and slic algorithms log under their own names);
    policy/implicit_reward_chosen and _rejected (mean implicit rewards
    β·(log π − log π_ref)), policy/implicit_reward_margin (their mean difference),
    policy/implicit_reward_accuracy (fraction of pairs whose chosen implicit reward is higher).
    """
    if beta <= 0:
        raise ConfigError(f"DPO beta must be positive, got {beta}.")
    if variant not in DPO_VARIANTS:
        raise ConfigError(f"Unknown DPO variant '{variant}'; valid: {', '.join(DPO_VARIANTS)}.")
    chosen_logratio = policy_chosen_logps - ref_chosen_logps.detach()        # (B,)
    rejected_logratio = policy_rejected_logps - ref_rejected_logps.detach()  # (B,)
    h = chosen_logratio - rejected_logratio                                  # (B,)
    loss = _PER_PAIR[variant](h, beta).mean()
    return loss, {f"loss/{name}": loss.item(), **implicit_reward_stats(beta * chosen_logratio, beta * rejected_logratio)}


def simpo_loss(chosen_logps: Tensor, rejected_logps: Tensor, chosen_lengths: Tensor, rejected_lengths: Tensor, *,
               beta: float = 2.0, gamma: float = 1.0) -> tuple[Tensor, dict[str, float]]:
    """SimPO: a reference-free, length-normalised preference loss with a target margin.

        r(y) = β / |y| · log π(y | x)                       the average log-prob as the reward
        L    = −log σ(r(y_c) − r(y_r) − γ)                  Meng et al. 2024, arXiv:2405.14734 eq. 6

    No π_ref: the reward is the policy's own average log-likelihood, so a longer response
    earns nothing for its length, and γ asks the chosen one to win by a margin.
    chosen_logps, rejected_logps: (B,) summed response log-probs; chosen_lengths,
    rejected_lengths: (B,) response lengths in tokens (at least 1). Mean over B.
    stats: loss/simpo and the implicit-reward statistics of r (chosen, rejected, margin, accuracy).
    """
    if beta <= 0:
        raise ConfigError(f"SimPO beta must be positive, got {beta}.")
    chosen_rewards = beta * chosen_logps / chosen_lengths.clamp(min=1)          # (B,)
    rejected_rewards = beta * rejected_logps / rejected_lengths.clamp(min=1)    # (B,)
    loss = -F.logsigmoid(chosen_rewards - rejected_rewards - gamma).mean()
    return loss, {"loss/simpo": loss.item(), **implicit_reward_stats(chosen_rewards, rejected_rewards)}

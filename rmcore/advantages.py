"""Advantage estimators and baselines, kept apart from the losses that consume them.

Sequence-level estimators take ``rewards`` of shape (N,) flattened prompt-major, i.e.
sample g of prompt p sits at index p·G + g, and work on a (N / G, G) view, one row per
prompt. Their outputs are plain tensors without gradient (advantages are constants in
the policy loss). Token-level GAE works on (B, T) with the response mask.
"""
from __future__ import annotations

from typing import Callable

import torch
from torch import Tensor

from rmcore.errors import ConfigError
from rmcore.losses.common import masked_mean, masked_var


def _grouped(rewards: Tensor, group_size: int) -> Tensor:
    """View (N,) prompt-major rewards as (N / G, G); a group of one has no baseline."""
    if group_size < 2:
        raise ConfigError(f"samples per prompt must be at least 2 for a group baseline, got {group_size}.")
    if rewards.dim() != 1 or rewards.numel() % group_size != 0:
        raise ValueError(f"rewards must be 1-D with a length divisible by {group_size}, "
                         f"got shape {tuple(rewards.shape)}.")
    return rewards.detach().view(-1, group_size)  # (P, G)


def reward_advantages(rewards: Tensor) -> Tensor:
    """Plain REINFORCE: A_i = r_i, no baseline (Williams 1992). rewards: (N,) -> (N,)."""
    return rewards.detach().clone()


def baseline_advantages(rewards: Tensor, baseline: float | Tensor) -> Tensor:
    """A_i = r_i − b with a baseline b independent of the sample (e.g. a moving average).

    rewards: (N,); baseline: a float or a tensor broadcastable to (N,). Returns (N,).
    """
    return rewards.detach() - baseline


def ema_baseline_update(baseline: float | None, rewards_mean: float, decay: float) -> float:
    """Exponential moving average of the batch mean reward: b ← decay·b + (1 − decay)·r̄.

    The first call (baseline None) returns r̄ itself, so early steps are not pulled to 0.
    Use the baseline from *before* this batch for its advantages, so b_i stays independent
    of r_i and the gradient estimate unbiased.
    """
    if not 0.0 <= decay <= 1.0:
        raise ConfigError(f"baseline decay must be in [0, 1], got {decay}.")
    if baseline is None:
        return float(rewards_mean)
    return float(decay * baseline + (1.0 - decay) * rewards_mean)


def self_critical_advantages(rewards: Tensor, greedy_rewards: Tensor) -> Tensor:
    """Self-critical baseline: A_i = r(y_i) − r(ŷ_i), ŷ_i the greedy decode of the prompt.

    Rennie et al. 2017, "Self-critical sequence training", arXiv:1612.00563.
    rewards, greedy_rewards: (N,) -> (N,).
    """
    if rewards.shape != greedy_rewards.shape:
        raise ValueError(f"rewards {tuple(rewards.shape)} and greedy_rewards "
                         f"{tuple(greedy_rewards.shape)} must have the same shape.")
    return rewards.detach() - greedy_rewards.detach()


def rloo_advantages(rewards: Tensor, group_size: int) -> Tensor:
    """REINFORCE leave-one-out: A_i = r_i − 1/(G−1) Σ_{j≠i} r_j within each prompt's group.

    Kool et al. 2019 "Buy 4 REINFORCE samples, get a baseline for free!"; Ahmadian et al.
    2024 arXiv:2402.14740. Equals G/(G−1)·(r_i − mean_group). rewards: (N,) -> (N,).
    """
    grouped = _grouped(rewards, group_size)                               # (P, G)
    loo_baseline = (grouped.sum(dim=1, keepdim=True) - grouped) / (group_size - 1)  # (P, G)
    return (grouped - loo_baseline).reshape(-1)                          # (N,)


def group_normalized_advantages(rewards: Tensor, group_size: int, eps: float = 1e-4,
                                scale: bool = True) -> Tensor:
    """GRPO advantages: A_i = (r_i − mean_group) / (std_group + eps).

    Shao et al. 2024 (DeepSeekMath), arXiv:2402.03300 §4.1.2 ("outcome supervision").
    std is torch.std's default, the unbiased (G − 1) estimate, and eps = 1e-4 is added
    outside the root: both as in TRL's GRPOTrainer, so numbers match it. scale=False
    keeps only the mean-centring, as Dr. GRPO recommends (arXiv:2503.20783).
    rewards: (N,) prompt-major -> (N,).
    """
    grouped = _grouped(rewards, group_size)                   # (P, G)
    centred = grouped - grouped.mean(dim=1, keepdim=True)     # (P, G)
    if scale:
        centred = centred / (grouped.std(dim=1, keepdim=True) + eps)
    return centred.reshape(-1)                                # (N,)


def terminal_rewards(rewards: Tensor, mask: Tensor) -> Tensor:
    """Place each sequence's scalar reward on its last response token, zeros elsewhere.

    rewards: (B,); mask: (B, T) -> (B, T). The caller may then add per-token terms (e.g.
    −β·KL) before calling ``gae``. Every row needs at least one response token.
    """
    valid = mask > 0                                                         # (B, T)
    if not bool(valid.any(dim=1).all()):
        raise ValueError("every sequence needs at least one response token in its mask.")
    positions = torch.arange(mask.shape[1], device=mask.device).expand_as(mask)  # (B, T)
    last = torch.where(valid, positions, -1).argmax(dim=1, keepdim=True)    # (B, 1)
    out = torch.zeros(mask.shape, dtype=rewards.dtype, device=rewards.device)
    return out.scatter(1, last, rewards.detach().unsqueeze(1))               # (B, T)


@torch.no_grad()
def gae(token_rewards: Tensor, values: Tensor, mask: Tensor, gamma: float,
        lam: float) -> tuple[Tensor, Tensor]:
    """Generalised advantage estimation over response tokens, and the value targets.

        δ_t = r_t + γ V_{t+1} − V_t,    A_t = δ_t + γλ A_{t+1},    R_t = A_t + V_t

    Schulman et al. 2016, arXiv:1506.02438 eq. 16. The recursion runs backward over the
    valid tokens only: "t+1" is the next masked-in token, and after the last one V = 0
    (the episode ends at EOS or the length limit). So right padding, left padding or both
    give the same numbers as the unpadded sequence; masked-out positions are 0.
    token_rewards, values, mask: (B, T). Returns (advantages, returns), both (B, T), no grad.
    """
    mask = mask.to(values.dtype)
    advantages = torch.zeros_like(values)                     # (B, T)
    next_value = torch.zeros_like(values[:, 0])               # (B,)
    next_advantage = torch.zeros_like(values[:, 0])           # (B,)
    for t in reversed(range(values.shape[1])):
        m = mask[:, t]                                        # (B,)
        delta = token_rewards[:, t] + gamma * next_value - values[:, t]
        advantage_t = delta + gamma * lam * next_advantage
        advantages[:, t] = advantage_t * m
        # A padding position passes the later token's value and advantage through.
        next_value = m * values[:, t] + (1 - m) * next_value
        next_advantage = m * advantage_t + (1 - m) * next_advantage
    returns = (advantages + values) * mask
    return advantages, returns


def whiten(x: Tensor, mask: Tensor | None = None, shift_mean: bool = True,
           eps: float = 1e-8) -> Tensor:
    """(x − mean) / sqrt(var + eps) over the valid elements, as TRL's ``masked_whiten``.

    PPO whitens its GAE advantages over all valid tokens of the batch (unbiased variance)
    so the step size does not depend on the reward scale. shift_mean=False adds the mean
    back (only rescales). x: any shape; mask: same shape or None. Masked-out entries -> 0.
    """
    mask = torch.ones_like(x) if mask is None else mask.to(x.dtype)
    mean, var = masked_mean(x, mask), masked_var(x, mask)
    whitened = (x - mean) * torch.rsqrt(var + eps)
    if not shift_mean:
        whitened = whitened + mean
    return whitened * mask


def returns_to_go(token_rewards: Tensor, mask: Tensor, gamma: float = 1.0) -> Tensor:
    """G_t = Σ_{s ≥ t} γ^(s−t) r_s over the valid tokens of each row (REINFORCE++'s returns).

    GAE with V ≡ 0 and λ = 1 is exactly this sum, padding handled the same way.
    token_rewards, mask: (B, T) -> (B, T), 0 on masked-out positions, no grad.
    """
    to_go, _ = gae(token_rewards, torch.zeros_like(token_rewards), mask, gamma, 1.0)  # A_t = G_t when V ≡ 0
    return to_go


ADVANTAGE_ESTIMATORS: dict[str, Callable[..., Tensor | tuple[Tensor, Tensor]]] = {
    "reward": reward_advantages,
    "baseline": baseline_advantages,
    "rloo": rloo_advantages,
    "grpo": group_normalized_advantages,
    "gae": gae,
}


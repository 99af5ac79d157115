"""GRPO's successors that change where the importance ratio is clipped: GSPO and CISPO.

GRPO (and PPO) clip each token's ratio ρ_t = π(y_t)/π_old(y_t), and a clipped token gives
no gradient at all. GSPO clips one ratio per *sequence* instead, so a sequence is kept or
dropped whole; CISPO clips the ratio only as a detached *weight*, so every token keeps its
gradient and only its size is bounded. Dr. GRPO and DAPO need no loss of their own: they are
rmcore.losses.policy.clipped_surrogate_loss with another reduction (Dr. GRPO) or a higher
upper clip (DAPO), set by their algorithm modules.
"""
from __future__ import annotations

import torch
from torch import Tensor

from rmcore.losses.common import masked_mean, reduce_loss
from rmcore.metrics import APPROX_KL, CLIPFRAC, CLIPFRAC_HIGH, CLIPFRAC_LOW, RATIO_MEAN


def gspo_loss(logprobs: Tensor, old_logprobs: Tensor, advantages: Tensor, mask: Tensor, *,
              clip_eps_low: float = 3e-4, clip_eps_high: float = 4e-4) -> tuple[Tensor, dict[str, float]]:
    """GSPO: PPO's clipped objective on one length-normalised ratio per sequence.

        s_i = (π(y_i | x) / π_old(y_i | x))^(1/|y_i|) = exp(1/|y_i| Σ_t (log π − log π_old))
        L   = 1/B Σ_i −min(s_i A_i, clip(s_i, 1 − ε_low, 1 + ε_high) A_i)

    Zheng et al. 2025, arXiv:2507.18071 eq. 5 and 7; their ε are 3e-4 and 4e-4, since s_i
    is a geometric mean and moves far less than a token's ratio. The gradient of an unclipped
    sequence is s_i A_i · 1/|y_i| Σ_t ∇log π(y_t): every token of it weighs the same.
    logprobs, old_logprobs, mask: (B, T); advantages: (B,), one per sequence (the group's).
    A row without response tokens counts as 0, as in seq_mean.
    stats: loss/policy; policy/clipfrac (share of sequences whose clip binds), _low and _high;
    policy/approx_kl (token-level k3 of KL(π_old ‖ π), as for GRPO); policy/ratio_mean (mean s_i).
    """
    if advantages.dim() != 1 or advantages.shape[0] != logprobs.shape[0]:
        raise ValueError(f"GSPO needs one advantage per sequence, shape ({logprobs.shape[0]},); "
                         f"got {tuple(advantages.shape)}.")
    advantages = advantages.detach()
    log_ratio = logprobs - old_logprobs.detach()                               # (B, T)
    seq_log_ratio = masked_mean(log_ratio, mask, dim=1)                        # (B,)
    ratio = torch.exp(seq_log_ratio)
    unclipped = ratio * advantages
    clipped = torch.clamp(ratio, 1.0 - clip_eps_low, 1.0 + clip_eps_high) * advantages
    valid = (mask.sum(1) > 0).to(logprobs.dtype)                               # (B,)
    loss = (-torch.min(unclipped, clipped) * valid).sum() / max(logprobs.shape[0], 1)
    with torch.no_grad():
        active = clipped < unclipped                                           # (B,) bool
        token_ratio = torch.exp(log_ratio)

        def share(flags: Tensor) -> float:
            return ((flags.to(valid.dtype) * valid).sum() / valid.sum().clamp(min=1)).item()

        stats = {"loss/policy": loss.item(), CLIPFRAC: share(active), CLIPFRAC_LOW: share(active & (advantages < 0)),
                 CLIPFRAC_HIGH: share(active & (advantages > 0)),
                 APPROX_KL: masked_mean((token_ratio - 1) - log_ratio, mask).item(),
                 RATIO_MEAN: ((ratio * valid).sum() / valid.sum().clamp(min=1)).item()}
    return loss, stats


def cispo_loss(logprobs: Tensor, old_logprobs: Tensor, advantages: Tensor, mask: Tensor, *,
               clip_eps_high: float = 4.0, clip_eps_low: float | None = None, loss_norm: str = "token_mean",
               max_len: int | None = None) -> tuple[Tensor, dict[str, float]]:
    """CISPO: REINFORCE weighted by a clipped, detached importance ratio; no token loses its gradient.

        r̂_t = clip(ρ_t, 1 − ε_low, 1 + ε_high),   ρ_t = π(y_t) / π_old(y_t)
        L   = reduce_t(−sg(r̂_t) · A_t · log π(y_t))

    MiniMax-M1, arXiv:2506.13585 eq. 4–5: there is no lower bound (clip_eps_low None), and the
    upper one bounds the weight, not the update; 1 + ε_high = 5 is the ScaleRL bound
    (arXiv:2510.13786) that TRL recommends. At ρ = 1 the gradient is REINFORCE's.
    logprobs, old_logprobs, mask: (B, T); advantages: (B,) or (B, T), held constant.
    stats: loss/policy; policy/clipfrac (share of valid tokens whose weight is truncated, split
    into _low and _high by side); policy/approx_kl; policy/ratio_mean.
    """
    if advantages.dim() == 1:
        advantages = advantages.unsqueeze(1).expand_as(logprobs)               # (B, T)
    advantages = advantages.detach()
    log_ratio = (logprobs - old_logprobs.detach()).detach()                   # (B, T)
    ratio = torch.exp(log_ratio)
    low = None if clip_eps_low is None else 1.0 - clip_eps_low
    weight = torch.clamp(ratio, min=low, max=1.0 + clip_eps_high)             # (B, T), no gradient
    loss = reduce_loss(-weight * advantages * logprobs, mask, loss_norm, max_len)
    with torch.no_grad():
        over = (ratio > 1.0 + clip_eps_high).to(logprobs.dtype)
        under = (ratio < low).to(logprobs.dtype) if low is not None else torch.zeros_like(ratio)
        stats = {"loss/policy": loss.item(), CLIPFRAC: masked_mean(over + under, mask).item(),
                 CLIPFRAC_LOW: masked_mean(under, mask).item(), CLIPFRAC_HIGH: masked_mean(over, mask).item(),
                 APPROX_KL: masked_mean((ratio - 1) - log_ratio, mask).item(),
                 RATIO_MEAN: masked_mean(ratio, mask).item()}
    return loss, stats

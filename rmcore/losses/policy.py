"""Policy losses: each builds a per-token loss (B, T) and reduces it once with reduce_loss.

Every loss returns ``(loss, stats)``: a scalar with gradient and detached floats under
namespaced keys. ``loss_norm`` is token_mean, seq_mean or fixed_sum (see reduce_loss);
``max_len`` is the fixed_sum constant. KL to the reference and the entropy bonus are not
in here: the caller adds them through rmcore.kl and entropy_from_logits, so all losses
share one implementation of each.
"""
from __future__ import annotations

import torch
from torch import Tensor

from rmcore.errors import ConfigError
from rmcore.losses.common import masked_mean, reduce_loss
from rmcore.metrics import APPROX_KL, CLIPFRAC, CLIPFRAC_HIGH, CLIPFRAC_LOW, RATIO_MEAN, VALUE_CLIPFRAC

def _per_token(x: Tensor, like: Tensor) -> Tensor:
    """Broadcast a per-sequence (B,) tensor over tokens to (B, T); pass (B, T) through."""
    if x.dim() == 1 and x.shape[0] == like.shape[0]:
        return x.unsqueeze(1).expand_as(like)                 # (B, T)
    if x.shape == like.shape:
        return x
    raise ValueError(f"expected shape ({like.shape[0]},) or {tuple(like.shape)}, got {tuple(x.shape)}.")


def token_logprobs(logits: Tensor, tokens: Tensor) -> Tensor:
    """log π(token_t | context) for each position: log_softmax then gather.

    logits: (B, T, V) already aligned so logits[:, t] predicts tokens[:, t];
    tokens: (B, T) int64. Returns (B, T).
    """
    return torch.log_softmax(logits, dim=-1).gather(-1, tokens.unsqueeze(-1)).squeeze(-1)


def entropy_from_logits(logits: Tensor) -> Tensor:
    """Entropy H = −Σ_v p_v log p_v of each position's next-token distribution.

    logits: (B, T, V) -> (B, T). Computed from log_softmax, so no exp overflows; vocabulary
    entries masked with −inf count as p·log p = 0 instead of 0·(−inf) = NaN.
    """
    logp = torch.log_softmax(logits, dim=-1)                  # (B, T, V)
    finite_logp = torch.where(torch.isfinite(logp), logp, torch.zeros_like(logp))
    return -(logp.exp() * finite_logp).sum(dim=-1)            # (B, T)


def mle_loss(logprobs: Tensor, mask: Tensor, *, loss_norm: str = "token_mean",
             max_len: int | None = None) -> tuple[Tensor, dict[str, float]]:
    """Maximum likelihood (teacher-forced cross-entropy) on reference responses.

        L = reduce(−log π(y*_t | x, y*_<t))

    logprobs: (B, T) log-probs of the reference tokens; mask: (B, T).
    stats: loss/mle, and loss/nll_token, the token-mean NLL whatever loss_norm is
    (exp of it is the perplexity).
    """
    loss = reduce_loss(-logprobs, mask, loss_norm, max_len)
    nll = masked_mean(-logprobs.detach(), mask)
    return loss, {"loss/mle": loss.item(), "loss/nll_token": nll.item()}


def policy_gradient_loss(logprobs: Tensor, advantages: Tensor, mask: Tensor, *,
                         loss_norm: str = "token_mean",
                         max_len: int | None = None) -> tuple[Tensor, dict[str, float]]:
    """REINFORCE: L = reduce(−A · log π(y_t | x, y_<t)), A held constant.

    Williams 1992, "Simple statistical gradient-following algorithms". With A = r it is
    plain REINFORCE, with A = r − b the baseline, RLOO or self-critical variant.
    logprobs: (B, T); advantages: (B,) per sequence (broadcast over tokens) or (B, T);
    mask: (B, T). stats: loss/policy.
    """
    advantages = _per_token(advantages.detach(), logprobs)   # (B, T)
    loss = reduce_loss(-advantages * logprobs, mask, loss_norm, max_len)
    return loss, {"loss/policy": loss.item()}


def clipped_surrogate_loss(logprobs: Tensor, old_logprobs: Tensor, advantages: Tensor,
                           mask: Tensor, *, clip_eps: float = 0.2, clip_eps_high: float | None = None,
                           loss_norm: str = "token_mean",
                           max_len: int | None = None) -> tuple[Tensor, dict[str, float]]:
    """PPO clipped surrogate: L = reduce(−min(ρ_t A_t, clip(ρ_t, 1 − ε_low, 1 + ε_high) A_t)).

    ρ_t = exp(log π − log π_old). Schulman et al. 2017, arXiv:1707.06347 eq. 7, where
    ε_low = ε_high = clip_eps. clip_eps_high (None = clip_eps) raises the upper bound alone:
    DAPO's clip-higher (Yu et al. 2025, arXiv:2503.14476 eq. 10), which lets a token whose
    probability is low grow further before its gradient stops.
    logprobs, old_logprobs, mask: (B, T); advantages: (B,) or (B, T), held constant.
    stats: loss/policy; policy/clipfrac, the fraction of valid tokens where the clipped
    term is strictly the smaller one (there the token gives no gradient; note CleanRL
    counts |ρ − 1| > ε instead), split into policy/clipfrac_low (ρ < 1 − ε_low, A < 0) and
    policy/clipfrac_high (ρ > 1 + ε_high, A > 0); policy/approx_kl, the mean over valid tokens
    of (ρ − 1) − log ρ, the k3 estimate of KL(π_old ‖ π) (as CleanRL); policy/ratio_mean.
    """
    eps_high = clip_eps if clip_eps_high is None else clip_eps_high
    advantages = _per_token(advantages.detach(), logprobs)             # (B, T)
    log_ratio = logprobs - old_logprobs.detach()                       # (B, T)
    ratio = torch.exp(log_ratio)
    unclipped = ratio * advantages
    clipped = torch.clamp(ratio, 1.0 - clip_eps, 1.0 + eps_high) * advantages
    loss = reduce_loss(-torch.min(unclipped, clipped), mask, loss_norm, max_len)
    with torch.no_grad():
        clip_active = clipped < unclipped                              # (B, T) bool
        approx_kl = (ratio - 1) - log_ratio
        stats = {"loss/policy": loss.item(),
                 CLIPFRAC: masked_mean(clip_active.to(logprobs.dtype), mask).item(),
                 CLIPFRAC_LOW: masked_mean((clip_active & (advantages < 0)).to(logprobs.dtype), mask).item(),
                 CLIPFRAC_HIGH: masked_mean((clip_active & (advantages > 0)).to(logprobs.dtype), mask).item(),
                 APPROX_KL: masked_mean(approx_kl, mask).item(),
                 RATIO_MEAN: masked_mean(ratio, mask).item()}
    return loss, stats


def value_loss(values: Tensor, old_values: Tensor, returns: Tensor, mask: Tensor, *,
               value_clip: float | None = None, loss_norm: str = "token_mean",
               max_len: int | None = None) -> tuple[Tensor, dict[str, float]]:
    """Value regression, optionally clipped around the rollout values as in PPO.

        clipped:   ½ · max((V − R)², (V_old + clip(V − V_old, −c, c) − R)²)
        unclipped: ½ · (V − R)²                      (value_clip None or 0)

    The clipped form is OpenAI baselines' PPO2 (arXiv:1707.06347 code; also OpenRLHF).
    values, old_values, returns, mask: (B, T). stats: loss/value, policy/value_clipfrac (fraction
    of valid tokens where the clipped error is strictly larger, i.e. the clip binds).
    """
    if value_clip is not None and value_clip < 0:
        raise ConfigError(f"value_clip must not be negative, got {value_clip}.")
    returns = returns.detach()
    error = (values - returns) ** 2                                    # (B, T)
    if value_clip:
        old_values = old_values.detach()
        values_clipped = old_values + torch.clamp(values - old_values, -value_clip, value_clip)
        error_clipped = (values_clipped - returns) ** 2
        per_token = 0.5 * torch.max(error, error_clipped)
        clip_active = (error_clipped > error).to(values.dtype).detach()
    else:
        per_token = 0.5 * error
        clip_active = torch.zeros_like(values)
    loss = reduce_loss(per_token, mask, loss_norm, max_len)
    return loss, {"loss/value": loss.item(), VALUE_CLIPFRAC: masked_mean(clip_active, mask).item()}


def ppo_loss(logprobs: Tensor, old_logprobs: Tensor, advantages: Tensor, values: Tensor,
             old_values: Tensor, returns: Tensor, mask: Tensor, *, clip_eps: float = 0.2,
             value_clip: float | None = 0.2, vf_coef: float = 0.5, loss_norm: str = "token_mean",
             max_len: int | None = None) -> tuple[Tensor, dict[str, float]]:
    """PPO: L = clipped surrogate + vf_coef · clipped value loss (arXiv:1707.06347 eq. 9,
    without the entropy term, which the caller adds).

    All inputs (B, T) except advantages, which may be (B,). stats: those of
    clipped_surrogate_loss and value_loss, plus loss/ppo (the total).
    """
    policy, policy_stats = clipped_surrogate_loss(logprobs, old_logprobs, advantages, mask,
                                                  clip_eps=clip_eps, loss_norm=loss_norm, max_len=max_len)
    value, value_stats = value_loss(values, old_values, returns, mask, value_clip=value_clip,
                                    loss_norm=loss_norm, max_len=max_len)
    loss = policy + vf_coef * value
    return loss, {**policy_stats, **value_stats, "loss/ppo": loss.item()}


def grpo_loss(logprobs: Tensor, old_logprobs: Tensor, advantages: Tensor, mask: Tensor, *,
              clip_eps: float = 0.2, loss_norm: str = "token_mean",
              max_len: int | None = None) -> tuple[Tensor, dict[str, float]]:
    """GRPO: the clipped surrogate with each sequence's group-normalised advantage on all
    its tokens (Shao et al. 2024, arXiv:2402.03300 eq. 3).

    The paper's −β·KL(π ‖ π_ref) term is left out on purpose: the caller adds it through
    rmcore.kl so that every policy loss shares one KL implementation. The paper's
    1/G Σ_i 1/|o_i| Σ_t is loss_norm="seq_mean"; token_mean (DAPO) is the default here
    as for every loss.
    logprobs, old_logprobs, mask: (B, T); advantages: (B,) (or (B, T)).
    stats: those of clipped_surrogate_loss.
    """
    return clipped_surrogate_loss(logprobs, old_logprobs, advantages, mask, clip_eps=clip_eps,
                                  loss_norm=loss_norm, max_len=max_len)


def actor_critic_loss(logprobs: Tensor, values: Tensor, returns: Tensor, mask: Tensor, *,
                      vf_coef: float = 0.5, loss_norm: str = "token_mean",
                      max_len: int | None = None) -> tuple[Tensor, dict[str, float]]:
    """Advantage actor-critic with a learned value baseline, A = R − V held constant.

        L = reduce(−A_t log π(y_t)) + vf_coef · reduce(½ (V_t − R_t)²)

    Sutton & Barto 2018 §13.5; Mnih et al. 2016 arXiv:1602.01783. Here R is the
    observed return (no bootstrapping), so the critic is a learned baseline.
    logprobs, values, mask: (B, T); returns: (B,) (broadcast) or (B, T).
    stats: loss/policy, loss/value, policy/value_clipfrac (always 0 here), loss/actor_critic.
    """
    returns = _per_token(returns.detach(), values)                     # (B, T)
    advantages = (returns - values).detach()
    policy, policy_stats = policy_gradient_loss(logprobs, advantages, mask,
                                                loss_norm=loss_norm, max_len=max_len)
    value, value_stats = value_loss(values, values, returns, mask, value_clip=None,
                                    loss_norm=loss_norm, max_len=max_len)
    loss = policy + vf_coef * value
    return loss, {**policy_stats, **value_stats, "loss/actor_critic": loss.item()}

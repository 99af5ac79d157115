"""Per-token estimators of KL(π ‖ π_ref) from tokens sampled from the policy π.

With log_ratio = log π(y_t) − log π_ref(y_t) at each sampled token (Schulman 2020,
"Approximating KL divergence", http://joschu.net/blog/kl-approx.html, whose r is
π_ref/π = exp(−log_ratio)):

    k1 = log_ratio                           unbiased, high variance, can be negative
    k2 = log_ratio² / 2                      biased, low variance, ≥ 0
    k3 = exp(−log_ratio) − 1 + log_ratio     unbiased, low variance, ≥ 0

The sign convention is TRL's and OpenRLHF's: all three estimate KL(π ‖ π_ref), the
penalty that keeps the policy near the reference. The caller masks and reduces them
(e.g. ``reduce_loss`` in the loss, or a masked sum per sequence in the reward), so every
policy loss shares the same KL term.
"""
from __future__ import annotations

from typing import Callable

import torch
from torch import Tensor

from rmcore.errors import ConfigError

# Only exp(−log_ratio) can overflow, and only for a very negative log_ratio: exp(89) is inf
# in fp32 (and inf times a 0 mask is NaN). So log_ratio is clamped from below at −20
# (exp(20) ≈ 4.9e8, finite in fp32 and bf16); a large positive log_ratio — the policy far
# above the reference, where the penalty must push back — is left exact, with its gradient.
# (fp16 overflows at exp(11): compute in fp32.)
K3_LOG_RATIO_CLAMP = 20.0


def kl_k1(logprobs: Tensor, ref_logprobs: Tensor) -> Tensor:
    """k1 = log π − log π_ref per token. logprobs, ref_logprobs: (B, T) -> (B, T)."""
    return logprobs - ref_logprobs


def kl_k2(logprobs: Tensor, ref_logprobs: Tensor) -> Tensor:
    """k2 = (log π − log π_ref)² / 2 per token. logprobs, ref_logprobs: (B, T) -> (B, T)."""
    return (logprobs - ref_logprobs) ** 2 / 2


def kl_k3(logprobs: Tensor, ref_logprobs: Tensor) -> Tensor:
    """k3 = exp(−log_ratio) − 1 + log_ratio per token. (B, T) -> (B, T).

    log_ratio is clamped from below at −20 for k3 only: it is the one estimator with an
    exponential, and a padding token or a far-drifted policy with log_ratio < −88 would
    overflow fp32 to inf. Above −20 the value and gradient are exact, however large log_ratio
    is; below it the value is that of −20 and the gradient 0.
    """
    log_ratio = torch.clamp(logprobs - ref_logprobs, min=-K3_LOG_RATIO_CLAMP)
    return torch.exp(-log_ratio) - 1 + log_ratio


KL_ESTIMATORS: dict[str, Callable[[Tensor, Tensor], Tensor]] = {
    "k1": kl_k1,
    "k2": kl_k2,
    "k3": kl_k3,
}


def kl_estimate(logprobs: Tensor, ref_logprobs: Tensor, estimator: str) -> Tensor:
    """Per-token KL(π ‖ π_ref) estimate with the named estimator (k1, k2 or k3).

    logprobs: (B, T) log π of the sampled tokens (with grad when used in the loss).
    ref_logprobs: (B, T) log π_ref of the same tokens, from the frozen reference.
    Returns (B, T), unmasked; reduce it with the response mask.
    """
    if estimator not in KL_ESTIMATORS:
        raise ConfigError(f"Unknown KL estimator '{estimator}'; valid: {', '.join(KL_ESTIMATORS)}.")
    return KL_ESTIMATORS[estimator](logprobs, ref_logprobs)


# Ziegler et al. (2019) bound each step's proportional error to ±20%.
ADAPTIVE_KL_MAX_ERROR = 0.2


def adaptive_kl_coef(coef: float, kl: float, target: float, n_samples: int, horizon: int) -> float:
    """The adaptive KL controller: the next step's coefficient from this step's KL.

        e   = clip(KL / KL_target − 1, −0.2, 0.2)
        β' = β · (1 + e · n_samples / horizon)

    Ziegler et al. 2019, "Fine-Tuning Language Models from Human Preferences",
    arXiv:1909.08593 §2.2 (K_β = n_samples / horizon, as in their code and TRL's
    AdaptiveKLController). KL above the target raises β, below lowers it; the horizon sets
    how many samples a full ±20% correction takes. kl: this step's mean KL per sample.
    """
    if target <= 0 or horizon < 1:
        raise ConfigError(f"the adaptive KL controller needs a positive target and horizon, got {target}, {horizon}.")
    error = min(max(kl / target - 1.0, -ADAPTIVE_KL_MAX_ERROR), ADAPTIVE_KL_MAX_ERROR)
    return coef * (1.0 + error * n_samples / horizon)

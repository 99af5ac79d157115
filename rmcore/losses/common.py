"""Masked reductions shared by every loss: compute per token, reduce once, here.

``mask`` is a float tensor, 1.0 on response tokens and 0.0 on prompt and padding. Values
at masked-out positions are ignored even when they are inf or NaN (padding logits often
are), and an all-zero mask reduces to 0 rather than NaN, so an empty batch cannot poison
the loss or its gradient.
"""
from __future__ import annotations

import torch
from torch import Tensor

from rmcore.errors import ConfigError

LOSS_NORMS = ("token_mean", "seq_mean", "fixed_sum")


def masked_sum(x: Tensor, mask: Tensor, dim: int | None = None) -> Tensor:
    """Σ x·mask over ``dim`` (all elements when None); masked-out x never enters the sum.

    x, mask: same shape, e.g. (B, T). Returns a scalar, or x's shape without ``dim``.
    """
    # masked_fill first: inf·0 = NaN would otherwise leak from padding into the sum.
    x = x.masked_fill(mask == 0, 0.0) * mask
    return x.sum() if dim is None else x.sum(dim)


def masked_mean(x: Tensor, mask: Tensor, dim: int | None = None) -> Tensor:
    """Σ x·mask / Σ mask over ``dim`` (all elements when None); 0 where Σ mask = 0.

    x, mask: same shape, e.g. (B, T). Returns a scalar, or x's shape without ``dim``.
    """
    total = masked_sum(x, mask, dim)
    count = mask.sum() if dim is None else mask.sum(dim)
    # Divide by 1 where the count is 0 (the sum is 0 there too): a torch.where after a
    # 0/0 would still send NaN into the gradient.
    safe_count = torch.where(count > 0, count, torch.ones_like(count))
    return total / safe_count


def masked_var(x: Tensor, mask: Tensor, unbiased: bool = True) -> Tensor:
    """Variance of the valid elements of x (scalar), as in TRL's ``masked_var``.

        var = Σ mask·(x − mean)² / (n − 1)      (n / (n − 1) Bessel correction if unbiased)

    x, mask: same shape. With fewer than two valid elements the unbiased variance is
    undefined; we return the biased one (0 for a single element) instead of NaN.
    """
    mean = masked_mean(x, mask)
    n = mask.sum()
    var = masked_mean((x - mean) ** 2, mask)
    if unbiased and n.item() > 1:
        var = var * n / (n - 1)
    return var


def reduce_loss(per_token: Tensor, mask: Tensor, mode: str = "token_mean",
                max_len: int | None = None) -> Tensor:
    """Reduce a per-token loss (B, T) to a scalar; the one reduction all policy losses use.

        token_mean: Σ_{b,t} m·ℓ / Σ_{b,t} m            every token weighs the same (DAPO's
                                                        token-level loss, arXiv:2503.14476)
        seq_mean:   1/B Σ_b (Σ_t m·ℓ / Σ_t m)         every sequence weighs the same
                                                        (original GRPO, arXiv:2402.03300 eq. 3)
        fixed_sum:  Σ_{b,t} m·ℓ / (B · max_len)         constant normaliser, no length bias
                                                        (Dr. GRPO, arXiv:2503.20783)

    per_token, mask: (B, T). max_len: the fixed_sum constant, default T (pass the
    generation limit, e.g. max_new_tokens, so the scale does not depend on the batch's
    longest sample). A sequence with an empty mask counts as 0 in seq_mean, as in TRL.
    """
    if mode == "token_mean":
        return masked_mean(per_token, mask)
    if mode == "seq_mean":
        return masked_mean(per_token, mask, dim=1).mean()
    if mode == "fixed_sum":
        batch_size, length = per_token.shape
        max_len = length if max_len is None else max_len
        if max_len < 1:
            raise ConfigError(f"max_len for fixed_sum must be at least 1, got {max_len}.")
        return masked_sum(per_token, mask) / (batch_size * max_len)
    raise ConfigError(f"Unknown loss normalisation '{mode}'; valid: {', '.join(LOSS_NORMS)}.")

"""The one optimizer step every trainer takes: backward, clip, step — never on NaN or inf.

A non-finite loss or gradient norm raises before ``optimizer.step()``, so the weights (and the
last checkpoint) stay as they were; the caller supplies the error, which names the likely
cause in its own terms. Clipping off (max_grad_norm 0) still measures the norm: one inf
gradient would make AdamW turn every weight it touches into NaN.
"""
from __future__ import annotations

import math
from typing import Callable

import torch
from torch import Tensor

from rmcore.precision import no_autocast


def optimizer_step(optimizer: torch.optim.Optimizer, loss: Tensor, max_grad_norm: float, device: torch.device,
                   non_finite: Callable[[str, float], Exception]) -> float:
    """Step on ``loss``; returns the gradient norm before clipping.

    non_finite(what, value) builds the error for what = "loss" or "gradient norm". Backward
    runs outside autocast (trainers call this inside their forward's autocast).
    """
    if not math.isfinite(loss.item()):
        raise non_finite("loss", loss.item())
    optimizer.zero_grad(set_to_none=True)
    with no_autocast(device):
        loss.backward()
        params = [p for group in optimizer.param_groups for p in group["params"]]
        grad_norm = torch.nn.utils.clip_grad_norm_(params, max_grad_norm or float("inf")).item()
        if not math.isfinite(grad_norm):
            raise non_finite("gradient norm", grad_norm)
        optimizer.step()
    return grad_norm

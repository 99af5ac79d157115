"""Numeric precision of a run: which dtype the forward passes use, and which the weights keep.

    fp32:  everything in float32.
    bf16:  mixed precision. Trainable weights and the optimizer state stay float32; forward
           passes run under torch.autocast(bfloat16); log-probs, entropy, KL and losses are
           computed in float32 (rmcore.rollout casts the logits up before log_softmax); frozen
           models (the reference) may be stored in bfloat16 to halve their memory.
    auto:  bf16 on a CUDA GPU that supports it, fp32 elsewhere.

Why the weights never live in bf16 while they train: bf16 keeps 8 bits of mantissa, so an
AdamW update of lr·1 ≈ 5e-5 on a weight of magnitude 0.02–1 is below half a unit in the last
place and rounds away: most weights would never move and the curves would stay flat.
"""
from __future__ import annotations

from contextlib import AbstractContextManager, nullcontext

import torch

from rmcore.config import PRECISIONS  # noqa: F401  (re-exported: the names live with the config)
from rmcore.errors import ConfigError


def resolve_precision(name: str, device: torch.device) -> str:
    """'fp32' or 'bf16' for this device; an explicit bf16 the device cannot run is a ConfigError."""
    if name not in PRECISIONS:
        raise ConfigError(f"precision must be one of {', '.join(PRECISIONS)}; got {name!r}.")
    if name == "auto":
        return "bf16" if device.type == "cuda" and _cuda_has_bf16() else "fp32"
    if name == "bf16":
        if device.type == "cuda" and not _cuda_has_bf16():
            raise ConfigError("precision bf16 was asked for but this GPU has no bfloat16 support; use fp32.")
        if device.type not in ("cuda", "cpu"):
            raise ConfigError(f"precision bf16 runs on CUDA or CPU, not {device.type}; use fp32 or auto.")
    return name


def _cuda_has_bf16() -> bool:
    try:
        return bool(torch.cuda.is_bf16_supported())
    except (AssertionError, RuntimeError):  # a torch built without CUDA asked about a GPU
        return False


def autocast(precision: str, device: torch.device) -> AbstractContextManager:
    """The context for forward passes: bf16 autocast, or nothing at fp32."""
    if precision == "bf16":
        return torch.autocast(device.type, dtype=torch.bfloat16)
    return nullcontext()


def no_autocast(device: torch.device) -> AbstractContextManager:
    """Backward passes and optimizer steps run outside autocast (PyTorch's advice): the backward
    ops already take the dtype of their forward ops."""
    if device.type not in ("cuda", "cpu"):  # no autocast was entered there
        return nullcontext()
    return torch.autocast(device.type, enabled=False)


def frozen_dtype(precision: str) -> torch.dtype:
    """Storage dtype of a model that never trains (the reference): bf16 weights at bf16."""
    return torch.bfloat16 if precision == "bf16" else torch.float32

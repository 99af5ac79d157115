"""LoRA through peft: train low-rank adapters instead of the whole policy (off by default).

With ``lora_r > 0`` the policy becomes a peft model: its base weights are frozen and only
the adapter matrices (and a value head, when the algorithm has one) train. The frozen
reference is the same model with its adapter switched off (``reference_context``), so a
LoRA run holds one copy of the base weights, not two. Checkpoints hold the adapter alone
(``adapter_config.json`` + ``adapter_model.safetensors``); rmcore.lora_merge folds it into
its base and writes a plain model folder any backbone field accepts.

This module reads only peft and rmcore.errors: the rollout imports it, so it must not reach
back into backbones (that was an import cycle).
"""
from __future__ import annotations

from contextlib import AbstractContextManager, nullcontext
from pathlib import Path
from typing import Any

from rmcore.errors import ConfigError

ADAPTER_CONFIG = "adapter_config.json"
ADAPTER_WEIGHTS = "adapter_model.safetensors"


def target_modules(text: str) -> list[str] | None:
    """'q_proj, v_proj' -> ['q_proj', 'v_proj']; empty -> None (peft's default for the model type)."""
    names = [t.strip() for t in text.split(",") if t.strip()]
    return names or None


def add_adapter(policy, *, r: int, alpha: float, targets: str = ""):
    """The policy wrapped with fresh LoRA adapters (B = 0, so it starts as the base model)."""
    from peft import LoraConfig, get_peft_model

    config = LoraConfig(r=r, lora_alpha=alpha, lora_dropout=0.0, bias="none", task_type="CAUSAL_LM",
                        target_modules=target_modules(targets))
    try:
        return get_peft_model(policy, config)
    except ValueError as exc:  # unknown module names, or a model type peft has no default for
        raise ConfigError(f"LoRA cannot attach to this backbone: {exc} Name its layers with --lora-targets "
                          "(e.g. c_attn for GPT-2, q_proj,v_proj for Llama/Qwen).") from None


def is_adapter_model(model) -> bool:
    return hasattr(model, "disable_adapter") and hasattr(model, "peft_config")


def reference_context(ref, policy) -> AbstractContextManager:
    """Where the reference model's passes run: with the adapter off when the reference is the
    LoRA policy itself, else nothing."""
    if ref is policy and is_adapter_model(policy):
        return policy.disable_adapter()
    return nullcontext()


def trainable_parameters(model) -> tuple[int, int]:
    """(trainable, total) parameter counts."""
    params = list(model.parameters())
    return sum(p.numel() for p in params if p.requires_grad), sum(p.numel() for p in params)


def is_adapter_checkpoint(path: str | Path) -> bool:
    return (Path(path) / ADAPTER_CONFIG).is_file()


def load_adapter_weights(policy, path: str | Path, device: Any) -> None:
    """Adapter weights of a checkpoint back into a LoRA policy (for resume)."""
    from peft import set_peft_model_state_dict
    from safetensors.torch import load_file

    result = set_peft_model_state_dict(policy, load_file(str(Path(path) / ADAPTER_WEIGHTS), device=str(device)))
    unexpected = list(getattr(result, "unexpected_keys", []))
    if unexpected:
        raise ConfigError(f"{path} holds adapter weights this run's LoRA does not have ({unexpected[0]}, …).")

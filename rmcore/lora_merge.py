"""Fold a LoRA checkpoint (rmcore.lora) into its base model: a plain model folder (safetensors)
that any backbone field accepts. Apart from rmcore.lora because it loads backbones, which
rmcore.lora (read by the rollout) must not."""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import torch

from rmcore.backbones import _from_pretrained, load_tokenizer
from rmcore.errors import ConfigError
from rmcore.lora import ADAPTER_CONFIG, is_adapter_checkpoint, load_adapter_weights


def merge_checkpoint(checkpoint: str | Path, out_dir: str | Path, *, base: str | Path | None = None) -> Path:
    """Fold a LoRA checkpoint into its base model and save a plain model folder (safetensors).

    base: the backbone folder; default the one recorded in the adapter's config.
    """
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    checkpoint, out_dir = Path(checkpoint), Path(out_dir)
    if not is_adapter_checkpoint(checkpoint):
        raise ConfigError(f"{checkpoint} is not a LoRA checkpoint (no {ADAPTER_CONFIG}); it is a full model already.")
    saved = json.loads((checkpoint / ADAPTER_CONFIG).read_text())
    base = base or saved.get("base_model_name_or_path") or ""
    if not base:
        raise ConfigError(f"{checkpoint} does not record its base model; pass it (base=...).")
    # The adapter is rebuilt from its JSON config and its safetensors weights, not with
    # PeftModel.from_pretrained, which would fall back to a pickled adapter_model.bin.
    init_fields = {f.name for f in dataclasses.fields(LoraConfig) if f.init}
    config = LoraConfig(**{k: v for k, v in saved.items() if k in init_fields})
    model = _from_pretrained(AutoModelForCausalLM, str(base), trust_remote_code=False, dtype=torch.float32)
    peft_model = get_peft_model(model, config)
    load_adapter_weights(peft_model, checkpoint, "cpu")
    merged = peft_model.merge_and_unload()
    out_dir.mkdir(parents=True, exist_ok=True)
    merged.save_pretrained(out_dir, safe_serialization=True)
    load_tokenizer(str(checkpoint)).save_pretrained(out_dir)
    return out_dir

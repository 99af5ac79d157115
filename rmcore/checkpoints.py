"""Policy checkpoints: save, prune, and load back into a session to resume a run.

A checkpoint folder holds the policy (a LoRA run: its adapter alone) and tokenizer
(`save_pretrained`, safetensors), the
value head (safetensors), the optimizer state (`optimizer.pt`, read back with
`weights_only=True`: tensors and numbers, never arbitrary pickles) and `trainer_state.json`
(step, EMA baseline). The data order and sampling RNG are re-seeded from (seed, step) every
step, so no RNG state is needed: a resumed run draws what the uninterrupted run would have.
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import torch

KEEP_LAST = 2  # periodic checkpoints kept per run (the newest); older ones are deleted


def save_checkpoint(s, path: Path) -> str:
    """Write everything a resume needs; returns the folder as a string."""
    path.mkdir(parents=True, exist_ok=True)
    s.policy.save_pretrained(path, safe_serialization=True)
    s.tokenizer.save_pretrained(path)
    if s.value_head is not None:
        from safetensors.torch import save_file

        save_file({k: v.detach().cpu().contiguous() for k, v in s.value_head.state_dict().items()},
                  str(path / "value_head.safetensors"))
    torch.save(s.optimizer.state_dict(), path / "optimizer.pt")
    (path / "trainer_state.json").write_text(json.dumps({"step": s.step, "baseline": s.baseline,
                                                         "loss": s.cfg.loss}))
    return str(path)


def prune_checkpoints(folder: Path, keep: int = KEEP_LAST) -> None:
    """Delete all but the newest `keep` step-* folders (names sort by step)."""
    steps = sorted(p for p in folder.glob("step-*") if p.is_dir())
    for old in steps[:-keep]:
        shutil.rmtree(old, ignore_errors=True)


def load_checkpoint(s, path: str | Path) -> int:
    """Load weights, value head, optimizer and baseline into session `s`; return its step.

    The reference model is NOT loaded from here: it stays the run's starting backbone, so
    the KL after a resume is measured against the same reference as before it.
    """
    from transformers import AutoModelForCausalLM

    from rmcore.lora import is_adapter_checkpoint, load_adapter_weights

    path = Path(path)
    state = json.loads((path / "trainer_state.json").read_text())
    if is_adapter_checkpoint(path):  # a LoRA run saved its adapter alone (rmcore.lora)
        load_adapter_weights(s.policy, path, s.device)
    else:
        saved = AutoModelForCausalLM.from_pretrained(path, use_safetensors=True, dtype=s.policy.dtype)
        s.policy.load_state_dict(saved.state_dict())
    if s.value_head is not None:
        from safetensors.torch import load_file

        s.value_head.load_state_dict(load_file(str(path / "value_head.safetensors"), device=str(s.device)))
    s.optimizer.load_state_dict(torch.load(path / "optimizer.pt", map_location=s.device, weights_only=True))
    s.baseline = state.get("baseline")
    s.step = int(state["step"])
    return s.step

"""Policy checkpoints: save, prune, and load back into a session to resume a run.

A checkpoint folder holds the policy (a LoRA run: its adapter alone) and tokenizer
(`save_pretrained`, safetensors), the
value head (safetensors), the optimizer state (`optimizer.pt`, read back with
`weights_only=True`: tensors and numbers, never arbitrary pickles) and `trainer_state.json`
(step, EMA baseline, the adaptive KL coefficient). The data order and sampling RNG are re-seeded from (seed, step) every
step, so no RNG state is needed: a resumed run draws what the uninterrupted run would have.

A checkpoint can be half-written (the process died while saving) or damaged later, so
resume checks it first (checkpoint_problem, reading headers only) and falls back to an
older one. torch is imported only by save and load: the
runner checks checkpoints and must stay light to import.
"""
from __future__ import annotations

import json
import math
import shutil
import struct
import zipfile
from pathlib import Path

KEEP_LAST = 2  # periodic checkpoints kept per run (the newest); older ones are deleted


def save_checkpoint(s, path: Path) -> str:
    """Write everything a resume needs; returns the folder as a string.

    A folder of this step or a later one is left from before a resume that went back to an
    older checkpoint (the newer one was damaged); it is removed first, as pruning by name would
    keep it and delete the intact ones, and its old trainer_state.json (written last, the mark
    of a complete save) must not vouch for files half rewritten.
    """
    import torch

    for later in path.parent.glob("step-*"):
        if later.name >= path.name and later.is_dir():
            shutil.rmtree(later, ignore_errors=True)
    path.mkdir(parents=True, exist_ok=True)
    s.policy.save_pretrained(path, safe_serialization=True)
    s.tokenizer.save_pretrained(path)
    if s.value_head is not None:
        from safetensors.torch import save_file

        save_file({k: v.detach().cpu().contiguous() for k, v in s.value_head.state_dict().items()},
                  str(path / "value_head.safetensors"))
    torch.save(s.optimizer.state_dict(), path / "optimizer.pt")
    (path / "trainer_state.json").write_text(json.dumps({"step": s.step, "baseline": s.baseline,
                                                         "kl_coef": s.kl_coef, "loss": s.cfg.loss}))
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
    import torch
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
    s.kl_coef = _kl_coef(state.get("kl_coef", s.kl_coef), path)  # older checkpoints: the config's
    s.step = int(state["step"])
    return s.step


def _kl_coef(value, path: Path) -> float:
    """The adaptive KL coefficient a checkpoint saved: a finite number ≥ 0, or one sentence."""
    from rmcore.errors import ConfigError

    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
        raise ConfigError(f"{path / 'trainer_state.json'} holds no usable kl_coef ({value!r}); the checkpoint is damaged.")
    return float(value)


def checkpoint_problem(path: str | Path, step: int) -> str | None:
    """What is wrong with the checkpoint folder recorded for `step`, or None if it looks whole.

    save_checkpoint writes trainer_state.json last, so a folder where it names this step was
    saved completely; what is checked besides is that nothing in it was damaged since: every
    safetensors file (weights, their shards, a LoRA adapter, the value head) is as long as its
    header says, and optimizer.pt is a complete zip (what torch.save writes). Headers only,
    never the tensors, so it is quick for any model size.
    """
    path = Path(path)
    if not path.is_dir():
        return f"{path} is missing"
    try:
        state = json.loads((path / "trainer_state.json").read_text())
        if int(state["step"]) != step:
            return f"{path / 'trainer_state.json'} is for step {state['step']}, not {step}"
    except (OSError, ValueError, KeyError, TypeError) as exc:
        return f"{path / 'trainer_state.json'} is missing or unreadable ({type(exc).__name__})"
    index = path / "model.safetensors.index.json"
    if index.is_file():
        try:
            shards = set(json.loads(index.read_text())["weight_map"].values())
        except (OSError, ValueError, KeyError, AttributeError):
            return f"{index} is unreadable"
        if missing := sorted(name for name in shards if not (path / name).is_file()):
            return f"{path} lacks the shard {missing[0]}"
    for file in sorted(path.glob("*.safetensors")):
        if problem := safetensors_problem(file):
            return problem
    if (path / "optimizer.pt").exists():
        try:
            with zipfile.ZipFile(path / "optimizer.pt"):
                pass
        except (OSError, zipfile.BadZipFile):
            return f"{path / 'optimizer.pt'} is incomplete"
    return None


def safetensors_problem(file: Path) -> str | None:
    """A safetensors file is an 8-byte header length, a JSON header giving every tensor's
    byte range, then the bytes; a truncated or overwritten file fails one of these checks."""
    try:
        with open(file, "rb") as f:
            (length,) = struct.unpack("<Q", f.read(8))
            size = file.stat().st_size
            if length > size - 8:
                return f"{file} is truncated"
            header = json.loads(f.read(length))
        end = max((int(v["data_offsets"][1]) for k, v in header.items() if k != "__metadata__"), default=0)
    except (OSError, ValueError, struct.error, KeyError, TypeError, IndexError, AttributeError):
        return f"{file} is not a readable safetensors file"
    if size != 8 + length + end:
        return f"{file} is truncated" if size < 8 + length + end else f"{file} has extra bytes"
    return None

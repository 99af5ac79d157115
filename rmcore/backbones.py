"""Backbones: the built-in tiny-gpt2 and any transformers causal LM by hub id or local path.

The built-in model is made here, not downloaded (the machine may have no hub): a byte-level
BPE tokenizer trained on synth-news, a ~1.6M-parameter GPT-2, then an MLE warm-start
(rmcore.warmstart) until it copies the document's entity and number into its summary. It
is built once into the model cache (env RMCORE_MODEL_CACHE, else <runs dir>/_models) under
a file lock, so parallel runs wait for one build instead of racing.
"""
from __future__ import annotations

import fcntl
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Callable

from rmcore.errors import ConfigError, HubUnavailableError

if TYPE_CHECKING:  # heavy imports stay lazy: the CLI's --help and the app's first paint need none
    import torch

BUILTIN = "tiny-gpt2"
EOS, PAD = "<|endoftext|>", "<|pad|>"


@dataclass(frozen=True)
class BackboneSpec:
    name: str
    description: str
    builtin: bool = False


BACKBONES: dict[str, BackboneSpec] = {
    "tiny-gpt2": BackboneSpec("tiny-gpt2", "Built in, offline: 1.6M-parameter GPT-2 warm-started on synth-news to copy its facts.", True),
    "gpt2": BackboneSpec("gpt2", "GPT-2 small, 124M (hub)."),
    "distilgpt2": BackboneSpec("distilgpt2", "DistilGPT-2, 82M (hub)."),
    "EleutherAI/pythia-70m": BackboneSpec("EleutherAI/pythia-70m", "Pythia 70M (hub)."),
    "HuggingFaceTB/SmolLM2-135M": BackboneSpec("HuggingFaceTB/SmolLM2-135M", "SmolLM2 135M (hub)."),
    "Qwen/Qwen2.5-0.5B-Instruct": BackboneSpec("Qwen/Qwen2.5-0.5B-Instruct", "Qwen2.5 0.5B Instruct (hub; GPU advised)."),
}

# Shape of the built-in model: 4 layers × 192 wide, MLP 512 wide, 1k BPE vocabulary, 256
# positions (synth-news prompts are ≤ ~135 tokens; with up to 64 new tokens that leaves room).
# A 1k vocabulary splits the generated names into syllable tokens that recur in every
# document, so the model learns to copy them within its warm-start (with 4k most names are
# one rare token each, and copying came far later); copying is attention's work, so the MLP
# is narrower than GPT-2's 4× (768), which made the build a fifth cheaper and copied as well.
# The measured table is in rmcore.warmstart.
TINY_GPT2_SHAPE = dict(n_layer=4, n_embd=192, n_head=4, n_inner=512, n_positions=256, vocab_size=1024)
# Bumped whenever the shape or the warm-start changes: the cache folder is named after it,
# so a machine holding an older build makes the new one instead of reusing the old.
BUILTIN_RECIPE = 2


# --------------------------------------------------------------------------- devices
def resolve_device(name: str = "auto") -> "torch.device":
    """'auto' picks cuda > mps > cpu; an explicit device that is absent is a ConfigError."""
    import torch

    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ConfigError("device 'cuda' was asked for but no CUDA GPU is visible; use --device auto or cpu.")
    if name == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise ConfigError("device 'mps' was asked for but Apple MPS is not available; use --device auto or cpu.")
    if name not in ("cpu", "cuda", "mps"):
        raise ConfigError(f"Unknown device {name!r}; use auto, cpu, cuda or mps.")
    return torch.device(name)


def model_dtype(device: "torch.device") -> "torch.dtype":
    """bf16 on CUDA (halves memory, tensor cores), fp32 elsewhere (CPU bf16 is slow and lossy)."""
    import torch

    return torch.bfloat16 if device.type == "cuda" else torch.float32


def describe_device(name: str = "auto") -> str:
    import torch

    device = resolve_device(name)
    if device.type == "cuda":
        return f"GPU: {torch.cuda.get_device_name(device)}"
    if device.type == "mps":
        return "Apple GPU (MPS)"
    return f"CPU ({torch.get_num_threads()} threads)"


# --------------------------------------------------------------------------- loading
def model_cache_dir(runs_dir: str | Path | None = None) -> Path:
    if os.environ.get("RMCORE_MODEL_CACHE"):
        return Path(os.environ["RMCORE_MODEL_CACHE"])
    base = Path(runs_dir) if runs_dir else Path(os.environ.get("RMCORE_RUNS_DIR", "runs"))
    return base / "_models"


def resolve_backbone_path(backbone: str, *, runs_dir=None, on_progress: Callable | None = None) -> str:
    """The built-in name becomes its cached folder (built on first use); others pass through."""
    if backbone == BUILTIN:
        return str(ensure_builtin(model_cache_dir(runs_dir), on_progress=on_progress))
    if not backbone.strip():
        raise ConfigError("backbone is empty; use 'tiny-gpt2', a hub model id or a local folder.")
    return backbone


def load_causal_lm(backbone: str, *, device: "torch.device", trust_remote_code: bool = False,
                   runs_dir=None, on_progress: Callable | None = None):
    """(model, tokenizer) for a causal LM, ready for left-padded batched generation."""
    from transformers import AutoModelForCausalLM

    path = resolve_backbone_path(backbone, runs_dir=runs_dir, on_progress=on_progress)
    tokenizer = load_tokenizer(path, trust_remote_code=trust_remote_code)
    model = _from_pretrained(AutoModelForCausalLM, path, trust_remote_code=trust_remote_code,
                             dtype=model_dtype(device))
    model.to(device)
    if model.config.pad_token_id is None:
        model.config.pad_token_id = tokenizer.pad_token_id
    return model, tokenizer


def load_tokenizer(path: str, *, trust_remote_code: bool = False):
    from transformers import AutoTokenizer

    tokenizer = _from_pretrained(AutoTokenizer, path, trust_remote_code=trust_remote_code)
    if tokenizer.pad_token is None:  # GPT-2 style tokenizers ship without one
        tokenizer.pad_token = tokenizer.eos_token
    tokenizer.padding_side = "left"  # generation continues from the right edge of the prompt
    return tokenizer


def _from_pretrained(auto_cls, path: str, *, trust_remote_code: bool, **kwargs):
    """from_pretrained with safetensors only, and one clear sentence when the hub is out of reach."""
    is_local = Path(path).expanduser().exists()
    if not is_local and (path.startswith((".", "/", "~")) or path.count("/") > 1):
        raise ConfigError(f"No model folder at {path!r}.")
    extra = {"use_safetensors": True} if auto_cls.__name__.startswith("AutoModel") else {}
    try:
        return auto_cls.from_pretrained(path, trust_remote_code=trust_remote_code, **extra, **kwargs)
    except OSError as exc:
        if is_local:
            if "safetensors" in str(exc).lower():
                raise ConfigError(f"{path} has no safetensors weights; rmcore loads weights only from "
                                  "safetensors (convert with save_pretrained(safe_serialization=True)).") from exc
            raise ConfigError(f"Cannot load a model from {path}: {exc}") from exc
        raise HubUnavailableError(
            f"Cannot reach the Hugging Face Hub for '{path}' and it is not cached; download it on a "
            "connected machine (or set HF_HOME to a cache that has it) or pass a local folder path.") from exc


# --------------------------------------------------------------------------- built-in model
def ensure_builtin(cache_dir: Path, *, on_progress: Callable | None = None, seed: int = 0) -> Path:
    """Path of the built tiny-gpt2, building it once (≤ 5 min on 2 cores) if absent."""
    target = builtin_dir(cache_dir)
    if (target / "config.json").exists():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with open(target.parent / f".{BUILTIN}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # a second process waits here, then finds it built
        if (target / "config.json").exists():
            return target
        tmp = target.parent / f".{target.name}.building"
        shutil.rmtree(tmp, ignore_errors=True)
        from rmcore.warmstart import build_tiny_gpt2

        build_tiny_gpt2(tmp, on_progress=on_progress, seed=seed)
        os.replace(tmp, target)  # atomic: a half-built model is never visible
    return target


def builtin_dir(cache_dir: str | Path) -> Path:
    """Folder of the current built-in model's build inside a model cache."""
    return Path(cache_dir) / f"{BUILTIN}-v{BUILTIN_RECIPE}"


def train_tokenizer(texts: list[str], vocab_size: int):
    """Byte-level BPE (GPT-2's scheme) trained on `texts`, wrapped for transformers."""
    from tokenizers import ByteLevelBPETokenizer
    from transformers import PreTrainedTokenizerFast

    bpe = ByteLevelBPETokenizer()
    bpe.train_from_iterator(texts, vocab_size=vocab_size, min_frequency=2, special_tokens=[EOS, PAD],
                            show_progress=False)
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=bpe, bos_token=EOS, eos_token=EOS, pad_token=PAD)
    tokenizer.padding_side = "left"
    return tokenizer


def new_gpt2(tokenizer, *, n_layer: int, n_embd: int, n_head: int, n_positions: int, n_inner: int | None = None,
             seed: int = 0):
    """A randomly initialised GPT-2 whose bos/eos/pad ids are the tokenizer's own."""
    import torch
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.manual_seed(seed)
    config = GPT2Config(vocab_size=len(tokenizer), n_layer=n_layer, n_embd=n_embd, n_head=n_head,
                        n_positions=n_positions, n_inner=n_inner, bos_token_id=tokenizer.bos_token_id,
                        eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id,
                        resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0)
    return GPT2LMHeadModel(config)


def count_parameters(model) -> int:
    return sum(p.numel() for p in model.parameters())

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
# The built-in model's definition lives in rmcore.tiny_gpt2, which the builder (rmcore.warmstart)
# reads too; its names are re-exported here, where callers look for backbones.
from rmcore.tiny_gpt2 import (BUILTIN, BUILTIN_RECIPE, EOS, PAD, TINY_GPT2_SHAPE,  # noqa: F401
                              builtin_dir, count_parameters, new_gpt2, train_tokenizer)

if TYPE_CHECKING:  # heavy imports stay lazy: the CLI's --help and the app's first paint need none
    import torch


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
                   runs_dir=None, on_progress: Callable | None = None, dtype: "torch.dtype | None" = None):
    """(model, tokenizer) for a causal LM, ready for left-padded batched generation.

    Weights load in float32 unless dtype says otherwise: a model that trains keeps fp32
    weights even at bf16 precision (rmcore.precision).
    """
    import torch
    from transformers import AutoModelForCausalLM

    path = resolve_backbone_path(backbone, runs_dir=runs_dir, on_progress=on_progress)
    tokenizer = load_tokenizer(path, trust_remote_code=trust_remote_code)
    model = _from_pretrained(AutoModelForCausalLM, path, trust_remote_code=trust_remote_code,
                             dtype=dtype or torch.float32)
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


# --------------------------------------------------------------------------- checks before a run
# Any one of these is a tokenizer transformers can load (fast JSON, GPT-2 BPE, SentencePiece,
# WordPiece). Without them AutoTokenizer may still "load" from config.json alone, and then
# turns every text into no tokens: the run would train on empty text.
TOKENIZER_FILES = ("tokenizer.json", "vocab.json", "tokenizer.model", "spiece.model",
                   "sentencepiece.bpe.model", "vocab.txt")
MAX_CONFIG_BYTES = 2**20  # config.json of the largest hub models is a few kB


def check_model_folder(path: str, *, trust_remote_code: bool = False):
    """For a local model folder: ConfigError unless it could load, without loading weights.

    config.json (a small JSON object transformers knows), tokenizer files that turn text into
    tokens, and readable safetensors weights (rmcore.safety). Returns the model's config
    (transformers PretrainedConfig); None for what is not a local folder (a hub id).
    """
    from transformers import AutoConfig

    from rmcore.safety import check_safetensors_folder

    folder = Path(path).expanduser()
    if not folder.is_dir():
        return None
    config_file = folder / "config.json"
    if not config_file.is_file():
        raise ConfigError(f"{path} has no config.json; pass a folder saved with save_pretrained.")
    if config_file.stat().st_size > MAX_CONFIG_BYTES:
        raise ConfigError(f"{config_file} is {config_file.stat().st_size} bytes; a model config is a few kB.")
    if not any((folder / name).is_file() for name in TOKENIZER_FILES):
        raise ConfigError(f"{path} has no tokenizer files ({', '.join(TOKENIZER_FILES[:3])}, …); save the "
                          "tokenizer into the folder too (tokenizer.save_pretrained).")
    check_safetensors_folder(path)
    model_config = _load_or_explain("the config", path, lambda: _from_pretrained(
        AutoConfig, path, trust_remote_code=trust_remote_code))
    tokenizer = _load_or_explain("the tokenizer", path,
                                 lambda: load_tokenizer(path, trust_remote_code=trust_remote_code))
    if not tokenizer("The quick brown fox.")["input_ids"]:
        raise ConfigError(f"The tokenizer in {path} turns text into no tokens; its tokenizer files are "
                          "incomplete (save them again with tokenizer.save_pretrained).")
    return model_config


def _load_or_explain(what: str, path: str, load: Callable):
    """load(), with whatever a corrupt file makes transformers or tokenizers raise as one sentence."""
    try:
        return load()
    except (ConfigError, HubUnavailableError):
        raise
    except Exception as exc:  # broken files raise anything from ValueError to a Rust panic's error
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ConfigError(f"Cannot load {what} in {path}: {reason[:300].rstrip('.')}.") from None


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

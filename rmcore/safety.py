"""Guards for what comes in from URLs, the CLI, uploads and configs.

Run ids and upload names become file names, so they are checked against path traversal
wherever they arrive; weights load only from safetensors (a pickle can run code when it is
read); configs, messages and tracebacks are saved and exported, so secrets never reach the
disk: secret-looking keys are stored as "***", and the values of secret environment
variables (HF_TOKEN, …) and Hugging Face token strings are scrubbed from any saved text.
"""
from __future__ import annotations

import hashlib
import os
import re
import secrets
import time
from pathlib import Path
from typing import Any

from rmcore.errors import ConfigError, DataError

_RUN_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,127}")
# Whole words only: "hf_token" and "api_key" are secrets, "max_new_tokens" is not.
_SECRET_KEY = re.compile(r"(^|[_.-])(token|secret|password|api[_-]?key)($|[_.-])", re.IGNORECASE)
# User access tokens of the Hugging Face Hub look like "hf_" + 34 letters.
_HF_TOKEN = re.compile(r"\bhf_[A-Za-z0-9]{20,}\b")
REDACTED = "***"

MAX_UPLOAD_BYTES = 50 * 2**20  # keep in step with server.maxUploadSize in .streamlit/config.toml
UPLOAD_EXTENSIONS = ("csv", "jsonl", "json", "parquet")
PICKLE_WEIGHTS = ("*.bin", "*.pt", "*.pth", "*.ckpt", "*.pkl", "*.pickle")
TRUST_REMOTE_CODE_WARNING = ("trust_remote_code is on: the model's own Python code from the hub will run "
                             "on this machine with your permissions. Only do this for repositories you trust.")


# --------------------------------------------------------------------------- names
def validate_run_id(run_id: str) -> str:
    """Return run_id if it is a safe folder name; raise ConfigError otherwise.

    Run ids arrive from URLs and the CLI and become folder names, so this is the path
    traversal guard: no separators, no "..", no leading dot, at most 128 characters.
    """
    if not isinstance(run_id, str) or not _RUN_ID.fullmatch(run_id) or ".." in run_id:
        raise ConfigError(f"Invalid run id {run_id!r}: use letters, digits, '_', '.' and '-' only.")
    return run_id


def new_run_id(name_hint: str) -> str:
    """A sortable, readable, unique id such as ``20261122-045812-grpo-3fa2``."""
    slug = re.sub(r"[^a-z0-9]+", "-", name_hint.lower()).strip("-")[:40].strip("-") or "run"
    return f"{time.strftime('%Y%m%d-%H%M%S')}-{slug}-{secrets.token_hex(2)}"


def safe_filename(name: str, default: str = "data") -> str:
    """A file name that cannot leave its folder: the last path part, reduced to [A-Za-z0-9_.-].

    Browsers send whatever name the user's file had ("../../etc/passwd", "C:\\x\\y.csv",
    "my data?.csv"); only the last part after "/" or "\\" is kept, other characters become
    "_", runs of dots collapse (no ".."), leading dots go (no hidden files), and the name is
    cut to 100 characters keeping its extension.
    """
    base = re.split(r"[\\/]", str(name))[-1]
    safe = re.sub(r"[^A-Za-z0-9_.-]", "_", base)
    safe = re.sub(r"\.{2,}", ".", safe).lstrip(".")
    if len(safe) > 100:
        stem, dot, ext = safe.rpartition(".")
        safe = (stem[: 99 - len(ext)] + dot + ext) if dot and len(ext) <= 10 else safe[:100]
    return safe or default


def save_upload(data: bytes, filename: str, uploads_dir: str | Path, *,
                max_bytes: int = MAX_UPLOAD_BYTES) -> Path:
    """Save an uploaded data file as ``uploads_dir/<sha256[:12]>-<safe name>``; return its path.

    Refuses files over max_bytes and extensions other than UPLOAD_EXTENSIONS with a DataError.
    The content hash in front keeps two different files of the same name apart, and saving
    the same bytes twice writes once.
    """
    if len(data) > max_bytes:
        raise DataError(f"{safe_filename(filename)} is {len(data) / 2**20:.1f} MB; uploads are limited to "
                        f"{max_bytes / 2**20:g} MB.")
    safe = safe_filename(filename)
    if not safe.lower().endswith(tuple(f".{ext}" for ext in UPLOAD_EXTENSIONS)):
        raise DataError(f"{safe} is not a CSV, JSONL, JSON or Parquet file.")
    folder = Path(uploads_dir)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{hashlib.sha256(data).hexdigest()[:12]}-{safe}"
    if not path.exists():
        path.write_bytes(data)
    return path


# --------------------------------------------------------------------------- weights
def check_safetensors_folder(path: str) -> None:
    """For a local model folder: ConfigError unless its weights are safetensors, each readable.

    ``from_pretrained(use_safetensors=True)`` refuses pickles too, but only once the run
    has started; checking the folder first lets a bad backbone fail before a run is
    written. Each file's header is read (not its tensors: the file is mapped, not loaded),
    which also catches a truncated copy, and a sharded model's index must name shards that
    are there. Hub ids (not local folders) are left to from_pretrained.
    """
    folder = Path(path).expanduser()
    if not folder.is_dir():
        return
    weights = sorted(folder.glob("*.safetensors"))
    if not weights:
        pickles = sorted(p.name for pattern in PICKLE_WEIGHTS for p in folder.glob(pattern))
        found = f" (found {', '.join(pickles[:3])})" if pickles else ""
        raise ConfigError(f"{path} has no safetensors weights{found}; rmcore loads weights only from "
                          "safetensors (convert with save_pretrained(safe_serialization=True)).")
    for file in weights:
        _check_safetensors_header(file)
    for index in folder.glob("*.safetensors.index.json"):
        missing = sorted(set(_index_shards(index)) - {file.name for file in weights})
        if missing:
            raise ConfigError(f"{index} names weight shards that are not in the folder ({', '.join(missing[:3])}); "
                              "copy the whole model folder.")


def _check_safetensors_header(file: Path) -> None:
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(str(file), framework="numpy") as handle:  # header only: the tensors stay on disk
            handle.keys()
    except (SafetensorError, OSError) as err:
        reason = str(err).splitlines()[0] if str(err).strip() else type(err).__name__
        raise ConfigError(f"{file} is not a readable safetensors file ({reason}); it may be truncated or "
                          "corrupt: copy or save the model again.") from None


def _index_shards(index: Path) -> list[str]:
    """The shard file names a model.safetensors.index.json maps weights to."""
    import json

    try:
        data = json.loads(index.read_text(encoding="utf-8")) if index.stat().st_size <= 64 * 2**20 else None
    except (ValueError, RecursionError, OSError):
        data = None
    weight_map = data.get("weight_map") if isinstance(data, dict) else None
    if not isinstance(weight_map, dict) or not all(isinstance(v, str) for v in weight_map.values()):
        raise ConfigError(f"{index} is not a valid safetensors index (no weight_map of file names).")
    return sorted(set(weight_map.values()))


def remote_code_warning(config: Any) -> str | None:
    """The warning to show when a config turns trust_remote_code on, else None."""
    return TRUST_REMOTE_CODE_WARNING if getattr(config, "trust_remote_code", False) else None


# --------------------------------------------------------------------------- secrets
def secret_env_values(environ: dict[str, str] | None = None) -> list[str]:
    """Values of environment variables with secret-looking names (HF_TOKEN, OPENAI_API_KEY…).

    Short values ("1", "true") are skipped: they are flags, and scrubbing them would mangle
    ordinary text.
    """
    env = os.environ if environ is None else environ
    return sorted({v for k, v in env.items() if _SECRET_KEY.search(k) and len(v.strip()) >= 8},
                  key=len, reverse=True)


def scrub_secrets(text: str | None) -> str | None:
    """text with secret env values and Hugging Face tokens replaced by "***" (None stays None)."""
    if not text:
        return text
    for value in secret_env_values():
        text = text.replace(value, REDACTED)
    return _HF_TOKEN.sub(REDACTED, text)


def redact_secrets(config: dict[str, Any]) -> dict[str, Any]:
    """Copy of config: non-empty strings under secret-looking keys become "***", and secret
    values hidden in other strings (a token pasted into a path or a name) are scrubbed."""
    out: dict[str, Any] = {}
    for key, value in config.items():
        if isinstance(value, dict):
            out[key] = redact_secrets(value)
        elif _SECRET_KEY.search(str(key)) and isinstance(value, str) and value:
            out[key] = REDACTED
        elif isinstance(value, str):
            out[key] = scrub_secrets(value)
        else:
            out[key] = value
    return out

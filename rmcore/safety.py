"""Guards for what comes in from URLs, the CLI and configs: run ids and secrets.

Run ids become folder names, so they are checked against path traversal everywhere they
arrive; configs are saved and exported, so secret-looking values never reach the disk.
"""
from __future__ import annotations

import re
import secrets
import time
from typing import Any

from rmcore.errors import ConfigError

_RUN_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,127}")
# Whole words only: "hf_token" and "api_key" are secrets, "max_new_tokens" is not.
_SECRET_KEY = re.compile(r"(^|[_.-])(token|secret|password|api[_-]?key)($|[_.-])", re.IGNORECASE)


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


def redact_secrets(config: dict[str, Any]) -> dict[str, Any]:
    """Copy of config with non-empty string values of secret-looking keys replaced by "***"."""
    out: dict[str, Any] = {}
    for key, value in config.items():
        if isinstance(value, dict):
            out[key] = redact_secrets(value)
        elif _SECRET_KEY.search(str(key)) and isinstance(value, str) and value:
            out[key] = "***"
        else:
            out[key] = value
    return out

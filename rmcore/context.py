"""The one answer to "how many tokens does this model accept?", from a model or its config.

GPT-2 configs call it n_positions, most others max_position_embeddings; a config with
neither (some remote-code models) gives None, and callers then fall back to their own limit.
"""
from __future__ import annotations

from typing import Any


def context_limit(model_or_config: Any) -> int | None:
    cfg = getattr(model_or_config, "config", model_or_config)
    return getattr(cfg, "n_positions", None) or getattr(cfg, "max_position_embeddings", None)

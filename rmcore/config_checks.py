"""How a config field's value is checked: numeric ranges, text rules, one-of choices.

Split out of rmcore.config, which declares the fields (a ``Bound`` in each number's
metadata) and calls these from ``validate()``; every failure is one ConfigError sentence
naming the field. This module must not import rmcore.config (config imports it).
"""
from __future__ import annotations

import math
import re
import unicodedata
from dataclasses import dataclass, fields
from typing import Any

from rmcore.errors import ConfigError

DEVICES = ("auto", "cpu", "cuda", "mps")  # and cuda:N
PATH_FIELDS = ("backbone", "task", "reward_model")
REQUIRED_TEXT = {"backbone": "'tiny-gpt2', a hub model id or a local model folder",
                 "task": "'synth-news', a hub dataset or a local data file"}
MAX_PATH_CHARS = 4096       # Linux PATH_MAX
MAX_TEXT_CHARS = 200        # names, columns, splits, module lists


@dataclass(frozen=True)
class Bound:
    """low <= value <= high (low < value when open_low)."""
    low: float
    high: float
    open_low: bool = False

    def problem(self, value: float) -> str | None:
        """None when value is in range, else how the sentence about it goes on ("must be ...")."""
        too_low = value <= self.low if self.open_low else value < self.low
        if not (too_low or value > self.high):
            return None
        if self.high <= 1:  # a true interval such as [0, 1]: name both ends
            return f"must be in {'(' if self.open_low else '['}{_number(self.low)}, {_number(self.high)}]"
        if value > self.high:
            return f"must be at most {_number(self.high)}"
        if self.low == 0:
            return "must be positive" if self.open_low else "must not be negative"
        return f"must be at least {_number(self.low)}"


@dataclass(frozen=True)
class OrDefault(Bound):
    """Bound, or exactly ``default``: a marker meaning "let something else decide" (for
    RewardModelConfig.margin, the loss's own margin; rmcore.rm_family resolves it)."""
    default: float = -1.0
    meaning: str = "the default"

    def problem(self, value: float) -> str | None:
        if value == self.default or super().problem(value) is None:
            return None
        return (f"must be {_number(self.default)} ({self.meaning}) or in [{_number(self.low)}, "
                f"{_number(self.high)}]")


def _number(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else repr(x)


def _check_fields(cfg: Any) -> None:
    """Every field: its type, then its range (numbers) or its length and characters (text)."""
    for f in fields(cfg):
        value, kind = getattr(cfg, f.name), type(f.default)
        ok = isinstance(value, kind) and not (kind is not bool and isinstance(value, bool))
        if kind is float and isinstance(value, int) and not isinstance(value, bool):
            ok = True  # coercion is the caller's job; an int where a float goes is fine
        if not ok:
            raise ConfigError(f"{f.name} must be {kind.__name__}, got {_shown(value)}.")
        if kind is str:
            _check_text(f.name, value, MAX_PATH_CHARS if f.name in PATH_FIELDS else MAX_TEXT_CHARS)
        elif kind is not bool:
            if kind is float and not _finite(value):
                raise ConfigError(f"{f.name} must be a finite number, got {_shown(value)}.")
            if (problem := f.metadata["bound"].problem(value)) is not None:
                raise ConfigError(f"{f.name} {problem}, got {_shown(value)}.")


def _finite(value: int | float) -> bool:
    try:
        return math.isfinite(value)
    except OverflowError:  # an int past float range, e.g. 10**400
        return False


def _check_text(name: str, value: str, limit: int) -> None:
    if len(value) > limit:
        raise ConfigError(f"{name} is {len(value)} characters long; at most {limit} are allowed.")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as err:  # a lone surrogate, e.g. an undecodable byte from argv
        raise ConfigError(f"{name} is not valid UTF-8 text (it holds {value[err.start]!r}); "
                          "use UTF-8 characters only.") from None
    if any(unicodedata.category(c) == "Cc" for c in value):
        raise ConfigError(f"{name} must not hold control characters such as newlines or NUL, got {_shown(value)}.")
    if name in REQUIRED_TEXT and not value.strip():
        raise ConfigError(f"{name} is empty; use {REQUIRED_TEXT[name]}.")


def _shown(value: Any) -> str:
    """repr for a message: escaped (one line, any terminal), cut to 60 characters."""
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _choice(cfg: Any, name: str, options: tuple[str, ...]) -> None:
    if getattr(cfg, name) not in options:
        raise ConfigError(f"{name} must be one of {', '.join(options)}; got {getattr(cfg, name)!r}.")


def _from_dict(cls: type, data: dict[str, Any]) -> Any:
    known = {f.name for f in fields(cls)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise ConfigError(f"Unknown config field(s): {', '.join(unknown)}.")
    return cls(**data)


def _check_device(device: str) -> None:
    """DEVICES, or one GPU of several as cuda:N (rmcore.placement checks that GPU N is visible)."""
    if device not in DEVICES and not re.fullmatch(r"cuda:[0-9]+", device):
        raise ConfigError(f"device must be one of {', '.join(DEVICES)} or cuda:N (one GPU); got {device!r}.")

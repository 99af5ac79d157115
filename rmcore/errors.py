"""Errors that carry a message meant for the user (CLI one-liner, UI banner).

Everything rmcore raises on bad input is a subclass of RmcoreError, so the CLI and the
runner can print ``str(err)`` and nothing else; ``failure_message`` makes any other
exception one line too.
"""
import errno
import sys


class RmcoreError(Exception):
    """Base class: the message is a complete sentence for the user."""


class ConfigError(RmcoreError, ValueError):
    """A config field is missing, of the wrong type, or out of range."""


class DataError(RmcoreError, ValueError):
    """A task or data file cannot be used (unknown name, missing columns, bad file)."""


class HubUnavailableError(RmcoreError, RuntimeError):
    """The model/dataset hub cannot be reached and nothing usable is cached."""


class TrainingError(RmcoreError, RuntimeError):
    """Training cannot go on (non-finite loss, reward term raised, out of memory)."""


class StoreError(RmcoreError, RuntimeError):
    """The run store's database cannot be used (corrupt, read-only, full disk, deleted or replaced)."""


# --------------------------------------------------------------------------- one line for any error
OOM_HINT = " — try a smaller batch, fewer samples per prompt or fewer new tokens."
DISK_FULL = "The disk holding {path} is full;"
# Checkpoints are written by os, safetensors (Rust) and torch (C++), each with its own words.
_DISK_FULL_WORDS = ("No space left on device", "StorageFull")


def failure_message(exc: BaseException, step: int | None = None) -> str:
    """One line for the user: our own errors verbatim, others prefixed by their type.

    step: the step being trained when exc was raised. Sampling from a model whose weights
    went NaN/inf (an absurd learning rate) fails inside torch.multinomial before any loss
    is computed; that is reported like the trainer's own non-finite-loss check.
    """
    text = str(exc) if isinstance(exc, RmcoreError) else f"{type(exc).__name__}: {exc}"
    text = text.strip().splitlines()[0] if text.strip() else type(exc).__name__
    if isinstance(exc, RuntimeError) and "probability tensor contains either `inf`, `nan`" in str(exc):
        where = f" at step {step}" if step is not None else ""
        text = (f"non-finite model outputs{where} (NaN or inf while sampling); "
                "try a smaller learning rate.")
    torch = sys.modules.get("torch")  # an OOM means torch is loaded; never import it here
    if torch is not None and isinstance(exc, torch.cuda.OutOfMemoryError):
        text += OOM_HINT
    if getattr(exc, "errno", None) == errno.ENOSPC or any(w in str(exc) for w in _DISK_FULL_WORDS):
        name = getattr(exc, "filename", None)
        text = f"No space left on device while saving{f' {name}' if name else ''}; free some space, then resume the run."
    return text

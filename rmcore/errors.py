"""Errors that carry a message meant for the user (CLI one-liner, UI banner).

Everything rmcore raises on bad input is a subclass of RmcoreError, so the CLI and the
runner can print ``str(err)`` and nothing else.
"""


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

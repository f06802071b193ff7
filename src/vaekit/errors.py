"""Errors a user can act on.

Anything raised as a `VaekitError` reaches the CLI as one sentence and a non-zero exit;
everything else is a bug and keeps its traceback.
"""


def first_line(error: Exception) -> str:
    """An exception's reason for a one-sentence message: libraries (torch, imageio) append lines of
    detail or advice after it."""
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


class VaekitError(Exception):
    """A problem with the user's input, files or settings, explained in the message."""


class ConfigError(VaekitError):
    """An unknown key, a value out of range, or a name that is not registered."""


class DataError(VaekitError):
    """A missing, corrupt or unsuitable dataset, image or array."""


class CheckpointError(VaekitError):
    """A run folder that is missing files or belongs to another model."""


class TrainingError(VaekitError):
    """Training could not go on (for example, too many non-finite losses)."""

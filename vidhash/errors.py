"""Exceptions that the CLI turns into one-line messages.

Bad *input* data (a broken video, an unreadable image) is not an exception in vidhash:
it becomes a row with ``status`` and ``error`` and the batch goes on. These classes are
for the cases where the user's *command* cannot be carried out.
"""

from __future__ import annotations


class VidhashError(Exception):
    """A user-facing error: the CLI prints ``error: <message>`` and exits non-zero."""

    exit_code = 2


class UsageError(VidhashError):
    """Bad arguments or option values."""


class InputError(VidhashError):
    """A missing or malformed input file (labels CSV, query image, input list)."""


class IndexMissingError(VidhashError):
    """The index directory does not exist or is not a vidhash index."""


class ModelMismatchError(VidhashError):
    """The model given does not match the one the index was built with."""


class CheckpointError(VidhashError):
    """A checkpoint file is damaged, truncated, or not a vidhash checkpoint."""


class WeightsNotFoundError(VidhashError):
    """Pretrained weights are not available offline; the message says how to supply them."""


class DecodeError(Exception):
    """A video could not be (fully) decoded. Recorded per video, never fatal to a batch."""


def error_line(exc: BaseException) -> str:
    """One line for a videos row: our errors in their own words, others with their type."""
    if isinstance(exc, OSError) and exc.strerror:
        return f"cannot read: {exc.strerror}"
    lines = str(exc).strip().splitlines()
    text = lines[0].strip() if lines else ""
    if isinstance(exc, DecodeError | InputError):
        return text or "decode error"
    return f"{type(exc).__name__}: {text}".rstrip(": ")

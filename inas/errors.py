"""Error types shared by every layer.

`BadInputError` is the one exception for anything a user handed in that is wrong (a file, a key, a value).
The CLI turns it into one line on stderr and exit code 2, never a traceback.
"""

from __future__ import annotations

import reprlib
from pathlib import Path
from typing import Any

_EXCERPT = reprlib.Repr()
_EXCERPT.maxlevel, _EXCERPT.maxstring, _EXCERPT.maxlong, _EXCERPT.maxother = 3, 60, 40, 60


class BadInputError(Exception):
    """A user-supplied input is invalid. The message names the file, the key and what was expected."""

    def __init__(self, message: str, *, path: str | Path | None = None, key: str | None = None) -> None:
        parts = []
        if path is not None:
            parts.append(str(path))
        if key is not None:
            parts.append(key)
        prefix = ": ".join(parts)
        message = _unwrap_worker_traceback(type(self), message)
        text = f"{prefix}: {message}" if prefix else message
        # printable whatever the input held: lone surrogates (from a path or a YAML string) become \udXXX escapes
        super().__init__(text.encode("utf-8", "backslashreplace").decode("utf-8"))
        self.path = None if path is None else str(path)
        self.key = key


def _unwrap_worker_traceback(cls: type, message: str) -> str:
    """`message` itself, or the original message when it is torch's re-raise of an error of a DataLoader worker
    process: torch calls `cls(f"Caught {name} in DataLoader worker process N.\nOriginal Traceback ...\n{module}.{name}:
    {message}\n")`, which would print the worker's traceback where one error line belongs."""
    if not message.startswith(f"Caught {cls.__name__} ") or "\nOriginal Traceback" not in message:
        return message
    marker = f"\n{cls.__module__}.{cls.__qualname__}: "
    at = message.rfind(marker)
    return message[at + len(marker):].rstrip("\n") if at >= 0 else message


class RunFailedError(Exception):
    """A run could not complete its work (e.g. every evaluation of a search failed). The CLI prints its one-line
    message and exits with code 1, without a traceback; the message says what failed first and how to go on."""


def excerpt(value: Any, limit: int = 100) -> str:
    """A bounded one-line repr of a user-supplied value for an error message (never the whole input)."""
    if hasattr(value, "shape") and hasattr(value, "dtype"):  # a tensor or an array: its kind, not its values
        text = f"<{type(value).__name__} of shape {tuple(value.shape)}, {value.dtype}>"
    else:
        try:
            text = _EXCERPT.repr(value)
        except ValueError:  # an int beyond Python's str-conversion digit limit
            text = f"<{type(value).__name__} of about {value.bit_length() if isinstance(value, int) else '?'} bits>"
    text = " ".join(text.split())  # one line
    return text if len(text) <= limit else text[: limit - 3] + "..."


def clip(text: str, limit: int = 300) -> str:
    """`text` (e.g. an exception's message) on one line, at most `limit` characters."""
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3] + "..."

"""Error types shared by every layer.

`BadInputError` is the one exception for anything a user handed in that is wrong (a file, a key, a value).
The CLI turns it into one line on stderr and exit code 2, never a traceback.
"""

from __future__ import annotations

from pathlib import Path


class BadInputError(Exception):
    """A user-supplied input is invalid. The message names the file, the key and what was expected."""

    def __init__(self, message: str, *, path: str | Path | None = None, key: str | None = None) -> None:
        parts = []
        if path is not None:
            parts.append(str(path))
        if key is not None:
            parts.append(key)
        prefix = ": ".join(parts)
        super().__init__(f"{prefix}: {message}" if prefix else message)
        self.path = None if path is None else str(path)
        self.key = key


class RunFailedError(Exception):
    """A run could not complete its work (e.g. every evaluation of a search failed). The CLI prints its one-line
    message and exits with code 1, without a traceback; the message says what failed first and how to go on."""

"""Checked path queries: user-given paths as one-line BadInputErrors instead of OSError / UnicodeError tracebacks.

- `path_kind(path)`: "missing", "file", "folder" or "other", where `Path.exists()` would raise for a name too long
  (ENAMETOOLONG), a permission problem on a parent, or a name the file system cannot encode (lone surrogates, NUL).
- `check_output_path(path, kind)`: before any work, an output path must be absent or of the expected kind.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Literal

from inas.errors import BadInputError

PathKind = Literal["missing", "file", "folder", "other"]


def _encoded(path: Path, key: str | None) -> bytes:
    try:
        raw = os.fsencode(path)
    except UnicodeError:
        raise BadInputError("path holds characters the file system cannot encode (e.g. a lone surrogate)",
                            path=ascii(str(path)), key=key) from None
    if b"\0" in raw:
        raise BadInputError("path holds a NUL character", path=ascii(str(path)), key=key)
    return raw


def path_kind(path: str | Path, *, key: str | None = None) -> PathKind:
    """What is at `path` (following links); BadInputError naming it if the name cannot even be looked up."""
    path = Path(path)
    _encoded(path, key)
    try:
        mode = path.stat().st_mode
    except (FileNotFoundError, NotADirectoryError):
        return "missing"
    except OSError as exc:
        raise BadInputError(f"cannot be looked up ({exc.strerror or exc})", path=path, key=key) from None
    if stat.S_ISREG(mode):
        return "file"
    return "folder" if stat.S_ISDIR(mode) else "other"


def check_output_path(path: str | Path, kind: Literal["file", "folder"], *, key: str | None = None) -> Path:
    """`path` as a Path when it is absent or already a `kind`, and it can be made there: its nearest existing
    ancestor (itself, for an existing folder) is a writable folder. Else a BadInputError (call before any work):
    an output below a file, or on a read-only file system, failed only at the first write, after the work."""
    path = Path(path)
    found = path_kind(path, key=key)
    if found not in ("missing", kind):
        what = {"file": "a file", "folder": "a folder", "other": "a special file"}[found]
        raise BadInputError(f"the output path exists and is {what}, not a {kind}", path=path, key=key)
    folder = path if found == "folder" else _nearest_existing_parent(path, key)
    if path_kind(folder, key=key) != "folder":
        raise BadInputError(f"cannot be created: {folder} is a file, not a folder", path=path, key=key)
    if not os.access(folder, os.W_OK | os.X_OK):
        raise BadInputError(f"cannot be written: no write access to {folder} (a read-only file system, or the "
                            "permissions)", path=path, key=key)
    return path


def _nearest_existing_parent(path: Path, key: str | None) -> Path:
    """The closest ancestor of `path` that exists (a file or a folder), `.` for a relative path with none."""
    for parent in path.parents:
        if path_kind(parent, key=key) != "missing":
            return parent
    return Path(".")


def require_file(path: str | Path, what: str, *, hint: str = "", key: str | None = None) -> Path:
    """`path` as a Path when it is a file; else a BadInputError naming it: "`what` not found`hint`" when absent,
    "expected `what` (a file), found a folder" when it is one (a folder was not found, which misled)."""
    path = Path(path)
    found = path_kind(path, key=key)
    if found == "missing":
        raise BadInputError(f"{what} not found{hint}", path=path, key=key)
    if found != "file":
        raise BadInputError(f"expected {what} (a file), found {'a folder' if found == 'folder' else 'a special file'}",
                            path=path, key=key)
    return path

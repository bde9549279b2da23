"""One writer per output folder: `lock_folder(folder, verb)` takes an exclusive `flock` on `folder/.lock` for the rest
of this process (or until `unlock_folder`), so a second `search` into the same folder fails at once instead of both
evaluating and the last one to save overwriting the other's results.

The operating system releases the lock when the process ends, `kill -9` included: a lock file left behind never
blocks a re-run. Within one process the lock is re-entrant (a folder prepared twice, as the tests and `demo` do).
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

from inas.errors import BadInputError

LOCK_FILE = ".lock"

_held: dict[Path, int] = {}  # resolved folder -> file descriptor holding its lock (this process)


def lock_folder(folder: str | Path, verb: str) -> bool:
    """Hold the lock of `folder` (created if absent); True if this call took it, False if this process held it.
    BadInputError naming the folder (and the holder's pid) when another process holds it."""
    folder = Path(folder).resolve()
    if folder in _held:
        return False
    folder.mkdir(parents=True, exist_ok=True)
    fd = os.open(folder / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.read(fd, 32).decode("ascii", "replace").strip() or "unknown"
        os.close(fd)
        raise BadInputError(f"another {verb} (pid {holder}) is writing into this folder; wait for it to end, or "
                            "choose another output folder", path=folder) from None
    os.ftruncate(fd, 0)
    os.write(fd, f"{os.getpid()}\n".encode())
    _held[folder] = fd
    return True


def unlock_folder(folder: str | Path) -> None:
    """Release the lock this process holds on `folder` (nothing if it holds none); the lock file stays."""
    fd = _held.pop(Path(folder).resolve(), None)
    if fd is not None:
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)

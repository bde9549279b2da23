"""Atomic file output: every artefact is written to a temporary file in the same folder, then renamed.

The temporary file is `.<name>.<pid>.<random>.tmp` beside the target, created with the normal permissions of a new
file (0666 less the umask, like `open(path, "w")`), so the renamed artefact reads like any other file. A writer
killed with SIGKILL cannot remove its temporary file: the next write of the same target removes the temporary files
of writers that are no longer alive on this machine (a writer of one file per image cleans its folder once instead).
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

TMP_SUFFIX = ".tmp"


def _pid_alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # e.g. PermissionError: the process exists
        return True
    return True


def temp_files_of(target: str | Path) -> list[Path]:
    """The temporary files of atomic writes of `target` lying beside it (of any writer, alive or not)."""
    target = Path(target)
    if not target.parent.is_dir():
        return []
    prefix = f".{target.name}."
    return sorted(p for p in target.parent.iterdir()
                  if p.name.startswith(prefix) and p.name.endswith(TMP_SUFFIX))


def _remove_if_dead(tmp: Path, pid_text: str, removed: list[Path]) -> None:
    """Remove `tmp` (appending it to `removed`) if `pid_text` is the pid of a writer no longer running here."""
    if pid_text.isdigit() and not _pid_alive(int(pid_text)):
        with contextlib.suppress(OSError):
            tmp.unlink()
            removed.append(tmp)


def remove_stale_temp_files(target: str | Path) -> list[Path]:
    """Remove the temporary files left beside `target` by writers that died (their pid is not running here);
    returns what was removed."""
    target = Path(target)
    removed: list[Path] = []
    for tmp in temp_files_of(target):
        middle = tmp.name[len(target.name) + 2: -len(TMP_SUFFIX)]  # "<pid>.<random>"
        _remove_if_dead(tmp, middle.split(".", 1)[0], removed)
    return removed


def remove_stale_temp_files_in(folder: str | Path) -> list[Path]:
    """`remove_stale_temp_files` for every target in `folder` at once, in one scan of it: for a writer of many files
    into one folder (one per image), which cleans once and then writes each with `atomic_path(..., clean_stale=False)`
    instead of scanning the growing folder at every write."""
    folder = Path(folder)
    removed: list[Path] = []
    if not folder.is_dir():
        return removed
    for tmp in sorted(folder.iterdir()):
        if tmp.name.startswith(".") and tmp.name.endswith(TMP_SUFFIX):
            parts = tmp.name[1: -len(TMP_SUFFIX)].rsplit(".", 2)  # [target name, pid, random]
            if len(parts) == 3 and parts[0]:
                _remove_if_dead(tmp, parts[1], removed)
    return removed


def _create_temp(target: Path) -> Path:
    """Create an empty, new temporary file beside `target` with the permissions `open(..., "w")` would give."""
    while True:
        tmp = target.with_name(f".{target.name}.{os.getpid()}.{secrets.token_hex(4)}{TMP_SUFFIX}")
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)  # the umask applies
        except FileExistsError:
            continue
        os.close(fd)
        return tmp


@contextlib.contextmanager
def atomic_path(path: str | Path, *, clean_stale: bool = True) -> Iterator[Path]:
    """Yield a temporary path beside `path`; on success it is renamed onto `path`, on error it is removed.
    `clean_stale=False` skips the scan for dead writers' temporary files (the caller ran `remove_stale_temp_files_in`
    on the folder)."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    if clean_stale:
        remove_stale_temp_files(target)
    tmp = _create_temp(target)
    try:
        yield tmp
        os.replace(tmp, target)
    except OSError as exc:
        if exc.filename is None:  # a full disk met in write() or close(): name the output, not no file at all
            exc.filename = str(target)
        raise
    finally:
        if tmp.exists():
            tmp.unlink()


def atomic_write_text(path: str | Path, text: str) -> None:
    """Write `text` to `path` atomically (UTF-8)."""
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """Write `data` to `path` atomically."""
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def atomic_write_json(path: str | Path, obj: Any) -> None:
    """Write `obj` as indented JSON to `path` atomically."""
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=False) + "\n")


def atomic_write_parquet(path: str | Path, frame: Any) -> None:
    """Write a pandas DataFrame to Parquet atomically."""
    with atomic_path(path) as tmp:
        frame.to_parquet(tmp, index=False)

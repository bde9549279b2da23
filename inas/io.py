"""Atomic file output: every artefact is written to a temporary file in the same folder, then renamed.

The temporary file is `.<name>.<pid>.<random>.tmp` beside the target, created with the normal permissions of a new
file (0666 less the umask, like `open(path, "w")`), so the renamed artefact reads like any other file. A writer
killed with SIGKILL cannot remove its temporary file: the next write of the same target removes the temporary files
of writers that are no longer alive on this machine.
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


def remove_stale_temp_files(target: str | Path) -> list[Path]:
    """Remove the temporary files left beside `target` by writers that died (their pid is not running here);
    returns what was removed."""
    target = Path(target)
    removed = []
    for tmp in temp_files_of(target):
        middle = tmp.name[len(target.name) + 2: -len(TMP_SUFFIX)]  # "<pid>.<random>"
        pid_text = middle.split(".", 1)[0]
        if pid_text.isdigit() and not _pid_alive(int(pid_text)):
            with contextlib.suppress(OSError):
                tmp.unlink()
                removed.append(tmp)
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
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside `path`; on success it is renamed onto `path`, on error it is removed."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temp_files(target)
    tmp = _create_temp(target)
    try:
        yield tmp
        os.replace(tmp, target)
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

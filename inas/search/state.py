"""`search_state.json`: the searchers' resumable state, written after every trial beside `evaluations.parquet`.

One frozen `SearchState` and one reader (`read_search_state`) that checks every field before anything uses it:
a damaged or foreign file is a BadInputError naming the file and the field, never a KeyError later. The searchers'
own states are checked again by `Searcher.load_state_dict`.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from inas.errors import BadInputError
from inas.io import atomic_write_json

STATE_FILE = "search_state.json"
STATE_FORMAT = "inas-search-state"
STATE_VERSION = 1
MAX_STATE_BYTES = 512 * 1024 * 1024


@dataclass(frozen=True)
class SearchState:
    """The task of the search and each searcher's `state_dict()` by searcher name."""

    task: str
    searchers: Mapping[str, Mapping[str, Any]]

    def to_json(self) -> dict[str, Any]:
        return {"format": STATE_FORMAT, "version": STATE_VERSION, "task": self.task,
                "searchers": {name: dict(state) for name, state in self.searchers.items()}}


def write_search_state(path: str | Path, state: SearchState) -> None:
    atomic_write_json(path, state.to_json())


def read_search_state(path: str | Path) -> SearchState:
    """Read and check `search_state.json`; BadInputError naming `path` and the bad field otherwise."""
    path = Path(path)
    try:
        if path.stat().st_size > MAX_STATE_BYTES:
            raise BadInputError(f"larger than {MAX_STATE_BYTES // 2**20} MiB: not a search state", path=path)
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise BadInputError(f"cannot read the search state ({type(exc).__name__}: {str(exc)[:200]})",
                            path=path) from None
    if not isinstance(doc, dict):
        raise BadInputError(f"not a search state: expected a JSON object, got {type(doc).__name__}", path=path)
    for key, expected in (("format", STATE_FORMAT), ("version", STATE_VERSION)):
        if doc.get(key) != expected or isinstance(doc.get(key), bool):
            raise BadInputError(f"not a search state: expected {expected!r}, got {_excerpt(doc.get(key))}",
                                path=path, key=key)
    task = doc.get("task")
    if task not in ("sod", "seg"):
        raise BadInputError(f"expected 'sod' or 'seg', got {_excerpt(task)}", path=path, key="task")
    searchers = doc.get("searchers")
    if not isinstance(searchers, dict) or not all(isinstance(v, dict) for v in searchers.values()):
        raise BadInputError("expected an object of searcher states by name", path=path, key="searchers")
    return SearchState(task, searchers)


def _excerpt(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."

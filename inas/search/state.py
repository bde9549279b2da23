"""`search_state.json`: the searchers' resumable state, saved beside `evaluations.parquet`, and when to save both.

One frozen `SearchState` and one reader (`read_search_state`) that checks every field before anything uses it:
a damaged or foreign file is a BadInputError naming the file and the field, never a KeyError later. The searchers'
own states are checked again by `Searcher.load_state_dict`.

When to save (`StateSaver`, `SavePolicy`): a save rewrites BOTH files whole (`evaluations.parquet`, then
`search_state.json`, each atomically), because together they are one consistent snapshot that a re-run resumes from
exactly (the searchers' states hold every result they were told, so they grow with the run as the table does).
Saving after every trial made a run's write cost quadratic (at 10,000 evaluations each save rewrites 10,000 rows).
So saves are rate-limited with a bounded loss window instead:
- a save happens when the rows added or replaced since the last save reach `growth` x the rows saved then (at least
  1 row): the saved table grows geometrically, so the rows written over a whole run are at most about
  (1 + 1/growth) x the final row count, i.e. O(new rows) per trial amortised, and the number of full saves grows
  with the logarithm of the run's length (about 10 + 24 log10(n / 10) saves for n rows at growth 0.1);
- or when the oldest unsaved change is `interval_s` old (checked when results arrive): a slow run never holds more
  than `interval_s` of results unsaved;
- and always at the end of a run.
A run killed with SIGKILL loses at most the results of the last save window (the larger of `growth` x the saved rows
and `interval_s` of results): a re-run restores the last snapshot and evaluates those archs again (the searchers are
restored exactly, so they ask the same archs again). Each file is written atomically; a kill between the two
writes leaves `evaluations.parquet` ahead of the state, so the state records its table's row count (`rows`) and the
re-run leaves the later rows out (`inas.search.driver`), evaluating their archs again. An
append-only journal of new rows would lose nothing, but the searchers' states are not append-only (their random
generators and populations change with every result), so a journal would resume them inexactly; the first rows (up
to 1 / growth + 1 = 11) are saved after every trial, so small runs behave as before. A save writes compact JSON
(json's C encoder; an indented layout takes the pure-Python one) with the cyclic garbage collector paused (a save
allocates many short-lived containers per row, which made it about 10x slower at 2,000 rows).
"""

from __future__ import annotations

import gc
import json
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal

from inas.io import atomic_write_text
from inas.json_files import read_json_document
from inas.validation_problems import Count, DocumentModel, exactly, expecting, parse_document

STATE_FILE = "search_state.json"
STATE_FORMAT = "inas-search-state"
STATE_VERSION = 1
MAX_STATE_BYTES = 512 * 1024 * 1024


@dataclass(frozen=True)
class SearchState:
    """The task of the search, each searcher's `state_dict()` by searcher name, and `rows`: the number of rows of
    `evaluations.parquet` saved with these states (None in files written before it was recorded)."""

    task: str
    searchers: Mapping[str, Mapping[str, Any]]
    rows: int | None = None

    def to_json(self) -> dict[str, Any]:
        doc = {"format": STATE_FORMAT, "version": STATE_VERSION, "task": self.task,
               "searchers": {name: dict(state) for name, state in self.searchers.items()}}
        if self.rows is not None:
            doc["rows"] = self.rows
        return doc


class SearchStateDocument(DocumentModel):
    """What `search_state.json` holds (`SearchState.to_json`); `rows` is absent in files written before it was
    recorded. The searchers' states are checked by `Searcher.load_state_dict`."""

    format: Annotated[str, exactly(STATE_FORMAT)]
    version: Annotated[int, exactly(STATE_VERSION)]
    task: Literal["sod", "seg"]
    searchers: Annotated[dict[str, dict[str, Any]], expecting("an object of searcher states by name")]
    rows: Count | None = None


def write_search_state(path: str | Path, state: SearchState) -> None:
    """Compact JSON (one line): json's C encoder, several times faster than an indented layout on large states."""
    atomic_write_text(path, json.dumps(state.to_json(), separators=(",", ":")) + "\n")


def read_search_state(path: str | Path) -> SearchState:
    """Read and check `search_state.json`; BadInputError naming `path` and the bad field otherwise."""
    path = Path(path)
    doc = parse_document(SearchStateDocument, read_json_document(path, "search state", MAX_STATE_BYTES), path=path)
    return SearchState(doc.task, doc.searchers, doc.rows)


@dataclass(frozen=True)
class SavePolicy:
    """When `StateSaver` saves (see the module docstring): unsaved changes >= `growth` x the rows saved last time (at
    least 1), or the oldest unsaved change is `interval_s` old. `SavePolicy(growth=0)` saves after every change."""

    growth: float = 0.1
    interval_s: float = 30.0

    def __post_init__(self) -> None:
        if self.growth < 0 or self.interval_s < 0:
            raise ValueError(f"growth and interval_s must be >= 0, got {self}")


@dataclass
class SaveStats:
    """What the saves of one run cost: full saves, rows written over all of them, seconds spent saving."""

    saves: int = 0
    rows_written: int = 0
    save_seconds: float = 0.0
    save_seconds_each: list[float] = field(default_factory=list)


class StateSaver:
    """Calls `save()` (writes every row and the searchers' states) following `policy`. `changed(rows, changes)` is
    called after the results table changed (`rows`: its row count now; `changes`: a counter of rows added or replaced
    since the run began); `flush(rows, changes)` saves whatever is unsaved."""

    def __init__(self, save: Callable[[], None], policy: SavePolicy = SavePolicy(), saved_rows: int = 0,
                 saved_changes: int = 0, clock: Callable[[], float] = time.monotonic) -> None:
        self._save = save
        self.policy = policy
        self._clock = clock
        self.saved_rows = saved_rows  # what is on disk already (a resumed run's table)
        self.saved_changes = saved_changes
        self._first_unsaved_at: float | None = None
        self.stats = SaveStats()

    def changed(self, rows: int, changes: int) -> None:
        """Save if the policy says so (see the class docstring for the arguments)."""
        unsaved = changes - self.saved_changes
        if unsaved <= 0:
            return
        now = self._clock()
        if self._first_unsaved_at is None:
            self._first_unsaved_at = now
        due_rows = unsaved >= max(1.0, self.policy.growth * self.saved_rows)
        if due_rows or now - self._first_unsaved_at >= self.policy.interval_s:
            self.flush(rows, changes)

    def flush(self, rows: int, changes: int) -> None:
        """Save now (also with nothing unsaved: the end of a run writes its files whatever happened)."""
        start = time.perf_counter()
        collecting = gc.isenabled()
        gc.disable()  # a save allocates ~100 short-lived containers per row: the cyclic GC made it 10x slower
        try:
            self._save()
        finally:
            if collecting:
                gc.enable()
        seconds = time.perf_counter() - start
        self.stats.saves += 1
        self.stats.rows_written += rows
        self.stats.save_seconds += seconds
        self.stats.save_seconds_each.append(seconds)
        self.saved_rows = rows
        self.saved_changes = changes
        self._first_unsaved_at = None


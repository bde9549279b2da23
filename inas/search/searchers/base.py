"""The searcher interface: `ask() -> Arch | None`, `tell(arch, result)`, `is_finished()`, JSON state for resuming.

A driver (the Ray Tune driver, a test loop) runs:

    while not searcher.is_finished():
        arch = searcher.ask()            # None: nothing to ask now, wait for a running evaluation and tell it
        ... evaluate arch (in parallel) ...
        searcher.tell(arch, {"max_fmeasure": 0.81, "latency_ms": 12.3})

Common behaviour implemented here:
- `budget` is the number of distinct architectures a searcher asks in all; it never asks one twice.
- The resource side comes from a cheap callable `latency_fn(arch) -> ms` (the LUT predictor of the primary device);
  the objective comes from `tell`. `result[latency_key]` is used as the latency when present, else `latency_fn`.
  A result whose metric is missing or NaN is a failed evaluation: kept (never asked again), never selected.
- Constraints: callables `arch -> bool` (all must hold), plus `max_latency_ms` on `latency_fn`. Infeasible archs are
  never asked; searchers redraw a bounded number of times and raise `InfeasibleConstraintError` when no draw works.
- Several devices: `device_latency_fns` {device: arch -> ms} (the driver passes every device's LUT); each told
  record keeps the latency per device (`Record.device_ms`: the result's `latency_ms__<device>`, else the function).
  Multi-objective searchers (optuna, predictor) optimise over all of them.
- Warm start: `warm_start(records)` hands over evaluations of earlier runs (prior knowledge, outside the budget, kept
  in the state); searchers that learn use them in `_on_warm_start`.
- `state_dict()` is plain JSON data (no pickle): the told results, the archs in flight, the RNG state and each
  searcher's own state. After `load_state_dict` the archs that were in flight (asked, never told: their trials died
  with the process) are asked again first, then the searcher continues exactly where it stopped.
"""

from __future__ import annotations

import hashlib
import json
import math
import random
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Annotated, Any, ClassVar, Literal

import pandas as pd
from pydantic import Field, Strict

from inas.errors import BadInputError, excerpt
from inas.search.schema import latency_column
from inas.search.searchers.state_types import ArchDoc, Milliseconds, check_state, state_arch
from inas.space import Arch, SearchSpace, sample_min
from inas.validation_problems import Count, DocumentModel, Integer, Number, Text, expecting, parse_document

LatencyFn = Callable[[Arch], float]
Constraint = Callable[[Arch], bool]
STATE_FORMAT = "inas-searcher-state"
STATE_VERSION = 1
LATENCY_CACHE_SIZE = 4096
RNG_WORDS = 625  # Mersenne Twister's state words and its position, as `random.Random.getstate()` holds them


class InfeasibleConstraintError(BadInputError):
    """No architecture satisfying the constraints was found within the bounded number of draws."""


@dataclass(frozen=True)
class UpperBound:
    """The constraint `value_fn(arch) <= limit`, named for messages (e.g. "latency_ms <= 20")."""

    name: str
    value_fn: Callable[[Arch], float]
    limit: float

    def __call__(self, arch: Arch) -> bool:
        return float(self.value_fn(arch)) <= self.limit

    def __str__(self) -> str:
        return f"{self.name} <= {self.limit:g}"


def constraint_name(constraint: Constraint) -> str:
    if isinstance(constraint, UpperBound):
        return str(constraint)
    return getattr(constraint, "__name__", None) or repr(constraint)


@dataclass
class Record:
    """One told evaluation. `metric` is None for a failed evaluation."""

    arch: Arch
    metric: float | None
    latency_ms: float
    device_ms: dict[str, float] | None = None  # latency per device (`device_latency_fns` order), when given


def space_fingerprint(space: SearchSpace) -> str:
    """Short hash of the space's choices, stored in states so that a resume on another space is refused."""
    return hashlib.sha1(json.dumps(space.summary(), sort_keys=True).encode()).hexdigest()[:12]


RngWord = Annotated[int, Strict(), Field(ge=0, lt=2**32), expecting("an integer in [0, 2**32)")]
RngState = Annotated[
    tuple[Literal[3], Annotated[list[RngWord], Field(min_length=RNG_WORDS, max_length=RNG_WORDS)], Number | None],
    expecting(f"a random generator's state [3, [{RNG_WORDS} integers], a number or null]")]


class RecordState(DocumentModel):
    """A told evaluation (`Record`) in a state: `metric` null for a failed evaluation."""

    arch: ArchDoc
    metric: Number | None
    latency_ms: Milliseconds
    device_ms: dict[str, Milliseconds] | None = None


class SearcherState(DocumentModel):
    """`Searcher.state_dict()`; `extra` is the searcher's own state, checked by its `_load_extra_state`."""

    format: Text
    version: Integer
    searcher: Text
    space: Text
    metric: Text
    mode: Text
    rng: RngState
    asked: Count
    in_flight: list[ArchDoc]
    records: list[RecordState]
    prior: list[RecordState] = []
    stats: dict[str, Integer]
    extra: dict[str, Any]


def rng_state_to_json(rng: random.Random) -> list:
    version, internal, gauss = rng.getstate()
    return [version, list(internal), gauss]


def rng_state_from_json(rng: random.Random, state: RngState) -> None:
    """Restore `rng` from a checked `rng_state_to_json` list."""
    version, internal, gauss = state
    check_state(internal[-1] <= RNG_WORDS - 1, f"rng[1][{RNG_WORDS - 1}]",
                f"expected the generator's position (<= {RNG_WORDS - 1}), got {internal[-1]}")
    rng.setstate((version, tuple(internal), gauss))


class Searcher(ABC):
    """Base of every searcher (see the module docstring). Subclasses implement `_next()` and may extend
    `_on_tell`, `_exhausted`, `_extra_state`, `_load_extra_state` and `tags`."""

    name: ClassVar[str] = "searcher"
    # keyword parameters that count architectures (population, selection, initial design): `scaled_searcher` shrinks
    # them with the budget for smoke runs
    size_params: ClassVar[tuple[str, ...]] = ()

    def __init__(self, space: SearchSpace, latency_fn: LatencyFn, budget: int, seed: int = 0, *,
                 metric: str = "max_fmeasure", mode: str = "max", latency_key: str = "latency_ms",
                 constraints: Constraint | Iterable[Constraint] = (), max_latency_ms: float | None = None,
                 max_tries: int = 1000, device_latency_fns: Mapping[str, LatencyFn] | None = None) -> None:
        if not isinstance(budget, int) or isinstance(budget, bool) or budget < 1:
            raise BadInputError(f"must be a positive integer (number of evaluations), got {budget!r}", key="budget")
        if mode not in ("min", "max"):
            raise BadInputError(f"must be 'min' or 'max', got {mode!r}", key="mode")
        if not isinstance(max_tries, int) or isinstance(max_tries, bool) or max_tries < 1:
            raise BadInputError(f"must be an integer >= 1, got {excerpt(max_tries)}", key="max_tries")
        if max_latency_ms is not None and (not isinstance(max_latency_ms, int | float)
                                           or isinstance(max_latency_ms, bool) or not math.isfinite(max_latency_ms)):
            raise BadInputError(f"must be a finite number of ms, got {excerpt(max_latency_ms)}", key="max_latency_ms")
        self.space = space
        self.latency_fn = latency_fn
        self.budget = budget
        self.seed = seed
        self.metric = metric
        self.mode = mode
        self.latency_key = latency_key
        self.max_tries = max_tries
        # device -> arch -> ms (LUT) for every deploy device; the told result's `latency_ms__<device>` wins
        self.device_latency_fns: dict[str, LatencyFn] = dict(device_latency_fns or {})
        self.max_latency_ms = None if max_latency_ms is None else float(max_latency_ms)
        self._latency_cache: dict[Arch, float] = {}
        self.constraints: list[Constraint] = [constraints] if callable(constraints) else list(constraints)
        if self.max_latency_ms is not None:
            self.constraints.append(UpperBound("latency_ms", self.latency_ms, self.max_latency_ms))
            min_ms = self.latency_ms(sample_min(space))
            if min_ms > self.max_latency_ms:
                raise InfeasibleConstraintError(
                    f"max_latency_ms {self.max_latency_ms:g} is below the latency of the smallest architecture of the "
                    f"space ({min_ms:.4g} ms); no architecture can satisfy it", key="max_latency_ms")
        self._rng = random.Random(seed)
        self._asked = 0
        self._in_flight: dict[str, Arch] = {}
        self._reask: list[str] = []
        self._records: dict[str, Record] = {}
        self._prior: dict[str, Record] = {}  # evaluations of earlier runs (`warm_start`), not asked by this searcher
        self.stats: dict[str, int] = {}

    # ----- helpers for subclasses ------------------------------------------------------------------------------
    def latency_ms(self, arch: Arch) -> float:
        """`latency_fn(arch)`, with a small cache (the last LATENCY_CACHE_SIZE archs)."""
        value = self._latency_cache.get(arch)
        if value is None:
            value = float(self.latency_fn(arch))
            if len(self._latency_cache) >= LATENCY_CACHE_SIZE:
                del self._latency_cache[next(iter(self._latency_cache))]
            self._latency_cache[arch] = value
        return value

    def is_feasible(self, arch: Arch) -> bool:
        return all(c(arch) for c in self.constraints)

    def is_known(self, arch: Arch) -> bool:
        """Asked before (told or in flight)."""
        return arch.arch_id in self._records or arch.arch_id in self._in_flight

    def known_record(self, arch: Arch) -> Record | None:
        """The told or warm-start evaluation of `arch`, if any."""
        return self._records.get(arch.arch_id) or self._prior.get(arch.arch_id)

    def warm_start(self, records: Iterable[Record]) -> int:
        """Feed evaluations of earlier runs on the same space (`search --warm-start`). They are kept (and saved in
        the state) as prior knowledge, not counted in the budget; what a searcher does with them is its
        `_on_warm_start` (default: nothing). Returns how many were new."""
        new = []
        for record in records:
            key = record.arch.arch_id
            if key not in self._prior and key not in self._records:
                self._prior[key] = record
                new.append(record)
        self._count("warm_start_records", len(new))
        self._on_warm_start(new)
        return len(new)

    def score(self, record: Record) -> float | None:
        """The metric oriented so that larger is better (None for a failed evaluation)."""
        if record.metric is None:
            return None
        return record.metric if self.mode == "max" else -record.metric

    def known_score(self, record: Record) -> float:
        """`score` of a record that holds a metric (a successful evaluation); ValueError otherwise."""
        value = self.score(record)
        if value is None:
            raise ValueError(f"arch {record.arch.arch_id} has no metric to score")
        return value

    def _count(self, key: str, n: int = 1) -> None:
        self.stats[key] = self.stats.get(key, 0) + n

    def _infeasible_error(self, what: str, tries: int) -> InfeasibleConstraintError:
        names = ", ".join(constraint_name(c) for c in self.constraints) or "none"
        return InfeasibleConstraintError(
            f"{self.name}: no architecture satisfying the constraints [{names}] found in {tries} draws ({what}); "
            "relax the constraints", key="constraints")

    # ----- the interface ---------------------------------------------------------------------------------------
    def ask(self) -> Arch | None:
        """The next architecture to evaluate, or None when the searcher must first get results (or is finished)."""
        if self._reask:
            return self._in_flight[self._reask.pop(0)]
        if self._asked >= self.budget or self._exhausted():
            return None
        arch = self._next()
        if arch is None:
            return None
        if self.is_known(arch):
            raise RuntimeError(f"{self.name} produced an already asked arch {arch.arch_id}")  # a bug, not input
        self._in_flight[arch.arch_id] = arch
        self._asked += 1
        return arch

    def tell(self, arch: Arch, result: Mapping[str, Any]) -> None:
        """Report the evaluation of an asked arch: `result[metric]` (None/NaN = failed) and optionally
        `result[latency_key]` in ms (default: `latency_fn(arch)`)."""
        key = arch.arch_id
        if key not in self._in_flight:
            state = "was already told" if key in self._records else "was never asked by this searcher"
            raise ValueError(f"arch {key} {state}")
        metric = result.get(self.metric)
        metric = None if metric is None or math.isnan(float(metric)) else float(metric)
        latency = result.get(self.latency_key)
        latency = self.latency_ms(arch) if latency is None or math.isnan(float(latency)) else float(latency)
        del self._in_flight[key]
        if key in self._reask:
            self._reask.remove(key)
        record = Record(arch, metric, latency, self._device_ms(arch, result))
        self._records[key] = record
        if metric is None:
            self._count("failed_evaluations")
        self._on_tell(record)

    def amend(self, arch: Arch, result: Mapping[str, Any]) -> None:
        """Replace the failed record of a told arch by a successful re-evaluation (a rerun retrying the archs an
        earlier run could not evaluate); the budget is not touched. Subclasses may react in `_on_amend`."""
        key = arch.arch_id
        old = self._records.get(key)
        if old is None or old.metric is not None:
            raise ValueError(f"arch {key} has no failed record to amend")
        metric = result.get(self.metric)
        if metric is None or math.isnan(float(metric)):
            raise ValueError(f"arch {key}: an amended result needs the metric {self.metric!r}")
        latency = result.get(self.latency_key)
        latency = self.latency_ms(arch) if latency is None or math.isnan(float(latency)) else float(latency)
        record = Record(arch, float(metric), latency, self._device_ms(arch, result))
        self._records[key] = record
        self._count("failed_evaluations", -1)
        self._count("amended_evaluations")
        self._on_amend(record)

    def told_arch(self, arch_id: str) -> Arch | None:
        """The told arch with this id, or None."""
        record = self._records.get(arch_id)
        return None if record is None else record.arch

    def _device_ms(self, arch: Arch, result: Mapping[str, Any]) -> dict[str, float] | None:
        """`result["latency_ms__<device>"]` per device of `device_latency_fns`, else that device's function."""
        if not self.device_latency_fns:
            return None
        out = {}
        for device, fn in self.device_latency_fns.items():
            value = result.get(latency_column(device))
            out[device] = float(fn(arch)) if value is None or math.isnan(float(value)) else float(value)
        return out

    def is_finished(self) -> bool:
        """True when nothing is in flight and nothing more will be asked."""
        return not self._in_flight and (self._asked >= self.budget or self._exhausted())

    def tags(self, arch: Arch) -> dict[str, Any]:
        """Extra columns for this arch's row in evaluations.parquet (at least `generation`, -1 if none)."""
        return {"generation": -1}

    @property
    def num_asked(self) -> int:
        return self._asked

    @property
    def num_told(self) -> int:
        return len(self._records)

    @property
    def records(self) -> list[Record]:
        """Told evaluations in the order they were told."""
        return list(self._records.values())

    def results_frame(self) -> pd.DataFrame:
        """The told evaluations: arch_id, arch (JSON), searcher, the metric, latency_ms and the tags."""
        rows = []
        for key, rec in self._records.items():
            rows.append({"arch_id": key, "arch": rec.arch.to_json(), "searcher": self.name,
                         self.metric: rec.metric, "latency_ms": rec.latency_ms, **self.tags(rec.arch)})
        columns = ["arch_id", "arch", "searcher", self.metric, "latency_ms", "generation"]
        frame = pd.DataFrame(rows)
        if frame.empty:
            return pd.DataFrame(columns=columns)
        frame[self.metric] = frame[self.metric].astype(float)
        return frame

    # ----- subclass hooks --------------------------------------------------------------------------------------
    @abstractmethod
    def _next(self) -> Arch | None:
        """A new (never asked) feasible arch, or None to wait for results."""

    def _on_tell(self, record: Record) -> None:  # noqa: B027 - optional hook
        """Called after a result has been recorded."""

    def _on_amend(self, record: Record) -> None:  # noqa: B027 - optional hook
        """Called after a failed record was replaced by a successful re-evaluation (see `amend`)."""

    def _on_warm_start(self, records: list[Record]) -> None:  # noqa: B027 - optional hook
        """Called with the new records of `warm_start`."""

    def _exhausted(self) -> bool:
        """True when the searcher will ask nothing more even below the budget."""
        return False

    def _extra_state(self) -> dict[str, Any]:
        return {}

    def _load_extra_state(self, state: Mapping[str, Any]) -> None:  # noqa: B027 - optional hook
        pass

    # ----- state -----------------------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """Everything needed to resume, as JSON-serialisable plain data."""
        return {
            "format": STATE_FORMAT,
            "version": STATE_VERSION,
            "searcher": self.name,
            "space": space_fingerprint(self.space),
            "metric": self.metric,
            "mode": self.mode,
            "rng": rng_state_to_json(self._rng),
            "asked": self._asked,
            "in_flight": [a.to_dict() for a in self._in_flight.values()],
            "records": [_record_to_json(r) for r in self._records.values()],
            **({"prior": [_record_to_json(r) for r in self._prior.values()]} if self._prior else {}),
            "stats": dict(self.stats),
            "extra": self._extra_state(),
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore a state written by `state_dict` of the same searcher kind on the same space; every field is
        checked first (BadInputError naming its key path otherwise)."""
        expected = {"format": STATE_FORMAT, "version": STATE_VERSION, "searcher": self.name,
                    "space": space_fingerprint(self.space), "metric": self.metric, "mode": self.mode}
        for key, value in expected.items():
            if not isinstance(state, Mapping) or state.get(key) != value:
                got = state.get(key) if isinstance(state, Mapping) else type(state).__name__
                raise BadInputError(f"searcher state does not match: expected {value!r}, got {got!r}", key=key)
        doc = parse_document(SearcherState, dict(state))
        rng_state_from_json(self._rng, doc.rng)
        self._asked = doc.asked
        self._records = _records(doc.records, self.space, "records")
        self._prior = _records(doc.prior, self.space, "prior")
        self._in_flight = {}
        for i, arch_doc in enumerate(doc.in_flight):
            arch = state_arch(arch_doc, self.space, f"in_flight[{i}]")
            check_state(arch.arch_id not in self._records, f"in_flight[{i}]",
                        f"arch {arch.arch_id} is in flight, but `records` holds its result already")
            self._in_flight[arch.arch_id] = arch
        if self._asked != len(self._records) + len(self._in_flight):  # every asked arch is told or in flight
            raise BadInputError(f"{self._asked} architectures asked, but {len(self._records)} told and "
                                f"{len(self._in_flight)} in flight", key="asked")
        self.stats = dict(doc.stats)
        self._reask = list(self._in_flight)
        self._load_extra_state(doc.extra)


def _record_to_json(record: Record) -> dict[str, Any]:
    return {"arch": record.arch.to_dict(), "metric": record.metric, "latency_ms": record.latency_ms,
            **({"device_ms": record.device_ms} if record.device_ms is not None else {})}


def _records(docs: list[RecordState], space: SearchSpace, key: str) -> dict[str, Record]:
    """The checked records of a state's list at `key`, by arch id."""
    records = {}
    for i, doc in enumerate(docs):
        arch = state_arch(doc.arch, space, f"{key}[{i}].arch")
        records[arch.arch_id] = Record(arch, doc.metric, doc.latency_ms, doc.device_ms)
    return records

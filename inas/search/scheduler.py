"""The Ray-free core of the search driver: which architectures go into which trial, and what happens to results.

`TrialScheduler` multiplexes the configured searchers over trials, each one batch of archs (the worker slots of
`inas.search.slots` evaluate them, one after the other; the thin Tune adapter in `inas.search.tune_adapter` only
forwards to those, so everything here is unit-tested without Ray):
- `suggest(trial_id)` takes the next searcher (round robin) below its `concurrent_trials` and returns a
  `TrialConfig` with up to `archs_per_trial` archs of that searcher: first archs waiting for a retry, then new ones it
  asks. An arch already in the results table is told at once from it (`cached` row); one being evaluated (or waiting
  for a retry) for another searcher is told when that evaluation ends. No arch is evaluated twice.
- `complete(trial_id, report)`: a successful arch is told to its searcher and recorded; a failed one (its trial died:
  `report` None, or the trial or the arch reported an error) goes back to the retry queue until it has failed
  `1 + max_retries` times; only then is it told as failed (metric NaN) and recorded with its error. Failed attempts
  never use up a searcher's budget.
- `retry_failed_rows()` (on resume): archs recorded as failed by an earlier run are evaluated again; a success
  replaces the failed row and amends the searcher's record (`Searcher.amend`), so a rerun completes the search
  without spending budget.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from inas.search.evaluators import TASK_METRICS, EvaluationTable, ResourceEvaluator, latency_column
from inas.search.searchers import Searcher
from inas.search.trial import ArchOutcome, TrialReport
from inas.space import Arch

log = logging.getLogger(__name__)

FINISHED = "FINISHED"


@dataclass(frozen=True)
class TrialConfig:
    """What one trial evaluates: the searcher's name and its archs."""

    searcher: str
    archs: tuple[Arch, ...]

    def to_tune(self) -> dict[str, Any]:
        return {"searcher": self.searcher, "archs": [a.to_json() for a in self.archs]}


@dataclass
class _Live:
    config: TrialConfig
    started: float


@dataclass
class _Retry:
    """An arch waiting to be evaluated again: by `searcher`, after `attempts` failures, `amend` when an earlier run
    already told it as failed."""

    searcher: str
    arch: Arch
    attempts: int = 0
    amend: bool = False
    last_error: str = ""


@dataclass
class TrialStats:
    """What a run's batches did (`trials` counts batches: the scheduler's "trial" is one batch, evaluated by a worker
    slot, `inas.search.slots`)."""

    trials: int = 0
    failed_trials: int = 0
    evaluated: int = 0
    cached: int = 0
    retried: int = 0  # arch evaluations repeated after a failure
    given_up: list[tuple[str, str, str]] = field(default_factory=list)  # (searcher, arch id, error)
    trial_seconds: list[float] = field(default_factory=list)  # driver-side wall time from suggest to complete
    eval_seconds: list[float] = field(default_factory=list)  # worker-side evaluation time per trial
    completed_at: list[float] = field(default_factory=list)  # perf_counter() when each trial completed
    archs_per_completed: list[int] = field(default_factory=list)  # archs of each completed trial
    worker_per_completed: list[int] = field(default_factory=list)  # worker pid of each completed trial (-1: failed)

    @property
    def workers(self) -> set[int]:
        """Worker processes that ran trials successfully (each builds one evaluator)."""
        return set(self.worker_per_completed) - {-1}

    def steady_evaluations_per_minute(self) -> float:
        """Archs per minute in steady state, excluding each worker's start-up: per worker process, the archs of its
        2nd..last trials over the time between its first and last completion, summed over workers. (Per worker, so
        that trials completing side by side on concurrent workers do not inflate the rate.) NaN if no worker
        completed two trials."""
        per_worker: dict[int, list[tuple[float, int]]] = {}
        for pid, at, archs in zip(self.worker_per_completed, self.completed_at, self.archs_per_completed, strict=True):
            if pid != -1:
                per_worker.setdefault(pid, []).append((at, archs))
        rate = 0.0
        counted = False
        for done in per_worker.values():
            if len(done) >= 2 and done[-1][0] > done[0][0]:
                rate += sum(a for _, a in done[1:]) / (done[-1][0] - done[0][0]) * 60
                counted = True
        return rate if counted else math.nan


class TrialScheduler:
    """See the module docstring. `on_change()` is called after results were recorded (the driver saves state)."""

    def __init__(self, searchers: Mapping[str, Searcher], concurrency: Mapping[str, int], table: EvaluationTable,
                 resources: ResourceEvaluator, task: str, archs_per_trial: int, max_retries: int = 2,
                 on_change: Callable[[], None] = lambda: None) -> None:
        self.searchers = dict(searchers)
        self.concurrency = dict(concurrency)
        self.table = table
        self.resources = resources
        self.task = task
        self.k = archs_per_trial
        self.max_retries = max_retries
        self.on_change = on_change
        self.order = list(self.searchers)
        self.next_index = 0
        self.live: dict[str, _Live] = {}
        self.running = {name: 0 for name in self.order}
        self.retries: dict[str, _Retry] = {}  # arch id -> retry waiting for a trial
        self.in_retry: dict[str, _Retry] = {}  # arch id -> retry handed to a live trial (keeps its attempt count)
        self.waiting: dict[str, list[tuple[str, Arch]]] = {}  # arch id being evaluated -> other askers
        self.stats = TrialStats()

    # ----- the two calls Tune makes ------------------------------------------------------------------------------
    def suggest(self, trial_id: str) -> TrialConfig | str | None:
        """A TrialConfig, None (nothing to run now), or FINISHED."""
        for offset in range(len(self.order)):
            name = self.order[(self.next_index + offset) % len(self.order)]
            if self.running[name] >= self.concurrency[name]:
                continue
            batch = self._collect(name)
            if batch:
                self.next_index = (self.next_index + offset + 1) % len(self.order)
                config = TrialConfig(name, tuple(batch))
                self.live[trial_id] = _Live(config, time.perf_counter())
                self.running[name] += 1
                return config
        if self.finished:
            return FINISHED
        return None

    @property
    def finished(self) -> bool:
        return not self.live and not self.retries and all(s.is_finished() for s in self.searchers.values())

    def complete(self, trial_id: str, report: TrialReport | None) -> None:
        """Record a finished trial (`report` None: it died without a result)."""
        live = self.live.pop(trial_id, None)
        if live is None:
            return
        config = live.config
        self.running[config.searcher] -= 1
        now = time.perf_counter()
        self.stats.trials += 1
        self.stats.trial_seconds.append(now - live.started)
        self.stats.completed_at.append(now)
        self.stats.archs_per_completed.append(len(config.archs))
        failed_trial = report is None or report.error is not None
        if failed_trial:
            self.stats.failed_trials += 1
            self.stats.worker_per_completed.append(-1)
            reason = "the trial's worker died without a result" if report is None else str(report.error)
            log.warning("trial %s of searcher %s failed (%s); its %d archs will be retried", trial_id,
                        config.searcher, reason, len(config.archs))
        else:
            self.stats.eval_seconds.append(report.eval_seconds_total)
            self.stats.worker_per_completed.append(report.worker_pid)
        for arch in config.archs:
            if failed_trial:
                outcome = ArchOutcome(error=reason)
            else:
                outcome = report.outcomes.get(arch.arch_id) or ArchOutcome(error="missing from the trial's report")
            self._settle(config.searcher, arch, outcome, trial_id)
        self.on_change()

    # ----- resume --------------------------------------------------------------------------------------------------
    def retry_failed_rows(self) -> int:
        """Queue the archs that an earlier run recorded as failed (and never evaluated successfully) for another
        evaluation by the searcher that asked them; returns how many."""
        metric = TASK_METRICS[self.task][0]
        queued = 0
        for row in self.table.rows:
            arch_id = row["arch_id"]
            if self.table.lookup(arch_id) is not None or arch_id in self.retries:
                continue
            if _is_number(row.get(metric)) or row.get("searcher") not in self.searchers or row.get("cached"):
                continue
            searcher = self.searchers[row["searcher"]]
            arch = searcher.told_arch(arch_id)
            if arch is None:
                continue
            self.retries[arch_id] = _Retry(row["searcher"], arch, amend=True, last_error=str(row.get("error", "")))
            queued += 1
        return queued

    # ----- internals -----------------------------------------------------------------------------------------------
    def _busy(self, arch_id: str) -> bool:
        return arch_id in self.retries or any(arch_id == a.arch_id for t in self.live.values() for a in t.config.archs)

    def _collect(self, name: str) -> list[Arch]:
        """Up to k archs for searcher `name`: its retries first, then new asks (see the module docstring)."""
        batch = [r.arch for r in self.retries.values() if r.searcher == name][: self.k]
        for arch in batch:
            self.stats.retried += 1
            self.in_retry[arch.arch_id] = self.retries.pop(arch.arch_id)
        searcher = self.searchers[name]
        told_from_cache = False
        while len(batch) < self.k:
            arch = searcher.ask()
            if arch is None:
                break
            row = self.table.lookup(arch.arch_id)
            if row is not None:
                self._record(name, arch, _outcome_of_row(row, self.task), str(row.get("trial_id", "")), cached=True)
                told_from_cache = True
            elif self._busy(arch.arch_id):
                self.waiting.setdefault(arch.arch_id, []).append((name, arch))  # told when that evaluation ends
            else:
                batch.append(arch)
        if told_from_cache:
            self.on_change()
        return batch

    def _settle(self, name: str, arch: Arch, outcome: ArchOutcome, trial_id: str) -> None:
        """Tell and record a result, or queue a retry of a failure (see the module docstring)."""
        retry = self.in_retry.pop(arch.arch_id, None) or _Retry(name, arch)
        if not outcome.ok:
            retry.attempts += 1
            retry.last_error = outcome.error or "no metrics"
            if retry.attempts <= self.max_retries:
                self.retries[arch.arch_id] = retry
                return
            self.stats.given_up.append((name, arch.arch_id, retry.last_error))
            log.warning("arch %s failed %d times, last: %s", arch.arch_id, retry.attempts, retry.last_error)
            if retry.amend:
                return  # still recorded as failed by the earlier run
            outcome = ArchOutcome(error=retry.last_error)
        if retry.amend:
            self._amend(name, arch, outcome, trial_id)
        else:
            self._record(name, arch, outcome, trial_id, cached=False)
        for other, same in self.waiting.pop(arch.arch_id, []):  # asked by another searcher meanwhile
            self._record(other, same, outcome, trial_id, cached=True)

    def _row(self, name: str, arch: Arch, outcome: ArchOutcome, trial_id: str, cached: bool) -> dict[str, Any]:
        metrics = {m: outcome.metrics.get(m, math.nan) for m in TASK_METRICS[self.task]}
        row = {"arch_id": arch.arch_id, "arch": arch.to_json(), "searcher": name,
               **self.searchers[name].tags(arch), **metrics, **self.resources.evaluate(arch),
               "eval_seconds": outcome.eval_seconds, "cached": cached, "trial_id": str(trial_id)}
        if outcome.error is not None:
            row["error"] = outcome.error
        return row

    def _told(self, row: Mapping[str, Any]) -> dict[str, float]:
        """What a searcher is told: the task metrics, `latency_ms` of the primary device and every device's
        `latency_ms__<device>` column."""
        told = {m: row[m] for m in TASK_METRICS[self.task]}
        told.update({c: row[c] for c in self.resources.latency_columns})
        told["latency_ms"] = row[latency_column(self.resources.primary_device)]
        return told

    def _record(self, name: str, arch: Arch, outcome: ArchOutcome, trial_id: str, cached: bool) -> None:
        row = self._row(name, arch, outcome, trial_id, cached)
        self.searchers[name].tell(arch, self._told(row))
        self.table.add(row)
        if cached:
            self.stats.cached += 1
        elif outcome.ok:
            self.stats.evaluated += 1

    def _amend(self, name: str, arch: Arch, outcome: ArchOutcome, trial_id: str) -> None:
        """Replace the failed rows of `arch` (by every searcher that was told the failure) with the new result."""
        for row in self.table.failed_rows(arch.arch_id):
            searcher = row["searcher"]
            new = self._row(searcher, arch, outcome, trial_id, cached=searcher != name)
            if searcher in self.searchers:
                self.searchers[searcher].amend(arch, self._told(new))
            self.table.replace(row, new)
        self.stats.evaluated += 1


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not math.isnan(float(value))


def _outcome_of_row(row: Mapping[str, Any], task: str) -> ArchOutcome:
    return ArchOutcome({m: float(row[m]) for m in TASK_METRICS[task]}, float(row.get("eval_seconds", math.nan)))

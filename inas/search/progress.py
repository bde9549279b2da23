"""`SearchProgress`: the search's Ray metrics (see `inas.progress` for the names), fed from the results table.

`update()` is called by the driver after results were recorded: it reads only the rows added since the last call
(O(new rows)), counts them by searcher and status, keeps the best metric per searcher, and recomputes the
hypervolumes from the points it keeps (latency, metric) at most every `interval_s` (they read every point); `finish()`
sets them once more at the end. Rows replaced in place (a failed arch evaluated again by a re-run) are not counted.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from inas.progress import SEARCH_BEST, SEARCH_EVALUATIONS, SEARCH_HYPERVOLUME, MetricSink, ray_sink
from inas.search.evaluators import EvaluationTable
from inas.search.pareto import hypervolume_2d

OVERALL = "(overall)"
SEARCH_METRICS = (SEARCH_EVALUATIONS, SEARCH_BEST, SEARCH_HYPERVOLUME)


def _number(value: Any) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return math.nan
    return number


class SearchProgress:
    """See the module docstring. `sink_factory()` gives the sink (None: Ray not initialised, nothing is exported);
    it is asked again until it gives one, so the driver may build this before Ray starts."""

    def __init__(self, table: EvaluationTable, metric: str, latency_column: str, interval_s: float = 10.0,
                 sink_factory: Callable[[], MetricSink | None] = lambda: ray_sink(SEARCH_METRICS),
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.table = table
        self.metric = metric
        self.latency_column = latency_column
        self.interval_s = interval_s
        self._sink_factory = sink_factory
        self._sink: MetricSink | None = None
        self._clock = clock
        self.seen = len(table)  # rows of an earlier run are not this run's progress
        self.best: dict[str, float] = {}
        self.points: dict[str, list[tuple[float, float]]] = {}  # searcher -> (latency, metric) of evaluated rows
        self._hv_at: float | None = None

    def update(self) -> None:
        """Count the rows added since the last call (nothing while there is no sink: Ray not initialised)."""
        if self._sink is None:
            self._sink = self._sink_factory()
            if self._sink is None:
                return
        rows = self.table.rows[self.seen:]
        self.seen = len(self.table)
        for row in rows:
            self._count(row)
        if self._hv_at is None or self._clock() - self._hv_at >= self.interval_s:
            self._set_hypervolumes()

    def finish(self) -> None:
        self.update()
        if self._sink is not None:
            self._set_hypervolumes()

    def hypervolumes(self) -> dict[str, float]:
        """{searcher: hypervolume, OVERALL: of every point}; reference (largest latency seen, metric 0)."""
        every = [p for points in self.points.values() for p in points]
        if not every:
            return {}
        reference = (max(p[0] for p in every), 0.0)
        out = {}
        for name, points in {**self.points, OVERALL: every}.items():
            array = np.array([(lat, -value) for lat, value in points], dtype=float).reshape(-1, 2)
            out[name] = hypervolume_2d(array, (reference[0], -reference[1]))
        return out

    def _count(self, row: dict) -> None:
        assert self._sink is not None  # called only once a sink exists
        searcher = str(row.get("searcher", ""))
        value = _number(row.get(self.metric))
        status = "cached" if row.get("cached") else ("ok" if not math.isnan(value) else "failed")
        self._sink.inc(SEARCH_EVALUATIONS, 1, {"searcher": searcher, "status": status})
        if math.isnan(value):
            return
        for name in (searcher, OVERALL):
            if value > self.best.get(name, -math.inf):
                self.best[name] = value
                self._sink.set(SEARCH_BEST, value, {"searcher": name, "metric": self.metric})
        latency = _number(row.get(self.latency_column))
        if status == "ok" and not math.isnan(latency):
            self.points.setdefault(searcher, []).append((latency, value))

    def _set_hypervolumes(self) -> None:
        assert self._sink is not None  # called only once a sink exists
        self._hv_at = self._clock()
        for name, value in self.hypervolumes().items():
            self._sink.set(SEARCH_HYPERVOLUME, value, {"searcher": name})

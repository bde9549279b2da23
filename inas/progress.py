"""Progress of a run as Ray metrics (`ray.util.metrics`), where Ray users look: the dashboard's Metrics view and the
node's Prometheus endpoint (`http://NODE:<metrics_export_port>/metrics`; Ray adds the `ray_` prefix to every name).

| metric (as Prometheus shows it)                | kind    | tags                 | set by                           |
|------------------------------------------------|---------|----------------------|----------------------------------|
| `ray_inas_search_evaluations_total`            | counter | `searcher`, `status` | search driver, per recorded row  |
| `ray_inas_search_best_metric`                  | gauge   | `searcher`, `metric` | search driver                    |
| `ray_inas_search_hypervolume`                  | gauge   | `searcher`           | search driver, every 10 s at most|
| `ray_inas_lut_blocks_measured_total`           | counter | `device`, `node_id`  | each `lut` device actor          |
| `ray_inas_train_iteration`, `ray_inas_train_loss` | gauge | `rank`             | each `train --cluster` worker    |

`status` is `ok` (evaluated), `failed` (failed every retry) or `cached` (served from the results table); `searcher`
`(overall)` is every searcher together. The hypervolume is the summary's: (latency on the first device, min; the
task metric, max), reference (largest latency seen so far, 0), so it can drop when a slower arch moves the
reference. Metrics go through a `MetricSink` (`RayMetricSink` when Ray is initialised in this process; nothing
otherwise), so the bookkeeping is tested without Ray.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Protocol

log = logging.getLogger(__name__)

SEARCH_EVALUATIONS = "inas_search_evaluations"
SEARCH_BEST = "inas_search_best_metric"
SEARCH_HYPERVOLUME = "inas_search_hypervolume"
LUT_BLOCKS = "inas_lut_blocks_measured"
TRAIN_ITERATION = "inas_train_iteration"
TRAIN_LOSS = "inas_train_loss"

_DESCRIPTIONS = {
    SEARCH_EVALUATIONS: "architectures recorded by the search, by searcher and status (ok, failed, cached)",
    SEARCH_BEST: "best value so far of the search's primary task metric, by searcher",
    SEARCH_HYPERVOLUME: "hypervolume of (latency on the first device, task metric) so far, by searcher",
    LUT_BLOCKS: "latency-table blocks measured, by device and Ray node",
    TRAIN_ITERATION: "training iteration last reported, by Ray Train worker rank",
    TRAIN_LOSS: "training loss (mean over the last log window), by Ray Train worker rank",
}
_TAGS = {SEARCH_EVALUATIONS: ("searcher", "status"), SEARCH_BEST: ("searcher", "metric"),
         SEARCH_HYPERVOLUME: ("searcher",), LUT_BLOCKS: ("device", "node_id"), TRAIN_ITERATION: ("rank",),
         TRAIN_LOSS: ("rank",)}
COUNTERS = (SEARCH_EVALUATIONS, LUT_BLOCKS)


class MetricSink(Protocol):
    def inc(self, name: str, value: float, tags: Mapping[str, str]) -> None: ...

    def set(self, name: str, value: float, tags: Mapping[str, str]) -> None: ...


class RayMetricSink:
    """`ray.util.metrics` Counters and Gauges of `names` (created once per process: Ray wants one object per name)."""

    def __init__(self, names: Sequence[str]) -> None:
        from ray.util.metrics import Counter, Gauge

        self._counters = {name: Counter(name, description=_DESCRIPTIONS[name], tag_keys=_TAGS[name])
                          for name in names if name in COUNTERS}
        self._gauges = {name: Gauge(name, description=_DESCRIPTIONS[name], tag_keys=_TAGS[name])
                        for name in names if name not in COUNTERS}

    def inc(self, name: str, value: float, tags: Mapping[str, str]) -> None:
        self._counters[name].inc(value, tags=dict(tags))

    def set(self, name: str, value: float, tags: Mapping[str, str]) -> None:
        self._gauges[name].set(value, tags=dict(tags))


_SINKS: dict[tuple[str, ...], RayMetricSink | None] = {}


def ray_sink(names: Sequence[str]) -> RayMetricSink | None:
    """The `RayMetricSink` of `names` of this process and Ray job (a process may init Ray several times), or None
    when Ray is not initialised here (or its metrics fail)."""
    import ray

    if not ray.is_initialized():
        return None
    key = (ray.get_runtime_context().get_job_id(), *names)
    if key not in _SINKS:
        try:
            _SINKS[key] = RayMetricSink(names)
        except Exception as exc:  # noqa: BLE001 - progress metrics must never stop a run
            log.warning("Ray metrics unavailable (%s): no progress metrics", exc)
            _SINKS[key] = None  # said once
    return _SINKS[key]

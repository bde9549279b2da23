"""Search progress as Ray metrics: the bookkeeping (counts by searcher and status, best metric, hypervolume at most
every interval) with an in-memory sink; slow: a search on a local Ray started here with a metrics export port, and
the metrics read back from the node's Prometheus endpoint."""

from __future__ import annotations

import math
import re
import socket
import time
import urllib.request
from collections.abc import Mapping

import pandas as pd
import pytest
from test_search_driver import SEARCHERS, simulate
from test_search_evaluators import make_problem

from inas.progress import SEARCH_BEST, SEARCH_EVALUATIONS, SEARCH_HYPERVOLUME
from inas.search.driver import EVALUATIONS_FILE, build_scheduler, prepare_search
from inas.search.pareto import hypervolume
from inas.search.progress import OVERALL, SearchProgress


class MemorySink:
    def __init__(self) -> None:
        self.counters: dict[tuple, float] = {}
        self.gauges: dict[tuple, float] = {}
        self.sets = 0

    def inc(self, name: str, value: float, tags: Mapping[str, str]) -> None:
        key = (name, *sorted(tags.items()))
        self.counters[key] = self.counters.get(key, 0) + value

    def set(self, name: str, value: float, tags: Mapping[str, str]) -> None:
        self.gauges[(name, *sorted(tags.items()))] = value
        self.sets += 1


class Clock:
    now = 0.0

    def __call__(self) -> float:
        return self.now


def test_progress_counts_every_row_and_tracks_best_and_hypervolume(tmp_path, monkeypatch):
    import test_search_driver

    config, _ = make_problem(tmp_path / "problem", searchers=SEARCHERS)
    setup = prepare_search(config, tmp_path / "out")
    sink = MemorySink()
    clock = Clock()
    progress = SearchProgress(setup.table, "max_fmeasure", "latency_ms__dev_a", interval_s=10.0,
                              sink_factory=lambda: sink, clock=clock)
    with monkeypatch.context() as patch:
        patch.setattr(test_search_driver, "build_scheduler", lambda s: build_scheduler(s, progress=progress))
        simulate(setup, [])
    frame = pd.read_parquet(tmp_path / "out" / EVALUATIONS_FILE)
    counted = {(dict(k[1:])["searcher"], dict(k[1:])["status"]): v for k, v in sink.counters.items()
               if k[0] == SEARCH_EVALUATIONS}
    expected = frame.assign(status=frame["cached"].map({True: "cached", False: "ok"})).groupby(
        ["searcher", "status"]).size().to_dict()
    assert counted == expected
    for name, rows in frame.groupby("searcher"):
        assert sink.gauges[(SEARCH_BEST, ("metric", "max_fmeasure"), ("searcher", name))] == rows["max_fmeasure"].max()
    # the clock never moved: hypervolumes were set once (first update) until finish()
    first = {k: v for k, v in sink.gauges.items() if k[0] == SEARCH_HYPERVOLUME}
    assert len(first) >= 1
    progress.finish()
    unique = frame[~frame["cached"]]
    objectives = {"latency_ms__dev_a": "min", "max_fmeasure": "max"}
    reference = {"latency_ms__dev_a": unique["latency_ms__dev_a"].max(), "max_fmeasure": 0.0}
    overall = sink.gauges[(SEARCH_HYPERVOLUME, ("searcher", OVERALL))]
    assert math.isclose(overall, hypervolume(unique, objectives, reference), rel_tol=1e-9)
    assert overall > 0


def test_hypervolume_waits_for_the_interval(tmp_path):
    config, _ = make_problem(tmp_path / "problem", searchers=SEARCHERS)
    setup = prepare_search(config, tmp_path / "out")
    sink = MemorySink()
    clock = Clock()
    progress = SearchProgress(setup.table, "max_fmeasure", "latency_ms__dev_a", interval_s=10.0,
                              sink_factory=lambda: sink, clock=clock)
    row = {"arch_id": "a", "searcher": "random", "max_fmeasure": 0.5, "latency_ms__dev_a": 2.0, "cached": False}
    setup.table.add(row)
    progress.update()
    assert sink.gauges[(SEARCH_HYPERVOLUME, ("searcher", "random"))] == 0.0  # one point: on the reference latency
    setup.table.add({**row, "arch_id": "b", "max_fmeasure": 0.7, "latency_ms__dev_a": 1.0})
    progress.update()
    assert sink.gauges[(SEARCH_HYPERVOLUME, ("searcher", "random"))] == 0.0  # not yet recomputed
    clock.now = 10.0
    progress.update()
    assert sink.gauges[(SEARCH_HYPERVOLUME, ("searcher", "random"))] == pytest.approx((2.0 - 1.0) * 0.7)
    setup.table.add({**row, "arch_id": "c", "max_fmeasure": math.nan})
    progress.update()
    assert sink.counters[(SEARCH_EVALUATIONS, ("searcher", "random"), ("status", "failed"))] == 1


def test_no_sink_without_ray(tmp_path):
    """Without Ray in this process nothing is exported, and the sink is asked again later."""
    config, _ = make_problem(tmp_path / "problem", searchers=SEARCHERS)
    setup = prepare_search(config, tmp_path / "out")
    sinks: list = [None, MemorySink()]
    progress = SearchProgress(setup.table, "max_fmeasure", "latency_ms__dev_a", sink_factory=lambda: sinks.pop(0))
    setup.table.add({"arch_id": "a", "searcher": "random", "max_fmeasure": 0.5, "latency_ms__dev_a": 2.0})
    progress.update()
    progress.update()
    assert not sinks


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def scrape(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        return response.read().decode()


def metric_values(text: str, name: str) -> dict[str, float]:
    """{label text: value} of the Prometheus lines of metric `name` (with or without a `_total` suffix)."""
    out = {}
    for match in re.finditer(rf"^{name}(?:_total)?{{([^}}]*)}} ([0-9.eE+-]+)$", text, re.MULTILINE):
        out[match.group(1)] = float(match.group(2))
    return out


@pytest.mark.slow
def test_search_metrics_reach_the_prometheus_endpoint(tmp_path):
    """A search on a local Ray with a metrics export port: evaluations by searcher, best metric and hypervolume are
    read back from http://127.0.0.1:PORT/metrics (Ray exports every few seconds: polled up to 90 s)."""
    import ray

    from inas.search.driver import run_search

    config, _ = make_problem(tmp_path / "problem", searchers=SEARCHERS)
    setup = prepare_search(config, tmp_path / "out")
    port = free_port()
    ray.init(address="local", num_cpus=2, include_dashboard=False, _metrics_export_port=port,
             _system_config={"metrics_report_interval_ms": 1000})
    try:
        result = run_search(setup, dashboard=False)
        expected = result.evaluations.groupby("searcher").size().to_dict()
        deadline = time.time() + 90
        counted: dict[str, float] = {}
        while time.time() < deadline:
            text = scrape(port)
            evaluations = metric_values(text, f"ray_{SEARCH_EVALUATIONS}")
            counted = {name: sum(v for labels, v in evaluations.items() if f'searcher="{name}"' in labels)
                       for name in expected}
            if counted == expected and metric_values(text, f"ray_{SEARCH_HYPERVOLUME}"):
                break
            time.sleep(2)
        assert counted == expected, text[-3000:]
        best = metric_values(text, f"ray_{SEARCH_BEST}")
        overall = next(v for labels, v in best.items() if f'searcher="{OVERALL}"' in labels)
        assert overall == pytest.approx(result.evaluations["max_fmeasure"].max())
        hv = metric_values(text, f"ray_{SEARCH_HYPERVOLUME}")
        assert any(f'searcher="{OVERALL}"' in labels and v > 0 for labels, v in hv.items())
    finally:
        ray.shutdown()

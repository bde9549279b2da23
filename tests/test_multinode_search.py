"""Slow, multi-node on one host: a search whose trials run on two Ray worker nodes (one CPU each, none on the head),
one worker node killed mid-run (its raylet and workers, SIGKILL): the run finishes on the surviving node with every
searcher's budget met, the archs of the trials that died are evaluated again, none is evaluated twice, and
`evaluations.parquet` is complete."""

from __future__ import annotations

import threading
import time

import pandas as pd
import pytest
from multinode_cluster import local_cluster, time_limit
from test_search_driver import SEARCHERS
from test_search_evaluators import make_problem

from inas.search.driver import EVALUATIONS_FILE, prepare_search, run_search
from inas.search.scheduler import TrialScheduler

pytestmark = pytest.mark.slow


def test_search_survives_a_worker_node_killed_mid_run(tmp_path, monkeypatch):
    config, _ = make_problem(tmp_path / "problem", searchers=SEARCHERS, archs_per_trial=1)
    setup = prepare_search(config, tmp_path / "out")
    died: list[str] = []  # archs of the trials that ended without a result
    complete = TrialScheduler.complete

    schedulers: list[TrialScheduler] = []  # the run's scheduler, once a batch completed

    def recording_complete(scheduler, trial_id, report):
        schedulers[:] = [scheduler]
        live = scheduler.live.get(trial_id)
        if live is not None and report is None:
            died.extend(a.arch_id for a in live.config.archs)
        complete(scheduler, trial_id, report)

    monkeypatch.setattr(TrialScheduler, "complete", recording_complete)
    with time_limit(420), local_cluster([{}, {}]) as (cluster, (node_a, node_b)):
        killed = threading.Event()

        def kill_node_b_when_it_runs_a_trial() -> None:
            deadline = time.time() + 300
            while time.time() < deadline and not (_both_evaluate(schedulers) and _runs_a_trial(node_b.node_id)):
                time.sleep(0.05)
            cluster.remove_node(node_b, allow_graceful=False)
            killed.set()

        killer = threading.Thread(target=kill_node_b_when_it_runs_a_trial, daemon=True)
        killer.start()
        result = run_search(setup, dashboard=False)
        killer.join(timeout=30)
    assert killed.is_set(), "node b was never killed"
    stats = result.stats
    assert stats.failed_trials >= 1 and died, "no trial died with node b"
    frame = pd.read_parquet(tmp_path / "out" / EVALUATIONS_FILE)
    assert frame.groupby("searcher").size().to_dict() == {"evolution": 6, "random": 5}  # every budget met
    assert frame["arch_id"].is_unique  # none evaluated twice
    assert frame["max_fmeasure"].notna().all()
    assert "error" not in frame or frame["error"].isna().all()
    assert set(died) <= set(frame["arch_id"])  # the died trials' archs were evaluated again
    assert stats.retried >= len(set(died))
    assert len(result.evaluations) == len(frame)


def _both_evaluate(schedulers: list[TrialScheduler]) -> bool:
    """Both worker slots that fit on the two one-CPU nodes hold a batch (a slot's trial holds its CPU also while it
    waits for a batch, so `_runs_a_trial` alone does not say that a batch would die with the node)."""
    return bool(schedulers) and len(schedulers[0].live) >= 2


def _runs_a_trial(node_id: str) -> bool:
    """True when the one CPU of node `node_id` is taken (a trial's placement group holds it; the state API would
    need the dashboard, which this cluster does not run)."""
    from ray._private.state import available_resources_per_node

    available = available_resources_per_node()  # a resource fully in use is left out of a node's entry
    return node_id in available and available[node_id].get("CPU", 0.0) < 1.0

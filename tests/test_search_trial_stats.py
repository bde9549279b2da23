"""Search driver bookkeeping: the steady evaluation rate counts each worker on its own (concurrent trials completing
side by side do not inflate it), and the Tune pending-trials setting follows each run's concurrency."""

from __future__ import annotations

import math
import os

from inas.search.driver import TrialStats, _set_env_default


def test_steady_rate_is_per_worker_and_summed():
    # two workers, 4 archs per trial, each completes a trial every 10 s, side by side (as with 2 concurrent trials)
    stats = TrialStats(completed_at=[10.0, 10.1, 20.0, 20.1, 30.0, 30.1],
                       archs_per_completed=[4, 4, 4, 4, 4, 4], worker_per_completed=[1, 2, 1, 2, 1, 2])
    assert math.isclose(stats.steady_evaluations_per_minute(), 2 * 8 / 20 * 60)  # 24 archs/min per worker
    assert stats.workers == {1, 2}
    one = TrialStats(completed_at=[10.0, 20.0, 30.0], archs_per_completed=[4, 4, 4], worker_per_completed=[7, 7, 7])
    assert math.isclose(one.steady_evaluations_per_minute(), 24.0)


def test_steady_rate_skips_failed_trials_and_needs_two_per_worker():
    stats = TrialStats(completed_at=[10.0, 15.0, 20.0], archs_per_completed=[4, 4, 4],
                       worker_per_completed=[1, -1, 1])
    assert math.isclose(stats.steady_evaluations_per_minute(), 24.0)
    assert stats.workers == {1}  # a failed trial names no worker
    assert math.isnan(TrialStats(completed_at=[1.0, 2.0], archs_per_completed=[4, 4],
                                 worker_per_completed=[1, 2]).steady_evaluations_per_minute())


def test_pending_trials_follow_each_run_unless_the_user_set_them(monkeypatch):
    key = "INAS_TEST_PENDING"
    monkeypatch.delenv(key, raising=False)
    _set_env_default(key, "1")
    _set_env_default(key, "2")  # a later run in the same process with more concurrency
    assert os.environ[key] == "2"
    monkeypatch.setenv(key, "5")  # set by the user: kept
    _set_env_default(key, "3")
    assert os.environ[key] == "5"

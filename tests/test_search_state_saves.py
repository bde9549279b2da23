"""When the search saves its state (`inas.search.state.StateSaver`): the number of full saves and the rows they write
over a long run grow like O(n) rows in all (not quadratically), the first rows are saved after every trial, a slow
run saves at least every `interval_s`, and a search stopped between two saves (as by kill -9) resumes from the last
snapshot to the same result as an uninterrupted run, without any arch twice."""

from __future__ import annotations

import json
import math

import pandas as pd
import pytest
from test_search_driver import simulate
from test_search_evaluators import make_problem

from inas.search.driver import EVALUATIONS_FILE, STATE_FILE, build_scheduler, prepare_search, save_state
from inas.search.state import SavePolicy, StateSaver


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def _run(saver: StateSaver, rows: int, per_trial: int = 1) -> None:
    """`rows` rows added `per_trial` at a time, as trials complete."""
    for n in range(per_trial, rows + 1, per_trial):
        saver.changed(n, n)


@pytest.mark.parametrize("per_trial", [1, 4])
def test_full_saves_grow_logarithmically_and_rows_written_linearly(per_trial):
    saves: list[int] = []
    saver = StateSaver(lambda: saves.append(1), SavePolicy(growth=0.1, interval_s=math.inf), clock=Clock())
    n = 10_000
    _run(saver, n, per_trial)
    # geometric growth by 1.1 from 10 rows: ~ 10 + ln(n / 10) / ln(1.1) = 82 saves at one row per trial
    assert saver.stats.saves == len(saves) <= 10 + math.log(n / 10) / math.log(1.1) + 1
    assert saver.stats.rows_written <= (1 + 1 / 0.1) * n + 10 * 11  # O(n) rows written in all
    assert saver.saved_rows >= n / 1.1 - per_trial  # unsaved at most 10 % of the saved rows
    saver.flush(n, n)
    assert saver.saved_rows == n and saver.stats.saves == len(saves)


def test_saving_after_every_change_is_quadratic():
    """The old behaviour (`growth=0`) for comparison: a save per trial, n (n + 1) / 2 rows written."""
    saver = StateSaver(lambda: None, SavePolicy(growth=0.0, interval_s=math.inf), clock=Clock())
    _run(saver, 1000)
    assert saver.stats.saves == 1000 and saver.stats.rows_written == 1000 * 1001 // 2


def test_first_rows_are_saved_after_every_trial():
    saver = StateSaver(lambda: None, SavePolicy(growth=0.1), clock=Clock())
    for n in range(1, 12):
        saver.changed(n, n)
        assert saver.saved_rows == n
    saver.changed(12, 12)
    assert saver.saved_rows == 11  # 1 unsaved < 10 % of 11: waits


def test_an_unsaved_result_is_saved_once_it_is_interval_s_old():
    clock = Clock()
    saver = StateSaver(lambda: None, SavePolicy(growth=0.1, interval_s=30.0), saved_rows=1000, saved_changes=1000,
                       clock=clock)
    saver.changed(1001, 1001)
    clock.now = 29.0
    saver.changed(1002, 1002)
    assert saver.stats.saves == 0
    clock.now = 30.0
    saver.changed(1003, 1003)
    assert saver.stats.saves == 1 and saver.saved_rows == 1003
    saver.changed(1003, 1003)  # nothing new: no save
    assert saver.stats.saves == 1


def test_a_replaced_row_counts_as_a_change():
    saver = StateSaver(lambda: None, SavePolicy(growth=0.0), saved_rows=5, saved_changes=5, clock=Clock())
    saver.changed(5, 6)  # same row count, one row replaced (a failed arch evaluated again)
    assert saver.stats.saves == 1


def test_bad_policy_is_refused():
    with pytest.raises(ValueError):
        SavePolicy(growth=-1)


def test_stopped_between_saves_resumes_to_the_uninterrupted_result(tmp_path, monkeypatch):
    """A run stopped with results not yet saved (what kill -9 leaves) resumes from the last snapshot: the lost
    results are evaluated again, nothing on disk twice, and the end result equals a run without interruption."""
    import test_search_driver

    searchers = [{"kind": "random", "budget": 30, "concurrent_trials": 2, "params": {"ends_first": False}},
                 {"kind": "evolution", "budget": 30,
                  "params": {"population_size": 4, "selection_num": 2, "lgs_groups": 2}}]
    config, _ = make_problem(tmp_path / "problem", searchers=searchers)
    out = tmp_path / "out"
    setup = prepare_search(config, out)
    saves: list[int] = []

    def save() -> None:
        saves.append(len(setup.table))
        save_state(out, config, setup.searchers, setup.table)

    saver = StateSaver(save, SavePolicy(growth=0.1, interval_s=math.inf))
    with monkeypatch.context() as patch:
        patch.setattr(test_search_driver, "build_scheduler", lambda s: build_scheduler(s, saver))
        simulate(setup, [], archs_per_trial=1, stop_after=45)
    on_disk = pd.read_parquet(out / EVALUATIONS_FILE)
    assert len(saves) < 45 and len(on_disk) == saves[-1] < len(setup.table)  # results were lost
    resumed = prepare_search(config, out)
    assert resumed.resumed and len(resumed.table) == len(on_disk)
    simulate(resumed, [], archs_per_trial=1)
    frame = pd.read_parquet(out / EVALUATIONS_FILE)
    assert frame["arch_id"].is_unique
    simulate(prepare_search(config, tmp_path / "fresh"), [], archs_per_trial=1)
    fresh = pd.read_parquet(tmp_path / "fresh" / EVALUATIONS_FILE)
    assert frame.groupby("searcher").size().to_dict() == fresh.groupby("searcher").size().to_dict()
    assert frame.set_index("arch_id")["searcher"].to_dict() == fresh.set_index("arch_id")["searcher"].to_dict()


def test_rows_saved_after_the_searchers_state_are_left_out_on_resume(tmp_path):
    """What a kill between the two writes of a save leaves: evaluations.parquet newer than search_state.json. The
    rows beyond the state's row count are left out on resume (their archs asked and evaluated again): no arch twice,
    and the same result as an uninterrupted run."""
    from test_search_driver import SEARCHERS

    config, _ = make_problem(tmp_path / "problem", searchers=SEARCHERS)
    out = tmp_path / "out"
    setup = prepare_search(config, out)
    simulate(setup, [], stop_after=2)
    older_state = (out / STATE_FILE).read_text()
    saved_rows = json.loads(older_state)["rows"]
    assert saved_rows == len(pd.read_parquet(out / EVALUATIONS_FILE)) == len(setup.table)
    simulate(setup, [], stop_after=2)  # more results saved
    assert len(pd.read_parquet(out / EVALUATIONS_FILE)) > saved_rows
    (out / STATE_FILE).write_text(older_state)  # the newer state never made it to disk
    resumed = prepare_search(config, out)
    assert resumed.resumed and len(resumed.table) == saved_rows
    simulate(resumed, [])
    frame = pd.read_parquet(out / EVALUATIONS_FILE)
    assert frame["arch_id"].is_unique
    simulate(prepare_search(config, tmp_path / "fresh"), [])
    fresh = pd.read_parquet(tmp_path / "fresh" / EVALUATIONS_FILE)
    assert frame.set_index("arch_id")["searcher"].to_dict() == fresh.set_index("arch_id")["searcher"].to_dict()


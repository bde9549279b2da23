"""`search --warm-start`: earlier evaluations are read, fed to every searcher by `prepare_search`, kept in the state
across a resume, and never asked again by the predictor searcher; bad folders are bad input. No Ray (the Tune loop is
simulated as in test_search_driver)."""

from __future__ import annotations

import pandas as pd
import pytest
from test_search_driver import simulate
from test_search_evaluators import make_problem

from inas.errors import BadInputError
from inas.search.driver import EVALUATIONS_FILE, prepare_search
from inas.search.warm_start import read_warm_start
from inas.space import inas_space

PREDICTOR = [{"kind": "predictor", "budget": 4,
              "params": {"initial_size": 4, "batch_size": 2, "candidates": 60, "lgs_candidates": 4,
                         "n_estimators": 10, "lgs_groups": 2}}]


@pytest.fixture(scope="module")
def earlier(tmp_path_factory):
    """A finished random search of 8 archs on the driver's small problem."""
    root = tmp_path_factory.mktemp("warm")
    config, _ = make_problem(root, searchers=[{"kind": "random", "budget": 8}])
    setup = prepare_search(config, root / "first")
    simulate(setup, [])
    return root, root / "first"


def test_earlier_evaluations_feed_the_searchers_and_are_not_asked_again(earlier):
    root, first = earlier
    config, _ = make_problem(root, searchers=PREDICTOR)
    setup = prepare_search(config, root / "second", warm_start=[first])
    searcher = setup.searchers["predictor"]
    before = pd.read_parquet(first / EVALUATIONS_FILE)
    assert set(searcher._prior) == set(before["arch_id"]) and searcher.stats["warm_start_records"] == 8
    prior = next(iter(searcher._prior.values()))
    assert set(prior.device_ms) == set(setup.resources.predictors)  # every device's latency, from the table
    calls: list[str] = []
    simulate(setup, calls)
    assert len(calls) == 4 and not set(calls) & set(before["arch_id"])
    rows = pd.read_parquet(root / "second" / EVALUATIONS_FILE)
    assert (rows["generation"] >= 1).all()  # 8 earlier evaluations >= initial_size: no initial design
    resumed = prepare_search(config, root / "second")  # a re-run without the flag keeps what it learned from
    assert set(resumed.searchers["predictor"]._prior) == set(before["arch_id"])


def test_bad_warm_start_folders(earlier, tmp_path):
    root, first = earlier
    config, _ = make_problem(root, searchers=PREDICTOR)
    with pytest.raises(BadInputError, match="evaluations.parquet"):
        prepare_search(config, tmp_path / "out", warm_start=[tmp_path])
    other_space = inas_space().narrow({"stage_7": {"widths": [352]}})  # the earlier archs have 320 channels there
    with pytest.raises(BadInputError, match="evaluations.parquet"):
        read_warm_start([first], other_space, "sod", {})
    records = read_warm_start([first], config.space.build(), "sod", {})
    assert len(records) == 8 and all(r.latency_ms > 0 and r.device_ms is None for r in records)
    with pytest.raises(BadInputError, match="another task"):
        read_warm_start([first], config.space.build(), "seg", {})
    failed = tmp_path / "failed"
    failed.mkdir()
    rows = pd.read_parquet(first / EVALUATIONS_FILE).assign(max_fmeasure=float("nan"))
    rows.to_parquet(failed / EVALUATIONS_FILE)
    with pytest.raises(BadInputError, match="nothing to warm-start from.*leave this folder out of --warm-start"):
        read_warm_start([failed], config.space.build(), "sod", {})


def test_a_resumed_run_keeps_its_warm_start_and_takes_a_new_folder(earlier):
    root, first = earlier
    config, _ = make_problem(root, searchers=PREDICTOR)
    simulate(prepare_search(config, root / "resumed", warm_start=[first]), [])
    again = prepare_search(config, root / "resumed", warm_start=[first])  # the same folder again: nothing new
    assert again.resumed and again.warm_start_records == 8 and again.warm_started == {"predictor": 0}
    other_config, _ = make_problem(root, searchers=[{"kind": "random", "budget": 8}])
    other_config.seed = 7  # another random search: other archs
    simulate(prepare_search(other_config, root / "other"), [])
    other_ids = set(pd.read_parquet(root / "other" / EVALUATIONS_FILE)["arch_id"])
    grown = prepare_search(config, root / "resumed", warm_start=[first, root / "other"])
    prior = grown.searchers["predictor"]._prior
    assert grown.resumed and other_ids - set(pd.read_parquet(first / EVALUATIONS_FILE)["arch_id"]) <= set(prior)
    assert grown.warm_started["predictor"] == len(set(prior)) - 8 > 0

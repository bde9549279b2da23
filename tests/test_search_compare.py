"""Searcher comparison on the synthetic problem (mirrors the acceptance test that will be rerun on the real
supernet): at the same number of evaluations, evolution (LGS + Pareto selection) and nevergrad (one optimiser per
latency budget) reach a larger hypervolume than random sampling, averaged over 3 seeds."""

from __future__ import annotations

import numpy as np
import pytest

from inas.search import build_searcher, hypervolume, run_searcher
from inas.search.testing import synthetic_latency_ms, synthetic_result
from inas.space import inas_space, sample_max

SPACE = inas_space()
OBJECTIVES = {"latency_ms": "min", "max_fmeasure": "max"}
REFERENCE = {"latency_ms": synthetic_latency_ms(sample_max(SPACE)), "max_fmeasure": 0.0}
SEEDS = (0, 1, 2)


def mean_hypervolume(name: str, budget: int, **params) -> float:
    values = []
    for seed in SEEDS:
        searcher = build_searcher(name, SPACE, synthetic_latency_ms, budget, seed, **params)
        run_searcher(searcher, synthetic_result)
        assert searcher.num_told == budget
        values.append(hypervolume(searcher.results_frame(), OBJECTIVES, REFERENCE))
    return float(np.mean(values))


@pytest.fixture(scope="module")
def hypervolumes_90():
    return {
        "random": mean_hypervolume("random", 90),
        "evolution": mean_hypervolume("evolution", 90, population_size=30, selection_num=15, lgs_groups=5),
        "nevergrad": mean_hypervolume("nevergrad", 90, num_budgets=5),
    }


def test_evolution_beats_random(hypervolumes_90):
    assert hypervolumes_90["evolution"] >= hypervolumes_90["random"], hypervolumes_90


def test_nevergrad_beats_random(hypervolumes_90):
    assert hypervolumes_90["nevergrad"] >= hypervolumes_90["random"], hypervolumes_90


@pytest.mark.slow
def test_default_settings_beat_random_at_500_evaluations():
    random_hv = mean_hypervolume("random", 500)
    evolution_hv = mean_hypervolume("evolution", 500, population_size=200, selection_num=50)  # 10 LGS groups
    nevergrad_hv = mean_hypervolume("nevergrad", 500)  # NGOpt, 10 budgets
    assert evolution_hv >= random_hv and nevergrad_hv >= random_hv, (random_hv, evolution_hv, nevergrad_hv)

"""Search: Pareto utilities and the searchers (evolution with LGS, nevergrad, optuna, predictor-guided, random) behind
one interface."""

from inas.search.pareto import (
    best_under_budget,
    default_reference,
    hypervolume,
    hypervolume_points,
    knee_point,
    non_dominated_rank,
    pareto_front,
)
from inas.search.searchers import (
    SEARCHERS,
    EvolutionSearcher,
    InfeasibleConstraintError,
    LatencyGroupSampler,
    NevergradSearcher,
    OptunaSearcher,
    PredictorSearcher,
    RandomSearcher,
    Searcher,
    UpperBound,
    build_searcher,
    run_searcher,
)

__all__ = [
    "SEARCHERS", "EvolutionSearcher", "InfeasibleConstraintError", "LatencyGroupSampler", "NevergradSearcher",
    "OptunaSearcher", "PredictorSearcher", "RandomSearcher", "Searcher", "UpperBound", "best_under_budget",
    "build_searcher", "default_reference", "hypervolume", "hypervolume_points", "knee_point", "non_dominated_rank",
    "pareto_front", "run_searcher",
]

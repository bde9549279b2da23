"""Searchers behind one interface (`Searcher`: ask / tell / is_finished / state_dict) and a factory by name."""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from inas.errors import BadInputError, excerpt
from inas.search.searchers.base import (
    Constraint,
    InfeasibleConstraintError,
    LatencyFn,
    Record,
    Searcher,
    UpperBound,
)
from inas.search.searchers.evolution import EvolutionSearcher
from inas.search.searchers.lgs import LatencyGroupSampler
from inas.search.searchers.nevergrad_searcher import NevergradSearcher
from inas.search.searchers.optuna_searcher import OptunaSearcher
from inas.search.searchers.predictor_searcher import PredictorSearcher
from inas.search.searchers.random_searcher import RandomSearcher
from inas.search.searchers.selection import pareto_front_2d, select_pareto_frontier
from inas.space import SearchSpace

SEARCHERS: dict[str, type[Searcher]] = {
    "evolution": EvolutionSearcher,
    "nevergrad": NevergradSearcher,
    "optuna": OptunaSearcher,
    "predictor": PredictorSearcher,
    "random": RandomSearcher,
}


def _keyword_parameters(name: str) -> dict[str, inspect.Parameter]:
    """Searcher `name`'s keyword-only parameters, its own first, then the common ones of `Searcher`."""
    params: dict[str, inspect.Parameter] = {}
    for klass in (SEARCHERS[name], Searcher):
        for p in inspect.signature(klass.__init__).parameters.values():
            if p.kind is p.KEYWORD_ONLY:
                params.setdefault(p.name, p)
    return params


# keyword parameters the search driver sets (or that take callables): never from a config's `params`
DRIVER_PARAMS = frozenset({"metric", "mode", "latency_key", "constraints", "device_latency_fns", "part_latency_fn"})


def config_params(name: str) -> list[str]:
    """The parameters a config's `search.searchers[].params` may set for searcher `name`."""
    return [p for p in searcher_params(name) if p not in DRIVER_PARAMS]


def searcher_params(name: str) -> list[str]:
    """Keyword parameters `build_searcher` accepts for searcher `name` (its own and the common ones)."""
    return list(_keyword_parameters(name))


def searcher_defaults(name: str) -> dict[str, Any]:
    """Searcher `name`'s keyword defaults that are plain values (None, bool, int, float, str)."""
    return {key: p.default for key, p in _keyword_parameters(name).items()
            if p.default is not p.empty and (p.default is None or isinstance(p.default, bool | int | float | str))}


def build_searcher(name: str, space: SearchSpace, latency_fn: LatencyFn, budget: int, seed: int = 0, *,
                   constraints: Constraint | Iterable[Constraint] = (), **params: Any) -> Searcher:
    """A searcher by name (a key of SEARCHERS: "evolution", "nevergrad", "optuna", "predictor", "random").

    budget: number of architectures to evaluate; latency_fn: arch -> ms on the primary device (cheap, LUT);
    constraints: callables arch -> bool; params: the searcher's keyword parameters (e.g. population_size,
    optimizer, max_latency_ms, metric, mode). An unknown name or parameter raises BadInputError naming it.
    """
    if name not in SEARCHERS:
        raise BadInputError(f"unknown searcher {name!r}; expected one of {sorted(SEARCHERS)}", key="searcher")
    allowed = searcher_params(name)
    unknown = sorted(set(params) - set(allowed))
    if unknown:
        raise BadInputError(f"unknown parameters {unknown} for searcher {name!r}; allowed: {sorted(allowed)}",
                            key="searcher")
    _check_param_types(name, params)
    return SEARCHERS[name](space, latency_fn, budget, seed, constraints=constraints, **params)


def _check_param_types(name: str, params: Mapping[str, Any]) -> None:
    """BadInputError naming the parameter unless each value whose default is a plain value has that value's type (an
    integer for an int, a finite number for a float, true/false for a bool, text for a str): a config's `"abc"`
    for a probability or `"no"` for a flag would otherwise fail deep inside the searcher, or be taken as true."""
    defaults = searcher_defaults(name)
    for key, value in params.items():
        default = defaults.get(key)
        if default is None:
            continue
        if isinstance(default, bool):
            ok, expected = isinstance(value, bool), "true or false"
        elif isinstance(default, int):
            ok, expected = isinstance(value, int) and not isinstance(value, bool), "an integer"
        elif isinstance(default, float):
            ok = isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
            expected = "a finite number"
        else:
            ok, expected = isinstance(value, str), "a string"
        if not ok:
            raise BadInputError(f"must be {expected}, got {excerpt(value)}", key=key)


def scaled_searcher(kind: str, budget: int, params: Mapping[str, Any], scale: float) -> tuple[int, dict[str, Any]]:
    """(budget, params) of a smaller run of searcher `kind` (smoke runs such as `demo --quick`): the budget
    (evaluations) times `scale`, at least 4, and each of the searcher's `size_params` given in `params` times
    `scale`, at least 2; other parameters unchanged. An unknown kind scales the budget only (the config check
    reports the kind)."""
    cls = SEARCHERS.get(kind)
    scaled = dict(params)
    for key in cls.size_params if cls is not None else ():
        if key in scaled:
            scaled[key] = max(2, int(scaled[key] * scale))
    return max(4, int(budget * scale)), scaled


def run_searcher(searcher: Searcher, evaluate: Callable[[Any], dict[str, Any]]) -> Searcher:
    """Drive `searcher` sequentially in-process: ask, evaluate, tell until finished (tests, small local runs)."""
    while not searcher.is_finished():
        arch = searcher.ask()
        if arch is None:
            if searcher.is_finished():  # found out during ask() that it has nothing more to ask
                break
            raise RuntimeError(f"{searcher.name} asked nothing with nothing in flight")
        searcher.tell(arch, evaluate(arch))
    return searcher


__all__ = [
    "DRIVER_PARAMS", "Constraint", "EvolutionSearcher", "InfeasibleConstraintError", "LatencyFn",
    "LatencyGroupSampler", "NevergradSearcher", "OptunaSearcher", "PredictorSearcher", "RandomSearcher", "Record",
    "SEARCHERS", "Searcher", "UpperBound", "build_searcher", "config_params", "pareto_front_2d", "run_searcher",
    "scaled_searcher", "searcher_defaults", "searcher_params", "select_pareto_frontier",
]

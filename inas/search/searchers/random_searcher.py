"""Random search, the baseline: archs from the original's uniform sampler (`inas.space.sample_uniform`), each asked
at most once, infeasible ones redrawn. Every ask is available at once (no waiting on results).

Bounded: at most `max_tries` draws per ask. If every draw violated the constraints it raises
`InfeasibleConstraintError`; if draws were only rejected as duplicates the space is taken as exhausted and the
searcher finishes early (`stats["exhausted"]`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from inas.search.searchers.base import LatencyFn, Searcher
from inas.space import Arch, SearchSpace, sample_uniform


class RandomSearcher(Searcher):
    """Uniform random sampling with dedup and constraints."""

    name = "random"

    def __init__(self, space: SearchSpace, latency_fn: LatencyFn, budget: int, seed: int = 0, **kwargs: Any) -> None:
        super().__init__(space, latency_fn, budget, seed, **kwargs)
        self._done = False

    def _next(self) -> Arch | None:
        duplicates = infeasible = 0
        for _ in range(self.max_tries):
            arch = sample_uniform(self.space, self._rng)
            if self.is_known(arch):
                duplicates += 1
                continue
            if not self.is_feasible(arch):
                infeasible += 1
                continue
            self._count("rejected_duplicate", duplicates)
            self._count("rejected_infeasible", infeasible)
            return arch
        self._count("rejected_duplicate", duplicates)
        self._count("rejected_infeasible", infeasible)
        if duplicates == 0:
            raise self._infeasible_error("uniform sampling", self.max_tries)
        self._done = True
        self._count("exhausted")
        return None

    def _exhausted(self) -> bool:
        return self._done

    def _extra_state(self) -> dict[str, Any]:
        return {"done": self._done}

    def _load_extra_state(self, state: Mapping[str, Any]) -> None:
        self._done = bool(state["done"])

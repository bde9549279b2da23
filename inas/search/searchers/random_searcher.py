"""Random search, the baseline: archs from the original's uniform sampler (`inas.space.sample_uniform`), each asked
at most once, infeasible ones redrawn. Every ask is available at once (no waiting on results).

With `ends_first` (default) the space's smallest and largest archs are asked first (each when feasible): uniform
draws crowd in the middle of the latency range (in the demo league random's front spanned 34 % of it), so without
them the baseline's front never reaches either end. `ends_first: false` is the plain uniform sampler.

Bounded: at most `max_tries` draws per ask. If every draw violated the constraints it raises
`InfeasibleConstraintError`; if draws were only rejected as duplicates the space is taken as exhausted and the
searcher finishes early (`stats["exhausted"]`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from inas.errors import BadInputError
from inas.search.searchers.base import LatencyFn, Searcher
from inas.space import Arch, SearchSpace, sample_max, sample_min, sample_uniform
from inas.validation_problems import DocumentModel, Flag, parse_document


class RandomSearchState(DocumentModel):
    """`RandomSearcher`'s own state (`extra`)."""

    done: Flag


class RandomSearcher(Searcher):
    """Uniform random sampling with dedup and constraints."""

    name = "random"

    def __init__(self, space: SearchSpace, latency_fn: LatencyFn, budget: int, seed: int = 0, *,
                 ends_first: bool = True, **kwargs: Any) -> None:
        super().__init__(space, latency_fn, budget, seed, **kwargs)
        if not isinstance(ends_first, bool):
            raise BadInputError(f"must be true or false, got {ends_first!r}", key="ends_first")
        self.ends_first = ends_first
        self._done = False

    def _next_end(self) -> Arch | None:
        """The smallest, then the largest arch of the space while not yet asked (and feasible); else None."""
        if not self.ends_first:
            return None
        for end in (sample_min(self.space), sample_max(self.space)):
            if not self.is_known(end) and self.is_feasible(end):
                return end
        return None

    def _next(self) -> Arch | None:
        end = self._next_end()
        if end is not None:
            self._count("ends_asked")
            return end
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
        self._done = parse_document(RandomSearchState, state, key="extra").done

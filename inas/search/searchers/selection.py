"""Parent selection of the evolutionary search (docs/design.md §9.3 `select_pareto_frontier`): peel successive 2-D
Pareto fronts (latency minimised, score maximised) and take front points in increasing latency while their latency group
still has quota.

Fixes over the original (documented):
- equal-latency points are ordered by DEScending score, so a dominated point at the same latency is not kept on the
  front (the original sorts ties ascending and keeps them, docs/design.md §13.2);
- robust to groups with few candidates: the original loops on an empty pool and crashes when some group has fewer
  than its quota; here, when the pool is exhausted before `num` parents are found, a second pass peels the fronts of
  the not yet selected candidates without quotas. The quota is max(1, num // groups).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np


def pareto_front_2d(latency_ms: np.ndarray, score: np.ndarray) -> np.ndarray:
    """Indices of the 2-D Pareto front (min latency, max score), in increasing latency. Of identical points only
    the first (by index) is kept.

    Differs from `inas.search.pareto.pareto_front` (the analysis front) on purpose: there identical points are all
    on the front (equal rows do not dominate each other, so a results table keeps every arch with the same
    scores); here a parent slot must not be spent twice on the same (latency, score) point, as in the original.
    """
    order = np.lexsort((-score, latency_ms))
    front = []
    best = -math.inf
    for i in order:
        if score[i] > best:
            front.append(i)
            best = score[i]
    return np.asarray(front, dtype=np.int64)


def latency_groups(latency_ms: np.ndarray, min_latency_ms: float, max_latency_ms: float, groups: int) -> np.ndarray:
    """Group index of each latency: `groups` equal bins of [min, max], clamped to 0 .. groups - 1."""
    width = (max_latency_ms - min_latency_ms) / groups
    if width <= 0:
        return np.zeros(len(latency_ms), dtype=np.int64)
    return np.clip(np.floor((np.asarray(latency_ms) - min_latency_ms) / width), 0, groups - 1).astype(np.int64)


def select_pareto_frontier(latency_ms: Sequence[float], score: Sequence[float], num: int, groups: int,
                           min_latency_ms: float, max_latency_ms: float) -> list[int]:
    """Indices of min(num, n) selected candidates (see module docstring), in selection order."""
    latency = np.asarray(latency_ms, dtype=float)
    score_arr = np.asarray(score, dtype=float)
    num = min(num, len(latency))
    group = latency_groups(latency, min_latency_ms, max_latency_ms, groups)
    quota = np.full(groups, max(1, num // groups))
    selected: list[int] = []
    pool = np.ones(len(latency), dtype=bool)
    while len(selected) < num and pool.any():
        idx = np.flatnonzero(pool)
        for i in idx[pareto_front_2d(latency[idx], score_arr[idx])]:
            pool[i] = False
            if quota[group[i]] > 0:
                quota[group[i]] -= 1
                selected.append(int(i))
                if len(selected) == num:
                    break
    if len(selected) < num:  # second pass without quotas
        pool = np.ones(len(latency), dtype=bool)
        pool[selected] = False
        while len(selected) < num and pool.any():
            idx = np.flatnonzero(pool)
            for i in idx[pareto_front_2d(latency[idx], score_arr[idx])]:
                pool[i] = False
                selected.append(int(i))
                if len(selected) == num:
                    break
    return selected

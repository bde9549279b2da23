"""Expected hypervolume improvement (EHVI) of candidates whose latencies are known (LUT) and whose metric is a
Gaussian prediction (mean, std), over a front of (latency per device, minimised; score, maximised).

For a candidate p with latencies l_p and score M ~ N(mu, sigma), the improvement as a function of the score m is
h(m) = integral from r (reference score) to m of A(t) dt, where A(t) is the volume of the latency box [l_p, ref]
not dominated by the front points scoring >= t. A(t) is constant between consecutive front scores, so h is
piecewise linear and E[h(M)] has a closed form: sum over the score intervals [a, b] of A x (g(a) - g(b)), with
g(a) = E[(M - a)+] = sigma phi(z) + (mu - a)(1 - Phi(z)), z = (a - mu) / sigma. Exact for any number of devices
(the volumes A come from `pareto.hypervolume_points`).

`select_batch` takes `count` candidates greedily: the best EHVI, then its predicted mean joins the front (the
"kriging believer"), and so on, so one batch does not pile onto one spot of the front.
"""

from __future__ import annotations

import math

import numpy as np

from inas.search.pareto import hypervolume_points


def non_dominated(latency: np.ndarray, score: np.ndarray) -> np.ndarray:
    """Mask of the non-dominated rows of (latency (n, d) minimised, score (n,) maximised)."""
    points = np.column_stack([latency, -score])
    keep = np.ones(len(points), dtype=bool)
    for i, p in enumerate(points):
        if np.any(np.all(points <= p, axis=1) & np.any(points < p, axis=1)):
            keep[i] = False
    return keep


def _g(a: float, mu: float, sigma: float) -> float:
    """E[(M - a)+] for M ~ N(mu, sigma); sigma 0 gives (mu - a)+."""
    if math.isinf(a):
        return 0.0 if a > 0 else math.inf
    if sigma <= 0:
        return max(mu - a, 0.0)
    z = (a - mu) / sigma
    return sigma * math.exp(-0.5 * z * z) / math.sqrt(2 * math.pi) + (mu - a) * 0.5 * math.erfc(z / math.sqrt(2))


def expected_improvement(front_latency: np.ndarray, front_score: np.ndarray, latency: np.ndarray, mu: float,
                         sigma: float, ref_latency: np.ndarray, ref_score: float) -> float:
    """EHVI of one candidate (latency (d,), score ~ N(mu, sigma)) over the front (see the module docstring)."""
    latency = np.asarray(latency, dtype=float)
    if np.any(latency >= ref_latency):
        return 0.0
    box = float(np.prod(ref_latency - latency))
    order = np.argsort(-front_score, kind="stable")
    scores = front_score[order]
    clipped = np.maximum(front_latency[order], latency)  # the front's orthants cut down to the candidate's box
    total = 0.0
    upper = math.inf  # intervals from the top score down: (scores[j], upper] is covered by the first j points
    for j in range(len(scores) + 1):
        lower = max(scores[j], ref_score) if j < len(scores) else ref_score
        if upper > lower:
            area = box - (hypervolume_points(clipped[:j], ref_latency) if j else 0.0)
            if area > 0:
                total += area * (_g(lower, mu, sigma) - _g(upper, mu, sigma))
        upper = min(upper, lower)
        if upper <= ref_score:
            break
    return total


def select_batch(front_latency: np.ndarray, front_score: np.ndarray, latency: np.ndarray, mu: np.ndarray,
                 sigma: np.ndarray, ref_latency: np.ndarray, ref_score: float, count: int,
                 screen: int = 200) -> tuple[list[int], list[float]]:
    """Indices of up to `count` candidates (rows of latency (n, d), mu, sigma) by greedy EHVI with the kriging
    believer, and their EHVI when chosen. Only the `screen` candidates with the largest optimistic gain
    (mu + 2 sigma over the best front score among front points at most as slow on every device) are scored."""
    front_latency = np.asarray(front_latency, dtype=float).reshape(-1, latency.shape[1])
    front_score = np.asarray(front_score, dtype=float)
    pool = _gain_screen(front_latency, front_score, latency, mu + 2 * sigma, ref_score, screen)
    chosen: list[int] = []
    values: list[float] = []
    while pool and len(chosen) < count:
        ehvi = [expected_improvement(front_latency, front_score, latency[i], mu[i], sigma[i], ref_latency,
                                     ref_score) for i in pool]
        k = int(np.argmax(ehvi))
        if ehvi[k] <= 0:
            break
        best = pool.pop(k)
        chosen.append(best)
        values.append(float(ehvi[k]))
        front_latency = np.vstack([front_latency, latency[best]])
        front_score = np.append(front_score, mu[best])
    return chosen, values


def _gain_screen(front_latency: np.ndarray, front_score: np.ndarray, latency: np.ndarray, optimistic: np.ndarray,
                 ref_score: float, screen: int) -> list[int]:
    """Up to `screen` candidate indices with the largest positive gain of `optimistic` over the best front score
    among front points at most as slow on every device, largest first."""
    best_below = np.full(len(latency), ref_score)
    for fl, fs in zip(front_latency, front_score, strict=True):
        covers = np.all(fl <= latency, axis=1)
        best_below[covers] = np.maximum(best_below[covers], fs)
    gain = optimistic - best_below
    return [int(i) for i in np.argsort(-gain, kind="stable")[:screen] if gain[i] > 0]


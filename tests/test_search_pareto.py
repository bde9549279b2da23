"""Pareto utilities: non-dominated sorting vs brute force, exact hypervolume vs hand values and Monte Carlo, knee
point, best under budget, input errors."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from inas.errors import BadInputError
from inas.search.pareto import (
    best_under_budget,
    default_reference,
    hypervolume,
    hypervolume_2d,
    hypervolume_points,
    knee_point,
    non_dominated_rank,
    pareto_front,
)


def brute_force_ranks(points: np.ndarray) -> np.ndarray:
    """Peel fronts by checking every pair (minimisation)."""
    n = len(points)
    ranks = np.full(n, -1)
    remaining = set(range(n))
    rank = 0
    while remaining:
        front = {i for i in remaining
                 if not any(np.all(points[j] <= points[i]) and np.any(points[j] < points[i]) for j in remaining)}
        for i in front:
            ranks[i] = rank
        remaining -= front
        rank += 1
    return ranks


@pytest.mark.parametrize("dims", [2, 3])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_rank_matches_brute_force(dims, seed):
    rng = np.random.default_rng(seed)
    values = rng.integers(0, 6, size=(80, dims)).astype(float)  # small grid: many ties and duplicates
    columns = [f"o{j}" for j in range(dims)]
    directions = {c: ("min" if j % 2 == 0 else "max") for j, c in enumerate(columns)}
    frame = pd.DataFrame(values, columns=columns, index=rng.permutation(1000)[:80])
    ranks = non_dominated_rank(frame, directions)
    minimised = values * np.array([1 if d == "min" else -1 for d in directions.values()])
    assert ranks.name == "rank" and list(ranks.index) == list(frame.index)
    np.testing.assert_array_equal(ranks.to_numpy(dtype=int), brute_force_ranks(minimised))
    assert ranks.max() >= 2  # several fronts were peeled


def test_rank_missing_values_are_na_and_ignored():
    frame = pd.DataFrame({"lat": [1.0, 2.0, np.nan, 0.5], "acc": [0.5, 0.9, 0.99, np.nan]})
    ranks = non_dominated_rank(frame, {"lat": "min", "acc": "max"})
    assert ranks.iloc[0] == 0 and ranks.iloc[1] == 0
    assert ranks.isna().tolist() == [False, False, True, True]
    assert list(pareto_front(frame, {"lat": "min", "acc": "max"}).index) == [0, 1]


def test_pareto_front_sorted_with_rank():
    frame = pd.DataFrame({"lat": [3.0, 1.0, 2.0, 2.5], "acc": [0.9, 0.5, 0.8, 0.7]})
    front = pareto_front(frame, {"lat": "min", "acc": "max"})
    assert list(front.index) == [1, 2, 0]
    assert (front["rank"] == 0).all()


def test_hypervolume_2d_hand_example():
    frame = pd.DataFrame({"latency_ms": [1.0, 2.0, 3.0, 5.0], "max_fmeasure": [0.5, 0.8, 0.7, 0.95]})
    ref = {"latency_ms": 4.0, "max_fmeasure": 0.0}
    # (1, .5) and (2, .8) span (4-1)*.5 + (4-2)*(.8-.5) = 2.1; (3, .7) is dominated; (5, .95) lies beyond the ref.
    assert hypervolume(frame, {"latency_ms": "min", "max_fmeasure": "max"}, ref) == pytest.approx(2.1)
    # default reference: the max observed latency (5) and 0 for the accuracy
    assert default_reference(frame, {"latency_ms": "min", "max_fmeasure": "max"}) == {"latency_ms": 5.0,
                                                                                       "max_fmeasure": 0.0}
    expected = 4 * 0.5 + 3 * 0.3  # (5, .95) sits on the reference latency and adds nothing
    assert hypervolume(frame, {"latency_ms": "min", "max_fmeasure": "max"}) == pytest.approx(expected)


def test_hypervolume_empty_and_outside():
    assert hypervolume_2d(np.empty((0, 2)), [1, 1]) == 0.0
    assert hypervolume_points(np.array([[2.0, 0.5, 0.5]]), [1, 1, 1]) == 0.0


def monte_carlo_hypervolume(points: np.ndarray, ref: np.ndarray, samples: int, rng) -> tuple[float, float]:
    lo = points.min(axis=0)
    box = np.prod(ref - lo)
    u = lo + rng.random((samples, len(ref))) * (ref - lo)
    dominated = np.zeros(samples, dtype=bool)
    for p in points:
        dominated |= np.all(u >= p, axis=1)
    frac = dominated.mean()
    return box * frac, box * np.sqrt(frac * (1 - frac) / samples)


@pytest.mark.parametrize("dims", [2, 3, 4])
def test_hypervolume_matches_monte_carlo(dims):
    rng = np.random.default_rng(dims)
    # points near a front: on the positive orthant of a sphere, pushed outwards a little
    raw = np.abs(rng.normal(size=(40, dims)))
    points = 1.0 - raw / np.linalg.norm(raw, axis=1, keepdims=True) * 0.8 + rng.random((40, dims)) * 0.1
    ref = np.full(dims, 1.05)
    exact = hypervolume_points(points, ref)
    estimate, sigma = monte_carlo_hypervolume(points, ref, 200_000, rng)
    assert exact > 0
    assert abs(exact - estimate) < 5 * sigma + 1e-9


def test_hypervolume_2d_matches_nevergrad_indicator():
    from nevergrad.optimization.multiobjective import HypervolumeIndicator

    rng = np.random.default_rng(7)
    points = rng.random((50, 2))
    assert hypervolume_2d(points, [1.0, 1.0]) == pytest.approx(HypervolumeIndicator(np.ones(2)).compute(points))


def test_knee_point_on_constructed_front():
    frame = pd.DataFrame({
        "lat": [1.0, 2.0, 3.0, 4.0, 10.0, 5.0, 2.5],
        "acc": [0.1, 0.8, 0.85, 0.9, 0.92, 0.5, 0.6],  # the last two are dominated
    }, index=list("abcdefg"))
    knee = knee_point(frame, {"lat": "min", "acc": "max"})
    assert knee.name == "b"
    assert knee["lat"] == 2.0 and knee["acc"] == 0.8


def test_knee_point_small_fronts():
    one = pd.DataFrame({"lat": [1.0, 2.0], "acc": [0.9, 0.5]})
    assert knee_point(one, {"lat": "min", "acc": "max"}).name == 0
    with pytest.raises(BadInputError):
        knee_point(pd.DataFrame({"lat": [np.nan], "acc": [0.5]}), {"lat": "min", "acc": "max"})


def test_knee_point_three_objectives():
    # (0.2, 0.2, 0.2) bulges towards the ideal point; the three extremes span the plane a + b + c = 1, on which
    # (0.5, 0.5, 0) lies
    frame = pd.DataFrame([[1.0, 0, 0], [0, 1.0, 0], [0, 0, 1.0], [0.2, 0.2, 0.2], [0.5, 0.5, 0.0]],
                         columns=["a", "b", "c"])
    knee = knee_point(frame, {"a": "min", "b": "min", "c": "min"})
    assert knee.name == 3


def test_best_under_budget():
    frame = pd.DataFrame({
        "arch_id": ["a", "b", "c", "d"],
        "latency_ms": [5.0, 10.0, 12.0, 20.0],
        "max_fmeasure": [0.70, 0.80, 0.80, 0.90],
    })
    table = best_under_budget(frame, "max_fmeasure", "latency_ms", [4.0, 5.0, 11.0, 15.0, 100.0])
    assert list(table.columns) == ["budget", "arch_id", "latency_ms", "max_fmeasure"]
    assert table["budget"].tolist() == [4.0, 5.0, 11.0, 15.0, 100.0]
    assert table["arch_id"].iloc[0] is np.nan or pd.isna(table["arch_id"].iloc[0])
    assert table["arch_id"].iloc[1:].tolist() == ["a", "b", "b", "d"]  # tie at 0.80: the faster one
    mae = frame.rename(columns={"max_fmeasure": "mae"})
    assert best_under_budget(mae, "mae", "latency_ms", [15.0], metric_direction="min")["arch_id"].tolist() == ["a"]


def test_bad_columns_and_directions():
    frame = pd.DataFrame({"lat": [1.0], "acc": [0.5]})
    with pytest.raises(BadInputError, match="latency_ms__cpu"):
        non_dominated_rank(frame, {"latency_ms__cpu": "min", "acc": "max"})
    with pytest.raises(BadInputError, match="acc.*'up'"):
        hypervolume(frame, {"lat": "min", "acc": "up"})
    with pytest.raises(BadInputError, match="reference"):
        hypervolume(frame, {"lat": "min", "acc": "max"}, reference={"lat": 2.0})


def brute_force_hypervolume(points: np.ndarray, ref: np.ndarray) -> float:
    """Exact volume by the grid of every point's coordinates: each grid cell is dominated or not as a whole."""
    points = points[np.all(points < ref, axis=1)]
    if not len(points):
        return 0.0
    axes = [np.unique(np.append(points[:, j], ref[j])) for j in range(len(ref))]
    total = 0.0
    for cell in np.ndindex(*(len(a) - 1 for a in axes)):
        lower = np.array([axes[j][i] for j, i in enumerate(cell)])
        upper = np.array([axes[j][i + 1] for j, i in enumerate(cell)])
        if np.any(np.all(points <= lower, axis=1)):
            total += float(np.prod(upper - lower))
    return total


@pytest.mark.parametrize("dims", [3, 4, 5])
@pytest.mark.parametrize("seed", range(4))
def test_hypervolume_nd_matches_brute_force(dims, seed):
    rng = np.random.default_rng(100 * dims + seed)
    n = int(rng.integers(1, 9))
    points = np.round(rng.random((n, dims)), 1)  # coarse values: ties, duplicates and dominated points happen
    points = np.vstack([points, points[:1]])
    ref = np.full(dims, 1.0)
    assert hypervolume_points(points, ref) == pytest.approx(brute_force_hypervolume(points, ref), abs=1e-12)


def test_hypervolume_nd_fallback_equals_optuna():
    from nevergrad.optimization.multiobjective import HypervolumeIndicator

    rng = np.random.default_rng(11)
    raw = np.abs(rng.normal(size=(30, 3)))
    front = raw / np.linalg.norm(raw, axis=1, keepdims=True)
    ref = np.full(3, 1.2)
    assert hypervolume_points(front, ref) == pytest.approx(HypervolumeIndicator(ref).compute(list(front)), rel=1e-12)


@pytest.mark.parametrize("dims", [3, 4])
def test_hypervolume_frame_nd_directions(dims):
    """A "max" metric and several "min" latencies, through the DataFrame API, vs brute force on negated columns."""
    rng = np.random.default_rng(dims)
    frame = pd.DataFrame(np.round(rng.random((12, dims)), 2), columns=["acc", *[f"lat{j}" for j in range(dims - 1)]])
    objectives = {"acc": "max", **{f"lat{j}": "min" for j in range(dims - 1)}}
    reference = {"acc": 0.0, **{f"lat{j}": 1.0 for j in range(dims - 1)}}
    points = frame.to_numpy() * np.array([-1.0] + [1.0] * (dims - 1))
    want = brute_force_hypervolume(points, np.array([0.0] + [1.0] * (dims - 1)))
    assert hypervolume(frame, objectives, reference) == pytest.approx(want, abs=1e-12)
    front = pareto_front(frame, objectives)
    assert set(front.index) == set(np.flatnonzero(brute_force_ranks(points) == 0))

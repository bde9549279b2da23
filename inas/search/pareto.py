"""Pareto utilities on tables of scored architectures: non-dominated sorting, hypervolume, knee point, best under a
budget. pandas in, pandas out.

Objectives are given as a mapping `{column: direction}` with direction "min" (latency, params, MAE) or "max"
(max F-measure, mIoU), e.g. `{"latency_ms__cpu": "min", "max_fmeasure": "max"}`. Internally every objective is
turned into a minimisation (a "max" column is negated).

Rows with a missing (NaN) objective take no part: they get rank <NA> and are ignored by the other functions.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

import numpy as np
import pandas as pd

from inas.errors import BadInputError

DIRECTIONS = ("min", "max")


def _check(frame: pd.DataFrame, objectives: Mapping[str, str]) -> None:
    if not objectives:
        raise BadInputError("needs at least one objective, e.g. {'latency_ms': 'min', 'max_fmeasure': 'max'}",
                            key="objectives")
    for column, direction in objectives.items():
        if column not in frame.columns:
            raise BadInputError(f"column not in the table; available columns: {list(frame.columns)}", key=column)
        if direction not in DIRECTIONS:
            raise BadInputError(f"direction {direction!r} is not allowed; expected 'min' or 'max'", key=column)


def to_minimisation(frame: pd.DataFrame, objectives: Mapping[str, str]) -> np.ndarray:
    """The objective columns as a float array (rows, objectives), "max" columns negated (so smaller is better)."""
    _check(frame, objectives)
    columns = []
    for column, direction in objectives.items():
        values = pd.to_numeric(frame[column], errors="coerce").to_numpy(dtype=float)
        columns.append(-values if direction == "max" else values)
    return np.stack(columns, axis=1) if columns else np.empty((len(frame), 0))


def _fronts(points: np.ndarray) -> np.ndarray:
    """Front index (0 = non-dominated) of every row of `points` (n, m), all objectives minimised, no NaN.

    Rows are sorted lexicographically, so a row can only be dominated by rows before it; each front is then built in
    one pass (a row joins the current front if no member dominates it). Equal rows do not dominate each other.
    """
    n = len(points)
    ranks = np.full(n, -1, dtype=np.int64)
    if n == 0:
        return ranks
    order = np.lexsort(points.T[::-1])
    remaining = order
    rank = 0
    while len(remaining):
        in_front = _first_front_sorted(points[remaining])
        ranks[remaining[in_front]] = rank
        remaining = remaining[~in_front]
        rank += 1
    return ranks


def _first_front_sorted(points: np.ndarray) -> np.ndarray:
    """Mask of the non-dominated rows of `points`, which must be sorted lexicographically (minimisation)."""
    n, m = points.shape
    mask = np.zeros(n, dtype=bool)
    if m == 2:  # O(n): track the lowest second objective seen so far and the first x that reached it
        best_y, best_x = np.inf, np.inf
        for i, (x, y) in enumerate(points):
            # the first row is never dominated, even at y = inf (else a front of infinite rows would never end)
            if i == 0 or y < best_y or (y == best_y and x == best_x):
                mask[i] = True
                if i == 0 or y < best_y:
                    best_y, best_x = y, x
        return mask
    front = np.empty_like(points)
    size = 0
    for i, p in enumerate(points):
        members = front[:size]
        if size and np.any(np.all(members <= p, axis=1) & np.any(members < p, axis=1)):
            continue
        mask[i] = True
        front[size] = p
        size += 1
    return mask


def non_dominated_rank(frame: pd.DataFrame, objectives: Mapping[str, str]) -> pd.Series:
    """Pareto rank of every row (0 = first front, 1 = front after removing front 0, ...), index aligned with
    `frame`, name "rank", dtype Int64 (<NA> for rows with a missing objective)."""
    points = to_minimisation(frame, objectives)
    valid = ~np.isnan(points).any(axis=1)
    ranks = pd.Series(pd.array([pd.NA] * len(frame), dtype="Int64"), index=frame.index, name="rank")
    if valid.any():
        ranks.iloc[np.flatnonzero(valid)] = _fronts(points[valid])
    return ranks


def pareto_front(frame: pd.DataFrame, objectives: Mapping[str, str]) -> pd.DataFrame:
    """The non-dominated rows (rank 0) with a `rank` column, sorted by the objectives in the given order."""
    ranks = non_dominated_rank(frame, objectives)
    front = frame.assign(rank=ranks)[ranks.eq(0).fillna(False).to_numpy(dtype=bool)]
    return front.sort_values(list(objectives), ascending=[d == "min" for d in objectives.values()], kind="stable")


def default_reference(frame: pd.DataFrame, objectives: Mapping[str, str]) -> dict[str, float]:
    """The documented default reference point: the largest observed value of each "min" column (e.g. the max latency
    in the table) and 0.0 for each "max" column (accuracy metrics in [0, 1]). To compare several searchers, compute
    it once on all their rows together (`pd.concat`) or pass a fixed one (e.g. the latency of the largest arch)."""
    _check(frame, objectives)
    ref = {}
    for column, direction in objectives.items():
        if direction == "min":
            values = pd.to_numeric(frame[column], errors="coerce")
            ref[column] = float(values.max()) if values.notna().any() else float("nan")
        else:
            ref[column] = 0.0
    return ref


def hypervolume_2d(points: np.ndarray, reference: Sequence[float]) -> float:
    """Exact area dominated by `points` (n, 2) (both objectives minimised) inside the box bounded by `reference`.
    Points not strictly better than the reference in both objectives add nothing."""
    points = np.asarray(points, dtype=float).reshape(-1, 2)
    ref = np.asarray(reference, dtype=float)
    points = points[np.all(points < ref, axis=1)]
    if not len(points):
        return 0.0
    points = points[np.lexsort((points[:, 1], points[:, 0]))]
    area = 0.0
    best_y = ref[1]
    for x, y in points:  # sweep by the first objective; each new lower y adds a slab up to the reference
        if y < best_y:
            area += (ref[0] - x) * (best_y - y)
            best_y = y
    return float(area)


def hypervolume_points(points: np.ndarray, reference: Sequence[float] | np.ndarray) -> float:
    """Exact hypervolume of `points` (n, m) (all objectives minimised) w.r.t. `reference` (m,). 1-D and 2-D by a
    sweep; 3-D and more by `hypervolume_nd` on the non-dominated points. Points not strictly better than the
    reference in every objective add nothing."""
    points = np.asarray(points, dtype=float)
    ref = np.asarray(reference, dtype=float)
    if points.ndim != 2 or points.shape[1] != ref.size:
        raise ValueError(f"points must be (n, {ref.size}), got {points.shape}")
    points = points[np.all(points < ref, axis=1)]
    if not len(points):
        return 0.0
    m = ref.size
    if m == 1:
        return float(ref[0] - points[:, 0].min())
    if m == 2:
        return hypervolume_2d(points, ref)
    front = np.unique(points[_fronts(points) == 0], axis=0)
    return hypervolume_nd(front, ref)


def hypervolume_nd(front: np.ndarray, reference: np.ndarray) -> float:
    """Exact hypervolume of non-dominated `front` (n, m >= 3), every point strictly inside `reference`: Optuna's
    implementation (3-D box decomposition, WFG above; `optuna._hypervolume`, Optuna >= 4), else nevergrad's
    `HypervolumeIndicator` (Fonseca et al. 2006 dimension sweep, 2-10x slower on 200 points)."""
    try:
        from optuna._hypervolume import compute_hypervolume
    except ImportError:  # an Optuna without it: the slower, equally exact indicator
        from nevergrad.optimization.multiobjective import HypervolumeIndicator

        return float(HypervolumeIndicator(reference).compute(list(front)))
    return float(compute_hypervolume(front, reference, assume_pareto=True))


def hypervolume(frame: pd.DataFrame, objectives: Mapping[str, str],
                reference: Mapping[str, float] | None = None) -> float:
    """Hypervolume of the rows of `frame` in objective space (same units as the columns, e.g. ms x F-measure).

    reference: one value per objective column; a "min" objective is bounded above by it, a "max" objective below.
    Default: `default_reference(frame, objectives)` (max observed latency, 0 for accuracy).
    """
    points = to_minimisation(frame, objectives)
    points = points[~np.isnan(points).any(axis=1)]
    ref_values = default_reference(frame, objectives) if reference is None else dict(reference)
    missing = [c for c in objectives if c not in ref_values]
    if missing:
        raise BadInputError(f"reference point has no value for {missing}", key="reference")
    ref = np.array([-ref_values[c] if d == "max" else ref_values[c] for c, d in objectives.items()], dtype=float)
    if np.isnan(ref).any():
        return 0.0
    return hypervolume_points(points, ref)


def knee_point(frame: pd.DataFrame, objectives: Mapping[str, str]) -> pd.Series:
    """The knee of the Pareto front: the front row farthest (on the ideal side) from the line (2 objectives) or
    hyperplane (more) through the front's extreme points, in objective space normalised to [0, 1] over the front.
    If no point lies strictly on the ideal side (fronts of 1-2 points, straight fronts) or the extremes do not span a
    hyperplane, the row closest to the ideal point is returned. Returns that row of `frame` (Series named by its
    index label)."""
    front = pareto_front(frame, objectives)
    if front.empty:
        raise BadInputError("no row has a value for every objective", key=", ".join(objectives))
    points = to_minimisation(front, objectives)
    lo, hi = points.min(axis=0), points.max(axis=0)
    span = np.where(hi > lo, hi - lo, 1.0)
    norm = (points - lo) / span
    m = norm.shape[1]
    extremes = np.stack([norm[np.lexsort(np.roll(norm, -j, axis=1).T[::-1])[0]] for j in range(m)])
    distance = None
    if m >= 2 and len(front) >= 3:
        try:
            # Hyperplane n·x = 1 through the m extremes; signed distance > 0 on the ideal (origin) side.
            normal = np.linalg.solve(extremes, np.ones(m))
            distance = (1.0 - norm @ normal) / np.linalg.norm(normal)
        except np.linalg.LinAlgError:
            distance = None
    if distance is None or not np.any(distance > 1e-12):
        best = int(np.argmin(np.linalg.norm(norm, axis=1)))
    else:
        best = int(np.argmax(distance))
    return frame.loc[front.index[best]]


def best_under_budget(frame: pd.DataFrame, metric: str, resource: str, budgets: Iterable[float],
                      metric_direction: str = "max") -> pd.DataFrame:
    """For each budget, the row with the best `metric` among rows with `resource` <= budget (ties: lower resource).

    Returns one row per budget: a `budget` column (in the unit of `resource`) followed by the chosen row's columns,
    all NaN when no row fits the budget.
    """
    _check(frame, {resource: "min", metric: metric_direction})
    res = pd.to_numeric(frame[resource], errors="coerce")
    score = pd.to_numeric(frame[metric], errors="coerce")
    if metric_direction == "min":
        score = -score
    rows = []
    for budget in budgets:
        fits = res.le(float(budget)) & score.notna()
        if fits.any():
            candidates = pd.DataFrame({"score": score[fits], "res": res[fits]})
            label = candidates.sort_values(["score", "res"], ascending=[False, True], kind="stable").index[0]
            row = frame.loc[label].to_dict()
        else:
            row = {c: np.nan for c in frame.columns}
        rows.append({"budget": float(budget), **row})
    return pd.DataFrame(rows, columns=["budget", *frame.columns])

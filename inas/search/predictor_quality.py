"""How well the accuracy predictor (`inas.search.surrogate`) predicts a run's own evaluations: k-fold out-of-fold
Kendall tau, MAE and uncertainty coverage, for one or several (model, features) variants, and the out-of-fold
predicted-vs-measured table of the first variant (the `analyze` predictor-quality section).

Rows: one per architecture (its first successful evaluation over all searchers and folders). Archs are parsed in
the full iNAS space (every configured space is a narrowing of it), so folders of different narrowings mix.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from inas.errors import BadInputError
from inas.search.surrogate import DEFAULT_FEATURES, DEFAULT_MODEL, AccuracyPredictor
from inas.space import arch_from_json, inas_space

DEFAULT_VARIANTS: tuple[tuple[str, str], ...] = ((DEFAULT_MODEL, DEFAULT_FEATURES),)  # the predictor searcher's
COMPARE_VARIANTS: tuple[tuple[str, str], ...] = (("forest", "summary"), ("auto", "summary"), ("ridge", "summary"),
                                                 ("gp", "summary"), ("forest", "encoding"), ("ridge", "both"),
                                                 ("boosting", "summary"))
MIN_SAMPLES = 10  # fewer successful archs: no predictor section
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PredictorReport:
    """`table`: model, features, samples, folds, kendall_tau, mae, within_1std (one row per variant);
    `out_of_fold`: arch_id, searcher, measured, predicted, predicted_std of the first variant."""

    metric: str
    table: pd.DataFrame
    out_of_fold: pd.DataFrame


def predictor_quality(evaluations: pd.DataFrame, metric: str, folds: int = 5, seed: int = 0,
                      variants: Sequence[tuple[str, str]] = DEFAULT_VARIANTS) -> PredictorReport | None:
    """k-fold quality of each (model, features) variant on the unique successful rows; None under MIN_SAMPLES rows
    or when an `arch` cell does not parse (logged)."""
    rows = first_scored_rows(evaluations, metric)
    if len(rows) < MIN_SAMPLES:
        return None
    space = inas_space()
    try:
        archs = [arch_from_json(str(text), space, "evaluations") for text in rows["arch"]]
    except BadInputError as exc:  # e.g. a hand-made table: the other sections need no arch, so skip this one
        log.warning("no accuracy-predictor section: an `arch` cell is not an architecture of the iNAS space (%s)",
                    exc)
        return None
    measured = rows[metric].to_numpy(dtype=float)
    table, first = [], None
    for model, features in variants:
        quality = AccuracyPredictor(space, model=model, features=features, seed=seed).cross_validate(
            archs, measured, folds=folds)
        table.append({"model": model, "features": features, "samples": quality.samples, "folds": quality.folds,
                      "kendall_tau": quality.kendall_tau, "mae": quality.mae, "within_1std": quality.within_1std})
        first = first or quality
    assert first is not None
    out_of_fold = pd.DataFrame({"arch_id": rows["arch_id"].to_numpy(), "searcher": rows["searcher"].to_numpy(),
                                "measured": measured, "predicted": first.predicted,
                                "predicted_std": first.predicted_std})
    return PredictorReport(metric, pd.DataFrame(table), out_of_fold)


def first_scored_rows(evaluations: pd.DataFrame, metric: str) -> pd.DataFrame:
    """Each architecture's first row with a numeric `metric` (failed evaluations and repeats dropped)."""
    return evaluations[pd.to_numeric(evaluations[metric], errors="coerce").notna()].drop_duplicates("arch_id")


def measured_range(report: PredictorReport) -> tuple[float, float]:
    """(min, max) over measured and predicted values, for plot limits."""
    values = report.out_of_fold[["measured", "predicted"]].to_numpy(dtype=float)
    return float(np.nanmin(values)), float(np.nanmax(values))

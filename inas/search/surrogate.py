"""Accuracy predictor: a regressor from architecture features to the task metric, with an uncertainty from an
ensemble, fitted on a run's own evaluations, and its quality by k-fold cross-validation (Kendall tau, MAE).

Features (`ArchFeatures`, `kind`):
- "summary" (default): per backbone stage its depth, mean relative width (width / the stage's max width), total
  relative width, mean kernel-set size and mean largest kernel; per transport and decoder level one bit per
  candidate source level (its connection set), the kernel-set size and the largest kernel. Order-free within a stage
  (a layer's position matters little to accuracy), ~60 columns for the full space.
- "encoding": the option index of every `ArchEncoding` dimension (per layer; layers beyond a stage's depth are 0),
  73 columns for the full space.
- "both": the two side by side.
`benchmarks/bench_search_league.py --predictor-only` measures them (tau, MAE) on real evaluations.

Models (`model`), scikit-learn, each an ensemble whose spread is the uncertainty (std over members):
- "forest" (default): a random forest (`RandomForestRegressor`, `n_estimators` (50) trees, min 2 samples per leaf,
  half the features per split); mean and std over the trees' predictions.
- "boosting": `n_bags` (4) gradient-boosted regressors (`GradientBoostingRegressor`, `n_estimators` stages of depth
  3), each fitted on a bootstrap sample (bagging); mean and std over the bags.
Measured on the synthetic problem (`inas.search.testing`, metric + N(0, 0.005) noise, 5-fold, 32/64/96 uniform
archs, 100 trees / 8 bags): forest+summary tau 0.45/0.59/0.56 with a calibrated spread (69-73 % of errors within
1 std); boosting+summary tau 0.40/0.61/0.61 but over-confident (22-42 % within 1 std) and 4x slower; "encoding"
features tau 0.01-0.03 lower. Hence the default forest + summary; real-supernet figures: `analyze --predictor
compare` on a run's folder.
Everything is seeded; nothing is pickled (a searcher refits from its told evaluations on resume).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from inas.errors import BadInputError
from inas.space import Arch, ArchEncoding, SearchSpace

FEATURE_KINDS = ("summary", "encoding", "both")
MODELS = ("forest", "boosting")


class ArchFeatures:
    """Arch -> a fixed-length float vector for `space` (see the module docstring for the kinds)."""

    def __init__(self, space: SearchSpace, kind: str = "summary") -> None:
        if kind not in FEATURE_KINDS:
            raise BadInputError(f"unknown feature kind {kind!r}; expected one of {list(FEATURE_KINDS)}",
                                key="features")
        self.space = space
        self.kind = kind
        self.encoding = ArchEncoding(space)
        self._sources = [sorted({j for s in lv.connection_sets for j in s}) for lv in (*space.transport,
                                                                                      *space.decoder)]

    def _summary(self, arch: Arch) -> list[float]:
        out: list[float] = []
        for stage_space, stage in zip(self.space.stages, arch.backbone, strict=True):
            rel = [w / stage_space.max_width for w in stage.widths]
            out += [stage.depth, float(np.mean(rel)), float(np.sum(rel)),
                    float(np.mean([len(k) for k in stage.kernels])), float(np.mean([max(k) for k in stage.kernels]))]
        for sources, level in zip(self._sources, (*arch.transport, *arch.decoder), strict=True):
            out += [float(j in level.connections) for j in sources]
            out += [len(level.kernels), max(level.kernels)]
        return out

    def vector(self, arch: Arch) -> list[float]:
        if self.kind == "summary":
            return self._summary(arch)
        codes = [float(i) for i in self.encoding.encode(arch)]
        return codes if self.kind == "encoding" else self._summary(arch) + codes

    def matrix(self, archs: Sequence[Arch]) -> np.ndarray:
        """(len(archs), features) float array."""
        rows = [self.vector(a) for a in archs]
        return np.asarray(rows, dtype=float).reshape(len(rows), -1)


@dataclass(frozen=True)
class PredictorQuality:
    """Out-of-fold quality of a predictor: Kendall tau and MAE of the predicted vs measured metric, and the coverage
    of the uncertainty (fraction of |error| <= 1 std, ~0.68 if calibrated). Arrays in the order of the inputs."""

    kendall_tau: float
    mae: float
    within_1std: float
    folds: int
    samples: int
    predicted: np.ndarray  # (n,) out-of-fold mean
    predicted_std: np.ndarray  # (n,) out-of-fold std


class AccuracyPredictor:
    """Metric predictor with uncertainty (see the module docstring). `fit(archs, y)`, `predict(archs) -> (mean,
    std)`, `cross_validate(archs, y)`."""

    def __init__(self, space: SearchSpace, model: str = "forest", features: str = "summary",
                 n_estimators: int = 50, n_bags: int = 4, seed: int = 0) -> None:
        if model not in MODELS:
            raise BadInputError(f"unknown predictor model {model!r}; expected one of {list(MODELS)}", key="model")
        if n_estimators < 1 or n_bags < 2:
            raise BadInputError(f"needs n_estimators >= 1 and n_bags >= 2, got {n_estimators}, {n_bags}",
                                key="n_estimators")
        self.space = space
        self.model = model
        self.features = ArchFeatures(space, features)
        self.n_estimators = n_estimators
        self.n_bags = n_bags
        self.seed = seed
        self._members: list = []

    def _fit_matrix(self, x: np.ndarray, y: np.ndarray) -> None:
        from sklearn.ensemble import GradientBoostingRegressor, RandomForestRegressor

        if self.model == "forest":
            forest = RandomForestRegressor(n_estimators=self.n_estimators, min_samples_leaf=2, max_features=0.5,
                                           random_state=self.seed, n_jobs=1)
            self._members = list(forest.fit(x, y).estimators_)
            return
        rng = np.random.default_rng(self.seed)
        self._members = []
        for b in range(self.n_bags):
            rows = rng.integers(0, len(y), len(y))
            gbr = GradientBoostingRegressor(n_estimators=self.n_estimators, max_depth=3, learning_rate=0.05,
                                            subsample=0.8, random_state=self.seed + b)
            self._members.append(gbr.fit(x[rows], y[rows]))

    def _predict_matrix(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        each = np.stack([m.predict(x) for m in self._members])  # (members, n)
        return each.mean(axis=0), each.std(axis=0)

    def fit(self, archs: Sequence[Arch], metric: Sequence[float]) -> AccuracyPredictor:
        y = np.asarray(metric, dtype=float)
        if len(archs) != len(y) or len(y) < 2 or not np.isfinite(y).all():
            raise ValueError(f"needs >= 2 archs with a finite metric each, got {len(archs)} archs, {len(y)} values")
        self._fit_matrix(self.features.matrix(archs), y)
        return self

    def predict(self, archs: Sequence[Arch]) -> tuple[np.ndarray, np.ndarray]:
        """(mean, std) of the metric, each (len(archs),)."""
        if not self._members:
            raise RuntimeError("the predictor is not fitted")
        return self._predict_matrix(self.features.matrix(archs))

    def cross_validate(self, archs: Sequence[Arch], metric: Sequence[float], folds: int = 5) -> PredictorQuality:
        """k-fold (shuffled, seeded) out-of-fold predictions and their quality; the fitted state is unchanged."""
        from scipy.stats import kendalltau
        from sklearn.model_selection import KFold

        y = np.asarray(metric, dtype=float)
        folds = min(folds, len(y))
        if folds < 2:
            raise ValueError(f"cross-validation needs >= 2 samples, got {len(y)}")
        x = self.features.matrix(archs)
        members = self._members
        mean, std = np.empty(len(y)), np.empty(len(y))
        for train, test in KFold(folds, shuffle=True, random_state=self.seed).split(x):
            self._fit_matrix(x[train], y[train])
            mean[test], std[test] = self._predict_matrix(x[test])
        self._members = members
        error = np.abs(mean - y)
        tau = float(kendalltau(mean, y).statistic) if len(y) > 2 else float("nan")
        return PredictorQuality(tau, float(error.mean()), float(np.mean(error <= std)), folds, len(y), mean, std)

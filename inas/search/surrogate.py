"""Accuracy predictor: a regressor from architecture features to the task metric, with an uncertainty from an
ensemble, fitted on a run's own evaluations, and its quality by k-fold cross-validation (Kendall tau, MAE).

Features (`ArchFeatures`, `kind`):
- "summary" (default): per backbone stage its depth, mean relative width (width / the stage's max width), total
  relative width, mean kernel-set size and mean largest kernel; per transport and decoder level one bit per
  candidate source level (its connection set), how many of its sources are finer and how many coarser levels and
  whether any is, the kernel-set size and the largest kernel. Order-free within a stage (a layer's position matters
  little to accuracy), ~80 columns for the full space. The finer/coarser counts say in one column what the source
  bits say only together (on the demo supernet a transport level without any finer source loses ~0.04 max F: an OR
  of two bits that a forest learns only from many samples); they took the forest's held-out tau at 64 evaluations
  from 0.55 to 0.62 on the demo league's archs and from 0.39 to 0.43 on the wide league's (6 splits each).
- "encoding": the option index of every `ArchEncoding` dimension (per layer; layers beyond a stage's depth are 0),
  73 columns for the full space.
- "both": the two side by side.
`analyze --predictor compare` measures them (tau, MAE) on a run's own evaluations.

Models (`model`), scikit-learn, each with an uncertainty (std):
- "forest" (default): a random forest (`RandomForestRegressor`, `n_estimators` (100) fully grown trees, a third of
  the features per split); mean and std over the trees' predictions. Against 50 trees with 2 samples per leaf and
  half the features (the earlier setting), out-of-fold tau on the predictor searcher's own first 64 evaluations
  0.548 -> 0.570 (demo league, 5 seeds) and 0.476 -> 0.500 (wide league), held out at 64: 0.613 -> 0.629 and
  0.457 -> 0.467.
- "boosting": `n_bags` (4) gradient-boosted regressors (`GradientBoostingRegressor`, `n_estimators` stages of depth
  3), each fitted on a bootstrap sample (bagging); mean and std over the bags.
- "ridge": `n_bags` ridge regressions on standardised features (`RidgeCV`, the penalty chosen by leave-one-out
  among 12 values in [0.01, 1000]), each on a bootstrap sample; mean and std over the bags. The linear model of
  DyNAS-T / LINAS, which needs few samples.
- "gp": a Gaussian process on standardised features (constant x RBF + linear + white-noise kernel, its
  hyper-parameters fitted by marginal likelihood, `normalize_y`); its posterior mean and std. Fitted on the last
  `GP_MAX_SAMPLES` rows at most (the fit is cubic in the rows: a search of ~1,000 evaluations refits every round).
- "auto": at every fit with >= `AUTO_MIN_SAMPLES` archs, the one of `AUTO_MODELS` with the best 5-fold out-of-fold
  Kendall tau on the data at hand (its last `AUTO_CHOICE_SAMPLES` rows; `chosen_model`; "forest" below that), so
  the run's own evaluations decide; `cross_validate` chooses inside each fold. It was the predictor searcher's
  default until the demo league's own 64 evaluations (5 seeds, out of fold, the features below) ranked forest 0.548
  over auto 0.509 (the choice on ~50 rows is noisy and the ridge rarely right on the supernet): the searcher now
  defaults to the forest.
Measured on the synthetic problem (`inas.search.testing`, metric + N(0, 0.005) noise, 5-fold, 32/64/96 uniform
archs, 100 trees / 8 bags): forest+summary tau 0.45/0.59/0.56 with a calibrated spread (69-73 % of errors within
1 std); boosting+summary tau 0.40/0.61/0.61 but over-confident (22-42 % within 1 std) and 4x slower; "encoding"
features tau 0.01-0.03 lower. On 64 archs (3 seeds), uniform / the predictor searcher's own: forest 0.57 / 0.77,
ridge 0.72 / 0.84, gp 0.69 / 0.76 (summary features); the synthetic metric is nearly additive in these features,
which favours the linear model, so the supernet's own figures (`analyze --predictor compare`, the league's
predictor table) choose between them. On the demo supernet (league, 2026-12-02: the predictor searcher's first 64
evaluations of 4 seeds, out of fold) forest 0.58, ridge 0.50, gp 0.19-0.59, auto over all three 0.53 and over
forest and ridge 0.57: the Gaussian process fails on some runs and its choice by a 5-fold score on ~50 rows is
noisy, so `auto` chooses between the forest and the ridge only ("gp" stays available by name). On the synthetic
league that costs nothing: predictor N-D hv@96 0.735, evolution's hv@96 reached after 24.6 evaluations (5 seeds;
with "gp" among the choices 0.740 and 24, 3 seeds).
Everything is seeded; nothing is pickled (a searcher refits from its told evaluations on resume).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from inas.errors import BadInputError
from inas.space import Arch, ArchEncoding, SearchSpace

FEATURE_KINDS = ("summary", "encoding", "both")
MODELS = ("forest", "boosting", "ridge", "gp", "auto")
DEFAULT_MODEL, DEFAULT_FEATURES = "forest", "summary"  # the predictor searcher's (and `analyze`'s) default
AUTO_MODELS = ("forest", "ridge")  # not "gp": see the module docstring
AUTO_MIN_SAMPLES = 10
AUTO_CHOICE_SAMPLES = 200  # the choice is made on the last 200 samples (a Gaussian process's fit is cubic in n)
GP_MAX_SAMPLES = 500  # a Gaussian process is fitted on the last 500 samples at most (seconds per fit beyond)


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
        for sources, (level_index, level) in zip(self._sources, (*enumerate(arch.transport),
                                                                 *enumerate(arch.decoder)), strict=True):
            out += [float(j in level.connections) for j in sources]
            finer = sum(j < level_index for j in level.connections)
            coarser = sum(j > level_index for j in level.connections)
            out += [finer, coarser, float(finer > 0), float(coarser > 0)]
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
                 n_estimators: int = 100, n_bags: int = 4, seed: int = 0) -> None:
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
        self.chosen_model = model  # the fitted model ("auto": the one it chose)

    def _fit_matrix(self, x: np.ndarray, y: np.ndarray) -> None:
        self.chosen_model = _choose(x, y, self.n_estimators, self.n_bags, self.seed) if self.model == "auto" \
            else self.model
        self._members = _fit_members(self.chosen_model, x, y, self.n_estimators, self.n_bags, self.seed)

    def _predict_matrix(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return _predict_members(self._members, x)

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
        """k-fold (shuffled, seeded) out-of-fold predictions and their quality; the fitted state is unchanged
        ("auto" chooses its model inside each fold, on that fold's training part: nested, not optimistic)."""
        y = np.asarray(metric, dtype=float)
        folds = min(folds, len(y))
        if folds < 2:
            raise ValueError(f"cross-validation needs >= 2 samples, got {len(y)}")
        x = self.features.matrix(archs)
        mean, std, tau = _out_of_fold(self.model, x, y, folds, self.n_estimators, self.n_bags, self.seed)
        error = np.abs(mean - y)
        return PredictorQuality(tau, float(error.mean()), float(np.mean(error <= std)), folds, len(y), mean, std)


def forest_regressor(n_estimators: int, seed: int):  # -> sklearn RandomForestRegressor (imported lazily)
    """The "forest" model's unfitted regressor: `n_estimators` fully grown trees, a third of the features per split."""
    from sklearn.ensemble import RandomForestRegressor

    return RandomForestRegressor(n_estimators=n_estimators, min_samples_leaf=1, max_features=1 / 3,
                                 random_state=seed, n_jobs=1)


def _fit_members(model: str, x: np.ndarray, y: np.ndarray, n_estimators: int, n_bags: int, seed: int) -> list:
    """The fitted members of `model` (an ensemble; "gp": one process) on x (n, features), y (n,)."""
    import warnings

    from sklearn.ensemble import GradientBoostingRegressor
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.gaussian_process import GaussianProcessRegressor
    from sklearn.gaussian_process.kernels import RBF, ConstantKernel, DotProduct, WhiteKernel
    from sklearn.linear_model import RidgeCV
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    if model == "forest":
        return list(forest_regressor(n_estimators, seed).fit(x, y).estimators_)
    if model == "gp":
        x, y = x[-GP_MAX_SAMPLES:], y[-GP_MAX_SAMPLES:]
        kernel = ConstantKernel() * RBF(float(np.sqrt(x.shape[1]))) + DotProduct() + WhiteKernel()
        gp = make_pipeline(StandardScaler(), GaussianProcessRegressor(kernel, normalize_y=True, random_state=seed))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            return [gp.fit(x, y)]
    rng = np.random.default_rng(seed)
    members = []
    for b in range(n_bags):
        rows = rng.integers(0, len(y), len(y))
        if model == "ridge":
            member = make_pipeline(StandardScaler(), RidgeCV(alphas=np.logspace(-2, 3, 12)))
        else:
            member = GradientBoostingRegressor(n_estimators=n_estimators, max_depth=3, learning_rate=0.05,
                                               subsample=0.8, random_state=seed + b)
        members.append(member.fit(x[rows], y[rows]))
    return members


def _is_gp(members: list) -> bool:
    """Whether fitted `members` are one Gaussian-process pipeline (not an ensemble)."""
    return len(members) == 1 and hasattr(members[0], "steps") and hasattr(members[0].steps[-1][1], "kernel_")


def _predict_members(members: list, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(mean, std), each (n,): over the ensemble's members, or a Gaussian process's posterior."""
    if _is_gp(members):
        mean, std = members[0].predict(x, return_std=True)
        return np.asarray(mean, dtype=float), np.asarray(std, dtype=float)
    each = np.stack([m.predict(x) for m in members])  # (members, n)
    return each.mean(axis=0), each.std(axis=0)


def _out_of_fold(model: str, x: np.ndarray, y: np.ndarray, folds: int, n_estimators: int, n_bags: int,
                 seed: int) -> tuple[np.ndarray, np.ndarray, float]:
    """k-fold (shuffled, seeded) out-of-fold (mean, std) of `model` and their Kendall tau against y."""
    from scipy.stats import kendalltau
    from sklearn.model_selection import KFold

    mean, std = np.empty(len(y)), np.empty(len(y))
    for train, test in KFold(folds, shuffle=True, random_state=seed).split(x):
        chosen = _choose(x[train], y[train], n_estimators, n_bags, seed) if model == "auto" else model
        members = _fit_members(chosen, x[train], y[train], n_estimators, n_bags, seed)
        mean[test], std[test] = _predict_members(members, x[test])
    tau = float(kendalltau(mean, y).statistic) if len(y) > 2 else float("nan")
    return mean, std, tau


def _choose(x: np.ndarray, y: np.ndarray, n_estimators: int, n_bags: int, seed: int) -> str:
    """The model of AUTO_MODELS with the best 5-fold out-of-fold Kendall tau on the last AUTO_CHOICE_SAMPLES rows
    of (x, y) (the first on ties or NaN; "forest" with fewer than AUTO_MIN_SAMPLES samples)."""
    if len(y) < AUTO_MIN_SAMPLES:
        return "forest"
    x, y = x[-AUTO_CHOICE_SAMPLES:], y[-AUTO_CHOICE_SAMPLES:]
    taus = {m: _out_of_fold(m, x, y, 5, n_estimators, n_bags, seed)[2] for m in AUTO_MODELS}
    return max(AUTO_MODELS, key=lambda m: (float(np.nan_to_num(taus[m], nan=-2.0)), -AUTO_MODELS.index(m)))

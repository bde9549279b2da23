"""Which regressor ranks a search's own evaluations best? Every model of `MODELS` out of fold on the first n
evaluations of each saved run of one league entry (`bench_search_league.py` writes them under
`--work`/league_runs/SPACE-HASH/ and prints the folder), on the predictor's features (`ArchFeatures`, summary): Kendall
tau per seed, mean over `--shuffles` shuffled k-fold splits. With a second pass in the folder (`second-pass.json`),
also the noise ceiling of each seed's archs (Kendall tau between the two passes) and every mean as a fraction of it.
CatBoost and LightGBM are measured when installed (`pip install catboost lightgbm`; not dependencies of inas).
Prints a table and appends one line to benchmarks/results.jsonl.

    python benchmarks/bench_predictor_models.py --runs runs/league_demo/league_runs/demo-938aa2b1
        [--searcher predictor] [--n 64] [--models forest svr extra_trees catboost]
        [--prior evolution optuna_nsga2 random --prior-n 32]   # warm-started: earlier searches' evaluations too
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.bench_predictor_curve import METRICS  # noqa: E402
from benchmarks.common import format_table, record_result  # noqa: E402
from benchmarks.league_runs import read_scores  # noqa: E402
from inas.search.surrogate import ArchFeatures, forest_regressor  # noqa: E402
from inas.space import arch_from_json, inas_space  # noqa: E402

Regressor = Any  # a scikit-learn style regressor: fit(x, y), predict(x)


def _forest(seed: int) -> Regressor:
    return forest_regressor(100, seed)  # the predictor searcher's default model and settings


def _extra_trees(seed: int) -> Regressor:
    from sklearn.ensemble import ExtraTreesRegressor

    return ExtraTreesRegressor(200, max_features=0.5, min_samples_leaf=2, random_state=seed, n_jobs=1)


def _svr(seed: int) -> Regressor:
    """DyNAS-T's model: an RBF support-vector regression on standardised features, C chosen by an inner 4-fold CV."""
    from sklearn.model_selection import GridSearchCV, KFold
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    from sklearn.svm import SVR

    return GridSearchCV(make_pipeline(StandardScaler(), SVR(gamma="scale", epsilon=0.002)),
                        {"svr__C": [0.01, 0.03, 0.1, 0.3, 1, 3]}, cv=KFold(4, shuffle=True, random_state=seed),
                        scoring="neg_mean_absolute_error")


def _knn(seed: int) -> Regressor:
    from sklearn.neighbors import KNeighborsRegressor
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    return make_pipeline(StandardScaler(), KNeighborsRegressor(5, weights="distance"))


def _catboost(seed: int) -> Regressor:
    from catboost import CatBoostRegressor

    return CatBoostRegressor(iterations=500, depth=4, learning_rate=0.03, random_seed=seed, verbose=False,
                             thread_count=1, allow_writing_files=False)  # else it logs into ./catboost_info


def _lightgbm(seed: int) -> Regressor:
    from lightgbm import LGBMRegressor

    return LGBMRegressor(n_estimators=300, learning_rate=0.03, num_leaves=8, min_child_samples=5, subsample=0.8,
                         subsample_freq=1, colsample_bytree=0.5, random_state=seed, verbose=-1, n_jobs=1)


MODELS: dict[str, Callable[[int], Regressor]] = {"forest": _forest, "extra_trees": _extra_trees, "svr": _svr,
                                                 "knn": _knn, "catboost": _catboost, "lightgbm": _lightgbm}
OPTIONAL = {"catboost": "catboost", "lightgbm": "lightgbm"}  # model -> the module it needs


def available(models: list[str]) -> list[str]:
    """`models` without those whose optional library is not installed (said on stderr)."""
    import importlib.util

    missing = [m for m in models if m in OPTIONAL and importlib.util.find_spec(OPTIONAL[m]) is None]
    for name in missing:
        print(f"skipping {name}: `pip install {OPTIONAL[name]}` to measure it", file=sys.stderr)
    return [m for m in models if m not in missing]


def out_of_fold_tau(model: str, x: np.ndarray, y: np.ndarray, shuffles: int, folds: int = 5,
                    prior: tuple[np.ndarray, np.ndarray] | None = None) -> float:
    """Kendall tau of `model`'s k-fold out-of-fold predictions against y, mean over `shuffles` seeded shufflings.
    `prior` (x (m, features), y (m,)): earlier evaluations added to every fold's training part (a warm start)."""
    from scipy.stats import kendalltau
    from sklearn.model_selection import KFold

    prior_x, prior_y = prior if prior is not None else (x[:0], y[:0])
    taus = []
    for shuffle in range(shuffles):
        predicted = np.empty(len(y))
        for train, test in KFold(folds, shuffle=True, random_state=shuffle).split(x):
            fitted = MODELS[model](shuffle).fit(np.vstack([x[train], prior_x]), np.concatenate([y[train], prior_y]))
            predicted[test] = fitted.predict(x[test])
        taus.append(float(kendalltau(predicted, y).statistic))
    return float(np.mean(taus))


def seed_runs(runs: Path, searcher: str, n: int) -> dict[int, pd.DataFrame]:
    """{seed: the first n rows of that seed's saved run of `searcher`} (one file per seed; the first n rows of a
    longer run are those of a shorter one)."""
    out: dict[int, pd.DataFrame] = {}
    for path in sorted(runs.glob(f"seed*-{searcher}-*.parquet")):
        frame = pd.read_parquet(path)
        if not {"seed", "arch", "arch_id"} <= set(frame.columns) or len(frame) < n \
                or not any(m in frame.columns for m in METRICS):
            sys.exit(f"error: {path}: expected columns seed, arch, arch_id, one of {list(METRICS)} and >= {n} rows")
        out.setdefault(int(frame["seed"].iloc[0]), frame.iloc[:n])
    if not out:
        sys.exit(f"error: {runs}: no seed*-{searcher}-*.parquet league runs (run benchmarks/bench_search_league.py)")
    return out


def prior_evaluations(prior_runs: dict[str, dict[int, pd.DataFrame]], seed: int, ranked_ids: set[str],
                      features: ArchFeatures, metric: str, runs: Path) -> tuple[np.ndarray, np.ndarray]:
    """`--prior`: the evaluations of each prior entry's run of `seed` (`prior_runs`: {entry: `seed_runs`}; earlier
    searches of the same supernet), without the archs being ranked; (x, y)."""
    missing = [name for name, by_seed in prior_runs.items() if seed not in by_seed]
    if missing:
        sys.exit(f"error: {runs}: no run of seed {seed} for --prior {', '.join(missing)}")
    prior = pd.concat([by_seed[seed] for by_seed in prior_runs.values()]).drop_duplicates("arch_id")
    prior = prior[~prior["arch_id"].isin(ranked_ids)]
    archs = [arch_from_json(a, features.space, str(runs)) for a in prior["arch"]]
    return features.matrix(archs), prior[metric].to_numpy(dtype=float)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=Path, required=True, help="a league's runs folder (the league prints it)")
    parser.add_argument("--searcher", default="predictor", help="the league entry whose runs are ranked")
    parser.add_argument("--n", type=int, default=64, help="first n evaluations of each run")
    parser.add_argument("--shuffles", type=int, default=3, help="shuffled 5-fold splits per seed")
    parser.add_argument("--models", nargs="+", default=list(MODELS), choices=list(MODELS))
    parser.add_argument("--prior", nargs="+", default=[], metavar="SEARCHER",
                        help="warm start: the first --prior-n evaluations of these entries' runs of the same seed join "
                        "every training fold (not ranked)")
    parser.add_argument("--prior-n", type=int, default=32, help="evaluations taken from each --prior entry's run")
    parser.add_argument("--no-record", action="store_true", help="do not append to benchmarks/results.jsonl")
    args = parser.parse_args()
    from scipy.stats import kendalltau

    models = available(args.models)
    space, second = inas_space(), read_scores(args.runs / "second-pass.json")
    features = ArchFeatures(space)
    prior_runs = {name: seed_runs(args.runs, name, args.prior_n) for name in args.prior}  # read once, not per seed
    taus: dict[str, dict[int, float]] = {m: {} for m in models}
    ceilings: dict[int, float] = {}
    for seed, frame in seed_runs(args.runs, args.searcher, args.n).items():
        metric = next(m for m in METRICS if m in frame.columns)
        x = features.matrix([arch_from_json(a, space, str(args.runs)) for a in frame["arch"]])
        y = frame[metric].to_numpy(dtype=float)
        if all(a in second for a in frame["arch_id"]):
            ceilings[seed] = float(kendalltau(y, [second[a] for a in frame["arch_id"]]).statistic)
        prior = prior_evaluations(prior_runs, seed, set(frame["arch_id"]), features, metric,
                                  args.runs) if prior_runs else None
        for model in models:
            taus[model][seed] = out_of_fold_tau(model, x, y, args.shuffles, prior=prior)
        print(f"seed {seed}: " + ", ".join(f"{m} {taus[m][seed]:.3f}" for m in models), flush=True)
    seeds = sorted(next(iter(taus.values())))
    ceiling = float(np.mean(list(ceilings.values()))) if len(ceilings) == len(seeds) else None
    rows = [{"model": m, "mean tau": f"{np.mean(list(taus[m].values())):.3f}",
             **({"x same-archs ceiling": f"{np.mean(list(taus[m].values())) / ceiling:.2f}"} if ceiling else {}),
             **{f"seed {s}": f"{taus[m][s]:.3f}" for s in seeds}} for m in models]
    print(f"\nKendall tau out of fold (5-fold, {args.shuffles} shuffles) on the first {args.n} evaluations of "
          f"{args.searcher} per seed ({args.runs})"
          + (f", warm-started with the first {args.prior_n} of {', '.join(args.prior)}" if args.prior else "")
          + (f"; noise ceiling of those archs {ceiling:.3f}" if ceiling else ""))
    print(format_table(rows, list(rows[0])))
    if not args.no_record:
        record_result("predictor_models", {
            "runs": str(args.runs), "searcher": args.searcher, "evaluations": args.n, "shuffles": args.shuffles,
            **({"prior": args.prior, "prior_evaluations": args.prior_n} if args.prior else {}),
            "same_archs_noise_ceiling": None if ceiling is None else round(ceiling, 4),
            "kendall_tau": {m: round(float(np.mean(list(taus[m].values()))), 4) for m in models},
            "kendall_tau_per_seed": {m: {str(s): round(t, 4) for s, t in taus[m].items()} for m in models}})


if __name__ == "__main__":
    main()

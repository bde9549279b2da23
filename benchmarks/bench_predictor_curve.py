"""How much does the accuracy predictor gain from more evaluations? Its learning curve on a searcher league's scored
architectures: every distinct arch of the league's runs (`bench_search_league.py` writes them under
`--work`/league_runs/SPACE-HASH/, one folder per evaluation setting and assets, and prints it), a fixed held-out set
of them, and each model fitted on n of the others (n = 32 ... the pool), Kendall tau of its predictions on the
held-out set; mean and min-max over `--repeats` random splits. Says whether a predictor's tau after 64 evaluations is
limited by the samples (tau climbs with n) or by what the features can say (tau flat). When the league measured a
second pass (`second-pass.json` in the folder: archs scored again with another BN-recalibration subset), the held-out
archs are drawn from those and the noise ceiling on them (Kendall tau between the two passes) is printed with every
tau as a fraction of it: the predictor judged against the noise of the very archs it ranks. Prints a table and appends
one line to benchmarks/results.jsonl.

    python benchmarks/bench_predictor_curve.py --runs runs/league_demo/league_runs/demo-8577f082
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.common import format_table, record_result  # noqa: E402
from benchmarks.league_runs import read_scores  # noqa: E402
from inas.search.predictor_quality import first_scored_rows  # noqa: E402
from inas.search.schema import TASK_METRICS, primary_metric  # noqa: E402
from inas.search.surrogate import AccuracyPredictor  # noqa: E402
from inas.space import arch_from_json, inas_space  # noqa: E402

METRICS = tuple(primary_metric(task) for task in TASK_METRICS)


def scored_archs(runs: Path) -> pd.DataFrame:
    """The distinct archs (first row of each arch_id) of every `seed*.parquet` under `runs`, with a finite metric."""
    files = sorted(runs.glob("seed*.parquet"))
    if not files:
        sys.exit(f"error: {runs}: no seed*.parquet league runs (run benchmarks/bench_search_league.py first)")
    frame = pd.concat([pd.read_parquet(f) for f in files], ignore_index=True)
    metric = next((m for m in METRICS if m in frame.columns), None)
    if metric is None or "arch" not in frame.columns:
        sys.exit(f"error: {files[0]}: expected columns 'arch' and one of {list(METRICS)}")
    rows = first_scored_rows(frame, metric).rename(columns={metric: "metric"})
    return rows[["arch_id", "arch", "metric"]].reset_index(drop=True)


def split(pool: pd.DataFrame, second: dict[str, float], test: int, repeat: int) -> tuple[np.ndarray, np.ndarray]:
    """(held-out rows, the other rows) of a seeded random split; held-out rows have a second-pass score when at least
    `test` archs have one."""
    order = np.random.default_rng(repeat).permutation(len(pool))
    has_second = pool["arch_id"].isin(list(second)).to_numpy()[order]
    if has_second.sum() < test:
        return order[:test], order[test:]
    held_out = order[has_second][:test]
    return held_out, order[~np.isin(order, held_out)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=Path, required=True,
                        help="a league's runs folder (seed*-SEARCHER-N-SETTINGS.parquet; the league prints it)")
    parser.add_argument("--sizes", type=int, nargs="+", default=[32, 64, 128, 256, 512, 1024, 2048])
    parser.add_argument("--test", type=int, default=500, help="held-out archs per split")
    parser.add_argument("--repeats", type=int, default=3, help="random splits")
    parser.add_argument("--models", nargs="+", default=["forest", "ridge", "boosting", "auto"])
    parser.add_argument("--no-record", action="store_true", help="do not append to benchmarks/results.jsonl")
    args = parser.parse_args()
    from scipy.stats import kendalltau

    pool = scored_archs(args.runs)
    space = inas_space()
    archs = [arch_from_json(text, space, str(args.runs)) for text in pool["arch"]]
    y = pool["metric"].to_numpy(dtype=float)
    second = read_scores(args.runs / "second-pass.json")
    sizes = [n for n in args.sizes if n + args.test <= len(pool)]
    taus: dict[tuple[str, int], list[float]] = {}
    ceilings: list[float] = []
    for repeat in range(args.repeats):
        test, rest = split(pool, second, args.test, repeat)
        if all(pool["arch_id"][i] in second for i in test):
            again = [second[pool["arch_id"][i]] for i in test]
            ceilings.append(float(kendalltau(y[test], again).statistic))
            print(f"split {repeat}: noise ceiling on the held-out archs {ceilings[-1]:.3f}", flush=True)
        for n in sizes:
            train = rest[:n]
            for model in args.models:
                predictor = AccuracyPredictor(space, model=model, seed=repeat)
                predictor.fit([archs[i] for i in train], y[train])
                mean, _ = predictor.predict([archs[i] for i in test])
                taus.setdefault((model, n), []).append(float(kendalltau(mean, y[test]).statistic))
            print(f"split {repeat}, n {n}: " + ", ".join(f"{m} {taus[(m, n)][-1]:.3f}" for m in args.models),
                  flush=True)
    rows = [{"model": m, **{f"n={n}": f"{np.mean(taus[(m, n)]):.3f} ({min(taus[(m, n)]):.2f}-"
                                      f"{max(taus[(m, n)]):.2f})" for n in sizes}} for m in args.models]
    print(f"\nKendall tau on {args.test} held-out archs of {len(pool)} ({args.runs}), mean (min-max) over "
          f"{args.repeats} splits")
    print(format_table(rows, ["model"] + [f"n={n}" for n in sizes]))
    ceiling = float(np.mean(ceilings)) if len(ceilings) == args.repeats else None
    if ceiling is not None:
        print(f"\nnoise ceiling on the held-out archs (their score against a second pass with another BN-recalibration "
              f"subset): Kendall tau {ceiling:.3f}; each model's mean tau as a fraction of it:")
        print(format_table([{"model": m, **{f"n={n}": f"{np.mean(taus[(m, n)]) / ceiling:.3f}" for n in sizes}}
                            for m in args.models], ["model"] + [f"n={n}" for n in sizes]))
    if not args.no_record:
        record_result("predictor_curve", {
            "runs": str(args.runs), "pool": len(pool), "test": args.test, "repeats": args.repeats,
            "noise_ceiling_held_out": None if ceiling is None else round(ceiling, 4),
            "kendall_tau": {m: {str(n): round(float(np.mean(taus[(m, n)])), 4) for n in sizes} for m in args.models},
            "kendall_tau_min_max": {m: {str(n): [round(min(taus[(m, n)]), 4), round(max(taus[(m, n)]), 4)]
                                        for n in sizes} for m in args.models}})


if __name__ == "__main__":
    main()

"""Is the accuracy predictor limited by the evaluation's noise or by its model? The same archs re-scored with more
BN-recalibration batches: a searcher's league runs (their first --evaluations archs per seed) and the league's
noise-ceiling archs, each evaluated with `--bn-batches` batches under two BN seeds (the config seed and the next).
For the league's own scores (the config's batches: first pass in the saved runs, second pass in `second-pass.json`)
and for the re-scored ones, prints the noise ceiling on the spread archs, the same-archs ceiling on the searcher's
archs, and the forest's Kendall tau out of fold (5-fold) on those archs and held out on the noise-ceiling archs.
If less noisy labels lift the ceilings but not the predictor, the predictor is model-limited.

Scores are cached (`rescored-seed{S}.json`) in the folder of their evaluation's identity under --work, as the
league's own runs are (the config's second pass goes to the league's `second-pass.json`), so a killed run continues;
do not run it beside a league on the same --work (both write `second-pass.json`). Appends one line to
benchmarks/results.jsonl (unless --no-record).

    python benchmarks/bench_eval_noise.py --config runs/demo/config.yaml --work runs/league_demo --bn-batches 16
    python benchmarks/bench_eval_noise.py ... --searcher pm20 \
        --variant 'pm20=predictor:{"initial_size": 8, "batch_size": 4, "mutation_prob": 0.2}'   # a variant's runs
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path
from typing import Any

from tqdm import tqdm

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.bench_search_league import league_document  # noqa: E402
from benchmarks.common import record_result  # noqa: E402
from benchmarks.league_runs import (  # noqa: E402
    LEAGUE,
    League,
    evaluation_identity,
    make_evaluator,
    noise_archs,
    parse_variant,
    read_scores,
    runs_folder,
    saved_run,
    saved_run_path,
)
from inas.config import ExperimentConfig, parse_config  # noqa: E402
from inas.io import atomic_write_json  # noqa: E402
from inas.search.schema import primary_metric  # noqa: E402
from inas.search.surrogate import AccuracyPredictor  # noqa: E402
from inas.space import Arch, arch_from_json  # noqa: E402


def rescore(config: ExperimentConfig, archs: list[Arch], bn_seed: int, cache: Path) -> dict[str, float]:
    """Every arch's metric under the config's evaluation with the BN subset of `bn_seed`, cached in `cache`."""
    scores = read_scores(cache)
    todo = [a for a in archs if a.arch_id not in scores]
    if todo:
        evaluator = make_evaluator(config, None, bn_seed=bn_seed)
        metric = primary_metric(config.task)
        for arch in tqdm(todo, desc=f"BN seed {bn_seed}", unit="arch"):
            scores[arch.arch_id] = float(evaluator.evaluate(arch)[metric])
            atomic_write_json(cache, scores)
    return scores


def tau(a: list[float], b: list[float]) -> float:
    from scipy.stats import kendalltau

    return float(kendalltau(a, b).statistic)


def quality(runs: list[list[Arch]], noise: list[Arch], first: dict[str, float], second: dict[str, float],
            league: League) -> dict[str, Any]:
    """Ceilings and the forest's taus for one pair of score passes (first = the one the predictor learns)."""
    held_ids = {a.arch_id for a in noise}
    oof, same, held = [], [], []
    for archs in runs:
        y = [first[a.arch_id] for a in archs]
        oof.append(AccuracyPredictor(league.space, model="forest").cross_validate(archs, y).kendall_tau)
        same.append(tau(y, [second[a.arch_id] for a in archs]))
        train = [a for a in archs if a.arch_id not in held_ids]
        predictor = AccuracyPredictor(league.space, model="forest").fit(train, [first[a.arch_id] for a in train])
        held.append(tau(list(predictor.predict(noise)[0]), [first[a.arch_id] for a in noise]))
    ceiling = tau([first[a.arch_id] for a in noise], [second[a.arch_id] for a in noise])
    mean = statistics.mean
    return {"noise_ceiling": round(ceiling, 4), "same_archs_ceiling": round(mean(same), 4),
            "oof_tau": round(mean(oof), 4), "oof_tau_per_seed": [round(t, 4) for t in oof],
            "oof_ratio_to_noise_ceiling": round(mean(oof) / ceiling, 3),
            "oof_ratio_to_same_archs_ceiling": round(mean(oof) / mean(same), 3),
            "held_out_tau": round(mean(held), 4), "held_out_ratio_to_noise_ceiling": round(mean(held) / ceiling, 3)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", default="experiments/sod_demo.yaml", help="the league's config")
    parser.add_argument("--work", default="runs/league", help="the league's --work (its runs are read there)")
    parser.add_argument("--space", choices=("demo", "wide"), default="demo")
    parser.add_argument("--searcher", default="predictor", help="whose runs are re-scored: a league entry or --variant")
    parser.add_argument("--variant", type=parse_variant, action="append", default=[],
                        help="NAME=KIND:JSON, a league --variant whose saved runs --searcher may name")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    parser.add_argument("--budget", type=int, default=96, help="the league runs' budget (its last checkpoint)")
    parser.add_argument("--evaluations", type=int, default=64, help="first N archs of each run")
    parser.add_argument("--noise-archs", type=int, default=30)
    parser.add_argument("--bn-batches", type=int, default=16, help="BN-recalibration batches of the re-scoring")
    parser.add_argument("--no-record", action="store_true", help="do not append to benchmarks/results.jsonl")
    args = parser.parse_args()
    LEAGUE.update(dict(args.variant))
    if args.searcher not in LEAGUE:
        parser.error(f"--searcher {args.searcher!r}: expected one of {list(LEAGUE)} (or a --variant's name)")
    start = time.perf_counter()
    work = Path(args.work).resolve()

    def setup(bn_batches: int | None) -> tuple[ExperimentConfig, Path]:
        doc, build = league_document(Path(args.config), work, args.space, False, None, None, bn_batches)
        if build:
            sys.exit(f"error: {args.config}: the league's supernet or tables are missing; run the league first")
        config = parse_config({k: v for k, v in doc.items() if not k.startswith("league_")}, args.config)
        return config, runs_folder(work, evaluation_identity(config, args.space, None))

    base, base_runs = setup(None)
    config, out = setup(args.bn_batches)
    league = League.from_config(base, None)
    frames = []
    for seed in args.seeds:
        path = saved_run_path(base_runs, args.searcher, args.budget, seed)
        frame = saved_run(path, league, args.budget) if path.is_file() else None
        if frame is None or len(frame) < args.evaluations:
            sys.exit(f"error: {path}: no complete league run of {args.searcher!r} with seed {seed} and budget "
                     f"{args.budget} (run bench_search_league.py with these settings first)")
        frames.append(frame)
    runs = [[arch_from_json(a, league.space) for a in frame["arch"].iloc[:args.evaluations]] for frame in frames]
    noise = noise_archs(league, args.noise_archs)
    league_first = {aid: float(v) for frame in frames for aid, v in zip(frame["arch_id"], frame[league.metric],
                                                                         strict=True)}
    league_second = read_scores(base_runs / "second-pass.json")
    every = list({a.arch_id: a for a in [*noise, *[a for run in runs for a in run]]}.values())
    missing = [a for a in every if a.arch_id not in league_first]  # noise archs no run asked for
    league_first.update(rescore(base, missing, base.seed, base_runs / f"rescored-seed{base.seed}.json"))
    league_second.update(rescore(base, every, base.seed + 1, base_runs / "second-pass.json"))
    first = rescore(config, every, config.seed, out / f"rescored-seed{config.seed}.json")
    second = rescore(config, every, config.seed + 1, out / f"rescored-seed{config.seed + 1}.json")
    rows = {f"bn_batches_{base.search.bn_recalibration_batches}": quality(runs, noise, league_first, league_second,
                                                                          league),
            f"bn_batches_{args.bn_batches}": quality(runs, noise, first, second, league)}
    for label, row in rows.items():
        print(f"{label}: " + ", ".join(f"{k} {v}" for k, v in row.items()), flush=True)
    print(f"league labels against re-scored labels: Kendall tau "
          f"{tau([league_first[a.arch_id] for a in every], [first[a.arch_id] for a in every]):.4f} "
          f"over {len(every)} archs")
    if not args.no_record:
        record_result("eval_noise", {"settings": {"config": args.config, "space": args.space, "runs": str(base_runs),
                                                  "searcher": args.searcher, "evaluations": args.evaluations,
                                                  "seeds": args.seeds, "archs": len(every)},
                                     **rows, "seconds": round(time.perf_counter() - start, 1)})


if __name__ == "__main__":
    main()

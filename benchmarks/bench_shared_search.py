"""Does sharing evaluations between the searchers of one run help (`search.share_evaluations`)? On a league's
supernet and tables (`bench_search_league.py`: same scorer, same saved runs), the predictor-guided searcher runs
again while being told (`Searcher.warm_start`, mid-run) the first t evaluations of each partner searcher's saved run
of the same seed whenever it has told t of its own: the lockstep in which the driver's round robin runs searchers of
equal budgets side by side. Compared with its plain run (no sharing), at each checkpoint t:

- the run's front: N-D and 2-D hypervolume of the union of the partners' first t and the predictor's first t
  evaluations (what the user of a multi-searcher `search` gets), and
- the predictor's own front (its first t evaluations).

With `--warm-start-n N` the partners' first N evaluations are given before the first ask instead (`search
--warm-start` on an earlier run of those searchers; the union is then their first N and the predictor's first t).

Hypervolumes are normalised as in the league (one reference over every row). The shared runs are saved beside the
league's (`seed<S>-predictor_shared-<partners>-<budget>-<hash>.parquet`, `predictor_warm<N>-...` with a warm start)
and reused. Prints a table and appends one line to benchmarks/results.jsonl (unless --no-record).

    python benchmarks/bench_shared_search.py --config runs/demo/config.yaml --work runs/league_demo \\
        [--seeds 0 1 2 3 4] [--partners evolution optuna_nsga2] [--checkpoints 16 32 64] [--warm-start-n 32]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.bench_search_league import supernet_league  # noqa: E402
from benchmarks.common import format_table, record_result  # noqa: E402
from benchmarks.league_figures import mean_se, objectives_of, reference_box  # noqa: E402
from benchmarks.league_runs import LEAGUE, RUN_COLUMNS, League, resolved_params, saved_run  # noqa: E402
from inas.io import atomic_write_parquet  # noqa: E402
from inas.search.pareto import hypervolume  # noqa: E402
from inas.search.searchers import Record, build_searcher  # noqa: E402
from inas.search.warm_start import device_record  # noqa: E402
from inas.space import arch_from_json  # noqa: E402

LEAGUE_BUDGET = 96  # the budget of the league's saved runs (their file names carry it)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="experiments/sod_demo.yaml", help="the league's config")
    parser.add_argument("--work", default="runs/league", help="the league's --work folder")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    parser.add_argument("--partners", nargs="+", default=["evolution", "optuna_nsga2"], choices=list(LEAGUE),
                        help="league entries whose evaluations are shared with the predictor")
    parser.add_argument("--checkpoints", type=int, nargs="+", default=[16, 32, 64])
    parser.add_argument("--warm-start-n", type=int, default=0,
                        help="give each partner's first N evaluations before the first ask (0: share in lockstep)")
    parser.add_argument("--threads", type=int, default=2, help="torch intra-op threads of the evaluator")
    parser.add_argument("--no-record", action="store_true", help="do not append to benchmarks/results.jsonl")
    parser.set_defaults(space="demo", quick=False, train_iterations=None, val_images=None, bn_batches=None)
    args = parser.parse_args()
    if not 1 <= min(args.checkpoints) <= max(args.checkpoints) <= LEAGUE_BUDGET:
        parser.error(f"--checkpoints: between 1 and {LEAGUE_BUDGET} (the league's saved runs), got {args.checkpoints}")
    if args.warm_start_n < 0:
        parser.error(f"--warm-start-n: must be >= 0, got {args.warm_start_n}")
    return args


def partner_records(league: League, frame: pd.DataFrame) -> list[Record]:
    """A saved run's rows as searcher records, in the order they were told (metric, primary and per-device ms)."""
    return [device_record(arch_from_json(row["arch"], league.space), float(row[league.metric]), row, league.device_fns)
            for row in frame.to_dict("records")]


def run_shared(league: League, seed: int, budget: int, partners: dict[str, list[Record]],
               warm_start_n: int) -> pd.DataFrame:
    """The league's predictor entry, told each partner's first k records before every ask (k: its own told count),
    or with `warm_start_n` > 0 each partner's first `warm_start_n` before the first."""
    kind, params = LEAGUE["predictor"]
    primary = next(iter(league.device_fns.values()))
    searcher = build_searcher(kind, league.space, primary, budget, seed, metric=league.metric,
                              device_latency_fns=league.device_fns, **params)
    rows = []
    searcher.warm_start(r for records in partners.values() for r in records[:warm_start_n])
    while not searcher.is_finished():
        if not warm_start_n:
            searcher.warm_start(r for records in partners.values() for r in records[:searcher.num_told])
        arch = searcher.ask()
        if arch is None:
            break
        result = league.result(arch)
        rows.append({"arch_id": arch.arch_id, "arch": arch.to_json(), **result})
        searcher.tell(arch, result)
    return pd.DataFrame(rows).assign(searcher="predictor_shared", seed=seed,
                                     evaluation=lambda f: np.arange(1, len(f) + 1))


def shared_run_path(runs_dir: Path, seed: int, partners: list[str], budget: int, warm_start_n: int) -> Path:
    kind, params = LEAGUE["predictor"]
    settings = json.dumps([kind, resolved_params(kind, params), sorted(partners)], sort_keys=True)
    digest = hashlib.sha256(settings.encode()).hexdigest()[:8]
    mode = f"warm{warm_start_n}" if warm_start_n else "shared"
    return runs_dir / f"seed{seed}-predictor_{mode}-{'+'.join(partners)}-{budget}-{digest}.parquet"


def saved_shared_run(league: League, runs_dir: Path, seed: int, budget: int,
                     partners: dict[str, list[Record]], warm_start_n: int) -> pd.DataFrame:
    path = shared_run_path(runs_dir, seed, list(partners), budget, warm_start_n)
    frame = saved_run(path, league, budget) if path.is_file() else None
    if frame is None or len(frame) != budget:
        frame = run_shared(league, seed, budget, partners, warm_start_n)
        atomic_write_parquet(path, frame)
    return frame


def front_table(runs: dict[int, dict[str, pd.DataFrame]], league: League, checkpoints: list[int],
                warm_start_n: int) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Rows per (view, t): hypervolume of the union and of the predictor's own front, plain and shared."""
    every = pd.concat([f for by_name in runs.values() for f in by_name.values()], ignore_index=True)
    rows, raw = [], {}
    for view, objectives in objectives_of(league.columns, league.metric).items():
        reference, box = reference_box(every, objectives)
        for t in checkpoints:
            values: dict[str, list[float]] = {k: [] for k in ("union_plain", "union_shared", "own_plain",
                                                              "own_shared")}
            for by_name in runs.values():
                partners = [f.iloc[:warm_start_n or t] for name, f in by_name.items()
                            if name not in ("plain", "shared")]
                for kind in ("plain", "shared"):
                    own = by_name[kind].iloc[:t]
                    union = pd.concat([*partners, own])
                    values[f"union_{kind}"].append(hypervolume(union, objectives, reference) / box)
                    values[f"own_{kind}"].append(hypervolume(own, objectives, reference) / box)
            wins = sum(s > p for s, p in zip(values["union_shared"], values["union_plain"], strict=True))
            rows.append({"view": view, "t": t, **{k: mean_se(v) for k, v in values.items()},
                         "union wins": f"{wins}/{len(runs)}"})
            raw[f"{view}@{t}"] = {k: [round(x, 5) for x in v] for k, v in values.items()}
    return rows, raw


def main() -> None:
    args = parse_args()
    logging.basicConfig(level=logging.WARNING)
    import torch

    torch.set_num_threads(args.threads)
    start = time.perf_counter()
    checkpoints = sorted(set(args.checkpoints))
    budget = checkpoints[-1]
    league, settings, runs_dir, _ = supernet_league(args, checkpoints)
    league.load_scores(runs_dir / "first-pass.json")
    print(f"runs under {runs_dir}", flush=True)
    runs: dict[int, dict[str, pd.DataFrame]] = {}
    for seed in args.seeds:
        t0 = time.perf_counter()
        by_name = {name: league.run_saved(name, LEAGUE_BUDGET, seed, runs_dir) for name in args.partners}
        records = {name: partner_records(league, frame.iloc[:max(budget, args.warm_start_n)])
                   for name, frame in by_name.items()}
        by_name["plain"] = league.run_saved("predictor", LEAGUE_BUDGET, seed, runs_dir)
        by_name["shared"] = saved_shared_run(league, runs_dir, seed, budget, records, args.warm_start_n)
        runs[seed] = {k: v.drop(columns=[c for c in RUN_COLUMNS if c != "arch_id"]) for k, v in by_name.items()}
        print(f"seed {seed}: {time.perf_counter() - t0:.1f} s", flush=True)
    league.save_scores(runs_dir / "first-pass.json")
    rows, raw = front_table(runs, league, checkpoints, args.warm_start_n)
    columns = ["view", "t", "union_plain", "union_shared", "union wins", "own_plain", "own_shared"]
    mode = f"first {args.warm_start_n} of each given first" if args.warm_start_n else "shared in lockstep"
    print(f"\nhypervolume after t evaluations of each searcher (partners: {', '.join(args.partners)}, {mode}; "
          f"{len(args.seeds)} seeds, mean ± se)\n" + format_table(rows, columns))
    shared_stats = statistics.mean(len(f) for f in (r["shared"] for r in runs.values()))
    record = {"settings": {**settings, "partners": args.partners, "warm_start_n": args.warm_start_n,
                          "shared_run_length": shared_stats},
              "rows": rows, "per_seed": raw, "seconds": round(time.perf_counter() - start, 1)}
    if not args.no_record:
        record_result("shared_search", record)


if __name__ == "__main__":
    main()

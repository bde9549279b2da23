"""The searcher league: every searcher at EQUAL budget on one supernet and its latency tables, several seeds;
hypervolume (2-D on the primary device and N-D over every device) mean +- standard error at each checkpoint, the
evaluations each needs to reach random's and evolution's final hypervolume, how much of the latency range its front
covers, and the accuracy predictor's quality against the noise ceiling: out of fold on its own evaluations, and on
the noise ceiling's own archs (fitted on its first 64 evaluations, it ranks the archs the ceiling was measured on).

0. Assets: the config's supernet checkpoint and latency tables are used when present; otherwise they are built into
   --work with the pipeline's own verbs (`data synth`, `train`, `lut`) on the config (--train-iterations, --quick for
   a smoke version). `--space wide` replaces the config's space with every width and depth choice of iNAS (kernels
   {3, 5}), to be trained and tabled into --work: a space whose networks spread much more in latency than the demo's.
1. Noise ceiling first: --noise-archs archs (spread over latency groups) evaluated twice with two different seeded
   BN-recalibration subsets; Kendall tau between the two passes. A predictor cannot rank archs better than the
   evaluation itself does.
2. League: for each seed, every searcher (evolution+LGS, nevergrad NGOpt, optuna nsga2, optuna tpe, predictor,
   random) asks and is told in-process (`run_searcher`) up to the largest checkpoint. Every searcher and seed shares
   ONE accuracy evaluator (fixed BN subset, the config seed) and one cache of scores by arch id, so an arch is
   scored once and identically for everyone; searchers differ only in what they ask. Each is told the metric and
   every device's LUT latency (`latency_ms__<device>`).
3. Hypervolume after the first n evaluations of each searcher (in the order told) with one reference point for all
   runs: per latency column the largest latency observed in the league, metric = the lowest observed; normalised
   by the box between that reference and the best observed values (1 would be one point at the ideal corner).

Prints Markdown tables and appends one JSON line to benchmarks/results.jsonl (unless --no-record). Every run, the
scores (`first-pass.json`), the second pass and the noise ceiling are saved under --work/league_runs/SPACE-HASH/ and
reused by a later call; HASH is of the evaluation's identity (space, BN batches and seed, validation images, the
supernet's and tables' content, written there as evaluation.json), so other settings or rebuilt assets never reuse
another evaluation's scores.

    python benchmarks/bench_search_league.py [--config experiments/sod_demo.yaml] [--seeds 0 1 2 3 4]
        [--checkpoints 16 32 64 96] [--val-images 30 --bn-batches 4] [--space demo|wide] [--work runs/league]
    python benchmarks/bench_search_league.py --quick --seeds 0 1 --checkpoints 4 8   # a smoke run, minutes
    python benchmarks/bench_search_league.py --synthetic     # the searchers alone, on inas.search.testing's problem
    python benchmarks/bench_search_league.py --searchers evolution predictor \
        --variant 'predictor_b2=predictor:{"initial_size": 16, "batch_size": 2}'   # a searcher's settings compared
"""

from __future__ import annotations

import argparse
import copy
import logging
import os
import sys
import time
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.common import record_result  # noqa: E402
from inas.config import parse_config  # noqa: E402
from inas.io import atomic_write_json  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
from benchmarks.league_figures import league_tables, predictor_records, print_tables  # noqa: E402
from benchmarks.league_runs import (  # noqa: E402
    LEAGUE,
    League,
    SecondPass,
    evaluation_identity,
    make_evaluator,
    noise_ceiling,
    parse_variant,
    runs_folder,
    saved_noise_ceiling,
)

QUICK = {"synth": ["--n-train", "24", "--n-test", "8"], "train": {"iterations": 20, "warmup_iterations": 4,
         "checkpoint_every": 10, "log_every": 5, "validate_every": 20, "val_images": 8, "bn_recalibration_batches": 1,
         "validate_at_start": False}, "lut": {"warmup_runs": 1, "runs": 3}}


# ----- assets ------------------------------------------------------------------------------------------------------
def wide_space() -> dict[str, Any]:
    """Every width and depth choice of iNAS, kernels {3, 5}: the space section of `--space wide`."""
    from inas.space import inas_space

    full = inas_space()
    stages = {s.name: {"kernels": [3, 5]} for s in full.stages if s.block != "conv" and len(s.kernels) > 1}
    levels = {f"level_{i}": {"kernels": [3, 5]} for i in range(5)}
    return {"stages": stages, "transport": levels, "decoder": {k: dict(v) for k, v in levels.items()}}


def league_document(config_path: Path, work: Path, space: str, quick: bool, iterations: int | None,
                    val_images: int | None, bn_batches: int | None) -> tuple[dict[str, Any], bool]:
    """The config with the benchmark's settings, and whether its assets must be built into `work`."""
    doc = yaml.safe_load(config_path.read_text(encoding="utf-8"))
    config = parse_config(copy.deepcopy(doc), str(config_path))
    doc.setdefault("data", {})["root"] = str(Path(config.data.root).resolve())
    search = doc.setdefault("search", {})
    supernet = Path(search.get("supernet") or "").resolve() if search.get("supernet") else None
    lut_dir = Path(search.get("lut_dir") or config.lut.out_dir).resolve()
    build = space == "wide" or quick or supernet is None or not supernet.is_file() or not all(
        (lut_dir / f"{d.name}.parquet").is_file() for d in config.lut.devices)
    if space == "wide":
        doc["space"] = wide_space()
    if build:
        doc["data"]["root"] = str(work / "data")
        doc.setdefault("train", {})["out_dir"] = str(work / "train")
        doc.setdefault("lut", {})["out_dir"] = str(work / "lut")
        supernet, lut_dir = work / "train" / "supernet.pt", work / "lut"
        if quick:
            doc["train"].update(QUICK["train"])
            doc["lut"].update(QUICK["lut"])
        if iterations is not None:
            doc["train"]["iterations"] = iterations
    search["supernet"], search["lut_dir"] = str(supernet), str(lut_dir)
    if bn_batches is not None:
        search["bn_recalibration_batches"] = bn_batches
    if val_images is not None:
        doc["league_val_images"] = val_images
    return doc, build


def build_assets(doc: dict[str, Any], work: Path, quick: bool) -> None:
    """data synth (if the data root is missing), train, lut: the pipeline's verbs on the benchmark config."""
    from inas.run import main as run_verb

    work.mkdir(parents=True, exist_ok=True)
    config_file = work / "config.yaml"
    config_file.write_text(yaml.safe_dump({k: v for k, v in doc.items() if not k.startswith("league_")},
                                          sort_keys=False), encoding="utf-8")
    steps = []
    if not Path(doc["data"]["root"]).is_dir():
        size = str(doc["data"].get("image_size", 128))
        steps.append(["data", "synth", "--task", doc.get("task", "sod"), "--out", doc["data"]["root"], "--size", size,
                      *(QUICK["synth"] if quick else [])])
    if not Path(doc["search"]["supernet"]).is_file():
        steps.append(["train", "-c", str(config_file)])
    steps.append(["lut", "-c", str(config_file)])  # completes missing blocks only
    for argv in steps:
        print(f"assets: python -m inas.run {' '.join(argv)}", flush=True)
        if run_verb(argv) != 0:
            raise SystemExit(f"building the league's assets failed at `{' '.join(argv)}`")


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="experiments/sod_demo.yaml", help="config with data, train, lut, search")
    parser.add_argument("--work", default="runs/league", help="folder for built assets (supernet, tables, data)")
    parser.add_argument("--space", choices=("demo", "wide"), default="demo", help="the config's space or the wide one")
    parser.add_argument("--quick", action="store_true", help="smoke-size assets (build into --work)")
    parser.add_argument("--train-iterations", type=int, default=None, help="training iterations of built assets")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    parser.add_argument("--checkpoints", type=int, nargs="+", default=[16, 32, 64, 96])
    parser.add_argument("--searchers", nargs="+", default=list(LEAGUE), choices=list(LEAGUE))
    parser.add_argument("--variant", type=parse_variant, action="append", default=[],
                        help="extra entry NAME=KIND:JSON (e.g. 'predictor_b2=predictor:{\"batch_size\": 2}'); "
                             "repeatable, run after --searchers")
    parser.add_argument("--noise-archs", type=int, default=30)
    parser.add_argument("--predictor-at", type=int, default=64,
                        help="judge the accuracy predictor after this many evaluations (at most the last checkpoint)")
    parser.add_argument("--val-images", type=int, default=None, help="first N validation images (default: all)")
    parser.add_argument("--bn-batches", type=int, default=None, help="BN-recalibration batches per arch")
    parser.add_argument("--synthetic", action="store_true",
                        help="the synthetic problem of inas.search.testing instead of a supernet (no assets, minutes)")
    parser.add_argument("--threads", type=int, default=max(1, min(4, os.cpu_count() or 1)),
                        help="torch intra-op threads of the evaluator (default: min(4, CPUs))")
    parser.add_argument("--no-record", action="store_true", help="do not append to benchmarks/results.jsonl")
    args = parser.parse_args()
    if min(args.checkpoints) < 1 or args.predictor_at < 5:
        parser.error(f"--checkpoints must be >= 1 and --predictor-at >= 5 (5-fold cross-validation), got "
                     f"{args.checkpoints} and {args.predictor_at}")
    return args


def supernet_league(args: argparse.Namespace, checkpoints: list[int]) -> tuple[League, dict[str, Any], Path,
                                                                             SecondPass]:
    """The league on the config's (or built) supernet and tables: (league, settings to print and record, the runs
    folder of this evaluation, the second pass cached in it)."""
    work = Path(args.work).resolve()
    doc, build = league_document(Path(args.config), work, args.space, args.quick, args.train_iterations,
                                 args.val_images, args.bn_batches)
    if build:
        build_assets(doc, work, args.quick)
    config = parse_config({k: v for k, v in doc.items() if not k.startswith("league_")}, "bench_search_league")
    league = League.from_config(config, make_evaluator(config, args.val_images, bn_seed=config.seed))
    settings = {"config": args.config, "space": args.space, "assets_built": build,
                "supernet": doc["search"]["supernet"], "image_size": config.data.image_size,
                "val_images": args.val_images or "all", "bn_batches": config.search.bn_recalibration_batches,
                "devices": list(league.device_fns), "seeds": args.seeds, "checkpoints": checkpoints,
                "predictor_at": min(args.predictor_at, checkpoints[-1]),
                "space_cardinality": league.space.cardinality(), "threads": args.threads}
    runs_dir = runs_folder(work, evaluation_identity(config, args.space, args.val_images))
    settings["runs"] = str(runs_dir.relative_to(REPO) if runs_dir.is_relative_to(REPO) else runs_dir)
    second = SecondPass(config, args.val_images, league.metric, runs_dir / "second-pass.json")
    return league, settings, runs_dir, second


def main() -> None:
    args = parse_args()
    LEAGUE.update(dict(args.variant))
    args.searchers += [name for name, _ in args.variant]
    logging.basicConfig(level=logging.WARNING)
    import torch

    torch.set_num_threads(args.threads)
    start = time.perf_counter()
    checkpoints = sorted(set(args.checkpoints))
    runs_dir: Path | None = None
    second: SecondPass | None = None
    if args.synthetic:
        league = League.synthetic()
        settings: dict[str, Any] = {"problem": "synthetic (inas.search.testing), full iNAS space",
                                    "devices": list(league.device_fns), "seeds": args.seeds,
                                    "checkpoints": checkpoints}
        ceiling = {"archs": 0, "kendall_tau": 1.0, "mean_abs_diff": 0.0, "note": "deterministic scores"}
        print("settings: " + ", ".join(f"{k} {v}" for k, v in settings.items()), flush=True)
    else:
        league, settings, runs_dir, second = supernet_league(args, checkpoints)
        print("settings: " + ", ".join(f"{k} {v}" for k, v in settings.items() if k != "runs"), flush=True)
        print(f"runs saved under {runs_dir}", flush=True)
        league.load_scores(runs_dir / "first-pass.json")
        ceiling = saved_noise_ceiling(runs_dir, args.noise_archs) or noise_ceiling(league, second, args.noise_archs)
        atomic_write_json(runs_dir / f"noise-{args.noise_archs}.json", ceiling)
        league.save_scores(runs_dir / "first-pass.json")
        print(f"\nnoise ceiling: Kendall tau {ceiling['kendall_tau']} between two BN-recalibration subsets over "
              f"{ceiling['archs']} archs (mean |difference| {ceiling['mean_abs_diff']})", flush=True)
    frames = []
    for seed in args.seeds:
        for name in args.searchers:
            t0 = time.perf_counter()
            frames.append(league.run_saved(name, checkpoints[-1], seed, runs_dir))
            print(f"seed {seed} {name}: {len(frames[-1])} evaluations in {time.perf_counter() - t0:.1f} s "
                  f"({len(league.cache)} distinct archs scored so far)", flush=True)
    frame = pd.concat(frames, ignore_index=True)
    tables = league_tables(frame, league, checkpoints)
    print_tables(tables, league, len(args.seeds), checkpoints)
    record: dict[str, Any] = {"settings": settings, "noise_ceiling": ceiling,
                              "hypervolume": {k: {"objectives": v["objectives"],
                                                  "rows": [{c: x for c, x in r.items() if not c.startswith("hv@")}
                                                           for r in v["rows"]]} for k, v in tables.items()}}
    record.update(predictor_records(frame, league, min(args.predictor_at, checkpoints[-1]), second, ceiling, args))
    if runs_dir is not None:
        league.save_scores(runs_dir / "first-pass.json")
    record["distinct_archs_scored"] = len(league.cache)
    record["seconds"] = round(time.perf_counter() - start, 1)
    print(f"\n{len(league.cache)} distinct archs scored; {record['seconds']} s")
    if not args.no_record:
        record_result("search_league", record)


if __name__ == "__main__":
    main()

"""Search: evaluations per minute against concurrent Tune trials, the per-trial overhead, and the hypervolume reached
by each searcher at the same number of evaluations, on the demo supernet and latency tables.

Everything runs through the real driver (`prepare_search` + `run_search`: Ray Tune, the multiplexing Tune searcher,
workers that build the accuracy evaluator once and reuse it) on one local Ray started once with every CPU of this
machine (`search.cpus_per_trial` CPUs per trial, one intra-op thread per CPU).

1. Throughput: one random searcher, --throughput-archs archs, --archs-per-trial archs per trial, with 1 and then 2
   concurrent trials (the same archs: same seed). Figures per run:
   - evals/min (wall): archs / wall time of `run_search` (Tune start-up, worker start-up and the tail included);
   - evals/min (steady): per worker, the archs of its 2nd..last trials over the time between its first and last
     completion, summed over workers (excludes worker start-up; `TrialStats.steady_evaluations_per_minute`);
   - eval s/arch: worker-side time per arch (BN recalibration + validation); it grows when the workers compete for
     the cores;
   - overhead s/trial: driver-side time of a trial (suggest to complete) minus its evaluation time, median over
     every trial except each worker's first; the first trials' overhead (worker start, torch import, supernet from
     the object store, data decoding) is given apart;
   - driver CPU: CPU seconds of the driver process (Tune's loop, resources from the LUT) per wall second.
   Scaling = steady evals/min with 2 concurrent trials / with 1 (target >= 1.8).
2. Quality: evolution (LGS initialisation, the config's parameters), random and Nevergrad NGOpt (--ng-budgets latency
   budgets) side by side in one Tune run per seed, --hv-evals evaluations each, --seeds seeds (config seed = seed: the
   searchers' seeds and the BN-recalibration subset change with it). Hypervolume of (latency on the first device,
   min; max F-measure, max) after the first n evaluations of each searcher (in the order they were told), with one
   reference point for all searchers and seeds: the largest latency and the lowest max F observed in all runs;
   normalised by the area of the box between that reference and (lowest latency, highest max F) observed in all runs
   (1 would be a single point at that corner). Mean and standard deviation over seeds. Target: evolution >= random
   at the full budget.

Prints Markdown tables and appends one JSON line to benchmarks/results.jsonl.

    python benchmarks/bench_search.py [--config experiments/sod_demo.yaml] [--hv-evals 64 --seeds 0 1 2]
        [--throughput-archs 32 --archs-per-trial 4] [--val-images N --bn-batches N]
"""

from __future__ import annotations

import argparse
import copy
import logging
import math
import os
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.common import record_result  # noqa: E402
from inas.config import ExperimentConfig, parse_config  # noqa: E402
from inas.data.lists import read_list  # noqa: E402
from inas.search.driver import connect, prepare_search, run_search  # noqa: E402
from inas.search.evaluators import latency_column, primary_metric  # noqa: E402
from inas.search.pareto import hypervolume  # noqa: E402

REPO = Path(__file__).resolve().parents[1]


def markdown_table(rows: list[dict[str, Any]], columns: list[str]) -> str:
    """A GitHub Markdown table of `rows` restricted to `columns`."""
    lines = ["| " + " | ".join(columns) + " |", "|" + "|".join("---" for _ in columns) + "|"]
    lines += ["| " + " | ".join(str(r.get(c, "")) for c in columns) + " |" for r in rows]
    return "\n".join(lines)


# ----- configs -----------------------------------------------------------------------------------------------------
def base_document(config_path: Path, work: Path, supernet: str | None, lut_dir: str | None, val_images: int | None,
                  bn_batches: int | None) -> dict[str, Any]:
    """The config as a plain document with absolute paths (Ray workers), the benchmark's evaluation settings."""
    doc = yaml.safe_load(config_path.read_text(encoding="utf-8"))
    config = parse_config(copy.deepcopy(doc), str(config_path))
    data = doc.setdefault("data", {})
    data["root"] = str(config.data.root.resolve())
    if val_images is not None:  # the first N images of the validation list, as an absolute list file
        lines = (config.data.root / config.data.val_list).read_text(encoding="utf-8").splitlines()
        lines = [ln for ln in lines if ln.strip()][:val_images]
        subset = work / f"val_{val_images}.lst"
        subset.write_text("\n".join(lines) + "\n", encoding="utf-8")
        data["val_list"] = str(subset)
    search = doc.setdefault("search", {})
    search["supernet"] = str(Path(supernet or config.search.supernet).resolve())
    search["lut_dir"] = str(Path(lut_dir or config.search.lut_dir or config.lut.out_dir).resolve())
    if bn_batches is not None:
        search["bn_recalibration_batches"] = bn_batches
    return doc


def run_config(doc: dict[str, Any], out_dir: Path, searchers: list[dict], seed: int | None = None,
               archs_per_trial: int | None = None) -> ExperimentConfig:
    doc = copy.deepcopy(doc)
    doc["search"]["searchers"] = searchers
    doc["search"]["out_dir"] = str(out_dir)
    if archs_per_trial is not None:
        doc["search"]["archs_per_trial"] = archs_per_trial
    if seed is not None:
        doc["seed"] = seed
    return parse_config(doc, "bench_search")


def timed_search(config: ExperimentConfig) -> tuple[Any, float, float]:
    """(SearchResult, wall seconds, driver CPU seconds) of one `run_search` on the running Ray."""
    setup = prepare_search(config)
    cpu0 = resource.getrusage(resource.RUSAGE_SELF)
    t0 = time.perf_counter()
    result = run_search(setup, dashboard=False)
    wall = time.perf_counter() - t0
    cpu1 = resource.getrusage(resource.RUSAGE_SELF)
    cpu = (cpu1.ru_utime - cpu0.ru_utime) + (cpu1.ru_stime - cpu0.ru_stime)
    if result.stats.failed_trials:
        raise RuntimeError(f"{result.stats.failed_trials} trials failed; see {config.search.out_dir}/tune")
    return result, wall, cpu


# ----- 1. throughput -----------------------------------------------------------------------------------------------
def throughput(doc: dict[str, Any], work: Path, levels: list[int], archs: int, archs_per_trial: int) -> list[dict]:
    rows = []
    for concurrency in levels:
        config = run_config(doc, work / f"throughput_c{concurrency}",
                            [{"kind": "random", "budget": archs, "concurrent_trials": concurrency}],
                            archs_per_trial=archs_per_trial)
        result, wall, cpu = timed_search(config)
        stats = result.stats
        seen: set[int] = set()
        first, later = [], []
        for pid, trial_s, eval_s in zip(stats.worker_per_completed, stats.trial_seconds, stats.eval_seconds,
                                        strict=True):
            (later if pid in seen else first).append(trial_s - eval_s)
            seen.add(pid)
        evaluated = result.evaluations[~result.evaluations["cached"]]
        rows.append({
            "concurrent_trials": concurrency, "archs_per_trial": archs_per_trial, "trials": stats.trials,
            "archs": stats.evaluated, "workers": len(stats.workers), "wall_s": round(wall, 1),
            "evals_per_min_wall": round(stats.evaluated / wall * 60, 1),
            "evals_per_min_steady": round(stats.steady_evaluations_per_minute(), 1),
            "eval_s_per_arch": round(float(evaluated["eval_seconds"].mean()), 3),
            "overhead_s_per_trial": round(statistics.median(later), 3) if later else math.nan,
            "first_trial_overhead_s": round(statistics.mean(first), 2) if first else math.nan,
            "driver_cpu_per_wall_s": round(cpu / wall, 3),
        })
    base = rows[0]
    for row in rows:
        row["scaling_steady"] = round(row["evals_per_min_steady"] / base["evals_per_min_steady"], 2)
        row["scaling_wall"] = round(row["evals_per_min_wall"] / base["evals_per_min_wall"], 2)
        # the scaling the compute alone allows: concurrency x (eval time per arch alone / eval time per arch here)
        row["compute_bound_scaling"] = round(row["concurrent_trials"] * base["eval_s_per_arch"]
                                             / row["eval_s_per_arch"], 2)
    return rows


# ----- 2. quality --------------------------------------------------------------------------------------------------
def quality_runs(doc: dict[str, Any], work: Path, seeds: list[int], evals: int, ng_budgets: int,
                 archs_per_trial: int) -> tuple[pd.DataFrame, list[dict]]:
    """Every seed's evaluations (column `seed`) and the per-seed run figures."""
    config = parse_config(copy.deepcopy(doc), "bench_search")
    evolution = next((s for s in config.search.searchers if s.kind == "evolution"), None)
    evolution_params = dict(evolution.params) if evolution else {}
    searchers = [
        {"kind": "evolution", "budget": evals, "concurrent_trials": 1, "params": evolution_params},
        {"kind": "random", "budget": evals, "concurrent_trials": 1},
        {"kind": "nevergrad", "budget": evals, "concurrent_trials": 1,
         "params": {"optimizer": "NGOpt", "num_budgets": ng_budgets}},
    ]
    frames, runs = [], []
    for seed in seeds:
        config = run_config(doc, work / f"quality_seed{seed}", searchers, seed=seed, archs_per_trial=archs_per_trial)
        result, wall, _ = timed_search(config)
        frames.append(result.evaluations.assign(seed=seed))
        runs.append({"seed": seed, "archs_evaluated": result.stats.evaluated, "served_from_table": result.stats.cached,
                     "wall_s": round(wall, 1), "evals_per_min_wall": round(result.stats.evaluated / wall * 60, 1)})
    return pd.concat(frames, ignore_index=True), runs


def hypervolume_curves(frame: pd.DataFrame, task: str, device: str, checkpoints: list[int]) -> tuple[list[dict], dict]:
    metric, lat = primary_metric(task), latency_column(device)
    objectives = {lat: "min", metric: "max"}
    ok = frame[frame[metric].notna()]
    reference = {lat: float(ok[lat].max()), metric: float(ok[metric].min())}
    box = (reference[lat] - float(ok[lat].min())) * (float(ok[metric].max()) - reference[metric])
    box = box if box > 0 else 1.0  # normalise by the box spanned by every run's points
    per_seed: dict[tuple[str, int], dict[int, float]] = {}
    for (searcher, seed), rows in frame.groupby(["searcher", "seed"], sort=True):
        rows = rows[rows[metric].notna()]
        per_seed[(searcher, seed)] = {n: hypervolume(rows.iloc[:n], objectives, reference) / box
                                      for n in checkpoints}
    table = []
    for searcher in sorted({s for s, _ in per_seed}):
        row: dict[str, Any] = {"searcher": searcher}
        for n in checkpoints:
            values = [v[n] for (s, _), v in per_seed.items() if s == searcher]
            sd = statistics.stdev(values) if len(values) > 1 else 0.0
            row[f"hv@{n}"] = f"{statistics.mean(values):.4f} ± {sd:.4f}"
            row[f"_mean@{n}"] = statistics.mean(values)
        seeds = sorted({seed for s, seed in per_seed if s == searcher})
        row["seeds_hv_final"] = [round(per_seed[(searcher, seed)][checkpoints[-1]], 4) for seed in seeds]
        rows = frame[frame["searcher"] == searcher]
        row["best_max_f"] = round(float(rows[metric].max()), 4)
        row["latency_range_ms"] = f"{rows[lat].min():.2f}-{rows[lat].max():.2f}"
        table.append(row)
    return table, {"reference": reference, "box": box}


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="experiments/sod_demo.yaml", help="config with train, lut, search")
    parser.add_argument("--supernet", default=None, help="supernet checkpoint (default: search.supernet)")
    parser.add_argument("--lut-dir", default=None, help="latency tables (default: search.lut_dir or lut.out_dir)")
    parser.add_argument("--val-images", type=int, default=None, help="first N validation images (default: all)")
    parser.add_argument("--bn-batches", type=int, default=None,
                        help="BN-recalibration batches per arch (default: search.bn_recalibration_batches)")
    parser.add_argument("--archs-per-trial", type=int, default=4, help="archs per Tune trial (both parts)")
    parser.add_argument("--throughput-archs", type=int, default=32, help="archs per concurrency level")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 2], help="concurrent trials to compare")
    parser.add_argument("--hv-evals", type=int, default=64, help="evaluations per searcher and seed")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--ng-budgets", type=int, default=4, help="latency budgets (optimiser instances) of NGOpt")
    parser.add_argument("--skip-throughput", action="store_true")
    parser.add_argument("--skip-quality", action="store_true")
    parser.add_argument("--no-record", action="store_true", help="do not append to benchmarks/results.jsonl")
    return parser.parse_args()


def print_throughput(rows: list[dict]) -> None:
    print("\n### Evaluations per minute against concurrent trials (random searcher, same archs)\n")
    print(markdown_table(rows, ["concurrent_trials", "archs", "trials", "wall_s", "evals_per_min_wall",
                                "evals_per_min_steady", "scaling_steady", "eval_s_per_arch",
                                "compute_bound_scaling", "overhead_s_per_trial",
                                "first_trial_overhead_s", "driver_cpu_per_wall_s"]), flush=True)


def quality_record(doc: dict[str, Any], work: Path, config: ExperimentConfig, device: str,
                   args: argparse.Namespace) -> dict[str, Any]:
    """Every searcher's runs over the seeds, their hypervolume curves printed; the record's "quality" entry."""
    frame, runs = quality_runs(doc, work, args.seeds, args.hv_evals, args.ng_budgets, args.archs_per_trial)
    n = args.hv_evals
    checkpoints = sorted({max(1, n // 4), max(1, n // 2), max(1, 3 * n // 4), n})
    table, ref = hypervolume_curves(frame, config.task, device, checkpoints)
    print(f"\n### Hypervolume against evaluations ({len(args.seeds)} seeds, mean ± sd, normalised; "
          f"reference {ref['reference']})\n")
    print(markdown_table(table, ["searcher", *[f"hv@{c}" for c in checkpoints], "best_max_f", "latency_range_ms"]))
    print()
    print(markdown_table(runs, list(runs[0])), flush=True)
    return {"evaluations_per_searcher": n, "seeds": args.seeds, "ng_budgets": args.ng_budgets, "runs": runs,
            "reference": ref["reference"], "box": ref["box"],
            "searchers": [{k: v for k, v in r.items() if not k.startswith("hv@")} for r in table]}


def checks_of(record: dict[str, Any], hv_evals: int) -> dict[str, Any]:
    """The targets the record meets (2-trial scaling >= 1.8, evolution's hypervolume >= random's); renames the
    quality rows' final means to `mean_hv@N` in place."""
    checks: dict[str, Any] = {}
    if "throughput" in record and len(record["throughput"]) > 1:
        checks["scaling_2_over_1"] = record["throughput"][1]["scaling_steady"]
        checks["scaling_target_1_8_met"] = bool(checks["scaling_2_over_1"] >= 1.8)
    if "quality" in record:
        means = {r["searcher"]: r[f"_mean@{hv_evals}"] for r in record["quality"]["searchers"]}
        if {"evolution", "random"} <= set(means):
            checks["evolution_hv_ge_random"] = bool(means["evolution"] >= means["random"])
        record["quality"]["mean_hv_final"] = {k: round(v, 4) for k, v in means.items()}
        for r in record["quality"]["searchers"]:
            for key in [k for k in r if k.startswith("_mean@")]:
                r[key.replace("_mean@", "mean_hv@")] = round(r.pop(key), 4)
    return checks


def main() -> None:
    args = parse_args()
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    logging.basicConfig(level=logging.WARNING)
    start = time.perf_counter()
    load_before = os.getloadavg()[0]
    config_path = Path(args.config)
    record: dict[str, Any] = {"config": str(config_path)}
    with tempfile.TemporaryDirectory(prefix="bench_search_") as tmp:
        work = Path(tmp)
        doc = base_document(config_path, work, args.supernet, args.lut_dir, args.val_images, args.bn_batches)
        config = parse_config(copy.deepcopy(doc), str(config_path))
        val_images = len(read_list(config.data.root, config.data.val_list))
        settings = {"supernet": os.path.relpath(doc["search"]["supernet"], REPO),
                    "image_size": config.data.image_size, "val_images": val_images,
                    "bn_batches": config.search.bn_recalibration_batches, "bn_batch_size": config.data.batch_size,
                    "val_batch_size": config.search.val_batch_size, "cpus_per_trial": config.search.cpus_per_trial,
                    "archs_per_trial": args.archs_per_trial, "ray_cpus": os.cpu_count(),
                    "primary_device": (config.search.devices or [d.name for d in config.lut.devices])[0]}
        record["settings"] = settings
        print("settings: " + ", ".join(f"{k} {v}" for k, v in settings.items()), flush=True)
        import ray

        connect(None, dashboard=False)
        try:
            if not args.skip_throughput:
                record["throughput"] = throughput(doc, work, args.concurrency, args.throughput_archs,
                                                  args.archs_per_trial)
                print_throughput(record["throughput"])
            if not args.skip_quality:
                record["quality"] = quality_record(doc, work, config, settings["primary_device"], args)
        finally:
            ray.shutdown()
    checks = checks_of(record, args.hv_evals)
    record["checks"] = checks
    record["seconds"] = round(time.perf_counter() - start, 1)
    record["load_average"] = [round(load_before, 2), round(os.getloadavg()[0], 2)]
    print(f"\nchecks: {checks}; {record['seconds']} s; load average {record['load_average']}")
    if not args.no_record:
        record_result("search", record)


if __name__ == "__main__":
    main()

"""Latency tables: predictor throughput, time per LUT block, and the validation figures of a built table.

1. Predictor: archs/s of `LatencyPredictor.predict_many` (vectorised) and `predict` (one arch at a time) on
   --archs uniform archs of the full iNAS space at 320x320 (a table with every block; the values do not matter for
   speed), best of 3; and the Arch constructor's time, which includes building the integer code predict_many reads.
2. Time per LUT block: --blocks randomly chosen blocks of the full space at 320x320 and of the demo config's space
   are built, exported and timed in-process exactly as a device actor does (onnxruntime, 1 thread, the config's
   warm-up/runs, preempted runs dropped); the full table's build time is estimated from it.
3. Validation: the figures of `<lut dir>/validation.parquet` (written by `lut validate`), per device; with --run,
   `lut` and `lut validate --samples N` are run first on the demo config (minutes).

Prints a table and appends one JSON line to benchmarks/results.jsonl.

    python -m benchmarks.bench_latency [--config experiments/sod_demo.yaml] [--lut-dir DIR] [--run --samples 50]
"""

from __future__ import annotations

import argparse
import os
import random
import time
from pathlib import Path

import numpy as np
import pandas as pd

from benchmarks.common import format_table, record_result
from inas.config import load_config
from inas.latency import LatencyPredictor, Runner, config_blocks, enumerate_blocks, lut_input_hw
from inas.latency.table import table_from_rows
from inas.space import Arch, inas_space, sample_uniform


def synthetic_table(space, input_hw) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    fixed = {"params": 1000, "device": "bench", "backend": "onnxruntime", "batch": 1, "threads": 1,
             "latency_ms_mean": 0.0, "latency_ms_std": 0.0, "runs": 1, "torch_version": "", "onnxruntime_version": "",
             "python_version": "", "host": "", "measured_at": ""}
    rows = [{"block": k.text, **k.to_row(), **fixed, "latency_ms": float(rng.uniform(0.01, 2.0))}
            for k in enumerate_blocks(space, input_hw)]
    return table_from_rows(rows)


def predictor_speed(n_archs: int) -> dict:
    """Archs/s of predict_many (each arch scored for the first time by this predictor instance, best of 3 fresh
    instances) and of predict, plus the cost of the Arch constructor, which builds the integer code predict_many
    reads (so the benchmark shows where that work went)."""
    space = inas_space()
    table = synthetic_table(space, (320, 320))
    rng = random.Random(0)
    archs = [sample_uniform(space, rng) for _ in range(n_archs)]
    times = []
    for _ in range(3):
        predictor = LatencyPredictor(table, space)
        predictor.predict_many(archs[:10])  # build the dense arrays
        times.append(_timed(lambda p=predictor: p.predict_many(archs)))
    few = archs[: min(2000, n_archs)]
    single = min(_timed(lambda: [predictor.predict(a) for a in few]) for _ in range(3))
    many = predictor.predict_many(archs[:200])
    assert np.allclose(many, [predictor.predict(a) for a in archs[:200]])
    build = min(_timed(lambda: [Arch(a.backbone, a.transport, a.decoder) for a in few]) for _ in range(3))
    return {"archs": n_archs, "predict_many_archs_per_s": round(n_archs / min(times)),
            "predict_archs_per_s": round(len(few) / single), "arch_constructor_us": round(build / len(few) * 1e6, 1)}


def _timed(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def block_time(keys, n: int, warmup: int, runs: int, seed: int = 0) -> dict:
    """Seconds per block (build + export + session + timing) over `n` random blocks of `keys`."""
    picked = random.Random(seed).sample(keys, min(n, len(keys)))
    runner = Runner("onnxruntime", 1, drop_preempted=True)
    runner.measure_block(picked[0], 1, 1, 1)  # warm-up: imports, first export
    t0 = time.perf_counter()
    for key in picked:
        runner.measure_block(key, 1, warmup, runs)
    per_block = (time.perf_counter() - t0) / len(picked)
    return {"blocks_in_space": len(keys), "sampled": len(picked), "seconds_per_block": round(per_block, 4),
            "estimated_table_minutes": round(per_block * len(keys) / 60, 1)}


def validation_figures(lut_dir: Path) -> list[dict]:
    path = lut_dir / "validation.parquet"
    if not path.exists():
        return []
    from inas.latency.validate import Figures

    frame = pd.read_parquet(path)
    rows = []
    for device, g in frame.groupby("device", sort=False):
        meas = g["measured_ms"].to_numpy()
        entry = {"device": device, "networks": len(g), "mean_measured_ms": round(float(meas.mean()), 3)}
        for name, col in (("block_sum", "block_sum_ms"), ("corrected_cv", "corrected_ms_cv")):
            if col in g and g[col].notna().all():
                f = Figures.of(g[col].to_numpy(), meas)
                entry.update({f"{name}_spearman": round(f.spearman, 4), f"{name}_mape_pct": round(f.mape_pct, 2),
                              f"{name}_within_10_pct": round(f.within_10_pct, 1),
                              f"{name}_within_5_pct": round(f.within_5_pct, 1)})
        if {"measured_ms_round0", "measured_ms_round1"} <= set(g.columns):
            f = Figures.of(g["measured_ms_round1"].to_numpy(), g["measured_ms_round0"].to_numpy())
            entry.update({"repeat_spearman": round(f.spearman, 4), "repeat_mape_pct": round(f.mape_pct, 2),
                          "repeat_within_5_pct": round(f.within_5_pct, 1)})
        rows.append(entry)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="experiments/sod_demo.yaml", help="demo config (space, devices, runs)")
    parser.add_argument("--lut-dir", default=None, help="LUT folder with validation.parquet (default: lut.out_dir)")
    parser.add_argument("--archs", type=int, default=20000, help="archs for the predictor throughput")
    parser.add_argument("--blocks", type=int, default=40, help="blocks timed per space for the time per block")
    parser.add_argument("--run", action="store_true", help="run `lut` and `lut validate` on the config first")
    parser.add_argument("--samples", type=int, default=50, help="with --run: networks for `lut validate`")
    parser.add_argument("--no-record", action="store_true", help="do not append to benchmarks/results.jsonl")
    args = parser.parse_args()
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    config = load_config(args.config)
    lut_dir = Path(args.lut_dir) if args.lut_dir else config.lut.out_dir
    load_before = os.getloadavg()[0]

    build_seconds = None
    if args.run:
        from inas.latency import build_tables, validate_tables

        t0 = time.perf_counter()
        build_tables(config, lut_dir, progress=False)
        build_seconds = round(time.perf_counter() - t0, 1)
        validate_tables(config, args.samples, lut_dir, progress=False)

    speed = predictor_speed(args.archs)
    print(format_table([speed], list(speed)))
    warmup, runs = config.lut.warmup_runs, config.lut.runs
    blocks = {
        "full space 320x320": block_time(enumerate_blocks(inas_space(), (320, 320)), args.blocks, warmup, runs),
        f"{args.config} {'x'.join(map(str, lut_input_hw(config)))}": block_time(config_blocks(config), args.blocks,
                                                                                  warmup, runs),
    }
    print()
    print(format_table([{"space": k, **v} for k, v in blocks.items()],
                       ["space", "blocks_in_space", "sampled", "seconds_per_block", "estimated_table_minutes"]))
    figures = validation_figures(lut_dir)
    print()
    if figures:
        print(format_table(figures, list(figures[0])))
    else:
        print(f"no {lut_dir / 'validation.parquet'}: run `python -m inas.run lut validate -c {args.config}` or --run")
    load_after = os.getloadavg()[0]
    record = {"predictor": speed, "time_per_block": blocks, "validation": figures, "lut_dir": str(lut_dir),
              "demo_build_seconds": build_seconds, "load_average": [round(load_before, 2), round(load_after, 2)]}
    if not args.no_record:
        record_result("latency", record)


if __name__ == "__main__":
    main()

"""Training throughput: images/s of a full training iteration (max, min and 2 random sub-networks, forward and
backward, one Adam step), locally and under `train --cluster` (Ray Train, DDP over gloo) with 1 and 2 workers.

    python benchmarks/bench_train.py [--config experiments/sod_demo.yaml] [--iterations 12] [--warmup 3]

Each mode trains the config's supernet for a few iterations on a small synthetic set (made in a temporary folder,
same input size), multi-scale off so every step has the same cost, no validation; images/s is the mean over the
logged steps after the warm-up ones (global images: batch x workers). Scaling efficiency = images/s with 2 workers /
(2 x images/s with 1 worker). Prints a table and appends a JSON line to benchmarks/results.jsonl.
"""

from __future__ import annotations

import argparse
import csv
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.common import format_table, record_result  # noqa: E402
from inas.config import ExperimentConfig, load_config  # noqa: E402
from inas.data.synth_sod import synthesize_sod  # noqa: E402


def _step_rates(run_dir: Path, warmup: int) -> list[float]:
    with (run_dir / "metrics.csv").open(newline="") as handle:
        rows = [r for r in csv.DictReader(handle) if int(r["iteration"]) > warmup]
    return [float(r["images_per_s"]) for r in rows]


def _bench_config(base: ExperimentConfig, data_root: Path, iterations: int) -> ExperimentConfig:
    config = base.model_copy(deep=True)
    config.data.root = data_root
    config.data.multi_scale_sizes = []
    config.data.num_workers = 0
    config.train.iterations = iterations
    config.train.log_every = 1
    config.train.checkpoint_every = iterations
    config.train.validate_every = 0
    config.train.validate_at_end = False
    config.train.validate_at_start = False
    return config


def run_mode(name: str, config: ExperimentConfig, work: Path, warmup: int) -> dict:
    run_dir = work / name
    start = time.perf_counter()
    if name.startswith("local"):
        import torch

        from inas.train.loop import train_supernet

        config.train.threads = int(name.split("_")[1].rstrip("t"))
        torch.set_num_threads(config.train.threads)
        train_supernet(config, run_dir, progress=False)
        workers = 1
    else:
        from inas.train.cluster import train_on_ray

        workers = int(name.split("_")[1].rstrip("w"))
        config.train.cluster.workers = workers
        config.train.cluster.cpus_per_worker = 1
        train_on_ray(config, run_dir, progress=False)
    rates = _step_rates(run_dir, warmup)
    return {"mode": name, "workers": workers, "images_per_s": round(statistics.mean(rates), 2),
            "images_per_s_median": round(statistics.median(rates), 2), "steps": len(rates),
            "wall_s": round(time.perf_counter() - start, 1)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="experiments/sod_demo.yaml")
    parser.add_argument("--iterations", type=int, default=12)
    parser.add_argument("--warmup", type=int, default=3, help="first iterations left out of the mean")
    parser.add_argument("--modes", nargs="+", default=["local_1t", "local_2t", "cluster_1w", "cluster_2w"])
    args = parser.parse_args()
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    base = load_config(args.config)
    with tempfile.TemporaryDirectory(prefix="bench-train-") as tmp:
        work = Path(tmp)
        batch = base.data.batch_size
        synthesize_sod(work / "data", n_train=max(32, 4 * batch), n_test=4, size=base.data.image_size, seed=0)
        rows = [run_mode(mode, _bench_config(base, work / "data", args.iterations), work, args.warmup)
                for mode in args.modes]
    by_mode = {r["mode"]: r for r in rows}
    efficiency = None
    if "cluster_1w" in by_mode and "cluster_2w" in by_mode:
        efficiency = by_mode["cluster_2w"]["images_per_s"] / (2 * by_mode["cluster_1w"]["images_per_s"])
    print(f"config {args.config}: input {base.data.image_size} px, batch {base.data.batch_size} per worker, "
          f"{2 + base.train.random_subnets} sub-networks per step")
    print(format_table(rows, ["mode", "workers", "images_per_s", "images_per_s_median", "steps", "wall_s"]))
    if efficiency is not None:
        print(f"scaling efficiency (2 workers vs 2 x 1 worker): {efficiency:.2f}")
    record_result("train", {"config": args.config, "image_size": base.data.image_size,
                            "batch_per_worker": base.data.batch_size, "rows": rows,
                            "scaling_efficiency_2w": None if efficiency is None else round(efficiency, 3),
                            "load_average_1min": round(os.getloadavg()[0], 2)})
    return 0


if __name__ == "__main__":
    sys.exit(main())

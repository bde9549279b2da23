"""GPU readiness figures: the training step per precision, the evaluator's throughput, and evaluations/min with
1, 2 and 4 trials sharing one device.

    python benchmarks/bench_gpu.py                       # on a CUDA machine: 320 px, batch 8 (the issue's setting)
    python benchmarks/bench_gpu.py --device cpu --quick  # a reduced run that proves the script works anywhere
                                                         # (64 px, batch 2, the sod_demo space, 1 and 2 trials)

1. Training step: one sub-network (max, then min) forward + backward + Adam step on a batch of `--batch` images of
   `--size` px, for each precision (fp32, bf16; fp16 with GradScaler on CUDA), ms/step = median after the warm-up.
2. Evaluator: `inas.train.evaluate_arch` (BN recalibration on `--bn-batches` batches, then maxF/MAE/S on the
   validation images) on random sub-networks: evaluations/min in one process.
3. Search packing: K processes (K = 1, 2, 4) on the same device, each evaluating random sub-networks for
   `--seconds` (what Ray Tune runs with `gpus_per_trial: 1/K`, without Ray's scheduling): evaluations/min in all.
The supernet is the config's space (default: the full iNAS space) with random weights; data are synthetic SOD
images made in a temporary folder. Prints tables; with CUDA each section's figures are appended to
benchmarks/results.jsonl as soon as it is measured (`--no-record` to skip), so a run cut short keeps what it
measured. Without CUDA it says so: CPU figures are no GPU figures.
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

from benchmarks.common import format_table, record_result  # noqa: E402
from inas.config import ExperimentConfig, load_config  # noqa: E402
from inas.data import bn_loader_from_config, eval_loader_from_config  # noqa: E402
from inas.data.synth_sod import synthesize_sod  # noqa: E402
from inas.evaluation import evaluate_arch  # noqa: E402
from inas.nn import Supernet  # noqa: E402
from inas.space import sample_max, sample_min, sample_uniform  # noqa: E402
from inas.train.precision import MixedPrecision  # noqa: E402
from inas.train.recipe import SupernetCriterion, build_optimizer, train_step  # noqa: E402

EVAL_METRICS = ("maxF", "mae", "sm")
QUICK_CONFIG = str(Path(__file__).resolve().parents[1] / "experiments" / "sod_demo.yaml")  # a narrowed space


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _supernet(config: ExperimentConfig, device: torch.device) -> Supernet:
    torch.manual_seed(0)
    return Supernet(config.space.build(), 1, tuple(config.model.output_levels)).to(device)


def bench_train_step(config: ExperimentConfig, device: torch.device, args: argparse.Namespace) -> list[dict]:
    """ms per optimiser step of the max and the min sub-network, per precision."""
    precisions = ["fp32", "bf16"] + (["fp16"] if device.type == "cuda" else [])
    generator = torch.Generator().manual_seed(0)
    images = torch.randn(args.batch, 3, args.size, args.size, generator=generator).to(device)
    labels = (torch.rand(args.batch, 1, args.size, args.size, generator=generator) > 0.5).float().to(device)
    criterion = SupernetCriterion.from_config("sod", False, None, config.train.side_output_weight)
    rows = []
    for precision in precisions:
        supernet = _supernet(config, device).train()
        optimizer = build_optimizer(supernet, 1e-4, 10.0, (0.9, 0.99), 0.0)
        amp = MixedPrecision.create(precision, device)
        for name, arch in (("max", sample_max(supernet.space)), ("min", sample_min(supernet.space))):
            times = []
            for step in range(args.warmup + args.steps):
                _sync(device)
                start = time.perf_counter()
                optimizer.zero_grad(set_to_none=True)
                train_step(supernet, images, labels, [(name, arch)], criterion, amp)
                amp.step(optimizer)
                _sync(device)
                if step >= args.warmup:
                    times.append((time.perf_counter() - start) * 1000)
            ms = statistics.median(times)
            rows.append({"arch": name, "precision": precision, "ms_per_step": float(f"{ms:.4g}"),
                         "images_per_s": float(f"{args.batch * 1000 / ms:.3g}")})
        del supernet, optimizer
    return rows


def _eval_setup(config: ExperimentConfig, device: torch.device, args: argparse.Namespace) -> tuple[Any, Any, Any]:
    supernet = _supernet(config, device)
    bn_loader = bn_loader_from_config(config.data, "sod", args.bn_batches, seed=0, cache=True, check=False)
    val_loader = eval_loader_from_config(config.data, "sod", batch_size=config.data.batch_size, check=False)
    return supernet, bn_loader, val_loader


def _evaluate_for(config: ExperimentConfig, device: torch.device, args: argparse.Namespace, seconds: float,
                  seed: int) -> tuple[int, float]:
    """Evaluate random sub-networks for `seconds` (after one warm-up evaluation); returns (count, seconds)."""
    supernet, bn_loader, val_loader = _eval_setup(config, device, args)
    rng = random.Random(seed)
    evaluate_arch(supernet, sample_uniform(supernet.space, rng), bn_loader, val_loader, args.bn_batches, "sod",
                  metrics=list(EVAL_METRICS))
    count, start = 0, time.perf_counter()
    while count == 0 or time.perf_counter() - start < seconds:
        evaluate_arch(supernet, sample_uniform(supernet.space, rng), bn_loader, val_loader, args.bn_batches, "sod",
                      metrics=list(EVAL_METRICS))
        _sync(device)
        count += 1
    return count, time.perf_counter() - start


def _trial_process(config_json: dict, device_name: str, args_dict: dict, seed: int, queue: Any) -> None:
    torch.set_num_threads(args_dict["threads"])
    config = ExperimentConfig.model_validate(config_json)
    queue.put(_evaluate_for(config, torch.device(device_name), argparse.Namespace(**args_dict), args_dict["seconds"],
                            seed))


def bench_search_packing(config: ExperimentConfig, device: torch.device, args: argparse.Namespace) -> list[dict]:
    """Evaluations/min of K concurrent trial processes on one device."""
    ctx = torch.multiprocessing.get_context("spawn")
    rows = []
    for trials in args.trials:
        queue = ctx.Queue()
        procs = [ctx.Process(target=_trial_process, args=(config.model_dump(mode="json"), str(device), vars(args),
                                                          k, queue)) for k in range(trials)]
        for proc in procs:
            proc.start()
        results = [queue.get(timeout=args.seconds * 20 + 600) for _ in procs]
        for proc in procs:
            proc.join()
        per_min = sum(60.0 * count / seconds for count, seconds in results)
        rows.append({"trials_per_device": trials, "evaluations": sum(c for c, _ in results),
                     "evaluations_per_min": float(f"{per_min:.3g}")})
    return rows


def _bench_config(args: argparse.Namespace, data_root: Path) -> ExperimentConfig:
    config = load_config(args.config) if args.config else ExperimentConfig()
    config = config.model_copy(deep=True)
    config.task = "sod"
    config.data.root = data_root
    config.data.image_size = args.size
    config.data.batch_size = args.batch
    config.data.num_workers = 0
    return config


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default=None, help="experiment config whose space is timed (default: full iNAS)")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--quick", action="store_true", help="reduced sizes and counts (proves the script works)")
    parser.add_argument("--size", type=int, default=320)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--bn-batches", type=int, default=4)
    parser.add_argument("--val-images", type=int, default=16)
    parser.add_argument("--seconds", type=float, default=60.0, help="duration of each search-packing measurement")
    parser.add_argument("--trials", type=int, nargs="+", default=[1, 2, 4])
    parser.add_argument("--threads", type=int, default=1, help="torch threads of every process (CPU work)")
    parser.add_argument("--no-record", action="store_true")
    args = parser.parse_args()
    if args.quick:
        args.size, args.batch, args.steps, args.warmup = 64, 2, 2, 1
        args.bn_batches, args.val_images, args.seconds, args.trials = 1, 2, 1.0, [1, 2]
        args.config = args.config or QUICK_CONFIG
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        print("error: --device cuda but no CUDA device is available", file=sys.stderr)
        return 2
    has_gpu = torch.cuda.is_available()
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    print(f"device {name}; {'a GPU is present' if has_gpu else 'no GPU present: CPU figures, not GPU figures'}"
          f"{' (reduced --quick run)' if args.quick else ''}")
    record = has_gpu and not args.quick and not args.no_record
    common = {"device": name, "size": args.size, "batch": args.batch}
    with tempfile.TemporaryDirectory(prefix="inas-bench-gpu-") as tmp:
        data_root = Path(tmp) / "sod"
        synthesize_sod(data_root, n_train=args.batch * args.bn_batches, n_test=args.val_images, size=args.size,
                       seed=0, workers=1)
        config = _bench_config(args, data_root)
        _run_sections(config, device, args, lambda bench, figures: record and record_result(bench, common | figures))
    return 0


def _run_sections(config: ExperimentConfig, device: torch.device, args: argparse.Namespace, record: Any) -> None:
    """Measure, print and `record(bench, figures)` each section as soon as it is done, so that a run cut short
    (a lease ending, a timeout) keeps what it measured."""
    train_rows = bench_train_step(config, device, args)
    print(f"\ntraining step, {args.size} px, batch {args.batch}:")
    print(format_table(train_rows, ["arch", "precision", "ms_per_step", "images_per_s"]), flush=True)
    record("gpu_train_step", {"train_step": train_rows})
    count, seconds = _evaluate_for(config, device, args, args.seconds, seed=0)
    eval_row = {"evaluations": count, "evaluations_per_min": float(f"{60.0 * count / seconds:.3g}"),
                "bn_batches": args.bn_batches, "val_images": args.val_images}
    print(f"\nevaluator (one process): {eval_row['evaluations_per_min']} evaluations/min "
          f"({args.bn_batches} BN batches of {args.batch}, {args.val_images} validation images)", flush=True)
    record("gpu_evaluator", {"evaluator": eval_row})
    packing_rows = bench_search_packing(config, device, args)
    print("\nsearch packing (trial processes sharing the device):")
    print(format_table(packing_rows, ["trials_per_device", "evaluations", "evaluations_per_min"]), flush=True)
    record("gpu_search_packing", {"search_packing": packing_rows})
    return 0


if __name__ == "__main__":
    sys.exit(main())

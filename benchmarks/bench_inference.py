"""Per-image inference latency of deployed models: PyTorch eager vs onnxruntime on this machine (batch 1).

    python -m benchmarks.bench_inference [--size 320] [--threads N] [--repeats 20] [--arch A.json ...]
                                         [--ort-levels all] [--no-record]

Models: by default three architectures of the FULL iNAS space: `min` (sample_min), `mid` (of 200 seeded uniform
samples, the one whose MACs are closest to the midpoint of min and max) and `max` (sample_max); `--arch FILE` (any
number of times) benchmarks those Arch JSON files instead (e.g. the searched Pareto front). Weights are random (BN
statistics randomised, SMSUs folded; latency does not depend on the values). Each model is exported to ONNX with a
fixed (1, 3, S, S) input (`inas.deploy.onnx_export.to_onnx_bytes`), checked against PyTorch, then timed:
PyTorch eager under `torch.inference_mode()` and onnxruntime (CPU provider, sequential, the given graph optimisation
levels), both with the same intra-op thread count, `--warmup` untimed rounds then `--repeats` rounds on the same
image in which every runtime runs once in turn (so background load on a shared machine hits all alike); the median
is the headline, the best (min) run is recorded too. Params and MACs (`inas.nn.profile`, folded model, level-0
head) are printed beside the times, as in the paper's "Searched models on Intel Core CPU" table. Appends one JSON
line to benchmarks/results.jsonl.
"""

from __future__ import annotations

import argparse
import os
import random
import time

import numpy as np
import torch

from benchmarks.common import format_table, record_result
from inas.deploy.onnx_export import to_onnx_bytes
from inas.deploy.runtime import OPTIMIZATION_LEVELS, ort_session, time_interleaved
from inas.nn import StandaloneModel, profile
from inas.nn.testing import perturb_
from inas.space import Arch, SearchSpace, inas_space, load_arch, sample_max, sample_min, sample_uniform


def middle_arch(space: SearchSpace, size: int, samples: int = 200, seed: int = 0) -> Arch:
    """Of `samples` seeded uniform archs, the one whose MACs are closest to the midpoint of min and max MACs."""
    lo = profile(sample_min(space), (size, size), space=space)[1]
    hi = profile(sample_max(space), (size, size), space=space)[1]
    target = (lo + hi) / 2
    rng = random.Random(seed)
    candidates = [sample_uniform(space, rng) for _ in range(samples)]
    return min(candidates, key=lambda a: abs(profile(a, (size, size), space=space)[1] - target))


def deployed_model(space: SearchSpace, arch: Arch, seed: int = 0) -> StandaloneModel:
    """The folded, eval-mode stand-alone model of `arch` with random weights and BN statistics (level-0 head)."""
    torch.manual_seed(seed)
    model = StandaloneModel(space, arch, num_classes=1, output_levels=(0,))
    perturb_(model, seed=seed)
    return model.reparameterize().eval()


def bench_model(name: str, space: SearchSpace, arch: Arch, size: int, threads: int, warmup: int, repeats: int,
                levels: list[str]) -> dict:
    """One table row: params, MACs, and the median (and best) latency of every runtime, timed alternately."""
    model = deployed_model(space, arch)
    params, macs = profile(arch, (size, size), space=space)
    image = torch.randn(1, 3, size, size, generator=torch.Generator().manual_seed(0))
    with torch.inference_mode():
        expected = model(image).contiguous().numpy()
    onnx_bytes = to_onnx_bytes(model, (size, size))
    feed = {"image": image.numpy()}
    runs = {"torch": lambda: model(image)}
    diffs = {}
    for level in levels:
        session = ort_session(onnx_bytes, threads=threads, optimization=level)
        diffs[level] = float(np.abs(session.run(None, feed)[0] - expected).max())
        runs[level] = lambda s=session: s.run(None, feed)
    with torch.inference_mode():
        timings = time_interleaved(runs, warmup, repeats)
    row = {"model": name, "arch_id": arch.arch_id, "params_m": round(params / 1e6, 3), "macs_g": round(macs / 1e9, 3),
           "torch_ms": round(timings["torch"].median_ms, 2), "torch_min_ms": round(timings["torch"].min_ms, 2)}
    for level in levels:
        suffix = "" if level == levels[-1] else f"_{level}"
        row[f"onnxruntime_ms{suffix}"] = round(timings[level].median_ms, 2)
        row[f"onnxruntime_min_ms{suffix}"] = round(timings[level].min_ms, 2)
        row[f"max_abs_diff{suffix}"] = float(f"{diffs[level]:.3g}")
    row["speed_up"] = round(row["torch_ms"] / row["onnxruntime_ms"], 2)
    row["ort_over_torch"] = round(row["onnxruntime_ms"] / row["torch_ms"], 3)
    row["ort_over_torch_best"] = round(row["onnxruntime_min_ms"] / row["torch_min_ms"], 3)
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=320, help="square input side (multiple of 32; default 320)")
    parser.add_argument("--threads", type=int, default=0, help="intra-op threads for both runtimes (0 = torch default)")
    parser.add_argument("--warmup", type=int, default=5, help="untimed runs per model and runtime")
    parser.add_argument("--repeats", type=int, default=20, help="timed runs per model and runtime (median reported)")
    parser.add_argument("--arch", action="append", default=[], help="Arch JSON file to benchmark (repeatable)")
    parser.add_argument("--ort-levels", nargs="+", choices=list(OPTIMIZATION_LEVELS), default=["all"],
                        help="onnxruntime graph optimisation levels to time; the last one is the headline")
    parser.add_argument("--no-record", action="store_true", help="do not append to benchmarks/results.jsonl")
    args = parser.parse_args()
    if args.size % 32:
        parser.error(f"--size must be a multiple of 32, got {args.size}")

    if args.threads:
        torch.set_num_threads(args.threads)
    threads = torch.get_num_threads()
    space = inas_space()
    if args.arch:
        models = [(os.path.splitext(os.path.basename(path))[0], load_arch(path, space)) for path in args.arch]
    else:
        models = [("min", sample_min(space)), ("mid", middle_arch(space, args.size)), ("max", sample_max(space))]
    load_before = os.getloadavg()[0]
    start = time.perf_counter()
    rows = [bench_model(name, space, arch, args.size, threads, args.warmup, args.repeats, args.ort_levels)
            for name, arch in models]
    seconds = time.perf_counter() - start
    load_after = os.getloadavg()[0]

    print(f"Deployed models on this CPU: batch 1, {args.size} x {args.size}, {threads} intra-op threads, median of "
          f"{args.repeats} runs after {args.warmup} warm-up (load average {load_before:.1f} -> {load_after:.1f})")
    columns = ["model", "arch_id", "params_m", "macs_g", "torch_ms"]
    columns += [f"onnxruntime_ms_{level}" for level in args.ort_levels[:-1]]
    columns += ["onnxruntime_ms", "speed_up", "ort_over_torch", "ort_over_torch_best", "max_abs_diff"]
    print(format_table(rows, columns))
    ratios = [row["ort_over_torch"] for row in rows]
    print(f"onnxruntime / PyTorch: {min(ratios):.2f} .. {max(ratios):.2f} (target <= 0.6)")
    if not args.no_record:
        record_result("inference", {"input_size": args.size, "batch": 1, "threads": threads, "warmup": args.warmup,
                                    "repeats": args.repeats, "ort_levels": args.ort_levels,
                                    "load_average": [round(load_before, 2), round(load_after, 2)],
                                    "seconds": round(seconds, 1), "models": rows})


if __name__ == "__main__":
    main()

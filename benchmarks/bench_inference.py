"""Per-image inference latency of deployed models on every runtime side by side (batch 1): PyTorch eager,
onnxruntime FP32, onnxruntime INT8 (static QDQ), OpenVINO FP32 and OpenVINO INT8 (NNCF).

    python -m benchmarks.bench_inference [--size 320] [--threads N] [--repeats 20] [--arch A.json ... | --report DIR]
                                         [--ort-levels all] [--runtimes ort_int8 openvino ...]
                                         [--calibration-list LIST] [--no-record]

Models: by default three architectures of the FULL iNAS space: `min` (sample_min), `mid` (of 200 seeded uniform
samples, the one whose MACs are closest to the midpoint of min and max) and `max` (sample_max); `--arch FILE` (any
number of times) benchmarks those Arch JSON files instead, and `--report DIR` (an `analyze` output folder) the
searched front's smallest (`front_min`), knee (`knee`) and largest (`front_max`) models, by the first device's
latency. Weights are random (BN
statistics randomised, SMSUs folded; latency does not depend on the values). Each model is exported to ONNX with a
fixed (1, 3, S, S) input (`inas.deploy.onnx_export.to_onnx_bytes`), checked against PyTorch, then timed:
PyTorch eager under `torch.inference_mode()` and onnxruntime (CPU provider, sequential, the given graph optimisation
levels), both with the same intra-op thread count, `--warmup` untimed rounds then `--repeats` rounds on the same
image in which every runtime runs once in turn (so background load on a shared machine hits all alike); the median
is the headline, the best (min) run is recorded too. INT8 models are quantised from the same FP32 graph, calibrated
on `--calibration-list` images or on seeded image-like noise (`inas.runtimes.calibration`); their error against
PyTorch is recorded as the mean |diff| over the output range (FP32 runtimes: the max |diff|). OpenVINO runtimes
are skipped (and said so) when the `[openvino]` extra is not installed. Params and MACs (`inas.nn.profile`, folded
model, level-0 head) are printed beside the times, as in the paper's "Searched models on Intel Core CPU" table.
Appends one JSON line to benchmarks/results.jsonl.
"""

from __future__ import annotations

import argparse
import os
import random
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from benchmarks.common import format_table, record_result
from inas.deploy.onnx_export import to_onnx_bytes
from inas.deploy.runtime import OPTIMIZATION_LEVELS, ort_session, time_interleaved
from inas.nn import StandaloneModel, profile
from inas.nn.testing import perturb_
from inas.runtimes.calibration import Calibration, images_from_list, random_calibration
from inas.space import Arch, SearchSpace, arch_from_json, inas_space, load_arch, sample_max, sample_min, sample_uniform

EXTRA_RUNTIMES = ("ort_int8", "openvino", "openvino_int8")


def middle_arch(space: SearchSpace, size: int, samples: int = 200, seed: int = 0) -> Arch:
    """Of `samples` seeded uniform archs, the one whose MACs are closest to the midpoint of min and max MACs."""
    lo = profile(sample_min(space), (size, size), space=space)[1]
    hi = profile(sample_max(space), (size, size), space=space)[1]
    target = (lo + hi) / 2
    rng = random.Random(seed)
    candidates = [sample_uniform(space, rng) for _ in range(samples)]
    return min(candidates, key=lambda a: abs(profile(a, (size, size), space=space)[1] - target))


def front_models(report_dir: Path, space: SearchSpace) -> list[tuple[str, Arch]]:
    """The smallest, knee and largest archs of an `analyze` report (front_overall and knee_point), ordered by the
    first latency column."""
    import pandas as pd

    front = pd.read_parquet(report_dir / "front_overall.parquet")
    knee = pd.read_parquet(report_dir / "knee_point.parquet")
    latency = next(c for c in front.columns if str(c).startswith("latency_ms__"))
    front = front.sort_values(latency)
    rows = [("front_min", front.iloc[0]), ("knee", knee.iloc[0]), ("front_max", front.iloc[-1])]
    return [(name, arch_from_json(row["arch"], space)) for name, row in rows]


def deployed_model(space: SearchSpace, arch: Arch, seed: int = 0) -> StandaloneModel:
    """The folded, eval-mode stand-alone model of `arch` with random weights and BN statistics (level-0 head)."""
    torch.manual_seed(seed)
    model = StandaloneModel(space, arch, num_classes=1, output_levels=(0,))
    perturb_(model, seed=seed)
    return model.reparameterize().eval()


def int8_runs(model: StandaloneModel, onnx_bytes: bytes, image: torch.Tensor, runtimes: list[str], threads: int,
              calibration: Calibration) -> dict[str, Callable[[], object]]:
    """{runtime: zero-argument forward pass} for the INT8 / OpenVINO runtimes asked for and installed here."""
    from inas.runtimes.quantize import quantize_onnx_int8

    feeds = [{"image": calibration.samples[k : k + 1]} for k in range(len(calibration.samples))]
    x = image.numpy()
    runs: dict[str, Callable[[], object]] = {}
    if "ort_int8" in runtimes:
        session = ort_session(quantize_onnx_int8(onnx_bytes, feeds), threads=threads)
        runs["ort_int8"] = lambda: session.run(None, {"image": x})[0]
    if any(r.startswith("openvino") for r in runtimes):
        from inas.runtimes.ov_runtime import compile_cpu, nncf_int8, openvino_missing, ov_model_from_onnx

        problem = openvino_missing(int8="openvino_int8" in runtimes)
        if problem:
            print(f"skipping OpenVINO: {problem}")
            return runs
        for name in [r for r in runtimes if r.startswith("openvino")]:
            ov_model = ov_model_from_onnx(onnx_bytes)
            if name == "openvino_int8":
                ov_model = nncf_int8(ov_model, feeds)
            request = compile_cpu(ov_model, threads).create_infer_request()
            runs[name] = lambda r=request: r.infer([x])[0]
    return runs


def error_of(name: str, got: np.ndarray, expected: np.ndarray) -> float:
    """max |diff| for FP32 runtimes; mean |diff| / output range for INT8 ones."""
    diff = np.abs(np.asarray(got) - expected)
    if name.endswith("int8"):
        return float(diff.mean() / (float(expected.max() - expected.min()) or 1.0))
    return float(diff.max())


def bench_model(name: str, space: SearchSpace, arch: Arch, size: int, threads: int, warmup: int, repeats: int,
                levels: list[str], runtimes: list[str], calibration: Calibration) -> dict:
    """One table row: params, MACs, and the median (and best) latency of every runtime, timed alternately."""
    model = deployed_model(space, arch)
    params, macs = profile(arch, (size, size), space=space)
    image = torch.randn(1, 3, size, size, generator=torch.Generator().manual_seed(0))
    with torch.inference_mode():
        expected = model(image).contiguous().numpy()
    onnx_bytes = to_onnx_bytes(model, (size, size))
    feed = {"image": image.numpy()}
    runs = {"torch": lambda: model(image)}
    outputs = {}
    for level in levels:
        session = ort_session(onnx_bytes, threads=threads, optimization=level)
        runs[level] = lambda s=session: s.run(None, feed)[0]
    runs.update(int8_runs(model, onnx_bytes, image, runtimes, threads, calibration))
    for key, run in runs.items():
        if key != "torch":
            outputs[key] = error_of(key, run(), expected)
    with torch.inference_mode():
        timings = time_interleaved(runs, warmup, repeats)
    row = {"model": name, "arch_id": arch.arch_id, "params_m": round(params / 1e6, 3), "macs_g": round(macs / 1e9, 3),
           "torch_ms": round(timings["torch"].median_ms, 2), "torch_min_ms": round(timings["torch"].min_ms, 2)}
    for level in levels:
        suffix = "" if level == levels[-1] else f"_{level}"
        row[f"onnxruntime_ms{suffix}"] = round(timings[level].median_ms, 2)
        row[f"onnxruntime_min_ms{suffix}"] = round(timings[level].min_ms, 2)
        row[f"max_abs_diff{suffix}"] = float(f"{outputs[level]:.3g}")
    for key in [k for k in runs if k not in levels and k != "torch"]:
        row[f"{key}_ms"] = round(timings[key].median_ms, 2)
        row[f"{key}_min_ms"] = round(timings[key].min_ms, 2)
        row[f"{key}_error"] = float(f"{outputs[key]:.3g}")
    row["speed_up"] = round(row["torch_ms"] / row["onnxruntime_ms"], 2)
    row["ort_over_torch"] = round(row["onnxruntime_ms"] / row["torch_ms"], 3)
    row["ort_over_torch_best"] = round(row["onnxruntime_min_ms"] / row["torch_min_ms"], 3)
    if "ort_int8_ms" in row:
        row["int8_speed_up"] = round(row["onnxruntime_ms"] / row["ort_int8_ms"], 2)
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=320, help="square input side (multiple of 32; default 320)")
    parser.add_argument("--threads", type=int, default=0, help="intra-op threads for both runtimes (0 = torch default)")
    parser.add_argument("--warmup", type=int, default=5, help="untimed runs per model and runtime")
    parser.add_argument("--repeats", type=int, default=20, help="timed runs per model and runtime (median reported)")
    parser.add_argument("--arch", action="append", default=[], help="Arch JSON file to benchmark (repeatable)")
    parser.add_argument("--report", default=None,
                        help="`analyze` output folder: benchmark the front's smallest, knee and largest models")
    parser.add_argument("--ort-levels", nargs="+", choices=list(OPTIMIZATION_LEVELS), default=["all"],
                        help="onnxruntime graph optimisation levels to time; the last one is the headline")
    parser.add_argument("--runtimes", nargs="*", choices=list(EXTRA_RUNTIMES), default=list(EXTRA_RUNTIMES),
                        help="runtimes besides PyTorch and onnxruntime FP32 (default: all; OpenVINO ones are skipped "
                             "without the [openvino] extra)")
    parser.add_argument("--calibration-list", default=None,
                        help="INT8 calibration images (list file, paths relative to its folder); default: random")
    parser.add_argument("--calibration-images", type=int, default=8, help="INT8 calibration samples (default 8)")
    parser.add_argument("--no-record", action="store_true", help="do not append to benchmarks/results.jsonl")
    args = parser.parse_args()
    if args.size % 32:
        parser.error(f"--size must be a multiple of 32, got {args.size}")

    if args.threads:
        torch.set_num_threads(args.threads)
    threads = torch.get_num_threads()
    space = inas_space()
    if args.report:
        models = front_models(Path(args.report), space)
    elif args.arch:
        models = [(os.path.splitext(os.path.basename(path))[0], load_arch(path, space)) for path in args.arch]
    else:
        models = [("min", sample_min(space)), ("mid", middle_arch(space, args.size)), ("max", sample_max(space))]
    load_before = os.getloadavg()[0]
    start = time.perf_counter()
    if args.calibration_list:
        lst = Path(args.calibration_list)
        calibration = images_from_list(lst.parent, lst.name, args.calibration_images, (args.size, args.size))
    else:
        calibration = random_calibration((3, args.size, args.size), args.calibration_images)
    rows = [bench_model(name, space, arch, args.size, threads, args.warmup, args.repeats, args.ort_levels,
                        args.runtimes, calibration) for name, arch in models]
    seconds = time.perf_counter() - start
    load_after = os.getloadavg()[0]

    print(f"Deployed models on this CPU: batch 1, {args.size} x {args.size}, {threads} intra-op threads, median of "
          f"{args.repeats} runs after {args.warmup} warm-up (load average {load_before:.1f} -> {load_after:.1f})")
    columns = ["model", "arch_id", "params_m", "macs_g", "torch_ms"]
    columns += [f"onnxruntime_ms_{level}" for level in args.ort_levels[:-1]]
    columns += ["onnxruntime_ms", "speed_up", "ort_over_torch", "ort_over_torch_best", "max_abs_diff"]
    columns += [c for r in EXTRA_RUNTIMES if f"{r}_ms" in rows[0] for c in (f"{r}_ms", f"{r}_error")]
    columns += ["int8_speed_up"] if "int8_speed_up" in rows[0] else []
    print(format_table(rows, columns))
    print(f"INT8 calibration: {calibration.source} ({len(calibration.samples)} samples); *_error of INT8 runtimes: "
          "mean |diff| / output range against PyTorch")
    ratios = [row["ort_over_torch"] for row in rows]
    print(f"onnxruntime / PyTorch: {min(ratios):.2f} .. {max(ratios):.2f} (target <= 0.6)")
    if not args.no_record:
        record_result("inference", {"input_size": args.size, "batch": 1, "threads": threads, "warmup": args.warmup,
                                    "repeats": args.repeats, "ort_levels": args.ort_levels,
                                    "runtimes": args.runtimes, "calibration": calibration.source,
                                    "load_average": [round(load_before, 2), round(load_after, 2)],
                                    "seconds": round(seconds, 1), "models": rows})


if __name__ == "__main__":
    main()

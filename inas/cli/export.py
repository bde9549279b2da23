"""`export MODEL.pt -o model.onnx`: ONNX export checked against PyTorch and timed against it on this machine."""

from __future__ import annotations

import argparse
import sys

import torch

from inas.deploy.model_file import detect_model_kind, load_model_file
from inas.deploy.onnx_export import (
    DEFAULT_OPSET,
    DEFAULT_TOLERANCE,
    MAX_OPSET,
    MIN_OPSET,
    ExportMismatchError,
    check_input_hw,
    export_onnx,
)
from inas.deploy.runtime import OPTIMIZATION_LEVELS, compare_latency
from inas.errors import BadInputError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model", help="stand-alone model file written by `convert` (.pt)")
    parser.add_argument("-o", "--output", required=True, help="ONNX file to write (atomically)")
    parser.add_argument("--opset", type=int, default=DEFAULT_OPSET,
                        help=f"ONNX opset ({MIN_OPSET}..{MAX_OPSET}, default {DEFAULT_OPSET})")
    parser.add_argument("--dynamic", action="store_true",
                        help="symbolic batch, height and width (H, W any multiples of 32); default: fixed "
                             "(1, 3, H, W)")
    parser.add_argument("--size", type=int, nargs=2, metavar=("H", "W"), default=None,
                        help="input height and width (multiples of 32; default: the model's input size)")
    parser.add_argument("--tolerance", type=float, default=DEFAULT_TOLERANCE,
                        help=f"largest allowed |onnxruntime - PyTorch| (default {DEFAULT_TOLERANCE:g})")
    parser.add_argument("--threads", type=int, default=None,
                        help="intra-op threads for both runtimes (default: torch's default thread count)")
    parser.add_argument("--optimization", choices=list(OPTIMIZATION_LEVELS), default="all",
                        help="onnxruntime graph optimisation level for the timing (default all)")
    parser.add_argument("--warmup", type=int, default=5, help="untimed runs before timing (default 5)")
    parser.add_argument("--repeats", type=int, default=20, help="timed runs, median reported (default 20)")
    parser.add_argument("--no-timing", action="store_true", help="skip the latency comparison")


def main(args: argparse.Namespace) -> int:
    if args.threads is not None and args.threads < 1:
        raise BadInputError(f"must be >= 1, got {args.threads}", key="--threads")
    if args.repeats < 1 or args.warmup < 0:
        raise BadInputError(f"need --repeats >= 1 and --warmup >= 0, got {args.repeats}, {args.warmup}",
                            key="--repeats")
    if detect_model_kind(args.model) == "onnx":
        raise BadInputError("this is already an ONNX file; export takes the .pt model written by `convert`",
                            path=args.model)
    model, info = load_model_file(args.model)
    input_hw = check_input_hw(tuple(args.size) if args.size else info.input_hw)
    if args.threads:
        torch.set_num_threads(args.threads)
    try:
        result = export_onnx(model, info, args.output, input_hw=input_hw, opset=args.opset, dynamic=args.dynamic,
                             tolerance=args.tolerance, threads=args.threads)
    except ExportMismatchError as exc:
        print(f"error: export check failed: {exc}", file=sys.stderr)
        return 1
    axes = "batch, height, width (H and W: multiples of 32)" if result.dynamic else "none (fixed 1 x 3 x H x W)"
    print(f"wrote {result.path} ({result.onnx_bytes / 1e6:.2f} MB, opset {result.opset}, arch {info.arch.arch_id}, "
          f"input {input_hw[0]} x {input_hw[1]}, dynamic axes: {axes})")
    for shape, diff in result.check.diffs:
        print(f"check onnxruntime vs PyTorch on input {shape}: max |diff| = {diff:.3g}")
    print(f"check passed: max |diff| {result.check.max_abs_diff:.3g} <= tolerance {result.check.tolerance:g}")
    if not args.no_timing:
        timing = compare_latency(model, args.output, input_hw, threads=args.threads, warmup=args.warmup,
                                 repeats=args.repeats, optimization=args.optimization)
        print(f"latency, batch 1, {input_hw[0]} x {input_hw[1]}, {timing.threads} threads, median of "
              f"{args.repeats} runs after {args.warmup} warm-up:")
        print(f"  PyTorch eager  {timing.torch.median_ms:9.2f} ms")
        print(f"  onnxruntime    {timing.onnxruntime.median_ms:9.2f} ms  ({timing.ratio:.2f} x PyTorch, "
              f"optimisation '{args.optimization}')")
    return 0

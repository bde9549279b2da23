"""`export MODEL.pt -o model.onnx [--int8 [--calibration-list LIST] [--calibration-images N]] [--format openvino]`:
ONNX (FP32 or QDQ INT8) or OpenVINO IR export, checked against PyTorch and timed against it on this machine."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import torch

from inas.cli.common import add_out_argument, check_at_least
from inas.deploy.model_file import detect_model_kind, load_model_file
from inas.deploy.onnx_export import (
    DEFAULT_INT8_TOLERANCE,
    DEFAULT_OPSET,
    DEFAULT_TOLERANCE,
    MAX_OPSET,
    MIN_OPSET,
    ExportMismatchError,
    check_input_hw,
    export_onnx,
    export_openvino,
)
from inas.deploy.runtime import OPTIMIZATION_LEVELS, compare_latency
from inas.errors import BadInputError
from inas.paths import check_output_path
from inas.runtimes.calibration import Calibration, images_from_list, random_calibration
from inas.runtimes.ov_runtime import require_openvino

CALIBRATION_IMAGES = 16


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model", help="stand-alone model file written by `convert` (.pt)")
    add_out_argument(parser, "file to write: NAME.onnx (atomically), or NAME.xml (+ NAME.bin) with --format openvino",
                     required=True)
    parser.add_argument("--format", choices=["onnx", "openvino"], default="onnx",
                        help='onnx (default; onnxruntime) or openvino (OpenVINO IR; needs the [openvino] extra: '
                             'pip install -e ".[openvino]")')
    parser.add_argument("--int8", action="store_true",
                        help="post-training static INT8 quantisation: QDQ ONNX (onnxruntime), or NNCF for openvino")
    parser.add_argument("--calibration-list", default=None,
                        help="--int8: list file of calibration images (paths relative to the list's folder, labels "
                             "optional); default: random image-like data (said in the metadata)")
    parser.add_argument("--calibration-images", type=int, default=CALIBRATION_IMAGES,
                        help=f"--int8: use the first N readable images of the list (default {CALIBRATION_IMAGES})")
    parser.add_argument("--opset", type=int, default=DEFAULT_OPSET,
                        help=f"ONNX opset ({MIN_OPSET}..{MAX_OPSET}, default {DEFAULT_OPSET})")
    parser.add_argument("--dynamic", action="store_true",
                        help="symbolic batch, height and width (H, W any multiples of 32); default: fixed "
                             "(1, 3, H, W)")
    parser.add_argument("--size", type=int, nargs=2, metavar=("H", "W"), default=None,
                        help="input height and width (multiples of 32; default: the model's input size)")
    parser.add_argument("--tolerance", type=float, default=None,
                        help=f"largest allowed |exported - PyTorch| (default {DEFAULT_TOLERANCE:g}); --int8: largest "
                             f"mean |diff| as a share of the output range (default {DEFAULT_INT8_TOLERANCE:g})")
    parser.add_argument("--threads", type=int, default=None,
                        help="intra-op threads for both runtimes (default: torch's default thread count)")
    parser.add_argument("--optimization", choices=list(OPTIMIZATION_LEVELS), default="all",
                        help="onnxruntime graph optimisation level for the timing (default all)")
    parser.add_argument("--warmup", type=int, default=5, help="untimed runs before timing (default 5)")
    parser.add_argument("--repeats", type=int, default=20, help="timed runs, median reported (default 20)")
    parser.add_argument("--no-timing", action="store_true", help="skip the latency comparison")


def calibration_of(args: argparse.Namespace, input_hw: tuple[int, int]) -> Calibration | None:
    """The --int8 calibration data: the list's images, else seeded random image-like data; None without --int8."""
    if not args.int8:
        if args.calibration_list:
            raise BadInputError("only used with --int8", key="--calibration-list")
        return None
    check_at_least("--calibration-images", args.calibration_images)
    if args.calibration_list is None:
        return random_calibration((3, *input_hw), args.calibration_images)
    lst = Path(args.calibration_list)
    return images_from_list(lst.parent, lst.name, args.calibration_images, input_hw)


def describe(calibration: Calibration | None) -> str:
    """"FP32", or "INT8, calibrated on N images of LIST" / "... N random image-like inputs"."""
    if calibration is None:
        return "FP32"
    what = f"images of {calibration.source.removeprefix('images:')}" if calibration.from_images \
        else "random image-like inputs"
    return f"INT8, calibrated on {len(calibration.samples)} {what}"


def main(args: argparse.Namespace) -> int:
    check_at_least("--threads", args.threads)
    check_at_least("--repeats", args.repeats)
    check_at_least("--warmup", args.warmup, 0)
    check_output_path(args.out, "file", key="--out")
    if args.format == "openvino":
        check_output_path(Path(args.out).with_suffix(".bin"), "file", key="--out")
    if detect_model_kind(args.model) == "onnx":
        raise BadInputError("this is already an ONNX file; export takes the .pt model written by `convert`",
                            path=args.model)
    if args.format == "openvino":
        require_openvino(int8=args.int8, key="--format")
        if args.dynamic:
            raise BadInputError("OpenVINO IRs are exported with a fixed input size", key="--dynamic")
    model, info = load_model_file(args.model)
    input_hw = check_input_hw(tuple(args.size) if args.size else info.input_hw)
    calibration = calibration_of(args, input_hw)
    if args.threads:
        torch.set_num_threads(args.threads)
    fp32_model = os.path.relpath(Path(args.model).resolve(), Path(args.out).resolve().parent)
    common = {"input_hw": input_hw, "opset": args.opset, "tolerance": args.tolerance, "threads": args.threads,
              "int8": calibration, "fp32_model": fp32_model}
    try:
        if args.format == "openvino":
            result = export_openvino(model, info, args.out, **common)
        else:
            result = export_onnx(model, info, args.out, dynamic=args.dynamic, **common)
    except ExportMismatchError as exc:
        print(f"error: export check failed: {exc}", file=sys.stderr)
        return 1
    axes = "batch, height, width (H and W: multiples of 32)" if result.dynamic else "none (fixed 1 x 3 x H x W)"
    runtime = "OpenVINO" if args.format == "openvino" else "onnxruntime"
    print(f"wrote {result.path} ({result.onnx_bytes / 1e6:.2f} MB, {describe(calibration)}, opset {result.opset}, arch "
          f"{info.arch.arch_id}, input {input_hw[0]} x {input_hw[1]}, dynamic axes: {axes})")
    for shape, diff in result.check.diffs:
        print(f"check {runtime} vs PyTorch on input {shape}: {result.check.statistic} = {diff:.3g}")
    print(f"check passed: {result.check.statistic} {result.check.max_abs_diff:.3g} <= tolerance "
          f"{result.check.tolerance:g}")
    if not args.no_timing and args.format == "onnx":
        timing = compare_latency(model, args.out, input_hw, threads=args.threads, warmup=args.warmup,
                                 repeats=args.repeats, optimization=args.optimization)
        print(f"latency, batch 1, {input_hw[0]} x {input_hw[1]}, {timing.threads} threads, median of "
              f"{args.repeats} runs after {args.warmup} warm-up:")
        print(f"  PyTorch eager  {timing.torch.median_ms:9.2f} ms")
        print(f"  onnxruntime    {timing.onnxruntime.median_ms:9.2f} ms  ({timing.ratio:.2f} x PyTorch, "
              f"optimisation '{args.optimization}'{', INT8' if args.int8 else ''})")
    return 0

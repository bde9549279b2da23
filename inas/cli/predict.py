"""`predict MODEL INPUT_DIR -o OUT_DIR`: saliency maps or colour-coded segmentation masks for a folder of images,
with a .pt, an FP32 or INT8 .onnx or an OpenVINO .xml model (chosen by the file)."""

from __future__ import annotations

import argparse
import sys

import torch

from inas.cli.common import add_out_argument, check_at_least
from inas.deploy.onnx_export import check_input_hw
from inas.deploy.predict import predict_folder
from inas.deploy.runtime import load_predictor
from inas.errors import BadInputError

_LISTED = 20


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model", help="model file: .pt from `convert`, .onnx (FP32 or INT8) or .xml (OpenVINO IR) "
                        "from `export`")
    parser.add_argument("input_dir", help="folder of images (every file directly inside is tried)")
    add_out_argument(parser, "folder for the PNG outputs (<stem>.png)", required=True)
    parser.add_argument("--size", type=int, default=None,
                        help="network input side S (S x S, multiple of 32; default: the model's input size)")
    parser.add_argument("--threads", type=int, default=None, help="intra-op threads (default: torch's default)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def main(args: argparse.Namespace) -> int:
    check_at_least("--threads", args.threads)
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    predictor = load_predictor(args.model, threads=args.threads)
    input_hw = None
    if args.size is not None:
        input_hw = check_input_hw((args.size, args.size))
        if predictor.fixed_hw is not None and input_hw != predictor.fixed_hw:
            raise BadInputError(f"this ONNX model has a fixed input size {predictor.fixed_hw[0]} x "
                                f"{predictor.fixed_hw[1]}; drop --size or re-export with --dynamic", key="--size")
    report = predict_folder(predictor, args.input_dir, args.out, input_hw=input_hw, progress=not args.no_progress)
    for path, reason in report.failed[:_LISTED]:
        print(f"skipped {path}: {reason}", file=sys.stderr)
    if len(report.failed) > _LISTED:
        print(f"... and {len(report.failed) - _LISTED} more skipped", file=sys.stderr)
    kind = "saliency maps" if predictor.info.task == "sod" else "segmentation masks"
    print(f"{report.summary()}; {kind} in {args.out}")
    if not report.written:
        raise BadInputError("no image could be read; nothing was predicted", path=args.input_dir)
    return 0

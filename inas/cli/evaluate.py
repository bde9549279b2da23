"""`evaluate --pred DIR --gt DIR`: score a folder of predicted maps against ground-truth masks (by file stem)."""

from __future__ import annotations

import argparse
import csv
import io
import math

import torch

from inas.cli.common import add_out_argument
from inas.errors import BadInputError
from inas.io import atomic_write_text
from inas.metrics import PROTOCOLS, SOD_METRIC_NAMES
from inas.metrics.folder import evaluate_folders
from inas.paths import check_output_path

MAX_THREADS = 256
MAX_CLASSES = 1000  # the confusion matrix is classes^2 counts


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--pred", required=True, help="folder of predicted maps (PNG/JPG), any size")
    parser.add_argument("--gt", required=True, help="folder of ground-truth masks, matched to predictions by stem")
    parser.add_argument("--task", choices=["sod", "seg"], default="sod", help="salient objects or segmentation")
    parser.add_argument(
        "--protocol",
        choices=list(PROTOCOLS),
        default="standard",
        help="standard: pysodmetrics conventions (seg: mIoU over present classes); "
        "legacy: the original iNAS numbers (SOD: max F, MAE, S only; seg: plain mean, NaN if a class is absent)",
    )
    parser.add_argument("--num-classes", type=int, default=19, help="segmentation classes (seg only)")
    parser.add_argument("--ignore-index", type=int, default=255, help="ground-truth label to ignore (seg only)")
    parser.add_argument(
        "--class-names", default=None, help="comma-separated class names for the iou_<name> columns (seg only)"
    )
    parser.add_argument(
        "--allow-missing", action="store_true", help="score only matched images when some masks have no prediction"
    )
    add_out_argument(parser, "CSV file to write (default: metrics.csv)", default="metrics.csv")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch threads (default 1: per-image metric work gains little from more, and extra threads stall "
        "badly when other processes share the cores)",
    )


def _format(value: float) -> str:
    return "nan" if math.isnan(value) else f"{value:.4f}"


def _table(metrics: dict[str, float]) -> str:
    """A one-row text table: a header line and a value line, columns aligned."""
    cells = [(name, _format(value)) for name, value in metrics.items()]
    widths = [max(len(name), len(text)) for name, text in cells]
    header = "  ".join(name.rjust(width) for (name, _), width in zip(cells, widths, strict=True))
    row = "  ".join(text.rjust(width) for (_, text), width in zip(cells, widths, strict=True))
    return f"{header}\n{row}"


def _csv_text(metrics: dict[str, float]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(list(metrics))
    writer.writerow([repr(float(value)) for value in metrics.values()])
    return buffer.getvalue()


def main(args: argparse.Namespace) -> int:
    if not 1 <= args.threads <= MAX_THREADS:
        raise BadInputError(f"must be in 1..{MAX_THREADS}, got {args.threads}", key="--threads")
    check_output_path(args.out, "file", key="--out")
    torch.set_num_threads(args.threads)
    class_names = None
    if args.class_names:
        class_names = [name.strip() for name in args.class_names.split(",")]
        if len(class_names) != args.num_classes:
            raise BadInputError(
                f"{len(class_names)} class names given for --num-classes {args.num_classes}", key="--class-names"
            )
    if args.task == "seg" and not 1 <= args.num_classes <= MAX_CLASSES:
        raise BadInputError(f"must be in 1..{MAX_CLASSES}, got {args.num_classes}", key="--num-classes")
    if not -(2**31) <= args.ignore_index < 2**31:
        raise BadInputError(f"must be a 32-bit integer, got {args.ignore_index}", key="--ignore-index")
    result = evaluate_folders(
        args.pred,
        args.gt,
        task=args.task,
        protocol=args.protocol,
        num_classes=args.num_classes,
        ignore_index=args.ignore_index,
        class_names=class_names,
        allow_missing=args.allow_missing,
        progress=not args.no_progress,
    )
    metrics = result.metrics
    if args.task == "sod":
        metrics = {name: metrics[name] for name in SOD_METRIC_NAMES}
    print(f"{result.num_images} images ({args.task}, {args.protocol} protocol)")
    print(_table(metrics))
    atomic_write_text(args.out, _csv_text(metrics))
    print(f"wrote {args.out}")
    return 0

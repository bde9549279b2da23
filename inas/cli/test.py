"""`test MODEL -c CONFIG [-o OUT_DIR] [--save-maps]`: evaluate a stand-alone model (.pt), an ONNX export (FP32 or
INT8) or an OpenVINO IR (.xml) on every test list of the config; prints a table and writes metrics.csv and
metrics.parquet (one row per data set). An INT8 model whose FP32 source model (named in its metadata) is at hand is
compared with it: the FP32 metrics and the drop are printed and written to int8_vs_fp32.csv."""

from __future__ import annotations

import argparse
import math
import time
from pathlib import Path

import pandas as pd
import torch

from inas.cli.common import add_config_argument, add_out_argument, check_at_least
from inas.config import load_config
from inas.deploy.evaluate import eval_input_hw, evaluate_model
from inas.deploy.onnx_export import check_input_hw
from inas.deploy.runtime import load_predictor
from inas.errors import BadInputError
from inas.io import atomic_write_parquet, atomic_write_text
from inas.metrics import PROTOCOLS
from inas.paths import check_output_path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model", help="model file: .pt from `convert`, .onnx (FP32 or INT8) or .xml (OpenVINO IR) "
                        "from `export`")
    add_config_argument(parser, required=True)
    add_out_argument(parser, "output folder for metrics.csv / metrics.parquet / maps (default: <MODEL>-test beside "
                             "the model)")
    parser.add_argument("--save-maps", action="store_true",
                        help="also write the predicted maps to OUT_DIR/maps/<dataset>/<image>.png")
    parser.add_argument("--lists", nargs="+", default=None,
                        help="list files to evaluate instead of the config's data.test_lists")
    parser.add_argument("--size", type=int, default=None,
                        help="network input side S x S (multiple of 32; default: the model's fixed size, else the "
                             "config's data.image_size for SOD and each image's own size for segmentation)")
    parser.add_argument("--protocol", choices=list(PROTOCOLS), default="standard", help="metric protocol")
    parser.add_argument("--batch-size", type=int, default=None, help="evaluation batch size (default: data.batch_size)")
    parser.add_argument("--threads", type=int, default=None, help="intra-op threads (default: torch's default)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")


def format_metrics_table(frame: pd.DataFrame) -> str:
    """Fixed-width text table: strings and ints as they are, floats with 4 decimals."""
    def cell(value: object) -> str:
        if isinstance(value, float):
            return "nan" if math.isnan(value) else f"{value:.4f}"
        return str(value)

    columns = list(frame.columns)
    cells = [[cell(v) for v in row] for row in frame.itertuples(index=False)]
    widths = [max([len(c)] + [len(r[i]) for r in cells]) for i, c in enumerate(columns)]
    lines = ["  ".join(c.rjust(w) for c, w in zip(columns, widths, strict=True))]
    lines += ["  ".join(v.rjust(w) for v, w in zip(r, widths, strict=True)) for r in cells]
    return "\n".join(lines)


def _check_model_fits(predictor, config, args: argparse.Namespace) -> None:
    """BadInputError when the model's task, class count or fixed input size disagrees with the config or --size."""
    info = predictor.info
    if info.task != config.task:
        raise BadInputError(f"the model is a {info.task!r} model but the config's task is {config.task!r}",
                            path=args.model)
    if info.task == "seg" and info.num_classes != config.data.num_classes:
        raise BadInputError(f"the model predicts {info.num_classes} classes but data.num_classes is "
                            f"{config.data.num_classes}", path=args.model)
    if args.size is not None:
        check_input_hw((args.size, args.size))
        if predictor.fixed_hw is not None and (args.size, args.size) != predictor.fixed_hw:
            raise BadInputError(f"this ONNX model has a fixed input size {predictor.fixed_hw[0]} x "
                                f"{predictor.fixed_hw[1]}; drop --size or re-export with --dynamic", key="--size")


def _compare_with_fp32(predictor, model_path: Path, frame: pd.DataFrame, config, input_hw, out_dir: Path,
                       args: argparse.Namespace) -> None:
    """An INT8 model with its FP32 source at hand: evaluate that too, print and write the drop per metric."""
    fp32_path = fp32_source(predictor, model_path)
    if fp32_path is None:
        if predictor.precision == "int8":
            print("no FP32 model at hand to compare with (the INT8 model's metadata names none, or it is missing)")
        return
    fp32 = evaluate_model(load_predictor(fp32_path, threads=args.threads), config.data, list_names=args.lists,
                          input_hw=input_hw, protocol=args.protocol, batch_size=args.batch_size,
                          progress=not args.no_progress)
    drop = int8_drop(fp32, frame)
    print(f"FP32 model {fp32_path} and the drop (FP32 - INT8):")
    print(format_metrics_table(drop))
    atomic_write_text(out_dir / "int8_vs_fp32.csv", drop.to_csv(index=False, float_format="%.17g"))
    print(f"wrote {out_dir / 'int8_vs_fp32.csv'}")


def main(args: argparse.Namespace) -> int:
    check_at_least("--threads", args.threads)
    check_at_least("--batch-size", args.batch_size)
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    config = load_config(args.config)
    model_path = Path(args.model)
    out_dir = check_output_path(Path(args.out) if args.out else model_path.parent / f"{model_path.name}-test",
                                "folder", key="--out")
    if args.save_maps:
        check_output_path(out_dir / "maps", "folder", key="--save-maps")
    predictor = load_predictor(args.model, threads=args.threads)
    _check_model_fits(predictor, config, args)
    info = predictor.info
    input_hw = eval_input_hw(predictor, config.data, info.task, args.size)
    start = time.perf_counter()
    frame = evaluate_model(predictor, config.data, list_names=args.lists, input_hw=input_hw,
                           protocol=args.protocol, batch_size=args.batch_size,
                           maps_dir=out_dir / "maps" if args.save_maps else None, progress=not args.no_progress)
    seconds = time.perf_counter() - start
    size = "own size" if input_hw is None else f"{input_hw[0]} x {input_hw[1]}"
    print(f"{model_path.name} ({predictor.backend}, {predictor.precision.upper()}, arch {info.arch.arch_id}, "
          f"{info.task}, input {size}, {args.protocol} protocol, {seconds:.1f} s)")
    print(format_metrics_table(frame))
    atomic_write_text(out_dir / "metrics.csv", frame.to_csv(index=False, float_format="%.17g"))
    atomic_write_parquet(out_dir / "metrics.parquet", frame)
    print(f"wrote {out_dir / 'metrics.csv'} and metrics.parquet" + (f", maps in {out_dir / 'maps'}"
                                                                   if args.save_maps else ""))
    _compare_with_fp32(predictor, model_path, frame, config, input_hw, out_dir, args)
    return 0


def fp32_source(predictor, model_path: Path) -> Path | None:
    """The FP32 model an INT8 model was quantised from, if its metadata names one and it exists."""
    quant = predictor.metadata.quantization if predictor.metadata is not None else None
    if quant is None or not quant.fp32_model:
        return None
    path = (model_path.parent / quant.fp32_model).resolve()
    return path if path.is_file() else None


def int8_drop(fp32: pd.DataFrame, int8: pd.DataFrame) -> pd.DataFrame:
    """One row per data set and numeric metric: the FP32 value, the INT8 value and fp32 - int8."""
    keys = [c for c in fp32.columns if not pd.api.types.is_float_dtype(fp32[c])]
    metrics = [c for c in fp32.columns if c not in keys]
    rows = []
    for (_, a), (_, b) in zip(fp32.iterrows(), int8.iterrows(), strict=True):
        for m in metrics:
            rows.append({**{k: a[k] for k in keys}, "metric": m, "fp32": float(a[m]), "int8": float(b[m]),
                         "drop": float(a[m]) - float(b[m])})
    return pd.DataFrame(rows)

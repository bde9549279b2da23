"""`convert --arch ARCH.json --supernet CKPT [-c CONFIG] [--finetune N] -o OUT.pt`: the stand-alone model of one
architecture (weights sliced from the supernet, BN recalibrated on the training list, SMSUs folded), checked against
the supernet paths on the validation list, optionally fine-tuned (the better of the models before and after
fine-tuning on the validation list is kept, unless `--keep-finetuned`), saved as one self-describing file."""

from __future__ import annotations

import argparse
import math
import sys

import torch

from inas.cli.common import add_config_argument, add_out_argument, check_at_least
from inas.config import ExperimentConfig, load_config
from inas.deploy.conversion import DEFAULT_BN_BATCHES, ConvertOptions, ConvertResult, convert_arch
from inas.deploy.convert import DEFAULT_CHECK_TOLERANCE, ConsistencyReport
from inas.metrics import PROTOCOLS
from inas.nn.device import resolve_device
from inas.paths import check_output_path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--arch", required=True, help="Arch JSON file (ours or the original's saved format)")
    parser.add_argument("--supernet", required=True,
                        help="supernet checkpoint: ours (from `train`) or an original iNAS one (then the config's "
                             "space, task and model.output_levels describe it)")
    add_config_argument(parser, required=False)
    add_out_argument(parser, "stand-alone model file to write (.pt)", required=True)
    parser.add_argument("--bn-batches", type=int, default=DEFAULT_BN_BATCHES,
                        help=f"training batches for BN recalibration (default {DEFAULT_BN_BATCHES}, batch size "
                             "data.batch_size)")
    parser.add_argument("--finetune", type=int, default=0, metavar="N",
                        help="fine-tune the stand-alone model for N iterations with the training recipe of the "
                             "config's train section, labels only (default 0)")
    parser.add_argument("--keep-finetuned", action="store_true",
                        help="write the fine-tuned model even when it scores worse on the validation list than the "
                             "model before fine-tuning (default: keep the better one, by maxF / mIoU)")
    parser.add_argument("--lr", type=float, default=None,
                        help="fine-tuning backbone learning rate (default: the config's train.lr; the rest gets "
                             "train.head_lr_multiplier times it)")
    parser.add_argument("--protocol", choices=list(PROTOCOLS), default="standard", help="metric protocol")
    parser.add_argument("--no-check", action="store_true", help="skip the consistency check on the validation list")
    parser.add_argument("--check-tolerance", type=float, default=DEFAULT_CHECK_TOLERANCE,
                        help=f"largest allowed metric / output difference between the paths "
                             f"(default {DEFAULT_CHECK_TOLERANCE:g})")
    parser.add_argument("--device", default="auto",
                        help="torch device for recalibration, checks and fine-tuning: auto (cuda if available, else "
                             "cpu), cpu, cuda, cuda:N")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's default)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")


def _fmt(value: float) -> str:
    return "nan" if math.isnan(value) else f"{value:.6f}"


def print_consistency(report: ConsistencyReport, tolerance: float) -> None:
    names = list(report.standalone)
    rows = [("supernet, multi-branch SMSU (train mode, BN eval)", report.multibranch),
            ("supernet, folded SMSU (eval mode)", report.supernet_eval),
            ("stand-alone model (sliced + folded)", report.standalone)]
    width = max(len(label) for label, _ in rows)
    print("consistency check on the validation list:")
    print("  " + "path".ljust(width) + "".join(f"{n:>12}" for n in names))
    for label, scores in rows:
        print("  " + label.ljust(width) + "".join(f"{_fmt(scores[n]):>12}" for n in names))
    print(f"  max |metric difference| = {report.max_metric_diff:.3g}; max |output difference| on a batch "
          f"{tuple(report.batch_shape)}: multi-branch vs stand-alone {report.max_abs_diff_multibranch:.3g}, "
          f"folded supernet vs stand-alone {report.max_abs_diff_supernet_eval:.3g}")
    verdict = "agree" if report.agrees(tolerance) else "DISAGREE"
    print(f"  the three paths {verdict} (tolerance {tolerance:g})")


def main(args: argparse.Namespace) -> int:
    check_at_least("--bn-batches", args.bn_batches)
    check_at_least("--finetune", args.finetune, 0)
    check_at_least("--threads", args.threads)
    check_output_path(args.out, "file", key="--out")
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    config = load_config(args.config) if args.config else ExperimentConfig()
    options = ConvertOptions(bn_batches=args.bn_batches, finetune_iterations=args.finetune,
                             keep_finetuned=args.keep_finetuned, lr=args.lr, protocol=args.protocol,
                             check=not args.no_check, check_tolerance=args.check_tolerance,
                             progress=not args.no_progress)
    result = convert_arch(args.arch, args.supernet, args.out, config, options, config_path=args.config,
                          device=resolve_device(args.device))
    print_result(result, args, config)
    if not result.written:
        print(f"error: consistency check failed: the paths differ by more than {args.check_tolerance:g}; "
              f"{args.out} was not written", file=sys.stderr)
        return 1
    return 0


def print_result(result: ConvertResult, args: argparse.Namespace, config: ExperimentConfig) -> None:
    """The conversion's steps, as lines for the terminal."""
    data, input_hw = config.data, result.input_hw
    print(f"arch {result.arch.arch_id} from {args.arch}; supernet {args.supernet}; task {config.task}, input "
          f"{input_hw[0]} x {input_hw[1]}, device {result.device}")
    print(f"BN recalibrated on {args.bn_batches} batches of {data.train_list} ({result.bn_seconds:.1f} s)")
    if result.consistency is not None:
        print_consistency(result.consistency, args.check_tolerance)
        print(f"  ({data.val_list}, {result.check_seconds:.1f} s)")
    if result.finetune is not None:
        run, choice = result.finetune.result, result.finetune.choice
        print(f"fine-tuned {run.iterations} iterations in {run.seconds:.1f} s (loss {run.first_loss:.4f} "
              f"-> {run.last_loss:.4f}), BN recalibrated again; on {data.val_list}, before -> after:")
        for name, value in choice.after.items():
            print(f"  {name}: {_fmt(choice.before[name])} -> {_fmt(value)}")
        print(choice.summary())
    if result.size is not None:
        size = result.size
        print(f"params {size.params / 1e6:.3f} M, MACs {size.macs / 1e9:.3f} G at {input_hw[0]} x {input_hw[1]} "
              f"({size.macs_224 / 1e9:.3f} G at 224 x 224, params {size.params_224 / 1e6:.3f} M)")
        print(f"wrote {args.out}")

"""`convert --arch ARCH.json --supernet CKPT [-c CONFIG] [--finetune N] -o OUT.pt`: the stand-alone model of one
architecture (weights sliced from the supernet, BN recalibrated on the training list, SMSUs folded), checked against
the supernet paths on the validation list, optionally fine-tuned (the better of the models before and after
fine-tuning on the validation list is kept, unless `--keep-finetuned`), saved as one self-describing file."""

from __future__ import annotations

import argparse
import math
import sys
import time
from datetime import datetime, timezone

import torch

from inas.cli.common import add_config_argument
from inas.config import ExperimentConfig, load_config
from inas.data import (
    bn_loader_from_config,
    eval_loader_from_config,
    multi_scale_from_config,
    train_loader_from_config,
)
from inas.deploy.convert import (
    DEFAULT_CHECK_TOLERANCE,
    ConsistencyReport,
    check_consistency,
    evaluate_standalone,
    load_arch_for,
    load_supernet_any,
)
from inas.deploy.finetune import FinetuneChoice, finetune
from inas.deploy.model_file import save_model_file
from inas.errors import BadInputError
from inas.evaluation import recalibrate_bn
from inas.metrics import PROTOCOLS
from inas.nn import extract_subnet, profile
from inas.nn.device import resolve_device

DEFAULT_BN_BATCHES = 200  # the original's finetune_bn_iters for convert (SPEC §3)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--arch", required=True, help="Arch JSON file (ours or the original's saved format)")
    parser.add_argument("--supernet", required=True,
                        help="supernet checkpoint: ours (from `train`) or an original iNAS one (then the config's "
                             "space, task and model.output_levels describe it)")
    add_config_argument(parser, required=False)
    parser.add_argument("-o", "--output", required=True, help="stand-alone model file to write (.pt)")
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
    if args.bn_batches < 1:
        raise BadInputError(f"must be >= 1, got {args.bn_batches}", key="--bn-batches")
    if args.finetune < 0:
        raise BadInputError(f"must be >= 0, got {args.finetune}", key="--finetune")
    if args.threads is not None:
        if args.threads < 1:
            raise BadInputError(f"must be >= 1, got {args.threads}", key="--threads")
        torch.set_num_threads(args.threads)
    config = load_config(args.config) if args.config else ExperimentConfig()
    task, data, progress = config.task, config.data, not args.no_progress
    device = resolve_device(args.device)
    supernet = load_supernet_any(args.supernet, config).to(device)
    arch = load_arch_for(args.arch, supernet, args.supernet)
    input_hw = config.deploy_input_hw
    print(f"arch {arch.arch_id} from {args.arch}; supernet {args.supernet}; task {task}, input "
          f"{input_hw[0]} x {input_hw[1]}, device {device}")

    start = time.perf_counter()
    bn_loader = bn_loader_from_config(data, task, args.bn_batches, seed=config.seed)
    recalibrate_bn(supernet, bn_loader, args.bn_batches, forward=lambda images: supernet(images, arch))
    print(f"BN recalibrated on {args.bn_batches} batches of {data.train_list} ({time.perf_counter() - start:.1f} s)")
    model = extract_subnet(supernet, arch)
    record: dict = {"supernet": str(args.supernet), "arch_file": str(args.arch), "config": args.config,
                    "bn_batches": args.bn_batches, "bn_batch_size": data.batch_size, "train_list": data.train_list,
                    "protocol": args.protocol, "date": datetime.now(timezone.utc).isoformat(timespec="seconds")}

    val_loader = None
    if not args.no_check or args.finetune:
        val_loader = eval_loader_from_config(data, task, batch_size=data.batch_size if task == "sod" else 1)
    if not args.no_check:
        start = time.perf_counter()
        report = check_consistency(supernet, model, arch, val_loader, task, args.protocol, progress=progress)
        print_consistency(report, args.check_tolerance)
        print(f"  ({data.val_list}, {time.perf_counter() - start:.1f} s)")
        record["val_list"] = data.val_list
        record["consistency"] = report.to_dict()
        if not report.agrees(args.check_tolerance):
            print(f"error: consistency check failed: the paths differ by more than {args.check_tolerance:g}; "
                  f"{args.output} was not written", file=sys.stderr)
            return 1

    if args.finetune:
        assert val_loader is not None
        before = record.get("consistency", {}).get("standalone")
        if before is None:
            before = evaluate_standalone(model, val_loader, task, args.protocol, progress=progress)
        raw = extract_subnet(supernet, arch, fold=False)
        train_loader = train_loader_from_config(data, task, seed=config.seed)
        result = finetune(raw, train_loader, args.finetune, task, config.train, lr=args.lr,
                          multi_scale=multi_scale_from_config(data, task, seed=config.seed), progress=progress)
        recalibrate_bn(raw, bn_loader, args.bn_batches)
        tuned = raw.reparameterize().eval()
        after = evaluate_standalone(tuned, val_loader, task, args.protocol, progress=progress)
        choice = FinetuneChoice.decide(task, before, after, force=args.keep_finetuned)
        record["finetune"] = {"iterations": result.iterations, "lr": args.lr or config.train.lr,
                              "warmup_iterations": result.warmup_iterations, "first_loss": result.first_loss,
                              "last_loss": result.last_loss, "seconds": round(result.seconds, 1),
                              **choice.to_dict()}
        print(f"fine-tuned {result.iterations} iterations in {result.seconds:.1f} s (loss {result.first_loss:.4f} "
              f"-> {result.last_loss:.4f}), BN recalibrated again; on {data.val_list}, before -> after:")
        for name, value in after.items():
            print(f"  {name}: {_fmt(before[name])} -> {_fmt(value)}")
        print(choice.summary())
        model = tuned if choice.keep_finetuned else model

    model = model.cpu()
    params, macs = profile(model, input_hw)
    params_224, macs_224 = profile(model, (224, 224))
    record.update({"params": params, "macs": macs, "macs_224": macs_224})
    save_model_file(model, args.output, task=task, input_hw=input_hw, conversion=record)
    print(f"params {params / 1e6:.3f} M, MACs {macs / 1e9:.3f} G at {input_hw[0]} x {input_hw[1]} "
          f"({macs_224 / 1e9:.3f} G at 224 x 224, params {params_224 / 1e6:.3f} M)")
    print(f"wrote {args.output}")
    return 0

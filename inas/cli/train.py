"""`train -c CONFIG [--cluster] [--address ADDR] [--workers N] [--resume] [-o RUN_DIR]`: train the supernet.

Without `--cluster` the loop runs in this process (Ray is not imported). With `--cluster` the same loop runs on
every worker of Ray Train's TorchTrainer (DDP; a local Ray instance, or the cluster at `--address`). A run folder
that holds a checkpoint is resumed from it; `--resume` makes a missing checkpoint an error.
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path

from inas.cli.common import add_config_argument, add_out_argument, check_at_least, config_from_args
from inas.paths import check_output_path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_config_argument(parser)
    add_out_argument(parser, "run folder (default: train.out_dir of the config)")
    parser.add_argument("--resume", action="store_true",
                        help="continue from RUN_DIR/checkpoint.pt (an error if there is none; a run folder with a "
                             "checkpoint is resumed even without this flag)")
    parser.add_argument("--cluster", action="store_true", help="run under Ray Train (TorchTrainer, DDP)")
    parser.add_argument("--address", default=None,
                        help="Ray cluster to join (e.g. 'auto' or HOST:PORT); implies --cluster")
    parser.add_argument("--workers", type=int, default=None, help="Ray Train workers (train.cluster.workers)")
    parser.add_argument("--iterations", type=int, default=None, help="override train.iterations")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def _print_summary(result) -> None:
    print(f"run folder: {result.run_dir}")
    rate = "n/a" if math.isnan(result.images_per_s) else f"{result.images_per_s:.1f} images/s"
    print(f"iterations: {result.iterations} (this session from {result.start_iteration}), "
          f"{result.wall_s:.1f} s, {rate}")
    for subnet, scores in result.validation.items():
        shown = ", ".join(f"{k} {v:.4f}" for k, v in scores.items() if not k.startswith("iou_"))
        print(f"validation {subnet}: {shown}")
    if result.supernet_path is not None:
        print(f"supernet: {result.supernet_path}")


def main(args: argparse.Namespace) -> int:
    config = config_from_args(args)
    if args.iterations is not None:
        check_at_least("--iterations", args.iterations)
        config.train.iterations = args.iterations
    if args.workers is not None:
        check_at_least("--workers", args.workers)
        config.train.cluster.workers = args.workers
    run_dir = check_output_path(Path(args.out) if args.out else Path(config.train.out_dir), "folder",
                                key="--out" if args.out else "train.out_dir")
    if args.cluster or args.address:
        from inas.train.cluster import train_on_ray

        result = train_on_ray(config, run_dir, address=args.address, resume=args.resume,
                              progress=not args.no_progress)
    else:
        from inas.train.loop import train_supernet

        result = train_supernet(config, run_dir, resume=args.resume, progress=not args.no_progress)
    _print_summary(result)
    return 0

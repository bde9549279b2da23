"""`space info | sample | validate`: inspect the search space."""

from __future__ import annotations

import argparse
import random

from inas.cli.common import add_config_argument, space_from_args
from inas.space import load_arch, sample


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    info = sub.add_parser("info", help="print the per stage/level choices and the exact cardinality")
    add_config_argument(info, required=False)
    smp = sub.add_parser("sample", help="print N Arch JSON documents, one per line")
    add_config_argument(smp, required=False)
    smp.add_argument("--n", type=int, default=1, help="number of architectures")
    smp.add_argument("--seed", type=int, default=0, help="random seed")
    smp.add_argument("--mode", choices=["min", "max", "uniform"], default="uniform")
    val = sub.add_parser("validate", help="check an Arch JSON file (ours or the original's format); print its id")
    add_config_argument(val, required=False)
    val.add_argument("file", help="Arch JSON file")


def main(args: argparse.Namespace) -> int:
    space = space_from_args(args)
    if args.action == "info":
        for stage in space.stages:
            print(f"{stage.name:8s} {stage.block:6s} widths={list(stage.widths)} depths={list(stage.depths)} "
                  f"kernels={list(stage.kernels)} expand={stage.expand_ratio} stride={stage.stride} "
                  f"choices={stage.cardinality()}")
        for levels in (space.transport, space.decoder):
            for lv in levels:
                print(f"{lv.part:9s} {lv.name} connections={list(lv.connections)} required={list(lv.required)} "
                      f"kernels={list(lv.kernels)} choices={lv.cardinality()}")
        print(f"cardinality: {space.cardinality()}")
        return 0
    if args.action == "sample":
        rng = random.Random(args.seed)
        for _ in range(args.n):
            print(sample(space, args.mode, rng).to_json())
        return 0
    arch = load_arch(args.file, space)
    print(arch.arch_id)
    return 0

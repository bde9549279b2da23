"""Helpers shared by the CLI verbs (argument conventions, config + space loading)."""

from __future__ import annotations

import argparse

from inas.config import ExperimentConfig, load_config
from inas.errors import BadInputError
from inas.space import SearchSpace, inas_space


def add_config_argument(parser: argparse.ArgumentParser, required: bool = True) -> None:
    parser.add_argument("-c", "--config", required=required, help="experiment YAML (see experiments/)")


def add_out_argument(parser: argparse.ArgumentParser, help: str, *, required: bool = False, default: str | None = None,
                     metavar: str | None = None) -> None:
    """`-o/--out` (also spelt `--output`): what the verb writes, read as `args.out`."""
    parser.add_argument("-o", "--out", "--output", dest="out", required=required, default=default, metavar=metavar,
                        help=help)


def check_at_least(flag: str, value: int | None, minimum: int = 1) -> None:
    """BadInputError `FLAG: must be >= MINIMUM, got VALUE` unless `value` is None (not given) or >= `minimum`."""
    if value is not None and value < minimum:
        raise BadInputError(f"must be >= {minimum}, got {value}", key=flag)


def space_from_args(args: argparse.Namespace) -> SearchSpace:
    """The space of the config given with -c, else the full iNAS space."""
    if getattr(args, "config", None):
        return load_config(args.config).space.build()
    return inas_space()


def config_from_args(args: argparse.Namespace) -> ExperimentConfig:
    return load_config(args.config)

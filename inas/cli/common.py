"""Helpers shared by the CLI verbs (argument conventions, config + space loading)."""

from __future__ import annotations

import argparse

from inas.config import ExperimentConfig, load_config
from inas.space import SearchSpace, inas_space


def add_config_argument(parser: argparse.ArgumentParser, required: bool = True) -> None:
    parser.add_argument("-c", "--config", required=required, help="experiment YAML (see experiments/)")


def space_from_args(args: argparse.Namespace) -> SearchSpace:
    """The space of the config given with -c, else the full iNAS space."""
    if getattr(args, "config", None):
        return load_config(args.config).space.build()
    return inas_space()


def config_from_args(args: argparse.Namespace) -> ExperimentConfig:
    return load_config(args.config)

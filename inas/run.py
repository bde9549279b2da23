"""Command-line entry point: `python -m inas.run VERB ...`.

Builds the parser from the verb modules in `inas.cli`, runs the chosen verb and maps errors to exit codes:
0 success, 2 bad input (one line on stderr, no traceback), 1 internal error (a full or read-only disk met while
writing: one line).
"""

from __future__ import annotations

import argparse
import errno
import importlib
import logging
import os
import sys

from inas.errors import BadInputError, RunFailedError

# (verb, module in inas.cli, one-line help). A module exposes `add_arguments(parser)` and `main(args) -> int`.
VERBS: list[tuple[str, str, str]] = [
    ("space", "space", "inspect the search space: info, sample, validate"),
    ("data", "data", "data sets: synth writes a synthetic set, check checks list files, cityscapes-lists writes them"),
    ("evaluate", "evaluate", "score a folder of predicted maps against ground-truth masks"),
    ("train", "train", "train the supernet (local, or on a Ray cluster with --cluster)"),
    ("lut", "lut", "build latency lookup tables per device (Ray actors); `lut validate` checks the predictor"),
    ("search", "search", "search the Pareto front of accuracy vs latency with Ray Tune"),
    ("analyze", "analyze", "Pareto analysis and report over search results"),
    ("convert", "convert", "slice the supernet into a stand-alone model for one architecture"),
    ("export", "export", "export a stand-alone model to ONNX and time it"),
    ("test", "test", "evaluate a stand-alone model (PyTorch or ONNX) on the test sets of a config"),
    ("predict", "predict", "write saliency maps / segmentation masks for a folder of images"),
    ("demo", "demo", "the whole pipeline on synthetic data, small enough for a laptop CPU"),
]


def _load_verb_module(module_name: str):
    try:
        return importlib.import_module(f"inas.cli.{module_name}")
    except ModuleNotFoundError as exc:
        if exc.name == f"inas.cli.{module_name}":
            return None
        raise


def build_parser() -> argparse.ArgumentParser:
    """The top-level parser with one sub-parser per verb."""
    parser = argparse.ArgumentParser(
        prog="python -m inas.run",
        description="inas: device-aware one-shot NAS for dense prediction (salient objects, segmentation).",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    parser.add_argument("-C", "--directory", metavar="DIR", default=None,
                        help="run as if started in DIR: relative paths of the config and the arguments are relative "
                        "to DIR (for `ray job submit`, whose job runs in a temporary copy of --working-dir)")
    sub = parser.add_subparsers(dest="verb", metavar="VERB")
    for verb, module_name, help_text in VERBS:
        module = _load_verb_module(module_name)
        if module is None:
            verb_parser = sub.add_parser(verb, help=f"{help_text} [not built yet]", description=help_text)
            verb_parser.add_argument("rest", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)
            verb_parser.set_defaults(_handler=_not_built(verb))
        else:
            verb_parser = sub.add_parser(verb, help=help_text, description=help_text)
            module.add_arguments(verb_parser)
            verb_parser.set_defaults(_handler=module.main)
    return parser


def _not_built(verb: str):
    def handler(args: argparse.Namespace) -> int:
        print(f"error: the verb '{verb}' is not built yet in this version of inas", file=sys.stderr)
        return 2

    return handler


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; returns the process exit code."""
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO, format="%(levelname)s %(name)s: %(message)s"
    )
    if not getattr(args, "verb", None):
        parser.print_help()
        return 2
    try:
        _change_directory(args.directory)
        return int(args._handler(args) or 0)
    except BadInputError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except RunFailedError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt as exc:
        print(f"interrupted: {exc}" if str(exc) else "interrupted", file=sys.stderr)
        return 130
    except OSError as exc:
        if exc.errno not in _STORAGE_ERRNOS:
            raise
        where = f" {exc.filename}" if exc.filename else ""
        print(f"error: cannot write{where}: {exc.strerror or exc} (outputs are written atomically: none is "
              "half-written; make room and run the same command again)", file=sys.stderr)
        return 1


# a full or read-only disk met while writing an output: one line and exit 1, as a run that could not complete
_STORAGE_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EROFS})


def _change_directory(directory: str | None) -> None:
    if directory is None:
        return
    try:
        os.chdir(directory)
    except (OSError, ValueError) as exc:
        reason = getattr(exc, "strerror", None) or exc
        raise BadInputError(f"cannot change into this folder ({type(exc).__name__}: {reason})",
                            path=directory, key="-C") from None


if __name__ == "__main__":
    sys.exit(main())

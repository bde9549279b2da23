"""`data synth | check | cityscapes-lists`: synthetic data sets, list checking, Cityscapes list files."""

from __future__ import annotations

import argparse
from pathlib import Path

from inas.cli.common import add_config_argument, check_at_least
from inas.errors import BadInputError

SYNTH_DEFAULTS = {
    "sod": {"n_train": 400, "n_test": 100, "size": 320},
    "seg": {"n_train": 200, "n_test": 50, "size": 256},
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    synth = sub.add_parser(
        "synth",
        help="write a synthetic data set (SOD: DUTS layout; seg: Cityscapes layout)",
        description="Write a synthetic data set. sod: images/*.jpg, masks/*.png, train.lst, test.lst. "
        "seg: leftImg8bit/{train,val}/synth/*_leftImg8bit.png, gtFine/{train,val}/synth/*_gtFine_labelTrainIds.png, "
        "train.lst, val.lst. Same seed -> byte-identical files.",
    )
    synth.add_argument("--task", choices=["sod", "seg"], default="sod", help="sod (default) or seg")
    synth.add_argument("--out", required=True, help="output folder (must not exist or be empty, unless --force)")
    synth.add_argument("--n-train", type=int, default=None, help="training images (sod 400, seg 200)")
    synth.add_argument("--n-test", type=int, default=None, help="test (sod) / val (seg) images (sod 100, seg 50)")
    synth.add_argument(
        "--size", type=int, default=None, help="sod: nominal side, sides vary in [0.75, 1.25]x (320); seg: height, "
        "width = 2 x height (256)"
    )
    synth.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    synth.add_argument("--workers", type=int, default=None, help="worker processes (default: CPUs, at most 8)")
    synth.add_argument("--force", action="store_true", help="replace a non-empty output folder")

    check = sub.add_parser(
        "check",
        help="check list files: every file readable, label size = image size; all problems at once",
    )
    add_config_argument(check, required=False)
    check.add_argument("--root", help="data set root (default: data.root of the config)")
    check.add_argument("--list", dest="lists", nargs="+", help="list files (default: every list of the config)")
    check.add_argument("--task", choices=["sod", "seg"], default=None, help="default: the config's task, else sod")
    check.add_argument("--decode", action="store_true",
                       help="fully decode every file (slower); with -c and task seg, also every label value")

    lists = sub.add_parser(
        "cityscapes-lists", help="write {split}.lst for a Cityscapes folder (leftImg8bit + gtFine labelTrainIds)"
    )
    lists.add_argument("--root", required=True, help="Cityscapes root (holds leftImg8bit/ and gtFine/)")
    lists.add_argument("--splits", nargs="+", default=["train", "val"], help="splits (default: train val)")


def _synth(args: argparse.Namespace) -> int:
    from inas.data.synth_seg import synthesize_seg
    from inas.data.synth_sod import synthesize_sod

    defaults = SYNTH_DEFAULTS[args.task]
    n_train = defaults["n_train"] if args.n_train is None else args.n_train
    n_test = defaults["n_test"] if args.n_test is None else args.n_test
    size = defaults["size"] if args.size is None else args.size
    check_at_least("--workers", args.workers)
    synthesize = synthesize_sod if args.task == "sod" else synthesize_seg
    result = synthesize(args.out, n_train, n_test, size, args.seed, workers=args.workers, force=args.force)
    counts = " + ".join(f"{n} {name.removesuffix('.lst')}" for name, n in result.counts.items())
    shape = f"~{size}px" if args.task == "sod" else f"{size}x{2 * size}"
    print(f"wrote synthetic {args.task} data: {counts} images ({shape}, seed {args.seed}) to {result.out} "
          f"in {result.seconds:.1f} s")
    return 0


def _check(args: argparse.Namespace) -> int:
    from inas.data.lists import check_list

    config = None
    if args.config:
        from inas.config import load_config

        config = load_config(args.config)
    root = args.root or (str(config.data.root) if config else None)
    if root is None:
        raise BadInputError("give --root (or -c CONFIG)", key="--root")
    if args.lists:
        lists = list(args.lists)
    elif config is not None:
        lists = list(dict.fromkeys([config.data.train_list, config.data.val_list, *config.data.test_lists]))
    else:
        raise BadInputError("give --list (or -c CONFIG)", key="--list")
    task = args.task or (config.task if config else "sod")
    num_classes = config.num_classes if config is not None else None  # label values are checked against it (--decode)
    messages = []
    for list_file in lists:
        try:
            entries = check_list(root, list_file, task, decode=args.decode, num_classes=num_classes)
        except BadInputError as exc:
            messages.append(str(exc))
            continue
        print(f"ok: {Path(root) / list_file}: {len(entries)} pairs")
    if messages:
        raise BadInputError("\n".join(messages))
    return 0


def _cityscapes_lists(args: argparse.Namespace) -> int:
    from inas.data.seg import cityscapes_pairs
    from inas.io import atomic_write_text

    root = Path(args.root)
    found = {split: cityscapes_pairs(root, split) for split in args.splits}
    empty = [split for split, pairs in found.items() if not pairs]
    if empty:
        raise BadInputError(f"no leftImg8bit/<split>/<city>/*_leftImg8bit.png images for split(s) {empty}", path=root)
    for split, pairs in found.items():
        atomic_write_text(root / f"{split}.lst", "".join(f"{a} {b}\n" for a, b in pairs))
        print(f"wrote {root / f'{split}.lst'}: {len(pairs)} pairs")
    return 0


def main(args: argparse.Namespace) -> int:
    if args.action == "synth":
        return _synth(args)
    if args.action == "check":
        return _check(args)
    return _cityscapes_lists(args)

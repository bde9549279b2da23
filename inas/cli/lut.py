"""`lut [build] | lut validate`: build latency lookup tables per device on Ray actors; check the predictor."""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

from inas.cli.common import add_config_argument, add_out_argument, check_at_least, config_from_args
from inas.errors import BadInputError
from inas.paths import check_output_path

if TYPE_CHECKING:
    from inas.latency import DeviceValidation


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("action", nargs="?", choices=["build", "validate"], default="build",
                        help="build (default): measure the missing blocks of every device's table; "
                        "validate: measure random whole networks and compare with the predictions")
    add_config_argument(parser)
    add_out_argument(parser, "LUT folder holding `<device>.parquet` (default: lut.out_dir of the config)")
    parser.add_argument("--address", default=None,
                        help="Ray cluster to join (auto, HOST:6379, ray://HOST:10001) or `local`; default: "
                        "RAY_ADDRESS, else the "
                        "cluster running on this machine, else a local Ray offering the configured device resources")
    parser.add_argument("--in-process", action="store_true",
                        help="measure in this process, one device at a time, without Ray (for debugging)")
    parser.add_argument("--samples", type=int, default=50, help="validate: number of random sub-networks")
    parser.add_argument("--seed", type=int, default=None, help="validate: sampling seed (default: the config seed)")
    parser.add_argument("--rounds", type=int, default=4,
                        help="validate: time every network in this many rounds and average them (>= 2 also reports "
                             "repeatability; 4 measured Spearman 0.989 where 2 gave 0.978 on a shared 2-core machine)")
    parser.add_argument("--runs", type=int, default=None,
                        help="timed runs per block or network (overrides lut.runs; also caps lut.warmup_runs), e.g. "
                        "for a quick try")
    parser.add_argument("--retime-drifted", type=float, default=None, metavar="PCT",
                        help="build: first drop the entries whose reference block, timed around them, was more than "
                        "PCT %% off the table's median (timed while the machine ran at another speed) and measure "
                        "them again, e.g. 5 after a build that warned about drift")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")


def main(args: argparse.Namespace) -> int:
    from inas.latency import config_blocks, count_by_kind, lut_input_hw

    config = config_from_args(args)
    if args.runs is not None:
        check_at_least("--runs", args.runs)
        config.lut.runs = args.runs
        config.lut.warmup_runs = min(config.lut.warmup_runs, args.runs)
    out_dir = check_output_path(Path(args.out) if args.out else config.lut.out_dir, "folder",
                                key="--out" if args.out else "lut.out_dir")
    keys = config_blocks(config)
    h, w = lut_input_hw(config)
    kinds = ", ".join(f"{k} {n}" for k, n in count_by_kind(keys).items())
    print(f"blocks: {len(keys)} at input {h}x{w} ({kinds})", flush=True)
    if args.retime_drifted is not None:
        if args.action != "build":
            raise BadInputError("only applies to `lut build`", key="--retime-drifted")
        if not math.isfinite(args.retime_drifted) or args.retime_drifted <= 0:
            raise BadInputError(f"expected a percentage > 0, got {args.retime_drifted}", key="--retime-drifted")
    if args.action == "validate":
        return _validate(args, config, out_dir)
    from inas.latency import build_tables

    t0 = time.perf_counter()
    reports = build_tables(config, out_dir, address=args.address, progress=not args.no_progress,
                           in_process=args.in_process, retime_drifted_pct=args.retime_drifted)
    wall = time.perf_counter() - t0
    print(f"{'device':16s} {'blocks':>7s} {'reused':>7s} {'measured':>9s} {'seconds':>9s} {'s/block':>8s}  table")
    for r in reports:
        print(f"{r.device:16s} {r.blocks:7d} {r.reused:7d} {r.measured:9d} {r.seconds:9.1f} "
              f"{r.seconds_per_block:8.3f}  {r.path}")
    for r in reports:
        if args.retime_drifted is not None:
            print(f"{r.device}: {r.retimed} entries timed again (reference block > {args.retime_drifted:g} % off "
                  "the median)")
        for what, spread in (("block", r.reference), ("network", r.reference_network)):
            if spread is not None:
                lo, mid, hi = spread
                print(f"{r.device}: reference {what} {mid:.4f} ms median over the table, "
                      f"{100 * (lo / mid - 1):+.1f} % .. {100 * (hi / mid - 1):+.1f} % (drift while building)")
                warning = build_noise_warning(r.device, what, spread)
                if warning:
                    print(warning, file=sys.stderr, flush=True)
    print(f"total wall time: {wall:.1f} s")
    return 0


NOISY_DRIFT_PCT = 20.0  # a reference moving more than this while building: entries were timed at different speeds
NOISY_REPEAT_WITHIN_10_PCT = 90.0  # below: the same networks timed twice disagree too often to judge a table


def build_noise_warning(device: str, what: str, spread: tuple[float, float, float]) -> str | None:
    """A warning line when a reference's (min, median, max) over a build spans more than ±NOISY_DRIFT_PCT."""
    lo, mid, hi = spread
    worst = 100 * max(abs(lo / mid - 1), abs(hi / mid - 1)) if mid > 0 else 0.0
    if worst <= NOISY_DRIFT_PCT:
        return None
    return (f"lut: warning: {device}: the reference {what} moved by up to {worst:.0f} % while the table was built: "
            "this machine's speed varied, so its entries were timed at different speeds; build on a quiet machine "
            "(nothing else running) for a table that predicts within ±10 %, or time the entries of the slow spells "
            "again there: `lut --retime-drifted 5`")


def validation_noise_warning(r: DeviceValidation) -> str | None:
    """A warning line when round 2 reproduces round 1 within ±10 % for fewer than NOISY_REPEAT_WITHIN_10_PCT % of
    the networks: no predictor can be judged better than the machine repeats itself."""
    repeat = r.repeatability
    if repeat is None or repeat.within_10_pct >= NOISY_REPEAT_WITHIN_10_PCT:
        return None
    return (f"lut validate: warning: {r.device}: the same networks timed twice agree within ±10 % for only "
            f"{repeat.within_10_pct:.0f} % of them (Spearman {repeat.spearman:.2f}): this machine is too noisy now "
            "to judge the table; validate on a quiet machine")


def describe_correction(c) -> str:
    """One line: the correction's formula with its non-zero terms (at the table's build speed)."""
    terms = [f"{c.intercept_ms:.3f} ms"] if c.intercept_ms else []
    terms += [f"{v:.3f} × {name}" for v, name in ((c.scale, "block sum"), (c.per_mparam_ms, "Mparams (ms)"),
                                                  (c.per_io_mb_ms, "boundary MB (ms)")) if v]
    terms += [f"{c.per_block_ms * 1000:.1f} µs × blocks"] if c.per_block_ms else []
    terms += [f"{v:.3f} × {group} sum" for group, v in c.group_scales.items() if v]
    return f"{c.model}: measured ≈ " + " + ".join(terms or ["0"])


SAVED_LABELS = {"applied": "applied correction (earlier)", "candidate": "candidate (earlier run's fit)"}


def correction_verdict(r: DeviceValidation) -> list[str]:
    """What `lut validate` decided about the corrections of one device (`DeviceValidation`), in words."""
    lines = []
    if r.applied is not None:
        how = "kept" if r.applied_role == "applied" else "the earlier run's candidate, confirmed"
        lines.append(f"applied from now on ({how}: MAPE {r.applied.confirmed_mape_pct:.2f} % vs the block sum's "
                     f"{r.applied.confirmed_raw_mape_pct:.2f} % on this run's networks, confirmed by "
                     f"{r.applied.confirmations} later run(s)): {describe_correction(r.applied)}")
    elif r.saved_before:
        lines.append("no correction applied: none saved before beats the block sum on this run's networks")
    if r.correction is not None:
        lines.append(f"new candidate saved, applied only once a later `lut validate` confirms it: "
                     f"{describe_correction(r.correction)}")
    else:
        lines.append("no new candidate (no fit beats the block sum on held-out networks)")
    return lines


def _validate(args: argparse.Namespace, config, out_dir: Path) -> int:
    from inas.latency import validate_tables

    check_at_least("--samples", args.samples)
    check_at_least("--rounds", args.rounds)
    results, _ = validate_tables(config, args.samples, out_dir, address=args.address, seed=args.seed,
                                 progress=not args.no_progress, rounds=args.rounds, in_process=args.in_process)
    print(f"{'device':16s} {'predictor':42s} {'spearman':>8s} {'MAPE %':>7s} {'±10 %':>6s} {'±5 %':>6s}")
    for r in results:
        rows = [("block sum", r.raw)]
        if r.reference_scaled is not None:
            rows.append(("block sum x run drift", r.reference_scaled))
        rows += [(SAVED_LABELS[role], figures) for role, figures in r.saved_before.items()]
        if r.corrected_cv is not None and r.correction is not None:
            rows.append((f"new fit {r.correction.model} (held-out)", r.corrected_cv))
        if r.repeatability is not None:
            rows.append(("round 2 vs round 1", r.repeatability))
        for name, f in rows:
            print(f"{r.device:16s} {name:42s} {f.spearman:8.3f} {f.mape_pct:7.2f} {f.within_10_pct:6.1f} "
                  f"{f.within_5_pct:6.1f}")
        if r.drift_pct == r.drift_pct:
            also = (f"; reference block {r.block_drift_pct:+.1f} %" if r.drift_source == "network"
                    and r.block_drift_pct == r.block_drift_pct else "")
            print(f"{'':16s} reference {r.drift_source} now {r.drift_pct:+.1f} % against the table's build (the run "
                  f"drift; every prediction above is scaled by it{also})")
        for line in correction_verdict(r):
            print(f"{'':16s} {line}")
        warning = validation_noise_warning(r)
        if warning:
            print(warning, file=sys.stderr, flush=True)
    print(f"wrote {out_dir / 'validation.parquet'} and {out_dir / 'validation.png'}")
    return 0

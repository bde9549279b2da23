"""Refit the latency-table corrections on saved `lut validate` outputs with the current code, and judge each on a
later, separate validation: no timing, so it runs anywhere in seconds and can compare correction models on the same
measurements.

    python benchmarks/refit_lut_correction.py --tables benchmarks/data/lut_targets_2026-12-02 \\
        --validation benchmarks/data/lut_targets_2026-12-02/validation-1.parquet \\
        [--later benchmarks/data/lut_targets_2026-12-02/validation-2.parquet] [-c experiments/lut_targets.yaml] \\
        [--save-candidate]

Per device: the block sum and the correction chosen and fitted by `fit_correction` (held-out figures by nested
cross-validation) on --validation, as `lut validate` fits it: on the networks' times divided by the run's drift (its
median reference network time over the table's, else the reference block's: `RunDrift`), each prediction judged
after multiplying it back; with --later, the block sum and that correction applied unchanged to the later run's
networks at the later run's drift (and without it, for comparison): the test of whether a correction holds on a
later run; and the later run's own
round-to-round repeatability when it has two rounds (with four or more, also the mean of half its rounds against
the other half: the ceiling of a prediction judged against a mean over rounds is higher than the one-round
repeatability).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.common import record_result  # noqa: E402
from inas.config import load_config  # noqa: E402
from inas.latency import BlockSums, Figures, LatencyPredictor, fit_correction  # noqa: E402
from inas.latency.predictor import candidate_correction_path  # noqa: E402
from inas.latency.table import table_path  # noqa: E402
from inas.latency.validate import RunDrift  # noqa: E402
from inas.space import SearchSpace, arch_from_json  # noqa: E402


def device_rows(path: Path, device: str) -> pd.DataFrame:
    frame = pd.read_parquet(path)
    return frame[frame.device == device]


def block_sums(tables: Path, device: str, space: SearchSpace, rows: pd.DataFrame) -> tuple[BlockSums, float]:
    """The block sums of the rows' archs and the run's drift, as `lut validate` takes it (`RunDrift`: the median
    reference network time over the table's, else the reference block's; validations written before the reference
    network have no `reference_network_ms`)."""
    predictor = LatencyPredictor(table_path(tables, device), space, correction=None)
    no_network = np.full(len(rows), np.nan)
    network = rows["reference_network_ms"].to_numpy(dtype=float) if "reference_network_ms" in rows else no_network
    drift = RunDrift.of(predictor, rows["reference_ms"].to_numpy(dtype=float), network)
    return predictor.block_sums_many([arch_from_json(a, space) for a in rows["arch"]]), drift.factor


def line(device: str, what: str, figures: Figures, rows: list[dict[str, Any]]) -> str:
    rows.append({"device": device, "predictor": what, "spearman": round(figures.spearman, 4),
                 "mape_pct": round(figures.mape_pct, 3), "within_10_pct": figures.within_10_pct,
                 "within_5_pct": figures.within_5_pct})
    return (f"| {device} | {what} | {figures.spearman:.3f} | {figures.mape_pct:.2f} | {figures.within_10_pct:.0f} | "
            f"{figures.within_5_pct:.0f} |")


def provenance(tables: Path, devices: list[str]) -> dict[str, Any]:
    """Where and when the tables were timed (their `host` and `measured_at` columns)."""
    out = {}
    for device in devices:
        table = pd.read_parquet(table_path(tables, device), columns=["host", "measured_at", "backend"])
        out[device] = {"backend": str(table["backend"].iloc[0]), "host": sorted(set(table["host"].astype(str))),
                       "measured_at": [str(table["measured_at"].min()), str(table["measured_at"].max())]}
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tables", required=True, help="folder of <device>.parquet latency tables")
    parser.add_argument("--validation", required=True, help="validation.parquet the corrections are fitted on")
    parser.add_argument("--later", default=None, help="validation.parquet of a later run to judge them on")
    parser.add_argument("-c", "--config", default="experiments/lut_targets.yaml", help="config of the tables")
    parser.add_argument("--record", action="store_true", help="append the figures to benchmarks/results.jsonl")
    parser.add_argument("--save-candidate", action="store_true",
                        help="save each re-fitted correction as <tables>/<device>.correction-candidate.json, the "
                             "candidate that the next `lut validate` judges on its own networks (a new correction "
                             "model tried on old timings without re-timing them)")
    args = parser.parse_args()
    config = load_config(args.config)
    space = config.space.build()
    tables = Path(args.tables)
    print("| device | predictor | Spearman | MAPE % | within ±10 % | within ±5 % |\n|---|---|---:|---:|---:|---:|")
    table_rows: list[dict[str, Any]] = []
    devices = list(dict.fromkeys(pd.read_parquet(args.validation)["device"]))
    for device in devices:
        rows = device_rows(Path(args.validation), device)
        (sums, drift), measured = block_sums(tables, device, space, rows), rows["measured_ms"].to_numpy()
        correction, held_out = fit_correction(sums, measured / drift, device, seed=config.seed)
        print(line(device, "block sum", Figures.of(sums.latency_ms, measured), table_rows))
        print(line(device, f"block sum x run drift {drift:.3f}", Figures.of(sums.latency_ms * drift, measured),
                   table_rows))
        if correction is None or held_out is None:
            print(f"| {device} | no correction beats the block sum | | | | |")
            continue
        print(line(device, f"{correction.model} (held-out) x run drift", Figures.of(held_out * drift, measured),
                   table_rows))
        if args.save_candidate:
            correction.save(candidate_correction_path(table_path(tables, device)))
        if args.later is None:
            continue
        later = device_rows(Path(args.later), device)
        (later_sums, later_drift), later_measured = (block_sums(tables, device, space, later),
                                                     later["measured_ms"].to_numpy())
        applied = correction.apply(later_sums) * later_drift
        print(line(device, "later run: block sum", Figures.of(later_sums.latency_ms, later_measured), table_rows))
        print(line(device, f"later run: this correction x its run drift {later_drift:.3f}",
                   Figures.of(applied, later_measured), table_rows))
        print(line(device, "later run: this correction, no drift factor",
                   Figures.of(correction.apply(later_sums), later_measured), table_rows))
        rounds = sorted(c for c in later.columns if c.startswith("measured_ms_round"))
        if len(rounds) >= 2:
            print(line(device, "later run: round 2 vs round 1", Figures.of(
                later[rounds[1]].to_numpy(), later[rounds[0]].to_numpy()), table_rows))
        if len(rounds) >= 4:  # the ceiling of a mean over several rounds: one half of them against the other
            odd, even = later[rounds[1::2]].mean(axis=1).to_numpy(), later[rounds[0::2]].mean(axis=1).to_numpy()
            print(line(device, f"later run: mean of rounds 2, 4, .. vs 1, 3, .. ({len(rounds)} rounds)",
                       Figures.of(odd, even), table_rows))
    if args.record:
        record_result("lut_correction_refit", {"tables": str(tables), "validation": args.validation,
                                               "later": args.later, "timed": provenance(tables, devices),
                                               "rows": table_rows})


if __name__ == "__main__":
    main()

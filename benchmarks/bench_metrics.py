"""Images per second of inas's SOD metrics against pysodmetrics on the same maps.

300 seeded 400x300 (W x H) maps with structure: masks made of 1-3 ellipses, predictions = the mask shifted, blurred,
dimmed and overlaid with blurred noise blobs (uint8). Timed, over all maps:

- reference: pysodmetrics Fmeasure, MAE, Smeasure, Emeasure, WeightedFmeasure, one `step` per image;
- inas `update`: SODMetrics() image by image (all nine metrics);
- inas `update_batch`: the same in batches of --batch maps;
- the search subset (max F + MAE): pysodmetrics Fmeasure + MAE against SODMetrics(metrics=SEARCH_METRICS).

Prints a table and appends one JSON line to benchmarks/results.jsonl. Also checks that both give the same numbers.

    python -m benchmarks.bench_metrics [--n 300] [--threads T] [--device cpu|cuda] [--no-record]

Each run is timed once; on a shared machine, run it twice and compare.
"""

from __future__ import annotations

import argparse
import time
import warnings
from collections.abc import Callable

import numpy as np
import py_sod_metrics as psm  # the reference (pysodmetrics, a dev dependency)
import torch
from scipy import ndimage

from benchmarks.common import format_table, record_result
from inas.metrics import SEARCH_METRICS, SOD_METRIC_NAMES, SODMetrics


def make_maps(n: int, height: int = 300, width: int = 400, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """`n` (prediction, mask) pairs as two (n, height, width) uint8 stacks."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:height, :width]
    preds = np.empty((n, height, width), np.uint8)
    gts = np.empty((n, height, width), np.uint8)
    for i in range(n):
        mask = np.zeros((height, width), bool)
        for _ in range(rng.integers(1, 4)):
            cy, cx = rng.uniform(0.2, 0.8) * height, rng.uniform(0.2, 0.8) * width
            ry, rx = rng.uniform(0.05, 0.3) * height, rng.uniform(0.05, 0.3) * width
            mask |= ((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2 < 1
        shifted = np.roll(mask, (int(rng.integers(-12, 13)), int(rng.integers(-12, 13))), axis=(0, 1))
        soft = ndimage.gaussian_filter(shifted.astype(np.float64), sigma=rng.uniform(2, 8))
        noise = ndimage.gaussian_filter(rng.normal(0, 1, (height, width)), sigma=12)
        pred = np.clip(soft * rng.uniform(0.6, 1.0) + 0.6 * noise, 0, 1)
        preds[i] = (pred * 255).astype(np.uint8)
        gts[i] = mask * np.uint8(255)
    return preds, gts


def reference_metrics(preds: np.ndarray, gts: np.ndarray, search_only: bool) -> dict[str, float]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fm, mae = psm.Fmeasure(), psm.MAE()
        others = () if search_only else (psm.Smeasure(), psm.Emeasure(), psm.WeightedFmeasure())
        for pred, gt in zip(preds, gts, strict=True):
            for metric in (fm, mae, *others):
                metric.step(pred=pred, gt=gt)
        f = fm.get_results()["fm"]
        values = {"maxF": float(f["curve"].max()), "mae": float(mae.get_results()["mae"])}
        if others:
            sm, em, wfm = others
            e = em.get_results()["em"]
            values.update(
                meanF=float(f["curve"].mean()),
                adpF=float(f["adp"]),
                sm=float(sm.get_results()["sm"]),
                maxE=float(e["curve"].max()),
                meanE=float(e["curve"].mean()),
                adpE=float(e["adp"]),
                wF=float(wfm.get_results()["wfm"]),
            )
    return values


def inas_metrics(preds, gts, metrics, batch: int) -> dict[str, float]:
    scorer = SODMetrics(metrics=metrics)
    if batch <= 1:
        for pred, gt in zip(preds, gts, strict=True):
            scorer.update(pred, gt)
    else:
        for start in range(0, len(preds), batch):
            scorer.update_batch(preds[start : start + batch], gts[start : start + batch])
    return scorer.compute()


def timed(fn: Callable[[], dict[str, float]]) -> tuple[float, dict[str, float]]:
    start = time.perf_counter()
    values = fn()
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    return time.perf_counter() - start, values


COMPARED = {
    "inas_all_update": "reference_all",
    "inas_all_batch": "reference_all",
    "inas_search_update": "reference_search",
    "inas_search_batch": "reference_search",
}


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=300, help="number of maps")
    parser.add_argument("--batch", type=int, default=50, help="maps per update_batch call")
    parser.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch intra-op threads (default 1, like the single-threaded numpy reference; 0: torch's default)",
    )
    parser.add_argument("--device", default="cpu", help="where inas computes (cpu, cuda)")
    parser.add_argument("--no-record", action="store_true", help="do not append to benchmarks/results.jsonl")
    return parser.parse_args()


def time_runs(args: argparse.Namespace) -> tuple[dict[str, float], dict[str, dict[str, float]]]:
    """(seconds, metric values) of the reference and of inas (per map and batched), all and search metrics."""
    preds, gts = make_maps(args.n)
    preds_t = torch.from_numpy(preds).to(args.device)
    gts_t = torch.from_numpy(gts).to(args.device)
    inas_metrics(preds_t[:2], gts_t[:2], None, 1)  # warm-up (lazy imports, allocator)
    reference_metrics(preds[:2], gts[:2], search_only=False)
    runs = {
        "reference_all": lambda: reference_metrics(preds, gts, search_only=False),
        "inas_all_update": lambda: inas_metrics(preds_t, gts_t, None, 1),
        "inas_all_batch": lambda: inas_metrics(preds_t, gts_t, None, args.batch),
        "reference_search": lambda: reference_metrics(preds, gts, search_only=True),
        "inas_search_update": lambda: inas_metrics(preds_t, gts_t, SEARCH_METRICS, 1),
        "inas_search_batch": lambda: inas_metrics(preds_t, gts_t, SEARCH_METRICS, args.batch),
    }
    seconds, values = {}, {}
    for name, fn in runs.items():
        seconds[name], values[name] = timed(fn)
    return seconds, values


def print_table(args: argparse.Namespace, seconds: dict[str, float], max_abs_diff: float) -> None:
    rows = []
    for name in seconds:
        ref = "reference_all" if "all" in name else "reference_search"
        rows.append(
            {
                "run": name,
                "seconds": f"{seconds[name]:.2f}",
                "images/s": f"{args.n / seconds[name]:.1f}",
                "vs reference": f"{seconds[ref] / seconds[name]:.2f}x",
            }
        )
    print(f"{args.n} maps of 400x300, torch threads {torch.get_num_threads()}, inas on {args.device}")
    print(format_table(rows, ["run", "seconds", "images/s", "vs reference"]))
    print(f"max |inas - pysodmetrics| over {len(SOD_METRIC_NAMES)} metrics: {max_abs_diff:.2e}")


def main() -> None:
    args = parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    seconds, values = time_runs(args)
    max_abs_diff = max(
        abs(values[name][key] - values[ref][key]) for name, ref in COMPARED.items() for key in values[name]
    )
    print_table(args, seconds, max_abs_diff)
    if args.no_record:
        return
    record_result(
        "metrics",
        {
            "n_images": args.n,
            "size_wh": [400, 300],
            "batch": args.batch,
            "device": args.device,
            "torch_threads": torch.get_num_threads(),
            "images_per_s": {name: round(args.n / s, 2) for name, s in seconds.items()},
            **{
                f"speedup_{name.removeprefix('inas_')}": round(seconds[ref] / seconds[name], 3)
                for name, ref in COMPARED.items()
            },
            "max_abs_diff_vs_reference": max_abs_diff,
        },
    )
    print("appended a line to benchmarks/results.jsonl")


if __name__ == "__main__":
    main()

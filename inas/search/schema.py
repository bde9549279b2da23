"""The results-table schema of a search (`evaluations.parquet`, one row per evaluated architecture): file names,
column names and lists, the latency column naming, the task metrics and their names in `inas.metrics`.

One place for what the evaluators write, the driver saves, the searchers are told and `analyze` reads.

Row layout: BASE_COLUMNS, the task's METRIC columns (TASK_METRICS[task], the first is the objective searchers
maximise), one `latency_ms__<device>` column per device, RESOURCE_COLUMNS, TAIL_COLUMNS, then searcher tags
(`lgs_group`, nevergrad's `budget_ms`: the latency budget of the nevergrad instance that asked the arch).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from inas.errors import BadInputError

if TYPE_CHECKING:
    import pandas as pd

EVALUATIONS_FILE = "evaluations.parquet"
PARETO_FILE = "pareto.parquet"

LATENCY_PREFIX = "latency_ms__"
# task -> metric columns (first = the objective searchers optimise, maximised; the rest are recorded)
TASK_METRICS: dict[str, tuple[str, ...]] = {"sod": ("max_fmeasure", "mae"), "seg": ("miou",)}
# results column -> key of the same number in `inas.metrics` (SODMetrics / evaluate_arch scores)
METRIC_KEYS: dict[str, str] = {"max_fmeasure": "maxF", "mae": "mae", "miou": "miou"}
SOD_METRIC_KEYS: dict[str, str] = {c: METRIC_KEYS[c] for c in TASK_METRICS["sod"]}

BASE_COLUMNS = ("arch_id", "arch", "searcher", "generation")
RESOURCE_COLUMNS = ("params_m", "macs_g")
TAIL_COLUMNS = ("eval_seconds", "cached", "trial_id")
# what `analyze` requires of every results file, and which of those must be numeric
REQUIRED_COLUMNS = ("arch_id", "arch", "searcher", "generation", *RESOURCE_COLUMNS, "eval_seconds")
NUMERIC_COLUMNS = ("generation", *RESOURCE_COLUMNS, "eval_seconds")
# nevergrad's per-row tag: the latency budget (ms) of the optimiser instance that asked the arch
SEARCHER_BUDGET_TAG = "budget_ms"


def primary_metric(task: str) -> str:
    """The metric searchers optimise (maximised): `max_fmeasure` for SOD, `miou` for segmentation."""
    return TASK_METRICS[task][0]


def extra_metrics(task: str) -> tuple[str, ...]:
    """The recorded metrics besides the primary one (`mae` for SOD)."""
    return TASK_METRICS[task][1:]


def latency_column(device: str) -> str:
    """`cpu` -> `latency_ms__cpu`."""
    return f"{LATENCY_PREFIX}{device}"


def device_of(column: str) -> str:
    """`latency_ms__cpu` -> `cpu`."""
    return column[len(LATENCY_PREFIX):]


def latency_columns(columns: Iterable[object]) -> list[str]:
    """The `latency_ms__<device>` names among `columns` (e.g. a DataFrame), in order."""
    return [str(c) for c in columns if str(c).startswith(LATENCY_PREFIX) and len(str(c)) > len(LATENCY_PREFIX)]


def detect_task(columns: Sequence[str]) -> str | None:
    """"sod" if the SOD primary metric is a column, else "seg" if the segmentation one is, else None."""
    for task, metrics in TASK_METRICS.items():
        if metrics[0] in columns:
            return task
    return None


def check_values(frame: pd.DataFrame, path: str | Path, task: str, latency_cols: Sequence[str], *,
                 complete: bool = False) -> None:
    """BadInputError naming `path`, the column and its first bad row unless every task metric is a number in [0, 1]
    or missing (a failed evaluation), and every latency (ms), `params_m`, `macs_g` and `eval_seconds` is a finite
    number >= 0 or missing; `complete` (a run's own table read back): latencies, `params_m` and `macs_g` present in
    every row (the driver computes them for every arch)."""
    import numpy as np
    import pandas as pd

    ranges = {**{c: (0.0, 1.0, False) for c in TASK_METRICS[task]},
              **{c: (0.0, np.inf, complete) for c in (*latency_cols, *RESOURCE_COLUMNS)},
              "eval_seconds": (0.0, np.inf, False)}
    for column, (low, high, required) in ranges.items():
        if column not in frame.columns:
            continue
        series = frame[column]
        if not pd.api.types.is_numeric_dtype(series) or pd.api.types.is_bool_dtype(series):
            raise BadInputError(f"column must be numeric, got dtype {series.dtype}", path=path, key=column)
        values = series.to_numpy(dtype=float, na_value=np.nan)
        missing = np.isnan(values)
        bad = (missing & required) | (~missing & ~((values >= low) & (values <= high) & np.isfinite(values)))
        if bad.any():
            row = int(np.flatnonzero(bad)[0])
            expected = "a number in [0, 1]" if high == 1.0 else "a finite number >= 0"
            raise BadInputError(f"expected {expected}{'' if required else ' or missing'} in every row, got "
                                f"{float(values[row])!r} in row {row}", path=path, key=column)

"""Warm start (`search --warm-start DIR [DIR ...]`): the evaluations of earlier search runs on the same space, read
from their `evaluations.parquet` and fed to every searcher through `Searcher.warm_start` (the predictor-guided and
Optuna searchers learn from them; the others keep them without using them).

Only successful rows are used, one per architecture (the first, folders in the given order). The metric must be the
run's task metric; each device's latency is the row's `latency_ms__<device>` when there, else the device's LUT
function. An arch outside the space (another space's run) is bad input naming the folder.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path

from inas.errors import BadInputError
from inas.search.analysis import read_evaluations
from inas.search.schema import EVALUATIONS_FILE, detect_task, latency_column, latency_columns, primary_metric
from inas.search.searchers.base import LatencyFn, Record, Searcher
from inas.space import Arch, SearchSpace, arch_from_json


def _value(row: Mapping, column: str) -> float | None:
    value = row.get(column)
    if value is None:
        return None
    value = float(value)
    return None if math.isnan(value) else value


def read_warm_start(folders: Sequence[str | Path], space: SearchSpace, task: str,
                    device_latency_fns: Mapping[str, LatencyFn]) -> list[Record]:
    """Records of the successful evaluations in `folders` (see the module docstring). The first device of
    `device_latency_fns` is the primary one (`Record.latency_ms`)."""
    metric = primary_metric(task)
    records: dict[str, Record] = {}
    for folder in folders:
        frame = read_evaluations(folder, warm_start=True)
        path = Path(folder) / EVALUATIONS_FILE
        if detect_task([str(c) for c in frame.columns]) != task:
            raise BadInputError(f"holds another task's results; this search optimises {metric}", path=path,
                                key="--warm-start")
        for row in frame.to_dict("records"):
            score = _value(row, metric)
            if score is None or str(row["arch_id"]) in records:
                continue
            arch = arch_from_json(str(row["arch"]), space, str(path))
            if device_latency_fns:
                records[arch.arch_id] = device_record(arch, score, row, device_latency_fns)
            else:  # no device functions: the row's first latency column is the primary latency
                first = _value(row, latency_columns(frame.columns)[0])
                records[arch.arch_id] = Record(arch, score, math.nan if first is None else first)
    return list(records.values())


def device_record(arch: Arch, score: float, row: Mapping, device_latency_fns: Mapping[str, LatencyFn]) -> Record:
    """The Record of an evaluated arch: each device's latency is the row's `latency_ms__<device>` when there, else the
    device's function; the first device is the primary one (`Record.latency_ms`)."""
    device_ms = {}
    for device, fn in device_latency_fns.items():
        told = _value(row, latency_column(device))
        device_ms[device] = float(fn(arch)) if told is None else told
    return Record(arch, score, next(iter(device_ms.values())), device_ms)


def warm_start_searchers(searchers: Mapping[str, Searcher], records: Sequence[Record]) -> dict[str, int]:
    """Feed `records` to every searcher; {name: records new to it}."""
    return {name: searcher.warm_start(records) for name, searcher in searchers.items()}

"""The two evaluators of the search and the results table that caches them.

- `AccuracyEvaluator`: one supernet held in memory (weights loaded ONCE per process) and the BN-recalibration and
  validation batches decoded once and kept as tensors. `evaluate(arch)` recalibrates BN for that arch on the fixed,
  seeded training subset (precise BN, docs/design.md §8), scores the validation set (SOD: max F-measure + MAE; seg:
  mIoU) and restores the pristine BN state, so every evaluation starts from the same weights (no leakage between archs).
- `ResourceEvaluator`: latency per device from the latency tables (`latency_ms__<device>`), params and MACs of the
  deployed model at the search resolution (`params_m`, `macs_g`). Cheap; runs in the driver.
- `EvaluationTable`: the rows of `evaluations.parquet` (DESIGN.md contract) with a lookup by canonical arch id, so an
  arch already evaluated is served from the table instead of being recomputed.

Workers get the supernet as plain numpy arrays through the Ray object store (`supernet_payload` ->
`tune.with_parameters`); `worker_evaluator(payload)` builds the evaluator on the first trial of a worker process and
reuses it for every later trial of that process.
"""

from __future__ import annotations

import hashlib
import logging
import math
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import torch
from torch import Tensor

from inas.errors import BadInputError
from inas.io import atomic_write_parquet
from inas.paths import require_file
from inas.search.schema import (  # noqa: F401 - LATENCY_PREFIX re-exported for importers of this module
    BASE_COLUMNS,
    LATENCY_PREFIX,
    RESOURCE_COLUMNS,
    TAIL_COLUMNS,
    TASK_METRICS,
    check_values,
    latency_column,
    primary_metric,
)
from inas.search.schema import SOD_METRIC_KEYS as _SOD_KEYS
from inas.space import Arch, SearchSpace, arch_from_json

if TYPE_CHECKING:
    from inas.search.trial import WorkerSetup

log = logging.getLogger(__name__)

# ----- accuracy ----------------------------------------------------------------------------------------------------
@dataclass
class EvalData:
    """Decoded batches kept in memory: BN-recalibration images (N, 3, H, W) each, validation batches
    {"image": (N, 3, H, W), "label": list of full-resolution ground truths}."""

    bn_images: list[Tensor]
    val_batches: list[dict]


def load_eval_data(data_config: Any, task: str, bn_batches: int, val_batch_size: int = 1, seed: int = 0) -> EvalData:
    """Read the BN subset (`bn_batches` batches of `data.batch_size`, fixed seeded subset of the training list, no
    augmentation) and the validation list (`data.val_list`) once, as tensors."""
    from inas.data import bn_loader_from_config, eval_loader_from_config
    from inas.evaluation import batch_images

    bn_loader = bn_loader_from_config(data_config, task, bn_batches, seed=seed)
    bn_images = [batch_images(b).contiguous() for b in bn_loader]
    val_loader = eval_loader_from_config(data_config, task, batch_size=val_batch_size)
    val_batches = [{"image": b["image"].contiguous(), "label": list(b["label"])} for b in val_loader]
    if not bn_images or not val_batches:
        raise BadInputError("the BN-recalibration or validation list yielded no batch", key="data")
    return EvalData(bn_images, val_batches)


class AccuracyEvaluator:
    """Task metrics of sub-networks of one supernet (see the module docstring)."""

    def __init__(self, supernet: torch.nn.Module, data: EvalData, task: str, bn_batches: int,
                 protocol: str = "standard") -> None:
        from inas.evaluation import bn_state

        if task not in TASK_METRICS:
            raise ValueError(f"task must be one of {sorted(TASK_METRICS)}, got {task!r}")
        self.supernet = supernet.eval()
        self.data = data
        self.task = task
        self.bn_batches = min(int(bn_batches), len(data.bn_images))
        self.protocol = protocol
        self._pristine = bn_state(supernet)
        self.evaluations = 0

    @property
    def space(self) -> SearchSpace:
        return self.supernet.space

    def evaluate(self, arch: Arch) -> dict[str, float]:
        """{metric: value for TASK_METRICS[task], "eval_seconds": wall time}; BN state restored afterwards."""
        from inas.evaluation import evaluate_arch, load_bn_state

        start = time.perf_counter()
        try:
            scores = evaluate_arch(self.supernet, arch, self.data.bn_images, self.data.val_batches, self.bn_batches,
                                   self.task, protocol=self.protocol, metrics="search")
        finally:
            load_bn_state(self.supernet, self._pristine)  # also after a failure inside evaluate_arch
        self.evaluations += 1
        if self.task == "sod":
            out = {name: float(scores[key]) for name, key in _SOD_KEYS.items()}
        else:
            out = {"miou": float(scores["miou"])}
        out["eval_seconds"] = time.perf_counter() - start
        return out


def supernet_payload(supernet: Any, key: str) -> dict[str, Any]:
    """The supernet as plain data for the Ray object store: construction arguments and weights as numpy arrays
    (deserialised zero-copy in workers). `key` identifies the weights (see `worker_evaluator`)."""
    from inas.nn.checkpoint import supernet_header_record

    return {
        "key": key,
        **supernet_header_record(supernet),
        "state": {k: v.detach().cpu().numpy() for k, v in supernet.state_dict().items()},
    }


def supernet_from_payload(payload: Mapping[str, Any]) -> Any:
    from inas.nn.checkpoint import read_supernet_header

    supernet = read_supernet_header(payload, "supernet payload").build()
    state = {k: torch.from_numpy(np.array(v)) for k, v in payload["state"].items()}
    supernet.load_state_dict(state, strict=True)
    return supernet.eval()


_WORKER_EVALUATORS: dict[str, AccuracyEvaluator] = {}


def worker_evaluator(payload: Mapping[str, Any], setup: WorkerSetup) -> AccuracyEvaluator:
    """The accuracy evaluator of this process for (`payload["key"]`, `setup`), built once: the supernet from the
    payload, the batches from `setup` (the supernet goes to the GPU when `setup.cuda` and one is visible)."""
    cache_key = payload["key"] + setup.cache_key()
    evaluator = _WORKER_EVALUATORS.get(cache_key)
    if evaluator is None:
        _WORKER_EVALUATORS.clear()  # one supernet per process
        data = load_eval_data(setup.data, setup.task, setup.bn_batches, setup.val_batch_size, setup.seed)
        supernet = supernet_from_payload(payload)
        if setup.cuda and torch.cuda.is_available():  # trials given a GPU (search.gpus_per_trial > 0)
            supernet = supernet.to("cuda")
        evaluator = AccuracyEvaluator(supernet, data, setup.task, setup.bn_batches)
        _WORKER_EVALUATORS[cache_key] = evaluator
    return evaluator


def file_key(path: str | Path) -> str:
    """Identity of a checkpoint file for caches: path, size and modification time, hashed."""
    path = Path(path).resolve()
    stat = path.stat()
    return hashlib.sha1(f"{path}|{stat.st_size}|{stat.st_mtime_ns}".encode()).hexdigest()[:16]


def load_search_supernet(path: str | Path, space: SearchSpace, num_classes: int) -> Any:
    """Load a supernet checkpoint for `space`: BadInputError if the file is missing or unreadable, or if it was
    trained on another space or number of classes."""
    from inas.nn import load_supernet, space_spec

    path = require_file(path, "supernet checkpoint", hint=" (train one with `python -m inas.run train -c CONFIG`)",
                        key="search.supernet")
    supernet = load_supernet(path)
    if space_spec(supernet.space) != space_spec(space):
        raise BadInputError("the checkpoint's supernet was built for a different search space than the config's "
                            "`space` section; use the config it was trained with", path=path, key="space")
    if supernet.num_classes != num_classes:
        raise BadInputError(f"the checkpoint has {supernet.num_classes} output classes, the config's task needs "
                            f"{num_classes}", path=path, key="task")
    return supernet


# ----- resources ---------------------------------------------------------------------------------------------------
def load_latency_predictors(lut_dir: str | Path, devices: Sequence[str], space: SearchSpace, num_classes: int,
                            input_hw: tuple[int, int]) -> dict[str, Any]:
    """One `LatencyPredictor` per device from `<lut_dir>/<device>.parquet`, checked to cover every block of `space`
    at `input_hw` for `num_classes`; BadInputError naming the table otherwise."""
    from inas.latency import LatencyPredictor, candidate_correction_path, enumerate_blocks, table_path

    predictors = {}
    for device in devices:
        path = table_path(lut_dir, device)
        predictor = LatencyPredictor(path, space)
        if predictor.correction is None and candidate_correction_path(path).is_file():
            log.warning("device %s: block sums without correction; its candidate correction (%s) is applied once a "
                        "later `lut validate` confirms it on other networks", device, candidate_correction_path(path))
        if tuple(predictor.input_hw) != tuple(input_hw):
            raise BadInputError(f"latency table was built for input {predictor.input_hw}, the search uses {input_hw} "
                                "(lut.input_size / data.image_size); rebuild it with `lut`", path=path)
        if predictor.num_classes != num_classes:
            raise BadInputError(f"latency table was built for {predictor.num_classes} classes, the task needs "
                                f"{num_classes}; rebuild it with `lut`", path=path)
        wanted = enumerate_blocks(space, tuple(input_hw), num_classes)
        missing = predictor.missing_blocks(wanted)
        if missing:
            raise BadInputError(f"{len(missing)} of the {len(wanted)} blocks of the search space are missing from the "
                                f"latency table of device {device!r}, e.g. '{missing[0].text}' (built for another "
                                "space or input size, or not finished? complete it with `python -m inas.run lut -c "
                                "CONFIG`)", path=path)
        predictors[device] = predictor
    return predictors


class ResourceEvaluator:
    """`latency_ms__<device>` per device (LUT), `params_m` and `macs_g` of the folded model at `input_hw`."""

    def __init__(self, predictors: Mapping[str, Any], space: SearchSpace, input_hw: tuple[int, int],
                 num_classes: int = 1) -> None:
        if not predictors:
            raise ValueError("needs at least one latency predictor")
        self.predictors = dict(predictors)
        self.space = space
        self.input_hw = (int(input_hw[0]), int(input_hw[1]))
        self.num_classes = num_classes
        self.primary_device = next(iter(self.predictors))

    @property
    def latency_columns(self) -> list[str]:
        return [latency_column(d) for d in self.predictors]

    def latency_ms(self, arch: Arch) -> float:
        """Latency on the primary (first) device, ms: the searchers' `latency_fn`."""
        return float(self.predictors[self.primary_device].predict(arch))

    def evaluate(self, arch: Arch) -> dict[str, float]:
        from inas.nn import arch_cost

        out = {latency_column(d): float(p.predict(arch)) for d, p in self.predictors.items()}
        params, macs = arch_cost(self.space, arch, self.input_hw, self.num_classes)
        out["params_m"] = params / 1e6
        out["macs_g"] = macs / 1e9
        return out


# ----- results table -----------------------------------------------------------------------------------------------
class EvaluationTable:
    """Rows of `evaluations.parquet` in evaluation order, with a lookup of the first successful row per arch id."""

    def __init__(self, task: str, latency_columns: Sequence[str], rows: Iterable[Mapping[str, Any]] = ()) -> None:
        self.task = task
        self.metric_columns = TASK_METRICS[task]
        self.latency_columns = list(latency_columns)
        self.rows: list[dict[str, Any]] = []
        self._by_id: dict[str, dict[str, Any]] = {}
        self.changes = 0  # rows added or replaced so far (when to save: `inas.search.state.StateSaver`)
        for row in rows:
            self.add(row)

    def columns(self) -> list[str]:
        return [*BASE_COLUMNS, *self.metric_columns, *self.latency_columns, *RESOURCE_COLUMNS, *TAIL_COLUMNS]

    def add(self, row: Mapping[str, Any]) -> None:
        row = dict(row)
        self.rows.append(row)
        self.changes += 1
        if _has_metric(row, self.metric_columns[0]) and row["arch_id"] not in self._by_id:
            self._by_id[row["arch_id"]] = row

    def failed_rows(self, arch_id: str) -> list[dict[str, Any]]:
        """The rows of `arch_id` without a metric (failed evaluations, and copies told to other searchers)."""
        return [r for r in self.rows if r["arch_id"] == arch_id and not _has_metric(r, self.metric_columns[0])]

    def replace(self, old: Mapping[str, Any], new: Mapping[str, Any]) -> None:
        """Put `new` in place of the row `old` (the same object as in `rows`), keeping the order."""
        index = next(i for i, r in enumerate(self.rows) if r is old)
        self.rows[index] = dict(new)
        self.changes += 1
        if _has_metric(new, self.metric_columns[0]) and new["arch_id"] not in self._by_id:
            self._by_id[new["arch_id"]] = self.rows[index]

    def lookup(self, arch_id: str) -> dict[str, Any] | None:
        """The first successful row of `arch_id`, or None (never evaluated, or only failed evaluations)."""
        return self._by_id.get(arch_id)

    def __len__(self) -> int:
        return len(self.rows)

    def frame(self) -> pd.DataFrame:
        """The table with the contract columns first (then searcher tags such as `lgs_group`, `budget_ms`)."""
        columns = self.columns()
        frame = pd.DataFrame(self.rows)
        if frame.empty:
            return pd.DataFrame({c: pd.Series(dtype=_dtype(c)) for c in columns})
        for c in columns:
            if c not in frame.columns:
                frame[c] = pd.Series([None] * len(frame), dtype=object)
        extras = [c for c in frame.columns if c not in columns]
        frame = frame[columns + extras]
        for c in columns:
            if _dtype(c) == "float64":
                frame[c] = pd.to_numeric(frame[c], errors="coerce").astype("float64")
        frame["generation"] = frame["generation"].fillna(-1).astype("int64")
        frame["cached"] = frame["cached"].fillna(False).astype(bool)
        for c in ("arch_id", "arch", "searcher", "trial_id"):
            frame[c] = frame[c].fillna("").astype(str)
        return frame

    def save(self, path: str | Path) -> None:
        atomic_write_parquet(path, self.frame())

    @classmethod
    def load(cls, path: str | Path, task: str, latency_columns: Sequence[str],
             space: SearchSpace | None = None) -> EvaluationTable:
        """Rows of an existing `evaluations.parquet` (BadInputError if unreadable or from another task/devices).
        With `space`, every row's arch is parsed and its `arch_id` must equal the id of that arch (ids name files)."""
        path = Path(path)
        try:
            frame = pd.read_parquet(path)
        except Exception as exc:  # noqa: BLE001 - pyarrow raises several types for corrupt files
            raise BadInputError(f"cannot be read as Parquet ({type(exc).__name__}: {str(exc)[:200]})",
                                path=path) from None
        table = cls(task, latency_columns)
        missing = [c for c in table.columns() if c not in frame.columns]
        if missing:
            raise BadInputError(f"not a search results table of this config (missing columns {missing}); use another "
                                "output folder", path=path)
        check_values(frame, path, task, table.latency_columns, complete=True)
        if not pd.api.types.is_bool_dtype(frame["cached"]):
            raise BadInputError(f"column must be true/false, got dtype {frame['cached'].dtype}", path=path,
                                key="cached")
        for i, row in enumerate(frame.to_dict(orient="records")):
            row = {k: _plain(v) for k, v in row.items()}
            if space is not None:
                check_row_id(row, space, path, i)
            table.add(row)
        return table


def check_row_id(row: Mapping[str, Any], space: SearchSpace, path: Path, index: int) -> Arch:
    """BadInputError unless the row's `arch` parses in `space` and its `arch_id` is that arch's id."""
    arch_json, arch_id = row.get("arch"), row.get("arch_id")
    if not isinstance(arch_json, str) or not isinstance(arch_id, str):
        raise BadInputError("arch and arch_id must be strings", path=path, key=f"row {index}")
    arch = arch_from_json(arch_json, space, f"{path}: row {index}: arch")
    if arch.arch_id != arch_id:
        raise BadInputError(f"arch_id {arch_id[:40]!r} is not the id of the row's arch ({arch.arch_id})", path=path,
                            key=f"row {index}")
    return arch


def _has_metric(row: Mapping[str, Any], metric: str) -> bool:
    value = row.get(metric)
    return value is not None and not (isinstance(value, float) and math.isnan(value))


def _dtype(column: str) -> str:
    if column in ("arch_id", "arch", "searcher", "trial_id"):
        return "object"
    if column == "generation":
        return "int64"
    if column == "cached":
        return "bool"
    return "float64"


def _plain(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    return value

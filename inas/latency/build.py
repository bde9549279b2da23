"""`lut`: measure every block of the space on every configured device, in parallel, into `<out_dir>/<device>.parquet`.

Each device gets `actors` Ray actors pinned by its resource; blocks are handed out one at a time to whichever actor
of the device is free (dynamic sharding). Blocks already in a device's table are skipped (resume), new rows are
flushed every `flush_every` blocks and at the end (atomic rewrite), also when interrupted.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm import tqdm

from inas.config import ExperimentConfig
from inas.data.lists import resolve_list_path
from inas.errors import BadInputError
from inas.latency.backends import INT8_BACKENDS
from inas.latency.blocks import BlockKey, enumerate_blocks, parse_input_size
from inas.latency.devices import DeviceSpec, NetworkReference, device_actors, dispatch, reference_network_arch
from inas.latency.table import keys_of, read_table, table_from_rows, table_path, write_table
from inas.paths import path_kind
from inas.runtimes.calibration import Calibration, images_from_list

log = logging.getLogger(__name__)


def lut_input_hw(config: ExperimentConfig) -> tuple[int, int]:
    """(H, W) the tables are built for: `config.deploy_input_hw` (lut.input_size, else data.image_size or the
    segmentation crop), checked to be multiples of 32."""
    key = "lut.input_size" if config.lut.input_size is not None else "data.image_size"
    return parse_input_size(config.deploy_input_hw, key)


def device_specs(config: ExperimentConfig) -> list[DeviceSpec]:
    lut = config.lut
    network = network_reference(config)
    return [DeviceSpec(d.name, d.ray_resource, d.backend, d.threads, d.batch, d.actors, lut.warmup_runs, lut.runs,
                       lut.node_lock, lut.drop_preempted_runs, lut_input_hw(config), lut.reference_every,
                       lut.max_spread, lut.retimes, network)
            for d in lut.devices]


def network_reference(config: ExperimentConfig) -> NetworkReference | None:
    """The whole network the actors time for drift (`reference_network_arch` of the config's space), None if
    `lut.reference_network_every_s` is 0."""
    if config.lut.reference_network_every_s <= 0:
        return None
    from inas.nn import space_spec

    space = config.space.build()
    return NetworkReference(space_spec(space), reference_network_arch(space).to_json(), config.num_classes,
                            config.lut.reference_network_every_s)


def lut_calibration(config: ExperimentConfig) -> Calibration | None:
    """Calibration images for the INT8 devices: `lut.calibration_images` images of data.train_list at the LUT
    input size; None (random data) if no device is INT8 or the list file does not exist."""
    if not any(d.backend in INT8_BACKENDS for d in config.lut.devices):
        return None
    data = config.data
    if not resolve_list_path(data.root, data.train_list).is_file():
        log.info("no %s under %s: INT8 devices calibrate on random data", data.train_list, data.root)
        return None
    return images_from_list(data.root, data.train_list, config.lut.calibration_images, lut_input_hw(config))


def config_blocks(config: ExperimentConfig) -> list[BlockKey]:
    """Every block of the config's space at its LUT input size."""
    return enumerate_blocks(config.space.build(), lut_input_hw(config), config.num_classes)


@dataclass
class BuildReport:
    device: str
    path: Path
    blocks: int  # blocks of the space
    reused: int  # already in the table before this run
    measured: int  # measured in this run
    seconds: float  # wall time of this device's measurements
    reference: tuple[float, float, float] | None = None  # min, median, max of the table's reference block times
    reference_network: tuple[float, float, float] | None = None  # ... and of its reference network times
    retimed: int = 0  # rows dropped to be measured again (`retime_drifted_pct`); counted in `measured`, not `reused`

    @property
    def seconds_per_block(self) -> float:
        return self.seconds / self.measured if self.measured else float("nan")


def load_existing(path: Path, spec: DeviceSpec) -> pd.DataFrame | None:
    """The table already at `path` (for resuming), checked to hold the same device setting."""
    if path_kind(path) == "missing":  # a symlink loop or an unreadable parent is an error, not a new table
        return None
    frame = read_table(path)
    if frame.empty:
        return frame
    first = frame.iloc[0]
    want = {"device": spec.name, "backend": spec.backend, "batch": spec.batch, "threads": spec.threads}
    have = {k: (int(first[k]) if isinstance(v, int) else str(first[k])) for k, v in want.items()}
    if have != want:
        raise BadInputError(f"existing table was measured with {have}, the config asks for {want}; move it away or "
                            "write to another folder (-o) to start a new table", path=path)
    return frame


def drifted_rows(frame: pd.DataFrame, pct: float) -> np.ndarray:
    """Rows timed while the machine ran at another speed: the reference block timed around them differs from the
    table's median reference by more than `pct` % (rows without a reference timing never count). Bool (rows,)."""
    if frame.empty or "reference_ms" not in frame:
        return np.zeros(len(frame), dtype=bool)
    reference = frame["reference_ms"].to_numpy(dtype=float)
    finite = np.isfinite(reference) & (reference > 0)
    if not finite.any():
        return np.zeros(len(frame), dtype=bool)
    median = float(np.median(reference[finite]))
    with np.errstate(invalid="ignore", divide="ignore"):
        return finite & (np.abs(reference / median - 1) > pct / 100)


class _TableWriter:
    """Accumulates one device's rows and rewrites its table atomically."""

    def __init__(self, path: Path, existing: pd.DataFrame | None, flush_every: int) -> None:
        self.path = path
        self.frames = [existing] if existing is not None and not existing.empty else []
        self.pending: list[dict] = []
        self.flush_every = flush_every

    def add(self, rows: list[dict]) -> None:
        self.pending.extend(rows)
        if len(self.pending) >= self.flush_every:
            self.flush()

    def flush(self) -> None:
        if not self.pending:
            return
        self.frames = [pd.concat(self.frames + [table_from_rows(self.pending)], ignore_index=True)]
        self.pending = []
        write_table(self.path, self.frames[0])


def _plan_device(spec, out_dir: Path, keys: list, flush_every: int,
                 retime_drifted_pct: float | None) -> tuple[deque, _TableWriter, BuildReport]:
    """(the rows still to measure, the writer that appends to the device's table, its report so far). With
    `retime_drifted_pct`, the rows `drifted_rows` finds are dropped (the table is rewritten without them at the
    first flush) and measured again."""
    path = table_path(out_dir, spec.name)
    existing = load_existing(path, spec)
    retimed = 0
    if existing is not None and retime_drifted_pct is not None:
        drifted = drifted_rows(existing, retime_drifted_pct)
        retimed = int(drifted.sum())
        existing = existing[~drifted].reset_index(drop=True)
    done = set(keys_of(existing)) if existing is not None else set()
    missing = [k for k in keys if k not in done]
    log.info("device %s: %d blocks, %d already in %s, %d to measure%s", spec.name, len(keys),
             len(keys) - len(missing), path, len(missing),
             f" ({retimed} of them timed again: their reference drifted by > {retime_drifted_pct:g} %)"
             if retime_drifted_pct is not None else "")
    report = BuildReport(spec.name, path, len(keys), len(keys) - len(missing), 0, 0.0, retimed=retimed)
    return deque(k.to_row() for k in missing), _TableWriter(path, existing, flush_every), report


def build_tables(config: ExperimentConfig, out_dir: str | Path | None = None, address: str | None = None,
                 progress: bool = True, in_process: bool = False,
                 retime_drifted_pct: float | None = None) -> list[BuildReport]:
    """Measure the missing blocks of every device's table (all devices in parallel on Ray actors, or one call at a
    time in this process with `in_process`), first dropping the rows timed during drift when `retime_drifted_pct`
    is given (`drifted_rows`); returns one report per device."""
    out_dir = Path(out_dir) if out_dir is not None else config.lut.out_dir
    specs = device_specs(config)
    keys = config_blocks(config)
    plans = {spec.name: _plan_device(spec, out_dir, keys, config.lut.flush_every, retime_drifted_pct) for spec in specs}
    todo = {name: plan[0] for name, plan in plans.items()}
    writers = {name: plan[1] for name, plan in plans.items()}
    reports = {name: plan[2] for name, plan in plans.items()}
    if not any(todo.values()):
        return list(reports.values())
    bars = {}
    t0 = time.perf_counter()

    def on_result(device: str, rows: list[dict]) -> None:
        writers[device].add(rows)
        reports[device].measured += len(rows)
        reports[device].seconds = time.perf_counter() - t0
        bars[device].update(len(rows))

    try:
        with device_actors(specs, address, in_process, lut_calibration(config)) as actors:
            bars.update({spec.name: tqdm(total=len(keys), initial=reports[spec.name].reused, desc=f"lut {spec.name}",
                                         position=i, unit="block", disable=not progress, leave=True)
                         for i, spec in enumerate(specs)})
            t0 = time.perf_counter()
            dispatch(actors, todo, "measure_blocks", lambda row: ([row],), on_result,
                     lost_hint="; the blocks measured so far are kept in the device tables, and running the same "
                     "command again measures the rest")
    finally:
        for writer in writers.values():
            writer.flush()
        for bar in bars.values():
            bar.close()
    for name, report in reports.items():
        frame = writers[name].frames[0] if writers[name].frames else None
        report.reference = reference_range(frame)
        report.reference_network = reference_range(frame, "reference_network_ms")
    return list(reports.values())


def reference_range(frame: pd.DataFrame | None, column: str = "reference_ms") -> tuple[float, float, float] | None:
    """(min, median, max) of a table's reference block (or network: `column`) times, None if it has none."""
    if frame is None or column not in frame:
        return None
    values = frame[column].to_numpy(dtype=float)
    values = values[np.isfinite(values)]
    return (float(values.min()), float(np.median(values)), float(values.max())) if len(values) else None

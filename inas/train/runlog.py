"""What a training run logs in its folder: `metrics.csv` (one row per logged step), `validation.csv` (one row per
validated sub-network), TensorBoard event files under `tb/`, and `sessions.csv`: one row per start of the loop
(a fresh start, a resumed run, a worker group restarted by Ray Train) with the iteration it continued from.

`metrics.csv` and `validation.csv` are append-safe across resume: when a run restarts from the checkpoint of
iteration k, rows of iterations > k (logged after that checkpoint by the interrupted run) are dropped first (an
atomic rewrite), so every iteration appears once. The TensorBoard writer purges events after k the same way.
"""

from __future__ import annotations

import csv
import io
import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from inas.errors import BadInputError, clip, excerpt
from inas.io import atomic_write_text
from inas.paths import path_kind

METRICS_CSV = "metrics.csv"
VALIDATION_CSV = "validation.csv"
TENSORBOARD_DIR = "tb"


def _format(value: Any) -> str:
    if isinstance(value, float):
        return "nan" if math.isnan(value) else f"{value:.6g}"
    return str(value)


class CsvLog:
    """A CSV file with a fixed header, appended row by row (flushed), truncated to `iteration <= start` on open."""

    def __init__(self, path: Path, columns: Sequence[str], start_iteration: int) -> None:
        self.path = Path(path)
        self.columns = list(columns)
        kept: list[dict[str, str]] = []
        fieldnames, rows = read_csv_rows(self.path)
        if fieldnames == self.columns:
            kept = [row for row in rows if _iteration(row) <= start_iteration]
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=self.columns, lineterminator="\n")
        writer.writeheader()
        writer.writerows(kept)
        atomic_write_text(self.path, buffer.getvalue())
        self._handle = self.path.open("a", newline="", encoding="utf-8")
        self._writer = csv.DictWriter(self._handle, fieldnames=self.columns, lineterminator="\n",
                                      extrasaction="ignore")

    def write(self, row: Mapping[str, Any]) -> None:
        self._writer.writerow({k: _format(row.get(k, "")) for k in self.columns})
        self._handle.flush()

    def close(self) -> None:
        self._handle.close()


def read_csv_rows(path: Path) -> tuple[list[str] | None, list[dict[str, str]]]:
    """(header, rows) of a CSV file of the run folder ((None, []) when it does not exist); BadInputError naming the
    file when it cannot be read as UTF-8 CSV (a run folder's logs are read back on resume: untrusted)."""
    if path_kind(path) == "missing":
        return None, []
    try:
        with path.open(newline="", encoding="utf-8") as handle:
            reader = csv.DictReader(handle)
            return (list(reader.fieldnames) if reader.fieldnames else None), list(reader)
    except (OSError, UnicodeError, csv.Error) as exc:
        raise BadInputError(f"cannot read this run-folder log as UTF-8 CSV ({type(exc).__name__}: "
                            f"{clip(str(exc), 200)}); move it away to start a new one", path=path) from None


def check_run_folder(run_dir: Path, files: Sequence[str]) -> None:
    """Before a session reads back or rewrites anything in `run_dir`: each of `files` (and the logs of this module)
    is absent or a regular file, `tb/` absent or a folder, the CSV logs readable and `sessions.csv` well-formed;
    else a BadInputError naming the entry (a symlink loop included)."""
    run_dir = Path(run_dir)
    for name in (*files, METRICS_CSV, VALIDATION_CSV, SESSIONS_CSV):
        if path_kind(run_dir / name) not in ("missing", "file"):
            raise BadInputError("expected a file of the run folder, found a folder or a special file; move it "
                                "away", path=run_dir / name)
    if path_kind(run_dir / TENSORBOARD_DIR) not in ("missing", "folder"):
        raise BadInputError("expected the run folder's TensorBoard folder, found a file; move it away",
                            path=run_dir / TENSORBOARD_DIR)
    read_csv_rows(run_dir / METRICS_CSV)
    read_csv_rows(run_dir / VALIDATION_CSV)
    read_sessions(run_dir)


def _iteration(row: Mapping[str, str]) -> int:
    try:
        return int(row.get("iteration") or 0)
    except ValueError:
        return 0


class RunLog:
    """metrics.csv + validation.csv + TensorBoard of one run folder (used by rank 0 only)."""

    def __init__(self, run_dir: Path, subnet_names: Sequence[str], metric_names: Sequence[str],
                 start_iteration: int, tensorboard: bool = True) -> None:
        self.metric_names = list(metric_names)
        train_columns = ["iteration", "epoch", "lr", "loss"] + [f"loss_{n}" for n in subnet_names]
        train_columns += ["images_per_s", "elapsed_s"]
        self.metrics = CsvLog(run_dir / METRICS_CSV, train_columns, start_iteration)
        self.validation = CsvLog(run_dir / VALIDATION_CSV,
                                 ["iteration", "subnet", "arch_id", *self.metric_names, "eval_s"], start_iteration)
        self.writer = None
        if tensorboard:
            from torch.utils.tensorboard import SummaryWriter

            self.writer = SummaryWriter(str(run_dir / TENSORBOARD_DIR), purge_step=start_iteration + 1)

    def log_train(self, row: Mapping[str, Any]) -> None:
        self.metrics.write(row)
        if self.writer is not None:
            step = int(row["iteration"])
            for key, value in row.items():
                if key not in ("iteration", "epoch") and isinstance(value, (int, float)):
                    self.writer.add_scalar(f"train/{key}", value, step)

    def log_validation(self, iteration: int, subnet: str, arch_id: str, metrics: Mapping[str, float],
                       eval_s: float) -> None:
        self.validation.write({"iteration": iteration, "subnet": subnet, "arch_id": arch_id, **metrics,
                               "eval_s": eval_s})
        if self.writer is not None:
            for key in self.metric_names:
                if key in metrics:
                    self.writer.add_scalar(f"val_{subnet}/{key}", metrics[key], iteration)

    def close(self) -> None:
        self.metrics.close()
        self.validation.close()
        if self.writer is not None:
            self.writer.close()


SESSIONS_CSV = "sessions.csv"
SESSION_COLUMNS = ("session", "start_iteration", "resumed_from", "world_size", "nodes", "started_at")
FRESH, RUN_FOLDER, RAY_CHECKPOINT = "", "run_folder", "ray"  # Session.resumed_from


@dataclass(frozen=True)
class Session:
    """One start of the training loop in a run folder: a row of `sessions.csv`."""

    number: int  # 1, 2, ... in the order of the starts
    start_iteration: int  # the iteration of the checkpoint it continued from; 0 for a fresh start
    resumed_from: str  # FRESH, RUN_FOLDER (the run folder's checkpoint.pt) or RAY_CHECKPOINT (Ray Train's copy)
    world_size: int
    nodes: tuple[str, ...]  # the Ray node id of each rank, in rank order (empty for a local run)
    started_at: float  # Unix time


def read_sessions(run_dir: Path) -> list[Session]:
    """Every session recorded in `run_dir/sessions.csv` (none when the file does not exist)."""
    path = Path(run_dir) / SESSIONS_CSV
    fieldnames, rows = read_csv_rows(path)
    if fieldnames is None and not rows:
        return []
    if fieldnames != list(SESSION_COLUMNS):
        raise BadInputError(f"expected the columns {list(SESSION_COLUMNS)}, got {excerpt(fieldnames)}; move it away "
                            "to start a new history", path=path)
    sessions = []
    for line, row in enumerate(rows, start=2):
        try:
            sessions.append(Session(number=int(row["session"]), start_iteration=int(row["start_iteration"]),
                                    resumed_from=row["resumed_from"], world_size=int(row["world_size"]),
                                    nodes=tuple(n for n in (row["nodes"] or "").split(";") if n),
                                    started_at=float(row["started_at"])))
        except (TypeError, ValueError) as exc:
            raise BadInputError(f"line {line}: not a session row ({clip(str(exc), 120)}); expected integers for "
                                "session, start_iteration and world_size and a number for started_at; move it "
                                "away to start a new history", path=path) from None
    return sessions


def record_session(run_dir: Path, start_iteration: int, resumed_from: str, world_size: int,
                   nodes: Sequence[str]) -> Session:
    """Append one session to `run_dir/sessions.csv` (the history of every start and restart: never truncated;
    the file is rewritten whole and renamed, so a kill never leaves half a row)."""
    sessions = read_sessions(run_dir)
    session = Session(number=len(sessions) + 1, start_iteration=start_iteration, resumed_from=resumed_from,
                      world_size=world_size, nodes=tuple(nodes), started_at=time.time())
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(SESSION_COLUMNS)
    for s in [*sessions, session]:
        writer.writerow([s.number, s.start_iteration, s.resumed_from, s.world_size, ";".join(s.nodes),
                         f"{s.started_at:.3f}"])
    atomic_write_text(Path(run_dir) / SESSIONS_CSV, buffer.getvalue())
    return session

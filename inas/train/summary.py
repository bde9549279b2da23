"""`RUN_DIR/summary.json`: what a finished training run reports, written by rank 0 and read back (on resume, and by
the Ray driver) as untrusted input: a missing, corrupt or foreign file is a BadInputError naming it and the key."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from inas.io import atomic_write_json
from inas.json_files import read_json_document
from inas.validation_problems import parse_document

SUMMARY_NAME = "summary.json"
MAX_SUMMARY_BYTES = 1 << 20


class TrainSummary(BaseModel):
    """The fields `summary.json` holds (`validation`: the last scores by sub-network name, then metric)."""

    model_config = ConfigDict(extra="forbid")

    iterations: int = Field(ge=0)
    start_iteration: int = Field(ge=0)
    wall_s: float = Field(ge=0, allow_inf_nan=False)
    images_per_s: float  # NaN when the run trained no image (a finished run resumed)
    world_size: int = Field(1, ge=1)
    device: str = "cpu"
    precision: str = "fp32"
    validation: dict[str, dict[str, float]] = Field(default_factory=dict)
    supernet: str


def write_train_summary(run_dir: Path, summary: TrainSummary) -> None:
    """Atomically write `run_dir/summary.json`."""
    atomic_write_json(run_dir / SUMMARY_NAME, summary.model_dump(mode="python"))


def read_train_summary(run_dir: Path) -> TrainSummary:
    """Read and check `run_dir/summary.json`; BadInputError naming the file and the bad key otherwise."""
    path = run_dir / SUMMARY_NAME
    doc = read_json_document(path, "training summary", MAX_SUMMARY_BYTES)
    return parse_document(TrainSummary, doc, path=path)

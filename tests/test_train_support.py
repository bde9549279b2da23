"""Shared helpers of the training tests (no tests here): a tiny space, tiny synthetic data, tiny configs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from inas.config import ExperimentConfig, parse_config
from inas.space import SearchSpace

# The smallest useful space: one width per stage except stage_5 (two widths, depths 2-3), kernels {3} except
# stage_3 ({3, 5}): random sub-networks still differ from max and min, and a step at 64 px takes ~0.1 s.
TINY_SPACE: dict[str, Any] = {
    "stages": {
        "stem": {"widths": [32]},
        "stage_1": {"widths": [16], "depths": [1]},
        "stage_2": {"widths": [24], "depths": [2]},
        "stage_3": {"widths": [40], "depths": [2], "kernels": [3, 5]},
        "stage_4": {"widths": [80], "depths": [2], "kernels": [3]},
        "stage_5": {"widths": [112, 116], "depths": [2, 3], "kernels": [3]},
        "stage_6": {"widths": [192], "depths": [2], "kernels": [3]},
        "stage_7": {"widths": [320], "depths": [1], "kernels": [3]},
    },
    "transport": {f"level_{i}": {"kernels": [3]} for i in range(5)},
    "decoder": {f"level_{i}": {"kernels": [3]} for i in range(5)},
}


def tiny_space() -> SearchSpace:
    return parse_config({"space": TINY_SPACE}).space.build()


def tiny_config_doc(root: Path, out_dir: Path, **train: Any) -> dict[str, Any]:
    """A config document: tiny space, 64-px SOD data at `root`, batch 4, no data workers, 4 iterations."""
    train_section = {"iterations": 4, "warmup_iterations": 2, "checkpoint_every": 2, "log_every": 1,
                     "validate_every": 0, "validate_at_end": True, "bn_recalibration_batches": 1,
                     "out_dir": str(out_dir), "threads": 1}
    train_section.update(train)
    return {
        "task": "sod",
        "seed": 0,
        "space": TINY_SPACE,
        "data": {"root": str(root), "image_size": 64, "multi_scale_sizes": [64, 96], "batch_size": 4,
                 "num_workers": 0},
        "train": train_section,
    }


def tiny_config(root: Path, out_dir: Path, **train: Any) -> ExperimentConfig:
    return parse_config(tiny_config_doc(root, out_dir, **train))


def write_config(path: Path, doc: dict[str, Any]) -> Path:
    path.write_text(yaml.safe_dump(doc, sort_keys=False), encoding="utf-8")
    return path

"""Slow: learning is real. The ready demo configs (experiments/sod_demo.yaml, experiments/seg_demo.yaml), trained on
freshly generated synthetic data, must lift the validated sub-networks well above their initial scores:
SOD max F-measure of the max network >= 0.85 and of the min network >= 0.75; segmentation mIoU far above chance.
Run with `pytest -m slow tests/test_train_learning.py -s` (prints the validation table and the wall time)."""

from __future__ import annotations

import time
from pathlib import Path

import pandas as pd
import pytest

from inas.config import load_config
from inas.data.synth_seg import synthesize_seg
from inas.data.synth_sod import synthesize_sod
from inas.train.loop import train_supernet

pytestmark = pytest.mark.slow
EXPERIMENTS = Path(__file__).resolve().parents[1] / "experiments"


def _train(config_name: str, data_root: Path, run_dir: Path):
    config = load_config(EXPERIMENTS / config_name)
    config.data.root = data_root
    config.train.validate_at_start = True
    start = time.perf_counter()
    result = train_supernet(config, run_dir, progress=False)
    wall_s = time.perf_counter() - start
    rows = pd.read_csv(run_dir / "validation.csv")
    print(f"\n{config_name}: {result.iterations} iterations in {wall_s:.0f} s ({result.images_per_s:.1f} images/s)")
    print(rows.to_string(index=False))
    return config, rows


def _scores(rows: pd.DataFrame, iteration: int, subnet: str, metric: str) -> float:
    """The `metric` column of validation.csv for `subnet` at `iteration`."""
    found = rows.loc[(rows["iteration"] == iteration) & (rows["subnet"] == subnet), metric]
    if len(found) != 1:
        raise AssertionError(f"expected one validation row for {subnet} at iteration {iteration}, got {len(found)}")
    return float(found.iloc[0])


def test_sod_demo_learns(tmp_path):
    root = tmp_path / "synth_sod"
    synthesize_sod(root, n_train=400, n_test=100, size=320, seed=0)
    config, rows = _train("sod_demo.yaml", root, tmp_path / "run")
    last = config.train.iterations
    for subnet in ("max", "min", "random"):
        assert _scores(rows, 0, subnet, "maxF") < 0.5
    assert _scores(rows, last, "max", "maxF") >= 0.85
    assert _scores(rows, last, "min", "maxF") >= 0.75
    assert _scores(rows, last, "max", "mae") < _scores(rows, 0, "max", "mae")  # MAE fell too


def test_seg_demo_learns(tmp_path):
    root = tmp_path / "synth_seg"
    synthesize_seg(root, n_train=200, n_test=50, size=256, seed=0)
    config, rows = _train("seg_demo.yaml", root, tmp_path / "run")
    last = config.train.iterations
    initial = _scores(rows, 0, "max", "miou")
    final_max, final_min = _scores(rows, last, "max", "miou"), _scores(rows, last, "min", "miou")
    assert final_max >= max(0.4, 3 * initial)
    assert final_min >= max(0.3, 2 * initial)

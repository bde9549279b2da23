"""`lut` and `lut validate` with an INT8 device on a tiny space, in process: the table records the calibration
data (training images for the stem, random for inner blocks) and the reference block; validation quantises whole
networks the same way and reports the drift since the build and how an earlier run's correction holds."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from inas.config import parse_config
from inas.data import synthesize_sod
from inas.latency import (
    Correction,
    Figures,
    build_tables,
    candidate_correction_path,
    correction_path,
    read_table,
    validate_tables,
)
from tests.test_latency_build import TINY_SPACE

pytestmark = pytest.mark.slow  # ~40 blocks quantised one by one, then networks: tens of seconds


def table_reference(out, what: str = "block") -> float:
    """The median reference block (or network) time stored in the table while it was built."""
    column = "reference_ms" if what == "block" else "reference_network_ms"
    values = read_table(out / "i8.parquet")[column].to_numpy(dtype=float)
    return float(np.median(values[np.isfinite(values)]))


@pytest.fixture(scope="module")
def int8_lut(tmp_path_factory):
    root = tmp_path_factory.mktemp("data")
    synthesize_sod(root, n_train=6, n_test=2, size=64, seed=0, workers=1)
    config = parse_config({"space": TINY_SPACE, "data": {"root": str(root)},
                           "lut": {"input_size": [32, 64], "warmup_runs": 1, "runs": 3, "node_lock": False,
                                   "reference_every": 10, "calibration_images": 4,
                                   "devices": [{"name": "i8", "backend": "onnxruntime-int8"}]}})
    out = tmp_path_factory.mktemp("lut")
    (report,) = build_tables(config, out, progress=False, in_process=True)
    return config, out, report


def test_int8_table_records_calibration_and_reference(int8_lut):
    config, out, report = int8_lut
    table = read_table(out / "i8.parquet")
    assert len(table) == report.blocks and (table["backend"] == "onnxruntime-int8").all()
    stem = table[table["kind"] == "stem"]
    assert stem["calibration"].str.startswith("images:").all() and stem["calibration"].str.endswith("train.lst").all()
    assert (table.loc[table["kind"] != "stem", "calibration"] == "random").all()
    assert table["reference_ms"].gt(0).all() and table["latency_ms_iqr"].ge(0).all()
    assert table["reference_ms"].nunique() >= len(table) // 10  # re-timed every 10 blocks
    lo, mid, hi = report.reference
    assert lo <= mid <= hi


def test_int8_validation_reports_drift_and_judges_the_saved_correction(int8_lut):
    config, out, _ = int8_lut
    earlier = Correction(0.0, 2.0, 0.0, "scale", 10, 5.0, 4.0, device="i8")  # a correction that doubles the sum
    earlier.save(correction_path(out / "i8.parquet"))
    (result,), frame = validate_tables(config, samples=3, out_dir=out, progress=False, rounds=1, in_process=True)
    assert np.isfinite(result.drift_pct) and result.reference_scaled is not None
    assert set(result.saved_before) == {"applied"}
    drift = frame["run_drift"].to_numpy()  # this run's reference network over the table's, one factor for the run
    assert len(set(drift)) == 1 and result.drift_source == "network"
    assert drift[0] == pytest.approx(frame["reference_network_ms"].median() / table_reference(out, "network"))
    block = frame["run_drift_block"].to_numpy()
    assert block[0] == pytest.approx(frame["reference_ms"].median() / table_reference(out))
    assert result.drift_pct == pytest.approx(100 * (drift[0] - 1))
    doubled = Figures.of(2 * frame["block_sum_ms"].to_numpy() * drift, frame["measured_ms"].to_numpy())
    assert result.saved_before["applied"] == doubled  # judged at this run's machine speed
    assert result.reference_scaled == Figures.of(frame["block_sum_ms"].to_numpy() * drift,
                                                 frame["measured_ms"].to_numpy())
    assert (frame["reference_ms"] > 0).all() and (frame["reference_ms_round0"] > 0).all()
    assert (frame["reference_network_ms_round0"] > 0).all()
    if doubled.mape_pct >= result.reference_scaled.mape_pct:  # worse than the block sum on this run: not applied
        assert result.applied is None and not correction_path(out / "i8.parquet").exists()
    assert not candidate_correction_path(out / "i8.parquet").exists()  # 3 networks: too few to fit a new one
    assert set(pd.read_parquet(out / "validation.parquet")["device"]) == {"i8"}

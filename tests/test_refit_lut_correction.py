"""The offline correction re-fit runs on the kept measurements of experiments/lut_targets.yaml and judges each
device's correction on a later validation."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DATA = REPO / "benchmarks" / "data" / "lut_targets_2026-12-02"


def test_refit_on_kept_measurements_reports_every_device():
    validation = DATA / "validation-1.parquet"
    out = subprocess.run([sys.executable, "benchmarks/refit_lut_correction.py", "--tables", str(DATA),
                          "--validation", str(validation), "--later", str(validation)],
                         cwd=REPO, capture_output=True, text=True, timeout=300, check=True).stdout
    rows = [line.split("|")[1:-1] for line in out.splitlines() if line.startswith("| ") and "device" not in line]
    assert {r[0].strip() for r in rows} == {"ort-fp32", "ort-int8", "ov-fp32", "ov-int8"}
    held_out = {r[0].strip(): r for r in rows if "(held-out)" in r[1]}
    assert set(held_out) == {"ort-fp32", "ort-int8", "ov-fp32", "ov-int8"}  # a correction beats every block sum
    assert "io" in held_out["ov-fp32"][1]  # OpenVINO's blocks pay for copying their activations

"""The offline correction re-fit runs on the kept measurements of experiments/lut_targets.yaml and judges each
device's correction on a later validation."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

from inas.latency import Correction

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


def test_save_candidate_writes_the_refit_that_the_next_validation_judges(tmp_path):
    amd = REPO / "benchmarks" / "data" / "lut_amd_2026-12-04"
    shutil.copy2(amd / "ov-fp32.parquet", tmp_path)
    subprocess.run([sys.executable, "benchmarks/refit_lut_correction.py", "--tables", str(tmp_path), "--validation",
                    str(amd / "validation-2.parquet"), "-c", str(amd / "config.yaml"), "--save-candidate"],
                   cwd=REPO, capture_output=True, text=True, timeout=300, check=True)
    candidate = Correction.load(tmp_path / "ov-fp32.correction-candidate.json")
    assert candidate.device == "ov-fp32" and candidate.fitted_on == 50 and candidate.confirmations == 0
    assert candidate.model.startswith("per_resolution") and "mbconv_s2" in candidate.group_scales
    assert not (tmp_path / "ov-fp32.correction.json").exists()  # only a candidate: nothing applied

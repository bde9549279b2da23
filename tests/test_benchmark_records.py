"""Every benchmark line says which processor it ran on (model and flags: INT8 timings depend on VNNI / AMX)."""

from __future__ import annotations

import json
import shutil

import pytest

from benchmarks.common import record_result


@pytest.mark.skipif(shutil.which("lscpu") is None, reason="lscpu is not installed here")
def test_a_record_carries_the_cpu_model_and_flags_and_appends(tmp_path):
    path = tmp_path / "results.jsonl"
    path.write_text('{"bench": "old"}', encoding="utf-8")  # an earlier line without its newline
    record_result("unit", {"value_ms": 1.5}, path=path)
    lines = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
    assert [r["bench"] for r in lines] == ["old", "unit"]
    assert lines[1]["value_ms"] == 1.5 and lines[1]["cpu_model"] and lines[1]["cpu_flags"]

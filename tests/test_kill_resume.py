"""Slow: `lut` and `search` killed with SIGKILL while they have partial output on disk, then the same command run
again: it completes, the artefacts are complete and valid, the work already done is kept (not redone), and no
temporary file is left in the output folder (`pytest -m slow tests/test_kill_resume.py`). `train` has the same test
in test_train_recovery.py."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pytest
import yaml
from cli_subprocess import REPO, cli_env
from test_search_evaluators import make_problem, tiny_space_doc

from inas.config import load_config
from inas.io import TMP_SUFFIX
from inas.latency import config_blocks, read_table, table_path
from inas.latency.table import keys_of
from inas.search.driver import EVALUATIONS_FILE, PARETO_FILE, STATE_FILE

pytestmark = pytest.mark.slow
# one arch per trial and budgets of 10: the search runs for several seconds after its first results are on disk, so
# the kill lands in the middle however the machine is loaded
# random without its end archs: the two searchers then share no arch, and the counts below are per arch
SEARCHERS = [{"kind": "random", "budget": 10, "concurrent_trials": 2, "params": {"ends_first": False}},
             {"kind": "evolution", "budget": 10,
              "params": {"population_size": 4, "selection_num": 2, "lgs_groups": 2}}]


def _start(argv: list[str]) -> subprocess.Popen:
    """The CLI in its own session, so that killing its process group takes the local Ray it starts down too."""
    return subprocess.Popen([sys.executable, "-m", "inas.run", *argv], cwd=REPO, env=cli_env(), stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, start_new_session=True)


def _kill_when(proc: subprocess.Popen, ready: Callable[[], bool], timeout: float = 150) -> None:
    """SIGKILL the process group of `proc` as soon as `ready()` holds (it must still be running then)."""
    deadline = time.time() + timeout
    while time.time() < deadline and proc.poll() is None:
        if ready():
            break
        time.sleep(0.1)
    if proc.poll() is not None:
        pytest.fail(f"finished (exit {proc.returncode}) before it could be killed:\n{proc.stdout.read()}")
    assert ready(), "no partial output in time"
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    proc.stdout.close()


def _run(argv: list[str], timeout: float = 200) -> str:
    proc = subprocess.run([sys.executable, "-m", "inas.run", *argv], cwd=REPO, env=cli_env(), capture_output=True,
                          text=True, timeout=timeout)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc.stdout


def _temp_files(folder: Path) -> list[Path]:
    """Temporary files of our atomic writes (and any other *.tmp) anywhere under `folder`."""
    return [p for p in folder.rglob(f"*{TMP_SUFFIX}")]


def _rows(path: Path) -> int:
    try:
        return len(pd.read_parquet(path))
    except Exception:  # noqa: BLE001 - not there yet
        return 0


# ----- lut -----------------------------------------------------------------------------------------------------------
def test_lut_killed_then_rerun_completes_without_remeasuring(tmp_path):
    devices = ["kill_a", "kill_b"]
    doc = {"space": tiny_space_doc(),
           "data": {"image_size": 64},
           "lut": {"warmup_runs": 1, "runs": 5, "flush_every": 4, "node_lock": False,
                   "devices": [{"name": "kill_a", "threads": 1}, {"name": "kill_b", "threads": 1}]}}
    cfg = tmp_path / "lut.yaml"
    cfg.write_text(yaml.safe_dump(doc), encoding="utf-8")
    config = load_config(cfg)
    keys = config_blocks(config)
    out = tmp_path / "lut"
    argv = ["lut", "-c", str(cfg), "-o", str(out), "--no-progress"]

    proc = _start(argv)
    _kill_when(proc, lambda: all(0 < _rows(table_path(out, d)) < len(keys) for d in devices))
    partial = {d: read_table(table_path(out, d)) for d in devices}  # readable: every flush is an atomic rewrite
    assert all(0 < len(t) < len(keys) for t in partial.values())
    # what a kill in the middle of a flush leaves behind: a temporary file of a writer that is gone
    stale = out / f".{devices[0]}.parquet.{proc.pid}.dead{TMP_SUFFIX}"
    stale.write_bytes(b"half a parquet file")

    start = time.perf_counter()
    text = _run(argv)
    rerun_s = time.perf_counter() - start
    reported = {fields[0]: fields for fields in map(str.split, text.splitlines()) if fields and fields[0] in devices}
    for device in devices:
        blocks, reused, measured = (int(v) for v in reported[device][1:4])
        assert (blocks, reused, measured) == (len(keys), len(partial[device]), len(keys) - len(partial[device]))
        table = read_table(table_path(out, device))
        assert len(table) == len(keys) and set(keys_of(table)) == set(keys)  # every block, once
        before = partial[device].set_index("block")
        after = table.set_index("block").loc[before.index]
        assert (after["measured_at"] == before["measured_at"]).all()  # measured once, kept as it was
        assert (after["latency_ms"] == before["latency_ms"]).all()
    assert not _temp_files(out), _temp_files(out)
    print(f"lut killed with {[len(t) for t in partial.values()]} of {len(keys)} blocks; re-run {rerun_s:.1f} s")


# ----- search --------------------------------------------------------------------------------------------------------
def test_search_killed_then_rerun_completes_without_reevaluating(tmp_path):
    _, cfg = make_problem(tmp_path / "problem", searchers=SEARCHERS, archs_per_trial=1)
    out = tmp_path / "search"
    argv = ["search", "-c", str(cfg), "-o", str(out), "--no-dashboard"]
    budget = sum(s["budget"] for s in SEARCHERS)

    proc = _start(argv)
    _kill_when(proc, lambda: 2 <= _rows(out / EVALUATIONS_FILE) < budget)
    done = pd.read_parquet(out / EVALUATIONS_FILE)
    assert 2 <= len(done) < budget
    stale = out / f".{EVALUATIONS_FILE}.{proc.pid}.dead{TMP_SUFFIX}"
    stale.write_bytes(b"half a parquet file")

    start = time.perf_counter()
    text = _run(argv)
    rerun_s = time.perf_counter() - start
    assert f"resuming with {len(done)} evaluations" in text
    frame = pd.read_parquet(out / EVALUATIONS_FILE)
    assert frame.groupby("searcher").size().to_dict() == {s["kind"]: s["budget"] for s in SEARCHERS}
    assert len(frame) == budget and frame["arch_id"].is_unique  # nothing evaluated twice
    kept = frame.set_index("arch_id").loc[done["arch_id"]]
    assert (kept["trial_id"].to_numpy() == done["trial_id"].to_numpy()).all()  # done rows kept as they were
    assert (kept["max_fmeasure"].to_numpy() == done["max_fmeasure"].to_numpy()).all()
    assert frame["max_fmeasure"].notna().all() and frame["latency_ms__dev_a"].notna().all()
    pareto = pd.read_parquet(out / PARETO_FILE)
    assert len(pareto) >= 1 and (pareto["rank"] == 0).all() and set(pareto["arch_id"]) <= set(frame["arch_id"])
    assert sorted(p.stem for p in (out / "front").glob("*.json")) == sorted(pareto["arch_id"])
    assert (out / STATE_FILE).is_file() and (out / "summary.txt").is_file()
    assert not _temp_files(out), _temp_files(out)
    print(f"search killed with {len(done)} of {budget} evaluations; re-run {rerun_s:.1f} s")

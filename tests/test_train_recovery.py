"""Slow: a local run killed with SIGKILL and started again; Ray Train runs with 2 workers, resumed, and one whose
worker is killed mid-run (`pytest -m slow tests/test_train_recovery.py`)."""

from __future__ import annotations

import csv
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from cli_subprocess import REPO, cli_env, wait_for
from test_train_support import tiny_config, tiny_config_doc, write_config

from inas.data.synth_sod import synthesize_sod
from inas.nn import load_supernet
from inas.train.state import CHECKPOINT_NAME, load_train_checkpoint

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def sod_root(tmp_path_factory):
    out = tmp_path_factory.mktemp("recovery") / "sod"
    synthesize_sod(out, n_train=16, n_test=4, size=64, seed=0, workers=1)
    return out


def _iterations(run_dir: Path) -> list[int]:
    path = run_dir / "metrics.csv"
    if not path.exists():
        return []
    with path.open(newline="") as handle:
        return [int(row["iteration"]) for row in csv.DictReader(handle) if row.get("iteration")]


def _train_command(config_path: Path, run_dir: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "inas.run", "train", "-c", str(config_path), "-o", str(run_dir), "--no-progress",
            *extra]


def _descendants(pid: int) -> list[tuple[int, str]]:
    """(pid, command line) of every process below `pid`, read from /proc."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    found, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            try:
                cmdline = (Path("/proc") / str(child) / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            except OSError:
                continue
            found.append((child, cmdline))
            todo.append(child)
    return found


@pytest.mark.parametrize("num_workers", [0, 1])
def test_sigkill_then_same_command_continues_from_last_checkpoint(sod_root, tmp_path, num_workers):
    """Bit-exact for any data.num_workers: the data order and augmentation are a function of the iteration."""
    doc = tiny_config_doc(sod_root, tmp_path / "unused", iterations=16, checkpoint_every=4, validate_at_end=False)
    doc["data"]["num_workers"] = num_workers
    config_path = write_config(tmp_path / "c.yaml", doc)
    reference_dir, run_dir = tmp_path / "reference", tmp_path / "killed"
    subprocess.run(_train_command(config_path, reference_dir), check=True, env=cli_env(), cwd=REPO,
                   capture_output=True, timeout=600)
    proc = subprocess.Popen(_train_command(config_path, run_dir), env=cli_env(), cwd=REPO,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_for(lambda: len(_iterations(run_dir)) >= 6, proc, 300)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    stopped_at = load_train_checkpoint(run_dir / CHECKPOINT_NAME).iteration
    assert 4 <= stopped_at < 16
    again = subprocess.run(_train_command(config_path, run_dir), env=cli_env(), cwd=REPO, capture_output=True,
                           text=True, timeout=600)
    assert again.returncode == 0, again.stderr[-2000:]
    assert f"(this session from {stopped_at})" in again.stdout
    assert load_train_checkpoint(run_dir / CHECKPOINT_NAME).iteration == 16
    assert _iterations(run_dir) == list(range(1, 17))
    resumed = load_supernet(run_dir / "supernet.pt").state_dict()
    for key, value in load_supernet(reference_dir / "supernet.pt").state_dict().items():
        assert torch.equal(value, resumed[key]), key


def test_cluster_two_workers_trains_then_resumes(sod_root, tmp_path):
    from inas.train.cluster import train_on_ray

    config = tiny_config(sod_root, tmp_path, iterations=4, checkpoint_every=2, log_every=1)
    first = train_on_ray(config, tmp_path, progress=False)
    assert (first.start_iteration, first.iterations) == (0, 4)
    assert set(first.validation) == {"max", "min", "random"}
    assert _iterations(tmp_path) == [1, 2, 3, 4]
    assert load_train_checkpoint(tmp_path / CHECKPOINT_NAME).iteration == 4
    longer = tiny_config(sod_root, tmp_path, iterations=6, checkpoint_every=2, log_every=1)
    second = train_on_ray(longer, tmp_path, resume=True, progress=False)
    assert (second.start_iteration, second.iterations) == (4, 6)
    assert _iterations(tmp_path) == [1, 2, 3, 4, 5, 6]
    assert load_supernet(tmp_path / "supernet.pt").num_classes == 1
    assert (tmp_path / "ray").is_dir()


def test_cluster_run_survives_a_killed_worker(sod_root, tmp_path):
    doc = tiny_config_doc(sod_root, tmp_path / "unused", iterations=24, checkpoint_every=4, validate_at_end=False)
    doc["train"]["cluster"] = {"workers": 2, "max_failures": 2}
    config_path = write_config(tmp_path / "c.yaml", doc)
    run_dir = tmp_path / "run"
    proc = subprocess.Popen(_train_command(config_path, run_dir, "--cluster"), env=cli_env(), cwd=REPO,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        wait_for(lambda: (run_dir / CHECKPOINT_NAME).exists() and len(_iterations(run_dir)) >= 6, proc, 300)
        workers = [pid for pid, cmdline in _descendants(proc.pid) if "RayTrainWorker" in cmdline]
        assert len(workers) == 2, _descendants(proc.pid)
        killed_at = max(_iterations(run_dir))
        os.kill(workers[-1], signal.SIGKILL)  # a worker this test's run started, by its id
        output, _ = proc.communicate(timeout=600)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, output[-3000:]
    assert "iterations: 24" in output
    assert load_train_checkpoint(run_dir / CHECKPOINT_NAME).iteration == 24
    iterations = _iterations(run_dir)
    assert iterations == list(range(1, 25))  # rows after the restart point were rewritten once
    assert killed_at < 24

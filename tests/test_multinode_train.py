"""Slow, multi-node on one host: `train --cluster --workers 2` (the README's command, joining the cluster by
`--address`) with one DDP rank on each of two Ray worker nodes (one CPU each, none on the head). Once a checkpoint
past iteration 4 exists, the node hosting rank 0 is killed (its raylet and workers, SIGKILL); later, as a cluster's
autoscaler would, a spare node joins. Ray Train waits for it (past two of its worker-group start timeouts), restarts
the worker group of the same size on the surviving node and the spare one from the last checkpoint (not from 0:
`sessions.csv`), and the run ends at the configured iteration count with exit 0, every iteration logged once and a
valid `supernet.pt`."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from cli_subprocess import REPO, cli_env, wait_for
from multinode_cluster import local_cluster, time_limit
from test_train_support import tiny_config_doc, write_config

from inas.data.synth_sod import synthesize_sod
from inas.errors import BadInputError
from inas.nn import load_supernet, space_spec
from inas.train.runlog import read_sessions
from inas.train.state import CHECKPOINT_NAME, load_train_checkpoint

pytestmark = pytest.mark.slow

ITERATIONS = 16
KILL_AFTER = 4  # the node dies once a checkpoint of at least this iteration exists
START_TIMEOUT_S = 8


def _checkpoint_iteration(run_dir: Path) -> int:
    try:
        return load_train_checkpoint(run_dir / CHECKPOINT_NAME).iteration
    except BadInputError:  # not written yet
        return -1


def _iterations(run_dir: Path) -> list[int]:
    with (run_dir / "metrics.csv").open(newline="") as handle:
        return [int(row["iteration"]) for row in csv.DictReader(handle)]


def test_train_cluster_continues_from_the_last_checkpoint_after_a_node_dies(tmp_path, monkeypatch):
    # Ray's memory monitor kills workers when the whole machine passes 95 % memory, whoever uses it: on a shared
    # test machine another job's peak would kill this run's controller. Off for the nodes started here.
    monkeypatch.setenv("RAY_memory_monitor_refresh_ms", "0")
    # Ray Train waits this long for a worker group's resources before it tries again (60 s by default): the spare
    # node joins after two such timeouts, which must not end the run nor count as worker failures
    monkeypatch.setenv("RAY_TRAIN_WORKER_GROUP_START_TIMEOUT_S", str(START_TIMEOUT_S))
    sod = tmp_path / "sod"
    synthesize_sod(sod, n_train=16, n_test=4, size=64, seed=0, workers=1)
    doc = tiny_config_doc(sod, tmp_path / "unused", iterations=ITERATIONS, checkpoint_every=2, log_every=1,
                          validate_at_end=True)
    doc["train"]["cluster"] = {"workers": 2, "max_failures": 2}
    config_path = write_config(tmp_path / "config.yaml", doc)
    run_dir, log_path = tmp_path / "run", tmp_path / "train.log"
    with time_limit(600), local_cluster([{}, {}]) as (cluster, nodes), log_path.open("w") as log:
        command = [sys.executable, "-m", "inas.run", "train", "-c", str(config_path), "-o", str(run_dir),
                   "--no-progress", "--cluster", "--address", cluster.address, "--workers", "2"]
        proc = subprocess.Popen(command, env=cli_env(), cwd=REPO, stdout=log, stderr=subprocess.STDOUT)
        try:
            wait_for(lambda: bool(read_sessions(run_dir)) and _checkpoint_iteration(run_dir) >= KILL_AFTER,
                     proc, 400, log_path)
            first = read_sessions(run_dir)[0]
            assert sorted(first.nodes) == sorted(n.node_id for n in nodes)  # one rank on each worker node
            victim = next(n for n in nodes if n.node_id == first.nodes[0])  # the node of rank 0
            cluster.remove_node(victim, allow_graceful=False)
            time.sleep(3)  # its workers are gone; the group of 2 cannot start again on the one node left
            at_kill = _checkpoint_iteration(run_dir)
            assert KILL_AFTER <= at_kill < ITERATIONS
            time.sleep(2.5 * START_TIMEOUT_S)  # the cluster has no room for the group for a while
            assert proc.poll() is None and len(read_sessions(run_dir)) == 1
            spare = cluster.add_node(num_cpus=1)  # what an autoscaler does: a node replaces the lost one
            proc.wait(timeout=400)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    output = log_path.read_text()
    assert proc.returncode == 0, output[-3000:]
    assert f"iterations: {ITERATIONS} (this session from {at_kill})" in output
    sessions = read_sessions(run_dir)
    assert len(sessions) == 2, sessions
    restart = sessions[-1]
    assert restart.start_iteration == at_kill  # the last checkpoint, not 0
    assert restart.resumed_from in ("run_folder", "ray")
    assert restart.world_size == 2
    survivor = next(n for n in nodes if n is not victim)
    assert sorted(restart.nodes) == sorted([survivor.node_id, spare.node_id])
    assert _iterations(run_dir) == list(range(1, ITERATIONS + 1))  # every iteration once
    summary = json.loads((run_dir / "summary.json").read_text())
    assert (summary["iterations"], summary["start_iteration"], summary["world_size"]) == (ITERATIONS, at_kill, 2)
    assert set(summary["validation"]) == {"max", "min", "random"}
    checkpoint = load_train_checkpoint(run_dir / CHECKPOINT_NAME)
    assert checkpoint.iteration == ITERATIONS
    supernet = load_supernet(run_dir / "supernet.pt")
    assert space_spec(supernet.space) == checkpoint.space and supernet.num_classes == 1
    for key, value in supernet.state_dict().items():
        assert torch.equal(value, checkpoint.model[key]), key

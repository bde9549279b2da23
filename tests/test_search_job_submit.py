"""Slow: the README's cluster recipe for the search, for real. A local Ray head (`ray start --head`, its own ports and
temp folder, dashboard on 127.0.0.1, token authentication), then `ray job submit --address http://127.0.0.1:<dash>
--working-dir <repo> -- python -m inas.run search -c CONFIG` on a tiny problem (tiny space, random supernet, fake
latency tables), written as the README's recipe (`-C DIR` and relative paths); the job succeeds and writes
evaluations.parquet and pareto.parquet into DIR.

The head runs as `ray start --head --block` in its own session, so teardown stops exactly this cluster (SIGTERM, then
SIGKILL of its process group and of any process left that names its temp folder), never other Ray clusters of the
machine (`ray stop` would stop them all)."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd
import pytest
from test_search_evaluators import make_problem

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
RAY = str(BIN / "ray")


def free_ports(n: int) -> list[int]:
    sockets = []
    for _ in range(n):
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        sockets.append(s)
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


def _kill_leftovers(marker: str) -> None:
    """SIGKILL every process whose command line names `marker` (this cluster's unique temp folder)."""
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit() or int(proc.name) == os.getpid():
            continue
        try:
            cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if marker in cmdline:
            try:
                os.kill(int(proc.name), signal.SIGKILL)
            except OSError:
                pass


@pytest.fixture
def ray_head():
    """A local Ray head with token authentication: yields (dashboard URL, environment for `ray` commands)."""
    temp_dir = tempfile.mkdtemp(prefix="inas_ray_", dir="/tmp")  # short: Ray's socket paths must stay < 108 chars
    env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0", "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"}
    token = subprocess.run([RAY, "get-auth-token", "--generate"], env=env, capture_output=True, text=True,
                           timeout=60)
    assert token.returncode == 0 and token.stdout.strip(), token.stderr
    env.update({"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": token.stdout.strip()})
    env.pop("RAY_ADDRESS", None)
    (gcs, dash, agent_http, agent_grpc, metrics, runtime_env, node_manager, object_manager,
     client) = free_ports(9)
    cmd = [RAY, "start", "--head", "--block", "--port", str(gcs), "--num-cpus", "2",
           "--include-dashboard", "true", "--dashboard-host", "127.0.0.1", "--dashboard-port", str(dash),
           "--dashboard-agent-listen-port", str(agent_http), "--dashboard-agent-grpc-port", str(agent_grpc),
           "--metrics-export-port", str(metrics), "--runtime-env-agent-port", str(runtime_env),
           "--node-manager-port", str(node_manager), "--object-manager-port", str(object_manager),
           "--ray-client-server-port", str(client), "--temp-dir", temp_dir, "--disable-usage-stats"]
    log_path = Path(temp_dir) / "head.log"
    with log_path.open("w") as log:
        head = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
                                cwd=temp_dir)
    url = f"http://127.0.0.1:{dash}"
    try:
        deadline = time.time() + 180
        while True:  # the dashboard answers once the head is up
            assert head.poll() is None, f"ray start failed:\n{log_path.read_text()}"
            probe = subprocess.run([RAY, "job", "list", "--address", url], env=env, capture_output=True, text=True,
                                   timeout=60)
            if probe.returncode == 0:
                break
            assert time.time() < deadline, f"the head did not come up:\n{log_path.read_text()}\n{probe.stderr}"
            time.sleep(2)
        yield url, env
    finally:
        if head.poll() is None:
            head.send_signal(signal.SIGTERM)  # `ray start --block` stops the processes it started
            try:
                head.wait(timeout=30)
            except subprocess.TimeoutExpired:
                pass
        try:
            os.killpg(head.pid, signal.SIGKILL)
        except OSError:
            pass
        head.wait(timeout=30)
        _kill_leftovers(temp_dir)
        shutil.rmtree(temp_dir, ignore_errors=True)


@pytest.mark.slow
def test_search_runs_as_a_ray_job(ray_head, tmp_path):
    url, env = ray_head
    _, config_path = make_problem(tmp_path / "problem", searchers=[
        {"kind": "random", "budget": 4, "concurrent_trials": 2},
        {"kind": "evolution", "budget": 4, "params": {"population_size": 2, "selection_num": 2, "lgs_groups": 2}}])
    out = config_path.parent / "job_out"
    # the README's recipe: code through --working-dir, `-C <the submitting folder>` so relative paths mean it
    cmd = [RAY, "job", "submit", "--address", url, "--working-dir", str(REPO), "--",
           "python", "-m", "inas.run", "-C", str(config_path.parent), "search", "-c", config_path.name,
           "-o", "job_out"]
    job = subprocess.run(cmd, env=env, cwd=REPO, capture_output=True, text=True, timeout=600)
    text = job.stdout + job.stderr
    assert job.returncode == 0, text
    assert "succeeded" in text.lower() and "front size" in text, text
    evaluations = pd.read_parquet(out / "evaluations.parquet")
    assert evaluations.groupby("searcher").size().to_dict() == {"evolution": 4, "random": 4}
    assert evaluations["max_fmeasure"].notna().all()
    pareto = pd.read_parquet(out / "pareto.parquet")
    assert len(pareto) >= 1 and (pareto["rank"] == 0).all()
    assert set(pareto["arch_id"]) <= set(evaluations["arch_id"])

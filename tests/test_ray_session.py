"""Starting or joining Ray: the watchdog ends a local Ray's processes when the verb that started it is killed
(fast: with stand-in processes; slow: a real `search` killed with SIGKILL), and a verb run while a cluster is
already running on the machine joins it and says so."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest
from cli_subprocess import REPO, cli_env

from inas.ray_watchdog import session_processes

SLEEPER = "import time; time.sleep(300)"


def _wait_until(condition, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.2)
    return condition()


def test_watchdog_ends_the_session_when_its_starter_is_killed(tmp_path):
    session = str(tmp_path / "session_fake")
    starter = subprocess.Popen([sys.executable, "-c", SLEEPER])
    member = subprocess.Popen([sys.executable, "-c", SLEEPER, session])  # names the session like Ray's processes
    child_code = f"import subprocess, sys, time; subprocess.Popen([sys.executable, '-c', {SLEEPER!r}]); time.sleep(300)"
    parent = subprocess.Popen([sys.executable, "-c", child_code, session])  # a member with a child (a Ray worker)
    watchdog = subprocess.Popen([sys.executable, "-m", "inas.ray_watchdog", str(starter.pid), session], env=cli_env())
    try:
        assert _wait_until(lambda: len(psutil.Process(parent.pid).children()) == 1, 10)
        grandchild = psutil.Process(parent.pid).children()[0]
        time.sleep(1.0)
        assert member.poll() is None and parent.poll() is None  # the starter is alive: nothing is touched
        starter.kill()
        starter.wait()
        assert _wait_until(lambda: member.poll() is not None and parent.poll() is not None, 10)
        assert _wait_until(lambda: not grandchild.is_running() or grandchild.status() == psutil.STATUS_ZOMBIE, 10)
        assert watchdog.wait(timeout=10) == 0
    finally:
        for proc in (starter, member, parent, watchdog):
            if proc.poll() is None:
                proc.kill()
                proc.wait()


def test_watchdog_usage_error():
    out = subprocess.run([sys.executable, "-m", "inas.ray_watchdog"], capture_output=True, text=True, env=cli_env())
    assert out.returncode == 2 and "usage" in out.stderr


def test_session_processes_skip_the_watchdog_itself(tmp_path):
    assert session_processes(str(tmp_path / "no_such_session")) == []


@pytest.mark.slow
def test_killed_search_leaves_no_ray_process_behind(tmp_path):
    """kill -9 of the search process alone (not its process group): its local Ray is gone within 10 s."""
    from test_search_evaluators import make_problem

    _, config_path = make_problem(tmp_path / "problem", searchers=[{"kind": "random", "budget": 40}],
                                  archs_per_trial=1)
    ray_tmp = Path(f"/tmp/inas_wd_{os.getpid()}")  # Ray's socket paths must stay short
    env = {**cli_env(), "RAY_TMPDIR": str(ray_tmp)}
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "inas.run", "search", "-c", str(config_path), "-o", str(out), "--no-dashboard"]
    proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    try:
        assert _wait_until(lambda: (out / "evaluations.parquet").exists(), 240), "no evaluation within 240 s"
        sessions = [str(p) for p in (ray_tmp / "ray").glob("session_2*")]
        assert len(sessions) == 1
        assert session_processes(sessions[0])
        proc.kill()  # SIGKILL of the verb only
        proc.wait()
        assert _wait_until(lambda: not session_processes(sessions[0]), 10), \
            [p.cmdline() for p in session_processes(sessions[0])]
    finally:
        if proc.poll() is None:
            proc.kill()
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except OSError:
            pass
        for session in (ray_tmp / "ray").glob("session_2*"):
            for p in session_processes(str(session)):
                p.kill()


@pytest.fixture
def running_head():
    """`ray start --head --block` with token authentication and its own RAY_TMPDIR; yields the environment under
    which a verb finds it (as a user who ran `ray start --head` on this machine); stopped by pid."""
    from test_search_job_submit import RAY, _kill_leftovers, free_ports

    ray_tmp = f"/tmp/inas_head_{os.getpid()}"
    env = {**cli_env(), "RAY_TMPDIR": ray_tmp, "RAY_AUTH_MODE": "token"}
    token = subprocess.run([RAY, "get-auth-token", "--generate"], env=env, capture_output=True, text=True, timeout=60)
    assert token.returncode == 0, token.stderr
    gcs, dash, client = free_ports(3)
    head = subprocess.Popen([RAY, "start", "--head", "--block", "--port", str(gcs), "--num-cpus", "2",
                             "--dashboard-port", str(dash), "--ray-client-server-port", str(client),
                             "--include-dashboard", "false", "--disable-usage-stats"], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        assert _wait_until(lambda: Path(ray_tmp, "ray", "ray_current_cluster").exists(), 120), "no head"
        yield env
    finally:
        head.send_signal(signal.SIGTERM)
        try:
            head.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(head.pid, signal.SIGKILL)
        _kill_leftovers(ray_tmp)
        shutil.rmtree(ray_tmp, ignore_errors=True)


@pytest.mark.slow
def test_search_joins_the_cluster_running_on_this_machine(running_head, tmp_path):
    from test_search_evaluators import make_problem

    _, config_path = make_problem(tmp_path / "problem", searchers=[{"kind": "random", "budget": 2}])
    cmd = [sys.executable, "-m", "inas.run", "search", "-c", str(config_path), "-o", str(tmp_path / "out")]
    done = subprocess.run(cmd, cwd=REPO, env=running_head, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "search: joining Ray at" in done.stderr and "already running on this machine" in done.stderr
    assert "Traceback" not in done.stderr
    without_token = {k: v for k, v in running_head.items() if k != "RAY_AUTH_MODE"}
    done = subprocess.run(cmd + ["--budget", "3"], cwd=REPO, env=without_token, capture_output=True, text=True,
                          timeout=600)
    err = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert done.returncode == 2 and len(err) == 1 and "RAY_AUTH_MODE=token" in err[0], done.stderr
    wrong_token = {**running_head, "RAY_AUTH_TOKEN": "0" * 32}  # another cluster's token, say
    done = subprocess.run(cmd + ["--budget", "3"], cwd=REPO, env=wrong_token, capture_output=True, text=True,
                          timeout=600)
    err = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert done.returncode == 2 and len(err) == 1, done.stderr
    assert "refused this machine's authentication token" in err[0] and "RAY_AUTH_TOKEN" in err[0], err[0]

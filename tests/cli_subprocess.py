"""The environment of tests that run the CLI as a subprocess (`python -m inas.run ...` with `cwd=REPO`): this checkout
on PYTHONPATH, Ray usage stats off, and no inherited RAY_ADDRESS (the CLI starts or joins only what the test says)."""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def cli_env() -> dict[str, str]:
    env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0", "PYTHONPATH": str(REPO)}
    env.pop("RAY_ADDRESS", None)
    return env


def wait_for(predicate: Callable[[], bool], proc: subprocess.Popen, timeout_s: float,
             log_path: Path | None = None) -> None:
    """Poll `predicate` until it holds; AssertionError if `proc` ends first or `timeout_s` passes (then `proc` is
    killed), quoting the tail of `log_path` when given."""
    tail = (lambda: ": " + log_path.read_text()[-3000:]) if log_path is not None else (lambda: "")
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return
        if proc.poll() is not None:
            raise AssertionError(f"the run ended early with code {proc.returncode}{tail()}")
        time.sleep(0.2)
    proc.kill()
    raise AssertionError(f"timed out waiting for the run{tail()}")

"""The environment of tests that run the CLI as a subprocess (`python -m inas.run ...` with `cwd=REPO`): this checkout
on PYTHONPATH, Ray usage stats off, and no inherited RAY_ADDRESS (the CLI starts or joins only what the test says)."""

from __future__ import annotations

import os
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def cli_env() -> dict[str, str]:
    env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0", "PYTHONPATH": str(REPO)}
    env.pop("RAY_ADDRESS", None)
    return env

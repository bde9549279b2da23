"""Test-suite settings: one intra-op thread (deterministic and fast on a shared 2-core machine), no Ray telemetry."""

import os

os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")

import torch  # noqa: E402

torch.set_num_threads(1)

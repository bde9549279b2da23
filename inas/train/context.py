"""Who runs the training loop: `LocalContext` (this process, no Ray) or, under `--cluster`, the Ray Train worker
context in `inas.train.cluster`. The loop only talks to this interface, so both paths run the same code."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn


class LocalContext:
    """One process, rank 0 of 1: no wrapping, no reporting, no barrier."""

    rank = 0
    world_size = 1
    distributed = False

    def __init__(self, device: torch.device) -> None:
        self.device = device

    def wrap_model(self, model: nn.Module) -> nn.Module:
        return model

    def latest_checkpoint(self) -> Path | None:
        """A checkpoint handed over by the runner (Ray after a worker failure); None locally."""
        return None

    def report(self, metrics: dict[str, Any], checkpoint: Path | None = None) -> None:
        """Metrics (and the path of a just-written checkpoint) for the runner; nothing to do locally."""

    def barrier(self) -> None:
        """Wait for every rank (no-op locally)."""

    def node_id(self) -> str:
        """The Ray node this rank runs on ("" outside Ray)."""
        return ""

    def gather(self, value: Any) -> list[Any]:
        """`value` of every rank, in rank order (a collective under DDP; `[value]` locally)."""
        return [value]

"""Mixed precision of the training step (`train.precision`): fp32, bf16 or fp16 autocast on the training device.

    amp = MixedPrecision.create("bf16", device)
    with amp.autocast():
        loss = criterion(model(images, arch), labels)
    amp.backward(loss)              # fp16: scaled by the GradScaler
    amp.step(optimizer)             # fp16: unscale, skip on inf/NaN, update the scale

bf16 runs on CPU and GPU (no loss scaling needed: bf16 has fp32's exponent range); fp16 needs CUDA and uses
`torch.amp.GradScaler` (its state is part of the training checkpoint).
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping
from typing import Any

import torch
from torch import Tensor

from inas.errors import BadInputError

DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}


class MixedPrecision:
    """Autocast + (fp16 only) gradient scaling for one training device."""

    def __init__(self, name: str, device_type: str, scaler: torch.amp.GradScaler | None) -> None:
        self.name = name
        self.device_type = device_type
        self.scaler = scaler

    @classmethod
    def create(cls, name: str, device: torch.device) -> MixedPrecision:
        if name not in DTYPES:
            raise BadInputError(f"expected one of {list(DTYPES)}, got {name!r}", key="train.precision")
        if name == "fp16" and device.type != "cuda":
            raise BadInputError(f"fp16 training needs a CUDA device (this run trains on {device.type}); use bf16 or "
                                "fp32", key="train.precision")
        scaler = torch.amp.GradScaler(device.type) if name == "fp16" else None
        return cls(name, device.type, scaler)

    def autocast(self) -> contextlib.AbstractContextManager:
        """The forward-pass context: autocast to bf16/fp16, or nothing for fp32."""
        if self.name == "fp32":
            return contextlib.nullcontext()
        return torch.autocast(self.device_type, dtype=DTYPES[self.name])

    def backward(self, loss: Tensor) -> None:
        (loss if self.scaler is None else self.scaler.scale(loss)).backward()

    def step(self, optimizer: torch.optim.Optimizer) -> None:
        """One optimiser step (fp16: skipped when a gradient is inf/NaN, then the scale is updated)."""
        if self.scaler is None:
            optimizer.step()
            return
        self.scaler.step(optimizer)
        self.scaler.update()

    def state_dict(self) -> dict[str, Any] | None:
        return None if self.scaler is None else self.scaler.state_dict()

    def load_state_dict(self, state: Mapping[str, Any] | None) -> None:
        if self.scaler is not None and state:
            self.scaler.load_state_dict(dict(state))

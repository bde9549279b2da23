"""The one reading of a device name (`auto`, `cpu`, `cuda`, `cuda:N`) as a torch device, used by `train` and
`convert`."""

from __future__ import annotations

import torch

from inas.errors import BadInputError


def resolve_device(name: str, key: str = "--device") -> torch.device:
    """'auto' -> cuda when available, else cpu; an unknown name or CUDA without a GPU is a `BadInputError` naming
    `key` (the flag or config key the name came from)."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise BadInputError(f"unknown device {name!r}; expected auto, cpu, cuda or cuda:N", key=key) from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise BadInputError("CUDA was asked for but torch.cuda.is_available() is False", key=key)
    return device

"""Training state on disk: the resumable checkpoint, RNG states, initial weights.

`RUN_DIR/checkpoint.pt` (written atomically, read with `weights_only=True`) is a dict:
    {"format": "inas-train-checkpoint", "version": 1, "iteration": completed optimiser steps,
     "space": space spec (narrowing of iNAS), "num_classes", "output_levels", "head_activation", "task",
     "model": supernet state dict, "optimizer": Adam state, "scheduler": LambdaLR state,
     "rng": {"python", "numpy", "torch", "cuda"}, "sampler_rng": the sub-network sampler's state,
     "multi_scale": the multi-scale size sampler's state}
The same file is what Ray Train checkpoints hold under `--cluster`. The final weights go to `RUN_DIR/supernet.pt` in
the `inas.nn.save_supernet` format (what search / convert load).
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from inas.errors import BadInputError
from inas.io import atomic_path
from inas.nn import Supernet, load_original_checkpoint, load_supernet_weights, slice_like, space_spec
from inas.nn.checkpoint import read_checkpoint, read_supernet_header, supernet_header_record

CHECKPOINT_FORMAT = "inas-train-checkpoint"
CHECKPOINT_VERSION = 1
CHECKPOINT_NAME = "checkpoint.pt"
SUPERNET_NAME = "supernet.pt"


# ----- RNG states as weights_only-loadable data ---------------------------------------------------------------------
def python_rng_state(rng: random.Random | None = None) -> dict[str, Any]:
    version, state, gauss = (rng.getstate() if rng is not None else random.getstate())
    return {"version": version, "state": torch.tensor(state, dtype=torch.int64), "gauss": gauss}


def set_python_rng_state(state: Mapping[str, Any], rng: random.Random | None = None) -> None:
    value = (int(state["version"]), tuple(int(v) for v in state["state"].tolist()), state["gauss"])
    (rng.setstate if rng is not None else random.setstate)(value)


def rng_state() -> dict[str, Any]:
    """The global RNGs: python `random`, numpy's legacy global generator, torch CPU (and CUDA when present)."""
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    state: dict[str, Any] = {
        "python": python_rng_state(),
        "numpy": {"kind": kind, "keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos),
                  "has_gauss": int(has_gauss), "cached": float(cached)},
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: Mapping[str, Any]) -> None:
    set_python_rng_state(state["python"])
    np_state = state["numpy"]
    np.random.set_state((np_state["kind"], np_state["keys"].numpy().astype(np.uint32), np_state["pos"],
                         np_state["has_gauss"], np_state["cached"]))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available() and len(state["cuda"]) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(state["cuda"])


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


# ----- the resumable checkpoint ------------------------------------------------------------------------------------
def save_train_checkpoint(path: str | Path, *, supernet: Supernet, task: str, iteration: int,
                          optimizer: torch.optim.Optimizer, scheduler: Any, sampler_rng: random.Random,
                          multi_scale_state: Mapping[str, Any]) -> None:
    """Write the full training state to `path` atomically (see the module docstring)."""
    multi_scale = dict(multi_scale_state)
    if "state" in multi_scale:
        multi_scale["state"] = torch.tensor(multi_scale["state"], dtype=torch.int64)
    obj = {
        "format": CHECKPOINT_FORMAT,
        "version": CHECKPOINT_VERSION,
        "iteration": int(iteration),
        "task": task,
        **supernet_header_record(supernet),
        "model": {k: v.detach().cpu() for k, v in supernet.state_dict().items()},
        "optimizer": optimizer.state_dict(),
        "scheduler": scheduler.state_dict(),
        "rng": rng_state(),
        "sampler_rng": python_rng_state(sampler_rng),
        "multi_scale": multi_scale,
    }
    with atomic_path(path) as tmp:
        torch.save(obj, tmp)


def load_train_checkpoint(path: str | Path) -> dict[str, Any]:
    """Read a checkpoint written by `save_train_checkpoint` (weights_only); BadInputError if it is not one."""
    path = Path(path)
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise BadInputError("checkpoint not found", path=path) from None
    except Exception as exc:  # noqa: BLE001 - any unpickling failure means "not a readable checkpoint"
        raise BadInputError(f"not a training checkpoint readable with weights_only=True ({exc})", path=path) from None
    if not isinstance(obj, dict) or obj.get("format") != CHECKPOINT_FORMAT:
        got = obj.get("format") if isinstance(obj, dict) else type(obj).__name__
        raise BadInputError(f"expected a training checkpoint (format {CHECKPOINT_FORMAT!r}), got {got!r}", path=path)
    if obj.get("version") != CHECKPOINT_VERSION:
        raise BadInputError(f"unsupported checkpoint version {obj.get('version')!r}", path=path, key="version")
    return obj


def multi_scale_state_from(obj: Mapping[str, Any]) -> dict[str, Any]:
    """The MultiScaleResize state as `load_state_dict` wants it (plain ints)."""
    state = dict(obj)
    if isinstance(state.get("state"), Tensor):
        state["state"] = state["state"].tolist()
    return state


def check_compatible(obj: Mapping[str, Any], supernet: Supernet, task: str, where: str | Path) -> None:
    """The checkpoint must come from the same task, space, classes and output levels as this run's config."""
    problems = []
    header = read_supernet_header(obj, where)
    if obj.get("task") != task:
        problems.append(f"task {obj.get('task')!r} vs config {task!r}")
    if space_spec(header.space) != space_spec(supernet.space):
        problems.append("a different search space (the config's `space` section changed)")
    if header.num_classes != supernet.num_classes:
        problems.append(f"num_classes {header.num_classes} vs config {supernet.num_classes}")
    if list(header.output_levels) != list(supernet.output_levels):
        problems.append(f"output_levels {list(header.output_levels)} vs config {list(supernet.output_levels)}")
    if problems:
        raise BadInputError("checkpoint was written by a different run: " + "; ".join(problems) +
                            "; use another run folder (-o) or make the config match", path=where)


# ----- initial weights ---------------------------------------------------------------------------------------------
def _tensors(obj: Mapping[str, Any]) -> dict[str, Tensor]:
    for key in ("state_dict", "params", "params_ema", "model"):
        if key in obj and isinstance(obj[key], Mapping):
            obj = obj[key]
            break
    out = {}
    for key, value in obj.items():
        if isinstance(key, str) and isinstance(value, Tensor):
            while key.startswith("module."):
                key = key[len("module."):]
            out[key] = value
    return out


@torch.no_grad()
def load_backbone(obj: Mapping[str, Any], supernet: Supernet, where: str | Path) -> int:
    """Copy every `backbone.*` tensor of a checkpoint into the supernet (cut to its space); returns the count."""
    state = _tensors(obj)
    own = supernet.state_dict()
    keys = [k for k in own if k.startswith("backbone.") and not k.endswith("num_batches_tracked")]
    missing = [k for k in keys if k not in state]
    if len(missing) == len(keys):
        raise BadInputError("no `backbone.*` tensor of this supernet in the checkpoint", path=where,
                            key="train.init_checkpoint")
    bad = []
    for key in keys:
        if key not in state:
            continue
        try:
            own[key].copy_(slice_like(state[key], own[key].shape))
        except (ValueError, RuntimeError):
            bad.append(f"{key}: {tuple(state[key].shape)} vs {tuple(own[key].shape)}")
    if bad:
        raise BadInputError(f"{len(bad)} backbone tensors cannot be cut to this space ({', '.join(bad[:5])})",
                            path=where, key="train.init_checkpoint")
    if missing:
        raise BadInputError(f"{len(missing)} backbone tensors missing ({', '.join(missing[:5])})", path=where,
                            key="train.init_checkpoint")
    return len(keys)


def load_initial_weights(path: str | Path, supernet: Supernet, init_format: str) -> str:
    """Load `train.init_checkpoint` into a fresh supernet; returns a one-line description of what was loaded."""
    path = Path(path)
    obj = read_checkpoint(path, key="train.init_checkpoint")
    if init_format == "backbone":
        return f"backbone: {load_backbone(obj, supernet, path)} tensors from {path}"
    ours = obj.get("format") == "inas-supernet"
    if init_format == "inas" or (init_format == "auto" and ours):
        report = load_supernet_weights(obj, supernet)
        return f"supernet weights ({report.loaded} tensors) from {path}"
    try:
        report = load_original_checkpoint(obj, supernet)
    except BadInputError as exc:
        raise BadInputError(str(exc), path=path, key="train.init_checkpoint") from None
    return f"original iNAS checkpoint ({report.loaded} tensors, {len(report.ignored)} ignored) from {path}"

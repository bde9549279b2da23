"""Training state on disk: the resumable checkpoint (`TrainState`, one reader that checks every field) and the
initial weights.

`RUN_DIR/checkpoint.pt` (written atomically, read with `weights_only=True`) is `TrainState.to_dict()`:
    {"format": "inas-train-checkpoint", "version": 2, "iteration": completed optimiser steps,
     "task", "space": space spec (narrowing of iNAS), "num_classes", "output_levels", "head_activation",
     "model": supernet state dict, "optimizer": Adam state, "scheduler": LambdaLR state,
     "rng": {"python", "numpy", "torch"[, "cuda"]}, "sampler_rng": the sub-network sampler's state,
     "multi_scale": the multi-scale size sampler's state, "precision": fp32 | bf16 | fp16,
     "grad_scaler": GradScaler state (fp16) or null, "data_order": {seed, world_size, batches_per_epoch}}
Version-1 files (no precision, grad_scaler, data_order) are still read. The same file is what Ray Train checkpoints
hold under `--cluster`. The final weights go to `RUN_DIR/supernet.pt` in the `inas.nn.save_supernet` format (what
search / convert load).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from inas.errors import BadInputError
from inas.io import atomic_path
from inas.nn import Supernet, load_original_checkpoint, load_supernet_weights, slice_like, space_spec
from inas.nn.checkpoint import check_finite_weights, read_checkpoint, read_supernet_header
from inas.train.rng import check_python_rng_state, check_rng_state

CHECKPOINT_FORMAT = "inas-train-checkpoint"
CHECKPOINT_VERSION = 2
READABLE_VERSIONS = (1, 2)
PRECISIONS = ("fp32", "bf16", "fp16")
CHECKPOINT_NAME = "checkpoint.pt"
SUPERNET_NAME = "supernet.pt"


# ----- the resumable checkpoint ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class DataOrder:
    """How the training data order was derived: batch `b` of epoch `e` on rank `r` holds the DistributedSampler
    indices of (seed, e, world_size), each sample augmented from a seed of (seed, e, r, position): the order and
    the augmentation depend on nothing but these values and the iteration (`inas.train.data_order`)."""

    seed: int
    world_size: int
    batches_per_epoch: int


@dataclass(frozen=True)
class TrainState:
    """Everything a run needs to continue exactly where it stopped (the content of `checkpoint.pt`).

    `model`: supernet state dict (CPU tensors); `optimizer` / `scheduler` / `grad_scaler`: their `state_dict()`s
    (`grad_scaler` only with `train.precision: fp16`); `rng`: the global generators (`inas.train.rng`);
    `sampler_rng`: the sub-network sampler; `multi_scale`: the multi-scale size sampler ({"version", "state": int64
    (625,), "gauss"}); `data_order`: None in version-1 files (written before the data order was recorded).
    """

    iteration: int
    task: str
    space: dict[str, Any]
    num_classes: int
    output_levels: tuple[int, ...]
    head_activation: str | None
    model: dict[str, Tensor]
    optimizer: dict[str, Any]
    scheduler: dict[str, Any]
    rng: dict[str, Any]
    sampler_rng: dict[str, Any]
    multi_scale: dict[str, Any]
    precision: str = "fp32"
    grad_scaler: dict[str, Any] | None = None
    data_order: DataOrder | None = None

    def to_dict(self) -> dict[str, Any]:
        """The file's top-level dict (weights_only-loadable)."""
        obj = {"format": CHECKPOINT_FORMAT, "version": CHECKPOINT_VERSION}
        obj.update({f.name: getattr(self, f.name) for f in fields(self)})
        obj["output_levels"] = list(self.output_levels)
        obj["data_order"] = None if self.data_order is None else asdict(self.data_order)
        return obj


def save_train_checkpoint(path: str | Path, state: TrainState) -> None:
    """Write `state` to `path` atomically."""
    with atomic_path(path) as tmp:
        torch.save(state.to_dict(), tmp)


def multi_scale_state(state: Mapping[str, Any]) -> dict[str, Any]:
    """A MultiScaleResize `state_dict()` as stored (the word list as an int64 tensor)."""
    return {**state, "state": torch.tensor(state["state"], dtype=torch.int64)}


def multi_scale_state_from(obj: Mapping[str, Any]) -> dict[str, Any]:
    """The stored multi-scale state as `MultiScaleResize.load_state_dict` wants it (plain ints)."""
    return {**obj, "state": obj["state"].tolist()}


def load_train_checkpoint(path: str | Path) -> TrainState:
    """THE reader of `checkpoint.pt`: loads it with weights_only and checks every field; a missing, truncated,
    damaged or foreign file is a BadInputError naming the file (and the field)."""
    path = Path(path)
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise BadInputError("checkpoint not found", path=path) from None
    except Exception as exc:  # noqa: BLE001 - any unpickling failure means "not a readable checkpoint"
        raise BadInputError(f"not a training checkpoint readable with weights_only=True ({_short(exc)})",
                            path=path) from None
    if not isinstance(obj, Mapping) or obj.get("format") != CHECKPOINT_FORMAT:
        got = obj.get("format") if isinstance(obj, Mapping) else type(obj).__name__
        raise BadInputError(f"expected a training checkpoint (format {CHECKPOINT_FORMAT!r}), got {_short(got)}",
                            path=path, key="format")
    if obj.get("version") not in READABLE_VERSIONS:
        raise BadInputError(f"unsupported checkpoint version {_short(obj.get('version'))} (this version reads "
                            f"{list(READABLE_VERSIONS)})", path=path, key="version")
    return _checked_state(obj, path)


def _short(value: Any, limit: int = 80) -> str:
    """A bounded one-line description (containers and tensors by kind and size, never their whole repr)."""
    if isinstance(value, Tensor):
        return f"a {str(value.dtype).removeprefix('torch.')} tensor of shape {tuple(value.shape)}"
    if isinstance(value, Mapping):
        return f"a dict of {len(value)} entries"
    if isinstance(value, (list, tuple)):
        return f"a {type(value).__name__} of {len(value)} items"
    text = " ".join((str(value) if isinstance(value, BaseException) else repr(value)).split())
    return text if len(text) <= limit else text[:limit] + "..."


def _field(obj: Mapping[str, Any], key: str, path: Path, ok: Callable[[Any], bool], expected: str) -> Any:
    if key not in obj:
        raise BadInputError("missing", path=path, key=key)
    value = obj[key]
    if not ok(value):
        raise BadInputError(f"expected {expected}, got {_short(value)}", path=path, key=key)
    return value


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _str_dict(value: Any) -> bool:
    return isinstance(value, Mapping) and all(isinstance(k, str) for k in value)


def _tensor_dict(value: Any) -> bool:
    return _str_dict(value) and all(isinstance(v, Tensor) for v in value.values())


def _numbers(value: Any) -> bool:
    return isinstance(value, list) and all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in value)


def _scheduler_ok(value: Any) -> bool:
    return (_str_dict(value) and _is_int(value.get("last_epoch")) and value["last_epoch"] >= 0
            and _is_int(value.get("_step_count", 0)) and _numbers(value.get("base_lrs"))
            and _numbers(value.get("_last_lr", [])))


def _optimizer_dict(value: Any) -> bool:
    return (isinstance(value, Mapping) and isinstance(value.get("state"), Mapping)
            and all(isinstance(v, Mapping) and all(isinstance(t, (Tensor, int, float)) for t in v.values())
                    for v in value["state"].values())
            and isinstance(value.get("param_groups"), list)
            and all(isinstance(g, Mapping) and isinstance(g.get("params"), list) for g in value["param_groups"]))


def check_optimizer_shapes(optimizer: torch.optim.Optimizer, path: str | Path) -> None:
    """After `load_state_dict`: every per-parameter state tensor (Adam's moments) has its parameter's shape
    (torch does not check it, and the first step would fail)."""
    for group in optimizer.param_groups:
        for param in group["params"]:
            for name, value in optimizer.state.get(param, {}).items():
                if isinstance(value, Tensor) and value.dim() > 0 and value.shape != param.shape:
                    raise BadInputError(f"state {name!r} of shape {tuple(value.shape)} for a parameter of shape "
                                        f"{tuple(param.shape)}", path=path, key="optimizer")


def _checked_state(obj: Mapping[str, Any], path: Path) -> TrainState:
    """Every field of a version-1/2 checkpoint dict, checked (BadInputError naming the field)."""
    iteration = _field(obj, "iteration", path, lambda v: _is_int(v) and v >= 0, "an int >= 0")
    task = _field(obj, "task", path, lambda v: v in ("sod", "seg"), "'sod' or 'seg'")
    header = read_supernet_header(obj, path)  # the one reader of space, num_classes, output_levels, head
    space, num_classes = space_spec(header.space), header.num_classes
    levels, head = header.output_levels, header.head_activation
    model = _field(obj, "model", path, _tensor_dict, "a state dict (names -> tensors)")
    check_finite_weights(model, path, key="model")
    optimizer = _field(obj, "optimizer", path, _optimizer_dict, "an optimizer state dict (state, param_groups)")
    scheduler = _field(obj, "scheduler", path, _scheduler_ok,
                       "a LambdaLR state dict (last_epoch int >= 0, base_lrs and _last_lr lists of numbers)")
    rng = _field(obj, "rng", path, _str_dict, "a dict of RNG states")
    check_rng_state(rng, path, "rng")
    sampler_rng = _field(obj, "sampler_rng", path, _str_dict, "a Python RNG state")
    check_python_rng_state(sampler_rng, path, "sampler_rng")
    multi_scale = _field(obj, "multi_scale", path, _str_dict, "a Python RNG state")
    check_python_rng_state(multi_scale, path, "multi_scale")
    version2 = obj["version"] >= 2
    precision = _field(obj, "precision", path, lambda v: v in PRECISIONS, f"one of {list(PRECISIONS)}") \
        if version2 else "fp32"
    scaler = _field(obj, "grad_scaler", path, lambda v: v is None or _str_dict(v), "a GradScaler state or null") \
        if version2 else None
    order = _field(obj, "data_order", path, _data_order_ok, "{seed, world_size, batches_per_epoch} ints") \
        if version2 else None
    return TrainState(iteration=iteration, task=task, space=dict(space), num_classes=num_classes,
                      output_levels=tuple(levels), head_activation=head, model=dict(model),
                      optimizer=dict(optimizer), scheduler=dict(scheduler), rng=dict(rng),
                      sampler_rng=dict(sampler_rng), multi_scale=dict(multi_scale), precision=precision,
                      grad_scaler=None if scaler is None else dict(scaler),
                      data_order=None if order is None else DataOrder(**order))


def _data_order_ok(value: Any) -> bool:
    return (isinstance(value, Mapping) and set(value) == {"seed", "world_size", "batches_per_epoch"}
            and all(_is_int(v) for v in value.values()) and value["world_size"] >= 1
            and value["batches_per_epoch"] >= 1)


def check_compatible(state: TrainState, supernet: Supernet, task: str, where: str | Path) -> None:
    """The checkpoint must come from the same task, space, classes and output levels as this run's config."""
    problems = []
    if state.task != task:
        problems.append(f"task {state.task!r} vs config {task!r}")
    if state.space != space_spec(supernet.space):
        problems.append("a different search space (the config's `space` section changed)")
    if state.num_classes != supernet.num_classes:
        problems.append(f"num_classes {state.num_classes} vs config {supernet.num_classes}")
    if list(state.output_levels) != list(supernet.output_levels):
        problems.append(f"output_levels {list(state.output_levels)} vs config {list(supernet.output_levels)}")
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

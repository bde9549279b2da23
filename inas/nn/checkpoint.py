"""Weights in and out: import of original iNAS supernet checkpoints, our own supernet and stand-alone files.

- `load_original_checkpoint(path_or_state_dict, supernet)`: an original iNAS supernet state dict (possibly wrapped
  under 'params' / 'params_ema' / 'state_dict', possibly with 'module.' prefixes). Key names are the same as ours
  (SPEC §3), so this is a check and a copy: every checkpoint key must be a key of the original full-space supernet
  with that key's shape, and every key of `supernet` must be present; otherwise one BadInputError lists the unknown
  keys, the missing keys and the shape mismatches. A supernet over a NARROWED space takes the first channels /
  first layers / centre kernels of the checkpoint tensors (the weight-sharing rule), and checkpoint entries of
  modules the narrowed space does not have are ignored (listed in the returned report).
- `save_supernet` / `load_supernet_weights` / `load_supernet`: our file, a dict {"format": "inas-supernet",
  "version": 1, "space": narrowing spec, "num_classes", "output_levels", "head_activation", "state_dict"}.
- `save_standalone` / `load_standalone`: {"format": "inas-standalone", ..., "arch": Arch JSON, "folded"}.
Files are written atomically and read with `torch.load(..., weights_only=True)`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from inas.errors import BadInputError
from inas.io import atomic_path
from inas.nn.standalone import StandaloneModel, slice_like
from inas.nn.supernet import Supernet
from inas.space import SearchSpace, arch_from_json, inas_space

SUPERNET_FORMAT = "inas-supernet"
STANDALONE_FORMAT = "inas-standalone"
FILE_VERSION = 1
_WRAPPER_KEYS = ("params", "params_ema", "state_dict")
_MAX_LISTED = 10


@dataclass(frozen=True)
class LoadReport:
    """What a load did: tensors copied, checkpoint keys ignored (modules this supernet does not have)."""

    loaded: int
    ignored: tuple[str, ...]


# ----- space <-> plain data ----------------------------------------------------------------------------------------
def space_spec(space: SearchSpace) -> dict[str, Any]:
    """The space as a narrowing of the iNAS space (plain lists; rebuilt by `space_from_spec`)."""
    return {
        "stages": {s.name: {"widths": list(s.widths), "depths": list(s.depths), "kernels": list(s.kernels)}
                   for s in space.stages},
        "transport": {lv.name: {"connections": list(lv.connections), "kernels": list(lv.kernels)}
                      for lv in space.transport},
        "decoder": {lv.name: {"connections": list(lv.connections), "kernels": list(lv.kernels)}
                    for lv in space.decoder},
    }


def space_from_spec(spec: Any, source: str | None = None) -> SearchSpace:
    if not isinstance(spec, Mapping) or set(spec) != {"stages", "transport", "decoder"}:
        raise BadInputError("expected a space spec with keys stages, transport, decoder", path=source, key="space")
    try:
        return inas_space().narrow(spec["stages"], spec["transport"], spec["decoder"], source="space")
    except BadInputError as exc:
        raise BadInputError(str(exc), path=source) from None


# ----- reading -----------------------------------------------------------------------------------------------------
def read_checkpoint(path: str | Path, *, key: str | None = None, hint: str = "") -> Mapping[str, Any]:
    """The top-level dict of a checkpoint file, loaded with `weights_only=True`. BadInputError naming the file (and
    `key`, the setting that named it) if it is missing, not loadable or not a dict; `hint` ends the messages about
    its content."""
    path = Path(path)
    if not path.is_file():
        raise BadInputError("file not found", path=path, key=key)
    suffix = f"; {hint}" if hint else ""
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any unpickling failure means "not a readable checkpoint"
        raise BadInputError(f"not a PyTorch checkpoint readable with weights_only=True ({exc}){suffix}", path=path,
                            key=key) from None
    if not isinstance(obj, Mapping):
        raise BadInputError(f"expected a dict at the top level, got {type(obj).__name__}{suffix}", path=path,
                            key=key)
    return obj


def _read(source: str | Path | Mapping[str, Any]) -> tuple[Mapping[str, Any], str | None]:
    if isinstance(source, Mapping):
        return source, None
    return read_checkpoint(source), str(source)


def _state_dict_of(obj: Mapping[str, Any], where: str | None) -> dict[str, Tensor]:
    """Unwrap 'params' / 'params_ema' / 'state_dict', strip 'module.' prefixes, check every value is a tensor."""
    for key in _WRAPPER_KEYS:
        if key in obj and isinstance(obj[key], Mapping):
            obj = obj[key]
            break
    out: dict[str, Tensor] = {}
    for key, value in obj.items():
        if not isinstance(key, str) or not isinstance(value, Tensor):
            raise BadInputError(
                f"expected a state dict (names -> tensors), possibly under one of {list(_WRAPPER_KEYS)}; entry "
                f"{key!r} is a {type(value).__name__}", path=where)
        name = key
        while name.startswith("module."):
            name = name[len("module."):]
        out[name] = value
    return out


def _listed(items: Sequence[str]) -> str:
    shown = ", ".join(items[:_MAX_LISTED])
    more = len(items) - _MAX_LISTED
    return shown + (f", ... and {more} more" if more > 0 else "")


def _raise_mismatch(unknown: list[str], missing: list[str], bad_shapes: list[str], where: str | None,
                    what: str) -> None:
    problems = []
    if unknown:
        problems.append(f"{len(unknown)} unknown keys ({_listed(unknown)})")
    if missing:
        problems.append(f"{len(missing)} missing keys ({_listed(missing)})")
    if bad_shapes:
        problems.append(f"{len(bad_shapes)} shape mismatches ({_listed(bad_shapes)})")
    if problems:
        raise BadInputError(f"{what}: " + "; ".join(problems), path=where)


@lru_cache(maxsize=4)
def _original_shapes(num_classes: int) -> dict[str, tuple[int, ...]]:
    """Key -> shape of the original iNAS supernet (full space, heads at all five levels), built on 'meta'."""
    with torch.device("meta"):
        reference = Supernet(inas_space(), num_classes=num_classes, output_levels=(0, 1, 2, 3, 4),
                             head_activation=None)
    return {k: tuple(v.shape) for k, v in reference.state_dict().items()}


def _copy_in(supernet: torch.nn.Module, state: Mapping[str, Tensor]) -> int:
    own = supernet.state_dict()
    new = {}
    for key, target in own.items():
        if key not in state:  # only num_batches_tracked may be absent (older checkpoints); keep ours
            new[key] = target
            continue
        new[key] = slice_like(state[key], target.shape).to(dtype=target.dtype)
    supernet.load_state_dict(new, strict=True)
    return len(new)


def load_original_checkpoint(source: str | Path | Mapping[str, Any], supernet: Supernet) -> LoadReport:
    """Load an original iNAS supernet checkpoint (file or dict) into `supernet` (see module docstring)."""
    obj, where = _read(source)
    state = _state_dict_of(obj, where)
    reference = _original_shapes(supernet.num_classes)
    own = {k: tuple(v.shape) for k, v in supernet.state_dict().items()}
    unknown = sorted(k for k in state if k not in reference)
    bad_shapes = sorted(f"{k}: checkpoint {tuple(state[k].shape)} vs expected {reference[k]}"
                        for k in state if k in reference and tuple(state[k].shape) != reference[k])
    missing = sorted(k for k in own if k not in state and not k.endswith("num_batches_tracked"))
    bad_shapes += sorted(f"{k}: checkpoint {tuple(state[k].shape)} cannot be cut to {shape}"
                         for k, shape in own.items() if k in state and k in reference
                         and any(a > b for a, b in zip(shape, reference[k], strict=False)))
    _raise_mismatch(unknown, missing, bad_shapes, where, "checkpoint does not match the original iNAS supernet")
    loaded = _copy_in(supernet, state)
    return LoadReport(loaded=loaded, ignored=tuple(sorted(k for k in state if k not in own)))


# ----- our supernet files ------------------------------------------------------------------------------------------
def save_supernet(supernet: Supernet, path: str | Path) -> None:
    """Write the supernet's weights and construction arguments to `path` (atomically)."""
    obj = {
        "format": SUPERNET_FORMAT,
        "version": FILE_VERSION,
        "space": space_spec(supernet.space),
        "num_classes": supernet.num_classes,
        "output_levels": list(supernet.output_levels),
        "head_activation": supernet.head_activation,
        "state_dict": {k: v.detach().cpu() for k, v in supernet.state_dict().items()},
    }
    with atomic_path(path) as tmp:
        torch.save(obj, tmp)


def _check_format(obj: Mapping[str, Any], fmt: str, where: str | None) -> None:
    if obj.get("format") != fmt:
        raise BadInputError(f"expected a file with format {fmt!r}, got {obj.get('format')!r}", path=where,
                            key="format")
    if obj.get("version") != FILE_VERSION:
        raise BadInputError(f"unsupported version {obj.get('version')!r}; expected {FILE_VERSION}", path=where,
                            key="version")


def load_supernet_weights(source: str | Path | Mapping[str, Any], supernet: Supernet) -> LoadReport:
    """Load our supernet file (or a plain state dict) into `supernet`; keys and shapes must match exactly."""
    obj, where = _read(source)
    if "format" in obj:
        _check_format(obj, SUPERNET_FORMAT, where)
    state = _state_dict_of(obj, where)
    own = {k: tuple(v.shape) for k, v in supernet.state_dict().items()}
    unknown = sorted(k for k in state if k not in own)
    missing = sorted(k for k in own if k not in state and not k.endswith("num_batches_tracked"))
    bad_shapes = sorted(f"{k}: file {tuple(state[k].shape)} vs supernet {own[k]}"
                        for k in state if k in own and tuple(state[k].shape) != own[k])
    _raise_mismatch(unknown, missing, bad_shapes, where, "weights do not match this supernet")
    return LoadReport(loaded=_copy_in(supernet, state), ignored=())


def load_supernet(source: str | Path | Mapping[str, Any], where: str | Path | None = None) -> Supernet:
    """Rebuild the supernet saved by `save_supernet` (same space, classes, heads) with its weights; `source` is the
    file or its already loaded dict (`where` then names the file in errors)."""
    obj, read_from = _read(source)
    where = str(where) if where is not None else read_from
    _check_format(obj, SUPERNET_FORMAT, where)
    space = space_from_spec(obj.get("space"), where)
    supernet = Supernet(space, int(obj["num_classes"]), tuple(obj["output_levels"]), obj["head_activation"])
    load_supernet_weights(obj, supernet)
    return supernet


# ----- stand-alone files -------------------------------------------------------------------------------------------
def standalone_record(model: StandaloneModel, extra: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """What a stand-alone file holds: format, version, space, arch, construction arguments, folded flag, then the
    `extra` entries (e.g. a deployment description), and last the weights (detached, on the CPU)."""
    return {
        "format": STANDALONE_FORMAT,
        "version": FILE_VERSION,
        "space": space_spec(model.space),
        "arch": model.arch.to_json(),
        "num_classes": model.num_classes,
        "output_levels": list(model.output_levels),
        "head_activation": model.head_activation,
        "folded": model.folded,
        **(extra or {}),
        "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
    }


def save_standalone(model: StandaloneModel, path: str | Path) -> None:
    """Write a stand-alone model (arch, construction arguments, folded flag, weights) to `path` atomically."""
    obj = standalone_record(model)
    with atomic_path(path) as tmp:
        torch.save(obj, tmp)


def load_standalone(path: str | Path) -> StandaloneModel:
    """Rebuild a stand-alone model saved by `save_standalone`; returned in eval mode."""
    obj, where = _read(path)
    _check_format(obj, STANDALONE_FORMAT, where)
    space = space_from_spec(obj.get("space"), where)
    if not isinstance(obj.get("arch"), str):
        raise BadInputError("expected the architecture as a JSON string", path=where, key="arch")
    arch = arch_from_json(obj["arch"], space, where)
    model = StandaloneModel(space, arch, int(obj["num_classes"]), tuple(obj["output_levels"]), obj["head_activation"])
    if obj.get("folded"):
        model.reparameterize()
    state = _state_dict_of(obj, where)
    own = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    unknown = sorted(k for k in state if k not in own)
    missing = sorted(k for k in own if k not in state)
    bad_shapes = sorted(f"{k}: file {tuple(state[k].shape)} vs model {own[k]}"
                        for k in state if k in own and tuple(state[k].shape) != own[k])
    _raise_mismatch(unknown, missing, bad_shapes, where, "weights do not match the saved architecture")
    model.load_state_dict(state, strict=True)
    return model.eval()

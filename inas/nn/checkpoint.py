"""Weights in and out: import of original iNAS supernet checkpoints, our own supernet and stand-alone files.

- `load_original_checkpoint(path_or_state_dict, supernet)`: an original iNAS supernet state dict (possibly wrapped
  under 'params' / 'params_ema' / 'state_dict', possibly with 'module.' prefixes). Key names are the same as ours
  (docs/design.md §6.4), so this is a check and a copy: every checkpoint key must be a key of the original full-space
  supernet with that key's shape, and every key of `supernet` must be present; otherwise one BadInputError lists the
  unknown keys, the missing keys and the shape mismatches. A supernet over a NARROWED space takes the first channels /
  first layers / centre kernels of the checkpoint tensors (the weight-sharing rule), and checkpoint entries of
  modules the narrowed space does not have are ignored (listed in the returned report).
- `SupernetHeader` (+ `supernet_header_record` / `read_supernet_header`): the construction arguments ("space":
  narrowing spec, "num_classes", "output_levels", "head_activation") that every file or payload holding a supernet
  carries besides its weights: our supernet file, the training checkpoint, the Ray payload of `search`.
- `save_supernet` / `load_supernet_weights` / `load_supernet`: our file, a dict {"format": "inas-supernet",
  "version": 1, **supernet header, "state_dict"}.
- `save_standalone` / `load_standalone`: {"format": "inas-standalone", ..., "arch": Arch JSON, "folded"}
  (`StandaloneHeader` / `read_standalone_header`).
Files are written atomically and read with `torch.load(..., weights_only=True)`. Every header field is checked on
reading (type, range, consistency) and a bad one is a BadInputError naming the file and the field.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from inas.errors import BadInputError, clip, excerpt
from inas.io import atomic_path
from inas.nn.ops import HEAD_ACTIVATIONS
from inas.nn.standalone import StandaloneModel, slice_like
from inas.nn.supernet import Supernet
from inas.space import Arch, SearchSpace, arch_from_json, inas_space

SUPERNET_FORMAT = "inas-supernet"
STANDALONE_FORMAT = "inas-standalone"
FILE_VERSION = 1
_WRAPPER_KEYS = ("params", "params_ema", "state_dict")
_MAX_LISTED = 10
MAX_CLASSES = 255  # the same bound as the config's data.num_classes (8-bit labels, 255 = ignore)
_SPEC_FIELDS = {"stages": ("widths", "depths", "kernels"), "transport": ("connections", "kernels"),
                "decoder": ("connections", "kernels")}


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


def _check_spec(spec: Any, source: str | None) -> None:
    """The shape of a space spec: {part: {name: {field: [int, ...]}}} with the fields of `_SPEC_FIELDS`."""
    if not isinstance(spec, Mapping) or set(spec) != set(_SPEC_FIELDS):
        raise BadInputError("expected a space spec with keys stages, transport, decoder", path=source, key="space")
    for part, fields in _SPEC_FIELDS.items():
        if not isinstance(spec[part], Mapping):
            raise BadInputError(f"expected a mapping, got {excerpt(spec[part])}", path=source, key=f"space.{part}")
        for name, choices in spec[part].items():
            key = f"space.{part}.{excerpt(name, 40) if not isinstance(name, str) else name[:40]}"
            if not isinstance(name, str) or not isinstance(choices, Mapping) or not set(choices) <= set(fields):
                raise BadInputError(f"expected a mapping with keys among {list(fields)}, got {excerpt(choices)}",
                                    path=source, key=key)
            for field, values in choices.items():
                if not isinstance(values, list | tuple) or not all(type(v) is int for v in values):
                    raise BadInputError(f"expected a list of integers, got {excerpt(values)}", path=source,
                                        key=f"{key}.{field}")


def space_from_spec(spec: Any, source: str | None = None) -> SearchSpace:
    """Rebuild the space written by `space_spec`; BadInputError naming `source` and the key if it is malformed."""
    _check_spec(spec, source)
    try:
        return inas_space().narrow(spec["stages"], spec["transport"], spec["decoder"], source="space")
    except BadInputError as exc:
        raise BadInputError(str(exc), path=source) from None


# ----- the supernet header ----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class SupernetHeader:
    """What a supernet is built from: its space, class count, output levels and head activation."""

    space: SearchSpace
    num_classes: int
    output_levels: tuple[int, ...]
    head_activation: str | None

    @classmethod
    def of(cls, model: Supernet | StandaloneModel) -> SupernetHeader:
        return cls(model.space, model.num_classes, tuple(model.output_levels), model.head_activation)

    def record(self) -> dict[str, Any]:
        """Plain data for a file or a payload (read back by `read_supernet_header`)."""
        return {"space": space_spec(self.space), "num_classes": self.num_classes,
                "output_levels": list(self.output_levels), "head_activation": self.head_activation}

    def build(self) -> Supernet:
        """A fresh supernet with these construction arguments."""
        return Supernet(self.space, self.num_classes, self.output_levels, self.head_activation)


def supernet_header_record(model: Supernet | StandaloneModel) -> dict[str, Any]:
    """The header entries of `model` for a file or a payload (the one writer of the header)."""
    return SupernetHeader.of(model).record()


def header_field(obj: Mapping[str, Any], key: str, where: str | None) -> Any:
    if key not in obj:
        raise BadInputError("missing entry", path=where, key=key)
    return obj[key]


def int_field(value: Any, key: str, where: str | None, low: int, high: int) -> int:
    """`value` as an int in [low, high] (bools and floats refused)."""
    if type(value) is not int or not low <= value <= high:
        raise BadInputError(f"expected an integer in {low}..{high}, got {excerpt(value)}", path=where, key=key)
    return value


def output_levels_field(value: Any, where: str | None, key: str = "output_levels") -> tuple[int, ...]:
    """Sorted unique decoder levels with a head: a non-empty list of ints in 0..4 containing 0."""
    if not isinstance(value, list | tuple) or not all(type(v) is int for v in value) or 0 not in value \
            or not set(value) <= set(range(5)):
        raise BadInputError(f"expected a list of levels in 0..4 containing 0, got {excerpt(value)}", path=where,
                            key=key)
    return tuple(sorted(set(value)))


def head_activation_field(value: Any, where: str | None, key: str = "head_activation") -> str | None:
    if not (value is None or (isinstance(value, str) and value in HEAD_ACTIVATIONS)):
        raise BadInputError(f"expected one of {list(HEAD_ACTIVATIONS)}, got {excerpt(value)}", path=where, key=key)
    return value


def read_supernet_header(obj: Mapping[str, Any], where: str | Path | None) -> SupernetHeader:
    """The checked header of a file or payload written with `supernet_header_record`; BadInputError naming `where`
    and the field otherwise."""
    where = None if where is None else str(where)
    return SupernetHeader(
        space=space_from_spec(header_field(obj, "space", where), where),
        num_classes=int_field(header_field(obj, "num_classes", where), "num_classes", where, 1, MAX_CLASSES),
        output_levels=output_levels_field(header_field(obj, "output_levels", where), where),
        head_activation=head_activation_field(header_field(obj, "head_activation", where), where),
    )


@dataclass(frozen=True)
class StandaloneHeader:
    """What a stand-alone model is built from: the supernet header, the architecture and the folded flag."""

    supernet: SupernetHeader
    arch: Arch
    folded: bool

    def build(self) -> StandaloneModel:
        """A fresh model (folded when the file's weights are)."""
        h = self.supernet
        model = StandaloneModel(h.space, self.arch, h.num_classes, h.output_levels, h.head_activation)
        if self.folded:
            model.reparameterize()
        return model


def read_standalone_header(obj: Mapping[str, Any], where: str | Path | None) -> StandaloneHeader:
    """The checked header of a stand-alone file; BadInputError naming `where` and the field otherwise."""
    where = None if where is None else str(where)
    supernet = read_supernet_header(obj, where)
    arch_text = header_field(obj, "arch", where)
    if not isinstance(arch_text, str):
        raise BadInputError("expected the architecture as a JSON string", path=where, key="arch")
    arch = arch_from_json(arch_text, supernet.space, where)
    folded = header_field(obj, "folded", where)
    if not isinstance(folded, bool):
        raise BadInputError(f"expected true or false, got {excerpt(folded)}", path=where, key="folded")
    return StandaloneHeader(supernet, arch, folded)


# ----- reading -----------------------------------------------------------------------------------------------------
def read_checkpoint(path: str | Path, *, key: str | None = None, hint: str = "") -> Mapping[str, Any]:
    """The top-level dict of a checkpoint file, loaded with `weights_only=True`. BadInputError naming the file (and
    `key`, the setting that named it) if it is missing, not loadable or not a dict; `hint` ends the messages about
    its content."""
    path = Path(path)
    try:
        if not path.is_file():
            raise BadInputError("file not found", path=path, key=key)
    except OSError as exc:  # e.g. a name too long for the file system
        raise BadInputError(f"cannot be read ({exc.strerror})", path=path, key=key) from None
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
                f"{excerpt(key)} is a {type(value).__name__}", path=where)
        if value.is_complex() or value.layout != torch.strided:
            raise BadInputError(f"expected dense real tensors; entry {excerpt(key)} is {value.dtype} {value.layout}",
                                path=where)
        name = key
        while name.startswith("module."):
            name = name[len("module."):]
        out[name] = value
    check_finite_weights(out, where)
    return out


def check_finite_weights(state: Mapping[str, Tensor], where: str | Path | None, key: str | None = None) -> None:
    """BadInputError naming the first floating-point entry of `state` holding NaN or infinity (weights of a run
    that diverged: every score computed from them would be NaN, or a resumed run would carry them on)."""
    for name, value in state.items():
        if value.is_floating_point() and not bool(torch.isfinite(value).all()):
            raise BadInputError(f"entry {excerpt(name)} holds NaN or infinite values; expected the finite weights of "
                                "a run that did not diverge", path=where, key=key)


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


def _copy_in(supernet: torch.nn.Module, state: Mapping[str, Tensor], where: str | None) -> int:
    own = supernet.state_dict()
    new = {}
    for key, target in own.items():
        if key not in state:  # only num_batches_tracked may be absent (older checkpoints); keep ours
            new[key] = target
            continue
        new[key] = slice_like(state[key], target.shape).to(dtype=target.dtype)
    try:
        supernet.load_state_dict(new, strict=True)
    except (RuntimeError, TypeError, ValueError) as exc:
        raise BadInputError(f"weights cannot be loaded ({clip(str(exc), 200)})", path=where, key="state_dict") \
            from None
    return len(new)


def load_original_checkpoint(source: str | Path | Mapping[str, Any], supernet: Supernet,
                             where: str | Path | None = None) -> LoadReport:
    """Load an original iNAS supernet checkpoint (file or dict) into `supernet` (see module docstring); `where`
    names the file in errors when `source` is its already loaded dict."""
    obj, read_from = _read(source)
    where = str(where) if where is not None else read_from
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
    loaded = _copy_in(supernet, state, where)
    return LoadReport(loaded=loaded, ignored=tuple(sorted(k for k in state if k not in own)))


# ----- our supernet files ------------------------------------------------------------------------------------------
def save_supernet(supernet: Supernet, path: str | Path) -> None:
    """Write the supernet's weights and construction arguments to `path` (atomically)."""
    obj = {
        "format": SUPERNET_FORMAT,
        "version": FILE_VERSION,
        **supernet_header_record(supernet),
        "state_dict": {k: v.detach().cpu() for k, v in supernet.state_dict().items()},
    }
    with atomic_path(path) as tmp:
        torch.save(obj, tmp)


def _check_format(obj: Mapping[str, Any], fmt: str, where: str | None) -> None:
    """The format and version entries, and a `state_dict` mapping."""
    if obj.get("format") != fmt:
        raise BadInputError(f"expected a file with format {fmt!r}, got {excerpt(obj.get('format'))}", path=where,
                            key="format")
    if type(obj.get("version")) is not int or obj.get("version") != FILE_VERSION:
        raise BadInputError(f"unsupported version {excerpt(obj.get('version'))}; expected {FILE_VERSION}",
                            path=where, key="version")
    if not isinstance(obj.get("state_dict"), Mapping):
        raise BadInputError(f"expected the weights (names -> tensors), got {excerpt(obj.get('state_dict'))}",
                            path=where, key="state_dict")


def load_supernet_weights(source: str | Path | Mapping[str, Any], supernet: Supernet,
                          where: str | Path | None = None) -> LoadReport:
    """Load our supernet file (or a plain state dict) into `supernet`; keys and shapes must match exactly. `where`
    names the file in errors when `source` is its already loaded dict."""
    obj, read_from = _read(source)
    where = str(where) if where is not None else read_from
    if "format" in obj:
        _check_format(obj, SUPERNET_FORMAT, where)
    state = _state_dict_of(obj, where)
    own = {k: tuple(v.shape) for k, v in supernet.state_dict().items()}
    unknown = sorted(k for k in state if k not in own)
    missing = sorted(k for k in own if k not in state and not k.endswith("num_batches_tracked"))
    bad_shapes = sorted(f"{k}: file {tuple(state[k].shape)} vs supernet {own[k]}"
                        for k in state if k in own and tuple(state[k].shape) != own[k])
    _raise_mismatch(unknown, missing, bad_shapes, where, "weights do not match this supernet")
    return LoadReport(loaded=_copy_in(supernet, state, where), ignored=())


def load_supernet(source: str | Path | Mapping[str, Any], where: str | Path | None = None) -> Supernet:
    """Rebuild the supernet saved by `save_supernet` (same space, classes, heads) with its weights; `source` is the
    file or its already loaded dict (`where` then names the file in errors)."""
    obj, read_from = _read(source)
    where = str(where) if where is not None else read_from
    _check_format(obj, SUPERNET_FORMAT, where)
    supernet = read_supernet_header(obj, where).build()
    load_supernet_weights(obj, supernet, where)
    return supernet


# ----- stand-alone files -------------------------------------------------------------------------------------------
def standalone_record(model: StandaloneModel, extra: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """What a stand-alone file holds: format, version, space, arch, construction arguments, folded flag, then the
    `extra` entries (e.g. a deployment description), and last the weights (detached, on the CPU)."""
    return {
        "format": STANDALONE_FORMAT,
        "version": FILE_VERSION,
        **supernet_header_record(model),
        "arch": model.arch.to_json(),
        "folded": model.folded,
        **(extra or {}),
        "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
    }


def save_standalone(model: StandaloneModel, path: str | Path) -> None:
    """Write a stand-alone model (arch, construction arguments, folded flag, weights) to `path` atomically."""
    obj = standalone_record(model)
    with atomic_path(path) as tmp:
        torch.save(obj, tmp)


def load_standalone(source: str | Path | Mapping[str, Any], where: str | Path | None = None) -> StandaloneModel:
    """Rebuild a stand-alone model saved by `save_standalone` (the file or its already loaded dict, `where` then
    naming the file in errors); returned in eval mode."""
    obj, read_from = _read(source)
    where = str(where) if where is not None else read_from
    _check_format(obj, STANDALONE_FORMAT, where)
    model = read_standalone_header(obj, where).build()
    state = _state_dict_of(obj, where)
    own = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    unknown = sorted(k for k in state if k not in own)
    missing = sorted(k for k in own if k not in state)
    bad_shapes = sorted(f"{k}: file {tuple(state[k].shape)} vs model {own[k]}"
                        for k in state if k in own and tuple(state[k].shape) != own[k])
    _raise_mismatch(unknown, missing, bad_shapes, where, "weights do not match the saved architecture")
    try:
        model.load_state_dict(state, strict=True)
    except (RuntimeError, TypeError, ValueError) as exc:  # e.g. a tensor of a kind that cannot be copied in
        raise BadInputError(f"weights cannot be loaded ({clip(str(exc), 200)})", path=where,
                            key="state_dict") from None
    return model.eval()

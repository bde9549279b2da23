"""The deployable model file: ONE self-describing PyTorch file per converted architecture.

Layout (a dict saved with `torch.save`, read with `torch.load(..., weights_only=True)`): every key of
`inas.nn.save_standalone`'s file ("format": "inas-standalone", "version", "space", "arch" (Arch JSON),
"num_classes", "output_levels", "head_activation", "folded", "state_dict"), so `inas.nn.load_standalone` reads it
too, plus

- "task": "sod" or "seg";
- "input_size": [height, width], the input the model was converted (BN-recalibrated and validated) for;
- "conversion": a JSON-friendly record of how it was made (supernet file, BN batches, consistency metrics,
  fine-tuning), or {} when unknown.

`detect_model_kind(path)` tells our PyTorch file from an ONNX file by content (not by suffix) and rejects
anything else with one BadInputError.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import torch

from inas.errors import BadInputError, excerpt
from inas.io import atomic_path
from inas.nn import StandaloneModel, load_standalone, space_spec
from inas.nn.checkpoint import (
    MAX_CLASSES,
    STANDALONE_FORMAT,
    SUPERNET_FORMAT,
    head_activation_field,
    output_levels_field,
    read_checkpoint,
    space_from_spec,
    standalone_record,
)
from inas.space import Arch, SearchSpace, arch_from_json

TASKS: tuple[str, ...] = ("sod", "seg")
ModelKind = Literal["torch", "onnx"]
_ZIP_MAGIC = b"PK\x03\x04"  # torch.save's default (zip) format
MAX_INPUT_SIDE = 4096  # pixels, the config's bound on image sizes
HINT = "expected a stand-alone model file written by `convert` (.pt) or an ONNX file written by `export`"


@dataclass(frozen=True)
class ModelInfo:
    """Everything needed to run and interpret a deployed model, besides its weights."""

    space: SearchSpace
    arch: Arch
    task: str
    num_classes: int
    head_activation: str | None
    input_hw: tuple[int, int]
    output_levels: tuple[int, ...] = (0,)
    conversion: dict[str, Any] = field(default_factory=dict)

    def header(self) -> dict[str, Any]:
        """JSON-friendly description (no weights): what the model file and the ONNX metadata store."""
        return {
            "space": space_spec(self.space),
            "arch": self.arch.to_json(),
            "task": self.task,
            "num_classes": self.num_classes,
            "head_activation": self.head_activation,
            "input_size": list(self.input_hw),
            "output_levels": list(self.output_levels),
            "conversion": self.conversion,
        }

    @classmethod
    def from_header(cls, header: Mapping[str, Any], source: str | None = None) -> ModelInfo:
        """Inverse of `header()`; BadInputError naming `source` and the key for anything malformed."""
        for key in ("space", "arch", "num_classes", "input_size"):
            if key not in header:
                raise BadInputError("missing entry; " + HINT, path=source, key=key)
        space = space_from_spec(header["space"], source)
        if not isinstance(header["arch"], str):
            raise BadInputError("expected the architecture as a JSON string", path=source, key="arch")
        arch = arch_from_json(header["arch"], space, source)
        num_classes = _positive_int(header["num_classes"], "num_classes", source, MAX_CLASSES)
        task = header.get("task")
        if task is None:
            task = "sod" if num_classes == 1 else "seg"
        if not isinstance(task, str) or task not in TASKS or (task == "sod") != (num_classes == 1):
            raise BadInputError(f"expected one of {list(TASKS)} (sod with 1 class, seg with more), got "
                                f"{excerpt(task)} with {num_classes} classes", path=source, key="task")
        size = header["input_size"]
        if not isinstance(size, Sequence) or isinstance(size, str) or len(size) != 2:
            raise BadInputError(f"expected [height, width], got {excerpt(size)}", path=source, key="input_size")
        input_hw = (_positive_int(size[0], "input_size", source, MAX_INPUT_SIDE),
                    _positive_int(size[1], "input_size", source, MAX_INPUT_SIDE))
        levels = output_levels_field(header.get("output_levels", [0]), source)
        head_activation = head_activation_field(header.get("head_activation"), source)
        conversion = header.get("conversion")
        conversion = {} if conversion is None else conversion
        if not isinstance(conversion, Mapping):
            raise BadInputError("expected a mapping", path=source, key="conversion")
        return cls(space, arch, task, num_classes, head_activation, input_hw, levels, dict(conversion))


def _positive_int(value: Any, key: str, source: str | None, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int | float) or not 1 <= value <= high or int(value) != value:
        raise BadInputError(f"expected an integer in 1..{high}, got {excerpt(value)}", path=source, key=key)
    return int(value)


def _json_friendly(obj: Any, key: str) -> Any:
    """Refuse anything `weights_only` loading or JSON could not carry (the conversion record is plain data)."""
    try:
        return json.loads(json.dumps(obj, allow_nan=True))
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{key} must be JSON-friendly plain data ({exc})") from None


def save_model_file(model: StandaloneModel, path: str | Path, *, task: str, input_hw: tuple[int, int],
                    conversion: Mapping[str, Any] | None = None) -> None:
    """Write `model` (folded or not) with its description to `path` atomically (see the module docstring)."""
    if task not in TASKS:
        raise ValueError(f"task must be one of {TASKS}, got {task!r}")
    if (task == "sod") != (model.num_classes == 1):
        raise ValueError(f"task {task!r} does not fit a model with {model.num_classes} classes")
    description = {
        "task": task,
        "input_size": [int(input_hw[0]), int(input_hw[1])],
        "conversion": _json_friendly(dict(conversion or {}), "conversion"),
    }
    obj = standalone_record(model, description)
    with atomic_path(path) as tmp:
        torch.save(obj, tmp)


def _check_exists(path: Path) -> None:
    if not path.exists():
        raise BadInputError("model file not found", path=path)
    if not path.is_file():
        raise BadInputError("expected a model file, got a folder or special file", path=path)


def detect_model_kind(path: str | Path) -> ModelKind:
    """'torch' for a torch.save zip file, 'onnx' for a file that parses as an ONNX model with a graph; otherwise a
    BadInputError (missing file, folder, anything else)."""
    path = Path(path)
    _check_exists(path)
    with path.open("rb") as fh:
        head = fh.read(4)
    if head == _ZIP_MAGIC:
        return "torch"
    import onnx  # imported here: onnx is only needed for ONNX files

    try:
        proto = onnx.load_model(str(path), load_external_data=False)
    except Exception:  # noqa: BLE001 - any parse failure means "not an ONNX file"
        proto = None
    if proto is None or len(proto.graph.node) == 0 or len(proto.graph.input) == 0:
        raise BadInputError("not a model file: neither a PyTorch checkpoint nor an ONNX model; " + HINT, path=path)
    return "onnx"


def load_model_file(path: str | Path) -> tuple[StandaloneModel, ModelInfo]:
    """Read a file written by `save_model_file` -> (model in eval mode, its description).

    A plain `inas.nn.save_standalone` file (no task / input size) loads too: task from the class count, input
    size 320 x 320. A supernet checkpoint or any other file gives a BadInputError saying what was expected.
    """
    path = Path(path)
    _check_exists(path)
    obj = read_checkpoint(path, hint=HINT)
    fmt = obj.get("format")
    if fmt == SUPERNET_FORMAT:
        raise BadInputError("this is a supernet checkpoint, not a stand-alone model; run `convert --arch ARCH.json "
                            "--supernet THIS_FILE -o MODEL.pt` first", path=path)
    if fmt != STANDALONE_FORMAT:
        raise BadInputError(f"expected format {STANDALONE_FORMAT!r}, got {excerpt(fmt)}; " + HINT, path=path,
                            key="format")
    header = dict(obj)
    header.setdefault("input_size", [320, 320])
    info = ModelInfo.from_header(header, str(path))
    model = load_standalone(obj, where=path)  # the dict already read: the file is loaded once
    if model.num_classes != info.num_classes:  # pragma: no cover - same file, read twice
        raise BadInputError("inconsistent class count", path=path, key="num_classes")
    return model, info


def model_info_of(model: StandaloneModel, task: str, input_hw: tuple[int, int],
                  conversion: Mapping[str, Any] | None = None) -> ModelInfo:
    """The description of an in-memory stand-alone model."""
    return ModelInfo(model.space, model.arch, task, model.num_classes, model.head_activation,
                     (int(input_hw[0]), int(input_hw[1])), tuple(model.output_levels), dict(conversion or {}))

"""The description an exported model carries: `inas.*` entries (every value a JSON document) in an ONNX file's
`metadata_props`, or under the `inas` key of an OpenVINO IR's rt_info; and checks of an ONNX file before a runtime
loads it.

| key                    | value                                                                                   |
|------------------------|-----------------------------------------------------------------------------------------|
| `inas.format`          | "inas-onnx"                                                                             |
| `inas.version`         | 1                                                                                       |
| `inas.space`           | the space's narrowing spec                                                              |
| `inas.arch`            | the Arch JSON object                                                                    |
| `inas.task`            | "sod" or "seg"                                                                          |
| `inas.num_classes`     | positive integer (1 for SOD)                                                            |
| `inas.head_activation` | "sigmoid", "softmax" or null                                                            |
| `inas.input_size`      | [H, W], positive multiples of 32                                                        |
| `inas.output_levels`   | non-empty list of decoder levels 0..4                                                   |
| `inas.conversion`      | how the .pt was made (object)                                                           |
| `inas.dynamic_axes`    | [] or ["batch", "height", "width"]                                                      |
| `inas.precision`       | "fp32" or "int8" (absent in older files: fp32)                                          |
| `inas.quantization`    | INT8 only: {method, weights, activations, calibration, calibration_images, fp32_model}  |

`read_metadata` validates every entry and returns one frozen `ModelMetadata`; a damaged entry is a BadInputError
naming the file and the entry.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from inas.deploy.model_file import TASKS, ModelInfo
from inas.errors import BadInputError
from inas.nn.checkpoint import space_from_spec
from inas.nn.ops import HEAD_ACTIVATIONS
from inas.space import arch_from_json

ONNX_FORMAT = "inas-onnx"
ONNX_VERSION = 1
PREFIX = "inas."
PRECISIONS = ("fp32", "int8")
DYNAMIC_AXES = ("batch", "height", "width")
MAX_LEVEL = 4
# Operator domains onnxruntime runs besides the standard ones (its contrib ops).
EXTRA_DOMAINS = ("com.microsoft",)


@dataclass(frozen=True)
class Quantization:
    """How an INT8 model was quantised and calibrated."""

    method: str  # e.g. "onnxruntime-qdq" or "nncf-ptq"
    weights: str  # e.g. "int8 per-channel"
    activations: str  # e.g. "uint8 per-tensor"
    calibration: str  # "images:<list file>" or "random"
    calibration_images: int
    fp32_model: str = ""  # the FP32 model it was made from, relative to the INT8 file's folder ("" unknown)


@dataclass(frozen=True)
class ModelMetadata:
    """The validated `inas.*` entries of an exported model."""

    info: ModelInfo
    version: int
    dynamic_axes: tuple[str, ...]
    precision: str
    quantization: Quantization | None = None


def metadata_entries(info: ModelInfo, dynamic: bool, quantization: Quantization | None = None) -> dict[str, str]:
    """The `inas.*` entries (values JSON) describing a model (see the module docstring)."""
    header = info.header()
    header["arch"] = json.loads(header["arch"])
    entries: dict[str, Any] = {"format": ONNX_FORMAT, "version": ONNX_VERSION, **header,
                               "dynamic_axes": list(DYNAMIC_AXES) if dynamic else [],
                               "precision": "int8" if quantization else "fp32"}
    if quantization is not None:
        entries["quantization"] = asdict(quantization)
    return {PREFIX + key: json.dumps(value, separators=(",", ":")) for key, value in entries.items()}


def _decode(props: Mapping[str, str], source: str | None) -> dict[str, Any]:
    if props.get(PREFIX + "format") != json.dumps(ONNX_FORMAT):
        raise BadInputError("an ONNX model (or OpenVINO IR) without inas metadata (entries 'inas.format', "
                            "'inas.arch', 'inas.input_size', ...); export it with `python -m inas.run export MODEL.pt`",
                            path=source)
    header: dict[str, Any] = {}
    for key, value in props.items():
        if key.startswith(PREFIX):
            try:
                header[key[len(PREFIX):]] = json.loads(value)
            except json.JSONDecodeError:
                raise BadInputError(f"metadata value is not JSON: {value[:80]!r}", path=source, key=key) from None
    return header


def _bad(message: str, source: str | None, key: str) -> BadInputError:
    return BadInputError(message, path=source, key=PREFIX + key)


def _int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _check_fields(header: Mapping[str, Any], source: str | None) -> None:
    """BadInputError naming the first malformed entry (the ones ModelInfo does not check itself)."""
    required = ("version", "space", "arch", "task", "num_classes", "input_size", "output_levels")
    for key in required:
        if key not in header:
            raise _bad("missing entry", source, key)
    if header["version"] != ONNX_VERSION:
        raise _bad(f"unsupported version {header['version']!r}; expected {ONNX_VERSION}", source, "version")
    if not isinstance(header["arch"], Mapping):
        raise _bad(f"expected the architecture as a JSON object, got {type(header['arch']).__name__}", source, "arch")
    if header["task"] not in TASKS:
        raise _bad(f"expected one of {list(TASKS)}, got {header['task']!r}", source, "task")
    classes = header["num_classes"]
    if not _int(classes) or classes < 1 or (header["task"] == "sod") != (classes == 1):
        raise _bad(f"expected a positive integer (1 for SOD, more for seg), got {classes!r}", source, "num_classes")
    size = header["input_size"]
    if not isinstance(size, list) or len(size) != 2 or not all(_int(s) and s > 0 and s % 32 == 0 for s in size):
        raise _bad(f"expected [height, width], positive multiples of 32, got {size!r}", source, "input_size")
    levels = header["output_levels"]
    if not isinstance(levels, list) or not levels or not all(_int(v) and 0 <= v <= MAX_LEVEL for v in levels):
        raise _bad(f"expected a non-empty list of levels 0..{MAX_LEVEL}, got {levels!r}", source, "output_levels")
    if header.get("head_activation") not in HEAD_ACTIVATIONS:
        raise _bad(f"expected one of {list(HEAD_ACTIVATIONS)}, got {header.get('head_activation')!r}", source,
                   "head_activation")
    axes = header.get("dynamic_axes", [])
    if not isinstance(axes, list) or any(a not in DYNAMIC_AXES for a in axes):
        raise _bad(f"expected a list of {list(DYNAMIC_AXES)}, got {axes!r}", source, "dynamic_axes")
    if header.get("precision", "fp32") not in PRECISIONS:
        raise _bad(f"expected one of {list(PRECISIONS)}, got {header.get('precision')!r}", source, "precision")


def _quantization(header: Mapping[str, Any], source: str | None) -> Quantization | None:
    doc = header.get("quantization")
    if header.get("precision", "fp32") == "fp32":
        return None
    try:
        quant = Quantization(**doc) if isinstance(doc, Mapping) else None
    except TypeError:
        quant = None
    if quant is None or not all(isinstance(v, str) for v in (quant.method, quant.calibration, quant.fp32_model)) \
            or not _int(quant.calibration_images):
        raise _bad(f"expected an object with the fields of inas.deploy.onnx_metadata.Quantization, got {doc!r}",
                   source, "quantization")
    return quant


def _keyed(parse: Callable[[], Any], source: str | None, key: str) -> Any:
    """parse(), its BadInputError re-raised naming the `inas.<key>` entry."""
    try:
        return parse()
    except BadInputError as exc:
        raise _bad(str(exc).removeprefix(f"{source}: "), source, key) from None


def read_metadata(props: Mapping[str, str], source: str | None = None) -> ModelMetadata:
    """The validated description of an exported model from its `inas.*` entries (see the module docstring)."""
    header = _decode(props, source)
    _check_fields(header, source)
    quant = _quantization(header, source)
    arch_text = json.dumps(header["arch"])
    space = _keyed(lambda: space_from_spec(header["space"], source), source, "space")
    _keyed(lambda: arch_from_json(arch_text, space, source), source, "arch")
    info = ModelInfo.from_header(dict(header, arch=arch_text), source)
    return ModelMetadata(info, ONNX_VERSION, tuple(header.get("dynamic_axes", [])),
                         header.get("precision", "fp32"), quant)


def read_onnx_metadata(proto: Any, source: str | None = None) -> ModelMetadata:
    """`read_metadata` of an onnx.ModelProto's metadata_props."""
    return read_metadata({p.key: p.value for p in proto.metadata_props}, source)


def check_onnx_file(proto: Any, path: str | Path) -> None:
    """BadInputError (one line) if the ONNX model at `path` keeps external data outside its own folder, or uses an
    operator that neither ONNX nor onnxruntime's contrib domain defines. `proto` is loaded without external data."""
    import onnx

    folder = Path(path).resolve().parent
    for tensor in proto.graph.initializer:
        if tensor.data_location != onnx.TensorProto.EXTERNAL:
            continue
        location = next((e.value for e in tensor.external_data if e.key == "location"), "")
        target = (folder / location).resolve()
        if not location or Path(location).is_absolute() or not target.is_relative_to(folder):
            raise BadInputError(f"initializer {tensor.name!r} keeps its data outside the model's folder "
                                f"({location!r}); refusing to read it", path=path, key="external_data")
    for node in proto.graph.node:
        domain = node.domain or ""
        if domain in EXTRA_DOMAINS:
            continue
        if domain not in ("", "ai.onnx") or not onnx.defs.has(node.op_type, domain):
            raise BadInputError(f"unknown operator {domain + '::' if domain else ''}{node.op_type} (node "
                                f"{node.name!r}); not a model onnxruntime can run", path=path, key="graph")

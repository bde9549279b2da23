"""ONNX export of a stand-alone model, with the model description in the file and a numerical check.

- Exporter: the TorchScript exporter (`torch.onnx.export(..., dynamo=False)`), constant folding on; SMSUs are
  folded first (one depthwise conv with bias per unit), BN layers are folded into the convs by the exporter in eval
  mode. Input `image` (N, 3, H, W) float32, ImageNet-normalised; output `map` (N, K, H, W): the level-0 head
  (sigmoid probabilities for SOD, logits for segmentation unless the model has another head activation).
- `dynamic=True` makes batch, height and width symbolic. This works with the align_corners=True bilinear
  upsampling because every resize is by a constant integer scale factor (ONNX `Resize` with `scales`, coordinate
  mode `align_corners`), so the graph holds no baked-in sizes; H and W must still be multiples of 32 (the deepest
  level has stride 32). Without `dynamic` the graph is fixed to (1, 3, H, W), which lets onnxruntime plan memory
  statically.
- Metadata (`metadata_props`, every value a JSON document): `inas.format` ("inas-onnx"), `inas.version`,
  `inas.arch` (the Arch JSON object), `inas.input_size` ([H, W]), `inas.space`, `inas.task`, `inas.num_classes`,
  `inas.head_activation`, `inas.output_levels`, `inas.conversion`, `inas.dynamic_axes`. `read_onnx_info` rebuilds
  the `ModelInfo`, so `test` and `predict` need only the ONNX file.
- Check: onnxruntime vs PyTorch on seeded random image-like inputs (`check_images`: smooth noise, the statistics
  of a normalised photo; batch 1 at the export size, with `dynamic` also batch 2 at a larger size); the largest
  absolute difference must be <= `tolerance`, else `ExportMismatchError` and no file is written. (White noise is a
  poor probe: BN statistics calibrated on images do not normalise it, activations grow ~100x, and float32 rounding
  differences between the runtimes grow with them to ~1e-4 even for a correct export.) Written atomically.
"""

from __future__ import annotations

import copy
import io
import json
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from inas.deploy.model_file import ModelInfo
from inas.errors import BadInputError
from inas.io import atomic_write_bytes
from inas.nn import StandaloneModel

ONNX_FORMAT = "inas-onnx"
ONNX_VERSION = 1
DEFAULT_OPSET = 17
MIN_OPSET = 11  # Resize with align_corners
MAX_OPSET = 20  # the TorchScript exporter's newest opset (torch 2.x)
INPUT_NAME = "image"
OUTPUT_NAME = "map"
DEFAULT_TOLERANCE = 1e-4
_PREFIX = "inas."


class ExportMismatchError(RuntimeError):
    """onnxruntime's output differs from PyTorch's by more than the tolerance (an exporter or runtime defect)."""


@dataclass(frozen=True)
class ExportCheck:
    """Outcome of the onnxruntime vs PyTorch comparison: the largest |difference| per checked input shape."""

    max_abs_diff: float
    diffs: tuple[tuple[tuple[int, int, int, int], float], ...]
    tolerance: float

    @property
    def passed(self) -> bool:
        return self.max_abs_diff <= self.tolerance


@dataclass(frozen=True)
class ExportResult:
    path: str
    onnx_bytes: int
    opset: int
    dynamic: bool
    input_hw: tuple[int, int]
    check: ExportCheck


def check_opset(opset: int) -> int:
    if not MIN_OPSET <= opset <= MAX_OPSET:
        raise BadInputError(f"opset {opset} is not supported; the exporter handles opsets {MIN_OPSET}..{MAX_OPSET}",
                            key="--opset")
    return opset


def check_input_hw(input_hw: tuple[int, int], key: str = "--size") -> tuple[int, int]:
    h, w = int(input_hw[0]), int(input_hw[1])
    if h <= 0 or w <= 0 or h % 32 or w % 32:
        raise BadInputError(f"height and width must be positive multiples of 32, got {h} x {w}", key=key)
    return h, w


def deployable(model: StandaloneModel) -> StandaloneModel:
    """An eval-mode, folded model (a folded copy if `model` is not folded yet; `model` itself otherwise)."""
    if not model.folded:
        model = copy.deepcopy(model).reparameterize()
    return model.eval()


# ----- metadata ----------------------------------------------------------------------------------------------------
def onnx_metadata(info: ModelInfo, dynamic: bool) -> dict[str, str]:
    """`metadata_props` entries (values JSON) describing the model (see the module docstring)."""
    header = info.header()
    header["arch"] = json.loads(header["arch"])
    entries: dict[str, Any] = {"format": ONNX_FORMAT, "version": ONNX_VERSION, **header,
                               "dynamic_axes": ["batch", "height", "width"] if dynamic else []}
    return {_PREFIX + key: json.dumps(value, separators=(",", ":")) for key, value in entries.items()}


def read_onnx_info(proto: Any, source: str | None = None) -> ModelInfo:
    """The ModelInfo stored by `export_onnx` in an onnx.ModelProto; BadInputError if it is not our export."""
    props = {p.key: p.value for p in proto.metadata_props}
    if props.get(_PREFIX + "format") != json.dumps(ONNX_FORMAT):
        raise BadInputError("an ONNX model without inas metadata (metadata_props 'inas.format', 'inas.arch', "
                            "'inas.input_size', ...); export it with `python -m inas.run export MODEL.pt`",
                            path=source)
    header: dict[str, Any] = {}
    for key, value in props.items():
        if not key.startswith(_PREFIX):
            continue
        try:
            header[key[len(_PREFIX):]] = json.loads(value)
        except json.JSONDecodeError:
            raise BadInputError(f"metadata value is not JSON: {value[:80]!r}", path=source, key=key) from None
    if header.get("version") != ONNX_VERSION:
        raise BadInputError(f"unsupported version {header.get('version')!r}; expected {ONNX_VERSION}", path=source,
                            key=_PREFIX + "version")
    if isinstance(header.get("arch"), Mapping):
        header["arch"] = json.dumps(header["arch"])
    return ModelInfo.from_header(header, source)


def is_dynamic(proto: Any) -> bool:
    """True if the model's input has any symbolic dimension."""
    dims = proto.graph.input[0].type.tensor_type.shape.dim
    return any(not d.HasField("dim_value") for d in dims)


# ----- export ------------------------------------------------------------------------------------------------------
def to_onnx_bytes(model: StandaloneModel, input_hw: tuple[int, int], *, opset: int = DEFAULT_OPSET,
                  dynamic: bool = False) -> bytes:
    """The ONNX graph of the folded eval-mode `model` (no metadata), traced on a (1, 3, H, W) input."""
    check_opset(opset)
    model = deployable(model)
    example = torch.zeros(1, 3, *input_hw)
    axes = {0: "batch", 2: "height", 3: "width"}
    dynamic_axes = {INPUT_NAME: axes, OUTPUT_NAME: axes} if dynamic else None
    buffer = io.BytesIO()
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        torch.onnx.export(model, (example,), buffer, dynamo=False, input_names=[INPUT_NAME],
                          output_names=[OUTPUT_NAME], opset_version=opset, do_constant_folding=True,
                          dynamic_axes=dynamic_axes)
    return buffer.getvalue()


def with_metadata(onnx_bytes: bytes, metadata: Mapping[str, str]) -> bytes:
    """The same model with `metadata` set in metadata_props (replacing entries of the same key); checked."""
    import onnx

    proto = onnx.load_model_from_string(onnx_bytes)
    kept = [p for p in proto.metadata_props if p.key not in metadata]
    del proto.metadata_props[:]
    proto.metadata_props.extend(kept)
    for key, value in metadata.items():
        proto.metadata_props.add(key=key, value=value)
    proto.producer_name = "inas"
    onnx.checker.check_model(proto)
    return proto.SerializeToString()


def check_shapes(input_hw: tuple[int, int], dynamic: bool) -> list[tuple[int, int, int, int]]:
    """Input shapes the export check runs: (1, 3, H, W); with dynamic axes also (2, 3, H + 32, W + 64)."""
    h, w = input_hw
    shapes = [(1, 3, h, w)]
    if dynamic:
        shapes.append((2, 3, h + 32, w + 64))
    return shapes


def check_images(shape: tuple[int, int, int, int], generator: torch.Generator) -> Tensor:
    """Image-like inputs (N, 3, H, W): N(0, 1) noise at 1/8 resolution upsampled bilinearly, plus 0.1 x white
    noise (spatially correlated like a normalised photo)."""
    n, c, h, w = shape
    coarse = torch.randn(n, c, max(1, h // 8), max(1, w // 8), generator=generator)
    smooth = F.interpolate(coarse, size=(h, w), mode="bilinear", align_corners=False)
    return smooth + 0.1 * torch.randn(shape, generator=generator)


def compare_with_torch(model: StandaloneModel, session: Any, shapes: list[tuple[int, int, int, int]],
                       tolerance: float = DEFAULT_TOLERANCE, seed: int = 0) -> ExportCheck:
    """Run `model` (PyTorch) and the onnxruntime `session` on the same seeded `check_images` of each shape."""
    model = deployable(model)
    gen = torch.Generator().manual_seed(seed)
    diffs = []
    input_name = session.get_inputs()[0].name
    for shape in shapes:
        images = check_images(shape, gen)
        with torch.inference_mode():
            expected = model(images).contiguous().numpy()
        got = session.run(None, {input_name: images.numpy()})[0]
        if got.shape != expected.shape:
            raise ExportMismatchError(f"onnxruntime output shape {got.shape} != PyTorch {expected.shape} for "
                                      f"input {shape}")
        diffs.append((tuple(shape), float(np.abs(got - expected).max())))
    return ExportCheck(max(d for _, d in diffs), tuple(diffs), tolerance)


def export_onnx(model: StandaloneModel, info: ModelInfo, path: str | Path, *, input_hw: tuple[int, int] | None = None,
                opset: int = DEFAULT_OPSET, dynamic: bool = False, tolerance: float = DEFAULT_TOLERANCE,
                threads: int | None = None) -> ExportResult:
    """Export `model` to `path` (see the module docstring). `input_hw` defaults to `info.input_hw` and is stored as
    the model's input size. Raises ExportMismatchError (nothing written) if the check fails."""
    from inas.deploy.runtime import ort_session

    input_hw = check_input_hw(info.input_hw if input_hw is None else input_hw)
    if input_hw != info.input_hw:
        info = ModelInfo(info.space, info.arch, info.task, info.num_classes, info.head_activation, input_hw,
                         info.output_levels, info.conversion)
    data = with_metadata(to_onnx_bytes(model, input_hw, opset=opset, dynamic=dynamic), onnx_metadata(info, dynamic))
    session = ort_session(data, threads=threads)
    check = compare_with_torch(model, session, check_shapes(input_hw, dynamic), tolerance)
    if not check.passed:
        detail = ", ".join(f"{shape}: {diff:.3g}" for shape, diff in check.diffs)
        raise ExportMismatchError(f"onnxruntime differs from PyTorch by {check.max_abs_diff:.3g} > tolerance "
                                  f"{tolerance:g} ({detail}); {path} was not written")
    atomic_write_bytes(path, data)
    return ExportResult(str(path), len(data), opset, dynamic, input_hw, check)

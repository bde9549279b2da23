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
  `inas.head_activation`, `inas.output_levels`, `inas.conversion`, `inas.dynamic_axes`, `inas.precision` and for
  INT8 `inas.quantization` (see `inas.deploy.onnx_metadata`, whose `read_metadata` validates them all).
  `read_onnx_info` rebuilds the `ModelInfo`, so `test` and `predict` need only the ONNX file.
- INT8 (`int8=Calibration`): the FP32 graph statically quantised to QDQ INT8 by onnxruntime (`inas.runtimes.quantize`:
  per-channel INT8 weights, UINT8 activations, MinMax calibration on the given images). OpenVINO IR
  (`export_openvino`): the fixed-size graph read by OpenVINO (NNCF-quantised with `int8`), metadata in rt_info.
- Check: onnxruntime vs PyTorch on seeded random image-like inputs (`inas.runtimes.calibration.check_images`: smooth
  noise, the statistics of a normalised photo; batch 1 at the export size, with `dynamic` also batch 2 at a larger
  size); the largest absolute difference must be <= `tolerance`, else `ExportMismatchError` and no file is written.
  (White noise is a poor probe: BN statistics calibrated on images do not normalise it, activations grow ~100x, and
  float32 rounding differences between the runtimes grow with them to ~1e-4 even for a correct export.) INT8 models
  are checked on the mean |difference| as a share of the output range instead (`DEFAULT_INT8_TOLERANCE`). Written
  atomically.
"""

from __future__ import annotations

import copy
import io
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from inas.deploy.model_file import ModelInfo
from inas.deploy.onnx_metadata import Quantization, metadata_entries, read_onnx_metadata
from inas.errors import BadInputError
from inas.io import atomic_write_bytes
from inas.nn import StandaloneModel
from inas.runtimes.calibration import Calibration, check_images

DEFAULT_OPSET = 17
MIN_OPSET = 11  # Resize with align_corners
MAX_OPSET = 20  # the TorchScript exporter's newest opset (torch 2.x)
INPUT_NAME = "image"
OUTPUT_NAME = "map"
DEFAULT_TOLERANCE = 1e-4
# INT8 models: largest allowed MEAN |INT8 - PyTorch FP32| over the check inputs, as a share of the FP32 output's
# range. 8-bit activations round each tensor to ~1/255 of its range and the errors add up over ~60 layers: a tiny
# random-weight model measured 0.08-0.18 here, so this bound catches a broken quantisation, not a small accuracy
# loss; what INT8 costs in accuracy is the metric drop that `test` reports against the FP32 model.
DEFAULT_INT8_TOLERANCE = 0.25


class ExportMismatchError(RuntimeError):
    """onnxruntime's output differs from PyTorch's by more than the tolerance (an exporter or runtime defect)."""


@dataclass(frozen=True)
class ExportCheck:
    """Outcome of the onnxruntime vs PyTorch comparison: the largest |difference| per checked input shape."""

    max_abs_diff: float  # the largest `statistic` over the checked shapes
    diffs: tuple[tuple[tuple[int, int, int, int], float], ...]
    tolerance: float
    statistic: str = "max |diff|"

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


# ----- metadata (see inas.deploy.onnx_metadata) --------------------------------------------------------------------
def onnx_metadata(info: ModelInfo, dynamic: bool, quantization: Quantization | None = None) -> dict[str, str]:
    """`metadata_props` entries (values JSON) describing the model."""
    return metadata_entries(info, dynamic, quantization)


def read_onnx_info(proto: Any, source: str | None = None) -> ModelInfo:
    """The ModelInfo stored by `export_onnx` in an onnx.ModelProto; BadInputError if it is not our export."""
    return read_onnx_metadata(proto, source).info


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
        # torch's stub names only paths for `f`, but the exporter writes to any binary file object
        torch.onnx.export(model, (example,), buffer, dynamo=False, input_names=[INPUT_NAME],  # type: ignore[arg-type]
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


def compare_runs(model: StandaloneModel, run: Callable[[np.ndarray], np.ndarray],
                 shapes: list[tuple[int, int, int, int]], tolerance: float, seed: int = 0,
                 int8: bool = False) -> ExportCheck:
    """PyTorch vs `run` (images (N, 3, H, W) -> maps) on seeded `check_images` of each shape: the largest
    |difference|, or for `int8` the mean |difference| as a share of the PyTorch output's range."""
    model = deployable(model)
    gen = torch.Generator().manual_seed(seed)
    diffs: list[tuple[tuple[int, int, int, int], float]] = []
    for shape in shapes:
        images = check_images(shape, gen)
        with torch.inference_mode():
            expected = model(images).contiguous().numpy()
        got = np.asarray(run(images.numpy()))
        if got.shape != expected.shape:
            raise ExportMismatchError(f"the exported model's output shape {got.shape} != PyTorch {expected.shape} "
                                      f"for input {shape}")
        error = np.abs(got - expected)
        span = float(expected.max() - expected.min()) or 1.0
        key = (shape[0], shape[1], shape[2], shape[3])  # a tuple even when a list was passed
        diffs.append((key, float(error.mean() / span) if int8 else float(error.max())))
    return ExportCheck(max(d for _, d in diffs), tuple(diffs), tolerance,
                       "mean |diff| / output range" if int8 else "max |diff|")


def _checked(check: ExportCheck, path: str | Path) -> ExportCheck:
    if not check.passed:
        detail = ", ".join(f"{shape}: {diff:.3g}" for shape, diff in check.diffs)
        raise ExportMismatchError(f"the exported model differs from PyTorch: {check.statistic} "
                                  f"{check.max_abs_diff:.3g} > tolerance {check.tolerance:g} ({detail}); {path} was "
                                  "not written")
    return check


def _with_input_hw(info: ModelInfo, input_hw: tuple[int, int] | None) -> ModelInfo:
    input_hw = check_input_hw(info.input_hw if input_hw is None else input_hw)
    if input_hw == info.input_hw:
        return info
    return ModelInfo(info.space, info.arch, info.task, info.num_classes, info.head_activation, input_hw,
                     info.output_levels, info.conversion)


def _feeds(calibration: Calibration, name: str = INPUT_NAME) -> list[dict[str, np.ndarray]]:
    return [{name: calibration.samples[k : k + 1]} for k in range(len(calibration.samples))]


def export_onnx(model: StandaloneModel, info: ModelInfo, path: str | Path, *, input_hw: tuple[int, int] | None = None,
                opset: int = DEFAULT_OPSET, dynamic: bool = False, tolerance: float | None = None,
                threads: int | None = None, int8: Calibration | None = None, fp32_model: str = "") -> ExportResult:
    """Export `model` to `path` (see the module docstring). `input_hw` defaults to `info.input_hw` and is stored as
    the model's input size. With `int8` (calibration images at the input size), the graph is quantised to QDQ INT8
    (`inas.runtimes.quantize`) and the metadata says so (`fp32_model`: the FP32 model it comes from). Raises
    ExportMismatchError (nothing written) if the check fails; `tolerance` defaults to DEFAULT_TOLERANCE (FP32) or
    DEFAULT_INT8_TOLERANCE (INT8)."""
    from inas.deploy.runtime import ort_session

    info = _with_input_hw(info, input_hw)
    data = to_onnx_bytes(model, info.input_hw, opset=opset, dynamic=dynamic)
    quant = None
    if int8 is not None:
        from inas.runtimes.quantize import cpu_lacks_vnni, quantize_onnx_int8, weight_range_note

        reduce_range = cpu_lacks_vnni()
        data = quantize_onnx_int8(data, _feeds(int8), reduce_range=reduce_range)
        quant = Quantization("onnxruntime-qdq", weight_range_note(reduce_range), "uint8 per-tensor", int8.source,
                             len(int8.samples), fp32_model)
    data = with_metadata(data, onnx_metadata(info, dynamic, quant))
    session = ort_session(data, threads=threads)
    tolerance = tolerance if tolerance is not None else DEFAULT_INT8_TOLERANCE if int8 is not None \
        else DEFAULT_TOLERANCE
    run = lambda x: session.run(None, {INPUT_NAME: x})[0]
    check = _checked(compare_runs(model, run, check_shapes(info.input_hw, dynamic), tolerance, int8=quant is not None),
                     path)
    atomic_write_bytes(path, data)
    return ExportResult(str(path), len(data), opset, dynamic, info.input_hw, check)


def export_openvino(model: StandaloneModel, info: ModelInfo, path: str | Path, *,
                    input_hw: tuple[int, int] | None = None, opset: int = DEFAULT_OPSET,
                    tolerance: float | None = None, threads: int | None = None, int8: Calibration | None = None,
                    fp32_model: str = "") -> ExportResult:
    """Export `model` to an OpenVINO IR at `path` (.xml, weights in the .bin beside it) from its fixed-size ONNX
    graph, quantised by NNCF with `int8`; the `inas.*` entries go into the IR's rt_info. Checked like
    `export_onnx` on the OpenVINO CPU plugin; needs the `[openvino]` extra."""
    from inas.runtimes.ov_runtime import compile_cpu, nncf_int8, ov_model_from_onnx, require_openvino, save_ir

    require_openvino(int8=int8 is not None, key="--format")
    path = Path(path)
    if path.suffix != ".xml":
        raise BadInputError("an OpenVINO IR is written as NAME.xml (+ NAME.bin)", path=path, key="--out")
    info = _with_input_hw(info, input_hw)
    ov_model = ov_model_from_onnx(to_onnx_bytes(model, info.input_hw, opset=opset))
    quant = None
    if int8 is not None:
        ov_model = nncf_int8(ov_model, _feeds(int8, ov_model.inputs[0].get_any_name()))
        quant = Quantization("nncf-ptq", "int8 per-channel", "int8 per-tensor", int8.source, len(int8.samples),
                             fp32_model)
    for key, value in onnx_metadata(info, False, quant).items():
        ov_model.set_rt_info(value, ["inas", key])
    request = compile_cpu(ov_model, threads or torch.get_num_threads()).create_infer_request()
    tolerance = tolerance if tolerance is not None else DEFAULT_INT8_TOLERANCE if int8 is not None \
        else DEFAULT_TOLERANCE
    check = _checked(compare_runs(model, lambda x: request.infer([x])[0], check_shapes(info.input_hw, False),
                                  tolerance, int8=quant is not None), path)
    path.parent.mkdir(parents=True, exist_ok=True)
    save_ir(ov_model, path)
    size = path.stat().st_size + path.with_suffix(".bin").stat().st_size
    return ExportResult(str(path), size, opset, False, info.input_hw, check)

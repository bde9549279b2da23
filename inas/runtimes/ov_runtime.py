"""OpenVINO (CPU plugin) helpers, used only when the optional `[openvino]` extra is installed.

- `ov_model_from_onnx(bytes)` converts an ONNX graph into an `openvino.Model` with `openvino.convert_model`, whose
  MOC transformations fuse the exported `x * sigmoid(x)` into Swish and fold the shape arithmetic, so NNCF sees
  Convolution -> Swish and quantises around the pair. `Core.read_model` (used before 2026-12-03) leaves Sigmoid +
  Multiply for NNCF, which puts quantisers between them: the swish then runs as separate FP32 element-wise layers
  and the INT8 network was slower than FP32 (one full-space network at 320 px, 1 thread, interleaved, under load:
  INT8 53.3 ms after read_model, 41.1-41.4 ms after convert_model, FP32 46.6-47.3 ms either way; outputs equal);
- `nncf_int8(model, feeds)` quantises it with NNCF post-training quantisation (default preset: symmetric
  INT8 weights and activations, MinMax-style statistics over the feeds);
- `compile_cpu(model, threads)` compiles it for the CPU plugin: `INFERENCE_NUM_THREADS=threads`, one stream, the
  latency hint and `INFERENCE_PRECISION_HINT=f32` (without it the plugin runs BF16 on CPUs that offer it, and the
  "FP32" target would not be FP32); INT8 layers of a quantised model stay INT8;
- `save_ir(model, path.xml)` writes the IR pair (xml + bin, weights uncompressed).
"""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from inas.errors import BadInputError

OPENVINO_EXTRA = 'pip install -e ".[openvino]"'


def openvino_missing(int8: bool = False) -> str | None:
    """None if OpenVINO (and NNCF for `int8`) can be imported here, else one line naming the extra to install."""
    packages = ["openvino", "nncf"] if int8 else ["openvino"]
    for package in packages:
        try:
            __import__(package)
        except ImportError:
            return f"needs the {package!r} package, which is not installed here; install the extra: {OPENVINO_EXTRA}"
    return None


def require_openvino(int8: bool = False, **where: Any) -> None:
    """BadInputError (one line, naming the extra) unless OpenVINO (and NNCF for `int8`) is installed."""
    problem = openvino_missing(int8)
    if problem:
        raise BadInputError(problem, **where)


def ov_model_from_onnx(onnx_bytes: bytes) -> Any:
    """An `openvino.Model` of the ONNX graph, converted (and fused) by `openvino.convert_model`."""
    import openvino as ov

    with tempfile.TemporaryDirectory(prefix="inas-ov-") as tmp:
        path = Path(tmp, "model.onnx")
        path.write_bytes(onnx_bytes)
        return ov.convert_model(str(path))


def nncf_int8(model: Any, feeds: Sequence[dict[str, np.ndarray]]) -> Any:
    """NNCF post-training INT8 quantisation of an openvino.Model, statistics from `feeds` (one per sample)."""
    import nncf

    nncf.set_log_level(logging.ERROR)
    names = [port.get_any_name() for port in model.inputs]
    items = [[feed[name] for name in names] for feed in feeds]
    return nncf.quantize(model, nncf.Dataset(items), subset_size=len(items))


def compile_cpu(model: Any, threads: int, performance_counters: bool = False) -> Any:
    """A CompiledModel on the CPU plugin (see the module docstring for the settings); `performance_counters`:
    per-layer times in each request's `profiling_info` (for profiling, not timing)."""
    import openvino as ov

    config = {"INFERENCE_NUM_THREADS": int(threads), "NUM_STREAMS": 1, "PERFORMANCE_HINT": "LATENCY",
              "INFERENCE_PRECISION_HINT": "f32", "PERF_COUNT": bool(performance_counters)}
    return ov.Core().compile_model(model, "CPU", config)


def read_ir(path: str | Path) -> Any:
    import openvino as ov

    return ov.Core().read_model(str(path))


def save_ir(model: Any, path: str | Path) -> None:
    """Write `path` (.xml) and its .bin beside it (FP32 weights kept as they are)."""
    import openvino as ov

    ov.save_model(model, str(path), compress_to_fp16=False)

"""Static post-training INT8 quantisation of an ONNX graph with `onnxruntime.quantization` (QDQ format).

Settings: `quant_pre_process` first (shape inference, constant folding), then `quantize_static` with the QDQ
format, per-channel symmetric INT8 weights, unsigned 8-bit activations (U8S8: the x86 VNNI fast path of
onnxruntime's MLAS kernels; S8S8 measured 2.4x slower on an MBConv block here), MinMax calibration on the given
samples, one forward pass per sample. onnxruntime fuses the Q/DQ pairs into QLinearConv & co. when it loads the
model. On an x86 CPU without VNNI (AVX-512 VNNI, AVX-VNNI or AMX), MLAS multiplies U8S8 with instructions whose
16-bit sums saturate, so there the weights are quantised to a 7-bit range (`reduce_range`, onnxruntime's advice for
such CPUs): measured on a 2-core AMD EPYC without VNNI, quantised blocks (stem, MBConv, decoder fusion) were off
their FP32 outputs by 10-13 % of the output range with 8-bit weights and 1-2 % with 7-bit ones.
"""

from __future__ import annotations

import logging
import platform
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

CALIBRATION_SAMPLES = 8  # default number of calibration samples


VNNI_FLAGS = ("avx512_vnni", "avx_vnni", "amx_int8")


def cpu_lacks_vnni(cpuinfo: str | None = None) -> bool:
    """True on an x86 CPU whose flags (`/proc/cpuinfo`, or `cpuinfo`) name none of VNNI_FLAGS; False elsewhere or
    when the flags cannot be read."""
    if cpuinfo is None:
        if platform.machine().lower() not in ("x86_64", "amd64", "i686", "i386"):
            return False
        try:
            cpuinfo = Path("/proc/cpuinfo").read_text()
        except OSError:
            return False
    flag_lines = [line for line in cpuinfo.splitlines() if line.startswith("flags")]
    if not flag_lines:
        return False
    flags = set(flag_lines[0].split(":", 1)[-1].split())
    return not flags.intersection(VNNI_FLAGS)


def weight_range_note(reduce_range: bool) -> str:
    """How the weights were quantised, for a model's metadata."""
    return "int8 per-channel, 7-bit range (CPU without VNNI)" if reduce_range else "int8 per-channel"


class _Feeds:
    """An onnxruntime CalibrationDataReader over a list of {input name: array} feeds."""

    def __init__(self, feeds: Sequence[dict[str, np.ndarray]]) -> None:
        self._it = iter(feeds)

    def get_next(self) -> dict[str, np.ndarray] | None:
        return next(self._it, None)


def quantize_onnx_int8(onnx_bytes: bytes, feeds: Sequence[dict[str, np.ndarray]], *, operator_format: bool = False,
                       signed_activations: bool = False, per_channel: bool = True, reduce_range: bool | None = None,
                       **options: Any) -> bytes:
    """The QDQ INT8 version of an FP32 ONNX model (per-channel INT8 weights, UINT8 activations), calibrated on
    `feeds` (batch-1 input feeds). `reduce_range`: 7-bit weights; None: when this CPU lacks VNNI. For experiments
    (`benchmarks/bench_int8_variants.py`): `operator_format` writes the QOperator format instead of QDQ,
    `signed_activations` INT8 activations, `per_channel=False` one weight scale per tensor, and `options` go to
    `quantize_static` (e.g. `op_types_to_quantize`, `nodes_to_exclude`: node names of the pre-processed graph,
    `preprocessed_graph(onnx_bytes)`)."""
    import onnxruntime as ort
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static

    if not feeds:
        raise ValueError("quantisation needs at least one calibration feed")

    class Reader(_Feeds, CalibrationDataReader):
        pass

    ort.set_default_logger_severity(3)  # the pre-processing session warns about initializers it drops
    quant_log = logging.getLogger()  # onnxruntime.quantization warns through the root logger
    level = quant_log.level
    quant_log.setLevel(logging.ERROR)
    try:
        with tempfile.TemporaryDirectory(prefix="inas-int8-") as tmp:
            pre, out = _preprocessed(onnx_bytes, tmp), Path(tmp, "int8.onnx")
            quantize_static(str(pre), str(out), Reader(feeds),
                            quant_format=QuantFormat.QOperator if operator_format else QuantFormat.QDQ,
                            per_channel=per_channel,
                            activation_type=QuantType.QInt8 if signed_activations else QuantType.QUInt8,
                            weight_type=QuantType.QInt8,
                            reduce_range=cpu_lacks_vnni() if reduce_range is None else reduce_range, **options)
            return out.read_bytes()
    finally:
        quant_log.setLevel(level)


def _preprocessed(onnx_bytes: bytes, tmp: str) -> Path:
    """`quant_pre_process` (shape inference, constant folding) of the model, written to `tmp`/pre.onnx."""
    from onnxruntime.quantization.shape_inference import quant_pre_process

    fp32, pre = Path(tmp, "fp32.onnx"), Path(tmp, "pre.onnx")
    fp32.write_bytes(onnx_bytes)
    quant_pre_process(str(fp32), str(pre))
    return pre


def preprocessed_graph(onnx_bytes: bytes) -> Any:
    """The onnx GraphProto that `quantize_onnx_int8` quantises (after `quant_pre_process`): its node names are the
    ones `nodes_to_exclude` refers to."""
    import onnx

    with tempfile.TemporaryDirectory(prefix="inas-int8-") as tmp:
        return onnx.load(str(_preprocessed(onnx_bytes, tmp))).graph

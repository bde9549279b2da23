"""Measuring backends: build a block (or a whole stand-alone network) with random weights, run it on a runtime,
time it.

- `onnxruntime` (default): the module (eval mode, SMSUs folded) is exported to ONNX with the TorchScript exporter
  (opset 17, BN folded into convs) and run by an onnxruntime `InferenceSession` with `intra_op_num_threads=threads`,
  `inter_op_num_threads=1`, sequential execution, all graph optimisations. `onnxruntime-cuda` uses the CUDA
  execution provider.
- `onnxruntime-int8`: the same ONNX graph statically quantised to QDQ INT8 (`inas.runtimes.quantize`: per-channel
  INT8 weights, UINT8 activations) and run by the same kind of session. Calibration: the runner's `calibration`
  images for inputs of image shape (3, H, W) (the stem block, whole networks), seeded image-like noise otherwise
  (the inputs of inner blocks; random-weight blocks have no "real" activations); each table row says which
  (`calibration`). INT8 kernel time does not depend on the calibrated scales, only on the graph.
- `openvino`: the ONNX graph read by OpenVINO and compiled for its CPU plugin in FP32 (`inas.runtimes.ov_runtime`);
  `openvino-int8`: the OpenVINO model quantised by NNCF post-training quantisation first (same calibration data).
  Both need the optional extra `pip install -e ".[openvino]"`; `check()` says so before any work.
- `torch`: eager PyTorch, `torch.inference_mode()`, `torch.set_num_threads(threads)`. `torch-cuda` on the GPU,
  synchronised around every timed run.

Every timed run is one forward pass of `batch` images, timed with `time.perf_counter_ns`; `warmup` untimed runs come
first. Blocks and whole networks go through the same export and session code, so their times are comparable.
On a shared machine other processes preempt the measuring thread and inflate long runs far more than short ones
(a 10 ms network is preempted far more often than a 50 µs block); single-thread CPU timings can drop such runs
(`drop_preempted`, see `Runner.time_callable`).
"""

from __future__ import annotations

import io
import platform
import socket
import statistics
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from inas.latency.blocks import BlockKey
from inas.runtimes.calibration import RANDOM_SOURCE, Calibration, random_calibration
from inas.runtimes.quantize import CALIBRATION_SAMPLES

BACKENDS: tuple[str, ...] = ("onnxruntime", "onnxruntime-int8", "onnxruntime-cuda", "openvino", "openvino-int8",
                             "torch", "torch-cuda")
INT8_BACKENDS: tuple[str, ...] = ("onnxruntime-int8", "openvino-int8")
ONNX_OPSET = 17
PREEMPTION_ATTEMPTS = 10  # at most this many x `runs` timed runs when dropping preempted ones


@dataclass(frozen=True)
class Timing:
    """Statistics of the timed runs, milliseconds per forward pass."""

    median_ms: float
    mean_ms: float
    std_ms: float
    runs: int
    dropped: int = 0  # timed runs left out because another process preempted them
    iqr_ms: float = 0.0  # interquartile range of the timed runs (the spread the table keeps)

    @classmethod
    def of(cls, times_ns: Sequence[int], dropped: int = 0) -> Timing:
        ms = [t / 1e6 for t in times_ns]
        std = statistics.pstdev(ms) if len(ms) > 1 else 0.0
        q1, q3 = np.percentile(ms, [25, 75])
        return cls(statistics.median(ms), statistics.fmean(ms), std, len(ms), dropped, float(q3 - q1))


def _version(package: str) -> str:
    try:
        return str(__import__(package).__version__)
    except ImportError:
        return ""


def software_versions() -> dict[str, str]:
    """torch, onnxruntime, OpenVINO and Python versions of this process ("" if not installed), and the host name."""
    return {"torch_version": torch.__version__, "onnxruntime_version": _version("onnxruntime"),
            "openvino_version": _version("openvino"), "python_version": platform.python_version(),
            "host": socket.gethostname()}


def reference_block(input_hw: tuple[int, int]) -> BlockKey:
    """The fixed block timed periodically during a build and between validation networks, to make drift of the
    machine visible: a stride-1 MBConv 24 -> 24, kernel 3, expansion 3, at 1/4 of the input resolution."""
    h, w = input_hw[0] // 4, input_hw[1] // 4
    return BlockKey("mbconv", 24, 24, h, w, h, w, stride=1, kernel=3, expand_ratio=3)


def head_activation(num_classes: int) -> str | None:
    """The stand-alone model's default ('auto') head activation: sigmoid for one class, none otherwise."""
    return "sigmoid" if num_classes == 1 else None


def build_block(key: BlockKey) -> nn.Module:
    """The stand-alone module of a block, randomly initialised, kernel set {key.kernel} folded, eval mode."""
    from inas.nn import (
        DecoderFusion,
        DecoderUpsample,
        Head,
        MBConvLayer,
        Stem,
        TransportDownsample,
        TransportFusion,
        TransportUpsample,
        reparameterize_all,
    )

    kind = key.kind
    level_diff = int(round(np.log2(max(key.out_h / key.in_h, key.in_h / key.out_h))))
    if kind == "stem":
        module: nn.Module = Stem(key.out_channels)
    elif kind == "mbconv":
        module = MBConvLayer(key.in_channels, key.out_channels, key.stride, key.expand_ratio, (key.kernel,))
    elif kind in ("transport_identity", "decoder_identity"):
        module = nn.Identity()
    elif kind == "transport_up":
        module = TransportUpsample(level_diff, key.in_channels, key.out_channels)
    elif kind == "transport_down":
        module = TransportDownsample(level_diff, key.in_channels, key.out_channels)
    elif kind == "decoder_up":
        module = DecoderUpsample(level_diff, key.in_channels, key.out_channels)
    elif kind == "transport_fusion":
        module = TransportFusion(key.out_channels, (key.kernel,))
    elif kind == "decoder_fusion":
        module = DecoderFusion(key.out_channels, (key.kernel,))
    elif kind == "head":
        module = Head(key.in_channels, key.out_channels, level_diff - 1, head_activation(key.out_channels))
    else:  # pragma: no cover - BlockKey validates kinds
        raise ValueError(f"unknown block kind {kind!r}")
    _randomise_batchnorm(module)
    return reparameterize_all(module).eval()


def _randomise_batchnorm(module: nn.Module) -> None:
    """Give BN layers non-trivial statistics (a fresh BN has gamma 1 or 0): folded weights then look trained."""
    gen = torch.Generator().manual_seed(0)
    for m in module.modules():
        if isinstance(m, nn.BatchNorm2d):
            with torch.no_grad():
                m.weight.copy_(torch.rand(m.num_features, generator=gen) + 0.5)
                m.running_var.copy_(torch.rand(m.num_features, generator=gen) + 0.5)


def block_inputs(key: BlockKey, batch: int) -> list[Tensor]:
    """Example inputs of a block: one (batch, C, H, W) tensor, or `fusion` of them for fusion blocks."""
    count = key.fusion if key.kind.endswith("_fusion") else 1
    gen = torch.Generator().manual_seed(1)
    return [torch.randn(batch, key.in_channels, key.in_h, key.in_w, generator=gen) for _ in range(count)]


class _ListInput(nn.Module):
    """Calls a fusion block with its inputs as a list, so the ONNX graph has one input per branch."""

    def __init__(self, block: nn.Module) -> None:
        super().__init__()
        self.block = block

    def forward(self, *xs: Tensor) -> Tensor:
        return self.block(list(xs))


def export_onnx(module: nn.Module, inputs: Sequence[Tensor], list_input: bool = False) -> bytes:
    """ONNX bytes of an eval-mode module (TorchScript exporter, opset 17); inputs named x0, x1, ..., output `y`."""
    model = _ListInput(module) if list_input else module
    buf = io.BytesIO()
    names = [f"x{i}" for i in range(len(inputs))]
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        torch.onnx.export(model, tuple(inputs), buf, dynamo=False, input_names=names, output_names=["y"],
                          opset_version=ONNX_OPSET, do_constant_folding=True)
    return buf.getvalue()


class Runner:
    """Times modules on one backend with a fixed thread count; `check()` says why it cannot run here, if so.
    `calibration`: images (N, 3, H, W) that INT8 backends calibrate inputs of that shape on (else random data)."""

    def __init__(self, backend: str, threads: int, drop_preempted: bool = False,
                 calibration: Calibration | None = None) -> None:
        if backend not in BACKENDS:
            raise ValueError(f"unknown backend {backend!r}; expected one of {list(BACKENDS)}")
        self.backend = backend
        self.threads = threads
        self.drop_preempted = drop_preempted
        self.calibration = calibration
        self._converted: dict[str, Any] = {}  # cache_key -> converted (quantised) network
        if backend.startswith("torch"):
            torch.set_num_threads(threads)
        else:
            torch.set_num_threads(1)  # only exports run in torch

    def check(self) -> str | None:
        """None if the backend can run on this machine, else the reason."""
        if self.backend == "torch-cuda" and not torch.cuda.is_available():
            return "backend 'torch-cuda' needs a CUDA GPU, but torch.cuda.is_available() is False on this node"
        if self.backend.startswith("onnxruntime"):
            try:
                import onnxruntime
            except ImportError:
                return "backend needs the onnxruntime package, which is not installed on this node"
            providers = onnxruntime.get_available_providers()
            if self.backend == "onnxruntime-cuda" and "CUDAExecutionProvider" not in providers:
                return ("backend 'onnxruntime-cuda' needs onnxruntime-gpu with the CUDAExecutionProvider; available "
                        f"providers: {providers}")
        if self.backend.startswith("openvino"):
            from inas.runtimes.ov_runtime import openvino_missing

            problem = openvino_missing(int8=self.backend == "openvino-int8")
            return f"backend {self.backend!r} {problem}" if problem else None
        return None

    @property
    def uses_onnx(self) -> bool:
        """True if the backend runs an ONNX export (onnxruntime and OpenVINO), False for eager PyTorch."""
        return not self.backend.startswith("torch")

    def calibration_source(self, inputs: Sequence[Tensor]) -> str:
        """What INT8 backends calibrate `inputs` on: "images:<list>" or "random"; "" for FP32 backends."""
        if self.backend not in INT8_BACKENDS:
            return ""
        calib = self.calibration
        if calib is not None and all(tuple(x.shape[1:]) == calib.shape for x in inputs):
            return calib.source
        return RANDOM_SOURCE

    def calibration_feeds(self, inputs: Sequence[Tensor]) -> list[dict[str, np.ndarray]]:
        """CALIBRATION_SAMPLES feeds shaped like `inputs` (same batch): images where they fit, else random."""
        samples = []
        for i, x in enumerate(inputs):
            shape = tuple(int(s) for s in x.shape[1:])
            calib = self.calibration
            if calib is None or calib.shape != shape:
                calib = random_calibration(shape, CALIBRATION_SAMPLES * x.shape[0], seed=i)
            reps = -(-CALIBRATION_SAMPLES * x.shape[0] // len(calib.samples))
            samples.append(np.concatenate([calib.samples] * reps)[: CALIBRATION_SAMPLES * x.shape[0]])
        batch = inputs[0].shape[0]
        return [{f"x{i}": np.ascontiguousarray(s[k * batch : (k + 1) * batch]) for i, s in enumerate(samples)}
                for k in range(CALIBRATION_SAMPLES)]

    def convert(self, onnx_bytes: bytes, inputs: Sequence[Tensor]) -> Any:
        """What the backend loads: the ONNX bytes (onnxruntime; quantised for onnxruntime-int8) or an
        openvino.Model (quantised by NNCF for openvino-int8). `inputs` shape the calibration data."""
        if self.backend.startswith("onnxruntime"):
            if self.backend != "onnxruntime-int8":
                return onnx_bytes
            from inas.runtimes.quantize import quantize_onnx_int8

            return quantize_onnx_int8(onnx_bytes, self.calibration_feeds(inputs))
        from inas.runtimes.ov_runtime import nncf_int8, ov_model_from_onnx

        model = ov_model_from_onnx(onnx_bytes)
        return nncf_int8(model, self.calibration_feeds(inputs)) if self.backend == "openvino-int8" else model

    def session(self, onnx_bytes: bytes):
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = self.threads
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.log_severity_level = 3
        providers = ["CUDAExecutionProvider", "CPUExecutionProvider"] if self.backend == "onnxruntime-cuda" \
            else ["CPUExecutionProvider"]
        return ort.InferenceSession(onnx_bytes, options, providers=providers)

    def load(self, converted: Any, inputs: Sequence[Tensor]) -> Callable[[], object]:
        """A zero-argument callable running a `convert`ed model on `inputs`."""
        arrays = [np.ascontiguousarray(x.numpy()) for x in inputs]
        if self.backend.startswith("onnxruntime"):
            sess = self.session(converted)
            feed = {f"x{i}": a for i, a in enumerate(arrays)}
            return lambda: sess.run(None, feed)
        from inas.runtimes.ov_runtime import compile_cpu

        request = compile_cpu(converted, self.threads).create_infer_request()
        return lambda: request.infer(arrays)

    def prepare(self, module: nn.Module | None, inputs: Sequence[Tensor], list_input: bool = False,
                onnx_bytes: bytes | None = None):
        """A zero-argument callable running one forward pass (for `time_callable`); onnxruntime backends take the
        module's ONNX export, or `onnx_bytes` if given (so do OpenVINO backends)."""
        if self.uses_onnx:
            if onnx_bytes is None:
                onnx_bytes = export_onnx(module, inputs, list_input)
            return self.load(self.convert(onnx_bytes, inputs), inputs)
        device = torch.device("cuda" if self.backend == "torch-cuda" else "cpu")
        module = module.to(device)
        xs = [x.to(device) for x in inputs]
        arg = (xs,) if list_input else tuple(xs)

        def run() -> None:
            with torch.inference_mode():
                module(*arg)

        return run

    @property
    def filters_preempted(self) -> bool:
        """Preempted runs are detectable only where the forward pass runs on the calling thread alone."""
        return self.drop_preempted and self.threads == 1 and not self.backend.endswith("cuda")

    def time_callable(self, run, warmup: int, runs: int) -> Timing:
        """Time `runs` forward passes after `warmup` ones.

        With `filters_preempted`, a run during which the thread lost its core to another process (wall time exceeds
        the thread's CPU time by more than 5 % + 5 µs) is dropped and another run is timed instead, up to
        `PREEMPTION_ATTEMPTS` x runs in all; if fewer than `runs` clean runs come out, the clean ones are used if
        there are at least 5, else all runs. On a dedicated device nothing is dropped.
        """
        sync = torch.cuda.synchronize if self.backend == "torch-cuda" else (lambda: None)
        for _ in range(warmup):
            run()
        sync()
        if not self.filters_preempted:
            times = []
            for _ in range(runs):
                t0 = time.perf_counter_ns()
                run()
                sync()
                times.append(time.perf_counter_ns() - t0)
            return Timing.of(times)
        clean, every = [], []
        for _ in range(runs * PREEMPTION_ATTEMPTS):
            t0, c0 = time.perf_counter_ns(), time.thread_time_ns()
            run()
            cpu, wall = time.thread_time_ns() - c0, time.perf_counter_ns() - t0
            every.append(wall)
            if wall - cpu <= 0.05 * wall + 5_000:
                clean.append(wall)
                if len(clean) == runs:
                    break
        used = clean if len(clean) >= min(runs, 5) else every
        return Timing.of(used, dropped=len(every) - len(used))

    def measure(self, module: nn.Module, inputs: Sequence[Tensor], warmup: int, runs: int,
                list_input: bool = False) -> Timing:
        return self.time_callable(self.prepare(module, inputs, list_input), warmup, runs)

    def measure_block(self, key: BlockKey, batch: int, warmup: int, runs: int) -> Timing:
        """Time one block with random weights and inputs."""
        return self.measure(build_block(key), block_inputs(key, batch), warmup, runs,
                            list_input=key.kind.endswith("_fusion"))

    def measure_network(self, build: Callable[[], nn.Module], input_hw: tuple[int, int], batch: int, warmup: int,
                        runs: int, cache_key: str | None = None) -> Timing:
        """Time a whole stand-alone network (made by `build()`) on (batch, 3, H, W) random images. With
        `cache_key`, ONNX backends keep the converted (exported, quantised) network and reuse it when the same key
        is timed again."""
        inputs = network_inputs(input_hw, batch)
        if self.uses_onnx:
            converted = self._converted.get(cache_key) if cache_key else None
            if converted is None:
                converted = self.convert(export_onnx(build(), inputs), inputs)
                if cache_key:
                    self._converted[cache_key] = converted
            return self.time_callable(self.load(converted, inputs), warmup, runs)
        return self.time_callable(self.prepare(build(), inputs), warmup, runs)


def network_inputs(input_hw: tuple[int, int], batch: int) -> list[Tensor]:
    """The seeded random (batch, 3, H, W) images whole networks are timed on."""
    gen = torch.Generator().manual_seed(2)
    return [torch.randn(batch, 3, *input_hw, generator=gen)]


def build_network(space, arch, num_classes: int) -> nn.Module:
    """The deployed stand-alone model of `arch` (random weights, BN randomised, SMSUs folded, eval mode, level-0
    head only - the only one an eval-mode network computes)."""
    from inas.nn import StandaloneModel

    model = StandaloneModel.from_arch(space, arch, num_classes=num_classes, output_levels=(0,))
    _randomise_batchnorm(model)
    return model.reparameterize().eval()

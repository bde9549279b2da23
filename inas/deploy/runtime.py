"""Running a deployed model: one `Predictor` interface over PyTorch eager, onnxruntime (FP32 or INT8 ONNX) and
OpenVINO (IR .xml), and latency timing.

    predictor = load_predictor("model.pt")          # or "model.onnx" (FP32 or INT8), "model.xml" (OpenVINO IR)
    maps = predictor(images)                        # images (N, 3, H, W) float32 -> (N, K, H, W) float32 (CPU)
    predictor.info                                  # ModelInfo: arch, task, classes, input size, ...

onnxruntime sessions: CPU execution provider (CUDA first when the package has it and `device="cuda"`),
`intra_op_num_threads=threads` (default: torch's thread count, so both runtimes get the same cores),
`inter_op_num_threads=1`, sequential execution, graph optimisation level "all" unless told otherwise. ONNX files
are checked before loading (`inas.deploy.onnx_metadata.check_onnx_file`: no external data outside the model's
folder, no unknown operators). OpenVINO: CPU plugin, `threads` inference threads, FP32 precision hint (INT8 layers
of an NNCF model stay INT8); needs the `[openvino]` extra.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from inas.deploy.model_file import ModelInfo, detect_model_kind, load_model_file
from inas.deploy.onnx_export import deployable
from inas.deploy.onnx_metadata import ModelMetadata, check_onnx_file, read_metadata, read_onnx_metadata
from inas.errors import BadInputError
from inas.nn import StandaloneModel

OPTIMIZATION_LEVELS: tuple[str, ...] = ("disable", "basic", "extended", "all")


def ort_session(source: bytes | str | Path, *, threads: int | None = None, optimization: str = "all",
                device: str = "cpu") -> Any:
    """An onnxruntime InferenceSession for ONNX bytes or a file (see the module docstring for the options)."""
    import onnxruntime as ort

    if optimization not in OPTIMIZATION_LEVELS:
        raise ValueError(f"optimization must be one of {OPTIMIZATION_LEVELS}, got {optimization!r}")
    levels = {
        "disable": ort.GraphOptimizationLevel.ORT_DISABLE_ALL,
        "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
        "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
        "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
    }
    options = ort.SessionOptions()
    options.intra_op_num_threads = int(threads or torch.get_num_threads())
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = levels[optimization]
    options.log_severity_level = 3
    providers = ["CPUExecutionProvider"]
    if device == "cuda" and "CUDAExecutionProvider" in ort.get_available_providers():
        providers.insert(0, "CUDAExecutionProvider")
    data = source if isinstance(source, bytes) else str(source)
    return ort.InferenceSession(data, options, providers=providers)


class Predictor:
    """A deployed model: `__call__(images (N, 3, H, W) float32) -> maps (N, K, H, W) float32` on the CPU.

    `fixed_hw`: the only input size it accepts ((H, W)), or None if any multiple of 32 works.
    """

    backend: str = ""
    info: ModelInfo
    fixed_hw: tuple[int, int] | None = None
    metadata: ModelMetadata | None = None  # exported models: their validated inas.* entries

    @property
    def precision(self) -> str:
        """"int8" for a quantised model, else "fp32"."""
        return self.metadata.precision if self.metadata is not None else "fp32"

    def __call__(self, images: Tensor) -> Tensor:
        raise NotImplementedError


class TorchPredictor(Predictor):
    """PyTorch eager inference of a (folded) stand-alone model under `torch.inference_mode()`."""

    backend = "torch"

    def __init__(self, model: StandaloneModel, info: ModelInfo) -> None:
        self.model = deployable(model)
        self.info = info
        self.device = next(self.model.parameters()).device

    def __call__(self, images: Tensor) -> Tensor:
        with torch.inference_mode():
            out = self.model(images.to(self.device, torch.float32))
        return out.float().cpu().contiguous()


class OnnxPredictor(Predictor):
    """onnxruntime inference; a graph with a fixed batch of 1 is run image by image."""

    backend = "onnxruntime"

    def __init__(self, session: Any, info: ModelInfo, metadata: ModelMetadata | None = None) -> None:
        self.session = session
        self.info = info
        self.metadata = metadata
        if metadata is not None and metadata.precision == "int8":
            self.backend = "onnxruntime-int8"
        spec = session.get_inputs()[0]
        self.input_name = spec.name
        dims = list(spec.shape)
        if len(dims) != 4:
            raise BadInputError(f"expected a model with one (N, 3, H, W) input, got input shape {dims}")
        self.fixed_batch = dims[0] if isinstance(dims[0], int) else None
        self.fixed_hw = (dims[2], dims[3]) if isinstance(dims[2], int) and isinstance(dims[3], int) else None

    def _run(self, images: np.ndarray) -> np.ndarray:
        return self.session.run(None, {self.input_name: images})[0]

    def __call__(self, images: Tensor) -> Tensor:
        if self.fixed_hw is not None and tuple(images.shape[-2:]) != self.fixed_hw:
            raise ValueError(f"this ONNX model takes {self.fixed_hw[0]} x {self.fixed_hw[1]} inputs only, got "
                             f"{tuple(images.shape[-2:])}")
        array = np.ascontiguousarray(images.detach().cpu().numpy(), dtype=np.float32)
        if self.fixed_batch is None or self.fixed_batch == array.shape[0]:
            out = self._run(array)
        elif self.fixed_batch == 1:
            out = np.concatenate([self._run(array[i : i + 1]) for i in range(array.shape[0])])
        else:
            raise ValueError(f"this ONNX model takes batches of {self.fixed_batch} only, got {array.shape[0]}")
        return torch.from_numpy(out)


class OpenVinoPredictor(Predictor):
    """OpenVINO CPU inference of an IR written by `export --format openvino` (fixed 1 x 3 x H x W input)."""

    def __init__(self, model: Any, metadata: ModelMetadata, threads: int | None = None) -> None:
        from inas.runtimes.ov_runtime import compile_cpu

        self.metadata = metadata
        self.info = metadata.info
        self.backend = "openvino-int8" if metadata.precision == "int8" else "openvino"
        shape = model.inputs[0].get_partial_shape()
        if shape.rank.get_length() != 4 or not shape.is_static:
            raise BadInputError(f"expected a model with one fixed (1, 3, H, W) input, got {shape}")
        self.fixed_hw = (shape[2].get_length(), shape[3].get_length())
        self.request = compile_cpu(model, int(threads or torch.get_num_threads())).create_infer_request()

    def __call__(self, images: Tensor) -> Tensor:
        assert self.fixed_hw is not None  # set in __init__
        if tuple(images.shape[-2:]) != self.fixed_hw:
            raise ValueError(f"this OpenVINO model takes {self.fixed_hw[0]} x {self.fixed_hw[1]} inputs only, got "
                             f"{tuple(images.shape[-2:])}")
        array = np.ascontiguousarray(images.detach().cpu().numpy(), dtype=np.float32)
        outs = [np.array(self.request.infer([array[i : i + 1]])[0]) for i in range(array.shape[0])]
        return torch.from_numpy(np.concatenate(outs))


def load_openvino(path: str | Path, threads: int | None = None) -> OpenVinoPredictor:
    """An OpenVinoPredictor for an IR (.xml with its .bin) carrying inas metadata in its rt_info."""
    from inas.runtimes.ov_runtime import read_ir, require_openvino

    path = Path(path)
    require_openvino(path=path)
    if not path.is_file() or not path.with_suffix(".bin").is_file():
        raise BadInputError("OpenVINO IR not found (NAME.xml with NAME.bin beside it)", path=path)
    try:
        model = read_ir(path)
    except RuntimeError as exc:
        raise BadInputError(f"cannot be read as an OpenVINO IR ({str(exc).splitlines()[0]})", path=path) from None
    props = {}
    if model.has_rt_info(["inas"]):
        props = {k: model.get_rt_info(["inas", k]).astype(str) for k in model.get_rt_info(["inas"]).astype(dict)}
    return OpenVinoPredictor(model, read_metadata(props, str(path)), threads)


def load_predictor(path: str | Path, *, threads: int | None = None, optimization: str = "all") -> Predictor:
    """A Predictor for a model file written by `convert` (.pt) or `export` (.onnx FP32 or INT8, .xml OpenVINO IR),
    chosen by the file; BadInputError otherwise."""
    if Path(path).suffix == ".xml":
        return load_openvino(path, threads)
    kind = detect_model_kind(path)
    if kind == "torch":
        model, info = load_model_file(path)
        return TorchPredictor(model, info)
    import onnx

    proto = onnx.load_model(str(path), load_external_data=False)
    metadata = read_onnx_metadata(proto, str(path))
    check_onnx_file(proto, path)
    return OnnxPredictor(ort_session(str(path), threads=threads, optimization=optimization), metadata.info, metadata)


# ----- timing ------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Timing:
    """Milliseconds per call over the timed repeats."""

    median_ms: float
    mean_ms: float
    min_ms: float
    repeats: int

    def to_dict(self) -> dict[str, float | int]:
        return {"median_ms": self.median_ms, "mean_ms": self.mean_ms, "min_ms": self.min_ms, "repeats": self.repeats}


def time_calls(run: Callable[[], object], warmup: int = 5, repeats: int = 20) -> Timing:
    """Call `run` `warmup` times untimed, then `repeats` times timed with perf_counter_ns."""
    if repeats < 1 or warmup < 0:
        raise ValueError(f"need repeats >= 1 and warmup >= 0, got {repeats}, {warmup}")
    for _ in range(warmup):
        run()
    times_ms = []
    for _ in range(repeats):
        start = time.perf_counter_ns()
        run()
        times_ms.append((time.perf_counter_ns() - start) / 1e6)
    return Timing(statistics.median(times_ms), statistics.fmean(times_ms), min(times_ms), repeats)


def time_interleaved(runs: Mapping[str, Callable[[], object]], warmup: int = 5,
                     repeats: int = 20) -> dict[str, Timing]:
    """Time several callables fairly on a shared machine: `warmup` untimed rounds, then `repeats` rounds in which
    each callable runs once, in turn; so background load hits all of them alike. {name: Timing}."""
    if repeats < 1 or warmup < 0:
        raise ValueError(f"need repeats >= 1 and warmup >= 0, got {repeats}, {warmup}")
    for _ in range(warmup):
        for run in runs.values():
            run()
    times_ms: dict[str, list[float]] = {name: [] for name in runs}
    for _ in range(repeats):
        for name, run in runs.items():
            start = time.perf_counter_ns()
            run()
            times_ms[name].append((time.perf_counter_ns() - start) / 1e6)
    return {name: Timing(statistics.median(t), statistics.fmean(t), min(t), repeats) for name, t in times_ms.items()}


@dataclass(frozen=True)
class LatencyComparison:
    """Batch-1 latency of the same model in PyTorch eager and onnxruntime on this machine."""

    torch: Timing
    onnxruntime: Timing
    threads: int
    input_hw: tuple[int, int]

    @property
    def ratio(self) -> float:
        """onnxruntime time / PyTorch time (< 1: onnxruntime is faster)."""
        return self.onnxruntime.median_ms / self.torch.median_ms


def compare_latency(model: StandaloneModel, onnx_source: bytes | str | Path, input_hw: tuple[int, int], *,
                    threads: int | None = None, warmup: int = 5, repeats: int = 20,
                    optimization: str = "all") -> LatencyComparison:
    """Median batch-1 latency of `model` in PyTorch eager (`inference_mode`, `threads` intra-op threads) and of
    the ONNX model in onnxruntime (same thread count), on the same seeded random image, timed alternately
    (`time_interleaved`)."""
    threads = int(threads or torch.get_num_threads())
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        model = deployable(model)
        images = torch.randn(1, 3, *input_hw, generator=torch.Generator().manual_seed(0))
        session = ort_session(onnx_source, threads=threads, optimization=optimization)
        feed = {session.get_inputs()[0].name: images.numpy()}
        with torch.inference_mode():
            timings = time_interleaved({"torch": lambda: model(images), "onnxruntime": lambda: session.run(None, feed)},
                                       warmup, repeats)
    finally:
        torch.set_num_threads(previous)
    return LatencyComparison(timings["torch"], timings["onnxruntime"], threads, (int(input_hw[0]), int(input_hw[1])))

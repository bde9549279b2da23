"""Which onnxruntime static-quantisation settings make a network of the iNAS space faster than FP32? One uniform
network of the full space at 320 x 320 (random weights, folded), FP32 against QDQ INT8 with everything quantised,
only `Conv`, everything but the depthwise convolutions, only the pointwise convolutions, the QOperator format, one
weight scale per tensor instead of per channel, and INT8 instead of UINT8 activations;
1 thread, sequential, 8 runs per model in 5 interleaved rounds (median), then an onnxruntime profile of FP32 and QDQ
by operator type (ms per run). Prints only (the README quotes its output).

    python benchmarks/bench_int8_variants.py [SEED]
"""

from __future__ import annotations

import collections
import json
import logging
import random
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import onnxruntime as ort  # noqa: E402

from inas.deploy.onnx_export import to_onnx_bytes  # noqa: E402
from inas.latency.backends import build_network  # noqa: E402
from inas.runtimes.quantize import preprocessed_graph, quantize_onnx_int8  # noqa: E402
from inas.space import inas_space, sample_uniform  # noqa: E402


def session(model: bytes, profile_prefix: str | None = None) -> ort.InferenceSession:
    options = ort.SessionOptions()
    options.intra_op_num_threads = options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    if profile_prefix is not None:
        options.enable_profiling = True
        options.profile_file_prefix = profile_prefix
    return ort.InferenceSession(model, options, providers=["CPUExecutionProvider"])


def main() -> None:
    ort.set_default_logger_severity(3)
    logging.getLogger().setLevel(logging.ERROR)
    space = inas_space()
    arch = sample_uniform(space, random.Random(int(sys.argv[1]) if len(sys.argv) > 1 else 0))
    fp32 = to_onnx_bytes(build_network(space, arch, 1).eval(), (320, 320))
    tmp = Path(tempfile.mkdtemp(prefix="inas-int8-variants-"))
    graph = preprocessed_graph(fp32)
    name = graph.input[0].name
    depthwise = [n.name for n in graph.node
                 if n.op_type == "Conv" and any(a.name == "group" and a.i > 1 for a in n.attribute)]
    feeds = [{name: np.random.default_rng(i).uniform(-2, 2, (1, 3, 320, 320)).astype(np.float32)} for i in range(8)]

    def quantised(**options) -> bytes:
        return quantize_onnx_int8(fp32, feeds, **options)

    print(f"arch {arch.arch_id}: {len(graph.node)} nodes, {len(depthwise)} depthwise convolutions")
    models = {"fp32": fp32, "qdq_all": quantised(),
              "qdq_conv_only": quantised(op_types_to_quantize=["Conv"]),
              "qdq_no_depthwise": quantised(nodes_to_exclude=depthwise),
              "qdq_pointwise_only": quantised(op_types_to_quantize=["Conv"], nodes_to_exclude=depthwise),
              "qoperator": quantised(operator_format=True),
              "qdq_per_tensor": quantised(per_channel=False),
              "qdq_signed_activations": quantised(signed_activations=True)}
    sessions = {k: session(m) for k, m in models.items()}
    x = feeds[0]
    times: dict[str, list[float]] = {k: [] for k in sessions}
    for s in sessions.values():
        for _ in range(5):
            s.run(None, x)
    for _ in range(5):
        for k, s in sessions.items():
            for _ in range(8):
                start = time.perf_counter()
                s.run(None, x)
                times[k].append(1000 * (time.perf_counter() - start))
    base = float(np.median(times["fp32"]))
    for k, values in times.items():
        print(f"{k:24s} {np.median(values):7.2f} ms  speed vs fp32 {base / np.median(values):.2f}x")
    for k in ("fp32", "qdq_all"):
        s = session(models[k], str(tmp / k))
        for _ in range(10):
            s.run(None, x)
        per_op: collections.Counter = collections.Counter()
        for event in json.loads(Path(s.end_profiling()).read_text()):
            if event.get("cat") == "Node" and event["name"].endswith("_kernel_time"):
                per_op[event["args"]["op_name"]] += event["dur"] / 10 / 1000
        print(f"{k} profile: total {sum(per_op.values()):.1f} ms;",
              ", ".join(f"{op} {ms:.1f}" for op, ms in per_op.most_common(8)))


if __name__ == "__main__":
    main()

"""Where does OpenVINO spend the time of an INT8 network of the iNAS space, against the same network in FP32? One
uniform network of the full space at 320 x 320 (random weights, folded), compiled exactly as the `openvino` and
`openvino-int8` latency backends compile it (`inas.runtimes.ov_runtime`: 1 thread, latency hint, FP32 precision
hint; NNCF INT8 calibrated on 8 seeded image-like samples); both timed alternately (median of 25 after 5 warm-up
runs), then the CPU plugin's per-layer counters summed by (layer type, kernel) in ms per run. Prints only (the
README quotes its output). Needs the `[openvino]` extra.

    python benchmarks/profile_openvino_int8.py [SEED]
"""

from __future__ import annotations

import collections
import random
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from inas.deploy.onnx_export import to_onnx_bytes  # noqa: E402
from inas.deploy.runtime import time_interleaved  # noqa: E402
from inas.latency.backends import build_network  # noqa: E402
from inas.runtimes.calibration import random_calibration  # noqa: E402
from inas.runtimes.ov_runtime import compile_cpu, nncf_int8, ov_model_from_onnx, require_openvino  # noqa: E402
from inas.space import inas_space, sample_uniform  # noqa: E402

SIZE = 320


def layer_profile(compiled, image: np.ndarray, runs: int = 5) -> collections.Counter:
    """ms per run by (layer type, kernel) from the plugin's performance counters."""
    request = compiled.create_infer_request()
    totals: collections.Counter = collections.Counter()
    for _ in range(runs):
        request.infer([image])
        for layer in request.profiling_info:
            totals[(layer.node_type, layer.exec_type)] += layer.real_time.total_seconds() * 1000 / runs
    return totals


def main() -> None:
    require_openvino(int8=True)
    space = inas_space()
    arch = sample_uniform(space, random.Random(int(sys.argv[1]) if len(sys.argv) > 1 else 0))
    onnx_bytes = to_onnx_bytes(build_network(space, arch, 1).eval(), (SIZE, SIZE))
    samples = random_calibration((3, SIZE, SIZE), 8).samples
    models = {"fp32": ov_model_from_onnx(onnx_bytes),
              "int8": nncf_int8(ov_model_from_onnx(onnx_bytes), [{"image": s[None]} for s in samples])}
    image = samples[:1]
    requests = {k: compile_cpu(m, 1).create_infer_request() for k, m in models.items()}
    timings = time_interleaved({k: lambda r=r: r.infer([image]) for k, r in requests.items()}, warmup=5, repeats=25)
    print(f"arch {arch.arch_id}, {SIZE} x {SIZE}, 1 thread")
    for k, timing in timings.items():
        print(f"{k}: median {timing.median_ms:.2f} ms (min {timing.min_ms:.2f})")
    for k, model in models.items():
        compiled = compile_cpu(model, 1, performance_counters=True)
        totals = layer_profile(compiled, image)
        print(f"{k} per-layer counters: total {sum(totals.values()):.1f} ms per run;",
              ", ".join(f"{kind}/{kernel} {ms:.1f}" for (kind, kernel), ms in totals.most_common(8)))


if __name__ == "__main__":
    main()

"""Measuring backends: every block kind builds with the keyed shapes, exports to ONNX faithfully, and times on
onnxruntime and torch; the preemption filter keeps clean runs only."""

from __future__ import annotations

import numpy as np
import onnxruntime as ort
import pytest
import torch

from inas.latency import BLOCK_KINDS, Runner, build_block, build_network, enumerate_blocks
from inas.latency.backends import Timing, block_inputs, export_onnx
from inas.latency.devices import DeviceActor, DeviceSpec
from inas.space import inas_space, sample_min

SMALL = {f"stage_{i}": {"widths": [w]} for i, w in zip(range(1, 8), (16, 24, 40, 80, 112, 192, 320), strict=True)}


@pytest.fixture(scope="module")
def one_of_each_kind():
    space = inas_space().narrow({"stem": {"widths": [32]}, **SMALL})
    keys = enumerate_blocks(space, (64, 96))
    picked = {}
    for key in keys:  # the first block of each kind, plus a multi-input fusion
        picked.setdefault(key.kind, key)
        if key.kind == "transport_fusion" and key.fusion == 3:
            picked["fusion3"] = key
    assert set(BLOCK_KINDS) <= set(picked)
    return picked


def test_blocks_have_the_keyed_output_shape_and_export_faithfully(one_of_each_kind):
    for key in one_of_each_kind.values():
        module = build_block(key)
        inputs = block_inputs(key, batch=2)
        fusion = key.kind.endswith("_fusion")
        with torch.no_grad():
            out = module(inputs) if fusion else module(*inputs)
        assert tuple(out.shape) == (2, key.out_channels, key.out_h, key.out_w), key.text
        sess = ort.InferenceSession(export_onnx(module, inputs, list_input=fusion), providers=["CPUExecutionProvider"])
        (got,) = sess.run(None, {f"x{i}": x.numpy() for i, x in enumerate(inputs)})
        np.testing.assert_allclose(got, out.numpy(), rtol=1e-4, atol=1e-4, err_msg=key.text)


@pytest.mark.parametrize("backend", ["onnxruntime", "torch"])
def test_runner_times_blocks_and_networks(one_of_each_kind, backend):
    runner = Runner(backend, threads=1)
    assert runner.check() is None
    timing = runner.measure_block(one_of_each_kind["mbconv"], batch=1, warmup=1, runs=4)
    assert timing.runs >= 4 and 0 < timing.median_ms < 1000 and timing.std_ms >= 0
    space = inas_space().narrow(SMALL)
    net = runner.measure_network(lambda: build_network(space, sample_min(space), 1), (64, 64), batch=1, warmup=1,
                                 runs=3)
    assert net.median_ms > timing.median_ms


def test_cuda_backends_say_why_they_cannot_run():
    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    assert "CUDA" in Runner("torch-cuda", 1).check()
    assert "CUDAExecutionProvider" in Runner("onnxruntime-cuda", 1).check()


def test_preemption_filter_drops_runs_that_lost_the_core():
    runner = Runner("onnxruntime", threads=1, drop_preempted=True)
    assert runner.filters_preempted and not Runner("onnxruntime", 2, drop_preempted=True).filters_preempted
    import time

    calls = {"n": 0}

    def run():  # every third run sleeps: wall time without CPU time, as when another process takes the core
        calls["n"] += 1
        if calls["n"] % 3 == 0:
            time.sleep(0.003)
        else:
            sum(range(2000))

    timing = runner.time_callable(run, warmup=0, runs=10)
    assert timing.runs == 10 and timing.dropped >= 4
    assert timing.median_ms < 3.0  # the sleeping runs are not in the statistics
    plain = Runner("onnxruntime", threads=1).time_callable(run, warmup=0, runs=9)
    assert plain.dropped == 0 and plain.runs == 9


def test_timing_statistics():
    t = Timing.of([1_000_000, 2_000_000, 6_000_000])
    assert (t.median_ms, t.mean_ms, t.runs) == (2.0, 3.0, 3)


def test_device_actor_rows_follow_the_table_schema(one_of_each_kind):
    from inas.latency import TABLE_COLUMNS

    spec = DeviceSpec("cpu0", "device:cpu0", "onnxruntime", 1, 1, 1, 1, 3, node_lock=False)
    rows = DeviceActor(spec).measure_blocks([one_of_each_kind["head"].to_row()])
    assert list(rows[0]) == list(TABLE_COLUMNS)
    assert rows[0]["device"] == "cpu0" and rows[0]["latency_ms"] > 0 and rows[0]["onnxruntime_version"]

"""INT8 and OpenVINO measuring backends: quantised blocks compute what the FP32 block computes (within a stated
tolerance), calibration data is chosen and recorded, the reference block is timed periodically, backend selection
fails with one line, and older tables without the new columns still read."""

from __future__ import annotations

import builtins

import numpy as np
import pandas as pd
import pytest
import torch

from inas.config import parse_config
from inas.errors import BadInputError
from inas.latency import Runner, enumerate_blocks, read_table, write_table
from inas.latency.backends import block_inputs, build_block
from inas.latency.devices import DeviceActor, DeviceSpec, start_local_actors
from inas.latency.table import LATER_COLUMNS, TABLE_COLUMNS
from inas.runtimes.calibration import Calibration, random_calibration
from inas.space import inas_space

# INT8 outputs may differ from FP32 by this share of the FP32 output's range (8-bit activations: ~1/255 per
# quantised tensor, accumulated over the block's few layers).
INT8_TOLERANCE = 0.05


@pytest.fixture(scope="module")
def blocks():
    space = inas_space().narrow({"stem": {"widths": [32]}, "stage_1": {"widths": [16]}})
    picked = {}
    for key in enumerate_blocks(space, (64, 64)):
        picked.setdefault(key.kind, key)
    return picked


def _outputs(runner: Runner, key) -> np.ndarray:
    """The block's output (seeded random weights) on the first calibration sample, run by `runner`'s backend."""
    from inas.latency.backends import export_onnx

    inputs = block_inputs(key, batch=1)
    feed = Runner("onnxruntime-int8", 1).calibration_feeds(inputs)[0]
    torch.manual_seed(0)
    module = build_block(key)
    converted = runner.convert(export_onnx(module, inputs, list_input=key.kind.endswith("_fusion")), inputs)
    if runner.backend.startswith("onnxruntime"):
        return runner.session(converted).run(None, feed)[0]
    from inas.runtimes.ov_runtime import compile_cpu

    request = compile_cpu(converted, 1).create_infer_request()
    return np.asarray(request.infer(list(feed.values()))[0])


@pytest.mark.parametrize("kind", ["stem", "mbconv", "decoder_fusion"])
@pytest.mark.parametrize("backend", ["onnxruntime-int8", "openvino", "openvino-int8"])
def test_quantised_block_computes_what_the_fp32_block_computes(blocks, kind, backend):
    key = blocks[kind]
    expected = _outputs(Runner("onnxruntime", 1), key)
    got = _outputs(Runner(backend, 1), key)
    assert got.shape == expected.shape
    span = float(expected.max() - expected.min())
    tolerance = INT8_TOLERANCE * span if backend.endswith("int8") else 1e-4 * max(1.0, span)
    assert float(np.abs(got - expected).max()) <= tolerance, key.text


def test_int8_calibrates_image_shaped_inputs_on_images_and_says_so(blocks):
    images = Calibration("images:train.lst", random_calibration((3, 64, 64), 4, seed=5).samples)
    runner = Runner("onnxruntime-int8", 1, calibration=images)
    stem, mbconv = blocks["stem"], blocks["mbconv"]
    assert runner.calibration_source(block_inputs(stem, 1)) == "images:train.lst"
    assert runner.calibration_source(block_inputs(mbconv, 1)) == "random"
    feeds = runner.calibration_feeds(block_inputs(stem, 2))
    assert len(feeds) == 8 and feeds[0]["x0"].shape == (2, 3, 64, 64)
    np.testing.assert_array_equal(feeds[0]["x0"], images.samples[:2])
    assert Runner("onnxruntime", 1, calibration=images).calibration_source(block_inputs(stem, 1)) == ""


def test_actor_rows_keep_spread_calibration_and_a_periodic_reference(blocks, monkeypatch):
    spec = DeviceSpec("i8", "device:i8", "onnxruntime-int8", 1, 1, 1, 1, 3, node_lock=False, input_hw=(64, 64),
                      reference_every=2)
    actor = DeviceActor(spec)
    timed = []
    time_callable = actor.runner.time_callable
    monkeypatch.setattr(actor.runner, "time_callable",
                        lambda run, *a: timed.append(run is actor._reference_run) or time_callable(run, *a))
    keys = [blocks[k] for k in ("stem", "mbconv", "head")]
    rows = actor.measure_blocks([k.to_row() for k in keys])
    assert timed == [True, False, False, True, False]  # the reference before the first block, and after two
    assert list(rows[0]) == list(TABLE_COLUMNS)
    assert all(r["reference_ms"] > 0 and r["latency_ms_iqr"] >= 0 and r["calibration"] == "random" for r in rows)
    assert rows[0]["reference_ms"] == rows[1]["reference_ms"] != rows[2]["reference_ms"]


def test_unknown_backend_is_a_config_error():
    with pytest.raises(BadInputError, match="backend"):
        parse_config({"lut": {"devices": [{"name": "x", "backend": "tensorrt"}]}})
    with pytest.raises(ValueError, match="unknown backend"):
        Runner("tensorrt", 1)


@pytest.mark.parametrize("backend,package", [("openvino", "openvino"), ("openvino-int8", "nncf")])
def test_missing_runtime_fails_before_any_work_naming_the_extra(monkeypatch, backend, package):
    real_import = builtins.__import__

    def no_package(name, *args, **kwargs):
        if name == package or name.startswith(package + "."):
            raise ImportError(f"No module named {name!r}")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_package)
    spec = DeviceSpec("ov", "device:ov", backend, 1, 1, 1, 1, 3, node_lock=False)
    with pytest.raises(BadInputError) as info:
        start_local_actors([spec])
    message = str(info.value)
    assert 'pip install -e ".[openvino]"' in message and package in message and "\n" not in message
    assert info.value.key == "lut.devices[0].backend"


def test_tables_without_the_later_columns_still_read(tmp_path, blocks):
    spec = DeviceSpec("cpu", "device:cpu", "onnxruntime", 1, 1, 1, 1, 3, node_lock=False)
    rows = DeviceActor(spec).measure_blocks([blocks["head"].to_row()])
    path = tmp_path / "cpu.parquet"
    write_table(path, pd.DataFrame(rows))
    old = pd.read_parquet(path).drop(columns=list(LATER_COLUMNS))
    old.to_parquet(path)
    frame = read_table(path)
    assert np.isnan(frame["latency_ms_iqr"].iloc[0]) and frame["calibration"].iloc[0] == ""
    assert frame["latency_ms"].iloc[0] == pytest.approx(rows[0]["latency_ms"])


def test_torch_threads_untouched_by_int8_runner():
    before = torch.get_num_threads()
    Runner("onnxruntime-int8", 1)
    assert torch.get_num_threads() == 1 == before


def test_a_block_with_a_wide_spread_is_retimed_and_the_steadiest_timing_kept(blocks, monkeypatch):
    from inas.latency.backends import Timing

    spec = DeviceSpec("cpu", "device:cpu", "onnxruntime", 1, 1, 1, 1, 3, node_lock=False, max_spread=0.1, retimes=2)
    actor = DeviceActor(spec)
    timings = iter([Timing(1.0, 1.0, 0.1, 3, iqr_ms=0.5), Timing(1.2, 1.2, 0.1, 3, iqr_ms=0.3),
                    Timing(1.1, 1.1, 0.1, 3, iqr_ms=0.4)])
    monkeypatch.setattr(actor.runner, "time_callable", lambda *a: next(timings))
    (row,) = actor.measure_blocks([blocks["head"].to_row()])
    assert row["retimes"] == 2 and row["latency_ms"] == 1.2  # both re-timings made, the smallest IQR / median kept
    steady = iter([Timing(1.0, 1.0, 0.1, 3, iqr_ms=0.05)])
    monkeypatch.setattr(actor.runner, "time_callable", lambda *a: next(steady))
    (row,) = actor.measure_blocks([blocks["head"].to_row()])
    assert row["retimes"] == 0 and row["latency_ms"] == 1.0


def test_quantisation_options_reach_onnxruntime(blocks):
    """`quantize_onnx_int8`'s experiment options: excluded nodes stay FP32, QOperator writes QLinearConv, per-tensor
    weights have one scale each, signed activations INT8 zero points."""
    import onnx

    from inas.latency.backends import export_onnx
    from inas.runtimes.quantize import preprocessed_graph, quantize_onnx_int8

    key = blocks["mbconv"]
    inputs = block_inputs(key, batch=1)
    fp32 = export_onnx(build_block(key), inputs, list_input=False)
    feeds = Runner("onnxruntime-int8", 1).calibration_feeds(inputs)
    convs = [n.name for n in preprocessed_graph(fp32).node if n.op_type == "Conv"]

    def op_types(model: bytes) -> list[str]:
        return [n.op_type for n in onnx.load_from_string(model).graph.node]

    assert "QuantizeLinear" in op_types(quantize_onnx_int8(fp32, feeds))
    only_convs = {"op_types_to_quantize": ["Conv"]}
    assert "QuantizeLinear" in op_types(quantize_onnx_int8(fp32, feeds, **only_convs))
    assert "QuantizeLinear" not in op_types(quantize_onnx_int8(fp32, feeds, **only_convs, nodes_to_exclude=convs))
    assert "QLinearConv" in op_types(quantize_onnx_int8(fp32, feeds, operator_format=True))

    def scale_sizes_and_zero_point_types(model: bytes) -> tuple[set[int], set[int]]:
        graph = onnx.load_from_string(model).graph
        init = {t.name: t for t in graph.initializer}
        weights = [n for n in graph.node if n.op_type == "DequantizeLinear" and n.input[0] in init
                   and init[n.input[0]].data_type == onnx.TensorProto.INT8 and len(init[n.input[0]].dims) == 4]
        sizes = {int(np.prod(init[n.input[1]].dims)) for n in weights}
        activations = [n for n in graph.node if n.op_type == "QuantizeLinear"]
        return sizes, {init[n.input[2]].data_type for n in activations}

    sizes, zero_points = scale_sizes_and_zero_point_types(quantize_onnx_int8(fp32, feeds))
    assert max(sizes) > 1 and zero_points == {onnx.TensorProto.UINT8}  # per channel, UINT8 activations
    sizes, zero_points = scale_sizes_and_zero_point_types(
        quantize_onnx_int8(fp32, feeds, per_channel=False, signed_activations=True))
    assert sizes == {1} and zero_points == {onnx.TensorProto.INT8}


def test_openvino_models_have_swish_fused_before_quantisation(blocks):
    """`ov_model_from_onnx` converts (MOC fusions): the exported x * sigmoid(x) is one Swish, which NNCF then
    quantises around instead of between its halves (the INT8 network was slower than FP32 without it)."""
    pytest.importorskip("openvino")
    from inas.latency.backends import export_onnx
    from inas.runtimes.ov_runtime import ov_model_from_onnx

    key = blocks["mbconv"]
    inputs = block_inputs(key, batch=1)
    model = ov_model_from_onnx(export_onnx(build_block(key), inputs, list_input=False))
    types = {op.get_type_name() for op in model.get_ops()}
    assert "Swish" in types and "Sigmoid" not in types


def test_weights_get_a_7_bit_range_only_on_x86_cpus_without_vnni():
    """onnxruntime's U8S8 kernels saturate without VNNI: the quantiser then reduces the weights' range."""
    from inas.runtimes.quantize import cpu_lacks_vnni, weight_range_note

    assert cpu_lacks_vnni("processor : 0\nflags : fpu sse2 avx2 fma\n")
    assert not cpu_lacks_vnni("flags : fpu avx2 avx512f avx512_vnni\n")
    assert not cpu_lacks_vnni("flags : fpu avx2 avx_vnni\n")
    assert not cpu_lacks_vnni("model name : unknown\n")  # flags unreadable: onnxruntime's default
    assert weight_range_note(True) != weight_range_note(False) == "int8 per-channel"


def test_reduced_range_weights_use_at_most_7_bits(blocks):
    import onnx
    from onnx import numpy_helper

    from inas.latency.backends import export_onnx
    from inas.runtimes.quantize import quantize_onnx_int8

    key = blocks["mbconv"]
    inputs = block_inputs(key, batch=1)
    fp32 = export_onnx(build_block(key), inputs, list_input=False)
    feeds = Runner("onnxruntime-int8", 1).calibration_feeds(inputs)

    def widest_weight(model: bytes) -> int:
        graph = onnx.load_from_string(model).graph
        return max(int(np.abs(numpy_helper.to_array(t).astype(int)).max()) for t in graph.initializer
                   if t.data_type == onnx.TensorProto.INT8 and len(t.dims) == 4)

    assert widest_weight(quantize_onnx_int8(fp32, feeds, reduce_range=True)) <= 64
    assert widest_weight(quantize_onnx_int8(fp32, feeds, reduce_range=False)) > 64

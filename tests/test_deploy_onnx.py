"""ONNX export: metadata, fixed and dynamic shapes, the onnxruntime-vs-PyTorch check, predictors, the export CLI."""

from __future__ import annotations

import random

import onnx
import pytest
import torch

from inas.deploy.model_file import detect_model_kind, model_info_of, save_model_file
from inas.deploy.onnx_export import (
    ExportMismatchError,
    check_images,
    export_onnx,
    is_dynamic,
    read_onnx_info,
    to_onnx_bytes,
)
from inas.deploy.runtime import OnnxPredictor, TorchPredictor, compare_latency, load_predictor, time_calls
from inas.deploy.testing import random_standalone, tiny_space
from inas.errors import BadInputError
from inas.run import main as run_main
from inas.space import sample_uniform

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def model():
    space = tiny_space()
    return random_standalone(space, sample_uniform(space, random.Random(7)), seed=2)


@pytest.fixture(scope="module")
def model_file(model, tmp_path_factory):
    path = tmp_path_factory.mktemp("model") / "m.pt"
    save_model_file(model, path, task="sod", input_hw=(64, 64), conversion={"bn_batches": 3})
    return path


def _images(n: int, h: int, w: int, seed: int = 0) -> torch.Tensor:
    """Image-like inputs (smooth noise): what the export check uses too."""
    return check_images((n, 3, h, w), torch.Generator().manual_seed(seed))


def test_fixed_export_stores_metadata_and_matches_torch(model, tmp_path):
    info = model_info_of(model, "sod", (64, 64), {"bn_batches": 3})
    path = tmp_path / "m.onnx"
    result = export_onnx(model, info, path, input_hw=(64, 96))
    assert result.check.passed and result.check.max_abs_diff < 1e-5
    assert [shape for shape, _ in result.check.diffs] == [(1, 3, 64, 96)]
    proto = onnx.load(str(path))
    assert not is_dynamic(proto)
    stored = read_onnx_info(proto, str(path))
    assert stored.arch == model.arch and stored.input_hw == (64, 96) and stored.task == "sod"
    assert stored.conversion == {"bn_batches": 3} and stored.space == model.space
    assert not list(tmp_path.glob(".*tmp"))  # atomic write leaves no temporary file
    onnx_pred = load_predictor(path)
    assert isinstance(onnx_pred, OnnxPredictor) and onnx_pred.fixed_hw == (64, 96)
    images = _images(3, 64, 96)  # batch 3 through a batch-1 graph: run image by image
    expected = TorchPredictor(model, info)(images)
    assert (onnx_pred(images) - expected).abs().max() < 1e-4
    with pytest.raises(ValueError, match="takes 64 x 96 inputs only"):
        onnx_pred(_images(1, 64, 64))


def test_dynamic_export_runs_other_batches_and_sizes(model, tmp_path):
    info = model_info_of(model, "sod", (64, 64))
    path = tmp_path / "d.onnx"
    result = export_onnx(model, info, path, dynamic=True)
    assert [shape for shape, _ in result.check.diffs] == [(1, 3, 64, 64), (2, 3, 96, 128)]
    assert is_dynamic(onnx.load(str(path)))
    pred = load_predictor(path)
    assert pred.fixed_hw is None
    images = _images(2, 128, 160, seed=3)
    assert (pred(images) - TorchPredictor(model, info)(images)).abs().max() < 1e-4


def test_failed_check_writes_nothing(model, tmp_path):
    path = tmp_path / "never.onnx"
    with pytest.raises(ExportMismatchError, match="was not written"):
        export_onnx(model, model_info_of(model, "sod", (64, 64)), path, tolerance=-1.0)
    assert list(tmp_path.iterdir()) == []


def test_bad_export_arguments(model, tmp_path):
    info = model_info_of(model, "sod", (64, 64))
    with pytest.raises(BadInputError, match="opset 9 is not supported"):
        export_onnx(model, info, tmp_path / "a.onnx", opset=9)
    with pytest.raises(BadInputError, match="multiples of 32"):
        export_onnx(model, info, tmp_path / "a.onnx", input_hw=(64, 70))


def test_onnx_without_inas_metadata_is_refused(model, tmp_path):
    path = tmp_path / "plain.onnx"
    path.write_bytes(to_onnx_bytes(model, (64, 64)))
    assert detect_model_kind(path) == "onnx"
    with pytest.raises(BadInputError, match="without inas metadata"):
        load_predictor(path)


def test_timing_helpers(model, tmp_path):
    calls = []
    timing = time_calls(lambda: calls.append(1), warmup=2, repeats=3)
    assert len(calls) == 5 and timing.repeats == 3 and timing.min_ms <= timing.median_ms
    comparison = compare_latency(model, to_onnx_bytes(model, (64, 64)), (64, 64), threads=1, warmup=1, repeats=2)
    assert comparison.threads == 1 and comparison.torch.median_ms > 0 and comparison.onnxruntime.median_ms > 0
    assert comparison.ratio == pytest.approx(comparison.onnxruntime.median_ms / comparison.torch.median_ms)


def test_export_cli(model_file, tmp_path, capsys):
    out = tmp_path / "cli.onnx"
    code = run_main(["export", str(model_file), "-o", str(out), "--dynamic", "--threads", "1", "--warmup", "1",
                     "--repeats", "2"])
    text = capsys.readouterr().out
    assert code == 0 and out.is_file()
    assert "check passed" in text and "dynamic axes: batch, height, width" in text
    assert "PyTorch eager" in text and "onnxruntime" in text and "x PyTorch" in text
    # an ONNX file, a missing file, a text file: exit 2 with one line naming the file
    notes = tmp_path / "notes.txt"
    notes.write_text("not a model")
    for bad, pattern in ((out, "already an ONNX file"), (tmp_path / "missing.pt", "model file not found"),
                         (notes, "not a model file")):
        assert run_main(["export", str(bad), "-o", str(tmp_path / "x.onnx"), "--no-timing"]) == 2
        err = capsys.readouterr().err
        assert pattern in err and str(bad) in err and err.count("\n") == 1
    assert run_main(["export", str(model_file), "-o", str(tmp_path / "x.onnx"), "--tolerance", "-1",
                     "--no-timing"]) == 1
    assert "export check failed" in capsys.readouterr().err
    assert not (tmp_path / "x.onnx").exists()

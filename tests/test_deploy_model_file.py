"""The deployable model file: save/load round trip, content sniffing, and clear errors for anything else."""

from __future__ import annotations

import random

import pytest
import torch

from inas.deploy.model_file import ModelInfo, detect_model_kind, load_model_file, save_model_file
from inas.deploy.testing import random_supernet, tiny_space
from inas.errors import BadInputError
from inas.nn import extract_subnet, load_standalone, save_supernet
from inas.space import sample_uniform

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def supernet():
    return random_supernet(tiny_space(), seed=1)


@pytest.fixture(scope="module")
def model(supernet):
    return extract_subnet(supernet, sample_uniform(supernet.space, random.Random(5)))


def test_round_trip_keeps_weights_arch_and_description(model, tmp_path):
    path = tmp_path / "m.pt"
    record = {"supernet": "s.pt", "metrics": {"maxF": 0.5}}
    save_model_file(model, path, task="sod", input_hw=(64, 96), conversion=record)
    loaded, info = load_model_file(path)
    assert info.arch == model.arch and info.task == "sod" and info.input_hw == (64, 96)
    assert info.num_classes == 1 and info.head_activation == "sigmoid" and info.conversion == record
    assert loaded.folded and not loaded.training
    images = torch.randn(2, 3, 64, 96, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        assert torch.equal(loaded(images), model(images))
    # the file is also a plain inas.nn stand-alone file
    assert load_standalone(path).arch == model.arch
    assert ModelInfo.from_header(info.header()) == info


def test_task_must_fit_the_class_count(model, tmp_path):
    with pytest.raises(ValueError, match="does not fit"):
        save_model_file(model, tmp_path / "m.pt", task="seg", input_hw=(64, 64))


def test_detect_kind_and_bad_files(model, supernet, tmp_path):
    good = tmp_path / "m.pt"
    save_model_file(model, good, task="sod", input_hw=(64, 64))
    assert detect_model_kind(good) == "torch"
    text = tmp_path / "notes.txt"
    text.write_text("hello, not a model\n")
    empty = tmp_path / "empty.onnx"
    empty.write_bytes(b"")
    for bad in (text, empty):
        with pytest.raises(BadInputError, match="not a model file") as info:
            detect_model_kind(bad)
        assert str(bad) in str(info.value)
    with pytest.raises(BadInputError, match="model file not found"):
        detect_model_kind(tmp_path / "missing.pt")
    with pytest.raises(BadInputError, match="folder"):
        detect_model_kind(tmp_path)
    supernet_file = tmp_path / "supernet.pt"
    save_supernet(supernet, supernet_file)
    with pytest.raises(BadInputError, match="supernet checkpoint, not a stand-alone model"):
        load_model_file(supernet_file)
    other = tmp_path / "other.pt"
    torch.save({"weights": torch.zeros(3)}, other)
    with pytest.raises(BadInputError, match="expected format 'inas-standalone'"):
        load_model_file(other)


def test_header_errors_name_the_key(model):
    header = ModelInfo(model.space, model.arch, "sod", 1, "sigmoid", (64, 64)).header()
    for key, value, pattern in (("input_size", [64], "input_size"), ("task", "depth", "task"),
                                ("num_classes", 0, "num_classes")):
        broken = dict(header, **{key: value})
        with pytest.raises(BadInputError, match=pattern):
            ModelInfo.from_header(broken, "f.pt")

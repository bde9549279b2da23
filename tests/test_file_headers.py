"""Typed headers of our own files: the supernet file (also the header of the training checkpoint and the search
payload) and the stand-alone model file. Every damaged field, a truncated file, missing tensors and wrong shapes
give one BadInputError naming the file and the field."""

from __future__ import annotations

import random
from pathlib import Path

import pytest
import torch

from inas.deploy.model_file import load_model_file, save_model_file
from inas.deploy.testing import random_supernet, tiny_space
from inas.errors import BadInputError
from inas.nn import extract_subnet, load_supernet, save_supernet
from inas.nn.checkpoint import SupernetHeader, read_standalone_header, read_supernet_header, supernet_header_record
from inas.space import sample_uniform

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def supernet():
    return random_supernet(tiny_space(), seed=1)


@pytest.fixture(scope="module")
def files(supernet, tmp_path_factory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("headers")
    save_supernet(supernet, root / "supernet.pt")
    model = extract_subnet(supernet, sample_uniform(supernet.space, random.Random(5)))
    save_model_file(model, root / "model.pt", task="sod", input_hw=(64, 64))
    return root / "supernet.pt", root / "model.pt"


def _rewrite(source: Path, target: Path, edit) -> Path:
    obj = torch.load(source, map_location="cpu", weights_only=True)
    edit(obj)
    torch.save(obj, target)
    return target


def test_header_round_trip(supernet):
    header = read_supernet_header(supernet_header_record(supernet), "x")
    assert header == SupernetHeader.of(supernet)
    assert header.build().state_dict().keys() == supernet.state_dict().keys()


DAMAGE = [
    ("format", lambda o: o.update(format=7), "format"),
    ("version", lambda o: o.update(version=True), "version"),
    ("space type", lambda o: o.update(space=[1, 2]), "space"),
    ("space part", lambda o: o["space"].update(stages=3), "space.stages"),
    ("space field", lambda o: o["space"]["stages"]["stage_1"].update(widths="wide"), "space.stages.stage_1.widths"),
    ("space value", lambda o: o["space"]["stages"]["stage_1"].update(widths=[24, 9999]), "widths"),
    ("classes", lambda o: o.update(num_classes=1.5), "num_classes"),
    ("classes huge", lambda o: o.update(num_classes=10**9), "num_classes"),
    ("classes missing", lambda o: o.pop("num_classes"), "num_classes"),
    ("levels scalar", lambda o: o.update(output_levels=0), "output_levels"),
    ("levels range", lambda o: o.update(output_levels=[0, 7]), "output_levels"),
    ("activation", lambda o: o.update(head_activation=["sigmoid"]), "head_activation"),
    ("weights type", lambda o: o.update(state_dict=None), "state_dict"),
    ("weight entry", lambda o: o["state_dict"].update(x="not a tensor"), "entry 'x' is a str"),
    ("missing tensor", lambda o: o["state_dict"].pop(sorted(o["state_dict"])[3]), "missing keys"),
    ("wrong shape", lambda o: o["state_dict"].update({sorted(o["state_dict"])[3]: torch.zeros(2, 2)}),
     "shape mismatches"),
]


@pytest.mark.parametrize("edit, field", [d[1:] for d in DAMAGE], ids=[d[0] for d in DAMAGE])
def test_damaged_supernet_file_names_file_and_field(files, tmp_path, edit, field):
    path = _rewrite(files[0], tmp_path / "damaged.pt", edit)
    with pytest.raises(BadInputError) as info:
        load_supernet(path)
    message = str(info.value)
    assert message.startswith(str(path)) and field in message and "\n" not in message, message


MODEL_DAMAGE = DAMAGE + [
    ("arch", lambda o: o.update(arch={"a": 1}), "arch"),
    ("arch json", lambda o: o.update(arch="{" * 5000), "JSON"),
    ("folded", lambda o: o.update(folded="yes"), "folded"),
    ("task", lambda o: o.update(task="seg"), "task"),
    ("input size", lambda o: o.update(input_size=[64, 10**6]), "input_size"),
    ("input size nan", lambda o: o.update(input_size=[64, float("nan")]), "input_size"),
    ("task tensor", lambda o: o.update(task=torch.zeros(3)), "task"),
    ("conversion tensor", lambda o: o.update(conversion=torch.zeros(3)), "conversion"),
    ("format tensor", lambda o: o.update(format=torch.zeros(3)), "format"),
]


@pytest.mark.parametrize("edit, field", [d[1:] for d in MODEL_DAMAGE], ids=[d[0] for d in MODEL_DAMAGE])
def test_damaged_model_file_names_file_and_field(files, tmp_path, edit, field):
    path = _rewrite(files[1], tmp_path / "damaged.pt", edit)
    with pytest.raises(BadInputError) as info:
        load_model_file(path)
    message = str(info.value)
    assert message.startswith(str(path)) and field in message and "\n" not in message, message


@pytest.mark.parametrize("which", [0, 1], ids=["supernet", "model"])
@pytest.mark.parametrize("cut", [0.1, 0.5, 0.99])
def test_truncated_files_give_one_line(files, tmp_path, which, cut):
    data = files[which].read_bytes()
    path = tmp_path / "cut.pt"
    path.write_bytes(data[: int(len(data) * cut)])
    with pytest.raises(BadInputError) as info:
        (load_supernet if which == 0 else load_model_file)(path)
    assert str(info.value).startswith(str(path)) and "\n" not in str(info.value)


def test_standalone_header_reader(files):
    obj = torch.load(files[1], map_location="cpu", weights_only=True)
    header = read_standalone_header(obj, files[1])
    assert header.folded is True and header.supernet.num_classes == 1
    model = header.build()
    model.load_state_dict(obj["state_dict"], strict=True)

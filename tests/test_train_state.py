"""The one reader of `checkpoint.pt`: every field is checked, a damaged, truncated or foreign file is one
BadInputError naming the file and the field (CLI: one line, exit 2)."""

from __future__ import annotations

import copy
import math
import random

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_train_support import tiny_config_doc, tiny_space, write_config
from torch import nn

from inas.data.synth_sod import synthesize_sod
from inas.data.transforms import MultiScaleResize
from inas.errors import BadInputError
from inas.nn import space_spec
from inas.run import main as cli_main
from inas.train.recipe import build_scheduler
from inas.train.rng import python_rng_state, rng_state
from inas.train.state import (
    CHECKPOINT_NAME,
    DataOrder,
    TrainState,
    load_train_checkpoint,
    multi_scale_state,
    save_train_checkpoint,
)


def _state() -> TrainState:
    model = nn.Linear(2, 2)
    optimizer = torch.optim.Adam(model.parameters())
    model(torch.ones(1, 2)).sum().backward()
    optimizer.step()
    return TrainState(
        iteration=3, task="sod", space=space_spec(tiny_space()), num_classes=1, output_levels=(0, 1, 2, 3, 4),
        head_activation=None, model=dict(model.state_dict()), optimizer=optimizer.state_dict(),
        scheduler=build_scheduler(optimizer, 1, 10, 0.9).state_dict(), rng=rng_state(),
        sampler_rng=python_rng_state(random.Random(1)),
        multi_scale=multi_scale_state(MultiScaleResize([64, 96], seed=2).state_dict()), precision="bf16",
        grad_scaler=None, data_order=DataOrder(seed=0, world_size=1, batches_per_epoch=3))


def test_round_trip_keeps_every_field(tmp_path):
    state = _state()
    save_train_checkpoint(tmp_path / CHECKPOINT_NAME, state)
    read = load_train_checkpoint(tmp_path / CHECKPOINT_NAME)
    for name in ("iteration", "task", "space", "num_classes", "output_levels", "head_activation", "precision",
                 "grad_scaler", "data_order"):
        assert getattr(read, name) == getattr(state, name), name
    assert all(torch.equal(read.model[k], v) for k, v in state.model.items())
    assert torch.equal(read.rng["torch"], state.rng["torch"])
    assert torch.equal(read.sampler_rng["state"], state.sampler_rng["state"])


def test_version_1_files_are_read_without_the_new_fields(tmp_path):
    obj = _state().to_dict()
    obj["version"] = 1
    for key in ("precision", "grad_scaler", "data_order"):
        del obj[key]
    torch.save(obj, tmp_path / "v1.pt")
    read = load_train_checkpoint(tmp_path / "v1.pt")
    assert (read.iteration, read.precision, read.grad_scaler, read.data_order) == (3, "fp32", None, None)


def _bad_words() -> torch.Tensor:
    return torch.zeros(10, dtype=torch.int64)


DAMAGE = [
    ("format", lambda o: o.update(format="inas-supernet"), "format"),
    ("version", lambda o: o.update(version=99), "version"),
    ("missing model", lambda o: o.pop("model"), "model: missing"),
    ("iteration < 0", lambda o: o.update(iteration=-1), "iteration"),
    ("iteration bool", lambda o: o.update(iteration=True), "iteration"),
    ("iteration str", lambda o: o.update(iteration="3"), "iteration"),
    ("task", lambda o: o.update(task="det"), "task"),
    ("space", lambda o: o.update(space=[1]), "space"),
    ("num_classes", lambda o: o.update(num_classes=0), "num_classes"),
    ("output_levels", lambda o: o.update(output_levels=[7]), "output_levels"),
    ("empty output_levels", lambda o: o.update(output_levels=[]), "output_levels"),
    ("head_activation", lambda o: o.update(head_activation=3), "head_activation"),
    ("model values", lambda o: o.update(model={"weight": 1}), "model"),
    ("model NaN weights", lambda o: next(v for v in o["model"].values() if v.is_floating_point()).fill_(math.nan),
     "model"),
    ("optimizer", lambda o: o.update(optimizer={"state": {}}), "optimizer"),
    ("scheduler", lambda o: o.update(scheduler={}), "scheduler"),
    ("rng keys", lambda o: o["rng"].pop("numpy"), "rng"),
    ("rng.python", lambda o: o["rng"]["python"].update(state=_bad_words()), "rng.python"),
    ("rng.numpy", lambda o: o["rng"]["numpy"].update(kind="PCG64"), "rng.numpy"),
    ("rng.torch", lambda o: o["rng"].update(torch=torch.zeros(3, dtype=torch.uint8)), "rng.torch"),
    ("sampler_rng", lambda o: o["sampler_rng"].update(state=_bad_words()), "sampler_rng"),
    ("sampler_rng words", lambda o: o["sampler_rng"]["state"].__setitem__(0, -5), "sampler_rng"),
    ("multi_scale", lambda o: o["multi_scale"].update(gauss="x"), "multi_scale"),
    ("precision", lambda o: o.update(precision="fp8"), "precision"),
    ("grad_scaler", lambda o: o.update(grad_scaler=[1]), "grad_scaler"),
    ("data_order", lambda o: o.update(data_order={"seed": 0}), "data_order"),
]


@pytest.mark.parametrize("damage,key", [(d[1], d[2]) for d in DAMAGE], ids=[d[0] for d in DAMAGE])
def test_each_damaged_field_is_named(tmp_path, damage, key):
    obj = _state().to_dict()
    damage(obj)
    path = tmp_path / CHECKPOINT_NAME
    torch.save(obj, path)
    with pytest.raises(BadInputError) as caught:
        load_train_checkpoint(path)
    message = str(caught.value)
    assert message.startswith(f"{path}: {key}"), message
    assert "\n" not in message and len(message) < 400


def test_truncated_and_foreign_files(tmp_path):
    path = tmp_path / CHECKPOINT_NAME
    save_train_checkpoint(path, _state())
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(BadInputError, match="not a training checkpoint readable"):
        load_train_checkpoint(path)
    torch.save([1, 2, 3], path)
    with pytest.raises(BadInputError, match="expected a training checkpoint.*got 'list'"):
        load_train_checkpoint(path)
    torch.save({"x": nn.Linear(1, 1)}, path)  # a pickled module: refused by weights_only
    with pytest.raises(BadInputError, match="not a training checkpoint readable"):
        load_train_checkpoint(path)
    with pytest.raises(BadInputError, match="checkpoint not found"):
        load_train_checkpoint(tmp_path / "none.pt")


def test_cli_damaged_checkpoint_is_one_line_exit_2(tmp_path, capsys):
    root = tmp_path / "sod"
    synthesize_sod(root, n_train=4, n_test=1, size=32, seed=0, workers=1)
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    obj = _state().to_dict()
    obj["rng"]["torch"] = torch.zeros(3, dtype=torch.uint8)
    torch.save(obj, run_dir / CHECKPOINT_NAME)
    config = write_config(tmp_path / "c.yaml", tiny_config_doc(root, run_dir))
    code = cli_main(["train", "-c", str(config), "-o", str(run_dir), "--no-progress"])
    err = capsys.readouterr().err
    assert code == 2
    assert err.count("\n") == 1 and f"{run_dir / CHECKPOINT_NAME}: rng.torch" in err and "Traceback" not in err


_VALUES = st.one_of(
    st.none(), st.booleans(), st.integers(-2**70, 2**70), st.floats(allow_nan=True), st.text(max_size=20),
    st.lists(st.integers(-5, 2**33), max_size=8), st.dictionaries(st.text(max_size=5), st.integers(), max_size=3),
    st.builds(lambda n, dtype: torch.zeros(n, dtype=dtype), st.integers(0, 700),
              st.sampled_from([torch.int64, torch.uint8, torch.float32])),
)
_FIELDS = [name for name in _state().to_dict() if name not in ("format", "version")]
_NESTED = [("rng", "python"), ("rng", "numpy"), ("rng", "torch"), ("sampler_rng", "state"), ("sampler_rng", "gauss"),
           ("multi_scale", "version"), ("scheduler", "last_epoch"), ("scheduler", "base_lrs"), ("optimizer", "state"),
           ("optimizer", "param_groups"), ("data_order", "world_size")]


@settings(max_examples=80, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(where=st.one_of(st.sampled_from(_FIELDS), st.sampled_from(_NESTED)), value=_VALUES)
def test_fuzzed_fields_are_read_or_refused_in_one_line(tmp_path, where, value):
    """Any value in any field: the reader returns a TrainState or raises BadInputError naming the file (80 seeded
    cases over 17 top-level and 11 nested fields)."""
    obj = _state().to_dict()
    if isinstance(where, tuple):
        obj[where[0]][where[1]] = value
    else:
        obj[where] = value
    path = tmp_path / CHECKPOINT_NAME
    torch.save(obj, path)
    try:
        load_train_checkpoint(path)
    except BadInputError as exc:
        assert str(exc).startswith(str(path)) and "\n" not in str(exc)


@pytest.fixture(scope="module")
def real_run(tmp_path_factory):
    """A 1-iteration run of the tiny config: (config, its checkpoint dict)."""
    from test_train_support import tiny_config

    from inas.train.loop import train_supernet

    root = tmp_path_factory.mktemp("state_run")
    synthesize_sod(root / "sod", n_train=4, n_test=1, size=32, seed=0, workers=1)
    config = tiny_config(root / "sod", root / "run", iterations=1, validate_at_end=False)
    train_supernet(config, root / "run", progress=False)
    return config, torch.load(root / "run" / CHECKPOINT_NAME, weights_only=True)


def _first_moment(obj):
    return obj["optimizer"]["state"][0]


RESTORE_DAMAGE = [
    ("model shape", lambda o: o["model"].update({next(iter(o["model"])): torch.zeros(3)}), "model"),
    ("optimizer moment shape", lambda o: _first_moment(o).update(exp_avg=torch.zeros(3)), "optimizer"),
    ("optimizer groups", lambda o: o["optimizer"]["param_groups"].pop(), "optimizer"),
]


@pytest.mark.parametrize("damage,key", [(d[1], d[2]) for d in RESTORE_DAMAGE], ids=[d[0] for d in RESTORE_DAMAGE])
def test_fields_that_do_not_fit_the_run_are_refused_before_training(real_run, tmp_path, damage, key):
    from inas.train.loop import train_supernet

    config, checkpoint = real_run
    obj = copy.deepcopy(checkpoint)
    damage(obj)
    torch.save(obj, tmp_path / CHECKPOINT_NAME)
    with pytest.raises(BadInputError, match=f"^{tmp_path / CHECKPOINT_NAME}: {key}: "):
        train_supernet(config, tmp_path, progress=False)
    assert not (tmp_path / "metrics.csv").exists()

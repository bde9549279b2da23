"""`train.precision`: bf16 autocast on CPU stays close to fp32 and learns; fp16 needs CUDA (one line, exit 2)."""

from __future__ import annotations

import random

import pytest
import torch
from test_train_support import tiny_config_doc, tiny_space, write_config

from inas.errors import BadInputError
from inas.nn import Supernet
from inas.run import main as cli_main
from inas.train.precision import MixedPrecision
from inas.train.recipe import SupernetCriterion, build_optimizer, sandwich_archs, train_step

CPU = torch.device("cpu")
# bf16 keeps 8 significant bits (relative rounding 2^-8 = 0.4 %); through the tiny supernet's ~40 layers:
LOSS_REL_TOL = 0.03  # each sub-network's loss within 3 % of fp32
GRAD_COSINE_MIN = 0.98  # the whole gradient points the same way (measured 0.995)
GRAD_REL_NORM_MAX = 0.25  # |g_bf16 - g_fp32| / |g_fp32| (measured 0.10)


@pytest.fixture()
def batch():
    generator = torch.Generator().manual_seed(0)
    images = torch.randn(4, 3, 64, 64, generator=generator)
    labels = torch.zeros(4, 1, 64, 64)
    labels[:, :, 16:48, 16:48] = 1.0
    return images, labels


def _supernet() -> Supernet:
    torch.manual_seed(0)
    return Supernet(tiny_space(), 1, (0, 1, 2, 3, 4))


def _losses_and_gradient(net, images, labels, precision):
    archs = sandwich_archs(net.space, random.Random(0), 2)
    criterion = SupernetCriterion.from_config("sod", True, None, 0.4)
    net.zero_grad(set_to_none=True)
    losses = train_step(net, images, labels, archs, criterion, MixedPrecision.create(precision, CPU))
    gradient = torch.cat([p.grad.flatten() for p in net.parameters() if p.grad is not None])
    return losses, gradient


def test_bf16_losses_and_gradients_close_to_fp32(batch):
    net = _supernet()
    losses32, grad32 = _losses_and_gradient(net, *batch, "fp32")
    losses16, grad16 = _losses_and_gradient(net, *batch, "bf16")
    assert grad16.dtype == torch.float32  # weights and gradients stay fp32
    for name, value in losses32.items():
        assert losses16[name] == pytest.approx(value, rel=LOSS_REL_TOL), name
    assert not torch.equal(grad16, grad32)  # autocast did run in bf16
    assert torch.nn.functional.cosine_similarity(grad32, grad16, dim=0) > GRAD_COSINE_MIN
    assert (grad16 - grad32).norm() / grad32.norm() < GRAD_REL_NORM_MAX


def test_bf16_steps_learn(batch):
    net = _supernet()
    images, labels = batch
    optimizer = build_optimizer(net, 3e-3, 10.0, (0.9, 0.99), 0.0)
    amp = MixedPrecision.create("bf16", CPU)
    archs = sandwich_archs(net.space, random.Random(0), 0)[:1]
    criterion = SupernetCriterion.from_config("sod", True, None, 0.4)
    history = []
    for _ in range(6):
        optimizer.zero_grad(set_to_none=True)
        history.append(train_step(net, images, labels, archs, criterion, amp)["max"])
        amp.step(optimizer)
    assert history[-1] < 0.8 * history[0], history


def test_fp16_needs_cuda_and_unknown_names_are_refused():
    with pytest.raises(BadInputError, match="train.precision: fp16 training needs a CUDA device"):
        MixedPrecision.create("fp16", CPU)
    with pytest.raises(BadInputError, match="train.precision"):
        MixedPrecision.create("fp8", CPU)
    assert MixedPrecision.create("bf16", CPU).state_dict() is None


def test_cli_fp16_on_cpu_is_one_line_exit_2(tmp_path, capsys):
    doc = tiny_config_doc(tmp_path / "no-data-needed", tmp_path / "run", precision="fp16", device="cpu")
    code = cli_main(["train", "-c", str(write_config(tmp_path / "c.yaml", doc)), "--no-progress"])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "fp16 training needs a CUDA device" in err
    assert not (tmp_path / "run").exists()


def test_bf16_run_records_its_precision(tmp_path):
    from test_train_support import tiny_config

    from inas.data.synth_sod import synthesize_sod
    from inas.train.loop import train_supernet
    from inas.train.state import CHECKPOINT_NAME, load_train_checkpoint

    synthesize_sod(tmp_path / "sod", n_train=4, n_test=1, size=32, seed=0, workers=1)
    config = tiny_config(tmp_path / "sod", tmp_path / "run", iterations=2, precision="bf16", validate_at_end=False)
    result = train_supernet(config, tmp_path / "run", progress=False)
    state = load_train_checkpoint(tmp_path / "run" / CHECKPOINT_NAME)
    assert (result.iterations, state.precision, state.grad_scaler) == (2, "bf16", None)
    assert all(v.dtype in (torch.float32, torch.int64) for v in state.model.values())

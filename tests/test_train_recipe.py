"""The training recipe: learning-rate schedule, parameter groups, sandwich sampling, losses, the accumulated step."""

from __future__ import annotations

import random

import pytest
import torch
import torch.nn.functional as F
from test_train_support import tiny_space

from inas.nn import Supernet
from inas.space import inas_space, sample_max, sample_min
from inas.train.losses import ds_bce, ds_cross_entropy, ds_mse, ds_pixelwise_kl, pixelwise_kl
from inas.train.recipe import (
    SupernetCriterion,
    build_optimizer,
    build_scheduler,
    lr_factor,
    parameter_groups,
    sandwich_archs,
    train_step,
)


def test_lr_factor_warmup_then_polynomial_decay():
    assert lr_factor(0, 4, 10, 0.9) == pytest.approx(0.25)
    assert lr_factor(3, 4, 10, 0.9) == pytest.approx(1.0)
    assert lr_factor(4, 4, 10, 0.9) == pytest.approx(0.6**0.9)
    assert lr_factor(9, 4, 10, 0.9) == pytest.approx(0.1**0.9)
    assert lr_factor(10, 4, 10, 0.9) == 0.0
    assert lr_factor(0, 0, 10, 1.0) == 1.0


def test_scheduler_and_head_group_at_ten_times_the_backbone_rate():
    model = torch.nn.ModuleDict({"backbone": torch.nn.Linear(2, 2), "decoder": torch.nn.Linear(2, 2)})
    groups = parameter_groups(model, 1e-3, 10.0)
    assert [g["name"] for g in groups] == ["backbone", "head"]
    assert all(p is q for p, q in zip(groups[0]["params"], model["backbone"].parameters(), strict=True))
    optimizer = build_optimizer(model, 1e-3, 10.0, (0.9, 0.99), 0.0)
    scheduler = build_scheduler(optimizer, 2, 6, 0.9)
    rates = []
    for _ in range(6):
        rates.append([g["lr"] for g in optimizer.param_groups])
        optimizer.step()
        scheduler.step()
    assert rates[0] == pytest.approx([5e-4, 5e-3])
    assert rates[1] == pytest.approx([1e-3, 1e-2])
    assert rates[2] == pytest.approx([1e-3 * (1 - 2 / 6) ** 0.9, 1e-2 * (1 - 2 / 6) ** 0.9])
    assert optimizer.param_groups[0]["betas"] == (0.9, 0.99)


def test_sandwich_order_and_determinism():
    space = inas_space()
    archs = sandwich_archs(space, random.Random(3), 2)
    assert [n for n, _ in archs] == ["max", "min", "random1", "random2"]
    assert archs[0][1] == sample_max(space) and archs[1][1] == sample_min(space)
    again = sandwich_archs(space, random.Random(3), 2)
    assert archs == again
    assert archs[2][1] != archs[3][1]
    assert len(sandwich_archs(space, random.Random(3), 0)) == 2


def test_losses_match_their_definitions():
    gen = torch.Generator().manual_seed(0)
    preds = {0: torch.rand(2, 1, 8, 8, generator=gen), 2: torch.rand(2, 1, 8, 8, generator=gen)}
    mask = (torch.rand(2, 1, 8, 8, generator=gen) > 0.5).float()
    expected = F.binary_cross_entropy(preds[0], mask) + 0.4 * F.binary_cross_entropy(preds[2], mask)
    torch.testing.assert_close(ds_bce(preds, mask), expected)
    teacher = torch.rand(2, 1, 8, 8, generator=gen, requires_grad=True)
    loss = ds_mse(preds, teacher, side_weight=0.5)
    torch.testing.assert_close(loss, F.mse_loss(preds[0], teacher) + 0.5 * F.mse_loss(preds[2], teacher))
    assert not loss.requires_grad  # the teacher is detached
    logits = {0: torch.randn(2, 3, 4, 4, generator=gen), 2: torch.randn(2, 3, 4, 4, generator=gen)}
    labels = torch.randint(0, 3, (2, 4, 4), generator=gen)
    labels[0, 0, 0] = 255
    expected = F.cross_entropy(logits[0], labels, ignore_index=255) + 0.4 * F.cross_entropy(
        logits[2], labels, ignore_index=255)
    torch.testing.assert_close(ds_cross_entropy(logits, labels), expected)
    t_logits = torch.randn(2, 3, 4, 4, generator=gen)
    manual = -(torch.softmax(t_logits, 1) * torch.log_softmax(logits[0], 1)).sum() / 16
    torch.testing.assert_close(pixelwise_kl(logits[0], t_logits), manual)
    torch.testing.assert_close(ds_pixelwise_kl(logits, t_logits),
                               manual + 0.4 * pixelwise_kl(logits[2], t_logits))


def test_train_step_accumulates_the_sandwich_gradients():
    torch.manual_seed(0)
    space = tiny_space()
    model = Supernet(space).train()
    archs = sandwich_archs(space, random.Random(0), 1)
    images = torch.randn(2, 3, 64, 64)
    mask = (torch.rand(2, 1, 64, 64) > 0.5).float()
    criterion = SupernetCriterion.from_config("sod", True, None, 0.4)
    assert criterion.distill_weight == 1.0
    model.zero_grad()
    losses = train_step(model, images, mask, archs, criterion)
    assert list(losses) == ["max", "min", "random1"]
    step_grads = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
    # reference: one backward of the summed losses, the teacher map detached
    model.zero_grad()
    out_max = model(images, archs[0][1])
    teacher = out_max[0].detach()
    total = ds_bce(out_max, mask)
    for _, arch in archs[1:]:
        total = total + ds_mse(model(images, arch), teacher)
    total.backward()
    for name, param in model.named_parameters():
        if param.grad is None:
            assert name not in step_grads
            continue
        torch.testing.assert_close(step_grads[name], param.grad, rtol=1e-4, atol=1e-6, msg=name)
    seg_criterion = SupernetCriterion.from_config("seg", True, None, 0.4)
    assert seg_criterion.distill_weight == 0.2

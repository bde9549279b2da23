"""The training recipe of the original (docs/design.md §7): sandwich sampling, losses per sub-network, one optimiser
step per batch, Adam with a 10x head learning rate, linear warm-up then polynomial decay.

    archs = sandwich_archs(space, rng, random_subnets=2)    # [("max", A), ("min", A), ("random1", A), ...]
    losses = train_step(model, images, labels, archs, criterion)
    optimizer.step(); scheduler.step()
"""

from __future__ import annotations

import contextlib
import random
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from inas.space import Arch, SearchSpace, sample_max, sample_min, sample_uniform
from inas.train.losses import ds_bce, ds_cross_entropy, ds_mse, ds_pixelwise_kl
from inas.train.precision import MixedPrecision

DEFAULT_DISTILL_WEIGHT = {"sod": 1.0, "seg": 0.2}


def lr_factor(step: int, warmup_iterations: int, total_iterations: int, power: float) -> float:
    """Learning-rate multiplier of optimiser step `step` (0-based): (step+1)/warmup during the warm-up, then
    (1 - step/total)^power (polynomial decay to 0 at the end)."""
    if step < warmup_iterations:
        return (step + 1) / warmup_iterations
    return max(0.0, 1.0 - step / total_iterations) ** power


def parameter_groups(model: nn.Module, lr: float, head_lr_multiplier: float) -> list[dict]:
    """Two groups: parameters whose name contains 'backbone' at `lr`, all others at `lr * head_lr_multiplier`."""
    backbone, head = [], []
    for name, param in model.named_parameters():
        if param.requires_grad:
            (backbone if "backbone" in name else head).append(param)
    return [{"params": backbone, "lr": lr, "name": "backbone"},
            {"params": head, "lr": lr * head_lr_multiplier, "name": "head"}]


def build_optimizer(model: nn.Module, lr: float, head_lr_multiplier: float, betas: Sequence[float],
                    weight_decay: float) -> torch.optim.Adam:
    return torch.optim.Adam(parameter_groups(model, lr, head_lr_multiplier), lr=lr, betas=tuple(betas),
                            weight_decay=weight_decay)


def build_scheduler(optimizer: torch.optim.Optimizer, warmup_iterations: int, total_iterations: int,
                    power: float) -> torch.optim.lr_scheduler.LambdaLR:
    """LambdaLR of `lr_factor`; call `.step()` once after every optimiser step."""
    return torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: lr_factor(step, warmup_iterations, total_iterations, power))


def sandwich_archs(space: SearchSpace, rng: random.Random, random_subnets: int) -> list[tuple[str, Arch]]:
    """The sandwich rule: max, min, then `random_subnets` uniform sub-networks (drawn from `rng`), in that order."""
    archs = [("max", sample_max(space)), ("min", sample_min(space))]
    archs += [(f"random{i + 1}", sample_uniform(space, rng)) for i in range(random_subnets)]
    return archs


@dataclass(frozen=True)
class SupernetCriterion:
    """Losses of one task: the max network learns from labels; with distillation every other sub-network learns
    the max network's final map (SOD: MSE on the sigmoid maps; seg: pixel-wise KL on the logits), times
    `distill_weight`."""

    task: str
    distillation: bool = True
    distill_weight: float = 1.0
    side_weight: float = 0.4

    @classmethod
    def from_config(cls, task: str, distillation: bool, distill_weight: float | None,
                    side_weight: float) -> SupernetCriterion:
        weight = DEFAULT_DISTILL_WEIGHT[task] if distill_weight is None else distill_weight
        return cls(task, distillation, weight, side_weight)

    def label_loss(self, preds: dict[int, Tensor], labels: Tensor) -> Tensor:
        if self.task == "sod":
            return ds_bce(preds, labels, self.side_weight)
        return ds_cross_entropy(preds, labels, self.side_weight)

    def distill_loss(self, preds: dict[int, Tensor], teacher: Tensor) -> Tensor:
        if self.task == "sod":
            return self.distill_weight * ds_mse(preds, teacher, self.side_weight)
        return self.distill_weight * ds_pixelwise_kl(preds, teacher, self.side_weight)


def train_step(model: nn.Module, images: Tensor, labels: Tensor, archs: Sequence[tuple[str, Arch]],
               criterion: SupernetCriterion, amp: MixedPrecision | None = None) -> dict[str, float]:
    """Forward and backward every sub-network of `archs` on the same batch, gradients accumulated (the caller
    zeroes them before and steps the optimiser after). The first entry is the teacher (the max network).

    images (N, 3, H, W); labels: SOD masks (N, 1, H, W) float, seg labels (N, H, W) int64. Returns
    {name: loss value}. `amp` (default fp32): the forward passes run under its autocast, the losses in fp32 outside
    it (CUDA refuses binary cross-entropy under autocast), the backward passes through its (fp16) loss scaling.

    Under DDP the sub-networks before the last run in `no_sync` and the last backward averages the accumulated
    gradients over the ranks: one all-reduce per step. That includes parameters only an earlier sub-network used
    (DDP with find_unused_parameters=True reduces their locally accumulated gradients too; tests/test_train_ddp.py
    checks it against the average of single-process gradients).
    """
    amp = amp or MixedPrecision("fp32", images.device.type, None)
    losses: dict[str, float] = {}
    teacher: Tensor | None = None
    no_sync = getattr(model, "no_sync", contextlib.nullcontext)
    for index, (name, arch) in enumerate(archs):
        with contextlib.nullcontext() if index == len(archs) - 1 else no_sync():
            with amp.autocast():
                preds = {level: p.float() for level, p in model(images, arch).items()}
            if teacher is None or not criterion.distillation:
                loss = criterion.label_loss(preds, labels)
            else:
                loss = criterion.distill_loss(preds, teacher)
            if teacher is None:
                teacher = preds[0].detach()
            amp.backward(loss)
        losses[name] = float(loss.detach())
    return losses

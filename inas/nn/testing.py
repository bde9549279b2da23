"""Helpers that give a freshly built network non-trivial weights and BN statistics, so that equivalence tests
(supernet vs stand-alone, train vs folded paths, BN recalibration) cannot pass by accident: at initialisation the
kernel transforms are identities and every MBConv's last BN has gamma = 0 (the block is a pure shortcut)."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from inas.nn.ops import batchnorm_modules
from inas.space import Arch, SearchSpace, inas_space


@torch.no_grad()
def perturb_(model: nn.Module, seed: int = 0, scale: float = 0.1) -> nn.Module:
    """In place: every `ks_k` transform = identity + scale·N(0,1), every BN gamma ~ U(0.5, 1.5) and beta ~
    scale·N(0,1), running mean ~ scale·N(0,1), running var ~ U(0.5, 1.5). Returns `model`."""
    gen = torch.Generator().manual_seed(seed)

    def randn(t: Tensor) -> Tensor:
        return torch.randn(t.shape, generator=gen).to(t)

    def rand(t: Tensor) -> Tensor:
        return torch.rand(t.shape, generator=gen).to(t)

    for name, param in model.named_parameters():
        if name.rsplit(".", 1)[-1].startswith("ks_"):
            param.add_(scale * randn(param))
    for bn in batchnorm_modules(model):
        bn.weight.copy_(0.5 + rand(bn.weight))
        bn.bias.copy_(scale * randn(bn.bias))
        bn.running_mean.copy_(scale * randn(bn.running_mean))
        bn.running_var.copy_(0.5 + rand(bn.running_var))
    return model


@torch.no_grad()
def calibrate_bn_(model: nn.Module, images: Tensor, arch: Arch | None = None) -> nn.Module:
    """In place: set the running statistics of the BNs used by one train-mode forward of `images` (with `arch`
    for a supernet) to that batch's statistics (momentum 1). Training flags and momenta are restored."""
    bns = batchnorm_modules(model)
    momenta = [bn.momentum for bn in bns]
    was_training = model.training
    model.train()
    for bn in bns:
        bn.momentum = 1.0
    try:
        model(images) if arch is None else model(images, arch)
    finally:
        for bn, momentum in zip(bns, momenta, strict=True):
            bn.momentum = momentum
        model.train(was_training)
    return model


def small_space() -> SearchSpace:
    """A narrowed iNAS space that keeps every structural feature (two widths and kernel choices per stage, several
    depths, optional transport/decoder connections) but builds a supernet ~4x smaller than the full one."""
    stages = {
        "stem": {"widths": [32, 36]},
        "stage_1": {"widths": [16, 20], "depths": [1, 2]},
        "stage_2": {"widths": [24, 28], "depths": [2]},
        "stage_3": {"widths": [40, 44], "depths": [2], "kernels": [3, 5, 7]},
        "stage_4": {"widths": [80, 84], "depths": [2], "kernels": [3, 5]},
        "stage_5": {"widths": [112, 116], "depths": [2, 3], "kernels": [3, 5]},
        "stage_6": {"widths": [192, 196], "depths": [2], "kernels": [3, 7]},
        "stage_7": {"widths": [320, 324], "depths": [1, 2], "kernels": [3, 5]},
    }
    transport = {f"level_{i}": {"kernels": [3, 5]} for i in range(5)}
    transport["level_2"]["connections"] = [1, 2, 3]
    decoder = {f"level_{i}": {"kernels": [3, 5]} for i in range(5)}
    decoder["level_0"]["connections"] = [0, 1, 3]
    return inas_space().narrow(stages, transport, decoder)

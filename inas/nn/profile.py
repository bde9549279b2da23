"""Parameter and multiply-accumulate (MAC) counts of stand-alone (deployed) models.

What is counted, for one eval-mode forward pass of ONE image (batch 1), SMSUs folded (each unit is one depthwise
conv of size max(kernel set) with bias):
- params: every parameter of the folded stand-alone model (conv weights and biases, BN gamma and beta, SE convs,
  every output head it holds); BN running statistics are buffers and are not counted.
- MACs: convolutions, Cout·Hout·Wout·(Cin/groups)·kh·kw each (bias additions not counted), and nn.Linear layers
  (in_features·out_features per output row). BN (foldable into convs), activations, pooling, bilinear resizing,
  SE's global mean and scaling, residual additions and branch averaging are NOT counted. In eval mode only the
  level-0 head runs, so only its conv counts toward MACs.

`profile(arch, input_hw, space=...)` counts analytically from the architecture (fast, for search);
`profile(model, input_hw)` and `count_module(module, example)` count with forward hooks on nn.Conv2d / nn.Linear
(the two agree; a test checks it).
"""

from __future__ import annotations

import copy
from collections.abc import Sequence

import torch
from torch import Tensor, nn

from inas.nn.blocks import reparameterize_all
from inas.nn.standalone import StandaloneModel
from inas.nn.supernet import Supernet
from inas.space import LEVEL_STAGES, NUM_LEVELS, Arch, SearchSpace, validate_arch


def count_module(module: nn.Module, example: Tensor | Sequence[Tensor]) -> tuple[int, int]:
    """(params, MACs) of `module` on `example` (batch 1), counted with hooks on a folded eval-mode copy.

    `example` is the forward input: one tensor, or a list of tensors (fusion blocks). See the module docstring.
    """
    model = reparameterize_all(copy.deepcopy(module)).eval()
    params = sum(p.numel() for p in model.parameters())
    macs = 0

    def conv_hook(m: nn.Conv2d, _inputs: tuple, out: Tensor) -> None:
        nonlocal macs
        kh, kw = m.kernel_size
        macs += out.numel() // out.shape[0] * (m.in_channels // m.groups) * kh * kw

    def linear_hook(m: nn.Linear, _inputs: tuple, out: Tensor) -> None:
        nonlocal macs
        macs += out.numel() // out.shape[0] * m.in_features

    handles = []
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            handles.append(m.register_forward_hook(conv_hook))
        elif isinstance(m, nn.Linear):
            handles.append(m.register_forward_hook(linear_hook))
    try:
        with torch.no_grad():
            model(example)
    finally:
        for h in handles:
            h.remove()
    return params, macs


# ----- analytic counts ---------------------------------------------------------------------------------------------
def stem_cost(out_channels: int, in_hw: tuple[int, int]) -> tuple[int, int]:
    """Stem: 3x3 conv stride 2 (no bias) + BN."""
    h, w = in_hw[0] // 2, in_hw[1] // 2
    return 27 * out_channels + 2 * out_channels, out_channels * h * w * 27


def mbconv_cost(in_channels: int, out_channels: int, stride: int, expand_ratio: int, kernel_size: int,
                in_hw: tuple[int, int]) -> tuple[int, int]:
    """One folded MBConv layer: expand 1x1 + BN, depthwise k x k with bias, SE (two 1x1 with bias), project 1x1 + BN,
    and the 1x1 shortcut conv when in != out."""
    hidden = int(in_channels * expand_ratio)
    mid = hidden // 4
    h, w = in_hw
    ho, wo = h // stride, w // stride
    params = in_channels * hidden + 2 * hidden
    macs = hidden * h * w * in_channels
    params += hidden * kernel_size**2 + hidden
    macs += hidden * ho * wo * kernel_size**2
    params += hidden * mid + mid + mid * hidden + hidden
    macs += 2 * hidden * mid
    params += hidden * out_channels + 2 * out_channels
    macs += out_channels * ho * wo * hidden
    if in_channels != out_channels:
        params += in_channels * out_channels
        macs += out_channels * ho * wo * in_channels
    return params, macs


def branch_cost(in_channels: int, out_channels: int, conv_hw: tuple[int, int]) -> tuple[int, int]:
    """Transport up/down or decoder up branch: 1x1 conv (no bias) at `conv_hw` + BN."""
    return in_channels * out_channels + 2 * out_channels, out_channels * conv_hw[0] * conv_hw[1] * in_channels


def fusion_cost(channels: int, kernel_size: int, hw: tuple[int, int], units: int) -> tuple[int, int]:
    """`units` x (folded depthwise k x k with bias, 1x1 conv, BN): 2 for TransportFusion, 1 for DecoderFusion."""
    c = channels
    params = units * (c * kernel_size**2 + c + c * c + 2 * c)
    macs = units * (c * hw[0] * hw[1] * (kernel_size**2 + c))
    return params, macs


def arch_cost(space: SearchSpace, arch: Arch, input_hw: tuple[int, int], num_classes: int = 1,
              output_levels: Sequence[int] = (0,)) -> tuple[int, int]:
    """(params, MACs) of the folded stand-alone model of `arch` for one (3, H, W) image, counted analytically."""
    validate_arch(arch, space)
    total_p = total_m = 0

    def add(cost: tuple[int, int]) -> None:
        nonlocal total_p, total_m
        total_p += cost[0]
        total_m += cost[1]

    h, w = input_hw
    stem_width = arch.backbone[0].widths[0]
    add(stem_cost(stem_width, (h, w)))
    h, w = h // 2, w // 2
    prev = stem_width
    level_hw = []
    for stage_space, stage in zip(space.stages[1:], arch.backbone[1:], strict=True):
        for d, (width, kernels) in enumerate(zip(stage.widths, stage.kernels, strict=True)):
            stride = stage_space.stride if d == 0 else 1
            add(mbconv_cost(prev, width, stride, stage_space.expand_ratio, max(kernels), (h, w)))
            h, w = h // stride, w // stride
            prev = width
        if stage_space.name in LEVEL_STAGES:
            level_hw.append((h, w))
    channels = arch.level_channels
    for L, lv in enumerate(arch.transport):
        for j in lv.connections:
            if j != L:
                add(branch_cost(channels[j], channels[L], level_hw[max(j, L)]))
        add(fusion_cost(channels[L], max(lv.kernels), level_hw[L], units=2))
    for L, lv in enumerate(arch.decoder):
        for j in lv.connections:
            if j > L:
                add(branch_cost(channels[j], channels[L], level_hw[j]))
        add(fusion_cost(channels[L], max(lv.kernels), level_hw[L], units=1))
    for L in sorted(set(output_levels)):
        if not 0 <= L < NUM_LEVELS:
            raise ValueError(f"output level {L} is outside 0..{NUM_LEVELS - 1}")
        total_p += channels[L] * num_classes
    total_m += num_classes * level_hw[0][0] * level_hw[0][1] * channels[0]
    return total_p, total_m


def profile(model_or_arch: nn.Module | Arch, input_hw: tuple[int, int], *, space: SearchSpace | None = None,
            num_classes: int = 1, output_levels: Sequence[int] = (0,)) -> tuple[int, int]:
    """(params, MACs) of a deployed (folded) stand-alone model for one 3 x H x W image (see module docstring).

    - an Arch: counted analytically; needs `space`; the model has heads at `output_levels` with `num_classes`.
    - a StandaloneModel: counted with hooks on a folded copy (its own heads and classes).
    """
    if isinstance(model_or_arch, Arch):
        if space is None:
            raise ValueError("profile(arch, ...) needs the search space: profile(arch, input_hw, space=space)")
        return arch_cost(space, model_or_arch, input_hw, num_classes, output_levels)
    if isinstance(model_or_arch, Supernet):
        raise TypeError("profile a sub-network: pass an Arch with space=..., or extract_subnet(supernet, arch)")
    if not isinstance(model_or_arch, StandaloneModel):
        raise TypeError("profile() takes an Arch or a StandaloneModel; use count_module(module, example) for blocks")
    return count_module(model_or_arch, torch.zeros(1, 3, *input_hw))

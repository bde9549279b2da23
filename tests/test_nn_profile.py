"""Params / MACs counting: a hand count for one MBConv block; analytic counts equal hook counts."""

from __future__ import annotations

import random

import pytest
import torch

from inas.nn import MBConvLayer, StandaloneModel, Supernet, count_module, mbconv_cost, profile
from inas.nn.testing import small_space
from inas.space import inas_space, sample_max, sample_min, sample_uniform


def test_mbconv_hand_count():
    # MBConv 16 -> 24, stride 2, expand 6 (hidden 96, SE mid 24), kernel set {3, 5} (folded: one 5x5), 32x32 input.
    hidden, mid = 96, 24
    params = (16 * hidden + 2 * hidden  # expand conv + BN
              + hidden * 25 + hidden  # folded depthwise 5x5 + bias
              + hidden * mid + mid + mid * hidden + hidden  # SE
              + hidden * 24 + 2 * 24  # project conv + BN
              + 16 * 24)  # shortcut 1x1 conv (16 != 24)
    macs = (hidden * 32 * 32 * 16  # expand at 32x32
            + hidden * 16 * 16 * 25  # depthwise, stride 2 -> 16x16
            + 2 * hidden * mid  # SE on 1x1
            + 24 * 16 * 16 * hidden  # project
            + 24 * 16 * 16 * 16)  # shortcut conv after AvgPool
    assert (params, macs) == (11_688, 2_880_000)
    layer = MBConvLayer(16, 24, stride=2, expand_ratio=6, kernel_sizes=(3, 5))
    assert count_module(layer, torch.zeros(1, 16, 32, 32)) == (params, macs)
    assert mbconv_cost(16, 24, 2, 6, 5, (32, 32)) == (params, macs)
    # counting folds a copy: the block itself keeps its branches
    assert layer.depth_conv.convbn.folded is False


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_analytic_count_equals_hook_count(seed):
    space = small_space()
    arch = [sample_min(space), sample_max(space), sample_uniform(space, random.Random(seed))][seed]
    model = StandaloneModel.from_arch(space, arch, num_classes=2, output_levels=(0, 3))
    hw = (64, 96)
    assert profile(arch, hw, space=space, num_classes=2, output_levels=(0, 3)) == profile(model, hw)


def test_full_space_counts_and_errors():
    space = inas_space()
    params_min, macs_min = profile(sample_min(space), (224, 224), space=space)
    params_max, macs_max = profile(sample_max(space), (224, 224), space=space)
    assert 0 < params_min < params_max < 20.08e6
    assert 0 < macs_min < macs_max
    with pytest.raises(ValueError, match="search space"):
        profile(sample_min(space), (224, 224))
    with torch.device("meta"):
        net = Supernet(small_space())
    with pytest.raises(TypeError):
        profile(net, (64, 64))

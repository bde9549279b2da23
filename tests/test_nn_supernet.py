"""Supernet: key names, sizes from the space, output contract, equivalence of its paths with the stand-alone model."""

from __future__ import annotations

import random

import pytest
import torch
from torch import nn

from inas.nn import DynamicBatchNorm2d, DynamicSMSU, Supernet, extract_subnet
from inas.nn.testing import calibrate_bn_, perturb_, small_space
from inas.space import ArchError, LevelArch, inas_space, sample_max, sample_min, sample_uniform

# Representative keys of the original iNAS supernet (docs/design.md §6.4) with their full-space shapes.
ORIGINAL_KEYS = {
    "backbone.stem.stemconv.conv.weight": (40, 3, 3, 3),
    "backbone.stem.stemnorm.bn.weight": (40,),
    "backbone.stem.stemnorm.bn.bias": (40,),
    "backbone.stem.stemnorm.bn.running_mean": (40,),
    "backbone.stem.stemnorm.bn.running_var": (40,),
    "backbone.stem.stemnorm.bn.num_batches_tracked": (),
    "backbone.stage_1.0.depth_conv.convbn.conv.weight": (40, 1, 3, 3),
    "backbone.stage_3.0.inverted_bottleneck.conv.conv.weight": (192, 32, 1, 1),
    "backbone.stage_3.0.inverted_bottleneck.bn.bn.weight": (192,),
    "backbone.stage_3.0.depth_conv.convbn.conv.weight": (192, 1, 9, 9),
    "backbone.stage_3.0.depth_conv.convbn.ks_5": (25, 25),
    "backbone.stage_3.0.depth_conv.convbn.bn_dict.ks_5.bn.running_mean": (192,),
    "backbone.stage_3.0.depth_conv.se.fc.reduce.conv.weight": (48, 192, 1, 1),
    "backbone.stage_3.0.depth_conv.se.fc.reduce.conv.bias": (48,),
    "backbone.stage_3.0.depth_conv.se.fc.expand.conv.weight": (192, 48, 1, 1),
    "backbone.stage_3.0.depth_conv.se.fc.expand.conv.bias": (192,),
    "backbone.stage_3.0.point_linear.conv.conv.weight": (48, 192, 1, 1),
    "backbone.stage_3.0.point_linear.bn.bn.weight": (48,),
    "backbone.stage_3.0.identity_conv.conv.weight": (48, 32, 1, 1),
    "backbone.stage_5.5.depth_conv.convbn.ks_9": (81, 81),
    "backbone.stage_7.1.identity_conv.conv.weight": (352, 352, 1, 1),
    "transport.mainops.level_2.fusion.depthwise1.conv.weight": (48, 1, 9, 9),
    "transport.mainops.level_2.fusion.depthwise1.ks_7": (49, 49),
    "transport.mainops.level_2.fusion.depthwise1.bn_dict.ks_7.bn.running_var": (48,),
    "transport.mainops.level_2.fusion.pointwise1.conv.weight": (48, 48, 1, 1),
    "transport.mainops.level_2.fusion.bn1.bn.weight": (48,),
    "transport.mainops.level_2.fusion.depthwise2.conv.weight": (48, 1, 9, 9),
    "transport.mainops.level_2.fusion.pointwise2.conv.weight": (48, 48, 1, 1),
    "transport.mainops.level_2.fusion.bn2.bn.bias": (48,),
    "transport.branches.level_1.3.upsample.conv.conv.weight": (32, 128, 1, 1),
    "transport.branches.level_1.3.upsample.bn.bn.weight": (32,),
    "transport.branches.level_3.0.downsample.conv.conv.weight": (128, 24, 1, 1),
    "transport.branches.level_3.0.downsample.bn.bn.running_mean": (128,),
    "decoder.mainops.level_0.fusion.depthwise1.conv.weight": (24, 1, 9, 9),
    "decoder.mainops.level_0.fusion.pointwise1.conv.weight": (24, 24, 1, 1),
    "decoder.mainops.level_0.fusion.bn1.bn.weight": (24,),
    "decoder.branches.level_0.4.upsample.conv.conv.weight": (24, 352, 1, 1),
    "decoder.decoder_dict.level_0.conv.conv.weight": (1, 24, 1, 1),
    "decoder.decoder_dict.level_4.conv.conv.weight": (1, 352, 1, 1),
}


@pytest.fixture(scope="module")
def space():
    return small_space()


@pytest.fixture(scope="module")
def logit_supernet(space):
    """Small-space supernet with logits heads and perturbed weights (tests calibrate BN for their own arch)."""
    torch.manual_seed(0)
    return perturb_(Supernet(space, head_activation=None), seed=1).eval()


def test_full_space_key_names_and_parameter_count():
    with torch.device("meta"):
        net = Supernet(inas_space())
    shapes = {k: tuple(v.shape) for k, v in net.state_dict().items()}
    for key, shape in ORIGINAL_KEYS.items():
        assert key in shapes, key
        assert shapes[key] == shape, key
    # no branch module for identity connections, no decoder branch from finer levels
    assert not any(k.startswith("transport.branches.level_2.2.") for k in shapes)
    assert not any(k.startswith("decoder.branches.level_2.1.") for k in shapes)
    # the original supernet has 20.08 M parameters
    assert round(sum(p.numel() for p in net.parameters()) / 1e6, 2) == 20.08


def test_narrowed_space_builds_smaller_supernet(space):
    with torch.device("meta"):
        small = Supernet(space)
    shapes = {k: tuple(v.shape) for k, v in small.state_dict().items()}
    assert shapes["backbone.stem.stemconv.conv.weight"] == (36, 3, 3, 3)
    assert shapes["backbone.stage_3.0.depth_conv.convbn.conv.weight"] == (168, 1, 7, 7)
    assert "backbone.stage_3.0.depth_conv.convbn.ks_9" not in shapes
    assert "backbone.stage_5.2.inverted_bottleneck.conv.conv.weight" in shapes
    assert "backbone.stage_5.3.inverted_bottleneck.conv.conv.weight" not in shapes
    assert "transport.branches.level_2.1.downsample.conv.conv.weight" in shapes
    assert "transport.branches.level_2.4.upsample.conv.conv.weight" not in shapes
    assert "decoder.branches.level_0.2.upsample.conv.conv.weight" not in shapes
    assert sum(p.numel() for p in small.parameters()) < 0.5 * 20.08e6


@pytest.mark.parametrize("num_classes, activation", [(1, "auto"), (19, "auto")])
def test_deep_supervision_shapes_non_square(space, num_classes, activation):
    torch.manual_seed(0)
    net = Supernet(space, num_classes=num_classes, output_levels=(0, 2, 4), head_activation=activation).train()
    x = torch.randn(2, 3, 96, 64)
    with torch.no_grad():
        out = net(x, sample_uniform(space, random.Random(3)))
    assert sorted(out) == [0, 2, 4]
    for level_map in out.values():
        assert level_map.shape == (2, num_classes, 96, 64)
    if num_classes == 1:  # SOD: sigmoid maps
        assert all(0 <= float(m.min()) and float(m.max()) <= 1 for m in out.values())
    else:  # segmentation: logits
        assert any(float(m.min()) < 0 for m in out.values())
    net.eval()
    with torch.no_grad():
        eval_out = net(x)
    assert isinstance(eval_out, torch.Tensor) and eval_out.shape == (2, num_classes, 96, 64)


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_supernet_eval_equals_extracted_subnet(space, logit_supernet, seed):
    arch = {0: sample_min(space), 1: sample_max(space)}.get(seed) or sample_uniform(space, random.Random(seed))
    x = torch.randn(2, 3, 96, 64, generator=torch.Generator().manual_seed(seed))
    calibrate_bn_(logit_supernet, x, arch)  # running stats of this arch's BN prefixes = this batch's statistics
    with torch.no_grad():
        expected = logit_supernet(x, arch)
        model = extract_subnet(logit_supernet, arch)
        got = model(x)
    assert 0.05 < expected.std() < 10  # a non-trivial, well-scaled map
    torch.testing.assert_close(got, expected, rtol=0, atol=1e-5)
    # the unfolded stand-alone (on-the-fly fold) gives the same map
    with torch.no_grad():
        unfolded = extract_subnet(logit_supernet, arch, fold=False)(x)
    torch.testing.assert_close(unfolded, expected, rtol=0, atol=1e-5)


def test_multi_branch_path_with_running_stats_equals_folded_path(space, logit_supernet):
    arch = sample_uniform(space, random.Random(11))
    x = torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(5))
    calibrate_bn_(logit_supernet, x, arch)
    with torch.no_grad():
        folded = logit_supernet(x, arch)
        logit_supernet.train()
        for m in logit_supernet.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.eval()
        try:
            multi = logit_supernet(x, arch)
        finally:
            logit_supernet.eval()
    assert isinstance(multi, dict) and sorted(multi) == [0, 1, 2, 3, 4]
    # same maths, different summation order through ~30 layers: float32 rounding of a few 1e-5
    torch.testing.assert_close(multi[0], folded, rtol=1e-4, atol=1e-4)


def test_full_space_max_arch_extract_agrees():
    torch.manual_seed(0)
    net = perturb_(Supernet(inas_space(), head_activation=None), seed=3)
    x = torch.randn(2, 3, 32, 64, generator=torch.Generator().manual_seed(0))
    calibrate_bn_(net, x)
    net.eval()
    with torch.no_grad():
        expected = net(x)
        got = extract_subnet(net, net.max_arch)(x)
    torch.testing.assert_close(got, expected, rtol=0, atol=1e-5)


def test_smsu_multi_branch_equals_fold_for_every_kernel_set():
    torch.manual_seed(0)
    unit = perturb_(DynamicSMSU(12, (3, 5, 7, 9), stride=2), seed=4)
    x = torch.randn(2, 8, 16, 16)
    for kernels in [(3,), (9,), (3, 5), (5, 9), (3, 7, 9), (3, 5, 7, 9)]:
        unit.train()
        for m in unit.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.eval()
        with torch.no_grad():
            multi = unit(x, kernels)
            unit.eval()
            folded = unit(x, kernels)
        assert multi.shape == (2, 8, 8, 8)
        torch.testing.assert_close(folded, multi, rtol=0, atol=1e-5)


def test_dynamic_batchnorm_updates_only_the_active_prefix():
    bn = DynamicBatchNorm2d(16).train()
    bn(torch.randn(4, 10, 5, 5) + 3.0)
    assert torch.all(bn.bn.running_mean[:10] > 0.1)
    assert torch.all(bn.bn.running_mean[10:] == 0) and torch.all(bn.bn.running_var[10:] == 1)
    assert int(bn.bn.num_batches_tracked) == 1
    before = bn.bn.running_mean.clone()
    bn.bn.momentum = None  # cumulative average as in nn.BatchNorm2d: the 2nd batch has weight 1/2
    bn(torch.zeros(4, 10, 5, 5))
    torch.testing.assert_close(bn.bn.running_mean[:10], before[:10] / 2)
    bn.eval()
    y = bn(torch.ones(1, 6, 2, 2))
    expected = (1 - bn.bn.running_mean[:6]) / torch.sqrt(bn.bn.running_var[:6] + bn.bn.eps)
    torch.testing.assert_close(y[0, :, 0, 0], expected)


def test_weight_sharing_gradients_touch_only_the_active_slice(space):
    torch.manual_seed(0)
    net = perturb_(Supernet(space), seed=0).train()  # gamma != 0 in the project BNs: gradients reach the body
    arch = sample_min(space)
    out = net(torch.randn(2, 3, 64, 64), arch)
    sum(m.mean() for m in out.values()).backward()
    expand = net.backbone.stage_3[0].inverted_bottleneck.conv.conv.weight
    in_c, hidden = arch.backbone[2].widths[-1], 6 * arch.backbone[2].widths[-1]
    assert expand.grad[:hidden, :in_c].abs().sum() > 0
    assert expand.grad[hidden:].abs().sum() == 0 and expand.grad[:, in_c:].abs().sum() == 0
    dw = net.backbone.stage_3[0].depth_conv.convbn.conv.weight  # kernel 3 only -> centre 3x3 of the 7x7 weight
    assert dw.grad[:hidden, :, 2:5, 2:5].abs().sum() > 0
    mask = torch.ones_like(dw.grad, dtype=torch.bool)
    mask[:hidden, :, 2:5, 2:5] = False
    assert dw.grad[mask].abs().sum() == 0
    assert net.backbone.stage_5[2].inverted_bottleneck.conv.conv.weight.grad is None  # layers beyond depth unused


def test_arch_outside_space_and_bad_input_are_rejected(space):
    net = Supernet(space).eval()
    full_max = sample_max(inas_space())
    with pytest.raises(ArchError):
        net(torch.zeros(1, 3, 64, 64), full_max)
    bad = sample_min(space)
    bad = type(bad)(bad.backbone, bad.transport, bad.decoder[:4] + (LevelArch((3, 4), (3,)),))
    with pytest.raises(ArchError):
        net(torch.zeros(1, 3, 64, 64), bad)
    with pytest.raises(ValueError, match="multiples of 32"):
        net(torch.zeros(1, 3, 48, 64))
    with pytest.raises(ValueError, match="containing 0"):
        Supernet(space, output_levels=(1, 2))

"""Stand-alone model and blocks: folding, key names, ONNX export, save/load."""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch

from inas.nn import (
    SMSU,
    DecoderFusion,
    DecoderUpsample,
    Head,
    MBConvLayer,
    StandaloneModel,
    Stem,
    Supernet,
    TransportDownsample,
    TransportFusion,
    TransportUpsample,
    extract_subnet,
    load_standalone,
    save_standalone,
)
from inas.nn.testing import calibrate_bn_, perturb_, small_space
from inas.space import sample_uniform


@pytest.fixture(scope="module")
def space():
    return small_space()


@pytest.fixture(scope="module")
def folded_model(space):
    torch.manual_seed(0)
    arch = sample_uniform(space, random.Random(7))
    model = perturb_(StandaloneModel.from_arch(space, arch, num_classes=1, output_levels=(0, 1)), seed=2)
    calibrate_bn_(model, torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(1)))
    return model.reparameterize().eval()


def test_stand_alone_keys_are_supernet_keys_and_fold_as_the_original(space):
    arch = sample_uniform(space, random.Random(3))
    with torch.device("meta"):
        supernet_keys = set(Supernet(space).state_dict())
        model = StandaloneModel.from_arch(space, arch)
    keys = set(model.state_dict())
    assert keys <= supernet_keys
    assert any(".bn_dict.ks_" in k for k in keys) and any(k.endswith("depth_conv.convbn.ks_3") for k in keys)
    stage_3 = arch.backbone[3]
    k_max = max(stage_3.kernels[0])
    weight = model.state_dict()["backbone.stage_3.0.depth_conv.convbn.conv.weight"]
    assert tuple(weight.shape[2:]) == (k_max, k_max)
    model.reparameterize()
    folded = model.state_dict()
    assert not any(".bn_dict." in k or ".convbn.ks_" in k or ".depthwise1.ks_" in k for k in folded)
    assert "backbone.stage_3.0.depth_conv.convbn.conv.bias" in folded
    assert "transport.mainops.level_0.fusion.depthwise2.conv.bias" in folded


def test_unfolded_eval_equals_reparameterized(space):
    torch.manual_seed(1)
    arch = sample_uniform(space, random.Random(5))
    model = perturb_(StandaloneModel.from_arch(space, arch, head_activation=None), seed=5)
    x = torch.randn(1, 3, 64, 96)
    calibrate_bn_(model, x)
    model.eval()
    with torch.no_grad():
        before = model(x)
        model.reparameterize()
        after = model(x)
    torch.testing.assert_close(after, before, rtol=0, atol=1e-5)
    assert model.reparameterize() is model  # idempotent


def test_train_mode_returns_requested_levels(folded_model):
    folded_model.train()
    try:
        with torch.no_grad():
            out = folded_model(torch.randn(1, 3, 64, 96))
    finally:
        folded_model.eval()
    assert sorted(out) == [0, 1] and all(v.shape == (1, 1, 64, 96) for v in out.values())


def test_onnx_export_agrees_with_torch(folded_model, tmp_path):
    onnxruntime = pytest.importorskip("onnxruntime")
    x = torch.randn(1, 3, 64, 64, generator=torch.Generator().manual_seed(3))
    path = tmp_path / "model.onnx"
    torch.onnx.export(folded_model, (x,), str(path), opset_version=17, dynamo=False, input_names=["image"],
                      output_names=["saliency"])
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    (got,) = session.run(None, {"image": x.numpy()})
    with torch.no_grad():
        expected = folded_model(x).numpy()
    assert got.shape == (1, 1, 64, 64)
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-4)


def test_save_and_load_round_trip(folded_model, tmp_path):
    path = tmp_path / "model.pth"
    save_standalone(folded_model, path)
    loaded = load_standalone(path)
    assert loaded.folded and loaded.arch == folded_model.arch and loaded.output_levels == (0, 1)
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(loaded(x), folded_model(x), rtol=0, atol=0)


def test_blocks_shapes_and_fold():
    torch.manual_seed(0)
    x = torch.randn(1, 8, 16, 16)
    assert Stem(12)(torch.randn(1, 3, 32, 32)).shape == (1, 12, 16, 16)
    assert MBConvLayer(8, 12, 2, 6, (3, 5)).eval()(x).shape == (1, 12, 8, 8)
    same = MBConvLayer(8, 8, 1, 1, (3,))
    assert same.identity_conv is None and same.eval()(x).shape == (1, 8, 16, 16)
    assert TransportUpsample(2, 8, 4)(x).shape == (1, 4, 64, 64)
    assert TransportDownsample(1, 8, 4)(x).shape == (1, 4, 8, 8)
    assert DecoderUpsample(1, 8, 4)(x).shape == (1, 4, 32, 32)
    assert Head(8, 2, level=1, activation="softmax")(x).shape == (1, 2, 64, 64)
    fusion = TransportFusion(8, (3, 7)).eval()
    stacked = torch.randn(1, 3, 8, 16, 16)
    with torch.no_grad():
        torch.testing.assert_close(fusion(stacked), fusion(list(stacked.unbind(1))))
    assert DecoderFusion(8, (5,)).eval()(stacked).shape == (1, 8, 16, 16)
    unit = perturb_(SMSU(8, (3, 5, 9), stride=2), seed=0).eval()
    with torch.no_grad():
        before = unit(x)
        unit.reparameterize()
        after = unit(x)
    assert unit.conv.weight.shape == (8, 1, 9, 9) and unit.conv.bias is not None
    torch.testing.assert_close(after, before, rtol=0, atol=1e-5)


def test_extract_subnet_rejects_missing_heads(space):
    with torch.device("meta"):
        net = Supernet(space, output_levels=(0,))
    with pytest.raises(ValueError, match="no head"):
        extract_subnet(net, net.max_arch, output_levels=(0, 2))

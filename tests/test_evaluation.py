"""Precise-BN recalibration, BN snapshots and metric evaluation of sub-networks (inas.evaluation)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from inas.config import DataConfig
from inas.data import bn_loader_from_config, eval_loader_from_config
from inas.data.synth_sod import synthesize_sod
from inas.evaluation import (
    bn_state,
    evaluate_arch,
    evaluate_predictions,
    fit_to_stride,
    load_bn_state,
    recalibrate_bn,
)
from inas.nn import Supernet
from inas.nn.testing import perturb_, small_space
from inas.space import sample_min


def _batches(seed: int, n: int, shape=(4, 3, 8, 8)) -> list[dict]:
    gen = torch.Generator().manual_seed(seed)
    return [{"image": torch.randn(shape, generator=gen) * (i + 1) + i} for i in range(n)]


def test_recalibrate_bn_is_the_mean_of_batch_statistics():
    model = nn.Sequential(nn.Conv2d(3, 5, 3, padding=1), nn.BatchNorm2d(5, momentum=0.3), nn.ReLU(),
                          nn.Conv2d(5, 4, 1), nn.BatchNorm2d(4))
    batches = _batches(0, 3)
    # expected: per batch, the statistics of the BN inputs; the second BN sees the first one normalised by the
    # batch statistics (train mode)
    expected_mean, expected_var = [], []
    with torch.no_grad():
        for batch in batches:
            x = model[0](batch["image"])
            m1, v1 = x.mean((0, 2, 3)), x.var((0, 2, 3), unbiased=True)
            y = model[3](model[2](nn.functional.batch_norm(x, None, None, model[1].weight, model[1].bias, True)))
            expected_mean.append((m1, y.mean((0, 2, 3))))
            expected_var.append((v1, y.var((0, 2, 3), unbiased=True)))
    model.train()
    recalibrate_bn(model, batches, num_batches=3)
    assert not model.training
    for i, bn in enumerate((model[1], model[4])):
        mean = torch.stack([m[i] for m in expected_mean]).mean(0)
        var = torch.stack([v[i] for v in expected_var]).mean(0)
        torch.testing.assert_close(bn.running_mean, mean, rtol=1e-4, atol=1e-5)
        torch.testing.assert_close(bn.running_var, var, rtol=1e-4, atol=1e-5)
    assert model[1].momentum == 0.3 and model[4].momentum == 0.1
    assert int(model[1].num_batches_tracked) == 0


def test_recalibrate_bn_uses_at_most_num_batches_and_rejects_empty():
    model = nn.Sequential(nn.BatchNorm2d(3))
    batches = _batches(1, 4)
    recalibrate_bn(model, batches, num_batches=1)
    torch.testing.assert_close(model[0].running_mean, batches[0]["image"].mean((0, 2, 3)))
    with pytest.raises(ValueError, match="no batch"):
        recalibrate_bn(model, [], num_batches=2)


def test_recalibrate_bn_leaves_unused_supernet_entries_unchanged():
    torch.manual_seed(0)
    supernet = perturb_(Supernet(small_space()), seed=1)
    arch = sample_min(supernet.space)
    before = bn_state(supernet)
    batches = _batches(2, 2, shape=(2, 3, 64, 64))
    recalibrate_bn(supernet, batches, 2, forward=lambda x: supernet(x, arch))
    after = bn_state(supernet)
    stem_c = arch.backbone[0].widths[0]
    stem = "backbone.stem.stemnorm.bn.running_mean"
    assert stem_c < before[stem].numel()
    assert not torch.equal(after[stem][:stem_c], before[stem][:stem_c])  # used prefix recalibrated
    torch.testing.assert_close(after[stem][stem_c:], before[stem][stem_c:], rtol=0, atol=0)  # rest untouched
    # stage_1 has depths [1, 2]; the min arch runs one layer, so layer 1's BNs keep their values
    unused = [k for k in before if k.startswith("backbone.stage_1.1.")]
    assert unused
    for key in unused:
        torch.testing.assert_close(after[key], before[key], rtol=0, atol=0)
    # a kernel outside the min arch's kernel sets ({3}): its BN is untouched
    k5 = [k for k in before if "bn_dict.ks_5" in k and k.endswith("running_mean")]
    assert k5 and all(torch.equal(after[k], before[k]) for k in k5)
    # the prefix of the stem BN equals the mean of the two batches' statistics
    stem_means = []
    for batch in batches:
        x = supernet.backbone.stem.stemconv(batch["image"].contiguous(memory_format=torch.channels_last), stem_c)
        stem_means.append(x.mean((0, 2, 3)))
    torch.testing.assert_close(after[stem][:stem_c], torch.stack(stem_means).mean(0), rtol=1e-4, atol=1e-4)


def test_bn_state_round_trip_restores_every_buffer():
    model = nn.Sequential(nn.BatchNorm2d(3), nn.Conv2d(3, 3, 1), nn.BatchNorm2d(3))
    snapshot = bn_state(model)
    assert set(snapshot) == {f"{i}.{b}" for i in (0, 2) for b in ("running_mean", "running_var",
                                                                  "num_batches_tracked")}
    model.train()
    model(torch.randn(2, 3, 4, 4) + 5)
    assert not torch.equal(model[0].running_mean, snapshot["0.running_mean"])
    load_bn_state(model, snapshot)
    for key, value in bn_state(model).items():
        assert torch.equal(value, snapshot[key])
    with pytest.raises(ValueError, match="does not match"):
        load_bn_state(model, {"0.running_mean": torch.zeros(3)})


def _sod_eval_batches() -> list[dict]:
    gen = torch.Generator().manual_seed(3)
    batches = []
    for size in ((40, 50), (33, 47)):
        gt = (torch.rand(size, generator=gen) > 0.6).to(torch.uint8) * 255
        batches.append({"image": torch.zeros(1, 3, 32, 32), "label": [gt]})
    return batches


def test_evaluate_predictions_sod_perfect_and_inverted():
    batches = _sod_eval_batches()
    it = iter(batches)

    def oracle(images):  # returns the ground truth at its own size (no resize needed)
        gt = next(it)["label"][0]
        return (gt.float() / 255)[None, None]

    scores = evaluate_predictions(oracle, batches, "sod")
    assert scores["maxF"] == pytest.approx(1.0, abs=1e-6)
    assert scores["mae"] == pytest.approx(0.0, abs=1e-6)
    assert set(scores) >= {"maxF", "meanF", "mae", "sm", "maxE"}
    it = iter(batches)

    def inverted(images):
        gt = next(it)["label"][0]
        return (1 - gt.float() / 255)[None, None]

    scores = evaluate_predictions(inverted, batches, "sod", metrics="search")
    assert set(scores) == {"maxF", "mae"}
    assert scores["mae"] == pytest.approx(1.0, abs=1e-6)


def test_evaluate_predictions_resizes_to_ground_truth_size():
    gt = torch.zeros(64, 96, dtype=torch.uint8)
    gt[:, 48:] = 255
    batches = [{"image": torch.zeros(1, 3, 32, 32), "label": [gt]}]
    low_res = torch.zeros(1, 1, 16, 24)
    low_res[..., 12:] = 1.0
    scores = evaluate_predictions(lambda images: low_res, batches, "sod", metrics=["mae", "maxF"])
    assert scores["maxF"] > 0.99
    assert scores["mae"] < 0.02


def test_evaluate_predictions_segmentation_miou():
    labels = torch.tensor([[0, 0, 1, 1], [2, 2, 255, 1]])
    logits = nn.functional.one_hot(labels.clamp(max=2), 3).permute(2, 0, 1).float()[None]
    batches = [{"image": torch.zeros(1, 3, 32, 32), "label": [labels]}]
    scores = evaluate_predictions(lambda images: logits, batches, "seg")
    assert scores["miou"] == pytest.approx(1.0)
    wrong = logits.roll(1, dims=1)
    assert evaluate_predictions(lambda images: wrong, batches, "seg")["miou"] == pytest.approx(0.0)


def test_fit_to_stride():
    assert fit_to_stride(torch.zeros(1, 3, 64, 96)).shape == (1, 3, 64, 96)
    assert fit_to_stride(torch.zeros(1, 3, 50, 70)).shape == (1, 3, 64, 96)


@pytest.fixture(scope="module")
def sod_root(tmp_path_factory):
    out = tmp_path_factory.mktemp("train_eval") / "sod"
    synthesize_sod(out, n_train=6, n_test=3, size=64, seed=0, workers=1)
    return out


def test_evaluate_arch_restores_bn_state_and_is_repeatable(sod_root):
    torch.manual_seed(0)
    supernet = perturb_(Supernet(small_space()), seed=2)
    data = DataConfig(root=sod_root, image_size=64, batch_size=2, num_workers=0, multi_scale_sizes=[])
    bn_loader = bn_loader_from_config(data, "sod", 2)
    val_loader = eval_loader_from_config(data, "sod")
    arch = sample_min(supernet.space)
    before = bn_state(supernet)
    supernet.train()
    first = evaluate_arch(supernet, arch, bn_loader, val_loader, 2, "sod", metrics="search")
    assert supernet.training
    for key, value in bn_state(supernet).items():
        assert torch.equal(value, before[key]), key
    second = evaluate_arch(supernet, arch, bn_loader, val_loader, 2, "sod", metrics="search")
    assert first == second
    assert 0.0 <= first["mae"] <= 1.0 and 0.0 <= first["maxF"] <= 1.0

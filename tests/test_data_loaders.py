"""Loaders over a tiny synthetic set: training (seeded, DDP shards), BN recalibration, evaluation, config helpers."""

from __future__ import annotations

import pytest
import torch

from inas.config import DataConfig
from inas.data import (
    bn_loader_from_config,
    build_bn_loader,
    build_train_loader,
    eval_loader_from_config,
    multi_scale_from_config,
    train_dataset,
    train_loader_from_config,
)
from inas.data.loaders import bn_subset_indices
from inas.data.sod import SODTrainDataset
from inas.data.synth_seg import synthesize_seg
from inas.data.synth_sod import synthesize_sod
from inas.errors import BadInputError


@pytest.fixture(scope="module")
def sod_root(tmp_path_factory):
    out = tmp_path_factory.mktemp("loaders") / "sod"
    synthesize_sod(out, n_train=7, n_test=3, size=48, seed=0, workers=1)
    return out


def _config(root, **overrides) -> DataConfig:
    values = {"root": root, "image_size": 32, "multi_scale_sizes": [32, 64], "batch_size": 2, "num_workers": 0}
    values.update(overrides)
    return DataConfig(**values)


def _names(loader, epoch):
    loader.sampler.set_epoch(epoch)
    return [name for batch in loader for name in batch["name"]]


def test_train_loader_batches_drop_last_and_seeded_epochs(sod_root):
    loader = train_loader_from_config(_config(sod_root), "sod", seed=5)
    batches = list(loader)
    assert len(batches) == 3  # 7 samples, batch 2, drop_last
    assert batches[0]["image"].shape == (2, 3, 32, 32) and batches[0]["label"].shape == (2, 1, 32, 32)
    again = train_loader_from_config(_config(sod_root), "sod", seed=5)
    assert _names(loader, 0) == _names(again, 0)
    assert _names(loader, 0) != _names(loader, 1)
    assert len(set(_names(loader, 2))) == 6


def test_train_loader_with_workers_is_reproducible(sod_root):
    def first_labels(seed):
        loader = train_loader_from_config(_config(sod_root, num_workers=2, flip=True), "sod", seed=seed)
        return torch.cat([batch["label"] for batch in loader])

    assert torch.equal(first_labels(1), first_labels(1))
    assert not torch.equal(first_labels(1), first_labels(2))


def test_distributed_shards_are_disjoint(sod_root):
    dataset = train_dataset(_config(sod_root), "sod", progress=False)
    shards = []
    for rank in range(2):
        loader = build_train_loader(dataset, 1, seed=0, num_workers=0, distributed=True, num_replicas=2, rank=rank)
        shards.append(_names(loader, 0))
    assert len(shards[0]) == len(shards[1]) == 3 and not set(shards[0]) & set(shards[1])


def test_batch_larger_than_data_is_bad_input(sod_root):
    with pytest.raises(BadInputError, match="data.batch_size"):
        train_loader_from_config(_config(sod_root, batch_size=8), "sod")


def test_multi_scale_on_loader_batches(sod_root):
    config = _config(sod_root)
    loader = train_loader_from_config(config, "sod", seed=0)
    resize = multi_scale_from_config(config, "sod", seed=0)
    seen = set()
    for _ in range(4):
        for batch in loader:
            out = resize(batch)
            side = out["image"].shape[-1]
            assert out["label"].shape == (2, 1, side, side) and set(out["label"].unique().tolist()) <= {0.0, 1.0}
            seen.add(side)
    assert seen == {32, 64}
    assert multi_scale_from_config(config, "seg").next_size() is None


def test_bn_loader_is_fixed_and_unaugmented(sod_root):
    config = _config(sod_root)
    loader = bn_loader_from_config(config, "sod", num_batches=5, seed=1)
    first = [batch["image"] for batch in loader]
    second = [batch["image"] for batch in loader]
    assert len(first) == 5 and all(a.shape == (2, 3, 32, 32) for a in first)
    assert all(torch.equal(a, b) for a, b in zip(first, second, strict=True))
    cached = bn_loader_from_config(config, "sod", num_batches=5, seed=1, cache=True)
    assert all(torch.equal(a, b["image"]) for a, b in zip(first, cached, strict=True))
    assert bn_subset_indices(7, 10, seed=1)[:7] == bn_subset_indices(7, 7, seed=1)
    assert sorted(bn_subset_indices(7, 7, seed=1)) == list(range(7))
    flipping = SODTrainDataset(sod_root, "train.lst", 32, flip=True, progress=False)
    assert len(list(build_bn_loader(flipping, 3, 2))) == 2


def test_eval_loader_full_size_labels(sod_root):
    loader = eval_loader_from_config(_config(sod_root), "sod", "test.lst", batch_size=2)
    batches = list(loader)
    assert [len(b["label"]) for b in batches] == [2, 1]
    batch = batches[0]
    assert batch["image"].shape == (2, 3, 32, 32)
    for label, h, w in zip(batch["label"], batch["height"], batch["width"], strict=True):
        assert label.shape == (h, w) and label.dtype == torch.uint8 and set(label.unique().tolist()) == {0, 255}


def test_seg_loaders_from_config(tmp_path):
    root = tmp_path / "seg"
    synthesize_seg(root, n_train=2, n_test=1, size=32, seed=0, workers=1)
    config = _config(root, crop_size=[24, 40], val_list="val.lst")
    batch = next(iter(train_loader_from_config(config, "seg")))
    assert batch["image"].shape == (2, 3, 24, 40) and batch["label"].shape == (2, 24, 40)
    assert batch["label"].dtype == torch.int64
    evaluated = next(iter(eval_loader_from_config(config, "seg")))
    assert evaluated["image"].shape == (1, 3, 32, 64) and evaluated["label"][0].shape == (32, 64)
    bn = next(iter(bn_loader_from_config(config, "seg", num_batches=1)))
    assert bn["label"].shape == (2, 24, 40)
    square = next(iter(train_loader_from_config(_config(root), "seg")))  # no crop_size: image_size square
    assert square["label"].shape == (2, 32, 32)

"""`train.cluster.sync_bn`: the dynamic BN synchronised over DDP ranks keeps its keys and its channel slicing.

Fast: conversion keeps the state-dict keys; without a process group of more than one rank (none, or a 1-process
gloo group) and in eval mode, a converted supernet computes exactly what the plain one does. Slow (2 gloo processes
on CPU, `pytest -m slow tests/test_nn_sync_bn.py`): DDP + sync BN on two half batches gives the gradients and the
running statistics of one process on the full batch, also for a narrower sub-network (sliced channels).
"""

from __future__ import annotations

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from test_train_support import tiny_space

from inas.nn import Supernet
from inas.nn.dynamic import DynamicBatchNorm2d, convert_sync_batchnorm
from inas.space import sample_max, sample_min
from inas.train.evaluation import bn_state
from inas.train.recipe import SupernetCriterion, train_step


def _supernet() -> Supernet:
    torch.manual_seed(0)
    return Supernet(tiny_space(), 1, (0, 1, 2, 3, 4))


def _batch(size: int = 4) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(5)
    return torch.randn(size, 3, 64, 64, generator=gen), (torch.rand(size, 1, 64, 64, generator=gen) > 0.5).float()


def _outputs(net: Supernet, images: torch.Tensor, arch) -> list[torch.Tensor]:
    out = net(images, arch)  # train: {level: map}; eval: the final map
    return [out] if isinstance(out, torch.Tensor) else [out[level] for level in sorted(out)]


def test_conversion_keeps_keys_and_counts_every_dynamic_bn():
    plain, synced = _supernet(), _supernet()
    count = convert_sync_batchnorm(synced)
    assert count == sum(isinstance(m, DynamicBatchNorm2d) for m in synced.modules()) > 10
    assert list(synced.state_dict()) == list(plain.state_dict())
    assert all(m.sync for m in synced.modules() if isinstance(m, DynamicBatchNorm2d))


@pytest.mark.parametrize("mode", ["train", "eval"])
def test_without_a_multi_rank_group_converted_equals_plain(mode):
    images, _ = _batch()
    plain, synced = _supernet(), _supernet()
    convert_sync_batchnorm(synced)
    for arch in (sample_max(plain.space), sample_min(plain.space)):
        getattr(plain, mode)()
        getattr(synced, mode)()
        for a, b in zip(_outputs(plain, images, arch), _outputs(synced, images, arch), strict=True):
            assert torch.equal(a, b)
    for key, value in bn_state(plain).items():
        assert torch.equal(value, bn_state(synced)[key]), key


def test_one_process_gloo_group_runs_the_local_path(tmp_path):
    images, _ = _batch()
    dist.init_process_group("gloo", init_method=f"file://{tmp_path}/init", rank=0, world_size=1)
    try:
        plain, synced = _supernet().train(), _supernet().train()
        convert_sync_batchnorm(synced)
        arch = sample_min(plain.space)
        for a, b in zip(_outputs(plain, images, arch), _outputs(synced, images, arch), strict=True):
            assert torch.equal(a, b)
    finally:
        dist.destroy_process_group()


def _step(net: torch.nn.Module, supernet: Supernet, images, masks, arch) -> dict[str, torch.Tensor]:
    train_step(net, images, masks, [("only", arch)], SupernetCriterion("sod", distillation=False))
    grads = {f"grad.{n}": p.grad.clone() for n, p in supernet.named_parameters() if p.grad is not None}
    return {**grads, **bn_state(supernet)}


def _worker(rank: int, folder: str, arch_name: str) -> None:
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{folder}/init", rank=rank, world_size=2)
    try:
        supernet = _supernet().train()
        convert_sync_batchnorm(supernet)
        model = torch.nn.parallel.DistributedDataParallel(supernet, find_unused_parameters=True)
        arch = {"max": sample_max, "min": sample_min}[arch_name](supernet.space)
        images, masks = _batch()
        torch.save(_step(model, supernet, images[2 * rank:2 * rank + 2], masks[2 * rank:2 * rank + 2], arch),
                   f"{folder}/rank{rank}.pt")
    finally:
        dist.destroy_process_group()


@pytest.mark.slow
@pytest.mark.parametrize("arch_name", ["max", "min"])
def test_two_ranks_with_sync_bn_equal_one_process_on_the_full_batch(tmp_path, arch_name):
    ctx = mp.get_context("spawn")
    procs = [ctx.Process(target=_worker, args=(rank, str(tmp_path), arch_name)) for rank in range(2)]
    for proc in procs:
        proc.start()
    for proc in procs:
        proc.join(timeout=180)
        assert proc.exitcode == 0
    supernet = _supernet().train()
    arch = {"max": sample_max, "min": sample_min}[arch_name](supernet.space)
    reference = _step(supernet, supernet, *_batch(), arch)
    assert any(k.startswith("grad.") for k in reference)
    for rank in range(2):
        got = torch.load(tmp_path / f"rank{rank}.pt", weights_only=True)
        assert set(got) == set(reference)
        for key, value in reference.items():
            torch.testing.assert_close(got[key], value, rtol=1e-4, atol=1e-5, msg=key)

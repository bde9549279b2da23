"""Slow: the sandwich step under DDP (2 gloo processes, what `train --cluster` runs): after one step every replica holds
the same weights, and the gradients equal the average of the two ranks' single-process gradients, including
parameters that only an earlier sub-network of the step used."""

from __future__ import annotations

import random

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from test_train_support import tiny_space

from inas.nn import Supernet
from inas.train.recipe import SupernetCriterion, sandwich_archs, train_step

pytestmark = pytest.mark.slow


def _batch(rank: int) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(100 + rank)
    return torch.randn(2, 3, 64, 64, generator=gen), (torch.rand(2, 1, 64, 64, generator=gen) > 0.5).float()


def _local_gradients(rank: int, last_only: bool = False) -> dict[str, torch.Tensor]:
    torch.manual_seed(0)
    model = Supernet(tiny_space()).train()
    archs = sandwich_archs(model.space, random.Random(1), 2)
    if last_only:
        archs = archs[-1:]
    images, masks = _batch(rank)
    train_step(model, images, masks, archs, SupernetCriterion("sod"))
    return {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}


def _worker(rank: int, folder: str) -> None:
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{folder}/init", rank=rank, world_size=2)
    try:
        torch.manual_seed(0)
        supernet = Supernet(tiny_space()).train()
        model = torch.nn.parallel.DistributedDataParallel(supernet, find_unused_parameters=True)
        archs = sandwich_archs(supernet.space, random.Random(1), 2)
        images, masks = _batch(rank)
        train_step(model, images, masks, archs, SupernetCriterion("sod"))
        grads = {n: p.grad.clone() for n, p in supernet.named_parameters() if p.grad is not None}
        torch.save(grads, f"{folder}/grads{rank}.pt")
    finally:
        dist.destroy_process_group()


def test_ddp_sandwich_step_averages_every_used_gradient(tmp_path):
    ctx = mp.get_context("spawn")
    procs = [ctx.Process(target=_worker, args=(rank, str(tmp_path))) for rank in range(2)]
    for proc in procs:
        proc.start()
    for proc in procs:
        proc.join(timeout=120)
        assert proc.exitcode == 0
    results = [torch.load(tmp_path / f"grads{rank}.pt", weights_only=True) for rank in range(2)]
    local = [_local_gradients(0), _local_gradients(1)]
    assert set(results[0]) == set(results[1]) == set(local[0])
    # a parameter used by the max network but not by the last (random) one: DDP must still have averaged it
    early_only = set(local[0]) - set(_local_gradients(0, last_only=True))
    assert early_only  # e.g. the kernel-5 branches and the third stage_5 layer of the max network
    for name, grad in local[0].items():
        expected = (grad + local[1][name]) / 2
        torch.testing.assert_close(results[0][name], expected, rtol=1e-4, atol=1e-5, msg=name)
        torch.testing.assert_close(results[1][name], results[0][name], rtol=0, atol=0, msg=name)

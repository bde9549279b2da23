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

from inas.evaluation import bn_state
from inas.nn import Supernet
from inas.nn.dynamic import DynamicBatchNorm2d, convert_sync_batchnorm
from inas.space import sample_max, sample_min
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


@pytest.mark.slow
def test_cluster_run_with_sync_bn_trains_and_validates(tmp_path):
    """`train --cluster` with 2 workers and `sync_bn: true`: training runs, rank 0 recalibrates BN and validates
    alone (no collective in no-grad forwards, so no deadlock), and the checkpoint keys are the plain ones."""
    from test_train_support import tiny_config_doc

    from inas.config import parse_config
    from inas.data.synth_sod import synthesize_sod
    from inas.train.cluster import train_on_ray
    from inas.train.state import CHECKPOINT_NAME, load_train_checkpoint

    synthesize_sod(tmp_path / "sod", n_train=8, n_test=2, size=32, seed=0, workers=1)
    doc = tiny_config_doc(tmp_path / "sod", tmp_path / "run", iterations=2)
    doc["train"]["cluster"] = {"workers": 2, "sync_bn": True, "max_failures": 0}
    result = train_on_ray(parse_config(doc), tmp_path / "run", progress=False)
    assert result.iterations == 2 and set(result.validation) == {"max", "min", "random"}
    state = load_train_checkpoint(tmp_path / "run" / CHECKPOINT_NAME)
    assert list(state.model) == list(_supernet().state_dict())


def test_trainer_converts_only_distributed_runs_with_sync_bn(tmp_path):
    from test_train_support import tiny_config

    from inas.data.synth_sod import synthesize_sod
    from inas.train.context import LocalContext
    from inas.train.loop import SupernetTrainer

    class _Distributed(LocalContext):
        distributed = True

    synthesize_sod(tmp_path / "sod", n_train=4, n_test=1, size=32, seed=0, workers=1)
    for sync_bn, context, expected in ((True, _Distributed(torch.device("cpu")), True),
                                       (True, LocalContext(torch.device("cpu")), False),
                                       (False, _Distributed(torch.device("cpu")), False)):
        config = tiny_config(tmp_path / "sod", tmp_path / "run")
        config.train.cluster.sync_bn = sync_bn
        trainer = SupernetTrainer(config, tmp_path / f"run{sync_bn}{expected}", context, resume=False,
                                  progress=False, check_data=False)
        trainer.close()
        flags = {m.sync for m in trainer.supernet.modules() if isinstance(m, DynamicBatchNorm2d)}
        assert flags == {expected}

"""What only a CUDA GPU can check (skipped elsewhere; CI has no GPU): local training on the GPU in fp32, bf16 and
fp16 (with a resume), DDP over NCCL with synchronised batch norm through the same loop as `train --cluster`, the
evaluator on the GPU against the CPU, and the `torch-cuda` latency backend.

    python -m pytest -q tests/test_cuda.py      # on a machine with a GPU
"""

from __future__ import annotations

import csv
import math
import random

import pytest
import torch
import torch.distributed as dist
import torch.nn.functional as F
from test_train_support import tiny_config, tiny_space

from inas.data import bn_loader_from_config, eval_loader_from_config
from inas.data.synth_sod import synthesize_sod
from inas.evaluation import evaluate_arch
from inas.latency.backends import Runner, build_network
from inas.nn import Supernet, load_supernet
from inas.nn.dynamic import sync_batch_norm
from inas.space import sample_max, sample_uniform
from inas.train.context import LocalContext
from inas.train.loop import train_supernet
from inas.train.state import CHECKPOINT_NAME, load_train_checkpoint

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")

CUDA = torch.device("cuda", 0)


@pytest.fixture(scope="module")
def sod_root(tmp_path_factory):
    out = tmp_path_factory.mktemp("cuda") / "sod"
    synthesize_sod(out, n_train=12, n_test=4, size=64, seed=0, workers=1)
    return out


def _losses(run_dir) -> list[float]:
    with (run_dir / "metrics.csv").open(newline="") as handle:
        return [float(row["loss"]) for row in csv.DictReader(handle)]


class _Stop(Exception):
    pass


class _StoppingContext(LocalContext):
    """A local GPU run that stops (like a kill) when iteration `at` reports."""

    def __init__(self, at: int) -> None:
        super().__init__(CUDA)
        self.at = at

    def report(self, metrics, checkpoint=None):
        if metrics.get("iteration") == self.at:
            raise _Stop


@pytest.mark.parametrize("precision", ["fp32", "bf16", "fp16"])
def test_local_training_on_the_gpu_resumes_in_each_precision(sod_root, tmp_path, precision):
    config = tiny_config(sod_root, tmp_path, device="cuda", precision=precision)
    with pytest.raises(_Stop):
        train_supernet(config, tmp_path, progress=False, context=_StoppingContext(at=3))
    checkpoint = load_train_checkpoint(tmp_path / CHECKPOINT_NAME)
    assert checkpoint.iteration == 2
    result = train_supernet(config, tmp_path, resume=True, progress=False)
    assert (result.start_iteration, result.iterations) == (2, 4)
    losses = _losses(tmp_path)
    assert len(losses) == 4 and all(math.isfinite(v) and v > 0 for v in losses)
    assert 0 <= result.validation["max"]["maxF"] <= 1
    supernet = load_supernet(tmp_path / "supernet.pt")
    assert all(t.device.type == "cpu" and torch.isfinite(t.float()).all() for t in supernet.state_dict().values())


class _NcclContext(LocalContext):
    """Rank 0 of a one-rank NCCL group, wrapped in DDP exactly as `RayWorkerContext` wraps a multi-rank run."""

    distributed = True

    def wrap_model(self, model):
        return torch.nn.parallel.DistributedDataParallel(model, device_ids=[0], find_unused_parameters=True)

    def barrier(self):
        dist.barrier()

    def gather(self, value):
        values = [None] * dist.get_world_size()
        dist.all_gather_object(values, value)
        return values


@pytest.fixture
def nccl_group(tmp_path):
    dist.init_process_group("nccl", init_method=f"file://{tmp_path / 'store'}", rank=0, world_size=1,
                            device_id=CUDA)
    yield
    dist.destroy_process_group()


def test_ddp_over_nccl_with_sync_bn_trains_through_the_cluster_loop(sod_root, tmp_path, nccl_group):
    run_dir = tmp_path / "run"
    config = tiny_config(sod_root, run_dir, device="cuda", precision="bf16")
    config.train.cluster.sync_bn = True
    result = train_supernet(config, run_dir, progress=False, context=_NcclContext(CUDA))
    assert result.iterations == 4
    assert all(math.isfinite(v) for v in _losses(run_dir))
    local = Supernet(tiny_space(), 1, (0, 1, 2, 3, 4)).state_dict()
    assert set(load_supernet(run_dir / "supernet.pt").state_dict()) == set(local)  # no "module." prefix


def test_sync_batch_norm_over_nccl_equals_plain_batch_norm(nccl_group):
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(4, 6, 5, 5, generator=generator).to(CUDA)
    weight, bias = torch.rand(6).to(CUDA), torch.randn(6).to(CUDA)
    results = []
    for fn in ("sync", "plain"):
        xi = x.clone().requires_grad_(True)
        mean, var = torch.zeros(6, device=CUDA), torch.ones(6, device=CUDA)
        if fn == "sync":
            y = sync_batch_norm(xi, mean, var, weight, bias, 0.1, 1e-5)
        else:
            y = F.batch_norm(xi, mean, var, weight, bias, True, 0.1, 1e-5)
        (y * torch.arange(6, device=CUDA)[None, :, None, None]).sum().backward()
        results.append((y.detach(), xi.grad, mean, var))
    for got, want in zip(*results, strict=True):
        torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-5)


def test_evaluation_on_the_gpu_matches_the_cpu(sod_root, tmp_path):
    config = tiny_config(sod_root, tmp_path)
    torch.manual_seed(0)
    supernet = Supernet(config.space.build(), 1, (0, 1, 2, 3, 4)).eval()
    bn_loader = bn_loader_from_config(config.data, "sod", 2, seed=0, cache=True, check=False)
    val_loader = eval_loader_from_config(config.data, "sod", batch_size=2, check=False)
    arch = sample_uniform(supernet.space, random.Random(3))
    on_cpu = evaluate_arch(supernet, arch, bn_loader, val_loader, 2, "sod", metrics=["maxF", "mae"])
    on_gpu = evaluate_arch(supernet.to(CUDA), arch, bn_loader, val_loader, 2, "sod", metrics=["maxF", "mae"])
    assert on_gpu == pytest.approx(on_cpu, abs=2e-3)


def test_torch_cuda_backend_waits_for_the_gpu_and_times_networks():
    runner = Runner("torch-cuda", threads=1)
    assert runner.check() is None and not runner.filters_preempted
    cycles = 40_000_000  # GPU clock cycles: 20 ms at 2 GHz
    spin = runner.time_callable(lambda: torch.cuda._sleep(cycles), warmup=1, runs=5)
    assert spin.median_ms > 10  # without the synchronisation it would be the launch alone, microseconds
    space = tiny_space()
    network = runner.measure_network(lambda: build_network(space, sample_max(space), 1), (320, 320), batch=8,
                                     warmup=3, runs=10)
    assert 0 < network.median_ms < 1000 and network.runs == 10

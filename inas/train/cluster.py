"""`train --cluster`: the training loop of `inas.train.loop` on every worker of Ray Train's `TorchTrainer`.

    result = train_on_ray(config, run_dir, address=None)   # a local Ray instance, or the cluster at `address`

Each worker is one DDP rank (gloo on CPU, NCCL with GPUs; `find_unused_parameters=True` because a sub-network
uses a subset of the weights), reads its shard of the training list (DistributedSampler) and runs the same
`train_supernet`. Rank 0 validates, writes the run folder's files (the same `checkpoint.pt`, `metrics.csv`,
`supernet.pt` as a local run) and hands every checkpoint to Ray (`ray.train.report`), so after a worker failure
(`FailureConfig(max_failures)`) the new worker group restarts from the last checkpoint. Ray's own records go to
`RUN_DIR/ray/`. This module imports Ray; the local path never imports it.
"""

from __future__ import annotations

import json
import logging
import math
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import torch
from torch import nn

from inas.config import ExperimentConfig, parse_config
from inas.data import check_list
from inas.errors import BadInputError
from inas.ray_address import join_ray_cluster
from inas.train.loop import SUMMARY_NAME, TrainResult, train_supernet
from inas.train.state import CHECKPOINT_NAME

log = logging.getLogger(__name__)

RAY_DIR = "ray"
RAY_RUN_NAME = "train"
COLLECTIVE_TIMEOUT_S = 4 * 3600  # rank 0 validates while the others wait at a barrier


def publish_train_progress(rank: int, metrics: dict[str, float]) -> None:
    """The Ray metrics `inas_train_iteration` and `inas_train_loss` of this worker (see `inas.progress`)."""
    from inas.progress import TRAIN_ITERATION, TRAIN_LOSS, ray_sink

    sink = ray_sink((TRAIN_ITERATION, TRAIN_LOSS))
    for name, key in ((TRAIN_ITERATION, "iteration"), (TRAIN_LOSS, "loss")):
        if sink is not None and key in metrics:
            sink.set(name, metrics[key], {"rank": str(rank)})


class RayWorkerContext:
    """The loop's view of one Ray Train worker: rank, device, DDP wrapping, reporting to Ray."""

    distributed = True

    def __init__(self) -> None:
        import ray.train
        import ray.train.torch

        context = ray.train.get_context()
        self.rank = context.get_world_rank()
        self.world_size = context.get_world_size()
        self.device = ray.train.torch.get_device()
        self._scratch = Path(tempfile.mkdtemp(prefix="inas-ckpt-"))

    def wrap_model(self, model: nn.Module) -> nn.Module:
        if self.world_size == 1:
            return model
        device_ids = [self.device.index] if self.device.type == "cuda" else None
        return torch.nn.parallel.DistributedDataParallel(model, device_ids=device_ids, find_unused_parameters=True)

    def latest_checkpoint(self) -> Path | None:
        import ray.train

        checkpoint = ray.train.get_checkpoint()
        if checkpoint is None:
            return None
        target = Path(tempfile.mkdtemp(prefix="inas-restore-", dir=self._scratch))
        checkpoint.to_directory(str(target))
        path = target / CHECKPOINT_NAME
        return path if path.exists() else None

    def report(self, metrics: dict[str, Any], checkpoint: Path | None = None) -> None:
        import ray.train

        clean = {k: float(v) for k, v in metrics.items() if isinstance(v, (int, float)) and math.isfinite(v)}
        publish_train_progress(self.rank, clean)
        if checkpoint is None:
            ray.train.report(clean)
            return
        folder = Path(tempfile.mkdtemp(prefix="inas-report-", dir=self._scratch))
        try:
            shutil.copy2(checkpoint, folder / CHECKPOINT_NAME)
            ray.train.report(clean, checkpoint=ray.train.Checkpoint.from_directory(str(folder)))
        finally:
            shutil.rmtree(folder, ignore_errors=True)

    def barrier(self) -> None:
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            torch.distributed.barrier()


def _worker_loop(loop_config: dict[str, Any]) -> None:
    """The function every Ray Train worker runs."""
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    config = parse_config(loop_config["config"], "train config")
    torch.set_num_threads(max(1, int(loop_config["threads"])))
    context = RayWorkerContext()
    try:
        train_supernet(config, Path(loop_config["run_dir"]), resume=False, progress=False, context=context,
                       check_data=False)
    finally:
        shutil.rmtree(context._scratch, ignore_errors=True)


def check_inputs(config: ExperimentConfig, run_dir: Path, resume: bool) -> None:
    """What the workers would fail on, checked on the driver before Ray starts (one BadInputError)."""
    config.space.build()
    check_list(config.data.root, config.data.train_list, config.task)
    check_list(config.data.root, config.data.val_list, config.task)
    init = config.train.init_checkpoint
    if init is not None and not Path(init).is_file():
        raise BadInputError("file not found", path=init, key="train.init_checkpoint")
    if resume and not (run_dir / CHECKPOINT_NAME).exists():
        raise BadInputError(f"--resume: no {CHECKPOINT_NAME} in the run folder", path=run_dir)


def train_on_ray(
    config: ExperimentConfig,
    run_dir: str | Path | None = None,
    *,
    address: str | None = None,
    resume: bool = False,
    progress: bool = True,
) -> TrainResult:
    """Run `train_supernet` under Ray Train with `config.train.cluster` workers; returns rank 0's summary."""
    run_dir = Path(config.train.out_dir if run_dir is None else run_dir).resolve()
    cc = config.train.cluster
    check_inputs(config, run_dir, resume)
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    import ray
    from ray.train import CheckpointConfig, FailureConfig, RunConfig, ScalingConfig
    from ray.train.torch import TorchConfig, TorchTrainer

    started_here = False
    if not ray.is_initialized():
        if address:
            join_ray_cluster(address, logging_level=logging.INFO, log_to_driver=progress)
        else:
            ray.init(log_to_driver=progress, include_dashboard=False)
        started_here = True
    try:
        use_gpu = cc.use_gpu if cc.use_gpu is not None else ray.cluster_resources().get("GPU", 0) >= 1
        run_dir.mkdir(parents=True, exist_ok=True)
        trainer = TorchTrainer(
            _worker_loop,
            train_loop_config={"config": config.model_dump(mode="json"), "run_dir": str(run_dir),
                               "threads": cc.cpus_per_worker},
            scaling_config=ScalingConfig(num_workers=cc.workers, use_gpu=use_gpu,
                                         resources_per_worker={"CPU": cc.cpus_per_worker}),
            torch_config=TorchConfig(backend="nccl" if use_gpu else "gloo", timeout_s=COLLECTIVE_TIMEOUT_S),
            run_config=RunConfig(name=RAY_RUN_NAME, storage_path=str(run_dir / RAY_DIR),
                                 failure_config=FailureConfig(max_failures=cc.max_failures),
                                 checkpoint_config=CheckpointConfig(num_to_keep=2)),
        )
        log.info("training on Ray: %d worker(s), %s, run folder %s", cc.workers, "GPU" if use_gpu else "CPU",
                 run_dir)
        outcome = trainer.fit()
        if getattr(outcome, "error", None) is not None:
            raise RuntimeError(f"Ray training failed: {outcome.error}")
    finally:
        if started_here:
            ray.shutdown()
    summary = json.loads((run_dir / SUMMARY_NAME).read_text(encoding="utf-8"))
    return TrainResult(run_dir=run_dir, iterations=summary["iterations"], start_iteration=summary["start_iteration"],
                       wall_s=summary["wall_s"], images_per_s=summary["images_per_s"],
                       validation=summary["validation"], supernet_path=Path(summary["supernet"]))

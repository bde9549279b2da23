"""`train --cluster`: the training loop of `inas.train.loop` on every worker of Ray Train's `TorchTrainer`.

    result = train_on_ray(config, run_dir, address=None)   # a local Ray instance, or the cluster at `address`

Each worker is one DDP rank (gloo on CPU, NCCL with GPUs; `find_unused_parameters=True` because a sub-network
uses a subset of the weights), reads its shard of the training list (DistributedSampler) and runs the same
`train_supernet`. Rank 0 validates, writes the run folder's files (the same `checkpoint.pt`, `metrics.csv`,
`supernet.pt` as a local run) and hands every checkpoint to Ray (`ray.train.report`), so after a worker failure
(`FailureConfig(max_failures)`) the new worker group restarts from the last checkpoint. Bad input is never retried:
everything the workers read is checked on the driver first (`check_inputs`), and a BadInputError in a worker's
set-up ends the run without a failure (`_worker_loop`), raised again on the driver. Ray's own records go to
`RUN_DIR/ray/`. This module imports Ray; the local path never imports it.
"""

from __future__ import annotations

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
from inas.errors import BadInputError, RunFailedError
from inas.nn import Supernet
from inas.ray_session import init_ray, require_capacity, resource_shortfall
from inas.train.loop import RUN_FILES, SupernetTrainer, TrainResult
from inas.train.runlog import check_run_folder
from inas.train.state import CHECKPOINT_NAME, check_compatible, load_initial_weights, load_train_checkpoint
from inas.train.summary import read_train_summary

log = logging.getLogger(__name__)

RAY_DIR = "ray"
RAY_RUN_NAME = "train"
COLLECTIVE_TIMEOUT_S = 4 * 3600  # rank 0 validates while the others wait at a barrier
BAD_INPUT_METRIC = "inas_bad_input"  # reported by the workers when their set-up refused the input
BAD_INPUT_FILE = "bad_input.txt"


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

    def node_id(self) -> str:
        import ray

        return str(ray.get_runtime_context().get_node_id())

    def gather(self, value: Any) -> list[Any]:
        if not (torch.distributed.is_available() and torch.distributed.is_initialized()):
            return [value]
        values: list[Any] = [None] * torch.distributed.get_world_size()
        torch.distributed.all_gather_object(values, value)
        return values


def _agree_on_setup(error: str | None) -> str | None:
    """Every rank learns whether any rank's set-up failed (the first message), so that all of them stop together
    instead of the others waiting in a collective for the failed one."""
    if not (torch.distributed.is_available() and torch.distributed.is_initialized()):
        return error
    errors: list[str | None] = [None] * torch.distributed.get_world_size()
    torch.distributed.all_gather_object(errors, error)
    return next((e for e in errors if e), None)


def _report_bad_input(error: str, context: RayWorkerContext) -> None:
    """Every rank reports once; rank 0 attaches a checkpoint holding the message, because Ray Train hands the driver
    the metrics of the latest checkpoint (`Result.metrics`). A later run ignores that checkpoint (no checkpoint.pt)."""
    import ray.train

    if context.rank != 0:
        ray.train.report({BAD_INPUT_METRIC: error})
        return
    folder = Path(tempfile.mkdtemp(prefix="inas-bad-input-", dir=context._scratch))
    (folder / BAD_INPUT_FILE).write_text(error + "\n", encoding="utf-8")
    ray.train.report({BAD_INPUT_METRIC: error}, checkpoint=ray.train.Checkpoint.from_directory(str(folder)))


def _worker_loop(loop_config: dict[str, Any]) -> None:
    """The function every Ray Train worker runs. A BadInputError in the set-up (deterministic: a retry would fail
    the same way) ends every worker normally with the message reported to the driver (`BAD_INPUT_METRIC`), so
    Ray Train's failure handling never retries it."""
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    config = parse_config(loop_config["config"], "train config")
    torch.set_num_threads(max(1, int(loop_config["threads"])))
    context = RayWorkerContext()
    trainer: SupernetTrainer | None = None
    try:
        error = None
        try:
            trainer = SupernetTrainer(config, Path(loop_config["run_dir"]), context, resume=False, progress=False,
                                      check_data=False)
        except BadInputError as exc:
            error = str(exc)
        error = _agree_on_setup(error)
        if error is not None:
            if trainer is not None:
                trainer.close()
            _report_bad_input(error, context)
            return
        assert trainer is not None
        trainer.run()
    finally:
        shutil.rmtree(context._scratch, ignore_errors=True)


def _check_batches(config: ExperimentConfig, entries: int) -> None:
    """Every worker's shard must hold one batch (the loader's own check, made on the driver)."""
    workers, batch = config.train.cluster.workers, config.data.batch_size
    if entries // workers < batch:
        raise BadInputError(f"the training list has {entries} sample(s), fewer than batch size {batch} x {workers} "
                            "worker(s); lower data.batch_size or train.cluster.workers, or add data",
                            key="data.batch_size")


def check_inputs(config: ExperimentConfig, run_dir: Path, resume: bool, progress: bool = True) -> None:
    """Everything the workers will read, checked on the driver before Ray starts (one BadInputError): the space,
    both lists and every file they name, the batch size against the shards, the initial weights (read into a
    supernet), the run folder's checkpoint (read and compared with the config) and its other files
    (`check_run_folder`)."""
    check_run_folder(run_dir, RUN_FILES)
    space = config.space.build()
    entries = check_list(config.data.root, config.data.train_list, config.task, progress=progress)
    check_list(config.data.root, config.data.val_list, config.task, progress=progress)
    _check_batches(config, len(entries))
    checkpoint = run_dir / CHECKPOINT_NAME
    if resume and not checkpoint.exists():
        raise BadInputError(f"--resume: no {CHECKPOINT_NAME} in the run folder", path=run_dir)
    init = config.train.init_checkpoint
    if init is not None and not Path(init).is_file():
        raise BadInputError("file not found", path=init, key="train.init_checkpoint")
    if init is None and not checkpoint.exists():
        return
    supernet = Supernet(space, config.num_classes, config.model.output_levels)
    if checkpoint.exists():
        check_compatible(load_train_checkpoint(checkpoint), supernet, config.task, checkpoint)
    elif init is not None:
        load_initial_weights(init, supernet, config.train.init_format)


def _check_precision(config: ExperimentConfig, use_gpu: bool) -> None:
    if config.train.precision == "fp16" and not use_gpu:
        raise BadInputError("fp16 training needs GPU workers (this cluster run trains on CPUs); use bf16 or fp32",
                            key="train.precision")


def capacity_shortfall(config: ExperimentConfig, use_gpu: bool, total: dict[str, float]) -> str | None:
    """What the worker group (`train.cluster.workers` x `cpus_per_worker` CPUs, and a GPU each with `use_gpu`) needs
    beyond the cluster's `total` resources (`ray.cluster_resources()`), None if it fits."""
    cc = config.train.cluster
    short = resource_shortfall({"CPU": cc.workers * cc.cpus_per_worker, "GPU": float(cc.workers) if use_gpu else 0.0},
                               total)
    if not short:
        return None
    return (f"the worker group of {cc.workers} workers (train.cluster.cpus_per_worker {cc.cpus_per_worker:g}"
            f"{', a GPU each' if use_gpu else ''}) needs " + " and ".join(short))


def _torch_trainer(config: ExperimentConfig, run_dir: Path, use_gpu: bool) -> Any:
    """Ray Train's TorchTrainer running `_worker_loop` on `train.cluster.workers` DDP ranks, its records in
    `run_dir/ray`."""
    from ray.train import CheckpointConfig, FailureConfig, RunConfig, ScalingConfig
    from ray.train.torch import TorchConfig, TorchTrainer

    cc = config.train.cluster
    return TorchTrainer(
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


def _raise_on_failure(outcome: Any, max_failures: int, run_dir: Path) -> None:
    """RunFailedError when the workers failed past their restarts; BadInputError when a worker refused its input."""
    if getattr(outcome, "error", None) is not None:
        first = str(outcome.error).strip().splitlines()[0][:300] if str(outcome.error).strip() else "unknown"
        raise RunFailedError(f"training on Ray failed after {max_failures} worker-group restarts "
                             f"(train.cluster.max_failures): {first}; the run folder keeps its last checkpoint, "
                             f"and running the same command again continues from it ({run_dir / RAY_DIR} holds "
                             "the workers' logs)")
    bad_input = (outcome.metrics or {}).get(BAD_INPUT_METRIC)
    if bad_input:
        raise BadInputError(f"a training worker refused its input: {bad_input}")


def _fit_or_interrupted(trainer: Any, run_dir: Path) -> Any:
    """`trainer.fit()`; KeyboardInterrupt (exit 130, with how to go on) where Ctrl-C ends it: Ray Train's own SIGINT
    handler aborts the run, and the driver's wait then ends in a bare SystemExit (exit 1, not a word said)."""
    try:
        return trainer.fit()
    except SystemExit:
        raise KeyboardInterrupt(f"train: stopped before its last iteration (Ctrl-C); the run folder {run_dir} keeps "
                                "its last checkpoint, and running the same command again continues from it") from None


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
    check_inputs(config, run_dir, resume, progress)
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    import ray

    connection = init_ray(address, verb="train", log_to_driver=progress, logging_level=logging.INFO)
    try:
        use_gpu = cc.use_gpu if cc.use_gpu is not None else ray.cluster_resources().get("GPU", 0) >= 1
        _check_precision(config, use_gpu)
        require_capacity(capacity_shortfall(config, use_gpu, ray.cluster_resources()), local=connection.local,
                         key="train.cluster.workers", verb="train",
                         remedy="lower --workers or train.cluster.cpus_per_worker")
        run_dir.mkdir(parents=True, exist_ok=True)
        log.info("training on Ray: %d worker(s), %s, run folder %s", cc.workers, "GPU" if use_gpu else "CPU",
                 run_dir)
        _raise_on_failure(_fit_or_interrupted(_torch_trainer(config, run_dir, use_gpu), run_dir), cc.max_failures,
                          run_dir)
    finally:
        connection.close()
    summary = read_train_summary(run_dir)
    return TrainResult(run_dir=run_dir, iterations=summary.iterations, start_iteration=summary.start_iteration,
                       wall_s=summary.wall_s, images_per_s=summary.images_per_s, validation=summary.validation,
                       supernet_path=Path(summary.supernet))

"""The supernet training loop (SPEC §4), one function for the local run and every Ray Train worker.

    result = train_supernet(config, run_dir)                  # local, in-process, no Ray import
    # under --cluster: inas.train.cluster runs train_supernet(config, run_dir, context=<Ray worker context>)

Per iteration: one batch (multi-scale resized), the sandwich sub-networks (max, min, N random) forward/backward on
it with in-place distillation, one Adam step, one scheduler step. Every `log_every` iterations a row in
`metrics.csv` (+ TensorBoard, + `ray.train.report` under Ray); every `validate_every` the max, min and a fixed random
sub-network are scored after BN recalibration (`validation.csv`); every `checkpoint_every` and at the end the full
state goes to `RUN_DIR/checkpoint.pt`; the final weights to `RUN_DIR/supernet.pt`. A run folder holding a checkpoint
is resumed from it (same data order, sub-networks, RNG streams: with `data.num_workers: 0` the resumed run ends with
the same weights as an uninterrupted one).
"""

from __future__ import annotations

import json
import logging
import math
import random
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import yaml
from torch.utils.data import DataLoader, Subset
from tqdm import tqdm

from inas.config import ExperimentConfig
from inas.data import (
    bn_loader_from_config,
    eval_loader_from_config,
    multi_scale_from_config,
    train_loader_from_config,
)
from inas.errors import BadInputError
from inas.io import atomic_write_json, atomic_write_text
from inas.metrics import SEARCH_METRICS
from inas.nn import Supernet, save_supernet
from inas.space import Arch, sample_max, sample_min, sample_uniform
from inas.train.context import LocalContext, resolve_device
from inas.train.evaluation import evaluate_arch
from inas.train.recipe import SupernetCriterion, build_optimizer, build_scheduler, sandwich_archs, train_step
from inas.train.runlog import RunLog
from inas.train.state import (
    CHECKPOINT_NAME,
    SUPERNET_NAME,
    check_compatible,
    load_initial_weights,
    load_train_checkpoint,
    multi_scale_state_from,
    save_train_checkpoint,
    seed_everything,
    set_python_rng_state,
    set_rng_state,
)

log = logging.getLogger(__name__)

SUMMARY_NAME = "summary.json"
CONFIG_NAME = "config.yaml"
VAL_ARCH_SEED_OFFSET = 7919  # the fixed random validation sub-network: sample_uniform(Random(seed + offset))


@dataclass
class TrainResult:
    """What a finished (or already finished) run reports."""

    run_dir: Path
    iterations: int
    start_iteration: int
    wall_s: float
    images_per_s: float
    validation: dict[str, dict[str, float]] = field(default_factory=dict)
    supernet_path: Path | None = None


def validation_archs(config: ExperimentConfig) -> dict[str, Arch]:
    """The sub-networks validated during training: max, min and one fixed seeded random one."""
    space = config.space.build()
    rng = random.Random(config.seed + VAL_ARCH_SEED_OFFSET)
    return {"max": sample_max(space), "min": sample_min(space), "random": sample_uniform(space, rng)}


def validation_metric_names(config: ExperimentConfig) -> list[str]:
    if config.task == "sod":
        return list(SEARCH_METRICS)
    return ["miou"] + [f"iou_{i}" for i in range(config.data.num_classes)]


def subnet_names(random_subnets: int) -> list[str]:
    return ["max", "min"] + [f"random{i + 1}" for i in range(random_subnets)]


def epoch_batches(loader: DataLoader, epoch: int, skip_batches: int, seed: int, rank: int) -> Iterator[dict]:
    """The batches of `epoch` of a training loader (DistributedSampler order), starting after `skip_batches`.

    A fresh DataLoader over the same data set with an explicit generator, so the global torch RNG is not consumed
    by creating it, and skipping batches does not load them (resume reproduces the uninterrupted run).
    """
    sampler = loader.sampler
    sampler.set_epoch(epoch)  # type: ignore[union-attr]
    indices = list(sampler)  # type: ignore[arg-type]
    batch_size = loader.batch_size or 1
    batches = [indices[i * batch_size:(i + 1) * batch_size] for i in range(skip_batches, len(indices) // batch_size)]
    generator = torch.Generator().manual_seed(seed * 1_000_003 + epoch * 1009 + rank)
    epoch_loader = DataLoader(loader.dataset, batch_sampler=batches, num_workers=loader.num_workers,
                              pin_memory=loader.pin_memory, generator=generator)
    yield from epoch_loader


@dataclass
class _Window:
    """Running sums between two log rows."""

    steps: int = 0
    images: int = 0
    seconds: float = 0.0
    losses: dict[str, float] = field(default_factory=dict)

    def add(self, losses: dict[str, float], images: int, seconds: float) -> None:
        self.steps += 1
        self.images += images
        self.seconds += seconds
        for name, value in losses.items():
            self.losses[name] = self.losses.get(name, 0.0) + value

    def row(self) -> dict[str, float]:
        steps = max(1, self.steps)
        row = {f"loss_{n}": v / steps for n, v in self.losses.items()}
        row["loss"] = sum(self.losses.values()) / steps
        row["images_per_s"] = self.images / self.seconds if self.seconds > 0 else float("nan")
        return row


class _Validator:
    """Scores the validation sub-networks with BN recalibration on rank 0 (loaders built once)."""

    def __init__(self, config: ExperimentConfig, supernet: Supernet, check: bool, progress: bool) -> None:
        tc = config.train
        self.config = config
        self.supernet = supernet
        self.archs = validation_archs(config)
        self.metric_names = validation_metric_names(config)
        self.progress = progress
        # the training list was checked when the training loader was built
        self.bn_loader = bn_loader_from_config(config.data, config.task, tc.bn_recalibration_batches,
                                               seed=config.seed, cache=True, check=False)
        val_loader = eval_loader_from_config(config.data, config.task, check=check)
        if tc.val_images is not None and tc.val_images < len(val_loader.dataset):
            subset = Subset(val_loader.dataset, list(range(tc.val_images)))
            val_loader = DataLoader(subset, batch_size=val_loader.batch_size, shuffle=False,
                                    num_workers=val_loader.num_workers, collate_fn=val_loader.collate_fn)
        self.val_loader = val_loader

    def run(self, iteration: int, runlog: RunLog | None) -> dict[str, dict[str, float]]:
        results = {}
        with torch.random.fork_rng(devices=[]):  # validation never shifts the training RNG streams
            for name, arch in self.archs.items():
                start = time.perf_counter()
                scores = evaluate_arch(self.supernet, arch, self.bn_loader, self.val_loader,
                                       self.config.train.bn_recalibration_batches, self.config.task,
                                       metrics=self.metric_names if self.config.task == "sod" else None,
                                       progress=self.progress)
                seconds = time.perf_counter() - start
                results[name] = scores
                if runlog is not None:
                    runlog.log_validation(iteration, name, arch.arch_id, scores, seconds)
                shown = ", ".join(f"{k} {scores[k]:.4f}" for k in self.metric_names if not k.startswith("iou_"))
                log.info("iteration %d: validation %s: %s (%.1f s)", iteration, name, shown, seconds)
        return results


def _find_checkpoint(run_dir: Path, context: Any) -> Path | None:
    handed = context.latest_checkpoint()
    if handed is not None:
        return handed
    path = run_dir / CHECKPOINT_NAME
    return path if path.exists() else None


def _write_config(run_dir: Path, config: ExperimentConfig) -> None:
    atomic_write_text(run_dir / CONFIG_NAME, yaml.safe_dump(config.model_dump(mode="json"), sort_keys=False))


def train_supernet(
    config: ExperimentConfig,
    run_dir: str | Path | None = None,
    *,
    resume: bool = False,
    progress: bool = True,
    context: Any = None,
    check_data: bool = True,
) -> TrainResult:
    """Train the supernet of `config` in `run_dir` (default `config.train.out_dir`); see the module docstring.

    `resume=True` requires a checkpoint in the run folder (a run folder holding one is resumed anyway).
    `context`: `LocalContext` (default) or a Ray worker context. Bad config or data raise BadInputError before
    any training step.
    """
    tc = config.train
    run_dir = Path(tc.out_dir if run_dir is None else run_dir)
    context = context or LocalContext(resolve_device(tc.device))
    rank, world = context.rank, context.world_size
    device = context.device
    task = config.task
    if tc.threads is not None and not context.distributed:
        torch.set_num_threads(tc.threads)

    # ---- everything that can fail on bad input, before any work ----
    space = config.space.build()
    train_loader = train_loader_from_config(config.data, task, seed=config.seed, distributed=world > 1,
                                            num_replicas=world, rank=rank, check=check_data)
    checkpoint_path = _find_checkpoint(run_dir, context)
    if resume and checkpoint_path is None:
        raise BadInputError(f"--resume: no {CHECKPOINT_NAME} in the run folder", path=run_dir)
    if tc.init_checkpoint is not None and not Path(tc.init_checkpoint).is_file():
        raise BadInputError("file not found", path=tc.init_checkpoint, key="train.init_checkpoint")

    seed_everything(config.seed)
    supernet = Supernet(space, config.num_classes, config.model.output_levels)
    validator = _Validator(config, supernet, check_data, progress and rank == 0) if rank == 0 else None
    state = None
    if checkpoint_path is not None:
        state = load_train_checkpoint(checkpoint_path)
        check_compatible(state, supernet, task, checkpoint_path)
        supernet.load_state_dict(state["model"])
        log.info("resuming from %s at iteration %d", checkpoint_path, state["iteration"])
    elif tc.init_checkpoint is not None:
        log.info("initial weights: %s", load_initial_weights(tc.init_checkpoint, supernet, tc.init_format))
    supernet.to(device)
    model = context.wrap_model(supernet)
    optimizer = build_optimizer(supernet, tc.lr, tc.head_lr_multiplier, tc.betas, tc.weight_decay)
    scheduler = build_scheduler(optimizer, tc.warmup_iterations, tc.iterations, tc.lr_power)
    criterion = SupernetCriterion.from_config(task, tc.distillation, tc.distill_weight, tc.side_output_weight)
    multi_scale = multi_scale_from_config(config.data, task, seed=config.seed)
    sampler_rng = random.Random(config.seed)
    iteration = 0
    if state is not None:
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        multi_scale.load_state_dict(multi_scale_state_from(state["multi_scale"]))
        set_python_rng_state(state["sampler_rng"], sampler_rng)
        iteration = int(state["iteration"])
    start_iteration = iteration
    names = subnet_names(tc.random_subnets)
    runlog = None
    if rank == 0:
        run_dir.mkdir(parents=True, exist_ok=True)
        _write_config(run_dir, config)
        atomic_write_json(run_dir / "validation_archs.json",
                          {name: {"arch_id": a.arch_id, "arch": a.to_json()} for name, a in
                           validation_archs(config).items()})
        runlog = RunLog(run_dir, names, validation_metric_names(config), start_iteration)
    if state is not None:
        set_rng_state(state["rng"])  # last: nothing above may consume the restored streams
    del state

    batches_per_epoch = len(train_loader)
    validation: dict[str, dict[str, float]] = {}
    wall_start = time.perf_counter()
    total_images = 0
    train_seconds = 0.0
    window = _Window()
    last_checkpoint = iteration if checkpoint_path is not None else -1
    bar = tqdm(total=tc.iterations, initial=iteration, desc="train", unit="it", dynamic_ncols=True,
               disable=not (progress and rank == 0))
    try:
        if validator is not None and iteration == 0 and tc.validate_at_start:
            validation = validator.run(0, runlog)
        supernet.train()
        while iteration < tc.iterations:
            epoch, skip = divmod(iteration, batches_per_epoch)
            for batch in epoch_batches(train_loader, epoch, skip, config.seed, rank):
                step_start = time.perf_counter()
                images = batch["image"].to(device, non_blocking=True)
                labels = batch["label"].to(device, non_blocking=True)
                images, labels = multi_scale.resize(images, labels)
                archs = sandwich_archs(space, sampler_rng, tc.random_subnets)
                optimizer.zero_grad(set_to_none=True)
                losses = train_step(model, images, labels, archs, criterion)
                if not all(math.isfinite(v) for v in losses.values()):
                    raise FloatingPointError(f"iteration {iteration + 1}: non-finite loss {losses}")
                optimizer.step()
                scheduler.step()
                iteration += 1
                seconds = time.perf_counter() - step_start
                images_done = images.shape[0] * world
                window.add(losses, images_done, seconds)
                total_images += images_done
                train_seconds += seconds
                lr = optimizer.param_groups[0]["lr"]
                bar.update(1)
                bar.set_postfix(loss=f"{sum(losses.values()):.4f}", lr=f"{lr:.2e}",
                                img_s=f"{images_done / seconds:.1f}", refresh=False)
                done = iteration >= tc.iterations
                report: dict[str, Any] = {}
                if iteration % tc.log_every == 0 or done:
                    report = {"iteration": iteration, "epoch": epoch, "lr": lr, **window.row(),
                              "elapsed_s": time.perf_counter() - wall_start}
                    if runlog is not None:
                        runlog.log_train(report)
                        if bar.disable:
                            log.info("iteration %d/%d: loss %.4f, lr %.3g, %.1f images/s", iteration,
                                     tc.iterations, report["loss"], lr, report["images_per_s"])
                    window = _Window()
                if (tc.validate_every and iteration % tc.validate_every == 0) or (done and tc.validate_at_end):
                    report.setdefault("iteration", iteration)
                    if validator is not None:
                        validation = validator.run(iteration, runlog)
                        report.update({f"val_{n}_{k}": v for n, s in validation.items() for k, v in s.items()
                                       if not k.startswith("iou_")})
                        supernet.train()
                    context.barrier()
                saved = None
                if iteration % tc.checkpoint_every == 0 or done:
                    if rank == 0:
                        saved = run_dir / CHECKPOINT_NAME
                        save_train_checkpoint(saved, supernet=supernet, task=task, iteration=iteration,
                                              optimizer=optimizer, scheduler=scheduler, sampler_rng=sampler_rng,
                                              multi_scale_state=multi_scale.state_dict())
                        last_checkpoint = iteration
                    report.setdefault("iteration", iteration)
                if report:
                    context.report(report, saved)
                if done:
                    break
        if rank == 0 and last_checkpoint != iteration:  # a finished run resumed: make sure the files exist
            save_train_checkpoint(run_dir / CHECKPOINT_NAME, supernet=supernet, task=task, iteration=iteration,
                                  optimizer=optimizer, scheduler=scheduler, sampler_rng=sampler_rng,
                                  multi_scale_state=multi_scale.state_dict())
    finally:
        bar.close()
        if runlog is not None:
            runlog.close()

    result = TrainResult(run_dir=run_dir, iterations=iteration, start_iteration=start_iteration,
                         wall_s=time.perf_counter() - wall_start,
                         images_per_s=total_images / train_seconds if train_seconds > 0 else float("nan"),
                         validation=validation)
    if rank == 0:
        summary_path = run_dir / SUMMARY_NAME
        if not validation and summary_path.exists():  # nothing validated in this session: keep the last scores
            result.validation = validation = json.loads(summary_path.read_text(encoding="utf-8")).get("validation", {})
        result.supernet_path = run_dir / SUPERNET_NAME
        save_supernet(supernet, result.supernet_path)
        atomic_write_json(run_dir / SUMMARY_NAME, {
            "iterations": iteration, "start_iteration": start_iteration, "wall_s": result.wall_s,
            "images_per_s": result.images_per_s, "world_size": world, "device": str(device),
            "validation": validation, "supernet": str(result.supernet_path),
        })
    return result

"""The supernet training loop (docs/design.md §7), one trainer for the local run and every Ray Train worker.

    result = train_supernet(config, run_dir)                  # local, in-process, no Ray import
    # under --cluster: inas.train.cluster runs train_supernet(config, run_dir, context=<Ray worker context>)

`SupernetTrainer` has one method per step: set-up (`__init__`: everything that can fail on bad input, before any
work), `restore` (from `checkpoint.pt`), `step` (one batch), `log`, `validate`, `checkpoint`, `finish`.
Per iteration: one batch (multi-scale resized), the sandwich sub-networks (max, min, N random) forward/backward on
it with in-place distillation (under `train.precision` autocast), one Adam step, one scheduler step. Every
`log_every` iterations a row in `metrics.csv` (+ TensorBoard, + `ray.train.report` under Ray); every
`validate_every` the max, min and a fixed random sub-network are scored after BN recalibration (`validation.csv`);
every `checkpoint_every` and at the end the full state goes to `RUN_DIR/checkpoint.pt`; the final weights to
`RUN_DIR/supernet.pt`. A run folder holding a checkpoint is resumed from it: the data order and augmentation are a
function of the iteration (`inas.train.data_order`) and every RNG stream is restored, so with the same world size
the resumed run ends with the same weights as an uninterrupted one, for any `data.num_workers`.
"""

from __future__ import annotations

import logging
import math
import random
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import yaml
from tqdm import tqdm

from inas.config import ExperimentConfig
from inas.data import multi_scale_from_config, train_loader_from_config
from inas.errors import BadInputError
from inas.io import atomic_write_json, atomic_write_text
from inas.nn import Supernet, save_supernet, space_spec
from inas.nn.device import resolve_device
from inas.nn.dynamic import convert_sync_batchnorm
from inas.train.context import LocalContext
from inas.train.data_order import epoch_batches
from inas.train.precision import MixedPrecision
from inas.train.recipe import SupernetCriterion, build_optimizer, build_scheduler, sandwich_archs, train_step
from inas.train.rng import python_rng_state, rng_state, seed_everything, set_python_rng_state, set_rng_state
from inas.train.runlog import FRESH, RAY_CHECKPOINT, RUN_FOLDER, RunLog, check_run_folder, record_session
from inas.train.state import (
    CHECKPOINT_NAME,
    SUPERNET_NAME,
    DataOrder,
    TrainState,
    check_compatible,
    check_optimizer_shapes,
    load_initial_weights,
    load_train_checkpoint,
    multi_scale_state,
    multi_scale_state_from,
    save_train_checkpoint,
)
from inas.train.summary import SUMMARY_NAME, TrainSummary, read_train_summary, write_train_summary
from inas.train.validation import Validator, validation_archs, validation_metric_names

log = logging.getLogger(__name__)

CONFIG_NAME = "config.yaml"
VALIDATION_ARCHS_NAME = "validation_archs.json"
# the files a session reads back or rewrites in its run folder, besides the logs of `inas.train.runlog`
RUN_FILES = (CHECKPOINT_NAME, SUPERNET_NAME, CONFIG_NAME, SUMMARY_NAME, VALIDATION_ARCHS_NAME)


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


def subnet_names(random_subnets: int) -> list[str]:
    return ["max", "min"] + [f"random{i + 1}" for i in range(random_subnets)]


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


def _find_checkpoint(run_dir: Path, context: Any) -> tuple[Path | None, TrainState | None, str]:
    """The checkpoint to continue from, read, and where it came from (`inas.train.runlog`: FRESH, RUN_FOLDER,
    RAY_CHECKPOINT): the later of the one the runner hands over (Ray Train's last registered report) and the run
    folder's `checkpoint.pt`. Rank 0 writes the run folder's before it reports it, and Ray registers a report only
    once every rank's has arrived: a node lost in between leaves Ray one checkpoint behind the run folder."""
    handed = context.latest_checkpoint()
    local = run_dir / CHECKPOINT_NAME
    handed_state = None if handed is None else load_train_checkpoint(handed)
    if not local.exists():
        return handed, handed_state, FRESH if handed is None else RAY_CHECKPOINT
    try:
        local_state = load_train_checkpoint(local)
    except BadInputError:
        if handed is None:
            raise
        log.warning("%s is unreadable: continuing from Ray's checkpoint", local)
        return handed, handed_state, RAY_CHECKPOINT
    if handed_state is not None and handed_state.iteration >= local_state.iteration:
        return handed, handed_state, RAY_CHECKPOINT
    return local, local_state, RUN_FOLDER


def _restoring(what: str, path: Path, action: Any, *args: Any) -> None:
    """Run `action(*args)`; an exception means the checkpoint's `what` does not fit this run: BadInputError."""
    try:
        action(*args)
    except (RuntimeError, ValueError, KeyError, TypeError, IndexError) as exc:
        message = str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__
        raise BadInputError(f"cannot be restored into this run ({message})", path=path, key=what) from None


class SupernetTrainer:
    """One training session of the supernet of `config` in `run_dir` (see the module docstring)."""

    def __init__(self, config: ExperimentConfig, run_dir: Path, context: Any, *, resume: bool, progress: bool,
                 check_data: bool) -> None:
        """Set-up: everything that can fail on bad input (config, data, checkpoint, precision), before any work
        and without any collective operation (the ranks of a cluster run agree on the outcome first)."""
        self.config, self.tc, self.run_dir, self.context = config, config.train, run_dir, context
        self.rank, self.world, self.device = context.rank, context.world_size, context.device
        if self.tc.threads is not None and not context.distributed:
            torch.set_num_threads(self.tc.threads)
        state = self._read_inputs(resume, check_data)
        self._build(state, progress, check_data)
        self.iteration = 0
        if state is not None:
            self.restore(state)
        self.start_iteration = self.iteration
        self.model: torch.nn.Module = self.supernet  # wrapped (DDP) when the session starts: a collective
        self.runlog = self._open_run_folder() if self.rank == 0 else None
        if state is not None:  # last: nothing above may consume the restored streams
            _restoring("rng", self.checkpoint_path, set_rng_state, state.rng)  # type: ignore[arg-type]
        self.window = _Window()
        self.validation: dict[str, dict[str, float]] = {}
        self.last_checkpoint = self.iteration if state is not None else -1
        self.bar = tqdm(total=self.tc.iterations, initial=self.iteration, desc="train", unit="it",
                        dynamic_ncols=True, disable=not (progress and self.rank == 0))

    def _read_inputs(self, resume: bool, check_data: bool) -> TrainState | None:
        """Space, precision, training data, initial weights and the checkpoint to resume from (read and checked)."""
        config, tc = self.config, self.tc
        check_run_folder(self.run_dir, RUN_FILES)
        self.space = config.space.build()
        self.amp = MixedPrecision.create(tc.precision, self.device)
        self.train_loader = train_loader_from_config(config.data, config.task, seed=config.seed,
                                                     distributed=self.world > 1, num_replicas=self.world,
                                                     rank=self.rank, check=check_data)
        self.checkpoint_path, state, self.resumed_from = _find_checkpoint(self.run_dir, self.context)
        if resume and self.checkpoint_path is None:
            raise BadInputError(f"--resume: no {CHECKPOINT_NAME} in the run folder", path=self.run_dir)
        if tc.init_checkpoint is not None and not Path(tc.init_checkpoint).is_file():
            raise BadInputError("file not found", path=tc.init_checkpoint, key="train.init_checkpoint")
        return state

    def _build(self, state: TrainState | None, progress: bool, check_data: bool) -> None:
        """The seeded supernet (initial weights unless resuming), validator, optimiser, schedule, samplers."""
        config, tc = self.config, self.tc
        seed_everything(config.seed)
        self.supernet = Supernet(self.space, config.num_classes, config.model.output_levels)
        self.validator = Validator(config, self.supernet, check_data, progress) if self.rank == 0 else None
        if state is None and tc.init_checkpoint is not None:
            log.info("initial weights: %s", load_initial_weights(tc.init_checkpoint, self.supernet, tc.init_format))
        if tc.cluster.sync_bn and self.context.distributed:
            convert_sync_batchnorm(self.supernet)
        self.supernet.to(self.device)
        self.optimizer = build_optimizer(self.supernet, tc.lr, tc.head_lr_multiplier, tc.betas, tc.weight_decay)
        self.scheduler = build_scheduler(self.optimizer, tc.warmup_iterations, tc.iterations, tc.lr_power)
        self.criterion = SupernetCriterion.from_config(config.task, tc.distillation, tc.distill_weight,
                                                       tc.side_output_weight)
        self.multi_scale = multi_scale_from_config(config.data, config.task, seed=config.seed)
        self.sampler_rng = random.Random(config.seed)

    # ----- restore ---------------------------------------------------------------------------------------------
    def restore(self, state: TrainState) -> None:
        """Model, optimiser, scheduler, samplers and loss scale from a checkpoint of the same run (the global RNG
        streams are restored last, by the caller)."""
        path = self.checkpoint_path
        assert path is not None
        check_compatible(state, self.supernet, self.config.task, path)
        _restoring("model", path, self.supernet.load_state_dict, state.model)
        _restoring("optimizer", path, self.optimizer.load_state_dict, state.optimizer)
        check_optimizer_shapes(self.optimizer, path)
        _restoring("scheduler", path, self.scheduler.load_state_dict, state.scheduler)
        _restoring("multi_scale", path, self.multi_scale.load_state_dict, multi_scale_state_from(state.multi_scale))
        _restoring("sampler_rng", path, set_python_rng_state, state.sampler_rng, self.sampler_rng)
        if state.precision == self.tc.precision:
            _restoring("grad_scaler", path, self.amp.load_state_dict, state.grad_scaler)
        else:
            log.warning("%s was trained in %s, continuing in %s", path, state.precision, self.tc.precision)
        order = self._data_order()
        if state.data_order is not None and state.data_order != order:
            log.warning("%s: the data order changed (%s, now %s): the resumed run does not repeat the interrupted "
                        "one exactly", path, state.data_order, order)
        self.iteration = state.iteration
        log.info("resuming from %s at iteration %d", path, state.iteration)

    def _data_order(self) -> DataOrder:
        return DataOrder(seed=self.config.seed, world_size=self.world, batches_per_epoch=len(self.train_loader))

    def _open_run_folder(self) -> RunLog:
        self.run_dir.mkdir(parents=True, exist_ok=True)
        atomic_write_text(self.run_dir / CONFIG_NAME,
                          yaml.safe_dump(self.config.model_dump(mode="json"), sort_keys=False))
        atomic_write_json(self.run_dir / VALIDATION_ARCHS_NAME,
                          {name: {"arch_id": a.arch_id, "arch": a.to_json()}
                           for name, a in validation_archs(self.config).items()})
        return RunLog(self.run_dir, subnet_names(self.tc.random_subnets), validation_metric_names(self.config),
                      self.start_iteration)

    # ----- one iteration ---------------------------------------------------------------------------------------
    def step(self, batch: dict) -> tuple[dict[str, float], int]:
        """One optimiser step on `batch` ({image (N,3,S,S), label}); returns (losses per sub-network, images)."""
        images = batch["image"].to(self.device, non_blocking=True)
        labels = batch["label"].to(self.device, non_blocking=True)
        images, resized = self.multi_scale.resize(images, labels)
        labels = labels if resized is None else resized
        archs = sandwich_archs(self.space, self.sampler_rng, self.tc.random_subnets)
        self.optimizer.zero_grad(set_to_none=True)
        losses = train_step(self.model, images, labels, archs, self.criterion, self.amp)
        if not all(math.isfinite(v) for v in losses.values()):
            raise FloatingPointError(f"iteration {self.iteration + 1}: non-finite loss {losses}")
        self.amp.step(self.optimizer)
        self.scheduler.step()
        self.iteration += 1
        return losses, int(images.shape[0])

    def log(self, epoch: int, losses: dict[str, float], images: int, seconds: float) -> dict[str, Any]:
        """Progress bar; every `log_every` (and at the end) a metrics row, returned as the report to the runner."""
        images_done = images * self.world
        self.window.add(losses, images_done, seconds)
        lr = self.optimizer.param_groups[0]["lr"]
        self.bar.update(1)
        self.bar.set_postfix(loss=f"{sum(losses.values()):.4f}", lr=f"{lr:.2e}",
                             img_s=f"{images_done / seconds:.1f}", refresh=False)
        if self.iteration % self.tc.log_every != 0 and not self.done:
            return {}
        report = {"iteration": self.iteration, "epoch": epoch, "lr": lr, **self.window.row(),
                  "elapsed_s": time.perf_counter() - self.wall_start}
        if self.runlog is not None:
            self.runlog.log_train(report)
            if self.bar.disable:
                log.info("iteration %d/%d: loss %.4f, lr %.3g, %.1f images/s", self.iteration, self.tc.iterations,
                         report["loss"], lr, report["images_per_s"])
        self.window = _Window()
        return report

    @property
    def done(self) -> bool:
        return self.iteration >= self.tc.iterations

    def validate(self, report: dict[str, Any]) -> None:
        """Rank 0 scores the validation sub-networks (the others wait); the scores join `report`."""
        report.setdefault("iteration", self.iteration)
        if self.validator is not None:
            self.validation = self.validator.run(self.iteration, self.runlog)
            report.update({f"val_{n}_{k}": v for n, s in self.validation.items() for k, v in s.items()
                           if not k.startswith("iou_")})
            self.supernet.train()
        self.context.barrier()

    def checkpoint(self) -> Path | None:
        """Rank 0 writes `checkpoint.pt`; returns its path (None on the other ranks)."""
        if self.rank != 0:
            return None
        path = self.run_dir / CHECKPOINT_NAME
        save_train_checkpoint(path, self.train_state())
        self.last_checkpoint = self.iteration
        return path

    def train_state(self) -> TrainState:
        supernet = self.supernet
        return TrainState(
            iteration=self.iteration, task=self.config.task, space=space_spec(supernet.space),
            num_classes=supernet.num_classes, output_levels=tuple(supernet.output_levels),
            head_activation=supernet.head_activation,
            model={k: v.detach().cpu() for k, v in supernet.state_dict().items()},
            optimizer=self.optimizer.state_dict(), scheduler=self.scheduler.state_dict(), rng=rng_state(),
            sampler_rng=python_rng_state(self.sampler_rng), multi_scale=multi_scale_state(
                self.multi_scale.state_dict()),
            precision=self.tc.precision, grad_scaler=self.amp.state_dict(), data_order=self._data_order())

    # ----- the session -----------------------------------------------------------------------------------------
    def close(self) -> None:
        """Close the progress bar and the run log (also when the session never ran)."""
        self.bar.close()
        if self.runlog is not None:
            self.runlog.close()

    def _record_session(self) -> None:
        """Every rank must continue from the same iteration (else their steps and sampled sub-networks would
        differ); rank 0 appends this start to `sessions.csv` with each rank's Ray node."""
        ranks = self.context.gather((self.context.node_id(), self.start_iteration))
        starts = sorted({start for _, start in ranks})
        if len(starts) > 1:
            raise RuntimeError(f"the ranks continue from different checkpoints (iterations {starts}): the run folder "
                               f"{self.run_dir} must be on a file system every node sees")
        if self.rank != 0:
            return
        session = record_session(self.run_dir, self.start_iteration, self.resumed_from, self.world,
                                 [node for node, _ in ranks if node])
        if session.number > 1:
            log.info("session %d: resumed from iteration %d (%s)", session.number, self.start_iteration,
                     self.resumed_from or "no checkpoint: from the start")

    def run(self) -> TrainResult:
        tc = self.tc
        self.wall_start = time.perf_counter()
        total_images, train_seconds = 0, 0.0
        try:
            self.model = self.context.wrap_model(self.supernet)
            self._record_session()
            if self.validator is not None and self.iteration == 0 and tc.validate_at_start:
                self.validation = self.validator.run(0, self.runlog)
            self.supernet.train()
            batches_per_epoch = len(self.train_loader)
            while not self.done:
                epoch, skip = divmod(self.iteration, batches_per_epoch)
                for batch in epoch_batches(self.train_loader, epoch, skip, self.config.seed, self.rank):
                    start = time.perf_counter()
                    losses, images = self.step(batch)
                    seconds = time.perf_counter() - start
                    total_images += images * self.world
                    train_seconds += seconds
                    report = self.log(epoch, losses, images, seconds)
                    if (tc.validate_every and self.iteration % tc.validate_every == 0) or \
                            (self.done and tc.validate_at_end):
                        self.validate(report)
                    saved = None
                    if self.iteration % tc.checkpoint_every == 0 or self.done:
                        saved = self.checkpoint()
                        report.setdefault("iteration", self.iteration)
                    if report:
                        self.context.report(report, saved)
                    if self.done:
                        break
            if self.last_checkpoint != self.iteration:  # a finished run resumed: make sure the files exist
                self.checkpoint()
        finally:
            self.close()
        return self.finish(total_images / train_seconds if train_seconds > 0 else float("nan"))

    def _earlier_validation(self) -> dict[str, dict[str, float]]:
        """The scores of the summary this run replaces (a finished run resumed); none, with a warning, if that file
        is not a valid summary (it is about to be rewritten, so it does not stop the run)."""
        try:
            return read_train_summary(self.run_dir).validation
        except BadInputError as exc:
            log.warning("%s; the new summary starts without its validation scores", exc)
            return {}

    def finish(self, images_per_s: float) -> TrainResult:
        """Rank 0 writes `supernet.pt` and `summary.json` (keeping the last scores when nothing was validated)."""
        result = TrainResult(run_dir=self.run_dir, iterations=self.iteration, start_iteration=self.start_iteration,
                             wall_s=time.perf_counter() - self.wall_start, images_per_s=images_per_s,
                             validation=self.validation)
        if self.rank != 0:
            return result
        if not result.validation and (self.run_dir / SUMMARY_NAME).exists():
            result.validation = self._earlier_validation()
        result.supernet_path = self.run_dir / SUPERNET_NAME
        save_supernet(self.supernet, result.supernet_path)
        write_train_summary(self.run_dir, TrainSummary(
            iterations=self.iteration, start_iteration=self.start_iteration, wall_s=result.wall_s,
            images_per_s=result.images_per_s, world_size=self.world, device=str(self.device),
            precision=self.tc.precision, validation=result.validation, supernet=str(result.supernet_path)))
        return result


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
    `context`: `LocalContext` (default) or a Ray worker context. Bad config, data or checkpoint raise
    BadInputError before any training step.
    """
    run_dir = Path(config.train.out_dir if run_dir is None else run_dir)
    context = context or LocalContext(resolve_device(config.train.device, key="train.device"))
    trainer = SupernetTrainer(config, run_dir, context, resume=resume, progress=progress, check_data=check_data)
    return trainer.run()

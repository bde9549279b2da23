"""Optional fine-tuning of a stand-alone model after weight extraction (`convert --finetune N`).

The supernet's training recipe (`inas.train.recipe`, docs/design.md §7, settings from the config's `train` section)
applied to ONE network, with the labels as the only target (there is no teacher, so no distillation):
- one step = `inas.train.recipe.train_step` with the stand-alone model as the only "sub-network": the
  deep-supervised label loss (SOD: BCE on the sigmoid maps, level 0 + `side_output_weight` x every side head;
  segmentation: cross-entropy, ignore 255), backward, then an optimiser step;
- optimiser `build_optimizer`: Adam (`train.betas`, `train.weight_decay`), `lr` for parameters whose name contains
  'backbone', `lr x train.head_lr_multiplier` for the rest;
- schedule `build_scheduler`: linear warm-up, then polynomial decay (`train.lr_power`) to 0 at the last iteration;
  the warm-up is `train.warmup_iterations` capped at a tenth of the run (a short fine-tune would otherwise never
  leave it);
- data: the config's training loader (flip as configured) and its per-batch multi-scale sizes.
The model must be unfolded (SMSU branches with their BNs); BN running statistics follow the usual momentum during
training. The caller recalibrates BN (precise BN) and folds afterwards.

`FinetuneChoice.decide(task, before, after)`: fine-tuning can make a model worse on the validation list (a short
run, a high learning rate); `convert` keeps the fine-tuned model only when its selection metric (SOD maxF,
segmentation mIoU, higher is better) is strictly better than before, unless told to keep it anyway.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

from torch import Tensor, nn
from tqdm import tqdm

from inas.config import TrainConfig
from inas.data import MultiScaleResize
from inas.nn import StandaloneModel
from inas.train.recipe import SupernetCriterion, build_optimizer, build_scheduler, train_step

SELECTION_METRIC = {"sod": "maxF", "seg": "miou"}  # higher is better


@dataclass(frozen=True)
class FinetuneChoice:
    """Validation scores before and after fine-tuning and which model is kept."""

    metric: str
    before: dict[str, float]
    after: dict[str, float]
    keep_finetuned: bool
    forced: bool = False

    @classmethod
    def decide(cls, task: str, before: dict[str, float], after: dict[str, float],
               force: bool = False) -> FinetuneChoice:
        """Keep the fine-tuned model if `force` or its selection metric is strictly better (a NaN never is)."""
        metric = SELECTION_METRIC[task]
        better = math.isfinite(after[metric]) and not after[metric] <= before[metric]
        return cls(metric, dict(before), dict(after), force or better, force)

    @property
    def kept(self) -> str:
        return "fine-tuned" if self.keep_finetuned else "before fine-tuning"

    def summary(self) -> str:
        """One line: what was kept and why."""
        b, a = self.before[self.metric], self.after[self.metric]
        if self.forced:
            return f"kept the fine-tuned model (--keep-finetuned; {self.metric} {b:.6f} -> {a:.6f})"
        if self.keep_finetuned:
            return f"kept the fine-tuned model ({self.metric} {a:.6f} > {b:.6f} before)"
        return (f"kept the model before fine-tuning ({self.metric} {b:.6f} >= {a:.6f} after fine-tuning; "
                "--keep-finetuned keeps the fine-tuned one)")

    def to_dict(self) -> dict[str, object]:
        return {"selection_metric": self.metric, "metrics_before": self.before, "metrics": self.after,
                "kept": self.kept}


@dataclass(frozen=True)
class FinetuneResult:
    iterations: int
    warmup_iterations: int
    first_loss: float
    last_loss: float
    seconds: float


class _AsSubnetwork(nn.Module):
    """Calls a stand-alone model the way `train_step` calls the supernet: `model(images, arch)` (arch ignored)."""

    def __init__(self, model: StandaloneModel) -> None:
        super().__init__()
        self.model = model

    def forward(self, images: Tensor, _arch: object = None) -> dict[int, Tensor]:
        return self.model(images)


def _cycle(loader: Iterable[dict]) -> Iterator[dict]:
    """Batches forever, epoch after epoch (calling `sampler.set_epoch` when the loader has one)."""
    epoch = 0
    while True:
        set_epoch = getattr(getattr(loader, "sampler", None), "set_epoch", None)
        if callable(set_epoch):
            set_epoch(epoch)
        yielded = False
        for batch in loader:
            yielded = True
            yield batch
        if not yielded:
            raise ValueError("the training loader yielded no batch")
        epoch += 1


def finetune_warmup(train: TrainConfig, iterations: int) -> int:
    return min(train.warmup_iterations, iterations // 10)


def finetune(model: StandaloneModel, loader: Iterable[dict], iterations: int, task: str, train: TrainConfig, *,
             lr: float | None = None, multi_scale: MultiScaleResize | None = None, progress: bool = True,
             on_step: Callable[[int, float], None] | None = None) -> FinetuneResult:
    """Train `model` (unfolded) for `iterations` steps (see the module docstring; `lr` defaults to `train.lr`).
    The model is left in eval mode."""
    if model.folded:
        raise ValueError("fine-tune the unfolded model (extract_subnet(..., fold=False)); fold afterwards")
    if iterations < 1:
        raise ValueError(f"iterations must be >= 1, got {iterations}")
    lr = train.lr if lr is None else lr
    warmup = finetune_warmup(train, iterations)
    optimizer = build_optimizer(model, lr, train.head_lr_multiplier, train.betas, train.weight_decay)
    scheduler = build_scheduler(optimizer, warmup, iterations, train.lr_power)
    criterion = SupernetCriterion.from_config(task, distillation=False, distill_weight=None,
                                              side_weight=train.side_output_weight)
    step_model = _AsSubnetwork(model)
    device = next(model.parameters()).device
    model.train()
    first = last = float("nan")
    start = time.perf_counter()
    batches = _cycle(loader)
    bar = tqdm(range(iterations), desc="fine-tune", unit="it", disable=not progress)
    for it in bar:
        batch = next(batches)
        images, labels = batch["image"], batch["label"]
        if multi_scale is not None:
            images, labels = multi_scale.resize(images, labels)
        optimizer.zero_grad(set_to_none=True)
        losses = train_step(step_model, images.to(device), labels.to(device), [("standalone", model.arch)],
                            criterion)
        optimizer.step()
        scheduler.step()
        last = losses["standalone"]
        if it == 0:
            first = last
        bar.set_postfix(loss=f"{last:.4f}")
        if on_step is not None:
            on_step(it, last)
    model.eval()
    return FinetuneResult(iterations, warmup, first, last, time.perf_counter() - start)

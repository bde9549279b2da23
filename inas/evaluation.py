"""Evaluating sub-networks of a supernet: precise-BN recalibration, BN snapshots, metrics over a loader.

    pristine = bn_state(supernet)
    recalibrate_bn(supernet, bn_loader, 100, forward=lambda x: supernet(x, arch))   # docs/design.md §8
    scores = evaluate_predictions(lambda x: supernet(x, arch), val_loader, "sod", metrics="search")
    load_bn_state(supernet, pristine)

or all four steps at once: `evaluate_arch(supernet, arch, bn_loader, val_loader, bn_batches=100, task="sod")`.
This is what periodic validation during training, the search's accuracy evaluator and `convert` call.
"""

from __future__ import annotations

import contextlib
import itertools
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.modules.batchnorm import _BatchNorm
from tqdm import tqdm

from inas.metrics import SEARCH_METRICS, SegMetrics, SODMetrics
from inas.space import Arch

STRIDE = 32  # the supernet's deepest level: inputs must be multiples of it
BN_BUFFERS = ("running_mean", "running_var", "num_batches_tracked")


def _bn_modules(model: nn.Module) -> list[tuple[str, _BatchNorm]]:
    """Every batch-norm module (BatchNorm1d/2d/3d, SyncBatchNorm) with its qualified name."""
    return [(name, m) for name, m in model.named_modules() if isinstance(m, _BatchNorm)]


def _model_device(model: nn.Module) -> torch.device:
    for tensor in itertools.chain(model.parameters(), model.buffers()):
        return tensor.device
    return torch.device("cpu")


def batch_images(batch: Any) -> Tensor:
    """The image tensor (N, 3, H, W) of a loader batch: a dict with 'image', a (images, ...) tuple, or a tensor."""
    if isinstance(batch, dict):
        return batch["image"]
    if isinstance(batch, (tuple, list)):
        return batch[0]
    if isinstance(batch, Tensor):
        return batch
    raise TypeError(f"cannot find the images in a batch of type {type(batch).__name__}")


# ----- BN state ----------------------------------------------------------------------------------------------------
def bn_state(model: nn.Module) -> dict[str, Tensor]:
    """A copy of every BN buffer: {'<module>.running_mean' | '.running_var' | '.num_batches_tracked': tensor}."""
    state: dict[str, Tensor] = {}
    for name, bn in _bn_modules(model):
        for buffer in BN_BUFFERS:
            value = getattr(bn, buffer, None)
            if value is not None:
                state[f"{name}.{buffer}"] = value.detach().clone()
    return state


@torch.no_grad()
def load_bn_state(model: nn.Module, state: dict[str, Tensor]) -> None:
    """Write a `bn_state` snapshot back in place; the keys must be exactly the model's BN buffers."""
    own = {}
    for name, bn in _bn_modules(model):
        for buffer in BN_BUFFERS:
            value = getattr(bn, buffer, None)
            if value is not None:
                own[f"{name}.{buffer}"] = value
    if set(own) != set(state):
        missing = sorted(set(own) - set(state))[:5]
        extra = sorted(set(state) - set(own))[:5]
        raise ValueError(f"BN state does not match the model (missing {missing}, unexpected {extra})")
    for key, target in own.items():
        target.copy_(state[key])


def _running_stats(bn: _BatchNorm) -> tuple[Tensor, Tensor]:
    """(running_mean, running_var) of a BN that tracks them (C,) each."""
    if bn.running_mean is None or bn.running_var is None:
        raise ValueError("this batch norm keeps no running statistics")
    return bn.running_mean, bn.running_var


# ----- precise BN --------------------------------------------------------------------------------------------------
@torch.no_grad()
@contextlib.contextmanager
def _per_batch_statistics(model: nn.Module, bns: list[_BatchNorm]) -> Iterator[None]:
    """Train mode with momentum 1.0 on every BN, so each forward leaves exactly that batch's mean and unbiased
    variance in the buffers; momenta and `num_batches_tracked` are restored on exit."""
    momenta = [bn.momentum for bn in bns]
    counts = [None if bn.num_batches_tracked is None else bn.num_batches_tracked.clone() for bn in bns]
    model.train()
    for bn in bns:
        bn.momentum = 1.0
    try:
        yield
    finally:
        for bn, momentum, count in zip(bns, momenta, counts, strict=True):
            bn.momentum = momentum
            if count is not None and bn.num_batches_tracked is not None:
                bn.num_batches_tracked.copy_(count)


def _mean_batch_statistics(
    batches: Iterable[Any], forward: Callable[[Tensor], Any], device: torch.device, bns: list[_BatchNorm]
) -> tuple[list[Tensor], list[Tensor]]:
    """Running means over `batches` of each BN's per-batch (mean, variance), in `_per_batch_statistics` mode."""
    means = [torch.zeros_like(_running_stats(bn)[0]) for bn in bns]
    variances = [torch.zeros_like(_running_stats(bn)[1]) for bn in bns]
    seen = 0
    for batch in batches:
        forward(batch_images(batch).to(device, non_blocking=True))
        seen += 1
        for bn, mean, var in zip(bns, means, variances, strict=True):
            running_mean, running_var = _running_stats(bn)
            mean += (running_mean - mean) / seen
            var += (running_var - var) / seen
    if seen == 0:
        raise ValueError("BN recalibration loader yielded no batch")
    return means, variances


def recalibrate_bn(
    model: nn.Module,
    loader: Iterable[Any],
    num_batches: int,
    forward: Callable[[Tensor], Any] | None = None,
) -> None:
    """Precise BN (docs/design.md §8): replace every BN's running mean / variance by the average over `num_batches`
    batches of `loader` of the per-batch statistics.

    All BN modules run in train mode with momentum 1.0 (each forward leaves exactly that batch's mean and unbiased
    variance in the buffers); the arithmetic mean over batches is written back, momenta and `num_batches_tracked`
    are restored. Entries a sub-network does not use (channels beyond its width with the supernet's prefix slicing,
    layers beyond its depth, kernels outside its sets) are never touched by the forwards, so they keep their values.
    `forward(images)` defaults to `model(images)`; images (N, 3, H, W) are moved to the model's device.
    The model is left in eval mode. Raises ValueError if the loader yields no batch.
    """
    if num_batches < 1:
        raise ValueError(f"num_batches must be >= 1, got {num_batches}")
    bns = [bn for _, bn in _bn_modules(model)]
    tracked = [bn for bn in bns if bn.running_mean is not None and bn.running_var is not None]
    with _per_batch_statistics(model, bns):
        batches = itertools.islice(loader, num_batches)
        means, variances = _mean_batch_statistics(batches, model if forward is None else forward,
                                                  _model_device(model), tracked)
    for bn, mean, var in zip(tracked, means, variances, strict=True):
        running_mean, running_var = _running_stats(bn)
        running_mean.copy_(mean)
        running_var.copy_(var)
    model.eval()


# ----- metrics over a loader ---------------------------------------------------------------------------------------
def _metric_names(task: str, metrics: Sequence[str] | str | None) -> tuple[str, ...] | None:
    if task != "sod":
        return None
    if metrics == "search":
        return SEARCH_METRICS
    if isinstance(metrics, str):
        return (metrics,)
    return None if metrics is None else tuple(metrics)


def _resize_to(pred: Tensor, height: int, width: int) -> Tensor:
    """(K, h, w) -> (K, height, width), bilinear (half-pixel centres, like cv2.INTER_LINEAR)."""
    if tuple(pred.shape[-2:]) == (height, width):
        return pred
    return F.interpolate(pred[None], size=(height, width), mode="bilinear", align_corners=False)[0]


def _scorer(task: str, protocol: str, metrics: Sequence[str] | str | None,
            num_classes: int | None) -> SODMetrics | SegMetrics | None:
    """The metric accumulator of `task`; None for segmentation with an unknown class count (taken later from the
    first prediction)."""
    if task not in ("sod", "seg"):
        raise ValueError(f"task must be 'sod' or 'seg', got {task!r}")
    if task == "sod":
        return SODMetrics(protocol=protocol, metrics=_metric_names(task, metrics))
    return None if num_classes is None else SegMetrics(num_classes, protocol=protocol)


def _predict_batch(predict_fn: Callable[[Tensor], Tensor], batch: dict,
                   device: torch.device | str | None) -> tuple[Tensor, list[Tensor]]:
    """(predictions (N, K, h, w) float on the CPU, the N ground truths (H, W)) of one evaluation batch."""
    images = batch_images(batch)
    if device is not None:
        images = images.to(device, non_blocking=True)
    with torch.no_grad():
        preds = predict_fn(images)
    if preds.dim() != 4 or preds.shape[0] != images.shape[0]:
        raise ValueError(f"predict_fn must return (N, K, h, w) for N = {images.shape[0]}, got {tuple(preds.shape)}")
    labels = batch["label"]
    if isinstance(labels, Tensor) and labels.dim() >= 3:
        labels = list(labels)
    return preds.detach().float().cpu(), [gt.squeeze(0) if gt.dim() == 3 else gt for gt in labels]


def evaluate_predictions(
    predict_fn: Callable[[Tensor], Tensor],
    loader: Iterable[dict],
    task: str,
    protocol: str = "standard",
    metrics: Sequence[str] | str | None = None,
    progress: bool = False,
    num_classes: int | None = None,
    device: torch.device | str | None = None,
) -> dict[str, float]:
    """Score `predict_fn` over an evaluation loader (batches from `collate_eval`: `image` (N, 3, H, W), `label` a
    list of full-resolution ground truths).

    `predict_fn(images) -> (N, K, h, w)`: SOD probabilities in [0, 1] (K = 1); segmentation logits or
    probabilities (K classes). Each prediction is resized bilinearly to its ground truth's size.
    SOD returns `SODMetrics` keys (`metrics`: None = all, "search" = maxF + mae, or a list of names);
    segmentation returns `SegMetrics` keys (`miou`, `iou_<class>`), K taken from the first prediction unless
    `num_classes` is given. `device`: where images go (default: left where the loader puts them).
    """
    scorer = _scorer(task, protocol, metrics, num_classes)
    total = len(loader) if hasattr(loader, "__len__") else None  # type: ignore[arg-type]
    for batch in tqdm(loader, desc="evaluate", unit="batch", total=total, disable=not progress, leave=False):
        preds, labels = _predict_batch(predict_fn, batch, device)
        if scorer is None:
            scorer = SegMetrics(preds.shape[1], protocol=protocol)
        for pred, gt in zip(preds, labels, strict=True):
            pred = _resize_to(pred, int(gt.shape[-2]), int(gt.shape[-1]))
            scorer.update(pred[0].clamp_(0.0, 1.0) if task == "sod" else pred, gt)
    if scorer is None:
        raise ValueError("evaluation loader yielded no batch")
    return scorer.compute()


def fit_to_stride(images: Tensor, stride: int = STRIDE) -> Tensor:
    """Resize (N, 3, H, W) bilinearly up to the next multiples of `stride` (no-op when already multiples)."""
    height, width = images.shape[-2:]
    new_h, new_w = -(-height // stride) * stride, -(-width // stride) * stride
    if (new_h, new_w) == (height, width):
        return images
    return F.interpolate(images, size=(new_h, new_w), mode="bilinear", align_corners=True)


def supernet_predictor(supernet: nn.Module, arch: Arch | None, task: str) -> Callable[[Tensor], Tensor]:
    """`images -> (N, K, H, W)` for one architecture of a supernet in eval mode: SOD probabilities (a sigmoid is
    applied when the heads output logits), segmentation class scores. Inputs are fitted to multiples of 32."""
    activation = getattr(supernet, "head_activation", None)
    device = _model_device(supernet)

    def predict(images: Tensor) -> Tensor:
        out = supernet(fit_to_stride(images.to(device, non_blocking=True)), arch)
        if isinstance(out, dict):  # a model left in train mode: the level-0 head is the prediction
            out = out[0]
        if task == "sod" and activation != "sigmoid":
            out = torch.sigmoid(out)
        return out

    return predict


def evaluate_arch(
    supernet: nn.Module,
    arch: Arch | None,
    bn_loader: Iterable[Any],
    val_loader: Iterable[dict],
    bn_batches: int,
    task: str,
    protocol: str = "standard",
    metrics: Sequence[str] | str | None = None,
    progress: bool = False,
) -> dict[str, float]:
    """Score one architecture of `supernet`: BN recalibrated on `bn_batches` batches of `bn_loader` for that
    architecture, then `evaluate_predictions` over `val_loader`; every BN buffer and the train/eval flag are
    restored afterwards, so each call starts from the same pristine BN state. `arch=None` is the max network."""
    pristine = bn_state(supernet)
    was_training = supernet.training
    try:
        recalibrate_bn(supernet, bn_loader, bn_batches, forward=lambda images: supernet(images, arch))
        supernet.eval()
        num_classes = getattr(supernet, "num_classes", None) if task == "seg" else None
        return evaluate_predictions(supernet_predictor(supernet, arch, task), val_loader, task, protocol=protocol,
                                    metrics=metrics, progress=progress, num_classes=num_classes)
    finally:
        load_bn_state(supernet, pristine)
        supernet.train(was_training)

"""`SODMetrics`: salient-object-detection metrics accumulated image by image over a data set.

Two protocols:

- `standard` (default): the conventions of the `pysodmetrics` package, equal to it to 1e-6 (tests check it):
  max / mean / adaptive F-measure (beta^2 = 0.3, 256 thresholds), MAE, S-measure (alpha = 0.5), max / mean /
  adaptive E-measure, weighted F-measure. Curves are averaged over images, then max / mean over thresholds.
- `legacy`: the original iNAS numbers (see `inas.metrics.sod_legacy`): max F, MAE and S-measure only; the other keys
  are NaN because the original never defined them.

Input conventions (`update(pred, gt)`, numpy arrays or torch tensors, (H, W)):

- standard `pred`: uint8 0..255 (read as `pred / 255`, like pysodmetrics) or float in [0, 1] (taken as is, so a
  float map `u / 255` scores exactly like the uint8 map `u`); bool is read as 0/1. Then min-max normalised per image.
- standard `gt`: uint8 (foreground = gt > 128, as pysodmetrics), bool (taken as is) or float in [0, 1]
  (foreground = round(gt * 255) > 128). Other integer types are refused: cast explicitly, a 0/1 int64 label map
  would otherwise silently read as all background.
- legacy `pred`: uint8 as is; float in [0, 1] is clamped, scaled by 255 and truncated to uint8 first (what the
  original did to the sigmoid output); bool as 0/255. Legacy `gt`: raw values (uint8, float or bool), normalised by
  their own maximum as the original did.

Speed: uint8 predictions take a histogram path (`inas.metrics.sod_uint8`: one `bincount` per image, then 256-entry
tables); float predictions a pixel path (`inas.metrics.sod_standard`); both give the same numbers. The weighted
F-measure dominates the full set (an exact distance transform per image); `SEARCH_METRICS` skips it and everything
else the search does not need.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np
import torch
from torch import Tensor

from inas.metrics import sod_legacy, sod_standard
from inas.metrics.sod_uint8 import statistics_from_uint8

SOD_METRIC_NAMES: tuple[str, ...] = ("maxF", "meanF", "adpF", "mae", "sm", "maxE", "meanE", "adpE", "wF")
SEARCH_METRICS: tuple[str, ...] = ("maxF", "mae")  # what the architecture search needs; the cheap subset
LEGACY_METRIC_NAMES: tuple[str, ...] = ("maxF", "mae", "sm")
PROTOCOLS: tuple[str, ...] = ("standard", "legacy")
# update_batch works through a batch in chunks of at most this many pixels: on a CPU, temporaries that stay in cache
# beat one huge vectorised pass (measured: 4 maps of 400x300 per chunk is fastest); accelerators take big chunks.
CPU_CHUNK_PIXELS = 1 << 19
ACCELERATOR_CHUNK_PIXELS = 1 << 25


def as_tensor(array: Any, device: torch.device | str | None = None) -> Tensor:
    """numpy array or tensor -> tensor (copied only when numpy cannot share the memory), moved to `device`."""
    if isinstance(array, Tensor):
        tensor = array
    else:
        array = np.asarray(array)
        if not array.flags.writeable or not array.flags.c_contiguous:
            array = np.ascontiguousarray(array).copy()
        tensor = torch.from_numpy(array)
    tensor = tensor.detach()
    return tensor if device is None else tensor.to(device)


def _squeeze_map(tensor: Tensor, name: str) -> Tensor:
    """(H, W), (1, H, W) or (1, 1, H, W) -> (H, W)."""
    while tensor.dim() > 2 and tensor.shape[0] == 1:
        tensor = tensor[0]
    if tensor.dim() != 2:
        raise ValueError(f"{name} must be one (H, W) map, got shape {tuple(tensor.shape)}")
    return tensor


def _squeeze_batch(tensor: Tensor, name: str) -> Tensor:
    """(N, H, W) or (N, 1, H, W) -> (N, H, W)."""
    if tensor.dim() == 4 and tensor.shape[1] == 1:
        tensor = tensor[:, 0]
    if tensor.dim() != 3:
        raise ValueError(f"{name} must be a (N, H, W) or (N, 1, H, W) batch, got shape {tuple(tensor.shape)}")
    return tensor


def _check_unit_range(tensor: Tensor, name: str) -> None:
    """Refuse values outside [0, 1], NaN included (comparisons with NaN are false)."""
    if not bool(((tensor >= 0) & (tensor <= 1)).all()):
        raise ValueError(
            f"{name}: a float map must lie in [0, 1] (no NaN), got values in [{float(tensor.min())}, "
            f"{float(tensor.max())}]"
        )


def standard_pred(pred: Tensor) -> Tensor:
    """Prediction as float64 in [0, 1] before the min-max normalisation (standard protocol)."""
    if pred.dtype == torch.uint8:
        return pred.to(torch.float64) / 255
    if pred.dtype == torch.bool:
        return pred.to(torch.float64)
    if pred.is_floating_point():
        _check_unit_range(pred, "pred")
        return pred.to(torch.float64)
    raise ValueError(f"pred must be uint8 (0..255) or float in [0, 1], got {pred.dtype}")


def standard_gt(gt: Tensor) -> Tensor:
    """Ground truth as a bool object mask (standard protocol)."""
    if gt.dtype == torch.bool:
        return gt
    if gt.dtype == torch.uint8:
        return gt > 128
    if gt.is_floating_point():
        _check_unit_range(gt, "gt")
        return torch.round(gt.to(torch.float64) * 255) > 128
    raise ValueError(f"gt must be uint8 (0..255), bool or float in [0, 1], got {gt.dtype}; cast it explicitly")


def legacy_pred(pred: Tensor) -> Tensor:
    """Prediction as float64 holding uint8 values 0..255 (legacy protocol)."""
    if pred.dtype == torch.uint8:
        return pred.to(torch.float64)
    if pred.dtype == torch.bool:
        return pred.to(torch.float64) * 255
    if pred.is_floating_point():
        if bool(torch.isnan(pred).any()):
            raise ValueError("pred: the prediction contains NaN")
        return (pred.to(torch.float64).clamp(0, 1) * 255).to(torch.uint8).to(torch.float64)
    raise ValueError(f"pred must be uint8 (0..255) or float in [0, 1], got {pred.dtype}")


def legacy_gt(gt: Tensor) -> Tensor:
    """Ground truth as float64 raw values (legacy protocol; the original never binarised it up front)."""
    if gt.dtype == torch.bool:
        return gt.to(torch.float64) * 255
    if gt.dtype == torch.uint8 or gt.is_floating_point():
        return gt.to(torch.float64)
    raise ValueError(f"gt must be uint8 (0..255), bool or float, got {gt.dtype}; cast it explicitly")


class SODMetrics:
    """Accumulates SOD metrics over a data set; `compute()` returns `{name: float}` for the chosen metrics.

    `protocol`: "standard" (pysodmetrics conventions) or "legacy" (the original iNAS numbers).
    `metrics`: names from `SOD_METRIC_NAMES` (default: all). `SEARCH_METRICS` = ("maxF", "mae") skips everything else
    (no E-measure, S-measure, distance transform), which is what makes scoring many sub-networks cheap.
    `device`: where to compute (default: the device of the first input tensor; numpy inputs go to the CPU).
    """

    def __init__(
        self,
        protocol: str = "standard",
        metrics: Iterable[str] | None = None,
        device: torch.device | str | None = None,
    ) -> None:
        if protocol not in PROTOCOLS:
            raise ValueError(f"protocol must be one of {PROTOCOLS}, got {protocol!r}")
        names = SOD_METRIC_NAMES if metrics is None else tuple(metrics)
        unknown = [name for name in names if name not in SOD_METRIC_NAMES]
        if unknown or not names:
            raise ValueError(f"metrics must be a non-empty subset of {SOD_METRIC_NAMES}, got {names}")
        self.protocol = protocol
        self.metrics: tuple[str, ...] = tuple(name for name in SOD_METRIC_NAMES if name in names)
        self.device = None if device is None else torch.device(device)
        self.reset()

    def reset(self) -> None:
        """Forget every image seen so far."""
        self.num_images = 0
        self._sums: dict[str, Tensor] = {}
        self._legacy_sm_values: list[float] = []

    def _add(self, key: str, value: Tensor) -> None:
        if key in self._sums:
            self._sums[key] = self._sums[key] + value
        else:
            self._sums[key] = value.clone()

    def update(self, pred: Any, gt: Any) -> None:
        """Add one image: `pred` and `gt` (H, W) of the same size (see the module docstring for dtypes)."""
        pred_t = _squeeze_map(as_tensor(pred, self.device), "pred")
        gt_t = _squeeze_map(as_tensor(gt, self.device), "gt")
        if pred_t.shape != gt_t.shape:
            raise ValueError(f"pred {tuple(pred_t.shape)} and gt {tuple(gt_t.shape)} must have the same size")
        self._update(pred_t.unsqueeze(0), gt_t.to(pred_t.device).unsqueeze(0))

    def update_batch(self, preds: Any, gts: Any) -> None:
        """Add N images of one size at once: `preds`, `gts` (N, H, W) or (N, 1, H, W).

        Vectorised over the images of a chunk (`CPU_CHUNK_PIXELS` pixels on a CPU, `ACCELERATOR_CHUNK_PIXELS`
        elsewhere); the same numbers as N calls of `update`.
        """
        pred_t = _squeeze_batch(as_tensor(preds, self.device), "preds")
        gt_t = _squeeze_batch(as_tensor(gts, self.device), "gts")
        if pred_t.shape != gt_t.shape:
            raise ValueError(f"preds {tuple(pred_t.shape)} and gts {tuple(gt_t.shape)} must have the same shape")
        gt_t = gt_t.to(pred_t.device)
        limit = CPU_CHUNK_PIXELS if pred_t.device.type == "cpu" else ACCELERATOR_CHUNK_PIXELS
        chunk = max(1, limit // max(1, pred_t.shape[1] * pred_t.shape[2]))
        for start in range(0, pred_t.shape[0], chunk):
            self._update(pred_t[start : start + chunk], gt_t[start : start + chunk])

    def _update(self, pred: Tensor, gt: Tensor) -> None:
        if self.protocol == "standard":
            self._update_standard(pred, gt)
        else:
            self._update_legacy(legacy_pred(pred), legacy_gt(gt))
        self.num_images += pred.shape[0]

    def _update_standard(self, pred: Tensor, gt: Tensor) -> None:
        wanted = set(self.metrics)
        if pred.dtype == torch.uint8:
            stats = statistics_from_uint8(pred, standard_gt(gt), wanted)
        else:
            stats = sod_standard.statistics_from_float(standard_pred(pred), standard_gt(gt), wanted)
        for key, per_image in stats.items():
            self._add(key, per_image.sum(dim=0))

    def _update_legacy(self, pred: Tensor, gt: Tensor) -> None:
        wanted = set(self.metrics)
        if "maxF" in wanted:
            precision, recall = sod_legacy.legacy_precision_recall(pred, gt)
            self._add("precision", precision.sum(dim=0))
            self._add("recall", recall.sum(dim=0))
        if "mae" in wanted:
            self._add("mae", sod_legacy.legacy_mae(pred, gt).sum())
        if "sm" in wanted:
            for i in range(pred.shape[0]):
                self._legacy_sm_values.append(sod_legacy.legacy_smeasure(pred[i], gt[i]))

    def compute(self) -> dict[str, float]:
        """`{name: value}` for the chosen metrics, in `SOD_METRIC_NAMES` order; raises if no image was added."""
        if self.num_images == 0:
            raise ValueError("SODMetrics.compute() called before any image was added")
        if self.protocol == "legacy":
            return self._compute_legacy()
        n = self.num_images
        values: dict[str, float] = {}
        for name in self.metrics:
            if name in sod_standard.CURVE_KEYS:
                curve = self._sums[sod_standard.CURVE_KEYS[name]] / n
                values[name] = float(curve.max() if name.startswith("max") else curve.mean())
            else:
                values[name] = float(self._sums[name] / n)
        return values

    def _compute_legacy(self) -> dict[str, float]:
        values: dict[str, float] = {}
        for name in self.metrics:
            if name == "maxF":
                values[name] = sod_legacy.legacy_max_fmeasure(
                    self._sums["precision"], self._sums["recall"], self.num_images
                )
            elif name == "mae":
                values[name] = float(self._sums["mae"] / self.num_images)
            elif name == "sm":
                kept = [value for value in self._legacy_sm_values if not np.isnan(value)]
                values[name] = float(sum(kept) / len(kept)) if kept else float("nan")
            else:
                values[name] = float("nan")  # not defined by the original iNAS code
        return values

    def curves(self) -> dict[str, np.ndarray]:
        """Averaged curves of the standard protocol: `{"fmeasure": (256,), "emeasure": (256,)}` for thresholds
        255 down to 0 (only those that were computed)."""
        if self.num_images == 0 or self.protocol != "standard":
            return {}
        out = {}
        for key, name in (("f_curve", "fmeasure"), ("e_curve", "emeasure")):
            if key in self._sums:
                out[name] = (self._sums[key] / self.num_images).cpu().numpy()
        return out

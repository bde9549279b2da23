"""The original iNAS metrics (iNAS/metrics/*.py), reproduced with their quirks (docs/design.md §11.1).

Inputs are the raw maps the original received: `pred` (N, H, W) float64 holding uint8 values 0..255 and `gt`
(N, H, W) float64 holding the raw mask values (0..255, not binarised). Quirks kept on purpose:

- every map is divided by its own maximum (+1e-8), so the brightest prediction pixel always counts as 1;
- max F: histograms over 255 bins with edges 0, 1, ..., 255 (the last bin is [254, 255]), foreground = gt > 128
  after the max normalisation, precision and recall averaged over images (divided by n + 1e-8) before F, beta^2 = 0.3;
- MAE: mean |pred - gt| after the max normalisation of both, divided by H*W + 1e-8;
- S-measure: float32 torch arithmetic, gt NOT binarised (`gt == 1` only where the mask reaches its maximum),
  unbiased torch std (NaN for a single pixel), quadrants split at the rounded centroid without the +1 of the
  standard version, an image whose score is NaN is skipped.
"""

from __future__ import annotations

import torch
from torch import Tensor

LEGACY_EPS = 1e-8
LEGACY_BETA2 = 0.3
LEGACY_BINS = 255  # bin edges 0, 1, ..., 255
LEGACY_ALPHA = 0.5


def _normalise_by_max(maps: Tensor) -> Tensor:
    """`map / (max(map) + 1e-8)` per image, float64 (N, H, W)."""
    return maps / (maps.amax(dim=(1, 2), keepdim=True) + LEGACY_EPS)


def legacy_precision_recall(pred: Tensor, gt: Tensor) -> tuple[Tensor, Tensor]:
    """Per-image precision and recall curves of the original `Fmeasure`, each (N, 255) float64.

    Entry i is the threshold 254 - i on `pred / (max + 1e-8) * 255` (counts of pixels in bins >= 254 - i).
    """
    n = pred.shape[0]
    pred255 = _normalise_by_max(pred) * 255.0
    gt255 = _normalise_by_max(gt) * 255.0
    foreground = gt255 > 128
    bins = pred255.floor().clamp(max=LEGACY_BINS - 1).to(torch.int64)  # values lie in [0, 255]
    offset = torch.arange(n, device=pred.device).view(n, 1, 1) * (2 * LEGACY_BINS)
    index = bins + foreground.to(torch.int64) * LEGACY_BINS + offset
    hist = torch.bincount(index.reshape(-1), minlength=2 * LEGACY_BINS * n).view(n, 2, LEGACY_BINS)
    tp = hist[:, 1].flip(-1).cumsum(-1).to(torch.float64)
    fp = hist[:, 0].flip(-1).cumsum(-1).to(torch.float64)
    fg_count = foreground.sum(dim=(1, 2)).to(torch.float64).unsqueeze(1)
    precision = tp / (tp + fp + LEGACY_EPS)
    recall = tp / (fg_count + LEGACY_EPS)
    return precision, recall


def legacy_max_fmeasure(precision_sum: Tensor, recall_sum: Tensor, num_images: int) -> float:
    """Max over thresholds of F computed from precision/recall averaged over images (the original's `get_metric`)."""
    precision = precision_sum / (num_images + LEGACY_EPS)
    recall = recall_sum / (num_images + LEGACY_EPS)
    f = (1 + LEGACY_BETA2) * precision * recall / (LEGACY_BETA2 * precision + recall + LEGACY_EPS)
    return float(f.max())


def legacy_mae(pred: Tensor, gt: Tensor) -> Tensor:
    """Per-image MAE of the original, (N,) float64."""
    h, w = pred.shape[1:]
    error = (_normalise_by_max(pred) - _normalise_by_max(gt)).abs().sum(dim=(1, 2))
    return error / (float(h) * float(w) + LEGACY_EPS)


def _object_score(values: Tensor, mask: Tensor) -> Tensor:
    selected = values[mask]
    mean = selected.mean()
    std = selected.std() if selected.numel() > 1 else torch.tensor(float("nan"))
    return 2.0 * mean / (mean * mean + 1.0 + std + 1e-20)


def _ssim(pred: Tensor, gt: Tensor) -> Tensor | float:
    n = pred.shape[0] * pred.shape[1]
    x = pred.mean()
    y = gt.mean()
    dof = n - 1 + 1e-20
    sigma_x2 = ((pred - x) * (pred - x)).sum() / dof
    sigma_y2 = ((gt - y) * (gt - y)).sum() / dof
    sigma_xy = ((pred - x) * (gt - y)).sum() / dof
    alpha = 4 * x * y * sigma_xy
    beta = (x * x + y * y) * (sigma_x2 + sigma_y2)
    if alpha != 0:  # NaN (an empty quadrant) takes this branch too, as in the original
        return alpha / (beta + 1e-20)
    return 1.0 if beta == 0 else 0.0


def _region_score(pred: Tensor, gt: Tensor) -> Tensor:
    h, w = gt.shape
    total = gt.sum()
    cols = torch.arange(w, dtype=torch.float32)
    rows = torch.arange(h, dtype=torch.float32)
    x = torch.round((gt.sum(dim=0) * cols).sum() / total).long()  # callers guarantee total > 0
    y = torch.round((gt.sum(dim=1) * rows).sum() / total).long()
    area = h * w
    xf, yf = x.float(), y.float()
    w1 = xf * yf / area
    w2 = (w - xf) * yf / area
    w3 = xf * (h - yf) / area
    w4 = 1 - w1 - w2 - w3
    q1 = _ssim(pred[:y, :x], gt[:y, :x])
    q2 = _ssim(pred[:y, x:w], gt[:y, x:w])
    q3 = _ssim(pred[y:h, :x], gt[y:h, :x])
    q4 = _ssim(pred[y:h, x:w], gt[y:h, x:w])
    return w1 * q1 + w2 * q2 + w3 * q3 + w4 * q4


def legacy_smeasure(pred: Tensor, gt: Tensor) -> float:
    """S-measure of one image as the original computed it (float32 on CPU); NaN means "skip this image".

    `pred`, `gt` (H, W) float64 raw values (uint8 range for pred, raw mask values for gt).
    """
    pred32 = (pred / (pred.max() + LEGACY_EPS)).float().cpu()
    gt32 = (gt / (gt.max() + LEGACY_EPS)).float().cpu()
    mean_gt = gt32.mean()
    if mean_gt <= 1e-5:
        return float(1.0 - pred32.mean())
    if mean_gt == 1:
        return float(pred32.mean())
    fg = torch.where(gt32 == 0, torch.zeros_like(pred32), pred32)
    bg = torch.where(gt32 == 1, torch.zeros_like(pred32), 1 - pred32)
    object_score = mean_gt * _object_score(fg, gt32 == 1) + (1 - mean_gt) * _object_score(bg, (1 - gt32) == 1)
    score = LEGACY_ALPHA * object_score + (1 - LEGACY_ALPHA) * _region_score(pred32, gt32)
    value = float(score)
    return 0.0 if value < 0 else value

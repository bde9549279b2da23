"""Per-image SOD statistics with the conventions of the `pysodmetrics` package (the standard protocol).

Two paths compute the same statistics:

- `statistics_from_float` (this module): any prediction, pixel by pixel, `pred` (N, H, W) float64 in [0, 1];
- `inas.metrics.sod_uint8.statistics_from_uint8`: uint8 predictions through one histogram per image, much faster
  because a uint8 map has only 256 distinct values and every normalised value is a function of the raw value.

Both return `{key: per-image tensor}` with keys among `f_curve` (N, 256), `e_curve` (N, 256), `adpF`, `adpE`, `mae`,
`sm`, `wF` (N,). Curves are in the reference's order: entry i is the threshold 255 - i on the prediction quantised as
`floor(normalised_pred * 255)`. Nothing loops over thresholds: per-threshold counts are a reverse cumulative sum of
a histogram. The formulas on counts and moments below are shared by both paths.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from inas.metrics.weighted_fmeasure import weighted_fmeasure

EPS = float(np.spacing(1))  # 2.22e-16: MATLAB's eps, the constant pysodmetrics uses
NUM_LEVELS = 256
F_BETA2 = 0.3  # beta^2 of the F-measure (pysodmetrics and the paper call it `beta`)
S_ALPHA = 0.5  # object vs region weight of the S-measure
CURVE_KEYS = {"maxF": "f_curve", "meanF": "f_curve", "maxE": "e_curve", "meanE": "e_curve"}

# --- formulas on counts and moments (shared) -------------------------------------------------------------------------


def at_or_above(level_hist: Tensor) -> Tensor:
    """(..., 256) counts per quantised level -> counts at or above thresholds 255, 254, ..., 0."""
    return level_hist.flip(-1).cumsum(-1)


def fmeasure_curve(fg_at_or_above: Tensor, bg_at_or_above: Tensor, gt_count: Tensor) -> Tensor:
    """F-measure (beta^2 = 0.3) per image and threshold, (N, 256) float64, as `Fmeasure.cal_pr`."""
    tp = fg_at_or_above.to(torch.float64)
    predicted = (fg_at_or_above + bg_at_or_above).to(torch.float64)
    predicted = torch.where(predicted == 0, torch.ones_like(predicted), predicted)
    positives = gt_count.clamp(min=1).to(torch.float64).unsqueeze(1)
    precision = tp / predicted
    recall = tp / positives
    numerator = (1 + F_BETA2) * precision * recall
    denominator = torch.where(numerator == 0, torch.ones_like(numerator), F_BETA2 * precision + recall)
    return numerator / denominator


def adaptive_fmeasure(fg_fg: Tensor, predicted: Tensor, gt_count: Tensor) -> Tensor:
    """F-measure of a binarised map from its counts (object pixels found, pixels predicted, object pixels), (N,);
    0 when no object pixel is found, as `Fmeasure.cal_adaptive_fm`."""
    intersection = fg_fg.to(torch.float64)
    found = intersection > 0
    one = torch.ones_like(intersection)
    precision = intersection / torch.where(found, predicted.to(torch.float64), one)
    recall = intersection / torch.where(found, gt_count.to(torch.float64), one)
    denominator = torch.where(found, F_BETA2 * precision + recall, one)
    value = (1 + F_BETA2) * precision * recall / denominator
    return torch.where(found, value, torch.zeros_like(value))


def enhanced_alignment(fg_fg: Tensor, fg_bg: Tensor, gt_fg: Tensor, size: int) -> Tensor:
    """E-measure of a binarised map from counts (any broadcastable shapes), as `Emeasure.cal_em_with_threshold`.

    `fg_fg`: predicted-foreground pixels inside the object, `fg_bg`: predicted-foreground pixels outside it,
    `gt_fg`: object pixels, `size`: pixels in the image. Same arithmetic order as the reference.
    """
    pred_fg = fg_fg + fg_bg
    pred_bg = size - pred_fg
    bg_fg = gt_fg - fg_fg
    bg_bg = pred_bg - bg_fg
    mean_pred = pred_fg.to(torch.float64) / size
    mean_gt = gt_fg.to(torch.float64) / size
    pred_fg_value, pred_bg_value = 1 - mean_pred, 0 - mean_pred
    gt_fg_value, gt_bg_value = 1 - mean_gt, 0 - mean_gt
    parts = (
        (fg_fg, pred_fg_value, gt_fg_value),
        (fg_bg, pred_fg_value, gt_bg_value),
        (bg_fg, pred_bg_value, gt_fg_value),
        (bg_bg, pred_bg_value, gt_bg_value),
    )
    total = torch.zeros_like(mean_pred * mean_gt)
    for numel, pred_value, gt_value in parts:
        align = 2 * (pred_value * gt_value) / (pred_value**2 + gt_value**2 + EPS)
        total = total + (align + 1) ** 2 / 4 * numel.to(torch.float64)
    empty = (gt_fg == 0).expand_as(total)
    full = (gt_fg == size).expand_as(total)
    total = torch.where(empty, pred_bg.to(torch.float64).expand_as(total), total)
    total = torch.where(full, pred_fg.to(torch.float64).expand_as(total), total)
    return total / (size - 1 + EPS)


def object_similarity(mean: Tensor, squared_deviation: Tensor, count: Tensor) -> Tensor:
    """`2 m / (m^2 + 1 + s + eps)` with s the sample std from the summed squared deviations (0 for one pixel)."""
    count64 = count.to(torch.float64)
    std = torch.where(
        count > 1, (squared_deviation / (count64 - 1).clamp(min=1)).sqrt(), torch.zeros_like(squared_deviation)
    )
    return 2 * mean / (mean**2 + 1 + std + EPS)


def centroid_split(gt: Tensor, gt_count: Tensor) -> tuple[Tensor, Tensor]:
    """Where the S-measure splits each image, `(cy, cx)` (N,) int64: rows [0, cy) and columns [0, cx) are the
    top-left quadrant (the reference's rounded centroid + 1, from its MATLAB origin)."""
    n, h, w = gt.shape
    device = gt.device
    safe_count = gt_count.clamp(min=1).to(torch.float64)
    row_mass = gt.sum(dim=2).to(torch.float64)  # (N, H)
    col_mass = gt.sum(dim=1).to(torch.float64)  # (N, W)
    cy = torch.round((row_mass * torch.arange(h, device=device, dtype=torch.float64)).sum(dim=1) / safe_count)
    cx = torch.round((col_mass * torch.arange(w, device=device, dtype=torch.float64)).sum(dim=1) / safe_count)
    cy = torch.where(gt_count > 0, cy, torch.full_like(cy, float(np.round(h / 2))))
    cx = torch.where(gt_count > 0, cx, torch.full_like(cx, float(np.round(w / 2))))
    return cy.to(torch.int64) + 1, cx.to(torch.int64) + 1


def quadrant_weights(cy: Tensor, cx: Tensor, h: int, w: int) -> Tensor:
    """Area fractions of the 4 quadrants, (N, 4) float64 in the order left-top, right-top, left-bottom, right-bottom
    (the last one as 1 - the others, like the reference)."""
    area = h * w
    w_lt = (cx * cy).to(torch.float64) / area
    w_rt = (cy * (w - cx)).to(torch.float64) / area
    w_lb = ((h - cy) * cx).to(torch.float64) / area
    return torch.stack([w_lt, w_rt, w_lb, 1 - w_lt - w_rt - w_lb], dim=1)


def ssim_score(x: Tensor, y: Tensor, sum_xx: Tensor, sum_yy: Tensor, sum_xy: Tensor, count: Tensor) -> Tensor:
    """The S-measure's SSIM-like quadrant score from means and centred sums of squares/products (any shape).

    An empty quadrant (count 0) scores 0; it always has weight 0, where the reference returns NaN.
    """
    count64 = count.to(torch.float64)
    dof = count64 - 1 + EPS
    alpha = 4 * x * y * (sum_xy / dof)
    beta = (x**2 + y**2) * (sum_xx / dof + sum_yy / dof)
    score = torch.where(alpha != 0, alpha / (beta + EPS), (beta == 0).to(torch.float64))
    return torch.where(count > 0, score, torch.zeros_like(score))


def region_score(scores: Tensor, weights: Tensor) -> Tensor:
    """Sum of the 4 quadrant scores times their weights, (N, 4) -> (N,), added in the reference's order."""
    return (
        scores[:, 0] * weights[:, 0]
        + scores[:, 1] * weights[:, 1]
        + scores[:, 2] * weights[:, 2]
        + (scores[:, 3] * weights[:, 3])
    )


def combine_smeasure(
    object_score: Tensor, region_score: Tensor, pred_mean: Tensor, gt_count: Tensor, size: int
) -> Tensor:
    """S = max(0, alpha * object + (1 - alpha) * region); 1 - mean(pred) without object, mean(pred) for a full one."""
    mixed = (object_score * S_ALPHA + region_score * (1 - S_ALPHA)).clamp(min=0)
    result = torch.where(gt_count == size, pred_mean, mixed)
    return torch.where(gt_count == 0, 1 - pred_mean, result)


def numpy_mean(maps: Tensor) -> Tensor:
    """Per-image mean computed by numpy (pairwise summation, bit-identical to the reference), (N,) float64.

    Used for the adaptive threshold, where a pixel exactly at `2 * mean` must be decided as the reference does.
    """
    if maps.device.type != "cpu":
        return maps.mean(dim=(1, 2))  # exact ties may then be decided differently (last-bit differences)
    return torch.tensor([float(np.mean(image)) for image in maps.numpy()], dtype=torch.float64)


# --- the pixel path (float predictions) ------------------------------------------------------------------------------


def normalise(pred: Tensor) -> Tensor:
    """Min-max normalisation per image of `pred` (N, H, W) float64; a constant map is left unchanged.

    Same arithmetic as `py_sod_metrics.utils.prepare_data` after its `pred / 255`: `(pred - min) / (max - min)`.
    """
    low = pred.amin(dim=(1, 2), keepdim=True)
    high = pred.amax(dim=(1, 2), keepdim=True)
    span = high - low
    constant = span == 0
    # A constant map gets (pred - 0) / 1, which is pred exactly: no per-pixel select needed.
    low = torch.where(constant, torch.zeros_like(low), low)
    span = torch.where(constant, torch.ones_like(span), span)
    return (pred - low).div_(span)


def _region_similarity(pred: Tensor, gt: Tensor, gt_count: Tensor) -> Tensor:
    """Area-weighted quadrant scores, (N,) float64, two passes (quadrant means, then centred moments) with the
    quadrant sums as two batched matrix products against 0/1 indicator columns (selection and addition only)."""
    n, h, w = pred.shape
    device = pred.device
    cy, cx = centroid_split(gt, gt_count)
    top = (torch.arange(h, device=device).view(1, h) < cy.view(n, 1)).to(torch.float64)
    left = (torch.arange(w, device=device).view(1, w) < cx.view(n, 1)).to(torch.float64)
    top_bottom = torch.stack([top, 1 - top], dim=2)  # (N, H, 2)
    left_right = torch.stack([left, 1 - left], dim=2)  # (N, W, 2)

    def quadrant_sums(maps: Tensor) -> Tensor:  # (N, H, W) -> (N, 2, 2) [top/bottom, left/right]
        return top_bottom.transpose(1, 2) @ (maps @ left_right)

    def spread(per_quadrant: Tensor) -> Tensor:  # (N, 2, 2) -> (N, H, W), each pixel its quadrant's value
        return top_bottom @ per_quadrant @ left_right.transpose(1, 2)

    gt64 = gt.to(torch.float64)
    count = top_bottom.sum(dim=1).unsqueeze(2) * left_right.sum(dim=1).unsqueeze(1)
    safe = count.clamp(min=1)
    x = quadrant_sums(pred) / safe
    y = quadrant_sums(gt64) / safe
    dp = pred - spread(x)
    dg = gt64 - spread(y)
    score = ssim_score(x, y, quadrant_sums(dp * dp), quadrant_sums(dg * dg), quadrant_sums(dp * dg), count)
    # (N, 2, 2) [top/bottom, left/right] -> (N, 4) [top-left, top-right, bottom-left, bottom-right]
    return region_score(score.reshape(n, 4), quadrant_weights(cy, cx, h, w))


def _smeasure(pred: Tensor, gt: Tensor, gt_count: Tensor, pred_mean: Tensor) -> Tensor:
    size = pred.shape[1] * pred.shape[2]
    gt64 = gt.to(torch.float64)
    bg_count = size - gt_count
    fg_mean = (pred * gt64).sum(dim=(1, 2)) / gt_count.clamp(min=1)
    bg_values = 1 - pred
    bg_mean = (bg_values * (1 - gt64)).sum(dim=(1, 2)) / bg_count.clamp(min=1)
    fg_dev = ((pred - fg_mean.view(-1, 1, 1)) * gt64).square_().sum(dim=(1, 2))
    bg_dev = ((bg_values - bg_mean.view(-1, 1, 1)) * (1 - gt64)).square_().sum(dim=(1, 2))
    gt_mean = gt_count.to(torch.float64) / size
    object_score = object_similarity(fg_mean, fg_dev, gt_count) * gt_mean + object_similarity(
        bg_mean, bg_dev, bg_count
    ) * (1 - gt_mean)
    return combine_smeasure(object_score, _region_similarity(pred, gt, gt_count), pred_mean, gt_count, size)


def statistics_from_float(pred: Tensor, gt: Tensor, wanted: set[str]) -> dict[str, Tensor]:
    """Per-image statistics for the metric names in `wanted`; `pred` (N, H, W) float64 in [0, 1] before the min-max
    normalisation, `gt` (N, H, W) bool. See the module docstring for the keys."""
    n, h, w = pred.shape
    size = h * w
    pred = normalise(pred)
    gt_count = gt.sum(dim=(1, 2))
    out: dict[str, Tensor] = {}
    if wanted & CURVE_KEYS.keys():
        levels = (pred * 255).to(torch.int32)  # the reference's astype(np.uint8): truncation, values 0..255
        levels.add_(gt, alpha=NUM_LEVELS)
        if n > 1:
            levels.add_(torch.arange(n, device=pred.device, dtype=torch.int32).view(n, 1, 1), alpha=2 * NUM_LEVELS)
        hist = torch.bincount(levels.reshape(-1), minlength=2 * NUM_LEVELS * n).view(n, 2, NUM_LEVELS)
        bg_ge, fg_ge = at_or_above(hist[:, 0]), at_or_above(hist[:, 1])
        if wanted & {"maxF", "meanF"}:
            out["f_curve"] = fmeasure_curve(fg_ge, bg_ge, gt_count)
        if wanted & {"maxE", "meanE"}:
            out["e_curve"] = enhanced_alignment(fg_ge, bg_ge, gt_count.unsqueeze(1), size)
    if wanted & {"adpF", "adpE"}:
        threshold = (2 * numpy_mean(pred).to(pred.device)).clamp(max=1.0)
        binary = pred >= threshold.view(n, 1, 1)
        predicted = binary.sum(dim=(1, 2))
        fg_fg = (binary & gt).sum(dim=(1, 2))
        if "adpF" in wanted:
            out["adpF"] = adaptive_fmeasure(fg_fg, predicted, gt_count)
        if "adpE" in wanted:
            out["adpE"] = enhanced_alignment(fg_fg, predicted - fg_fg, gt_count, size)
    if "mae" in wanted:
        out["mae"] = (pred - gt.to(torch.float64)).abs_().mean(dim=(1, 2))
    if "sm" in wanted:
        out["sm"] = _smeasure(pred, gt, gt_count, pred.mean(dim=(1, 2)))
    if "wF" in wanted:
        out["wF"] = weighted_fmeasure(pred, gt)
    return out

"""The fast path of the standard protocol for uint8 predictions: one histogram per image, then 256-entry tables.

A uint8 map holds at most 256 distinct values u, and after the reference's `u / 255` and min-max normalisation every
pixel's value f(u) depends only on u and the map's min and max. So one `bincount` over (quadrant, object/background,
u) per image gives everything: f(u) is computed on the 256-entry table with the same floating-point operations as
the reference applies per pixel (bit-identical values), the F- and E-curves come from the histogram mapped to
quantised levels, MAE, the adaptive threshold and the S-measure's means and centred moments are weighted sums over
the table. Only the weighted F-measure needs the per-pixel map back (one gather).

Sums run in a different order than the reference's per-pixel sums, so results agree to ~1e-15, not bit for bit. The
one place where the last bit can change a decision, a pixel exactly at the adaptive threshold `2 * mean`, is
detected and recomputed with numpy's own mean over the per-pixel map.
"""

from __future__ import annotations

import torch
from torch import Tensor

from inas.metrics.sod_standard import (
    CURVE_KEYS,
    NUM_LEVELS,
    adaptive_fmeasure,
    at_or_above,
    centroid_split,
    combine_smeasure,
    enhanced_alignment,
    fmeasure_curve,
    numpy_mean,
    object_similarity,
    quadrant_weights,
    region_score,
    ssim_score,
)
from inas.metrics.weighted_fmeasure import weighted_fmeasure

_TIE_TOLERANCE = 1e-9  # |f(u) - threshold| below this: decide the tie with the reference's own mean


def value_table(value_hist: Tensor) -> tuple[Tensor, Tensor]:
    """Normalised value and quantised level of each raw value u = 0..255 per image.

    `value_hist` (N, 256) pixel counts per raw value. Returns `(values (N, 256) float64, levels (N, 256) int64)`:
    values as `py_sod_metrics.utils.prepare_data` computes them (`u / 255`, then min-max over the values present,
    a constant map unchanged), levels as `floor(value * 255)`.
    """
    n = value_hist.shape[0]
    device = value_hist.device
    raw = torch.arange(NUM_LEVELS, device=device)
    present = value_hist > 0
    u_min = torch.where(present, raw, NUM_LEVELS).amin(dim=1)
    u_max = torch.where(present, raw, -1).amax(dim=1)
    base = (raw.to(torch.float64) / 255).expand(n, NUM_LEVELS)
    low = base.gather(1, u_min.clamp(max=NUM_LEVELS - 1).view(n, 1))
    high = base.gather(1, u_max.clamp(min=0).view(n, 1))
    span = high - low
    constant = span == 0
    values = torch.where(constant, base, (base - low) / torch.where(constant, torch.ones_like(span), span))
    # Raw values absent from the map can fall outside [0, 1]; their level is clamped (they count 0 pixels anyway).
    return values, (values * 255).to(torch.int64).clamp_(0, NUM_LEVELS - 1)


def _adaptive_threshold(values: Tensor, value_hist: Tensor, pred: Tensor, size: int) -> Tensor:
    """`min(2 * mean, 1)` per image, (N,), ties with a present value resolved by numpy's mean of the pixel map."""
    mean = (value_hist.to(torch.float64) * values).sum(dim=1) / size
    unclamped = 2 * mean
    threshold = unclamped.clamp(max=1.0)
    near_tie = ((values - unclamped.unsqueeze(1)).abs() <= _TIE_TOLERANCE) & (value_hist > 0)
    tied = near_tie.any(dim=1).nonzero().flatten()
    if tied.numel():
        maps = values[tied].gather(1, pred[tied].reshape(tied.numel(), -1).to(torch.int64)).view(-1, *pred.shape[1:])
        threshold[tied] = (2 * numpy_mean(maps).to(threshold.device)).clamp(max=1.0)
    return threshold


def _region_similarity(quadrant_hist: Tensor, values: Tensor, cy: Tensor, cx: Tensor, h: int, w: int) -> Tensor:
    """Area-weighted quadrant scores from `quadrant_hist` (N, 4, 2, 256) counts, (N,) float64."""
    counts = quadrant_hist.to(torch.float64)
    f = values.view(-1, 1, 1, NUM_LEVELS)
    pixels = counts.sum(dim=(2, 3))  # (N, 4)
    safe = pixels.clamp(min=1)
    x = (counts * f).sum(dim=(2, 3)) / safe
    y = counts[:, :, 1].sum(dim=2) / safe
    dx = f - x.view(*x.shape, 1, 1)  # (N, 4, 1, 256)
    dy = torch.tensor([0.0, 1.0], dtype=torch.float64, device=counts.device).view(1, 1, 2, 1) - y.view(*y.shape, 1, 1)
    score = ssim_score(
        x,
        y,
        (counts * dx * dx).sum(dim=(2, 3)),
        (counts * dy * dy).sum(dim=(2, 3)),
        (counts * dx * dy).sum(dim=(2, 3)),
        pixels,
    )
    return region_score(score, quadrant_weights(cy, cx, h, w))


def _histograms(
    pred: Tensor, gt: Tensor, gt_count: Tensor, quadrants: bool
) -> tuple[Tensor, Tensor | None, Tensor | None]:
    """One `bincount` over (image, [quadrant,] object/background, raw value): `(hist (N, Q, 2, 256), cy, cx)` with Q = 4
    quadrants around the object's centroid (cy, cx (N,)) when `quadrants`, else Q = 1 and no centroid."""
    n, h, w = pred.shape
    device = pred.device
    index = pred.to(torch.int32)
    index.add_(gt, alpha=NUM_LEVELS)
    bins = 2 * NUM_LEVELS
    cy = cx = None
    if quadrants:
        cy, cx = centroid_split(gt, gt_count)
        bottom = torch.arange(h, device=device).view(1, h, 1) >= cy.view(n, 1, 1)
        right = torch.arange(w, device=device).view(1, 1, w) >= cx.view(n, 1, 1)
        index.add_(bottom, alpha=2 * bins).add_(right, alpha=bins)
        bins *= 4
    if n > 1:
        index.add_(torch.arange(n, device=device, dtype=torch.int32).view(n, 1, 1), alpha=bins)
    hist = torch.bincount(index.reshape(-1), minlength=bins * n).view(n, -1, 2, NUM_LEVELS)
    return hist, cy, cx


def _curves(value_hist: Tensor, levels: Tensor, gt_count: Tensor, size: int, wanted: set[str]) -> dict[str, Tensor]:
    """F- and E-curves over the 256 thresholds from the (N, 2, 256) histogram mapped to quantised levels."""
    n = value_hist.shape[0]
    to_level = levels.unsqueeze(1).expand(n, 2, NUM_LEVELS)
    level_hist = torch.zeros_like(value_hist).scatter_add_(2, to_level, value_hist)
    bg_ge, fg_ge = at_or_above(level_hist[:, 0]), at_or_above(level_hist[:, 1])
    out = {}
    if wanted & {"maxF", "meanF"}:
        out["f_curve"] = fmeasure_curve(fg_ge, bg_ge, gt_count)
    if wanted & {"maxE", "meanE"}:
        out["e_curve"] = enhanced_alignment(fg_ge, bg_ge, gt_count.unsqueeze(1), size)
    return out


def _adaptive(
    values: Tensor, value_hist: Tensor, pred: Tensor, gt_count: Tensor, wanted: set[str]
) -> dict[str, Tensor]:
    """adpF / adpE at the adaptive threshold `min(2 * mean, 1)` of each image, (N,) each."""
    all_hist = value_hist.sum(dim=1)
    size = pred.shape[1] * pred.shape[2]
    selected = values >= _adaptive_threshold(values, all_hist, pred, size).unsqueeze(1)
    predicted = (all_hist * selected).sum(dim=1)
    fg_fg = (value_hist[:, 1] * selected).sum(dim=1)
    out = {}
    if "adpF" in wanted:
        out["adpF"] = adaptive_fmeasure(fg_fg, predicted, gt_count)
    if "adpE" in wanted:
        out["adpE"] = enhanced_alignment(fg_fg, predicted - fg_fg, gt_count, size)
    return out


def _object_similarity(value_hist: Tensor, values: Tensor, gt_count: Tensor, size: int) -> Tensor:
    """The S-measure's object term from the (N, 2, 256) histogram: foreground and background scores weighted by the
    object's area, (N,) float64."""
    bg_hist, fg_hist = value_hist[:, 0].to(torch.float64), value_hist[:, 1].to(torch.float64)
    bg_count = size - gt_count
    fg_mean = (fg_hist * values).sum(dim=1) / gt_count.clamp(min=1)
    bg_values = 1 - values
    bg_mean = (bg_hist * bg_values).sum(dim=1) / bg_count.clamp(min=1)
    fg_dev = (fg_hist * (values - fg_mean.unsqueeze(1)) ** 2).sum(dim=1)
    bg_dev = (bg_hist * (bg_values - bg_mean.unsqueeze(1)) ** 2).sum(dim=1)
    gt_mean = gt_count.to(torch.float64) / size
    foreground = object_similarity(fg_mean, fg_dev, gt_count)
    background = object_similarity(bg_mean, bg_dev, bg_count)
    return foreground * gt_mean + background * (1 - gt_mean)


def statistics_from_uint8(pred: Tensor, gt: Tensor, wanted: set[str]) -> dict[str, Tensor]:
    """Per-image statistics for the metric names in `wanted`; `pred` (N, H, W) uint8, `gt` (N, H, W) bool.
    Same keys and values as `inas.metrics.sod_standard.statistics_from_float` on `pred / 255`."""
    n, h, w = pred.shape
    size = h * w
    gt_count = gt.sum(dim=(1, 2))
    hist, cy, cx = _histograms(pred, gt, gt_count, quadrants="sm" in wanted)
    value_hist = hist.sum(dim=1)  # (N, 2, 256): background, object
    all_hist = value_hist.sum(dim=1)
    values, levels = value_table(all_hist)
    out: dict[str, Tensor] = {}
    if wanted & CURVE_KEYS.keys():
        out.update(_curves(value_hist, levels, gt_count, size, wanted))
    if wanted & {"adpF", "adpE"}:
        out.update(_adaptive(values, value_hist, pred, gt_count, wanted))
    if "mae" in wanted:
        error = (value_hist[:, 0] * values).sum(dim=1) + (value_hist[:, 1] * (1 - values)).sum(dim=1)
        out["mae"] = error / size
    if "sm" in wanted:
        assert cy is not None and cx is not None
        object_score = _object_similarity(value_hist, values, gt_count, size)
        region = _region_similarity(hist, values, cy, cx, h, w)
        pred_mean = (all_hist.to(torch.float64) * values).sum(dim=1) / size
        out["sm"] = combine_smeasure(object_score, region, pred_mean, gt_count, size)
    if "wF" in wanted:
        pixel_values = values.gather(1, pred.reshape(n, -1).to(torch.int64)).view(n, h, w)
        out["wF"] = weighted_fmeasure(pixel_values, gt)
    return out

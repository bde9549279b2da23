"""The legacy protocol against an independent numpy reading of the original's metrics as docs/design.md §11.1
describes them (per-threshold loops, per-quadrant slices), written from the text and not from our implementation."""

from __future__ import annotations

import math

import numpy as np
import pytest

from inas.metrics import LEGACY_METRIC_NAMES, SOD_METRIC_NAMES, SODMetrics

# --- docs/design.md §11.1, literally ---------------------------------------------------------------------------------


def spec_max_f(pairs) -> float:
    """Per image: pred and gt divided by their max (+1e-8) times 255, fg = gt > 128; for the 255 thresholds
    254..0, TP/FP = object/background pixels at or above it; P = TP/(TP+FP+1e-8), R = TP/(#FG+1e-8); P and R
    averaged over images, F = 1.3PR/(0.3P+R+1e-8), max over thresholds."""
    precisions, recalls = [], []
    for pred, gt in pairs:
        p = pred / (pred.max() + 1e-8) * 255.0
        g = gt / (gt.max() + 1e-8) * 255.0
        fg = g > 128
        pr, rc = [], []
        for t in range(254, -1, -1):
            above = p >= t
            tp = np.count_nonzero(above & fg)
            fp = np.count_nonzero(above & ~fg)
            pr.append(tp / (tp + fp + 1e-8))
            rc.append(tp / (np.count_nonzero(fg) + 1e-8))
        precisions.append(pr)
        recalls.append(rc)
    p_mean = np.mean(precisions, axis=0)
    r_mean = np.mean(recalls, axis=0)
    return float(np.max(1.3 * p_mean * r_mean / (0.3 * p_mean + r_mean + 1e-8)))


def spec_mae(pairs) -> float:
    return float(np.mean([np.mean(np.abs(p / (p.max() + 1e-8) - g / (g.max() + 1e-8))) for p, g in pairs]))


def _o(values: np.ndarray) -> float:
    if values.size < 2:
        return float("nan")  # torch's unbiased std of one value
    mean = values.mean()
    return 2 * mean / (mean * mean + 1 + values.std(ddof=1) + 1e-20)


def _ssim(p: np.ndarray, g: np.ndarray) -> float:
    n = p.size
    if n == 0:
        return float("nan")
    x, y = p.mean(), g.mean()
    sx = ((p - x) ** 2).sum() / (n - 1 + 1e-20)
    sy = ((g - y) ** 2).sum() / (n - 1 + 1e-20)
    sxy = ((p - x) * (g - y)).sum() / (n - 1 + 1e-20)
    a = 4 * x * y * sxy
    b = (x * x + y * y) * (sx + sy)
    if a != 0:
        return a / (b + 1e-20)
    return 1.0 if b == 0 else 0.0


def spec_s(pred: np.ndarray, gt: np.ndarray) -> float:
    """One image. Maps normalised by their max (+1e-8) and held in float32 as the original's torch tensors were, so
    `gt == 1` holds exactly at the mask's maximum; statistics in float64."""
    p = (pred / (pred.max() + 1e-8)).astype(np.float32).astype(np.float64)
    g = (gt / (gt.max() + 1e-8)).astype(np.float32).astype(np.float64)
    mu = g.mean()
    if mu <= 1e-5:
        return 1 - p.mean()
    if mu == 1:
        return p.mean()
    fg = np.where(g == 0, 0, p)
    bg = np.where(g == 1, 0, 1 - p)
    s_object = mu * _o(fg[g == 1]) + (1 - mu) * _o(bg[(1 - g) == 1])
    h, w = g.shape
    cx = int(np.round((g.sum(axis=0) * np.arange(w)).sum() / g.sum()))
    cy = int(np.round((g.sum(axis=1) * np.arange(h)).sum() / g.sum()))
    s_region = 0.0
    for rows, cols in ((slice(0, cy), slice(0, cx)), (slice(0, cy), slice(cx, w)),
                       (slice(cy, h), slice(0, cx)), (slice(cy, h), slice(cx, w))):  # fmt: skip
        quadrant_p, quadrant_g = p[rows, cols], g[rows, cols]
        s_region += quadrant_p.size / (h * w) * _ssim(quadrant_p, quadrant_g)
    return max(0.5 * s_object + 0.5 * s_region, 0.0)


def spec_mean_s(pairs) -> float:
    values = [spec_s(p.astype(np.float64), g.astype(np.float64)) for p, g in pairs]
    kept = [v for v in values if not math.isnan(v)]
    return float(np.mean(kept))


# --- inputs --------------------------------------------------------------------------------------------------------


def legacy_pairs(seed: int, grey_gt: bool) -> list[tuple[np.ndarray, np.ndarray]]:
    rng = np.random.default_rng(seed)
    pairs = []
    for _ in range(4):
        h, w = (int(v) for v in rng.integers(20, 50, size=2))
        yy, xx = np.mgrid[:h, :w]
        dist = np.hypot(yy - rng.uniform(0.3, 0.7) * h, xx - rng.uniform(0.3, 0.7) * w)
        radius = rng.uniform(0.15, 0.3) * min(h, w)
        if grey_gt:  # an antialiased mask whose edge pixels are neither 0 nor the maximum
            gt = (np.clip(radius + 1 - dist, 0, 1) * 200).astype(np.uint8)
        else:
            gt = ((dist < radius) * 255).astype(np.uint8)
        soft = 1 / (1 + np.exp((dist - radius) / 3))
        pred = np.clip(soft * rng.uniform(0.4, 1.0) + rng.normal(0, 0.1, (h, w)), 0, 1)
        pairs.append(((pred * 255).astype(np.uint8), gt))
    return pairs


def legacy(pairs) -> dict[str, float]:
    metrics = SODMetrics(protocol="legacy")
    for pred, gt in pairs:
        metrics.update(pred, gt)
    return metrics.compute()


@pytest.mark.parametrize(("seed", "grey_gt"), [(0, False), (1, False), (2, True), (3, True)])
def test_legacy_matches_spec_reimplementation(seed, grey_gt):
    pairs = legacy_pairs(seed, grey_gt)
    got = legacy(pairs)
    assert got["maxF"] == pytest.approx(spec_max_f(pairs), abs=1e-7)  # the original divides by n + 1e-8
    assert got["mae"] == pytest.approx(spec_mae(pairs), abs=1e-9)  # the original divides by H*W + 1e-8
    assert got["sm"] == pytest.approx(spec_mean_s(pairs), abs=1e-6)  # float32 arithmetic, as the original


def test_legacy_keys_outside_the_original_are_nan():
    got = legacy(legacy_pairs(4, False))
    assert tuple(got) == SOD_METRIC_NAMES
    for name in SOD_METRIC_NAMES:
        assert math.isnan(got[name]) == (name not in LEGACY_METRIC_NAMES)


def test_legacy_normalises_prediction_by_its_own_max_only():
    """A prediction with a grey floor (min 100): the standard protocol's min-max normalisation removes the floor,
    the original's division by the max keeps it, so its MAE is much worse."""
    pred, gt = legacy_pairs(5, False)[0]
    floored = (pred // 2 + 100).astype(np.uint8)
    got = legacy([(floored, gt)])
    assert got["mae"] == pytest.approx(spec_mae([(floored, gt)]), abs=1e-9)
    assert got["maxF"] == pytest.approx(spec_max_f([(floored, gt)]), abs=1e-7)
    standard = SODMetrics(metrics=["mae"])
    standard.update(floored, gt)
    assert got["mae"] > standard.compute()["mae"] + 0.2


def test_legacy_skips_nan_s_measure_but_keeps_the_image_elsewhere():
    """A mask whose maximum is one pixel: torch's std of one value is NaN, the original skipped that image in S."""
    pairs = legacy_pairs(6, False)[:2]
    single = np.zeros_like(pairs[1][1])
    single[5, 7] = 255
    with_single = pairs[:1] + [(pairs[1][0], single)]
    got = legacy(with_single)
    assert math.isnan(spec_s(pairs[1][0].astype(np.float64), single.astype(np.float64)))
    assert got["sm"] == pytest.approx(legacy(pairs[:1])["sm"], abs=1e-12)
    assert got["mae"] == pytest.approx(spec_mae(with_single), abs=1e-9)


def test_legacy_float_prediction_is_truncated_to_uint8_first():
    pred, gt = legacy_pairs(7, False)[0]
    as_float = pred.astype(np.float64) / 255 + 0.3 / 255  # truncation brings it back to `pred`
    assert legacy([(as_float, gt)]) == pytest.approx(legacy([(pred, gt)]), nan_ok=True)


def test_legacy_batch_equals_image_by_image():
    rng = np.random.default_rng(8)
    preds = rng.integers(0, 256, (3, 24, 32)).astype(np.uint8)
    gts = np.zeros((3, 24, 32), np.uint8)
    gts[:, 6:18, 8:20] = 255
    batched = SODMetrics(protocol="legacy")
    batched.update_batch(preds, gts)
    want = legacy(list(zip(preds, gts, strict=True)))
    assert batched.compute() == pytest.approx(want, abs=1e-12, nan_ok=True)

"""SODMetrics (standard protocol) against the pysodmetrics reference, image by image and accumulated."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch

from inas.metrics import SEARCH_METRICS, SOD_METRIC_NAMES, SODMetrics
from inas.metrics import sod as sod_module

psm = pytest.importorskip("py_sod_metrics")

# The contract is 1e-6; the implementation agrees to ~1e-15, so a tighter bound catches real drift early.
TOL = 1e-9


def reference(pairs: list[tuple[np.ndarray, np.ndarray]]) -> dict[str, float]:
    """The nine metrics as pysodmetrics computes them (uint8 pred and gt)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fm, mae, sm, em, wfm = psm.Fmeasure(), psm.MAE(), psm.Smeasure(), psm.Emeasure(), psm.WeightedFmeasure()
        for pred, gt in pairs:
            for metric in (fm, mae, sm, em, wfm):
                metric.step(pred=pred, gt=gt)
        f = fm.get_results()["fm"]
        e = em.get_results()["em"]
        return {
            "maxF": float(f["curve"].max()),
            "meanF": float(f["curve"].mean()),
            "adpF": float(f["adp"]),
            "mae": float(mae.get_results()["mae"]),
            "sm": float(sm.get_results()["sm"]),
            "maxE": float(e["curve"].max()),
            "meanE": float(e["curve"].mean()),
            "adpE": float(e["adp"]),
            "wF": float(wfm.get_results()["wfm"]),
        }


def ours(pairs, **kwargs) -> dict[str, float]:
    metrics = SODMetrics(**kwargs)
    for pred, gt in pairs:
        metrics.update(pred, gt)
    return metrics.compute()


def assert_close(got: dict[str, float], want: dict[str, float], tol: float = TOL) -> None:
    bad = {k: (got[k], want[k]) for k in want if not abs(got[k] - want[k]) <= tol}
    assert not bad, f"differs from pysodmetrics: {bad}"


def blob_pair(rng: np.random.Generator, h: int, w: int) -> tuple[np.ndarray, np.ndarray]:
    """A disc-shaped mask and a soft, noisy, slightly misplaced prediction of it (uint8)."""
    yy, xx = np.mgrid[:h, :w]
    cy, cx = rng.uniform(0.3, 0.7) * h, rng.uniform(0.3, 0.7) * w
    radius = rng.uniform(0.15, 0.3) * min(h, w)
    dist = np.hypot(yy - cy, xx - cx)
    gt = ((dist < radius) * 255).astype(np.uint8)
    shift = rng.uniform(-0.1, 0.1) * min(h, w)
    soft = 1 / (1 + np.exp((np.hypot(yy - cy - shift, xx - cx) - radius) / rng.uniform(1, 4)))
    pred = np.clip(soft * rng.uniform(0.5, 1) + rng.normal(0, 0.12, (h, w)), 0, 1)
    return (pred * 255).astype(np.uint8), gt


@pytest.fixture(scope="module")
def mixed_pairs() -> list[tuple[np.ndarray, np.ndarray]]:
    rng = np.random.default_rng(0)
    return [blob_pair(rng, int(rng.integers(24, 72)), int(rng.integers(24, 72))) for _ in range(8)]


def test_random_maps_of_different_sizes_match_reference(mixed_pairs):
    assert_close(ours(mixed_pairs), reference(mixed_pairs))


def test_uniform_noise_and_binary_predictions_match_reference():
    rng = np.random.default_rng(1)
    pairs = []
    for _ in range(4):
        pred, gt = blob_pair(rng, 40, 56)
        pairs.append((rng.integers(0, 256, gt.shape).astype(np.uint8), gt))
        pairs.append((((pred > 128) * 255).astype(np.uint8), gt))
    assert_close(ours(pairs), reference(pairs))


@pytest.mark.parametrize("case", ["empty", "full", "tiny", "single_pixel", "two_pixels"])
def test_degenerate_masks_match_reference(case):
    rng = np.random.default_rng(2)
    pairs = []
    for _ in range(3):
        pred, gt = blob_pair(rng, 33, 47)
        gt = np.zeros_like(gt)
        if case == "full":
            gt[:] = 255
        elif case == "tiny":
            y, x = rng.integers(2, 25), rng.integers(2, 38)
            gt[y : y + 3, x : x + 2] = 255
        elif case == "single_pixel":
            gt[rng.integers(1, 30), rng.integers(1, 44)] = 255
        elif case == "two_pixels":
            gt[10, 12] = gt[20, 30] = 255
        pairs.append((pred, gt))
    assert_close(ours(pairs), reference(pairs))


def test_constant_and_blank_predictions_match_reference():
    rng = np.random.default_rng(3)
    _, gt = blob_pair(rng, 30, 40)
    pairs = [
        (np.zeros_like(gt), gt),
        (np.full_like(gt, 255), gt),
        (np.full_like(gt, 77), gt),
        (np.zeros_like(gt), np.zeros_like(gt)),
        (np.full_like(gt, 200), np.full_like(gt, 255)),
    ]
    assert_close(ours(pairs), reference(pairs))


def test_grey_ground_truth_is_binarised_above_128():
    rng = np.random.default_rng(4)
    pred, gt = blob_pair(rng, 36, 36)
    grey = np.where(gt > 0, 129, 128).astype(np.uint8)  # 129 is object, 128 is background
    pairs = [(pred, grey), (pred, (gt // 2 + 100).astype(np.uint8))]
    assert_close(ours(pairs), reference(pairs))


def test_tiny_maps_with_few_grey_levels_match_reference():
    """Small maps stress exact ties (adaptive threshold equal to a pixel value, constant quadrants)."""
    rng = np.random.default_rng(5)
    for _ in range(60):
        h, w = (int(v) for v in rng.integers(2, 9, size=2))
        levels = int(rng.choice([2, 3, 7, 256]))
        pred = (rng.integers(0, levels, (h, w)) * (255 // (levels - 1))).astype(np.uint8)
        gt = ((rng.random((h, w)) < rng.uniform(0.1, 0.9)) * 255).astype(np.uint8)
        want = reference([(pred, gt)])
        if np.isnan(want["sm"]):  # an empty quadrant: see test_empty_quadrant_is_finite
            want.pop("sm")
        assert_close(ours([(pred, gt)]), want)  # the uint8 histogram path
        assert_close(ours([(pred.astype(np.float64) / 255, gt)]), want)  # the pixel path


def test_empty_quadrant_is_finite_where_reference_gives_nan():
    """Object centroid on the last row: the reference's S-measure is NaN (mean of an empty quadrant); ours gives the
    empty quadrant weight 0, so S stays finite; every other metric still matches."""
    pred = np.random.default_rng(6).integers(0, 256, (20, 30)).astype(np.uint8)
    gt = np.zeros((20, 30), np.uint8)
    gt[19, 5:9] = 255
    want = reference([(pred, gt)])
    got = ours([(pred, gt)])
    assert np.isnan(want.pop("sm"))
    assert 0.0 <= got["sm"] <= 1.0
    assert_close(got, want)


def test_float_inputs_score_like_their_uint8_source(mixed_pairs):
    """Float maps take the pixel path, uint8 maps the histogram path: both must agree."""
    as_float = [(pred.astype(np.float64) / 255, gt.astype(np.float32) / 255) for pred, gt in mixed_pairs]
    as_bool = [(torch.from_numpy(pred), torch.from_numpy(gt > 128)) for pred, gt in mixed_pairs]
    want = ours(mixed_pairs)
    assert_close(ours(as_float), want, tol=1e-12)
    assert_close(ours(as_bool), want, tol=0.0)


@pytest.mark.parametrize("chunk_images", [1, 2, 100])
def test_update_batch_equals_image_by_image(chunk_images, monkeypatch):
    monkeypatch.setattr(sod_module, "CPU_CHUNK_PIXELS", chunk_images * 32 * 48)
    rng = np.random.default_rng(7)
    pairs = [blob_pair(rng, 32, 48) for _ in range(6)]
    pairs[1] = (pairs[1][0], np.zeros_like(pairs[1][1]))
    pairs[2] = (pairs[2][0], np.full_like(pairs[2][1], 255))
    preds = np.stack([p for p, _ in pairs])
    gts = np.stack([g for _, g in pairs])
    batched = SODMetrics()
    batched.update_batch(preds[:4], gts[:4])
    batched.update_batch(torch.from_numpy(preds[4:]).unsqueeze(1), torch.from_numpy(gts[4:]).unsqueeze(1))
    assert batched.num_images == 6
    assert_close(batched.compute(), ours(pairs), tol=1e-12)
    assert_close(batched.compute(), reference(pairs))
    floats = SODMetrics()  # the pixel path, batched
    floats.update_batch(preds.astype(np.float64) / 255, gts > 128)
    assert_close(floats.compute(), ours(pairs), tol=1e-12)


def test_search_subset_computes_only_max_f_and_mae(mixed_pairs):
    fast = SODMetrics(metrics=SEARCH_METRICS)
    for pred, gt in mixed_pairs:
        fast.update(pred, gt)
    got = fast.compute()
    assert list(got) == ["maxF", "mae"]
    want = reference(mixed_pairs)
    assert_close(got, {"maxF": want["maxF"], "mae": want["mae"]})


def test_compute_returns_all_names_in_order_and_curves(mixed_pairs):
    metrics = SODMetrics()
    for pred, gt in mixed_pairs:
        metrics.update(torch.from_numpy(pred).view(1, 1, *pred.shape), gt)
    values = metrics.compute()
    assert tuple(values) == SOD_METRIC_NAMES
    curves = metrics.curves()
    assert curves["fmeasure"].shape == (256,) and curves["emeasure"].shape == (256,)
    assert curves["fmeasure"].max() == pytest.approx(values["maxF"], abs=1e-15)
    metrics.reset()
    assert metrics.num_images == 0


def test_bad_inputs_are_refused():
    pred = np.zeros((4, 5), np.uint8)
    with pytest.raises(ValueError, match="same size"):
        SODMetrics().update(pred, np.zeros((5, 4), np.uint8))
    with pytest.raises(ValueError, match="cast it explicitly"):
        SODMetrics().update(pred, np.zeros((4, 5), np.int64))
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        SODMetrics().update(np.full((4, 5), 2.0), pred)
    with pytest.raises(ValueError, match="NaN"):
        SODMetrics().update(np.full((4, 5), np.nan), pred)
    with pytest.raises(ValueError, match="NaN"):
        SODMetrics(protocol="legacy").update(np.full((4, 5), np.nan), pred)
    with pytest.raises(ValueError, match="before any image"):
        SODMetrics().compute()
    with pytest.raises(ValueError, match="subset"):
        SODMetrics(metrics=["maxF", "auc"])
    with pytest.raises(ValueError, match="protocol"):
        SODMetrics(protocol="matlab")
    with pytest.raises(ValueError, match=r"\(N, H, W\)"):
        SODMetrics().update_batch(pred, pred)

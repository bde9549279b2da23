"""SegMetrics against a plain numpy per-class count."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from inas.metrics import SegMetrics


def numpy_iou(preds, gts, num_classes: int, ignore: int = 255) -> np.ndarray:
    tp = np.zeros(num_classes)
    fp = np.zeros(num_classes)
    fn = np.zeros(num_classes)
    for pred, gt in zip(preds, gts, strict=True):
        valid = gt != ignore
        for c in range(num_classes):
            tp[c] += np.sum((pred == c) & (gt == c) & valid)
            fp[c] += np.sum((pred == c) & (gt != c) & valid)
            fn[c] += np.sum((pred != c) & (gt == c) & valid)
    with np.errstate(invalid="ignore"):
        return tp / (tp + fp + fn)


def random_labels(rng, shape, num_classes, ignore_fraction=0.1):
    gt = rng.integers(0, num_classes, shape)
    gt[rng.random(shape) < ignore_fraction] = 255
    pred = np.where(rng.random(shape) < 0.6, np.where(gt == 255, 0, gt), rng.integers(0, num_classes, shape))
    return pred, gt


def test_miou_and_per_class_iou_match_numpy():
    rng = np.random.default_rng(0)
    pairs = [random_labels(rng, (17, 23), 5) for _ in range(4)]
    metrics = SegMetrics(5)
    for pred, gt in pairs:
        metrics.update(pred, gt)
    want = numpy_iou(*zip(*pairs, strict=True), num_classes=5)
    got = metrics.compute()
    assert got["miou"] == pytest.approx(np.nanmean(want), abs=1e-12)
    for c in range(5):
        assert got[f"iou_{c}"] == pytest.approx(want[c], abs=1e-12)


def test_logits_are_reduced_by_argmax_and_batches_accumulate():
    rng = np.random.default_rng(1)
    logits = torch.from_numpy(rng.normal(size=(3, 4, 9, 11)))
    gt = torch.from_numpy(rng.integers(0, 4, (3, 9, 11)))
    from_logits = SegMetrics(4)
    from_logits.update(logits, gt)
    from_labels = SegMetrics(4)
    for i in range(3):
        from_labels.update(logits[i].argmax(dim=0), gt[i])
    assert torch.equal(from_logits.confusion, from_labels.confusion)
    assert from_logits.compute()["miou"] == pytest.approx(
        np.nanmean(numpy_iou(logits.argmax(1).numpy(), gt.numpy(), 4)), abs=1e-12
    )


def test_absent_class_is_nan_and_left_out_of_standard_mean_but_not_legacy():
    gt = np.array([[0, 0, 1], [1, 255, 255]])
    pred = np.array([[0, 1, 1], [1, 2, 0]])  # class 2 predicted only on ignored pixels; class 3 nowhere
    standard = SegMetrics(4, class_names=["road", "car", "sky", "tree"])
    standard.update(pred, gt)
    got = standard.compute()
    assert list(got) == ["miou", "iou_road", "iou_car", "iou_sky", "iou_tree"]
    assert got["iou_road"] == pytest.approx(1 / 2) and got["iou_car"] == pytest.approx(2 / 3)
    assert math.isnan(got["iou_sky"]) and math.isnan(got["iou_tree"])
    assert got["miou"] == pytest.approx((1 / 2 + 2 / 3) / 2)
    legacy = SegMetrics(4, protocol="legacy")
    legacy.update(pred, gt)
    assert math.isnan(legacy.compute()["miou"])


def test_bad_labels_are_refused():
    metrics = SegMetrics(3)
    with pytest.raises(ValueError, match="gt labels"):
        metrics.update(np.zeros((2, 2), np.int64), np.array([[0, 3], [1, 255]]))
    with pytest.raises(ValueError, match="pred labels"):
        metrics.update(np.array([[0, 7], [1, 1]]), np.zeros((2, 2), np.int64))
    with pytest.raises(ValueError, match="logits"):
        metrics.update(np.zeros((5, 2, 2), np.float32), np.zeros((2, 2), np.int64))
    with pytest.raises(ValueError, match="same shape"):
        metrics.update(np.zeros((2, 3), np.int64), np.zeros((2, 2), np.int64))
    with pytest.raises(ValueError, match="no image"):
        metrics.compute()

"""`python -m inas.run evaluate`: folder matching, resizing, CSV output, errors."""

from __future__ import annotations

import csv
import logging
import math

import numpy as np
import pytest
import torch
from PIL import Image

from inas.metrics import SOD_METRIC_NAMES, SegMetrics, SODMetrics
from inas.metrics.folder import resize_bilinear_uint8
from inas.run import main


@pytest.fixture(autouse=True)
def _restore_torch_threads():
    """`evaluate` sets torch's thread count for its process; keep it from leaking into other tests."""
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


def write_sod_folders(root, n=4, pred_size=(40, 30), missing=(), extra=()):
    """Masks 30x40 (H x W) as PNG; predictions as PNG/JPG of `pred_size` (W, H). Returns {stem: (pred, gt)}."""
    rng = np.random.default_rng(0)
    pred_dir, gt_dir = root / "pred", root / "gt"
    pred_dir.mkdir()
    gt_dir.mkdir()
    arrays = {}
    for i in range(n):
        stem = f"img_{i}"
        gt = np.zeros((30, 40), np.uint8)
        gt[5 + i : 20 + i, 8:30] = 255
        Image.fromarray(gt).save(gt_dir / f"{stem}.png")
        if stem in missing:
            continue
        pred = rng.integers(0, 256, (pred_size[1], pred_size[0])).astype(np.uint8)
        Image.fromarray(pred).save(pred_dir / f"{stem}.png")
        arrays[stem] = (pred, gt)
    for stem in extra:
        Image.fromarray(np.zeros((30, 40), np.uint8)).save(pred_dir / f"{stem}.png")
    return pred_dir, gt_dir, arrays


def read_csv(path):
    with open(path, newline="") as handle:
        rows = list(csv.reader(handle))
    assert len(rows) == 2
    return dict(zip(rows[0], (float(v) for v in rows[1]), strict=True))


def test_sod_folder_scores_equal_the_metrics_and_csv_is_written(tmp_path, capsys):
    pred_dir, gt_dir, arrays = write_sod_folders(tmp_path)
    out = tmp_path / "out" / "metrics.csv"
    code = main(["evaluate", "--pred", str(pred_dir), "--gt", str(gt_dir), "-o", str(out), "--no-progress"])
    assert code == 0
    written = read_csv(out)
    assert tuple(written) == SOD_METRIC_NAMES
    want = SODMetrics()
    for stem in sorted(arrays):
        pred, gt = arrays[stem]
        want.update(pred, gt)
    assert written == pytest.approx(want.compute(), abs=1e-12)
    printed = capsys.readouterr().out
    assert "4 images" in printed and "maxF" in printed
    assert [p.name for p in out.parent.iterdir()] == ["metrics.csv"]  # no temporary file left


def test_predictions_of_another_size_are_resized_bilinearly(tmp_path):
    pred_dir, gt_dir, arrays = write_sod_folders(tmp_path, n=2, pred_size=(20, 15))
    out = tmp_path / "m.csv"
    assert main(["evaluate", "--pred", str(pred_dir), "--gt", str(gt_dir), "-o", str(out), "--no-progress"]) == 0
    want = SODMetrics()
    for stem in sorted(arrays):
        pred, gt = arrays[stem]
        resized = resize_bilinear_uint8(pred, gt.shape)
        assert resized.shape == gt.shape
        want.update(resized, gt)
    assert read_csv(out) == pytest.approx(want.compute(), abs=1e-12)


def test_resize_is_half_pixel_bilinear():
    image = np.array([[0, 100], [200, 255]], np.uint8)
    up = resize_bilinear_uint8(image, (4, 4))
    assert up[0, 0] == 0 and up[3, 3] == 255
    assert up[0, 1] == 25  # 0.75 * 0 + 0.25 * 100 with half-pixel centres


def test_missing_predictions_are_an_error_unless_allowed(tmp_path, capsys, caplog):
    pred_dir, gt_dir, _ = write_sod_folders(tmp_path, missing=("img_1", "img_3"), extra=("stray",))
    out = tmp_path / "m.csv"
    args = ["evaluate", "--pred", str(pred_dir), "--gt", str(gt_dir), "-o", str(out), "--no-progress"]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "img_1.png" in err and "img_3.png" in err and "--allow-missing" in err
    assert not out.exists()
    with caplog.at_level(logging.WARNING):
        assert main([*args, "--allow-missing"]) == 0
    assert "stray.png" in caplog.text and "img_1.png" in caplog.text
    assert "2 images" in capsys.readouterr().out


def test_empty_or_absent_folders_are_clear_errors(tmp_path, capsys):
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "notes.txt").write_text("not an image")
    _, gt_dir, _ = write_sod_folders(tmp_path)
    assert main(["evaluate", "--pred", str(empty), "--gt", str(gt_dir)]) == 2
    assert "no prediction images" in capsys.readouterr().err
    assert main(["evaluate", "--pred", str(tmp_path / "nope"), "--gt", str(gt_dir)]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_no_matching_stem_and_images_in_sub_folders_are_named(tmp_path, capsys):
    """Predictions named apart from their masks (`test --save-maps` writes <stem>.png, Cityscapes masks are
    <stem>_gtFine_labelTrainIds.png) were told to pass --allow-missing, which then failed too; a folder holding the
    images one level down (`test --save-maps` writes OUT/maps/<list>/) said only 'no images'."""
    pred_dir, gt_dir, _ = write_sod_folders(tmp_path, n=2)
    for path in pred_dir.iterdir():
        path.rename(path.with_name(f"{path.stem}_map.png"))
    out = tmp_path / "m.csv"
    for extra in ([], ["--allow-missing"]):
        assert main(["evaluate", "--pred", str(pred_dir), "--gt", str(gt_dir), "-o", str(out), *extra]) == 2
        err = capsys.readouterr().err
        assert "no prediction matches" in err and "img_0_map.png" in err and "img_0.png" in err, err
        assert "--allow-missing" not in err and not out.exists()
    maps = tmp_path / "maps"
    (maps / "test").mkdir(parents=True)
    assert main(["evaluate", "--pred", str(maps), "--gt", str(gt_dir), "-o", str(out)]) == 2
    assert "it holds sub-folder(s) test: images are read directly inside" in capsys.readouterr().err


def test_unreadable_image_names_the_file(tmp_path, capsys):
    pred_dir, gt_dir, _ = write_sod_folders(tmp_path, n=2)
    (pred_dir / "img_0.png").write_bytes(b"not a png")
    assert main(["evaluate", "--pred", str(pred_dir), "--gt", str(gt_dir), "-o", str(tmp_path / "m.csv")]) == 2
    assert "img_0.png" in capsys.readouterr().err


def test_ground_truth_that_would_read_as_empty_is_bad_input(tmp_path, capsys):
    """A 0/1 ground-truth mask (or one in the alpha channel) scored every prediction against an empty mask."""
    pred_dir, gt_dir, arrays = write_sod_folders(tmp_path, n=2)
    Image.fromarray((arrays["img_1"][1] > 0).astype(np.uint8)).save(gt_dir / "img_1.png")
    out = tmp_path / "m.csv"
    assert main(["evaluate", "--pred", str(pred_dir), "--gt", str(gt_dir), "-o", str(out)]) == 2
    err = capsys.readouterr().err
    assert "img_1.png" in err and "only 0 and 1" in err and "Traceback" not in err and not out.exists()


def test_legacy_protocol_writes_nan_for_metrics_the_original_lacked(tmp_path):
    pred_dir, gt_dir, _ = write_sod_folders(tmp_path)
    out = tmp_path / "m.csv"
    args = ["evaluate", "--pred", str(pred_dir), "--gt", str(gt_dir), "-o", str(out), "--protocol", "legacy"]
    assert main([*args, "--no-progress"]) == 0
    written = read_csv(out)
    assert not math.isnan(written["maxF"]) and math.isnan(written["wF"])


def test_segmentation_folder_with_cityscapes_names(tmp_path):
    rng = np.random.default_rng(3)
    pred_dir, gt_dir = tmp_path / "pred", tmp_path / "gt"
    pred_dir.mkdir()
    gt_dir.mkdir()
    want = SegMetrics(3, class_names=["a", "b", "c"])
    for i in range(3):
        gt = rng.integers(0, 3, (12, 16)).astype(np.uint8)
        gt[0] = 255
        pred = rng.integers(0, 3, (6, 8)).astype(np.uint8)  # half size: nearest resize
        # Cityscapes names: `test --save-maps` writes s{i}.png for s{i}_leftImg8bit.png; they pair without suffixes
        Image.fromarray(gt).save(gt_dir / f"s{i}_gtFine_labelTrainIds.png")
        Image.fromarray(pred).save(pred_dir / (f"s{i}.png" if i else f"s{i}_leftImg8bit.png"))
        want.update(np.repeat(np.repeat(pred, 2, axis=0), 2, axis=1), gt)
    out = tmp_path / "seg.csv"
    args = ["evaluate", "--task", "seg", "--num-classes", "3", "--class-names", "a,b,c", "--no-progress"]
    assert main([*args, "--pred", str(pred_dir), "--gt", str(gt_dir), "-o", str(out)]) == 0
    written = read_csv(out)
    assert list(written) == ["miou", "iou_a", "iou_b", "iou_c"]
    assert written == pytest.approx(want.compute(), abs=1e-12)


def _evaluate_one_seg_pair(tmp_path, capsys, pred: np.ndarray, gt: np.ndarray) -> tuple[int, str]:
    """`evaluate --task seg --num-classes 3` on one (prediction, ground truth) pair named x.png: (exit code, stderr)."""
    pred_dir, gt_dir = tmp_path / "pred", tmp_path / "gt"
    pred_dir.mkdir()
    gt_dir.mkdir()
    Image.fromarray(pred).save(pred_dir / "x.png")
    Image.fromarray(gt).save(gt_dir / "x.png")
    args = ["evaluate", "--task", "seg", "--num-classes", "3", "--no-progress", "--pred", str(pred_dir), "--gt"]
    code = main([*args, str(gt_dir), "-o", str(tmp_path / "m.csv")])
    return code, capsys.readouterr().err


def test_segmentation_labels_out_of_range_name_the_file(tmp_path, capsys):
    code, err = _evaluate_one_seg_pair(tmp_path, capsys, np.full((4, 4), 7, np.uint8), np.zeros((4, 4), np.uint8))
    assert code == 2
    assert "x.png" in err and "pred labels" in err


def test_segmentation_ground_truth_that_is_all_ignore_is_bad_input(tmp_path, capsys):
    """Every pixel 255: mIoU was NaN with exit 0."""
    code, err = _evaluate_one_seg_pair(tmp_path, capsys, np.zeros((6, 8), np.uint8), np.full((6, 8), 255, np.uint8))
    assert code == 2
    assert "is the ignore index 255: nothing to score" in err and str(tmp_path / "gt") in err
    assert not (tmp_path / "m.csv").exists()

"""Synthetic data generators and the `data` CLI verb: layout, determinism, atomic output, saliency."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from inas.data.lists import check_list, read_list
from inas.data.seg import cityscapes_pairs
from inas.data.synth_common import image_rng
from inas.data.synth_seg import CLASSES_USED, synthesize_seg
from inas.data.synth_sod import render_sod_sample, synthesize_sod
from inas.errors import BadInputError
from inas.run import main


def _files(root):
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def sod_set(tmp_path_factory):
    out = tmp_path_factory.mktemp("synth") / "sod"
    synthesize_sod(out, n_train=6, n_test=3, size=64, seed=3, workers=1)
    return out


def test_sod_layout_and_lists(sod_set):
    assert sorted(p.name for p in sod_set.iterdir()) == [".inas-synth.json", "images", "masks", "synth.json",
                                                         "test.lst", "train.lst"]
    train = read_list(sod_set, "train.lst")
    test = check_list(sod_set, "test.lst", "sod", progress=False)
    assert len(train) == 6 and len(test) == 3
    assert train[0].image == sod_set / "images/train_00000.jpg" and train[0].label == sod_set / "masks/train_00000.png"
    sizes = set()
    for entry in [*train, *test]:
        with Image.open(entry.image) as image, Image.open(entry.label) as mask:
            assert image.format == "JPEG" and image.mode == "RGB"
            assert mask.format == "PNG" and mask.mode == "L" and mask.size == image.size
            assert all(48 <= side <= 80 for side in image.size)  # [0.75, 1.25] x 64
            values = np.asarray(mask)
            assert values.min() == 0 and values.max() == 255
            sizes.add(image.size)
    assert len(sizes) > 1 and any(w != h for w, h in sizes)
    meta = json.loads((sod_set / "synth.json").read_text())
    assert meta["seed"] == 3 and meta["n_train"] == 6 and meta["task"] == "sod"
    assert not [p for p in sod_set.parent.iterdir() if p.name.startswith(".")]  # no staging folder left


def test_sod_is_deterministic_and_independent_of_workers(sod_set, tmp_path):
    synthesize_sod(tmp_path / "again", n_train=6, n_test=3, size=64, seed=3, workers=2)
    assert _files(tmp_path / "again") == _files(sod_set)
    synthesize_sod(tmp_path / "other", n_train=6, n_test=3, size=64, seed=4, workers=1)
    assert _files(tmp_path / "other")["images/train_00000.jpg"] != _files(sod_set)["images/train_00000.jpg"]


def test_output_folder_is_not_overwritten_without_force(sod_set, tmp_path):
    out = tmp_path / "set"
    out.mkdir()
    (out / "keep.txt").write_text("x")
    with pytest.raises(BadInputError, match="--force"):
        synthesize_sod(out, n_train=1, n_test=1, size=32, workers=1)
    assert (out / "keep.txt").exists()
    # --force replaces only a data set that `data synth` wrote (it holds the marker file)
    with pytest.raises(BadInputError, match="only a data set written by `data synth`"):
        synthesize_sod(out, n_train=1, n_test=1, size=32, workers=1, force=True)
    assert (out / "keep.txt").exists() and sorted(p.name for p in out.iterdir()) == ["keep.txt"]
    (out / "keep.txt").unlink()
    synthesize_sod(out, n_train=1, n_test=1, size=32, workers=1)
    assert json.loads((out / ".inas-synth.json").read_text())["format"] == "inas-synth"
    (out / "keep.txt").write_text("x")
    synthesize_sod(out, n_train=1, n_test=1, size=32, workers=1, force=True)
    assert not (out / "keep.txt").exists() and (out / "train.lst").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["set"]


def test_force_accepts_a_set_written_before_the_marker(tmp_path):
    out = tmp_path / "old"
    synthesize_sod(out, n_train=1, n_test=1, size=32, workers=1)
    (out / ".inas-synth.json").unlink()  # a set written before the marker: its synth.json names our generator
    synthesize_sod(out, n_train=1, n_test=1, size=32, workers=1, force=True)
    (out / ".inas-synth.json").unlink()
    (out / "synth.json").write_text('{"generator": "someone else"}')
    with pytest.raises(BadInputError, match="only a data set"):
        synthesize_sod(out, n_train=1, n_test=1, size=32, workers=1, force=True)


def _best_global_threshold_fmeasure(maps, gts) -> float:
    """max over thresholds t of the F-measure (beta^2 = 0.3) of `map >= t`, precision / recall averaged over images."""
    best = 0.0
    for t in np.linspace(0, 1, 51):
        stats = [
            ((m >= t) & g).sum() / np.array([max((m >= t).sum(), 1), g.sum()]) for m, g in zip(maps, gts, strict=True)
        ]
        precision, recall = np.mean(stats, axis=0)
        best = max(best, 1.3 * precision * recall / (0.3 * precision + recall + 1e-8))
    return best


def test_sod_objects_are_salient_but_not_separable_by_one_colour_threshold():
    """Objects differ from the background around them, but their colour, saturation and brightness vary, so no
    global threshold on saturation or brightness finds them."""
    contrasts, object_colours, saturations, values, gts = [], [], [], [], []
    for index in range(24):
        image, mask = render_sod_sample(image_rng(0, "train", index), 96)
        obj = mask > 127
        ring = np.zeros_like(obj)
        ys, xs = np.nonzero(obj)
        ring[max(ys.min() - 8, 0) : ys.max() + 9, max(xs.min() - 8, 0) : xs.max() + 9] = True
        ring &= mask == 0
        inside, around = image[obj].astype(float).mean(0), image[ring].astype(float).mean(0)
        contrasts.append(np.abs(inside - around).max())
        object_colours.append(inside)
        rgb = image.astype(np.float32) / 255
        brightest, darkest = rgb.max(axis=2), rgb.min(axis=2)
        saturations.append((brightest - darkest) / (brightest + 1e-6))
        values.append(brightest)
        gts.append(obj)
    assert np.median(contrasts) > 40  # on a 0..255 scale
    assert np.std(np.asarray(object_colours), axis=0).min() > 25
    for maps in (saturations, values):
        assert _best_global_threshold_fmeasure(maps, gts) < 0.6
        assert _best_global_threshold_fmeasure([1 - m for m in maps], gts) < 0.6


def test_seg_layout_classes_and_determinism(tmp_path):
    out = tmp_path / "seg"
    synthesize_seg(out, n_train=3, n_test=2, size=32, seed=1, workers=1)
    assert (out / "train.lst").exists() and (out / "val.lst").exists()
    entries = check_list(out, "val.lst", "seg", progress=False)
    assert entries[0].image == out / "leftImg8bit/val/synth/synth_000000_000019_leftImg8bit.png"
    assert entries[0].label == out / "gtFine/val/synth/synth_000000_000019_gtFine_labelTrainIds.png"
    assert [f"{a} {b}" for a, b in cityscapes_pairs(out, "train")] == (out / "train.lst").read_text().splitlines()
    values = set()
    for entry in check_list(out, "train.lst", "seg", progress=False) + entries:
        with Image.open(entry.image) as image, Image.open(entry.label) as label:
            assert image.size == (64, 32) and image.mode == "RGB" and label.mode == "L"
            values |= set(np.unique(np.asarray(label)).tolist())
    assert values <= set(CLASSES_USED) | {255}
    assert len(values - {255}) >= 5
    synthesize_seg(tmp_path / "again", n_train=3, n_test=2, size=32, seed=1, workers=1)
    assert _files(tmp_path / "again") == _files(out)


def test_cli_synth_check_and_cityscapes_lists(tmp_path, capsys):
    out = tmp_path / "cli_sod"
    args = ["data", "synth", "--task", "sod", "--out", str(out), "--n-train", "3", "--n-test", "2", "--size", "48"]
    assert main([*args, "--workers", "1"]) == 0
    summary = capsys.readouterr().out.strip().splitlines()
    assert len(summary) == 1 and "3 train + 2 test" in summary[0] and str(out) in summary[0]
    assert main(["data", "check", "--root", str(out), "--list", "train.lst", "test.lst"]) == 0
    assert main([*args, "--workers", "1"]) == 2  # exists, no --force
    assert "--force" in capsys.readouterr().err
    (out / "images/train_00001.jpg").unlink()
    (out / "broken.lst").write_text("images/train_00000.jpg masks/train_00001.png\nimages/train_00001.jpg x.png\n")
    assert main(["data", "check", "--root", str(out), "--list", "broken.lst"]) == 2
    err = capsys.readouterr().err
    error_line = next(line for line in err.splitlines() if line.startswith("error:"))
    assert "broken.lst" in error_line and "3 problem(s)" in error_line  # size mismatch + 2 missing files
    assert "line 1:" in err and "line 2:" in err and "train_00001.jpg: file not found" in err
    seg = tmp_path / "cli_seg"
    assert main(["data", "synth", "--task", "seg", "--out", str(seg), "--n-train", "2", "--n-test", "1",
                 "--size", "32", "--workers", "1"]) == 0
    expected = (seg / "val.lst").read_text()
    (seg / "val.lst").unlink()
    assert main(["data", "cityscapes-lists", "--root", str(seg), "--splits", "val"]) == 0
    assert (seg / "val.lst").read_text() == expected
    assert main(["data", "cityscapes-lists", "--root", str(seg), "--splits", "test"]) == 2

"""Prediction on image folders: maps at the original size, bad files skipped and reported, the predict CLI."""

from __future__ import annotations

import random

import cv2
import numpy as np
import pytest
import torch
from PIL import Image

from inas.data import image_to_input
from inas.deploy.maps import saliency_uint8, segmentation_labels
from inas.deploy.model_file import model_info_of, save_model_file
from inas.deploy.onnx_export import export_onnx
from inas.deploy.palette import CITYSCAPES_PALETTE, colorize, palette
from inas.deploy.predict import predict_folder
from inas.deploy.runtime import TorchPredictor, load_predictor
from inas.deploy.testing import random_standalone, tiny_space
from inas.errors import BadInputError
from inas.run import main as run_main
from inas.space import sample_uniform

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _model(num_classes: int, seed: int):
    space = tiny_space()
    return random_standalone(space, sample_uniform(space, random.Random(seed)), num_classes=num_classes, seed=seed)


def _raw_output(model, image: Image.Image, size_hw: tuple[int, int]) -> np.ndarray:
    """The model's level-0 output (K, h, w) for one image, straight from the network in eval mode."""
    with torch.no_grad():
        out = model.eval()(image_to_input(image, size_hw)[None])
    return out[0].float().numpy()


@pytest.fixture(scope="module")
def sod_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("sod") / "sod.pt"
    save_model_file(_model(1, 3), path, task="sod", input_hw=(64, 64))
    return path


@pytest.fixture(scope="module")
def seg_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("seg") / "seg.pt"
    save_model_file(_model(19, 4), path, task="seg", input_hw=(64, 128))
    return path


def _rgb(h: int, w: int, seed: int) -> Image.Image:
    return Image.fromarray(np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8))


@pytest.fixture()
def image_dir(tmp_path):
    folder = tmp_path / "images"
    folder.mkdir()
    _rgb(50, 70, 0).save(folder / "a.jpg")
    _rgb(40, 40, 1).save(folder / "b.png")
    _rgb(33, 90, 2).convert("L").save(folder / "c.bmp")  # grayscale input: converted to RGB
    _rgb(20, 20, 3).save(folder / "a.png")  # same stem as a.jpg
    (folder / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(range(200)))
    (folder / "notes.txt").write_text("not an image")
    (folder / ".hidden.jpg").write_bytes(b"")
    return folder


def test_sod_maps_have_the_original_size_and_bad_files_are_reported(sod_file, image_dir, tmp_path):
    predictor = load_predictor(sod_file)
    out = tmp_path / "maps"
    report = predict_folder(predictor, image_dir, out, progress=False)
    assert sorted(p.name for p in report.written) == ["a.png", "b.png", "c.png"]
    failed = {p.name: reason for p, reason in report.failed}
    assert set(failed) == {"a.png", "broken.png", "notes.txt"}
    assert "same file stem as a.jpg" in failed["a.png"] and "cannot be read" in failed["broken.png"]
    assert "3 of 6 images predicted, 3 skipped" in report.summary()
    for name, size in (("a", (70, 50)), ("b", (40, 40)), ("c", (90, 33))):
        written = Image.open(out / f"{name}.png")
        assert written.mode == "L" and written.size == size
    # the written map is the network output at 64 x 64, resized back and scaled to 0..255
    image = Image.open(image_dir / "a.jpg").convert("RGB")
    maps = predictor(image_to_input(image, (64, 64))[None])
    expected = saliency_uint8(maps, (50, 70), "sigmoid").numpy()
    assert np.array_equal(np.asarray(Image.open(out / "a.png")), expected)
    assert expected.min() < expected.max()
    # and computed apart from the predictor and inas.deploy.maps: the network itself, then OpenCV's bilinear resize
    probs = _raw_output(_model(1, 3), image, (64, 64))[0]
    if _model(1, 3).head_activation != "sigmoid":
        probs = 1.0 / (1.0 + np.exp(-probs))
    independent = np.rint(np.clip(cv2.resize(probs, (70, 50), interpolation=cv2.INTER_LINEAR), 0, 1) * 255)
    assert np.abs(np.asarray(Image.open(out / "a.png")).astype(int) - independent.astype(int)).max() <= 1


def test_segmentation_masks_are_palette_pngs_of_class_ids(seg_file, image_dir, tmp_path):
    predictor = load_predictor(seg_file)
    out = tmp_path / "masks"
    report = predict_folder(predictor, image_dir, out, progress=False)
    assert len(report.written) == 3
    mask = Image.open(out / "a.png")
    assert mask.mode == "P" and mask.size == (70, 50)
    ids = np.asarray(mask)
    image = Image.open(image_dir / "a.jpg").convert("RGB")
    expected = segmentation_labels(predictor(image_to_input(image, (64, 128))[None]), (50, 70)).numpy()
    assert np.array_equal(ids, expected) and ids.max() < 19
    logits = _raw_output(_model(19, 4), image, (64, 128))
    independent = np.stack([cv2.resize(c, (70, 50), interpolation=cv2.INTER_LINEAR) for c in logits]).argmax(axis=0)
    assert (ids == independent).mean() > 0.99  # float ties aside, the same class per pixel
    assert tuple(mask.getpalette()[3 * 13 : 3 * 14]) == CITYSCAPES_PALETTE[13]  # car is dark blue


def test_palette_and_colorize():
    flat = palette(21)
    assert len(flat) == 768 and tuple(flat[:3]) == (128, 64, 128) and tuple(flat[-3:]) == (0, 0, 0)
    assert tuple(flat[19 * 3 : 20 * 3]) != tuple(flat[20 * 3 : 21 * 3])
    image = colorize(np.array([[0, 1], [18, 255]]), 19)
    assert image.mode == "P" and np.asarray(image).tolist() == [[0, 1], [18, 255]]
    with pytest.raises(ValueError, match="labels must lie"):
        colorize(np.array([[19, 255]]), 19)


def test_predict_cli_with_onnx_and_size(sod_file, image_dir, tmp_path, capsys):
    torch_pred = load_predictor(sod_file)
    onnx_path = tmp_path / "m.onnx"
    export_onnx(torch_pred.model, model_info_of(torch_pred.model, "sod", (64, 64)), onnx_path, dynamic=True)
    out = tmp_path / "out"
    assert run_main(["predict", str(onnx_path), str(image_dir), "-o", str(out), "--size", "96", "--no-progress"]) == 0
    captured = capsys.readouterr()
    assert "3 of 6 images predicted, 3 skipped" in captured.out
    assert "broken.png" in captured.err and "notes.txt" in captured.err
    # same maps as the PyTorch model at 96 x 96 (up to one grey level of rounding)
    image = Image.open(image_dir / "b.png").convert("RGB")
    expected = saliency_uint8(TorchPredictor(torch_pred.model, torch_pred.info)(image_to_input(image, (96, 96))[None]),
                              (40, 40), "sigmoid").numpy().astype(int)
    assert np.abs(np.asarray(Image.open(out / "b.png")).astype(int) - expected).max() <= 1


def test_predict_cli_bad_inputs(sod_file, tmp_path, capsys):
    bad_only = tmp_path / "bad"
    bad_only.mkdir()
    (bad_only / "x.jpg").write_bytes(b"garbage")
    assert run_main(["predict", str(sod_file), str(bad_only), "-o", str(tmp_path / "o"), "--no-progress"]) == 2
    captured = capsys.readouterr()
    assert "0 of 1 images predicted" in captured.out and "no image could be read" in captured.err
    empty = tmp_path / "empty"
    empty.mkdir()
    for folder, pattern in ((empty, "holds no files"), (tmp_path / "nope", "does not exist")):
        assert run_main(["predict", str(sod_file), str(folder), "-o", str(tmp_path / "o")]) == 2
        assert pattern in capsys.readouterr().err
    assert run_main(["predict", str(sod_file), str(bad_only), "-o", str(tmp_path / "o"), "--size", "50"]) == 2
    assert "multiples of 32" in capsys.readouterr().err
    with pytest.raises(BadInputError, match="model file not found"):
        load_predictor(tmp_path / "missing.onnx")


def test_predict_reports_sub_folders_links_and_loops_it_does_not_read(sod_file, tmp_path, capsys):
    folder = tmp_path / "in"
    folder.mkdir()
    _rgb(40, 40, 0).save(folder / "a.png")
    (folder / "nested").mkdir()
    _rgb(40, 40, 1).save(folder / "nested" / "b.png")
    (folder / "loop.png").symlink_to("loop.png")
    (folder / "gone.png").symlink_to("missing.png")
    out = tmp_path / "out"
    assert run_main(["predict", str(sod_file), str(folder), "-o", str(out), "--no-progress"]) == 0
    captured = capsys.readouterr()
    assert "1 of 4 images predicted, 3 skipped" in captured.out
    assert f"skipped {folder / 'nested'}: a sub-folder" in captured.err
    assert f"skipped {folder / 'loop.png'}: cannot be looked up" in captured.err
    assert f"skipped {folder / 'gone.png'}: a broken link" in captured.err
    assert sorted(p.name for p in out.iterdir()) == ["a.png"]
    # only entries that are not read: each is named, nothing predicted, no output folder
    (folder / "a.png").unlink()
    assert run_main(["predict", str(sod_file), str(folder), "-o", str(tmp_path / "o2"), "--no-progress"]) == 2
    captured = capsys.readouterr()
    assert "a sub-folder" in captured.err and "no image could be read" in captured.err
    assert not (tmp_path / "o2").exists()


def test_predict_refuses_the_input_folder_as_output_folder(sod_file, tmp_path, capsys):
    folder = tmp_path / "in"
    folder.mkdir()
    _rgb(40, 40, 0).save(folder / "a.png")
    before = (folder / "a.png").read_bytes()
    for out in (folder, tmp_path / "in" / ".." / "in"):
        assert run_main(["predict", str(sod_file), str(folder), "-o", str(out), "--no-progress"]) == 2
        err = capsys.readouterr().err
        assert "--out: the output folder is the input folder" in err and "Traceback" not in err
    assert (folder / "a.png").read_bytes() == before and sorted(p.name for p in folder.iterdir()) == ["a.png"]


def test_predict_on_a_full_disk_leaves_no_empty_output_folder(sod_file, tmp_path, capsys, monkeypatch):
    """ENOSPC at the first map: one line, exit 1, and the folders predict made are gone (an empty one was left)."""
    import errno
    import os

    import inas.io

    folder = tmp_path / "in"
    folder.mkdir()
    _rgb(40, 40, 0).save(folder / "a.png")

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(inas.io.os, "replace", full)
    out = tmp_path / "new" / "maps"
    assert run_main(["predict", str(sod_file), str(folder), "-o", str(out), "--no-progress"]) == 1
    err = capsys.readouterr().err
    assert f"cannot write {out / 'a.png'}" in err and "Traceback" not in err, err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in"]

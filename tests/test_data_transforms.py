"""Transforms and data sets: binarisation, shapes, normalisation, flips, multi-scale, segmentation crops."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image
from test_data_support import half_mask, random_rgb, write_image, write_sod_set

from inas.data.loaders import collate_eval
from inas.data.seg import SegEvalDataset, SegTrainDataset
from inas.data.sod import SODEvalDataset, SODTrainDataset
from inas.data.transforms import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    PAD_RGB,
    MultiScaleResize,
    binarize_mask,
    denormalize_image,
    load_rgb,
    normalize_image,
    random_resized_crop,
    resize_batch,
)
from inas.errors import BadInputError


def test_binarize_mask_threshold_is_above_127():
    values = np.asarray([[0, 100, 127, 128, 200, 255]], dtype=np.uint8)
    assert binarize_mask(values).tolist() == [[False, False, False, True, True, True]]


def test_sod_masks_binarised_in_train_and_eval(tmp_path):
    mask = np.full((20, 24), 100, np.uint8)
    mask[:, 12:] = 200  # anti-aliased-looking values: 200 is object, 100 background
    write_image(tmp_path / "a.png", random_rgb(np.random.default_rng(0), 20, 24))
    write_image(tmp_path / "a_gt.png", mask)
    (tmp_path / "l.lst").write_text("a.png a_gt.png\n")
    train = SODTrainDataset(tmp_path, "l.lst", size=24, flip=False, progress=False)[0]
    assert train["label"].dtype == torch.float32 and train["label"].shape == (1, 24, 24)
    assert train["label"][0, :, :12].sum() == 0 and bool((train["label"][0, :, 12:] == 1).all())
    evaluated = SODEvalDataset(tmp_path, "l.lst", size=32, progress=False)[0]
    assert evaluated["label"].dtype == torch.uint8
    assert evaluated["label"][:, :12].unique().tolist() == [0] and evaluated["label"][:, 12:].unique().tolist() == [255]
    raw = SODEvalDataset(tmp_path, "l.lst", size=32, mask_mode="raw", progress=False)[0]
    assert raw["label"].unique().tolist() == [100, 200]


def _transparent_palette(mask: np.ndarray) -> Image.Image:
    image = Image.fromarray(mask).convert("P")
    image.info["transparency"] = 0
    return image


@pytest.mark.parametrize("make, fragment", [
    (lambda m: Image.fromarray((m > 0).astype(np.uint8)), "only 0 and 1"),
    (lambda m: Image.fromarray((m > 0).astype(np.uint16)), "only 0 and 1"),  # 16-bit 0/1
    (lambda m: Image.fromarray(np.dstack([np.zeros_like(m)] * 3 + [m])), "transparent"),  # mask in the alpha (RGBA)
    (lambda m: Image.fromarray(np.dstack([np.zeros_like(m), m])), "transparent"),  # LA
    (_transparent_palette, "transparent"),
], ids=["zero-one", "zero-one-16bit", "rgba-alpha", "la-alpha", "palette-transparency"])
def test_sod_masks_that_would_read_as_empty_are_bad_input(tmp_path, make, fragment):
    """A 0/1 mask or one kept in the alpha channel is all background after `> 127` on its grayscale: training and
    `test` silently learnt and scored empty masks (maxF 0)."""
    mask = half_mask(20, 24)
    write_image(tmp_path / "a.png", random_rgb(np.random.default_rng(0), 20, 24))
    make(mask).save(tmp_path / "a_gt.png")
    (tmp_path / "l.lst").write_text("a.png a_gt.png\n")
    for dataset in (SODTrainDataset(tmp_path, "l.lst", size=24, flip=False, progress=False),
                    SODEvalDataset(tmp_path, "l.lst", size=32, progress=False),
                    SODEvalDataset(tmp_path, "l.lst", size=32, mask_mode="raw", progress=False)):
        with pytest.raises(BadInputError, match=fragment) as info:
            dataset[0]
        assert "a_gt.png" in str(info.value)


@pytest.mark.parametrize("mode", ["RGBA", "LA", "1", "I;16"])
def test_sod_masks_of_other_modes_still_read(tmp_path, mode):
    """Opaque alpha, bilevel and 16-bit 0/65535 masks keep working."""
    mask = half_mask(20, 24)
    image = Image.fromarray(mask.astype(np.uint16) * 257) if mode == "I;16" else Image.fromarray(mask).convert(mode)
    write_image(tmp_path / "a.png", random_rgb(np.random.default_rng(0), 20, 24))
    image.save(tmp_path / "a_gt.png")
    (tmp_path / "l.lst").write_text("a.png a_gt.png\n")
    label = SODEvalDataset(tmp_path, "l.lst", size=32, progress=False)[0]["label"]
    assert label.unique().tolist() == [0, 255]


@pytest.mark.parametrize("scale", [257, 1], ids=["16-bit-range", "8-bit-values-in-16-bit"])
def test_16_bit_images_read_like_their_8_bit_version(tmp_path, scale):
    """Pillow's RGB conversion clips 16-bit values above 255: a 16-bit grayscale photo became all white."""
    gray = (np.random.default_rng(0).random((20, 24)) * 255).astype(np.uint8)
    write_image(tmp_path / "a8.png", gray)
    Image.fromarray(gray.astype(np.uint16) * scale).save(tmp_path / "a16.png")
    assert Image.open(tmp_path / "a16.png").mode.startswith("I")
    np.testing.assert_array_equal(np.asarray(load_rgb(tmp_path / "a16.png")), np.asarray(load_rgb(tmp_path / "a8.png")))


def test_floating_point_image_is_bad_input(tmp_path):
    Image.fromarray(np.full((4, 4), 0.5, np.float32)).save(tmp_path / "f.tiff")
    with pytest.raises(BadInputError, match="floating-point"):
        load_rgb(tmp_path / "f.tiff")


def test_sod_train_shapes_and_normalisation(tmp_path):
    mean_rgb = np.round(np.asarray(IMAGENET_MEAN) * 255).astype(np.uint8)
    write_image(tmp_path / "a.png", np.broadcast_to(mean_rgb, (30, 50, 3)).copy())
    write_image(tmp_path / "a_gt.png", half_mask(30, 50))
    (tmp_path / "l.lst").write_text("a.png a_gt.png\n")
    sample = SODTrainDataset(tmp_path, "l.lst", size=64, flip=False, progress=False)[0]
    assert sample["image"].shape == (3, 64, 64) and sample["image"].dtype == torch.float32
    assert sample["image"].abs().max() < 0.5 / 255 / min(IMAGENET_STD) + 1e-6  # mean colour -> ~0
    assert sample["label"].shape == (1, 64, 64)
    assert sample["name"] == "a"


def test_normalize_roundtrip():
    rgb = random_rgb(np.random.default_rng(3), 5, 7)
    back = denormalize_image(normalize_image(rgb)) * 255
    assert torch.allclose(back, torch.from_numpy(rgb).permute(2, 0, 1).float(), atol=1e-3)


def test_flip_moves_image_and_mask_together(tmp_path):
    image = np.zeros((16, 16, 3), np.uint8)
    image[:, :8] = 255  # white left half, the object
    write_image(tmp_path / "a.png", image)
    write_image(tmp_path / "a_gt.png", half_mask(16, 16))
    (tmp_path / "l.lst").write_text("a.png a_gt.png\n")
    dataset = SODTrainDataset(tmp_path, "l.lst", size=16, flip=True, progress=False)
    torch.manual_seed(0)
    sides = set()
    for _ in range(20):
        sample = dataset[0]
        object_left = bool(sample["label"][0, :, 0].all())
        white_left = bool((sample["image"][:, :, 0] > 0).all())
        assert object_left == white_left
        sides.add(object_left)
    assert sides == {True, False}


def test_eval_sample_keeps_original_size_and_metadata(tmp_path):
    write_sod_set(tmp_path, n=2, h=30, w=45)
    dataset = SODEvalDataset(tmp_path, "set.lst", size=64, progress=False)
    sample = dataset[1]
    assert sample["image"].shape == (3, 64, 64)
    assert sample["label"].shape == (30, 45) and (sample["height"], sample["width"]) == (30, 45)
    assert sample["name"] == "1" and sample["image_path"].endswith("img/1.jpg")
    assert sample["label_path"].endswith("gt/1.png")


def test_collate_eval_keeps_variable_size_labels():
    samples = [
        {"image": torch.zeros(3, 8, 8), "label": torch.zeros(h, 5, dtype=torch.uint8), "name": str(h), "height": h,
         "width": 5, "image_path": "x", "label_path": "y"}
        for h in (4, 6)
    ]
    batch = collate_eval(samples)
    assert batch["image"].shape == (2, 3, 8, 8)
    assert [tuple(lab.shape) for lab in batch["label"]] == [(4, 5), (6, 5)]
    assert batch["height"].tolist() == [4, 6] and batch["name"] == ["4", "6"]
    samples[1]["image"] = torch.zeros(3, 8, 9)
    with pytest.raises(ValueError, match="batch size 1"):
        collate_eval(samples)


def test_resize_batch_modes_and_dtypes():
    images = torch.rand(2, 3, 8, 8)
    masks = (torch.rand(2, 1, 8, 8) > 0.5).float()
    out_images, out_masks = resize_batch(images, masks, 16)
    assert out_images.shape == (2, 3, 16, 16) and out_masks.shape == (2, 1, 16, 16)
    assert set(out_masks.unique().tolist()) <= {0.0, 1.0}
    # align_corners=True keeps the corner pixels exactly
    assert torch.allclose(out_images[:, :, 0, 0], images[:, :, 0, 0])
    assert torch.allclose(out_images[:, :, -1, -1], images[:, :, -1, -1])
    labels = torch.randint(0, 19, (2, 8, 8))
    labels[0, 0, 0] = 255
    _, out_labels = resize_batch(images, labels, (12, 20))
    assert out_labels.shape == (2, 12, 20) and out_labels.dtype == torch.int64
    assert set(out_labels.unique().tolist()) <= set(labels.unique().tolist()) and 255 in out_labels.tolist()[0][0]


def test_multi_scale_resize_draws_seeded_sizes_from_the_list():
    sizes = [32, 64, 96]
    a, b = MultiScaleResize(sizes, seed=7), MultiScaleResize(sizes, seed=7)
    drawn = [a.next_size() for _ in range(60)]
    assert drawn == [b.next_size() for _ in range(60)]
    assert set(drawn) == set(sizes)
    batch = {"image": torch.rand(2, 3, 40, 40), "label": torch.ones(2, 1, 40, 40), "name": ["a", "b"]}
    state = a.state_dict()
    expected = a.next_size()
    a.load_state_dict(state)
    out = a(batch)
    assert out["image"].shape[-1] == expected and out["label"].shape[-2:] == (expected, expected)
    assert out["name"] == ["a", "b"] and batch["image"].shape[-1] == 40
    off = MultiScaleResize([])(batch)
    assert off["image"] is batch["image"]


def _seg_files(tmp_path, h=20, w=40, label_value=3):
    rng = np.random.default_rng(0)
    write_image(tmp_path / "img.png", random_rgb(rng, h, w))
    label = np.full((h, w), label_value, np.uint8)
    label[:, : w // 2] = 1
    write_image(tmp_path / "lab.png", label)
    (tmp_path / "seg.lst").write_text("img.png lab.png\n")


def test_random_resized_crop_pads_with_ignore_and_mean():
    image = Image.fromarray(random_rgb(np.random.default_rng(0), 20, 40))
    label = Image.fromarray(np.ones((20, 40), np.uint8))
    gen = torch.Generator().manual_seed(0)
    img, lab = random_resized_crop(image, label, (40, 80), scale_range=(0.5, 0.5), flip=False, rng=gen)
    assert img.shape == (40, 80, 3) and lab.shape == (40, 80)
    assert (lab == 255).sum() == 40 * 80 - 20 * 40  # scaled to half of the cover size: 3/4 is padding
    assert (img[lab == 255] == PAD_RGB).all()
    img, lab = random_resized_crop(image, label, (10, 10), scale_range=(2.0, 2.0), rng=gen)
    assert img.shape == (10, 10, 3) and (lab == 1).all()


def test_seg_train_and_eval_samples(tmp_path):
    _seg_files(tmp_path)
    train = SegTrainDataset(tmp_path, "seg.lst", (16, 24), progress=False)
    torch.manual_seed(0)
    for _ in range(5):
        sample = train[0]
        assert sample["image"].shape == (3, 16, 24) and sample["label"].shape == (16, 24)
        assert sample["label"].dtype == torch.int64
        assert set(sample["label"].unique().tolist()) <= {1, 3, 255}
    fixed = SegTrainDataset(tmp_path, "seg.lst", (16, 24), augment=False, progress=False)
    assert torch.equal(fixed[0]["image"], fixed[0]["image"]) and 255 not in fixed[0]["label"].tolist()
    evaluated = SegEvalDataset(tmp_path, "seg.lst", None, progress=False)[0]
    assert evaluated["image"].shape == (3, 20, 40) and evaluated["label"].shape == (20, 40)
    resized = SegEvalDataset(tmp_path, "seg.lst", (32, 64), progress=False)[0]
    assert resized["image"].shape == (3, 32, 64) and resized["label"].shape == (20, 40)


def test_seg_label_values_out_of_range_are_bad_input(tmp_path):
    _seg_files(tmp_path, label_value=30)
    with pytest.raises(BadInputError, match=r"lab.png.*\[30\].*0..18"):
        SegEvalDataset(tmp_path, "seg.lst", progress=False)[0]
    assert SegEvalDataset(tmp_path, "seg.lst", num_classes=31, progress=False)[0]["label"].max() == 30

"""Semantic-segmentation data sets (Cityscapes layout) over a list file (`<image> <label>` per line).

Labels are single-channel trainIds (`*_gtFine_labelTrainIds.png`), 0..num_classes-1, 255 = ignore.
Samples are dicts:

- `SegTrainDataset`: `image` float32 (3, h, w) and `label` int64 (h, w) with (h, w) = crop size, after a random
  resized crop (scale 0.5-2, padding label 255) and a random flip; `augment=False` gives the deterministic variant
  (scale 1, centre crop, no flip) used for BN recalibration. `name` (str).
- `SegEvalDataset`: `image` float32 (3, H', W') resized to `size_hw` (None keeps the original size); `label` int64
  (H, W) at the ORIGINAL size; `name`, `height`, `width`, `image_path`, `label_path`.
"""

from __future__ import annotations

from pathlib import Path

import torch

from inas.data.lists import ListDataset, ListEntry
from inas.data.transforms import (
    center_fit,
    image_to_input,
    label_to_tensor,
    load_label,
    load_rgb,
    normalize_image,
    random_resized_crop,
)

DEFAULT_NUM_CLASSES = 19
CITYSCAPES_IMAGE_SUFFIX = "_leftImg8bit.png"
CITYSCAPES_LABEL_SUFFIX = "_gtFine_labelTrainIds.png"


def _sample_name(entry: ListEntry) -> str:
    """The image stem without the Cityscapes `_leftImg8bit` suffix."""
    return entry.name.removesuffix(CITYSCAPES_IMAGE_SUFFIX.removesuffix(".png"))


class SegTrainDataset(ListDataset):
    """Segmentation training samples: random resized crop to `crop_hw`, random flip, normalise."""

    TASK = "seg"

    def __init__(
        self,
        root: str | Path,
        list_file: str | Path,
        crop_hw: tuple[int, int],
        *,
        num_classes: int = DEFAULT_NUM_CLASSES,
        scale_range: tuple[float, float] = (0.5, 2.0),
        flip: bool = True,
        augment: bool = True,
        check: bool = True,
        progress: bool = True,
    ) -> None:
        super().__init__(root, list_file, check, progress)
        self.crop_hw = (int(crop_hw[0]), int(crop_hw[1]))
        self.num_classes = int(num_classes)
        self.scale_range = (float(scale_range[0]), float(scale_range[1]))
        self.flip = bool(flip)
        self.augment = bool(augment)

    def __getitem__(self, index: int) -> dict:
        entry = self.labelled_entry(index)
        image, label = load_rgb(entry.image), load_label(entry.label)
        if self.augment:
            img, lab = random_resized_crop(image, label, self.crop_hw, self.scale_range, self.flip)
        else:
            img, lab = center_fit(image, label, self.crop_hw)
        return {
            "image": normalize_image(img),
            "label": label_to_tensor(lab, self.num_classes, entry.label),
            "name": _sample_name(entry),
        }


class SegEvalDataset(ListDataset):
    """Segmentation validation samples: image resized to `size_hw` (or kept), label at its original size."""

    TASK = "seg"

    def __init__(
        self,
        root: str | Path,
        list_file: str | Path,
        size_hw: tuple[int, int] | None = None,
        *,
        num_classes: int = DEFAULT_NUM_CLASSES,
        check: bool = True,
        progress: bool = True,
    ) -> None:
        super().__init__(root, list_file, check, progress)
        self.size_hw = None if size_hw is None else (int(size_hw[0]), int(size_hw[1]))
        self.num_classes = int(num_classes)

    def __getitem__(self, index: int) -> dict:
        entry = self.labelled_entry(index)
        label: torch.Tensor = label_to_tensor(load_label(entry.label), self.num_classes, entry.label)
        height, width = label.shape
        return {
            "image": image_to_input(load_rgb(entry.image), self.size_hw),
            "label": label,
            "name": _sample_name(entry),
            "height": height,
            "width": width,
            "image_path": str(entry.image),
            "label_path": str(entry.label),
        }


def cityscapes_pairs(root: str | Path, split: str) -> list[tuple[str, str]]:
    """(image, label) paths relative to `root` for a Cityscapes split, scanned from the folder layout.

    Images: `leftImg8bit/{split}/{city}/*_leftImg8bit.png`; labels: `gtFine/{split}/{city}/*_gtFine_labelTrainIds.png`
    (an image whose label file is missing is still listed, so that `check_list` reports it).
    """
    root = Path(root)
    image_dir = root / "leftImg8bit" / split
    pairs = []
    for image in sorted(image_dir.glob(f"*/*{CITYSCAPES_IMAGE_SUFFIX}")):
        stem = image.name.removesuffix(CITYSCAPES_IMAGE_SUFFIX)
        label = root / "gtFine" / split / image.parent.name / f"{stem}{CITYSCAPES_LABEL_SUFFIX}"
        pairs.append((image.relative_to(root).as_posix(), label.relative_to(root).as_posix()))
    return pairs

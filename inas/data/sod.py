"""Salient-object-detection data sets over a list file (`<image> <mask>` per line, relative to the root).

Samples are dicts:

- `SODTrainDataset`: `image` float32 (3, S, S) normalised; `label` float32 (1, S, S) in {0, 1} (mask > 127);
  `name` (str, image file stem).
- `SODEvalDataset`: `image` float32 (3, S, S) normalised (resized to the input size); `label` uint8 (H, W) at the
  ORIGINAL mask size, values {0, 255} (mask > 127 -> 255; `mask_mode="raw"` keeps the raw grayscale for the legacy
  metric protocol); `name`, `height`, `width` (original size), `image_path`, `label_path` (str).
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import numpy as np
import torch

from inas.data.lists import ListDataset
from inas.data.transforms import binarize_mask, image_to_input, load_gray, load_rgb, sod_train_pair

MaskMode = Literal["binary", "raw"]


class SODTrainDataset(ListDataset):
    """SOD training samples: resize to `size` x `size`, optional random horizontal flip, normalise.

    `check=True` runs `check_list` first (every file readable, mask size = image size; all problems in one error).
    """

    TASK = "sod"

    def __init__(
        self,
        root: str | Path,
        list_file: str | Path,
        size: int = 320,
        flip: bool = True,
        *,
        check: bool = True,
        progress: bool = True,
    ) -> None:
        super().__init__(root, list_file, check, progress)
        self.size = int(size)
        self.flip = bool(flip)

    def __getitem__(self, index: int) -> dict:
        entry = self.labelled_entry(index)
        image, label = sod_train_pair(load_rgb(entry.image), load_gray(entry.label), self.size, self.flip)
        return {"image": image, "label": label, "name": entry.name}


class SODEvalDataset(ListDataset):
    """SOD validation / test samples: image resized to `size` x `size`, mask kept at its original size.

    `mask_mode="binary"` (default): uint8 {0, 255} (> 127 is foreground); `"raw"`: the grayscale mask as stored.
    """

    TASK = "sod"

    def __init__(
        self,
        root: str | Path,
        list_file: str | Path,
        size: int = 320,
        *,
        mask_mode: MaskMode = "binary",
        check: bool = True,
        progress: bool = True,
    ) -> None:
        if mask_mode not in ("binary", "raw"):
            raise ValueError(f"mask_mode must be 'binary' or 'raw', got {mask_mode!r}")
        super().__init__(root, list_file, check, progress)
        self.size = int(size)
        self.mask_mode = mask_mode

    def __getitem__(self, index: int) -> dict:
        entry = self.labelled_entry(index)
        image = load_rgb(entry.image)
        mask = np.array(load_gray(entry.label))  # a writable copy
        if self.mask_mode == "binary":
            mask = binarize_mask(mask).astype(np.uint8) * 255
        height, width = mask.shape
        return {
            "image": image_to_input(image, (self.size, self.size)),
            "label": torch.from_numpy(mask),
            "name": entry.name,
            "height": height,
            "width": width,
            "image_path": str(entry.image),
            "label_path": str(entry.label),
        }

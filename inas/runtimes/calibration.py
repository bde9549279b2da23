"""Calibration inputs for post-training INT8 quantisation: real images of a list file, or seeded image-like noise.

    calib = images_from_list(root, "train.lst", count=16, input_hw=(320, 320))   # source "images:<list>"
    calib = random_calibration((3, 320, 320), count=8)                           # source "random"
    calib.samples                                                                # (N, C, H, W) float32

Images are read like the evaluation transform does (resized bilinearly to the input size, ImageNet-normalised); the
first `count` readable images of the list are used, in list order (deterministic). Random data is smooth noise
with the statistics of a normalised photo (`check_images`), for inputs that are not images
(the activations inside a network) or when no data is given.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from inas.errors import BadInputError

RANDOM_SOURCE = "random"


@dataclass(frozen=True, eq=False)
class Calibration:
    """Calibration samples (N, C, H, W) float32 and where they came from ("images:<list file>" or "random")."""

    source: str
    samples: np.ndarray

    @property
    def shape(self) -> tuple[int, int, int]:
        """(C, H, W) of one sample."""
        return tuple(int(s) for s in self.samples.shape[1:])  # type: ignore[return-value]

    @property
    def from_images(self) -> bool:
        return self.source != RANDOM_SOURCE


def check_images(shape: tuple[int, int, int, int], generator: torch.Generator) -> Tensor:
    """Image-like inputs (N, 3, H, W): N(0, 1) noise at 1/8 resolution upsampled bilinearly, plus 0.1 x white
    noise (spatially correlated like a normalised photo)."""
    n, c, h, w = shape
    coarse = torch.randn(n, c, max(1, h // 8), max(1, w // 8), generator=generator)
    smooth = F.interpolate(coarse, size=(h, w), mode="bilinear", align_corners=False)
    return smooth + 0.1 * torch.randn(shape, generator=generator)


def random_calibration(shape: tuple[int, int, int], count: int, seed: int = 0) -> Calibration:
    """`count` seeded image-like samples of (C, H, W) = `shape`."""
    gen = torch.Generator().manual_seed(seed)
    samples = check_images((count, *shape), gen).numpy().astype(np.float32)
    return Calibration(RANDOM_SOURCE, samples)


def images_from_list(root: str | Path, list_file: str | Path, count: int, input_hw: tuple[int, int]) -> Calibration:
    """The first `count` readable images of a list file (labels optional), network inputs at `input_hw`.
    BadInputError naming the list if none can be read."""
    from inas.data import image_to_input, load_rgb
    from inas.data.lists import read_list, resolve_list_path

    if count < 1:
        raise BadInputError(f"must be at least 1, got {count}", key="--calibration-images")
    entries = read_list(root, list_file, require_labels=False)
    samples = []
    for entry in entries:
        try:
            samples.append(image_to_input(load_rgb(entry.image), input_hw).numpy())
        except BadInputError:
            continue
        if len(samples) == count:
            break
    path = resolve_list_path(root, list_file)
    if not samples:
        raise BadInputError("no image of the list could be read for calibration", path=path)
    return Calibration(f"images:{path}", np.stack(samples).astype(np.float32))

"""Colour coding of segmentation masks: the Cityscapes palette (19 trainIds), extended for more classes.

Masks are written as palette PNGs (PIL mode "P"): the pixel values ARE the class ids (so `evaluate --task seg`
scores them directly) and the palette shows them in the Cityscapes colours; 255 (ignore) is black.
"""

from __future__ import annotations

import numpy as np
from PIL import Image

CITYSCAPES_CLASSES: tuple[str, ...] = (
    "road", "sidewalk", "building", "wall", "fence", "pole", "traffic light", "traffic sign", "vegetation",
    "terrain", "sky", "person", "rider", "car", "truck", "bus", "train", "motorcycle", "bicycle",
)
CITYSCAPES_PALETTE: tuple[tuple[int, int, int], ...] = (
    (128, 64, 128), (244, 35, 232), (70, 70, 70), (102, 102, 156), (190, 153, 153), (153, 153, 153),
    (250, 170, 30), (220, 220, 0), (107, 142, 35), (152, 251, 152), (70, 130, 180), (220, 20, 60), (255, 0, 0),
    (0, 0, 142), (0, 0, 70), (0, 60, 100), (0, 80, 100), (0, 0, 230), (119, 11, 32),
)
MAX_CLASSES = 255  # 255 is the ignore index; palette PNGs hold 256 entries


def palette(num_classes: int) -> list[int]:
    """A flat 768-entry PIL palette: Cityscapes colours for ids 0..18, seeded distinct colours after, black 255."""
    if not 1 <= num_classes <= MAX_CLASSES:
        raise ValueError(f"num_classes must be in 1..{MAX_CLASSES}, got {num_classes}")
    colours = list(CITYSCAPES_PALETTE[:num_classes])
    rng = np.random.default_rng(0)
    while len(colours) < 256:
        colours.append(tuple(int(v) for v in rng.integers(0, 256, 3)))
    colours[255] = (0, 0, 0)
    return [v for colour in colours for v in colour]


def colorize(labels: np.ndarray, num_classes: int) -> Image.Image:
    """(H, W) integer class ids in [0, num_classes) (or 255) -> a palette ("P") PIL image holding those ids."""
    labels = np.asarray(labels)
    if labels.ndim != 2:
        raise ValueError(f"expected an (H, W) label map, got shape {labels.shape}")
    bad = (labels < 0) | ((labels >= num_classes) & (labels != 255))
    if bad.any():
        raise ValueError(f"labels must lie in [0, {num_classes}) or be 255")
    image = Image.fromarray(labels.astype(np.uint8))  # mode "L"; putpalette turns it into "P" keeping the ids
    image.putpalette(palette(num_classes))
    return image

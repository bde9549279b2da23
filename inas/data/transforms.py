"""Image / label loading and transforms (PIL + numpy on single samples, torch on batches).

Conventions (shared by the SOD and segmentation data sets):

- images: RGB, resized bilinearly, scaled to [0, 1], normalised with the ImageNet mean / std, float32 (3, H, W);
- SOD masks: grayscale, binarised at `> 127` (so anti-aliased edge pixels above half count as object; the original
  kept only pixels == 255); training masks are float32 (1, H, W) in {0, 1}, resized with nearest neighbour;
- segmentation labels: single-channel trainIds, int64 (H, W), 255 = ignore, resized with nearest neighbour.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import Tensor

from inas.errors import BadInputError, clip
from inas.images import IMAGE_ERRORS, open_image, sod_mask_problem

IMAGENET_MEAN: tuple[float, float, float] = (0.485, 0.456, 0.406)
IMAGENET_STD: tuple[float, float, float] = (0.229, 0.224, 0.225)
MASK_THRESHOLD = 127  # SOD mask pixels strictly above this are foreground
IGNORE_INDEX = 255
PAD_RGB = np.round(np.asarray(IMAGENET_MEAN) * 255).astype(np.uint8)  # crop padding: 0 after normalisation

_MEAN = np.asarray(IMAGENET_MEAN, dtype=np.float32) * 255.0
_INV_STD = 1.0 / (np.asarray(IMAGENET_STD, dtype=np.float32) * 255.0)


def _open(path: Path, kind: str) -> Image.Image:
    try:
        image = open_image(path)
        image.load()
    except FileNotFoundError:
        raise BadInputError(f"{kind} file not found", path=path) from None
    except IMAGE_ERRORS as exc:
        raise BadInputError(f"{kind} file cannot be read ({clip(str(exc), 300)})", path=path) from None
    return image


def load_rgb(path: str | Path) -> Image.Image:
    """Read an image file as an RGB PIL image (BadInputError naming the file if unreadable or floating-point).
    A single-channel image of more than 8 bits (PIL modes I;16*, I) whose values exceed 255 is scaled to 8 bits
    (/ 257): Pillow's own conversion clips every value above 255, which turned a 16-bit photo all white."""
    image = _open(Path(path), "image")
    if image.mode == "F":
        raise BadInputError("a floating-point image (PIL mode F); expected 8- or 16-bit pixels", path=path)
    if image.mode == "I" or image.mode.startswith("I;16"):
        values = np.asarray(image, dtype=np.float64)
        if values.max(initial=0) > 255:
            values = np.rint(values / 257)
        image = Image.fromarray(np.clip(values, 0, 255).astype(np.uint8), "L")
    return image.convert("RGB")


def load_gray(path: str | Path) -> Image.Image:
    """Read an SOD mask as a grayscale ('L') PIL image (BadInputError naming the file for a mask whose foreground
    would be lost: transparent pixels or 0/1 values, see `sod_mask_problem`)."""
    image = _open(Path(path), "mask")
    problem = sod_mask_problem(image)
    if problem is not None:
        raise BadInputError(problem, path=path)
    return image.convert("L")


def load_label(path: str | Path) -> Image.Image:
    """Read a segmentation label (trainIds) without any palette conversion: mode L, P or I."""
    image = _open(Path(path), "label")
    if image.mode in ("L", "P"):
        return image
    if image.mode.startswith("I"):
        return image.convert("I")
    raise BadInputError(f"label must be single-channel trainIds (mode L/P/I), got mode {image.mode}", path=path)


def binarize_mask(mask: np.ndarray) -> np.ndarray:
    """uint8 grayscale (H, W) -> bool (H, W): True where the value is > 127 (200 -> True, 100 -> False)."""
    return np.asarray(mask) > MASK_THRESHOLD


def normalize_image(image: Image.Image | np.ndarray) -> Tensor:
    """RGB uint8 (H, W, 3) -> float32 tensor (3, H, W): /255, minus ImageNet mean, divided by ImageNet std."""
    array = np.asarray(image, dtype=np.float32)
    array = (array - _MEAN) * _INV_STD
    return torch.from_numpy(np.ascontiguousarray(array.transpose(2, 0, 1)))


def denormalize_image(image: Tensor) -> Tensor:
    """Inverse of `normalize_image` on (3, H, W) or (N, 3, H, W): float in [0, 1] (not clamped)."""
    mean = torch.tensor(IMAGENET_MEAN, dtype=image.dtype, device=image.device).view(-1, 1, 1)
    std = torch.tensor(IMAGENET_STD, dtype=image.dtype, device=image.device).view(-1, 1, 1)
    return image * std + mean


def resize_image(image: Image.Image, size_hw: tuple[int, int]) -> Image.Image:
    """Bilinear resize of a PIL image to (height, width) (no-op if already that size)."""
    height, width = size_hw
    if image.size == (width, height):
        return image
    return image.resize((width, height), Image.BILINEAR)


def resize_label(label: Image.Image, size_hw: tuple[int, int]) -> Image.Image:
    """Nearest-neighbour resize of a mask / label map to (height, width)."""
    height, width = size_hw
    if label.size == (width, height):
        return label
    return label.resize((width, height), Image.NEAREST)


def image_to_input(image: Image.Image, size_hw: tuple[int, int] | None) -> Tensor:
    """The network input for one RGB image: resized to `size_hw` (None keeps it), normalised, (3, H, W)."""
    if size_hw is not None:
        image = resize_image(image, size_hw)
    return normalize_image(image)


def sod_train_pair(
    image: Image.Image, mask: Image.Image, size: int, flip: bool, rng: torch.Generator | None = None
) -> tuple[Tensor, Tensor]:
    """SOD training transform -> image float32 (3, S, S), mask float32 (1, S, S) in {0, 1}.

    Resize to S x S (image bilinear, mask nearest), horizontal flip with p = 0.5 if `flip`, normalise.
    """
    image = resize_image(image, (size, size))
    mask = resize_label(mask, (size, size))
    if flip and torch.rand((), generator=rng).item() < 0.5:
        image = image.transpose(Image.FLIP_LEFT_RIGHT)
        mask = mask.transpose(Image.FLIP_LEFT_RIGHT)
    mask_tensor = torch.from_numpy(binarize_mask(np.asarray(mask)).astype(np.float32))[None]
    return normalize_image(image), mask_tensor


def label_value_problem(array: np.ndarray, num_classes: int) -> str | None:
    """Why the segmentation label `array` (H, W) holds values that are no class id 0..num_classes-1 nor the ignore
    index, or None."""
    values = np.unique(array)
    bad = values[((values >= num_classes) & (values != IGNORE_INDEX)) | (values < 0)]
    if bad.size == 0:
        return None
    return (f"label values {[int(v) for v in bad[:10]]} are outside 0..{num_classes - 1} and not the ignore index "
            f"{IGNORE_INDEX}")


def label_to_tensor(label: Image.Image | np.ndarray, num_classes: int, path: str | Path | None = None) -> Tensor:
    """Segmentation label (H, W) -> int64 tensor; values must be < num_classes or 255 (else BadInputError)."""
    array = np.asarray(label).astype(np.int64)
    problem = label_value_problem(array, num_classes)
    if problem is not None:
        raise BadInputError(problem, path=path)
    return torch.from_numpy(array)


def random_resized_crop(
    image: Image.Image,
    label: Image.Image,
    crop_hw: tuple[int, int],
    scale_range: tuple[float, float] = (0.5, 2.0),
    flip: bool = True,
    rng: torch.Generator | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Segmentation training augmentation -> (RGB uint8 (h, w, 3), label (h, w)) with (h, w) = crop_hw.

    The image is scaled by s ~ U(scale_range) relative to the size at which it just covers the crop (s = 1: the
    crop fits exactly along the tighter side), image bilinear and label nearest; then padded to at least the crop
    (image with the ImageNet mean colour, i.e. 0 after normalisation; label with 255 = ignore) and cropped at a
    random position; then flipped with p = 0.5 if `flip`.
    """
    crop_h, crop_w = crop_hw
    width, height = image.size
    u = torch.rand(4, generator=rng).tolist()
    scale = scale_range[0] + (scale_range[1] - scale_range[0]) * u[0]
    cover = max(crop_h / height, crop_w / width)
    new_h, new_w = max(1, round(height * cover * scale)), max(1, round(width * cover * scale))
    image = resize_image(image, (new_h, new_w))
    label = resize_label(label, (new_h, new_w))
    img = np.asarray(image)
    lab = np.asarray(label)
    pad_h, pad_w = max(0, crop_h - new_h), max(0, crop_w - new_w)
    if pad_h or pad_w:
        img = np.pad(img, ((0, pad_h), (0, pad_w), (0, 0)))
        img[new_h:, :] = PAD_RGB
        img[:, new_w:] = PAD_RGB
        lab = np.pad(lab, ((0, pad_h), (0, pad_w)), constant_values=IGNORE_INDEX)
    top = int(u[1] * (img.shape[0] - crop_h + 1))
    left = int(u[2] * (img.shape[1] - crop_w + 1))
    img = img[top : top + crop_h, left : left + crop_w]
    lab = lab[top : top + crop_h, left : left + crop_w]
    if flip and u[3] < 0.5:
        img, lab = img[:, ::-1], lab[:, ::-1]
    return np.ascontiguousarray(img), np.ascontiguousarray(lab)


def center_fit(image: Image.Image, label: Image.Image, crop_hw: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """Deterministic counterpart of `random_resized_crop` (scale 1, centre crop, no flip) for BN recalibration."""
    crop_h, crop_w = crop_hw
    width, height = image.size
    cover = max(crop_h / height, crop_w / width)
    new_h, new_w = max(crop_h, round(height * cover)), max(crop_w, round(width * cover))
    img = np.asarray(resize_image(image, (new_h, new_w)))
    lab = np.asarray(resize_label(label, (new_h, new_w)))
    top, left = (new_h - crop_h) // 2, (new_w - crop_w) // 2
    return (
        np.ascontiguousarray(img[top : top + crop_h, left : left + crop_w]),
        np.ascontiguousarray(lab[top : top + crop_h, left : left + crop_w]),
    )


def resize_batch(images: Tensor, labels: Tensor | None, size: int | tuple[int, int]) -> tuple[Tensor, Tensor | None]:
    """Resize a whole batch: images (N, 3, H, W) bilinear with align_corners=True; labels nearest.

    Labels may be float SOD masks (N, 1, H, W) or int64 segmentation labels (N, H, W); their dtype is kept.
    Returns the inputs unchanged when they already have the size.
    """
    size_hw = (size, size) if isinstance(size, int) else tuple(size)
    if tuple(images.shape[-2:]) == size_hw:
        return images, labels
    images = F.interpolate(images, size=size_hw, mode="bilinear", align_corners=True)
    if labels is None:
        return images, None
    squeeze = labels.dim() == 3
    lab = labels[:, None] if squeeze else labels
    resized = F.interpolate(lab.float(), size=size_hw, mode="nearest").to(labels.dtype)
    return images, resized[:, 0] if squeeze else resized


class MultiScaleResize:
    """Per-batch multi-scale training: each call resizes the batch to a random side drawn from `sizes`.

    Seeded: every rank of a DDP job built with the same seed draws the same sequence of sizes. With no sizes it
    returns the batch unchanged. Call it on the batch dict (`image`, `label`) or use `resize(images, labels)`.
    """

    def __init__(self, sizes: Sequence[int], seed: int = 0) -> None:
        self.sizes = [int(s) for s in sizes]
        self._rng = random.Random(seed)

    def next_size(self) -> int | None:
        """The side for the next batch (None when multi-scale is off)."""
        return self._rng.choice(self.sizes) if self.sizes else None

    def resize(self, images: Tensor, labels: Tensor | None) -> tuple[Tensor, Tensor | None]:
        size = self.next_size()
        return (images, labels) if size is None else resize_batch(images, labels, size)

    def __call__(self, batch: dict) -> dict:
        images, labels = self.resize(batch["image"], batch.get("label"))
        out = dict(batch)
        out["image"] = images
        if labels is not None:
            out["label"] = labels
        return out

    def state_dict(self) -> dict:
        """RNG state, for resumable training (JSON-friendly)."""
        version, state, gauss = self._rng.getstate()
        return {"version": version, "state": list(state), "gauss": gauss}

    def load_state_dict(self, state: dict) -> None:
        self._rng.setstate((state["version"], tuple(state["state"]), state["gauss"]))

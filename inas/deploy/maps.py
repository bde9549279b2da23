"""Network outputs -> per-image results at the ORIGINAL image size.

- SOD: the level-0 map (N, 1, h, w) holds probabilities (sigmoid head; logits are passed through a sigmoid);
  resized bilinearly (half-pixel centres, no antialiasing: cv2.INTER_LINEAR's behaviour) to (H, W), then scaled to
  0..255 and rounded to uint8.
- Segmentation: logits (N, K, h, w) are resized bilinearly to (H, W), then argmax over classes -> (H, W) class ids.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


def saliency_probabilities(maps: Tensor, head_activation: str | None) -> Tensor:
    """(N, 1, h, w) head output -> probabilities in [0, 1] (a sigmoid unless the head already applied one)."""
    maps = maps.float()
    if head_activation not in ("sigmoid", "softmax"):
        maps = torch.sigmoid(maps)
    return maps.clamp(0.0, 1.0)


def resize_map(maps: Tensor, size_hw: tuple[int, int]) -> Tensor:
    """(N, K, h, w) -> (N, K, H, W) bilinear, align_corners=False (no-op at the same size)."""
    if tuple(maps.shape[-2:]) == tuple(size_hw):
        return maps
    return F.interpolate(maps.float(), size=tuple(size_hw), mode="bilinear", align_corners=False)


def saliency_uint8(maps: Tensor, size_hw: tuple[int, int], head_activation: str | None) -> Tensor:
    """One SOD output (1, 1, h, w) or (1, h, w) -> uint8 (H, W) map 0..255 at `size_hw`."""
    maps = maps.reshape(1, 1, *maps.shape[-2:])
    probs = resize_map(saliency_probabilities(maps, head_activation), size_hw)[0, 0]
    return (probs * 255.0).round().clamp(0, 255).to(torch.uint8)


def segmentation_labels(logits: Tensor, size_hw: tuple[int, int]) -> Tensor:
    """One segmentation output (1, K, h, w) or (K, h, w) -> int64 (H, W) class ids at `size_hw`."""
    logits = logits.reshape(1, -1, *logits.shape[-2:])
    return resize_map(logits, size_hw)[0].argmax(dim=0)

"""Weighted F-measure (Margolin et al., CVPR 2014) with the conventions of `py_sod_metrics.WeightedFmeasure`.

The exact Euclidean distance transform with nearest-object indices comes from `scipy.ndimage` (scipy is already
installed as a dependency of nevergrad); its tie-breaking between equally near object pixels decides which error a
background pixel inherits, so using the same routine as the reference is what makes the results equal. Everything
after the transform (error propagation, the 7x7 Gaussian with sigma 5, the importance weights, the sums) is batched in
torch.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

EPS = float(np.spacing(1))  # MATLAB's eps, as in the reference
WF_BETA2 = 1.0  # beta^2 of the weighted F-measure


def gaussian_kernel_1d(size: int = 7, sigma: float = 5.0) -> np.ndarray:
    """1-D factor of MATLAB's `fspecial('gaussian', size, sigma)`: (size,) float64 summing to 1.

    The 2-D kernel is its outer product (exactly so in real arithmetic; for size 7 and sigma 5 no entry falls under
    MATLAB's eps cut-off), so smoothing runs as two 1-D passes.
    """
    half = (size - 1) / 2
    x = np.arange(-half, half + 1)
    kernel = np.exp(-(x * x) / (2 * sigma * sigma))
    return kernel / kernel.sum()


_KERNEL = [float(v) for v in gaussian_kernel_1d()]


def _gaussian_blur(maps: Tensor) -> Tensor:
    """7x7 Gaussian (sigma 5) with zero padding, (N, H, W) float64 -> (N, H, W).

    Two 1-D passes of 7 shifted multiply-adds each: no im2col buffer (a float64 `conv2d` on the CPU allocates one of
    7x the image per call, which made it several times slower).
    """
    n, h, w = maps.shape
    radius = len(_KERNEL) // 2
    padded = F.pad(maps, (radius, radius))
    rows = torch.zeros_like(maps)
    for offset, weight in enumerate(_KERNEL):
        rows.add_(padded[:, :, offset : offset + w], alpha=weight)
    padded = F.pad(rows, (0, 0, radius, radius))
    out = torch.zeros_like(maps)
    for offset, weight in enumerate(_KERNEL):
        out.add_(padded[:, offset : offset + h, :], alpha=weight)
    return out


def _distance_to_object(gt: Tensor) -> tuple[Tensor, Tensor]:
    """Per image: distance of every pixel to the nearest object pixel and that pixel's flat index.

    `gt` (N, H, W) bool, each image with at least one object pixel. Returns `(distance (N, H, W) float64,
    nearest (N, H*W) int64)` on `gt`'s device (object pixels are their own nearest pixel, at distance 0).
    """
    from scipy import ndimage

    n, h, w = gt.shape
    masks = gt.cpu().numpy()
    distance = np.empty((n, h, w), dtype=np.float64)
    nearest = np.empty((n, h * w), dtype=np.int64)
    for i in range(n):
        dist, (rows, cols) = ndimage.distance_transform_edt(~masks[i], return_indices=True)
        distance[i] = dist
        nearest[i] = (rows.astype(np.int64) * w + cols).reshape(-1)
    return torch.from_numpy(distance).to(gt.device), torch.from_numpy(nearest).to(gt.device)


def weighted_fmeasure(pred: Tensor, gt: Tensor) -> Tensor:
    """Weighted F-measure (beta^2 = 1) per image, (N,) float64; 0 for an image without object pixels.

    `pred` (N, H, W) float64 normalised to [0, 1], `gt` (N, H, W) bool.
    """
    n, h, w = pred.shape
    result = torch.zeros(n, dtype=torch.float64, device=pred.device)
    has_object = gt.flatten(1).any(dim=1)
    if not bool(has_object.any()):
        return result
    keep = has_object.nonzero().flatten()
    pred, gt = pred[keep], gt[keep]
    distance, nearest = _distance_to_object(gt)
    gt64 = gt.to(torch.float64)
    error = (pred - gt64).abs()
    # Pixel dependency: a background pixel takes the error of its nearest object pixel before smoothing.
    error_at_nearest = torch.gather(error.flatten(1), 1, nearest).view_as(error)
    smoothed = _gaussian_blur(error_at_nearest)
    min_error = torch.where(gt & (smoothed < error), smoothed, error)
    # Pixel importance: background errors weigh more the farther they are from the object.
    importance = torch.where(gt, torch.ones_like(distance), 2 - torch.exp(math.log(0.5) / 5 * distance))
    weighted_error = min_error * importance
    object_error = (weighted_error * gt64).sum(dim=(1, 2))
    object_pixels = gt64.sum(dim=(1, 2))
    tp = object_pixels - object_error
    fp = (weighted_error * (1 - gt64)).sum(dim=(1, 2))
    recall = 1 - object_error / object_pixels
    precision = tp / (tp + fp + EPS)
    score = (1 + WF_BETA2) * recall * precision / (recall + WF_BETA2 * precision + EPS)
    result[keep] = score
    return result

"""Deep-supervised losses of supernet training (docs/design.md §7).

Predictions are the supernet's train-mode output: `{level: (N, K, H, W)}` for every output level, already upsampled
to the input size; level 0 is the final map, the other levels are side outputs weighted by `side_weight` (0.4).

- SOD (K = 1, sigmoid maps): `ds_bce` against the mask (the max network), `ds_mse` against the max network's final
  map (in-place distillation of every other sub-network; every level regresses the teacher's level-0 map).
- Segmentation (K classes, logits): `ds_cross_entropy` with ignore index 255, `ds_pixelwise_kl` (soft cross-entropy
  with the teacher's softmax, summed and divided by H·W as the original's pixel-wise distillation).
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
import torch.nn.functional as F
from torch import Tensor

from inas.data.transforms import IGNORE_INDEX


def _weighted(per_level: Mapping[int, Tensor], side_weight: float) -> Tensor:
    total = per_level[0]
    for level, value in per_level.items():
        if level != 0:
            total = total + side_weight * value
    return total


def ds_bce(preds: Mapping[int, Tensor], mask: Tensor, side_weight: float = 0.4) -> Tensor:
    """Σ_L w_L · BCE(pred_L, mask): preds (N, 1, H, W) probabilities, mask (N, 1, H, W) float in {0, 1}."""
    return _weighted({lv: F.binary_cross_entropy(p, mask) for lv, p in preds.items()}, side_weight)


def ds_mse(preds: Mapping[int, Tensor], teacher: Tensor, side_weight: float = 0.4) -> Tensor:
    """Σ_L w_L · MSE(pred_L, teacher): teacher = the max network's level-0 map (N, K, H, W), detached here."""
    teacher = teacher.detach()
    return _weighted({lv: F.mse_loss(p, teacher) for lv, p in preds.items()}, side_weight)


def ds_cross_entropy(preds: Mapping[int, Tensor], labels: Tensor, side_weight: float = 0.4,
                     ignore_index: int = IGNORE_INDEX) -> Tensor:
    """Σ_L w_L · CE(logits_L, labels): logits (N, K, H, W), labels int64 (N, H, W) with `ignore_index`."""
    return _weighted({lv: F.cross_entropy(p, labels, ignore_index=ignore_index) for lv, p in preds.items()},
                     side_weight)


def pixelwise_kl(student_logits: Tensor, teacher_logits: Tensor) -> Tensor:
    """Σ over batch, classes and pixels of -softmax(teacher) · log_softmax(student), divided by H·W."""
    height, width = student_logits.shape[-2:]
    soft = torch.softmax(teacher_logits.detach(), dim=1)
    return -(soft * F.log_softmax(student_logits, dim=1)).sum() / (height * width)


def ds_pixelwise_kl(preds: Mapping[int, Tensor], teacher_logits: Tensor, side_weight: float = 0.4) -> Tensor:
    """Σ_L w_L · pixelwise_kl(logits_L, teacher): teacher = the max network's level-0 logits, detached."""
    return _weighted({lv: pixelwise_kl(p, teacher_logits) for lv, p in preds.items()}, side_weight)

"""`SegMetrics`: semantic-segmentation IoU from a confusion matrix accumulated over a data set.

The confusion matrix (rows: ground truth, columns: prediction) is one `bincount` per update; pixels whose ground truth
is `ignore_index` (255 by default) are left out. IoU per class = diag / (row sum + column sum - diag).

A class absent from both the predictions and the ground truth has IoU 0/0 = NaN. Protocol "standard" leaves such
classes out of the mean (`nanmean`), so a data set without, say, trains is not punished for it; protocol "legacy"
takes the plain mean as the original iNAS code did, so any absent class makes mIoU NaN.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor

from inas.metrics.sod import as_tensor


class SegMetrics:
    """Accumulates a `num_classes` x `num_classes` confusion matrix; `compute()` -> `{"miou", "iou_<class>"...}`.

    `class_names` name the per-class keys (default: the class index, `iou_0`, `iou_1`, ...).
    """

    def __init__(
        self,
        num_classes: int,
        ignore_index: int = 255,
        class_names: Sequence[str] | None = None,
        protocol: str = "standard",
        device: torch.device | str | None = None,
    ) -> None:
        if num_classes < 1:
            raise ValueError(f"num_classes must be >= 1, got {num_classes}")
        if class_names is not None and len(class_names) != num_classes:
            raise ValueError(f"class_names has {len(class_names)} names for {num_classes} classes")
        if protocol not in ("standard", "legacy"):
            raise ValueError(f"protocol must be 'standard' or 'legacy', got {protocol!r}")
        self.num_classes = num_classes
        self.ignore_index = ignore_index
        self.class_names = [str(i) for i in range(num_classes)] if class_names is None else list(class_names)
        self.protocol = protocol
        self.device = None if device is None else torch.device(device)
        self.reset()

    def reset(self) -> None:
        self.confusion: Tensor | None = None

    def _labels(self, pred: Tensor) -> Tensor:
        """Integer labels, or logits with classes on dim -3 ((C, H, W) or (N, C, H, W)) reduced by argmax."""
        if pred.is_floating_point():
            if pred.dim() not in (3, 4) or pred.shape[-3] != self.num_classes:
                raise ValueError(
                    f"float pred is read as logits (C, H, W) or (N, C, H, W) with C = {self.num_classes}, "
                    f"got shape {tuple(pred.shape)}"
                )
            return pred.argmax(dim=-3)
        if pred.dtype == torch.bool:
            raise ValueError("pred must be integer labels or float logits, got bool")
        return pred.to(torch.int64)

    def update(self, pred: Any, gt: Any) -> None:
        """Add predictions and labels: `pred` labels (H, W)/(N, H, W) or logits (C, H, W)/(N, C, H, W);
        `gt` integer labels of the same spatial shape (values in [0, num_classes) or `ignore_index`)."""
        pred_t = as_tensor(pred, self.device)
        labels = self._labels(pred_t)
        gt_t = as_tensor(gt, labels.device)
        if gt_t.is_floating_point() or gt_t.dtype == torch.bool:
            raise ValueError(f"gt must hold integer class labels, got {gt_t.dtype}")
        gt_t = gt_t.to(torch.int64)
        if labels.shape != gt_t.shape:
            raise ValueError(f"pred labels {tuple(labels.shape)} and gt {tuple(gt_t.shape)} must have the same shape")
        keep = gt_t != self.ignore_index
        gt_kept = gt_t[keep]
        pred_kept = labels[keep]
        c = self.num_classes
        if gt_kept.numel():
            if bool((gt_kept < 0).any()) or bool((gt_kept >= c).any()):
                bad = sorted({int(v) for v in gt_kept[(gt_kept < 0) | (gt_kept >= c)].unique()[:10]})
                raise ValueError(f"gt labels must be in [0, {c}) or {self.ignore_index}, found {bad}")
            if bool((pred_kept < 0).any()) or bool((pred_kept >= c).any()):
                bad = sorted({int(v) for v in pred_kept[(pred_kept < 0) | (pred_kept >= c)].unique()[:10]})
                raise ValueError(f"pred labels must be in [0, {c}), found {bad}")
        counts = torch.bincount(gt_kept * c + pred_kept, minlength=c * c).view(c, c)
        self.confusion = counts if self.confusion is None else self.confusion + counts.to(self.confusion.device)

    def iou_per_class(self) -> np.ndarray:
        """IoU per class, (num_classes,) float64, NaN for classes absent from both prediction and ground truth."""
        if self.confusion is None:
            raise ValueError("SegMetrics: no image was added")
        confusion = self.confusion.to(torch.float64).cpu()
        diag = confusion.diag()
        union = confusion.sum(dim=0) + confusion.sum(dim=1) - diag
        iou = torch.where(union > 0, diag / union.clamp(min=1), torch.full_like(diag, float("nan")))
        return iou.numpy()

    def compute(self) -> dict[str, float]:
        """`{"miou": mean IoU, "iou_<class>": IoU, ...}` (see the module docstring for NaN classes)."""
        iou = self.iou_per_class()
        if self.protocol == "legacy":
            miou = float(iou.mean())
        else:
            present = iou[~np.isnan(iou)]
            miou = float(present.mean()) if present.size else float("nan")
        values = {"miou": miou}
        values.update({f"iou_{name}": float(value) for name, value in zip(self.class_names, iou, strict=True)})
        return values

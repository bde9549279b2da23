"""Data sets and loaders from the `data` section of an experiment config (`inas.config.DataConfig`).

- SOD: training at `image_size` (+ `flip`, + per-batch `multi_scale_sizes` through `multi_scale_from_config`);
  evaluation at `image_size` with full-resolution masks.
- Segmentation: training crops of `crop_size` [H, W] (default [image_size, image_size]), random resized crop and
  flip; evaluation keeps the image size (labels always at full size); no multi-scale (the crop already rescales).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from torch.utils.data import DataLoader, Dataset

from inas.data.lists import TASKS, Task
from inas.data.loaders import build_bn_loader, build_eval_loader, build_train_loader
from inas.data.seg import SegEvalDataset, SegTrainDataset
from inas.data.sod import MaskMode, SODEvalDataset, SODTrainDataset
from inas.data.transforms import MultiScaleResize
from inas.errors import BadInputError

if TYPE_CHECKING:
    from inas.config import DataConfig


def _check_task(task: str) -> None:
    if task not in TASKS:
        raise BadInputError(f"unknown task {task!r}, expected one of {TASKS}", key="task")


def seg_crop_hw(data: DataConfig) -> tuple[int, int]:
    """The segmentation training crop (H, W): `crop_size`, else a square of `image_size`."""
    if data.crop_size is None:
        return data.image_size, data.image_size
    if len(data.crop_size) != 2 or min(data.crop_size) <= 0:
        raise BadInputError(f"expected [height, width] > 0, got {data.crop_size}", key="data.crop_size")
    return int(data.crop_size[0]), int(data.crop_size[1])


def train_dataset(data: DataConfig, task: Task, *, check: bool = True, progress: bool = True) -> Dataset:
    """The training data set of `data.train_list` (checked first unless `check=False`)."""
    _check_task(task)
    if task == "sod":
        return SODTrainDataset(data.root, data.train_list, data.image_size, data.flip, check=check, progress=progress)
    return SegTrainDataset(
        data.root,
        data.train_list,
        seg_crop_hw(data),
        num_classes=data.num_classes,
        flip=data.flip,
        check=check,
        progress=progress,
    )


def bn_dataset(data: DataConfig, task: Task, *, check: bool = True, progress: bool = True) -> Dataset:
    """The BN-recalibration data set: the training list without random augmentation (no flip, fixed crop)."""
    _check_task(task)
    if task == "sod":
        return SODTrainDataset(data.root, data.train_list, data.image_size, flip=False, check=check, progress=progress)
    return SegTrainDataset(
        data.root,
        data.train_list,
        seg_crop_hw(data),
        num_classes=data.num_classes,
        augment=False,
        check=check,
        progress=progress,
    )


def eval_dataset(
    data: DataConfig,
    task: Task,
    list_name: str | None = None,
    *,
    mask_mode: MaskMode = "binary",
    check: bool = True,
    progress: bool = True,
) -> Dataset:
    """The evaluation data set of `list_name` (default `data.val_list`); labels stay at full resolution."""
    _check_task(task)
    list_name = data.val_list if list_name is None else list_name
    if task == "sod":
        return SODEvalDataset(
            data.root, list_name, data.image_size, mask_mode=mask_mode, check=check, progress=progress
        )
    return SegEvalDataset(data.root, list_name, None, num_classes=data.num_classes, check=check, progress=progress)


def multi_scale_from_config(data: DataConfig, task: Task, seed: int = 0) -> MultiScaleResize:
    """Per-batch multi-scale resize for SOD training (`multi_scale_sizes`); a no-op for segmentation."""
    _check_task(task)
    return MultiScaleResize(data.multi_scale_sizes if task == "sod" else [], seed=seed)


def train_loader_from_config(
    data: DataConfig,
    task: Task,
    *,
    seed: int = 0,
    distributed: bool = False,
    num_replicas: int | None = None,
    rank: int | None = None,
    check: bool = True,
) -> DataLoader:
    """`build_train_loader` over `train_dataset(data, task)` with the config's batch size and workers."""
    dataset = train_dataset(data, task, check=check, progress=not rank)
    return build_train_loader(
        dataset,
        data.batch_size,
        seed=seed,
        num_workers=data.num_workers,
        distributed=distributed,
        num_replicas=num_replicas,
        rank=rank,
    )


def bn_loader_from_config(
    data: DataConfig, task: Task, num_batches: int, *, seed: int = 0, cache: bool = False, check: bool = True
) -> DataLoader:
    """`build_bn_loader` over `bn_dataset(data, task)`: `num_batches` fixed batches of `data.batch_size`."""
    dataset = bn_dataset(data, task, check=check)
    return build_bn_loader(
        dataset, data.batch_size, num_batches, seed=seed, num_workers=data.num_workers, cache=cache
    )


def eval_loader_from_config(
    data: DataConfig,
    task: Task,
    list_name: str | None = None,
    *,
    batch_size: int = 1,
    mask_mode: MaskMode = "binary",
    check: bool = True,
) -> DataLoader:
    """`build_eval_loader` over `eval_dataset(data, task, list_name)`."""
    dataset = eval_dataset(data, task, list_name, mask_mode=mask_mode, check=check)
    return build_eval_loader(dataset, batch_size, num_workers=data.num_workers)

"""Data: list files and their pre-training check, SOD and segmentation data sets, transforms, loaders, and the
synthetic data generators (`synthesize_sod`, `synthesize_seg`).

Layouts, sample formats and shapes are documented in `inas.data.sod`, `inas.data.seg` and `inas.data.transforms`.
"""

from inas.data.build import (
    bn_dataset,
    bn_loader_from_config,
    eval_dataset,
    eval_loader_from_config,
    multi_scale_from_config,
    seg_crop_hw,
    train_dataset,
    train_loader_from_config,
)
from inas.data.lists import ListCheckError, ListEntry, ListProblem, check_list, read_list
from inas.data.loaders import build_bn_loader, build_eval_loader, build_train_loader, collate_eval
from inas.data.seg import SegEvalDataset, SegTrainDataset, cityscapes_pairs
from inas.data.sod import SODEvalDataset, SODTrainDataset
from inas.data.synth_common import SynthResult
from inas.data.synth_seg import synthesize_seg
from inas.data.synth_sod import synthesize_sod
from inas.data.transforms import (
    IGNORE_INDEX,
    IMAGENET_MEAN,
    IMAGENET_STD,
    MultiScaleResize,
    binarize_mask,
    denormalize_image,
    image_to_input,
    load_rgb,
    normalize_image,
    resize_batch,
)

__all__ = [
    "IGNORE_INDEX",
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "ListCheckError",
    "ListEntry",
    "ListProblem",
    "MultiScaleResize",
    "SODEvalDataset",
    "SODTrainDataset",
    "SegEvalDataset",
    "SegTrainDataset",
    "SynthResult",
    "binarize_mask",
    "bn_dataset",
    "bn_loader_from_config",
    "build_bn_loader",
    "build_eval_loader",
    "build_train_loader",
    "check_list",
    "cityscapes_pairs",
    "collate_eval",
    "denormalize_image",
    "eval_dataset",
    "eval_loader_from_config",
    "image_to_input",
    "load_rgb",
    "multi_scale_from_config",
    "normalize_image",
    "read_list",
    "resize_batch",
    "seg_crop_hw",
    "synthesize_seg",
    "synthesize_sod",
    "train_dataset",
    "train_loader_from_config",
]

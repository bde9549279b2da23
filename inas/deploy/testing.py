"""Small fixtures for deployment tests and demos: a tiny narrowed space, a random-weight supernet with non-trivial
BN statistics and kernel transforms, and a config file pointing at a (synthetic) data set."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import torch
import yaml
from torch import Tensor

from inas.evaluation import recalibrate_bn
from inas.nn import StandaloneModel, Supernet, extract_subnet
from inas.nn.testing import calibrate_bn_, perturb_
from inas.runtimes.calibration import check_images
from inas.space import Arch, SearchSpace, inas_space, sample_uniform

# Minimum widths everywhere, a few choices where they matter: two widths and two depths in stage_1, multi-kernel
# SMSUs (3, 5) in stage_3, the transport and level-0 decoder; optional connections at transport level 2 and
# decoder level 0. Builds a supernet of ~5 M parameters that runs a 64 x 64 batch in milliseconds.
TINY_SPACE_SPEC: dict[str, dict[str, dict[str, list[int]]]] = {
    "stages": {
        "stem": {"widths": [32]},
        "stage_1": {"widths": [16, 20], "depths": [1, 2]},
        "stage_2": {"widths": [24], "depths": [2]},
        "stage_3": {"widths": [40], "depths": [2], "kernels": [3, 5]},
        "stage_4": {"widths": [80], "depths": [2], "kernels": [3]},
        "stage_5": {"widths": [112], "depths": [2], "kernels": [3]},
        "stage_6": {"widths": [192], "depths": [2], "kernels": [3]},
        "stage_7": {"widths": [320], "depths": [1], "kernels": [3]},
    },
    "transport": {
        "level_0": {"connections": [0], "kernels": [3, 5]},
        "level_1": {"connections": [1], "kernels": [3]},
        "level_2": {"connections": [1, 2, 3], "kernels": [3, 5]},
        "level_3": {"connections": [3], "kernels": [3]},
        "level_4": {"connections": [4], "kernels": [3]},
    },
    "decoder": {
        "level_0": {"connections": [0, 1, 2], "kernels": [3, 5]},
        "level_1": {"connections": [1, 2], "kernels": [3]},
        "level_2": {"connections": [2, 3], "kernels": [3]},
        "level_3": {"connections": [3, 4], "kernels": [3]},
        "level_4": {"connections": [4], "kernels": [3]},
    },
}


def tiny_space() -> SearchSpace:
    """The space of `TINY_SPACE_SPEC`."""
    spec = TINY_SPACE_SPEC
    return inas_space().narrow(spec["stages"], spec["transport"], spec["decoder"])


@torch.no_grad()
def random_supernet(space: SearchSpace, *, num_classes: int = 1, seed: int = 0, image_hw: tuple[int, int] = (64, 64),
                    bn_forwards: int = 3) -> Supernet:
    """A supernet with random weights, perturbed kernel transforms and BN affine parameters, and running BN
    statistics from `bn_forwards` train-mode forwards (momentum 1) of random images: the max arch first, then
    uniformly sampled archs. Calibrated statistics keep activations at a trained network's scale (uncalibrated
    random statistics let them grow to ~1e4, where float32 rounding differences between runtimes reach 1e-4).
    Returned in eval mode."""
    torch.manual_seed(seed)
    supernet = Supernet(space, num_classes=num_classes)
    perturb_(supernet, seed=seed)
    gen = torch.Generator().manual_seed(seed)
    rng = random.Random(seed)
    for i in range(bn_forwards):
        images = torch.randn(2, 3, *image_hw, generator=gen)
        calibrate_bn_(supernet, images, supernet.max_arch if i == 0 else sample_uniform(space, rng))
    return supernet.eval()


def image_like_batches(count: int, batch: int, image_hw: tuple[int, int], seed: int = 0) -> list[Tensor]:
    """`count` batches (batch, 3, H, W) of smooth noise with the statistics of normalised photos."""
    gen = torch.Generator().manual_seed(seed)
    return [check_images((batch, 3, *image_hw), gen) for _ in range(count)]


def random_standalone(space: SearchSpace, arch: Arch, *, num_classes: int = 1, seed: int = 0,
                      image_hw: tuple[int, int] = (64, 64)) -> StandaloneModel:
    """What `convert` makes of a random supernet: BN recalibrated for `arch` on image-like batches (precise BN),
    weights sliced and folded. Activations stay at a trained network's scale, so PyTorch and onnxruntime agree to
    ~1e-6 on image-like inputs."""
    supernet = random_supernet(space, num_classes=num_classes, seed=seed, image_hw=image_hw)
    recalibrate_bn(supernet, image_like_batches(2, 2, image_hw, seed), 2, forward=lambda x: supernet(x, arch))
    return extract_subnet(supernet, arch)


def write_config(path: str | Path, data_root: str | Path, *, task: str = "sod", image_size: int = 64,
                 batch_size: int = 2, space: dict[str, Any] | None = None, test_lists: list[str] | None = None,
                 extra: dict[str, Any] | None = None) -> Path:
    """A YAML experiment config for `data_root` (lists train.lst / test.lst for SOD, train.lst / val.lst for seg),
    no workers, no multi-scale, the tiny space unless `space` is given."""
    val_list = "test.lst" if task == "sod" else "val.lst"
    doc: dict[str, Any] = {
        "task": task,
        "seed": 0,
        "space": TINY_SPACE_SPEC if space is None else space,
        "data": {
            "root": str(data_root),
            "train_list": "train.lst",
            "val_list": val_list,
            "test_lists": test_lists or [val_list],
            "image_size": image_size,
            "multi_scale_sizes": [],
            "flip": False,
            "batch_size": batch_size,
            "num_workers": 0,
        },
    }
    if task == "seg":
        doc["data"]["crop_size"] = [image_size, 2 * image_size]
    for key, value in (extra or {}).items():
        if isinstance(value, dict) and isinstance(doc.get(key), dict):
            doc[key] = {**doc[key], **value}
        else:
            doc[key] = value
    path = Path(path)
    path.write_text(yaml.safe_dump(doc, sort_keys=False), encoding="utf-8")
    return path

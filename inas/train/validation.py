"""Validation during training: the max, min and one fixed seeded random sub-network, scored after BN
recalibration on rank 0 (`validation.csv`), without shifting the training RNG streams."""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Sized
from typing import cast

import torch
from torch.utils.data import DataLoader, Subset

from inas.config import ExperimentConfig
from inas.data import bn_loader_from_config, eval_loader_from_config
from inas.evaluation import evaluate_arch
from inas.metrics import SEARCH_METRICS
from inas.nn import Supernet
from inas.space import Arch, sample_max, sample_min, sample_uniform
from inas.train.runlog import RunLog

log = logging.getLogger(__name__)

VAL_ARCH_SEED_OFFSET = 7919  # the fixed random validation sub-network: sample_uniform(Random(seed + offset))


def validation_archs(config: ExperimentConfig) -> dict[str, Arch]:
    """The sub-networks validated during training: max, min and one fixed seeded random one."""
    space = config.space.build()
    rng = random.Random(config.seed + VAL_ARCH_SEED_OFFSET)
    return {"max": sample_max(space), "min": sample_min(space), "random": sample_uniform(space, rng)}


def validation_metric_names(config: ExperimentConfig) -> list[str]:
    if config.task == "sod":
        return list(SEARCH_METRICS)
    return ["miou"] + [f"iou_{i}" for i in range(config.data.num_classes)]


class Validator:
    """Scores the validation sub-networks with BN recalibration (loaders built once)."""

    def __init__(self, config: ExperimentConfig, supernet: Supernet, check: bool, progress: bool) -> None:
        tc = config.train
        self.config = config
        self.supernet = supernet
        self.archs = validation_archs(config)
        self.metric_names = validation_metric_names(config)
        self.progress = progress
        # the training list was checked when the training loader was built
        self.bn_loader = bn_loader_from_config(config.data, config.task, tc.bn_recalibration_batches,
                                               seed=config.seed, cache=True, check=False)
        val_loader = eval_loader_from_config(config.data, config.task, check=check)
        if tc.val_images is not None and tc.val_images < len(cast(Sized, val_loader.dataset)):
            subset = Subset(val_loader.dataset, list(range(tc.val_images)))
            val_loader = DataLoader(subset, batch_size=val_loader.batch_size, shuffle=False,
                                    num_workers=val_loader.num_workers, collate_fn=val_loader.collate_fn)
        self.val_loader = val_loader

    def run(self, iteration: int, runlog: RunLog | None) -> dict[str, dict[str, float]]:
        results = {}
        with torch.random.fork_rng(devices=[]):  # validation never shifts the training RNG streams
            for name, arch in self.archs.items():
                start = time.perf_counter()
                scores = evaluate_arch(self.supernet, arch, self.bn_loader, self.val_loader,
                                       self.config.train.bn_recalibration_batches, self.config.task,
                                       metrics=self.metric_names if self.config.task == "sod" else None,
                                       progress=self.progress)
                seconds = time.perf_counter() - start
                results[name] = scores
                if runlog is not None:
                    runlog.log_validation(iteration, name, arch.arch_id, scores, seconds)
                shown = ", ".join(f"{k} {scores[k]:.4f}" for k in self.metric_names if not k.startswith("iou_"))
                log.info("iteration %d: validation %s: %s (%.1f s)", iteration, name, shown, seconds)
        return results

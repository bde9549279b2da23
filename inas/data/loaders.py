"""DataLoader builders: training (shuffled, DDP-ready), BN recalibration (fixed subset) and evaluation.

Training loaders always use a `DistributedSampler` (one replica when not distributed), so the training loop calls
`loader.sampler.set_epoch(epoch)` at the start of every epoch in both cases and gets a seeded, resumable order.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, DistributedSampler, Subset

from inas.errors import BadInputError


def _pin_memory(pin_memory: bool | None) -> bool:
    return torch.cuda.is_available() if pin_memory is None else pin_memory


def collate_eval(samples: Sequence[dict]) -> dict:
    """Collate evaluation samples whose labels differ in size.

    `image`: stacked (N, 3, H, W) (every image must have the same input size; use batch size 1 otherwise);
    `label`: a list of N full-resolution tensors; `height`, `width`: int64 (N,); str fields: lists.
    """
    sizes = {tuple(s["image"].shape) for s in samples}
    if len(sizes) > 1:
        raise ValueError(f"evaluation images of different sizes {sorted(sizes)} cannot be batched; use batch size 1")
    batch: dict = {"image": torch.stack([s["image"] for s in samples]), "label": [s["label"] for s in samples]}
    for key in samples[0]:
        if key in batch:
            continue
        values = [s[key] for s in samples]
        batch[key] = torch.tensor(values, dtype=torch.int64) if isinstance(values[0], int) else values
    return batch


def build_train_loader(
    dataset: Dataset,
    batch_size: int,
    *,
    seed: int = 0,
    num_workers: int = 2,
    distributed: bool = False,
    num_replicas: int | None = None,
    rank: int | None = None,
    pin_memory: bool | None = None,
) -> DataLoader:
    """Shuffled training loader with drop_last; batches {image (N,3,S,S), label, name}.

    `distributed=True` shards the data over `num_replicas` ranks (default: from torch.distributed). Augmentation
    randomness in workers is seeded from `seed` and the rank. Raises BadInputError if a replica would get no batch.
    """
    if distributed:
        if num_replicas is None or rank is None:
            if not torch.distributed.is_available() or not torch.distributed.is_initialized():
                raise RuntimeError("distributed=True needs num_replicas and rank, or an initialised process group")
            num_replicas = torch.distributed.get_world_size() if num_replicas is None else num_replicas
            rank = torch.distributed.get_rank() if rank is None else rank
    else:
        num_replicas, rank = 1, 0
    per_replica = len(dataset) // num_replicas
    if per_replica < batch_size:
        raise BadInputError(
            f"the training list has {len(dataset)} sample(s), fewer than batch size {batch_size} x "
            f"{num_replicas} replica(s); lower data.batch_size or add data",
            key="data.batch_size",
        )
    sampler = DistributedSampler(dataset, num_replicas=num_replicas, rank=rank, shuffle=True, seed=seed, drop_last=True)
    generator = torch.Generator().manual_seed(seed * 1000 + rank)
    return DataLoader(
        dataset,
        batch_size=batch_size,
        sampler=sampler,
        drop_last=True,
        num_workers=num_workers,
        pin_memory=_pin_memory(pin_memory),
        persistent_workers=num_workers > 0,
        generator=generator,
    )


def bn_subset_indices(num_samples: int, count: int, seed: int) -> list[int]:
    """`count` indices into a data set of `num_samples`: a seeded permutation, repeated if the set is smaller."""
    if num_samples <= 0:
        raise BadInputError("cannot recalibrate BN on an empty data set")
    order = np.random.default_rng(seed).permutation(num_samples)
    repeats = -(-count // num_samples)
    return np.tile(order, repeats)[:count].tolist()


class MaterializedDataset(Dataset):
    """Every sample of a data set decoded once and kept in memory (for the BN loader reused by every candidate)."""

    def __init__(self, dataset: Dataset, num_workers: int = 0) -> None:
        loader = DataLoader(dataset, batch_size=None, num_workers=num_workers)
        self.samples = list(loader)

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> dict:
        return self.samples[index]


def build_bn_loader(
    dataset: Dataset,
    batch_size: int,
    num_batches: int,
    *,
    seed: int = 0,
    num_workers: int = 0,
    cache: bool = False,
    pin_memory: bool | None = None,
) -> DataLoader:
    """BN-recalibration loader: exactly `num_batches` batches from a fixed, seeded subset, never shuffled.

    Pass a data set without random augmentation (SOD: `flip=False`; seg: `augment=False`); the training loop must
    not apply multi-scale to these batches. `cache=True` decodes the subset once and keeps it in memory, so
    evaluating many architectures does not read the files again.
    """
    subset: Dataset = Subset(dataset, bn_subset_indices(len(dataset), batch_size * num_batches, seed))
    if cache:
        subset = MaterializedDataset(subset, num_workers=num_workers)
        num_workers = 0
    return DataLoader(
        subset,
        batch_size=batch_size,
        shuffle=False,
        drop_last=False,
        num_workers=num_workers,
        pin_memory=_pin_memory(pin_memory),
        persistent_workers=num_workers > 0,
    )


def build_eval_loader(
    dataset: Dataset,
    batch_size: int = 1,
    *,
    num_workers: int = 0,
    pin_memory: bool | None = None,
) -> DataLoader:
    """Validation / test loader in list order with `collate_eval` (full-resolution labels as a list)."""
    return DataLoader(
        dataset,
        batch_size=batch_size,
        shuffle=False,
        drop_last=False,
        num_workers=num_workers,
        pin_memory=_pin_memory(pin_memory),
        collate_fn=collate_eval,
        persistent_workers=num_workers > 0,
    )

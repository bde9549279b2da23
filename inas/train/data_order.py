"""The training data order and augmentation randomness as a pure function of (seed, epoch, rank, position).

    for batch in epoch_batches(loader, epoch, skip_batches=k, seed=seed, rank=rank): ...

Batch `b` of epoch `e` holds the indices `b * B .. (b + 1) * B` of the loader's DistributedSampler order for `e`,
and sample `p` of that order is loaded with torch's RNG seeded from (seed, e, rank, p) (`sample_seed`) for its
augmentation (random flip / crop draw from torch's global generator). So a batch is the same whether the loader
has 0 or N worker processes, which worker loads it, and whether the run started at iteration 0 or resumed at
iteration k: resuming needs nothing but the iteration count.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

SEED_MODULUS = 2**64


def sample_seed(seed: int, epoch: int, rank: int, position: int) -> int:
    """A 63-bit torch seed for sample `position` of the order of `epoch` on `rank` (numpy's SeedSequence mix)."""
    entropy = [seed % SEED_MODULUS, epoch, rank, position]
    return int(np.random.SeedSequence(entropy).generate_state(1, dtype=np.uint64)[0] >> np.uint64(1))


class SeededSamples(Dataset):
    """A data set indexed by (index, seed): the sample at `index`, its augmentation drawn from torch's RNG seeded
    with `seed`. The caller's torch RNG stream is left untouched (fork_rng), in the main process and in workers."""

    def __init__(self, dataset: Dataset) -> None:
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)  # type: ignore[arg-type]

    def __getitem__(self, key: tuple[int, int]) -> dict:
        index, seed = key
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            return self.dataset[index]


def epoch_keys(loader: DataLoader, epoch: int, seed: int, rank: int) -> list[list[tuple[int, int]]]:
    """Every full batch of `epoch` as [(index, sample seed), ...] (the loader's DistributedSampler order)."""
    sampler = loader.sampler
    sampler.set_epoch(epoch)  # type: ignore[attr-defined]
    indices = list(sampler)  # type: ignore[call-overload]
    batch_size = loader.batch_size or 1
    keys = [(index, sample_seed(seed, epoch, rank, pos)) for pos, index in enumerate(indices)]
    return [keys[b * batch_size:(b + 1) * batch_size] for b in range(len(keys) // batch_size)]


def epoch_batches(loader: DataLoader, epoch: int, skip_batches: int, seed: int, rank: int) -> Iterator[dict]:
    """The batches of `epoch` of a training loader, starting after `skip_batches` (which are never loaded).

    A fresh DataLoader over the same data set with the loader's worker count; its explicit generator keeps the
    global torch RNG untouched by the creation of workers.
    """
    batches = epoch_keys(loader, epoch, seed, rank)[skip_batches:]
    generator = torch.Generator().manual_seed(seed % SEED_MODULUS)
    epoch_loader = DataLoader(SeededSamples(loader.dataset), batch_sampler=batches, num_workers=loader.num_workers,
                              pin_memory=loader.pin_memory, generator=generator)
    yield from epoch_loader

"""Sampling architectures: the `min`, `max` and uniform distributions of the original (docs/design.md §5.6), seeded."""

from __future__ import annotations

import random

from inas.space.arch import Arch, LevelArch, StageArch
from inas.space.space import LevelSpace, SearchSpace, StageSpace


def random_kernel_set(kernels: tuple[int, ...], rng: random.Random) -> tuple[int, ...]:
    """The original's kernel-set draw: a count n uniform in 1..len(kernels), then a uniform n-subset, sorted."""
    n = rng.randint(1, len(kernels))
    return tuple(sorted(rng.sample(list(kernels), n)))


def random_connection_set(level: LevelSpace, rng: random.Random) -> tuple[int, ...]:
    """The original's connection draw: random.sample(candidates, k=randint(0, len)), then the required levels added."""
    candidates = list(level.connections)
    chosen = rng.sample(candidates, rng.randint(0, len(candidates)))
    return tuple(sorted(set(chosen) | set(level.required)))


def random_layer(stage: StageSpace, rng: random.Random) -> tuple[int, tuple[int, ...]]:
    """One layer's (width, kernel set), drawn uniformly."""
    width = rng.choice(stage.widths)
    kernels = stage.kernel_sets[0] if stage.block == "conv" else random_kernel_set(stage.kernels, rng)
    return width, kernels


def random_stage(stage: StageSpace, rng: random.Random) -> StageArch:
    """A uniform stage: depth uniform, then each layer's width and kernel set."""
    depth = rng.choice(stage.depths)
    layers = [random_layer(stage, rng) for _ in range(depth)]
    return StageArch(tuple(w for w, _ in layers), tuple(k for _, k in layers))


def random_level(level: LevelSpace, rng: random.Random) -> LevelArch:
    return LevelArch(random_connection_set(level, rng), random_kernel_set(level.kernels, rng))


def sample_uniform(space: SearchSpace, rng: random.Random) -> Arch:
    """Draw an Arch from the original's uniform sampler (docs/design.md §5.6 'Uniform sampling')."""
    return Arch(
        backbone=tuple(random_stage(s, rng) for s in space.stages),
        transport=tuple(random_level(lv, rng) for lv in space.transport),
        decoder=tuple(random_level(lv, rng) for lv in space.decoder),
    )


def sample_min(space: SearchSpace) -> Arch:
    """The smallest sub-network: min depth and widths, the smallest kernel, only the required connections."""
    return Arch(
        backbone=tuple(
            StageArch((min(s.widths),) * min(s.depths), ((min(s.kernels),),) * min(s.depths)) for s in space.stages
        ),
        transport=tuple(LevelArch(lv.required, (min(lv.kernels),)) for lv in space.transport),
        decoder=tuple(LevelArch(lv.required, (min(lv.kernels),)) for lv in space.decoder),
    )


def sample_max(space: SearchSpace) -> Arch:
    """The largest sub-network: max depth and widths, every kernel, every connection."""
    return Arch(
        backbone=tuple(StageArch((s.max_width,) * s.max_depth, (s.kernel_sets[-1],) * s.max_depth)
                       for s in space.stages),
        transport=tuple(LevelArch(lv.connections, lv.kernels) for lv in space.transport),
        decoder=tuple(LevelArch(lv.connections, lv.kernels) for lv in space.decoder),
    )


def sample(space: SearchSpace, mode: str, rng: random.Random) -> Arch:
    """Dispatch on `mode` in {"min", "max", "uniform"}."""
    if mode == "min":
        return sample_min(space)
    if mode == "max":
        return sample_max(space)
    if mode == "uniform":
        return sample_uniform(space, rng)
    raise ValueError(f"unknown sampling mode {mode!r}; expected min, max or uniform")

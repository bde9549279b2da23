"""Evolution operators of the original (docs/design.md §9.3): crossover of whole stages/levels and per-layer mutation,
plus an optional depth mutation the original lacks (off by default)."""

from __future__ import annotations

import random
from dataclasses import dataclass

from inas.space.arch import Arch, LevelArch, StageArch
from inas.space.sampling import random_connection_set, random_kernel_set, random_layer
from inas.space.space import SearchSpace


@dataclass(frozen=True)
class MutationRates:
    """Per-element probabilities. The original uses 0.2 for all of them and never mutates depth."""

    kernel: float = 0.2
    width: float = 0.2
    connection: float = 0.2
    level_kernel: float = 0.2
    depth: float = 0.0


def mutate(arch: Arch, space: SearchSpace, rng: random.Random, rates: MutationRates = MutationRates()) -> Arch:
    """Mutate each existing layer's kernel set and width, each level's connection and kernel set, independently."""
    stages = []
    for stage_space, stage in zip(space.stages, arch.backbone, strict=True):
        widths = list(stage.widths)
        kernels = list(stage.kernels)
        if rates.depth > 0 and len(stage_space.depths) > 1 and rng.random() < rates.depth:
            new_depth = rng.choice([d for d in stage_space.depths if d != stage.depth])
            while len(widths) < new_depth:
                w, k = random_layer(stage_space, rng)
                widths.append(w)
                kernels.append(k)
            del widths[new_depth:]
            del kernels[new_depth:]
        for i in range(len(widths)):
            if stage_space.block != "conv" and rng.random() < rates.kernel:
                kernels[i] = random_kernel_set(stage_space.kernels, rng)
            if rng.random() < rates.width:
                widths[i] = rng.choice(stage_space.widths)
        stages.append(StageArch(tuple(widths), tuple(kernels)))
    parts = {}
    for part, levels_space, levels in (("transport", space.transport, arch.transport),
                                       ("decoder", space.decoder, arch.decoder)):
        out = []
        for lv_space, lv in zip(levels_space, levels, strict=True):
            connections = random_connection_set(lv_space, rng) if rng.random() < rates.connection else lv.connections
            kernels = random_kernel_set(lv_space.kernels, rng) if rng.random() < rates.level_kernel else lv.kernels
            out.append(LevelArch(connections, kernels))
        parts[part] = tuple(out)
    return Arch(tuple(stages), parts["transport"], parts["decoder"])


def crossover(parent: Arch, partner: Arch, rng: random.Random, prob: float = 0.2, max_tries: int = 100) -> Arch:
    """Take each backbone stage, transport level and decoder level from `partner` with probability `prob`.

    Redrawn until the child differs from `parent` (as the original), at most `max_tries` times; if the partner
    equals the parent no child can differ and the parent is returned.
    """
    child = parent
    for _ in range(max_tries):
        child = Arch(*(
            tuple(b if rng.random() < prob else a for a, b in zip(mine, theirs, strict=True))
            for mine, theirs in ((parent.backbone, partner.backbone), (parent.transport, partner.transport),
                                 (parent.decoder, partner.decoder))
        ))
        if child != parent:
            return child
    return child

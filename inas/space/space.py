"""The search space as data: one `SearchSpace` object drives sampling, the supernet's max widths, LUT enumeration,
optimiser encodings and validation.

`inas_space()` is the exact space of the original iNAS (docs/design.md §5). `SearchSpace.narrow(...)` restricts it
(fewer widths, depths, kernels, connections) for demos, tests and small devices; every component follows the narrowed
space.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from functools import cached_property
from typing import Any

from inas.errors import BadInputError

STAGE_NAMES: tuple[str, ...] = ("stem", "stage_1", "stage_2", "stage_3", "stage_4", "stage_5", "stage_6", "stage_7")
NUM_LEVELS = 5
# Backbone stage whose last layer's output is pyramid level L (level L has stride 2 ** (L + 1)).
LEVEL_STAGES: tuple[str, ...] = ("stage_1", "stage_2", "stage_3", "stage_5", "stage_7")
LEVEL_NAMES: tuple[str, ...] = tuple(f"level_{i}" for i in range(NUM_LEVELS))


def _nonempty_subsets(items: Sequence[int]) -> tuple[tuple[int, ...], ...]:
    """All non-empty subsets of `items`, each sorted, ordered by size then lexicographically."""
    ordered = sorted(items)
    return tuple(c for n in range(1, len(ordered) + 1) for c in itertools.combinations(ordered, n))


@dataclass(frozen=True)
class StageSpace:
    """Choices of one backbone stage. A layer's kernel set is any non-empty subset of `kernels`."""

    name: str
    block: str  # "conv" (the stem) or "mbconv"
    widths: tuple[int, ...]
    depths: tuple[int, ...]
    kernels: tuple[int, ...]
    expand_ratio: int
    stride: int

    @cached_property
    def kernel_sets(self) -> tuple[tuple[int, ...], ...]:
        if self.block == "conv":
            return ((min(self.kernels),),)
        return _nonempty_subsets(self.kernels)

    @property
    def max_width(self) -> int:
        return max(self.widths)

    @property
    def max_depth(self) -> int:
        return max(self.depths)

    def cardinality(self) -> int:
        """Number of distinct stage configurations: sum over depths d of (|widths| * |kernel sets|) ** d."""
        per_layer = len(self.widths) * len(self.kernel_sets)
        return sum(per_layer**d for d in self.depths)


@dataclass(frozen=True)
class LevelSpace:
    """Choices of one transport or decoder level: a connection set (containing `required`) and a kernel set."""

    part: str  # "transport" or "decoder"
    level: int
    connections: tuple[int, ...]  # candidate source levels
    required: tuple[int, ...]  # always present in the connection set
    kernels: tuple[int, ...]

    @property
    def name(self) -> str:
        return f"level_{self.level}"

    @cached_property
    def connection_sets(self) -> tuple[tuple[int, ...], ...]:
        optional = [c for c in self.connections if c not in self.required]
        sets = []
        for n in range(len(optional) + 1):
            for extra in itertools.combinations(sorted(optional), n):
                sets.append(tuple(sorted(set(self.required) | set(extra))))
        return tuple(sets)

    @cached_property
    def kernel_sets(self) -> tuple[tuple[int, ...], ...]:
        return _nonempty_subsets(self.kernels)

    def cardinality(self) -> int:
        return len(self.connection_sets) * len(self.kernel_sets)


@dataclass(frozen=True)
class SearchSpace:
    """The whole space: eight backbone stages, five transport levels, five decoder levels."""

    stages: tuple[StageSpace, ...]
    transport: tuple[LevelSpace, ...]
    decoder: tuple[LevelSpace, ...]

    def stage(self, name: str) -> StageSpace:
        for stage in self.stages:
            if stage.name == name:
                return stage
        raise KeyError(name)

    @property
    def level_channel_choices(self) -> tuple[tuple[int, ...], ...]:
        """Possible channel counts of each pyramid level (the widths of the tapped stages)."""
        return tuple(self.stage(name).widths for name in LEVEL_STAGES)

    @property
    def max_level_channels(self) -> tuple[int, ...]:
        return tuple(max(c) for c in self.level_channel_choices)

    def cardinality(self) -> int:
        """Exact number of distinct architectures in the space."""
        parts = [s.cardinality() for s in self.stages]
        parts += [lv.cardinality() for lv in self.transport + self.decoder]
        return math.prod(parts)

    def summary(self) -> dict[str, Any]:
        """A plain-data summary (for `space info` and reports)."""
        return {
            "backbone": {
                s.name: {
                    "block": s.block,
                    "widths": list(s.widths),
                    "depths": list(s.depths),
                    "kernels": list(s.kernels),
                    "kernel_sets": len(s.kernel_sets),
                    "expand_ratio": s.expand_ratio,
                    "stride": s.stride,
                    "cardinality": s.cardinality(),
                }
                for s in self.stages
            },
            **{
                part: {
                    lv.name: {
                        "connections": list(lv.connections),
                        "required": list(lv.required),
                        "kernels": list(lv.kernels),
                        "connection_sets": len(lv.connection_sets),
                        "kernel_sets": len(lv.kernel_sets),
                        "cardinality": lv.cardinality(),
                    }
                    for lv in levels
                }
                for part, levels in (("transport", self.transport), ("decoder", self.decoder))
            },
            "cardinality": self.cardinality(),
        }

    def narrow(
        self,
        stages: Mapping[str, Mapping[str, Sequence[int]]] | None = None,
        transport: Mapping[str, Mapping[str, Sequence[int]]] | None = None,
        decoder: Mapping[str, Mapping[str, Sequence[int]]] | None = None,
        *,
        source: str = "space",
    ) -> SearchSpace:
        """A sub-space: for each named stage/level, keep only the listed choices (each must be in this space).

        stages: {"stage_5": {"widths": [...], "depths": [...], "kernels": [...]}}; transport/decoder:
        {"level_0": {"connections": [...], "kernels": [...]}}. Raises BadInputError naming the key otherwise.
        """
        new_stages = list(self.stages)
        for name, choices in (stages or {}).items():
            names = [s.name for s in self.stages]
            if name not in names:
                raise BadInputError(f"unknown stage {name!r}; expected one of {names}", key=f"{source}.stages")
            idx = names.index(name)
            stage = new_stages[idx]
            updates = {}
            for field in ("widths", "depths", "kernels"):
                if field in choices:
                    updates[field] = _subset(choices[field], getattr(stage, field), f"{source}.stages.{name}.{field}")
            unknown = set(choices) - {"widths", "depths", "kernels"}
            if unknown:
                raise BadInputError(
                    f"unknown keys {sorted(unknown)}; expected widths, depths, kernels", key=f"{source}.stages.{name}"
                )
            new_stages[idx] = replace(stage, **updates)
        return SearchSpace(
            stages=tuple(new_stages),
            transport=_narrow_levels(self.transport, transport, f"{source}.transport"),
            decoder=_narrow_levels(self.decoder, decoder, f"{source}.decoder"),
        )


def _subset(values: Sequence[int], allowed: Sequence[int], key: str) -> tuple[int, ...]:
    chosen = tuple(sorted(set(int(v) for v in values)))
    if not chosen:
        raise BadInputError(f"must not be empty; allowed values are {list(allowed)}", key=key)
    bad = [v for v in chosen if v not in allowed]
    if bad:
        raise BadInputError(f"values {bad} are outside the space; allowed values are {list(allowed)}", key=key)
    return chosen


def _narrow_levels(
    levels: tuple[LevelSpace, ...], spec: Mapping[str, Mapping[str, Sequence[int]]] | None, key: str
) -> tuple[LevelSpace, ...]:
    out = list(levels)
    for name, choices in (spec or {}).items():
        if name not in LEVEL_NAMES:
            raise BadInputError(f"unknown level {name!r}; expected one of {list(LEVEL_NAMES)}", key=key)
        idx = LEVEL_NAMES.index(name)
        level = out[idx]
        unknown = set(choices) - {"connections", "kernels"}
        if unknown:
            raise BadInputError(f"unknown keys {sorted(unknown)}; expected connections, kernels", key=f"{key}.{name}")
        updates = {}
        if "connections" in choices:
            conns = _subset(choices["connections"], level.connections, f"{key}.{name}.connections")
            missing = [r for r in level.required if r not in conns]
            if missing:
                raise BadInputError(
                    f"must contain the required levels {list(level.required)} (missing {missing})",
                    key=f"{key}.{name}.connections",
                )
            updates["connections"] = conns
        if "kernels" in choices:
            updates["kernels"] = _subset(choices["kernels"], level.kernels, f"{key}.{name}.kernels")
        out[idx] = replace(level, **updates)
    return tuple(out)


def inas_space() -> SearchSpace:
    """The exact search space of the original iNAS (docs/design.md §5)."""
    all_kernels = (3, 5, 7, 9)
    stages = (
        StageSpace("stem", "conv", (32, 36, 40), (1,), (3,), 1, 2),
        StageSpace("stage_1", "mbconv", (16, 20, 24), (1, 2), (3,), 1, 1),
        StageSpace("stage_2", "mbconv", (24, 28, 32), (2, 3), (3,), 6, 2),
        StageSpace("stage_3", "mbconv", (40, 44, 48), (2, 3), all_kernels, 6, 2),
        StageSpace("stage_4", "mbconv", (80, 84, 88), (2, 3, 4), all_kernels, 6, 2),
        StageSpace("stage_5", "mbconv", tuple(range(112, 129, 4)), (2, 3, 4, 5, 6), all_kernels, 6, 1),
        StageSpace("stage_6", "mbconv", tuple(range(192, 217, 4)), (2, 3, 4, 5, 6), all_kernels, 6, 2),
        StageSpace("stage_7", "mbconv", tuple(range(320, 353, 4)), (1, 2), all_kernels, 6, 1),
    )
    levels = tuple(range(NUM_LEVELS))
    transport = tuple(LevelSpace("transport", lv, levels, (lv,), all_kernels) for lv in levels)
    decoder = tuple(
        LevelSpace("decoder", lv, tuple(range(lv, NUM_LEVELS)), (lv, lv + 1) if lv < NUM_LEVELS - 1 else (lv,),
                   all_kernels)
        for lv in levels
    )
    return SearchSpace(stages=stages, transport=transport, decoder=decoder)

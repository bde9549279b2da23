"""A flat, fixed-length categorical encoding of an Arch for black-box optimisers (Tune, nevergrad).

Each dimension is a categorical choice with `n` options (dimensions with a single option are left out):
per stage its depth, then for every possible layer (up to the max depth) its width and kernel set; per transport
and decoder level its connection set and kernel set. Layers beyond a stage's depth are ignored by `decode`, and
`encode` fills them with 0, so `decode(encode(a)) == a`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from inas.space.arch import Arch, LevelArch, StageArch
from inas.space.space import SearchSpace


@dataclass(frozen=True)
class Dimension:
    name: str  # e.g. "stage_5.depth", "stage_5.layer_2.width", "transport.level_0.connections"
    options: tuple  # the values this dimension chooses between

    @property
    def size(self) -> int:
        return len(self.options)


class ArchEncoding:
    """Encode/decode between Arch and a vector of option indices (one per `dimensions` entry)."""

    def __init__(self, space: SearchSpace) -> None:
        self.space = space
        dims: list[Dimension] = []
        for s in space.stages:
            dims.append(Dimension(f"{s.name}.depth", s.depths))
            for i in range(s.max_depth):
                dims.append(Dimension(f"{s.name}.layer_{i}.width", s.widths))
                dims.append(Dimension(f"{s.name}.layer_{i}.kernels", s.kernel_sets))
        for part, levels in (("transport", space.transport), ("decoder", space.decoder)):
            for lv in levels:
                dims.append(Dimension(f"{part}.{lv.name}.connections", lv.connection_sets))
                dims.append(Dimension(f"{part}.{lv.name}.kernels", lv.kernel_sets))
        self._all_dims = dims
        self.dimensions: tuple[Dimension, ...] = tuple(d for d in dims if d.size > 1)

    def __len__(self) -> int:
        return len(self.dimensions)

    @property
    def sizes(self) -> tuple[int, ...]:
        return tuple(d.size for d in self.dimensions)

    def encode(self, arch: Arch) -> list[int]:
        """Arch -> option indices (layers beyond the depth encoded as 0)."""
        values: dict[str, object] = {}
        for s_space, s in zip(self.space.stages, arch.backbone, strict=True):
            values[f"{s_space.name}.depth"] = s.depth
            for i in range(s.depth):
                values[f"{s_space.name}.layer_{i}.width"] = s.widths[i]
                values[f"{s_space.name}.layer_{i}.kernels"] = s.kernels[i]
        for part, levels_space, levels in (("transport", self.space.transport, arch.transport),
                                           ("decoder", self.space.decoder, arch.decoder)):
            for lv_space, lv in zip(levels_space, levels, strict=True):
                values[f"{part}.{lv_space.name}.connections"] = lv.connections
                values[f"{part}.{lv_space.name}.kernels"] = lv.kernels
        out = []
        for d in self.dimensions:
            value = values.get(d.name)
            out.append(d.options.index(value) if value is not None else 0)
        return out

    def decode(self, indices: Sequence[int]) -> Arch:
        """Option indices -> Arch. Raises ValueError if the length or any index is out of range."""
        if len(indices) != len(self.dimensions):
            raise ValueError(f"expected {len(self.dimensions)} indices, got {len(indices)}")
        for d, i in zip(self.dimensions, indices, strict=True):
            if not 0 <= int(i) < d.size:
                raise ValueError(f"{d.name}: index {i} outside 0..{d.size - 1}")
        return self._build({d.name: d.options[int(i)] for d, i in zip(self.dimensions, indices, strict=True)})

    def decode_repair(self, values: Sequence[float]) -> Arch:
        """Any vector -> a valid Arch: each value is rounded and clipped into its dimension's index range."""
        if len(values) != len(self.dimensions):
            raise ValueError(f"expected {len(self.dimensions)} values, got {len(values)}")
        indices = []
        for d, v in zip(self.dimensions, values, strict=True):
            v = float(v)
            idx = 0 if math.isnan(v) else int(min(max(round(v), 0), d.size - 1))
            indices.append(idx)
        return self.decode(indices)

    def decode_unit(self, values: Sequence[float]) -> Arch:
        """A vector in [0, 1]^D -> Arch: value x picks option floor(x * n) (clipped), for continuous optimisers."""
        if len(values) != len(self.dimensions):
            raise ValueError(f"expected {len(self.dimensions)} values, got {len(values)}")
        indices = []
        for d, v in zip(self.dimensions, values, strict=True):
            v = 0.0 if math.isnan(float(v)) else float(v)
            indices.append(int(min(max(math.floor(v * d.size), 0), d.size - 1)))
        return self.decode(indices)

    def _build(self, chosen: dict[str, object]) -> Arch:
        def get(name: str, dim_options: tuple) -> object:
            return chosen[name] if name in chosen else dim_options[0]

        options = {d.name: d.options for d in self._all_dims}
        stages = []
        for s in self.space.stages:
            depth = get(f"{s.name}.depth", options[f"{s.name}.depth"])
            widths = tuple(get(f"{s.name}.layer_{i}.width", options[f"{s.name}.layer_{i}.width"]) for i in range(depth))
            kernels = tuple(get(f"{s.name}.layer_{i}.kernels", options[f"{s.name}.layer_{i}.kernels"])
                            for i in range(depth))
            stages.append(StageArch(widths, kernels))
        parts = {}
        for part, levels in (("transport", self.space.transport), ("decoder", self.space.decoder)):
            parts[part] = tuple(
                LevelArch(get(f"{part}.{lv.name}.connections", options[f"{part}.{lv.name}.connections"]),
                          get(f"{part}.{lv.name}.kernels", options[f"{part}.{lv.name}.kernels"]))
                for lv in levels
            )
        return Arch(tuple(stages), parts["transport"], parts["decoder"])

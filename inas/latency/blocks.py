"""Latency blocks: every distinct block shape a sub-network of a (possibly narrowed) space can contain
(docs/design.md §10).

A block is keyed by its shape only (`BlockKey`), never by where it sits, so a stage_5 first layer and a stage_4 later
layer with the same shape are one block. Kinds, for an input of H x W pixels and level L at H/2^(L+1) x W/2^(L+1):

| kind                 | what runs                                       | in -> out channels | other key fields     |
|----------------------|-------------------------------------------------|--------------------|----------------------|
| `stem`               | 3x3 conv stride 2, BN, SiLU                     | 3 -> stem width    | stride 2, kernel 3   |
| `mbconv`             | MBConv layer (SMSU folded to one k x k conv)    | prev -> width      | stride, kernel, exp. |
| `transport_identity` | branch j == L (no operation in the network)     | C_L -> C_L         |                      |
| `transport_up`       | branch j > L: 1x1 conv, BN, bilinear x2^(j-L)   | C_j -> C_L         |                      |
| `transport_down`     | branch j < L: maxpool 2^(L-j), 1x1 conv, BN     | C_j -> C_L         | stride 2^(L-j)       |
| `transport_fusion`   | mean of n inputs, residual SMSU/1x1 pair block  | C_L -> C_L         | kernel, fusion = n   |
| `decoder_identity`   | branch j == L (no operation)                    | C_L -> C_L         |                      |
| `decoder_up`         | branch j > L: 1x1 conv, BN, SiLU, bilinear      | C_j -> C_L         |                      |
| `decoder_fusion`     | mean of n inputs, SMSU, 1x1 conv, BN, SiLU      | C_L -> C_L         | kernel, fusion = n   |
| `head`               | level-0 head: 1x1 conv, activation, bilinear x2 | C_0 -> classes     |                      |

A kernel SET folds at inference into one depthwise conv of size max(set), so the key holds `kernel` = max(set).
MBConv layers come in two positions per stage: the first layer (input = any width of the previous stage, stride =
the stage's stride) and later layers (input = any width of this stage, stride 1). Only the level-0 head is a block:
a deployed (eval-mode) network computes no other head. Fields that do not apply are 1 (stride, kernel, expansion,
fusion). Identity branches are blocks too (as in the original's table): timed alone they measure what the runtime
charges to hand a tensor through (a few µs, the per-call cost every isolated block carries); inside a network they
cost nothing, which the fitted correction absorbs (see `inas.latency.predictor`).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, fields

from inas.errors import BadInputError
from inas.space import LEVEL_STAGES, STAGE_NAMES, Arch, SearchSpace

BLOCK_KINDS: tuple[str, ...] = (
    "stem", "mbconv", "transport_identity", "transport_up", "transport_down", "transport_fusion",
    "decoder_identity", "decoder_up", "decoder_fusion", "head",
)
# The groups a block sum is split into for the fitted latency correction (`inas.latency.predictor.Correction`):
# the backbone (stem, MBConv layers, head) as one, every transport and decoder kind on its own. Timed alone, each
# kind pays a call and boundary copies that a compiled whole network fuses away, by a different share per kind (on
# OpenVINO, decoder blocks cost 0.1-0.2 of their stand-alone time inside a network; identity branches nothing).
LATENCY_GROUPS: tuple[str, ...] = (
    "backbone", "transport_identity", "transport_up", "transport_down", "transport_fusion",
    "decoder_identity", "decoder_up", "decoder_fusion",
)
# Finer parts of the same sum: the backbone split by where it runs (the stem, the MBConv layers by the stride of
# their input against the image, the head), the other groups as they are. Runtimes speed the resolutions up by
# different shares (OpenVINO FP32 on the 2026-12-04 AMD tables: one scale per resolution took the Spearman of
# networks timed in a later run from 0.915 to 0.962). LATENCY_PARTS[:len(BACKBONE_PARTS)] sum to "backbone".
MBCONV_STRIDES: tuple[int, ...] = (2, 4, 8, 16, 32)
BACKBONE_PARTS: tuple[str, ...] = ("stem", *(f"mbconv_s{s}" for s in MBCONV_STRIDES), "head")
LATENCY_PARTS: tuple[str, ...] = BACKBONE_PARTS + LATENCY_GROUPS[1:]
# Column order of a block key in the latency table (see inas.latency.table).
KEY_FIELDS: tuple[str, ...] = (
    "kind", "in_channels", "out_channels", "in_h", "in_w", "out_h", "out_w", "stride", "kernel", "expand_ratio",
    "fusion",
)


@dataclass(frozen=True, order=True)
class BlockKey:
    """The shape of one block. Resolutions are of ONE image (the batch is a table column, not part of the key)."""

    kind: str
    in_channels: int
    out_channels: int
    in_h: int
    in_w: int
    out_h: int
    out_w: int
    stride: int = 1
    kernel: int = 1
    expand_ratio: int = 1
    fusion: int = 1

    def __post_init__(self) -> None:
        if self.kind not in BLOCK_KINDS:
            raise ValueError(f"unknown block kind {self.kind!r}; expected one of {list(BLOCK_KINDS)}")

    @property
    def text(self) -> str:
        """Readable canonical form, e.g. `mbconv 40x64x64->48x32x32 s2 k5 e6 n1` (the table's `block` column)."""
        return (f"{self.kind} {self.in_channels}x{self.in_h}x{self.in_w}->{self.out_channels}x{self.out_h}x"
                f"{self.out_w} s{self.stride} k{self.kernel} e{self.expand_ratio} n{self.fusion}")

    def as_tuple(self) -> tuple:
        return tuple(getattr(self, f) for f in KEY_FIELDS)

    def to_row(self) -> dict:
        return asdict(self)

    @classmethod
    def from_row(cls, row: dict) -> BlockKey:
        return cls(**{f.name: (str(row[f.name]) if f.name == "kind" else int(row[f.name])) for f in fields(cls)})


def parse_input_size(size: int | Sequence[int], source: str = "input size") -> tuple[int, int]:
    """(H, W) from a side or an [H, W] pair; both must be positive multiples of 32 (the deepest level is /32)."""
    hw = (int(size), int(size)) if isinstance(size, int) else tuple(int(s) for s in size)
    if len(hw) != 2 or any(s <= 0 or s % 32 for s in hw):
        raise BadInputError(f"expected a side or [H, W] of positive multiples of 32, got {size!r}", key=source)
    return hw  # type: ignore[return-value]


def _div(hw: tuple[int, int], factor: int) -> tuple[int, int]:
    return hw[0] // factor, hw[1] // factor


@dataclass(frozen=True)
class SpaceGeometry:
    """Resolutions of every stage and level of `space` for an input of `input_hw` pixels."""

    input_hw: tuple[int, int]
    stage_in_hw: tuple[tuple[int, int], ...]
    stage_out_hw: tuple[tuple[int, int], ...]
    strides: tuple[int, ...]
    expand_ratios: tuple[int, ...]
    stem_kernel: int

    @classmethod
    def of(cls, space: SearchSpace, input_hw: tuple[int, int]) -> SpaceGeometry:
        if tuple(s.name for s in space.stages) != STAGE_NAMES:
            raise ValueError(f"expected stages {STAGE_NAMES}")
        ins, outs = [], []
        hw = tuple(input_hw)
        for stage in space.stages:
            ins.append(hw)
            hw = _div(hw, stage.stride)
            outs.append(hw)
        return cls(tuple(input_hw), tuple(ins), tuple(outs), tuple(s.stride for s in space.stages),
                   tuple(s.expand_ratio for s in space.stages), 3)

    def level_hw(self, level: int) -> tuple[int, int]:
        return self.stage_out_hw[STAGE_NAMES.index(LEVEL_STAGES[level])]

    # ----- one block each ------------------------------------------------------------------------------------------
    def stem(self, width: int) -> BlockKey:
        (ih, iw), (oh, ow) = self.stage_in_hw[0], self.stage_out_hw[0]
        return BlockKey("stem", 3, width, ih, iw, oh, ow, self.strides[0], self.stem_kernel, 1, 1)

    def mbconv(self, stage: int, first: bool, in_channels: int, width: int, kernel: int) -> BlockKey:
        out_hw = self.stage_out_hw[stage]
        in_hw = self.stage_in_hw[stage] if first else out_hw
        stride = self.strides[stage] if first else 1
        return BlockKey("mbconv", in_channels, width, *in_hw, *out_hw, stride, kernel, self.expand_ratios[stage], 1)

    def branch(self, part: str, source: int, level: int, in_channels: int, out_channels: int) -> BlockKey:
        in_hw, out_hw = self.level_hw(source), self.level_hw(level)
        if source == level:
            return BlockKey(f"{part}_identity", out_channels, out_channels, *in_hw, *out_hw)
        if source > level:
            return BlockKey(f"{part}_up", in_channels, out_channels, *in_hw, *out_hw)
        if part != "transport":
            raise ValueError("decoder branches only come from coarser levels")
        return BlockKey("transport_down", in_channels, out_channels, *in_hw, *out_hw, 2 ** (level - source))

    def fusion(self, part: str, level: int, channels: int, kernel: int, count: int) -> BlockKey:
        hw = self.level_hw(level)
        return BlockKey(f"{part}_fusion", channels, channels, *hw, *hw, 1, kernel, 1, count)

    def head(self, channels: int, num_classes: int) -> BlockKey:
        return BlockKey("head", channels, num_classes, *self.level_hw(0), *self.input_hw)


def _unique(keys: Iterable[BlockKey]) -> list[BlockKey]:
    return list(dict.fromkeys(keys))


def enumerate_blocks(space: SearchSpace, input_hw: tuple[int, int], num_classes: int = 1) -> list[BlockKey]:
    """Every distinct block some sub-network of `space` contains at input `input_hw`, each once, in network order."""
    geo = SpaceGeometry.of(space, input_hw)
    keys: list[BlockKey] = [geo.stem(w) for w in space.stages[0].widths]
    prev_widths = space.stages[0].widths
    for s, stage in enumerate(space.stages[1:], start=1):
        for cin in prev_widths:
            for cout in stage.widths:
                keys += [geo.mbconv(s, True, cin, cout, k) for k in stage.kernels]
        if stage.max_depth > 1:
            for cin in stage.widths:
                for cout in stage.widths:
                    keys += [geo.mbconv(s, False, cin, cout, k) for k in stage.kernels]
        prev_widths = stage.widths
    channels = space.level_channel_choices
    for part, levels in (("transport", space.transport), ("decoder", space.decoder)):
        for lv in levels:
            L = lv.level
            for j in lv.connections:
                for c_out in channels[L]:
                    sources = (c_out,) if j == L else channels[j]
                    keys += [geo.branch(part, j, L, c_in, c_out) for c_in in sources]
            counts = sorted({len(c) for c in lv.connection_sets})
            for c in channels[L]:
                for k in lv.kernels:
                    keys += [geo.fusion(part, L, c, k, n) for n in counts]
    keys += [geo.head(c, num_classes) for c in channels[0]]
    return _unique(keys)


def arch_blocks(arch: Arch, space: SearchSpace, input_hw: tuple[int, int], num_classes: int = 1) -> list[BlockKey]:
    """The blocks of one sub-network, in network order, with repetitions (a block used twice appears twice)."""
    return arch_blocks_geo(arch, SpaceGeometry.of(space, input_hw), num_classes)


def arch_blocks_geo(arch: Arch, geo: SpaceGeometry, num_classes: int = 1) -> list[BlockKey]:
    """`arch_blocks` with a precomputed geometry."""
    stem = arch.backbone[0]
    keys = [geo.stem(stem.widths[0])]
    prev = stem.widths[0]
    for s, stage in enumerate(arch.backbone[1:], start=1):
        for d, (width, kernels) in enumerate(zip(stage.widths, stage.kernels, strict=True)):
            keys.append(geo.mbconv(s, d == 0, prev, width, max(kernels)))
            prev = width
    channels = arch.level_channels
    for part, levels in (("transport", arch.transport), ("decoder", arch.decoder)):
        for L, lv in enumerate(levels):
            keys += [geo.branch(part, j, L, channels[j], channels[L]) for j in lv.connections]
            keys.append(geo.fusion(part, L, channels[L], max(lv.kernels), len(lv.connections)))
    keys.append(geo.head(channels[0], num_classes))
    return keys


def group_of_part(part: str) -> str:
    """The LATENCY_GROUPS member a LATENCY_PARTS part belongs to (the backbone's parts add up to "backbone")."""
    return "backbone" if part in BACKBONE_PARTS else part


def latency_part(key: BlockKey, image_h: int) -> str:
    """The LATENCY_PARTS member a block's latency is summed into; `image_h`: the network's input height. An MBConv
    layer's part is the stride of its input (image_h / in_h, the nearest of MBCONV_STRIDES)."""
    if key.kind != "mbconv":
        return key.kind
    ratio = image_h / max(key.in_h, 1)
    return f"mbconv_s{min(MBCONV_STRIDES, key=lambda s: abs(math.log2(s / ratio)))}"


def count_by_kind(keys: Iterable[BlockKey]) -> dict[str, int]:
    """Number of blocks per kind, in BLOCK_KINDS order (kinds with none left out)."""
    counts = dict.fromkeys(BLOCK_KINDS, 0)
    for k in keys:
        counts[k.kind] += 1
    return {kind: n for kind, n in counts.items() if n}


"""A synthetic search problem with no networks, for tests and searcher comparisons: a deterministic latency built like
a LUT sum (multiply-accumulates of every block at 224x224, as docs/design.md §10.2 keys blocks) and a deterministic
accuracy that weights the choices DIFFERENTLY (multi-scale kernel sets and multi-level connections help accuracy but
cost little latency, early high-resolution width costs much latency and helps little), saturating, so that the
latency/accuracy trade-off is real and a searcher can beat uniform sampling. Nothing here is a measurement.
"""

from __future__ import annotations

import math
from typing import Any

from inas.space import Arch, inas_space
from inas.space.space import NUM_LEVELS

MS_PER_MAC = 2e-8  # ~50 GMAC/s
MS_PER_BLOCK = 0.02  # fixed launch overhead per block
_SPACE = inas_space()  # stage metadata (block type, stride, expand ratio, max widths); a narrowed space shares them


def synthetic_latency_breakdown(arch: Arch) -> dict[str, float]:
    """Milliseconds per part (stage names, "transport", "decoder"): MACs of each block x MS_PER_MAC + overhead."""
    out: dict[str, float] = {}
    res, inc = 224, 3
    for stage_space, stage in zip(_SPACE.stages, arch.backbone, strict=True):
        ms = 0.0
        for i, (width, kernels) in enumerate(zip(stage.widths, stage.kernels, strict=True)):
            stride = stage_space.stride if i == 0 else 1
            res_out = res // stride
            k = max(kernels)
            if stage_space.block == "conv":
                macs = res_out**2 * k * k * inc * width
            else:
                hidden = inc * stage_space.expand_ratio
                expand = res**2 * inc * hidden if stage_space.expand_ratio > 1 else 0
                macs = expand + res_out**2 * hidden * k * k + res_out**2 * hidden * width
            ms += macs * MS_PER_MAC + MS_PER_BLOCK
            res, inc = res_out, width
        out[stage_space.name] = ms
    channels = arch.level_channels
    for part, levels in (("transport", arch.transport), ("decoder", arch.decoder)):
        ms = 0.0
        for lv, level in enumerate(levels):
            res = 112 >> lv
            c = channels[lv]
            k = max(level.kernels)
            for j in level.connections:
                if j != lv:
                    ms += (112 >> min(j, lv)) ** 2 * channels[j] * c * MS_PER_MAC + MS_PER_BLOCK
            convs = 2 if part == "transport" else 1
            ms += convs * (res**2 * c * k * k + res**2 * c * c) * MS_PER_MAC + MS_PER_BLOCK
        if part == "decoder":
            ms += 224**2 * channels[0] * MS_PER_MAC
        out[part] = ms
    return out


def synthetic_latency_ms(arch: Arch) -> float:
    """Total synthetic latency in ms (sum of the breakdown)."""
    return float(sum(synthetic_latency_breakdown(arch).values()))


# Accuracy "capacity" weights per backbone stage: deep, low-resolution stages matter most.
_STAGE_WEIGHT = {"stem": 0.1, "stage_1": 0.1, "stage_2": 0.2, "stage_3": 0.6, "stage_4": 1.0, "stage_5": 1.4,
                 "stage_6": 1.2, "stage_7": 0.8}


def synthetic_accuracy(arch: Arch) -> float:
    """A max-F-measure-like score in [0.3, 0.95): saturating in a capacity that rewards depth and width of the deep
    stages, kernel-set diversity (number of kernels, which latency ignores) and multi-level connections."""
    capacity = 0.0
    for stage_space, stage in zip(_SPACE.stages, arch.backbone, strict=True):
        weight = _STAGE_WEIGHT[stage_space.name]
        for width, kernels in zip(stage.widths, stage.kernels, strict=True):
            rel_width = width / stage_space.max_width
            capacity += weight * (0.6 * rel_width + 0.25 * len(kernels) + 0.1 * max(kernels) / 9)
    for lv in range(NUM_LEVELS):
        capacity += 0.5 * len(arch.transport[lv].connections) + 0.35 * len(arch.transport[lv].kernels)
        capacity += 0.4 * len(arch.decoder[lv].connections) + 0.3 * len(arch.decoder[lv].kernels)
    return 0.3 + 0.65 * (1.0 - math.exp(-max(capacity - 10.0, 0.0) / 25.0))


def synthetic_result(arch: Arch) -> dict[str, float]:
    """The `tell` payload of the synthetic problem: {"max_fmeasure": ..., "latency_ms": ...}."""
    return {"max_fmeasure": synthetic_accuracy(arch), "latency_ms": synthetic_latency_ms(arch)}


def ask_tell(searcher: Any, n: int) -> list[str]:
    """Sequential ask/tell of `searcher` n times on the synthetic problem; the asked arch ids (each ask must give an
    arch)."""
    ids: list[str] = []
    for _ in range(n):
        arch = searcher.ask()
        assert arch is not None, f"ask {len(ids) + 1} of {n} gave no arch"
        ids.append(arch.arch_id)
        searcher.tell(arch, synthetic_result(arch))
    return ids

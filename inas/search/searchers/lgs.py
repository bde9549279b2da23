"""Latency-group sampler (LGS, docs/design.md §9.2): draws architectures whose latency falls in a chosen latency group,
so an initial population can be spread evenly over the latency range.

Faithful to the original: an arch is built part by part (stem, stage_1 .. stage_7, then the five transport levels
together, then the five decoder levels together). For each part, its latency range [lo, hi] is the latency of the
part's all-min and all-max versions given what was already sampled (the previous stage's channels, the level
channels), and uniform draws of the part are repeated until the part's latency falls in group g of that range.
Every `relax_every` (100) failed draws the grid coarsens, G = groups // ceil(tries / relax_every) with the target
fraction p = g / groups fixed (the original's relaxation).

Part latency comes from one of two sources:
- `part_latency_fn(arch) -> {part: ms}` (keys STAGE_NAMES + "transport" + "decoder", e.g. the LUT predictor's
  breakdown): exactly the original's per-stage / transport / decoder latency.
- otherwise the whole-arch `latency_fn` of the partial arch whose not-yet-sampled parts are at their minimum. The
  part's [lo, hi] are computed the same way, so the constant rest cancels; the difference to the original is that a
  part's "latency" then also includes its effect on later parts (the next stage's first layer sees its output
  channels, the transport/decoder see the level channels).

Differences from the original (documented fixes):
- transport and decoder draws relax like the backbone (the original never relaxes them and can spin,
  docs/design.md §13.2);
- every part is bounded: after `max_part_tries` draws, the draw closest to the target window is taken and counted
  in `stats["part_fallbacks"]`; the grid never goes below one group (the original divides by zero after 1000);
- with `max_latency_ms` the grid spans [min arch latency, max_latency_ms] instead of [min, max arch latency]: the
  target window of group g is scaled by (max_latency_ms - min) / (max - min).
`sample_accepted` adds whole-arch acceptance (dedup, constraints) with bounded redraws and a fall back to the
nearest groups, counted in `stats["group_fallbacks"]`. Added: it offers the two ends of the latency range first, the
space's smallest arch for group 0 and its largest for the top group (when within `max_latency_ms`); once asked they
are rejected as duplicates and the group's draws follow. Part-wise draws almost never produce them (in the demo
league the fastest LGS draw of 16 was 5.06-5.47 ms against 5.03 ms for the smallest network), so without them every
LGS-initialised front stopped short of both ends (counted in `stats["ends_offered"]`).
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Mapping
from dataclasses import replace

from inas.space import Arch, SearchSpace, sample_max, sample_min
from inas.space.sampling import random_level, random_stage

PartLatencyFn = Callable[[Arch], Mapping[str, float]]
PART_NAMES_EXTRA = ("transport", "decoder")


class LatencyGroupSampler:
    """Sample archs in latency group g (0 = fastest) of `groups` equal bins of [min_latency_ms, max_latency_ms]."""

    def __init__(self, space: SearchSpace, latency_fn: Callable[[Arch], float], groups: int = 10, *,
                 part_latency_fn: PartLatencyFn | None = None, max_latency_ms: float | None = None,
                 relax_every: int = 100, max_part_tries: int = 1000) -> None:
        if groups < 1:
            raise ValueError(f"groups must be >= 1, got {groups}")
        self.space = space
        self.latency_fn = latency_fn
        self.part_latency_fn = part_latency_fn
        self.groups = groups
        self.relax_every = relax_every
        self.max_part_tries = max_part_tries
        self._min_arch = sample_min(space)
        self._max_arch = sample_max(space)
        self.min_latency_ms = float(latency_fn(self._min_arch))
        self.space_max_latency_ms = float(latency_fn(self._max_arch))
        top = self.space_max_latency_ms if max_latency_ms is None else min(float(max_latency_ms),
                                                                          self.space_max_latency_ms)
        self.max_latency_ms = max(top, self.min_latency_ms)
        full = self.space_max_latency_ms - self.min_latency_ms
        self.scale = (self.max_latency_ms - self.min_latency_ms) / full if full > 0 else 1.0
        self.stats: dict[str, int] = {"part_draws": 0, "part_fallbacks": 0, "group_fallbacks": 0, "ends_offered": 0}

    # ----- groups ----------------------------------------------------------------------------------------------
    def group_of(self, latency_ms: float) -> int:
        """The latency group of a whole arch on the sampler's grid (clamped to 0 .. groups - 1)."""
        width = (self.max_latency_ms - self.min_latency_ms) / self.groups
        if width <= 0:
            return 0
        return int(min(max(math.floor((latency_ms - self.min_latency_ms) / width), 0), self.groups - 1))

    def window(self, group: int, tries: int) -> tuple[float, float]:
        """Target fraction window [lo, hi) of a part's latency range for `group` after `tries` draws."""
        coarse = max(1, self.groups // math.ceil(tries / self.relax_every))
        j = math.floor(coarse * group / self.groups)
        return j / coarse * self.scale, (j + 1) / coarse * self.scale

    def end_of(self, group: int) -> Arch | None:
        """The space's smallest arch for group 0, its largest for the top group (None when that is beyond the grid,
        i.e. above `max_latency_ms`); None for the groups in between."""
        if group == 0:
            return self._min_arch
        if group == self.groups - 1 and self.space_max_latency_ms <= self.max_latency_ms:
            return self._max_arch
        return None

    # ----- sampling --------------------------------------------------------------------------------------------
    def sample(self, group: int, rng: random.Random) -> Arch:
        """One arch drawn part by part in `group` (no dedup, no constraints)."""
        if not 0 <= group < self.groups:
            raise ValueError(f"group must be in 0..{self.groups - 1}, got {group}")
        arch = self._min_arch
        for i, stage_space in enumerate(self.space.stages):
            def build(stage, i=i, base=arch):
                backbone = list(base.backbone)
                backbone[i] = stage
                return replace(base, backbone=tuple(backbone))

            stage = self._sample_part(stage_space.name, build, self._min_arch.backbone[i],
                                      self._max_arch.backbone[i], lambda s=stage_space: random_stage(s, rng), group)
            arch = build(stage)
        transport = self._sample_part(
            "transport", lambda t, base=arch: replace(base, transport=t), self._min_arch.transport,
            self._max_arch.transport, lambda: tuple(random_level(lv, rng) for lv in self.space.transport), group)
        arch = replace(arch, transport=transport)
        decoder = self._sample_part(
            "decoder", lambda d, base=arch: replace(base, decoder=d), self._min_arch.decoder,
            self._max_arch.decoder, lambda: tuple(random_level(lv, rng) for lv in self.space.decoder), group)
        return replace(arch, decoder=decoder)

    def _part_latency(self, arch: Arch, part: str) -> float:
        if self.part_latency_fn is not None:
            return float(self.part_latency_fn(arch)[part])
        return float(self.latency_fn(arch))

    def _sample_part(self, part: str, build: Callable, min_value, max_value, draw: Callable, group: int):
        lo = self._part_latency(build(min_value), part)
        hi = self._part_latency(build(max_value), part)
        best, best_gap = None, math.inf
        seen: dict = {}  # part value -> latency (parts with few choices, like the stem, repeat often)
        for tries in range(1, self.max_part_tries + 1):
            value = draw()
            self.stats["part_draws"] += 1
            if hi <= lo:
                return value
            if value not in seen:
                seen[value] = self._part_latency(build(value), part)
            frac = (seen[value] - lo) / (hi - lo)
            w_lo, w_hi = self.window(group, tries)
            top = w_hi >= self.scale - 1e-12  # the top group also takes frac == its upper edge (grp == G -> G - 1)
            if w_lo <= frac < w_hi or (top and w_lo <= frac <= w_hi + 1e-9):
                return value
            f_lo, f_hi = self.window(group, 1)
            gap = max(f_lo - frac, frac - f_hi, 0.0)
            if gap < best_gap:
                best, best_gap = value, gap
        self.stats["part_fallbacks"] += 1
        return best

    def sample_accepted(self, group: int, rng: random.Random, reject: Callable[[Arch], str | None],
                        tries_per_group: int = 20, max_groups: int | None = None
                        ) -> tuple[Arch | None, int, dict[str, int]]:
        """Draw in `group` until `reject(arch)` returns None (a reason string rejects the draw), at most
        `tries_per_group` draws per group, offering the group's end of the latency range first (`end_of`); then the
        nearest groups (g-1, g+1, g-2, ...; at most `max_groups` groups in all) are tried, counted in
        `stats["group_fallbacks"]`. Returns (arch or None, the group it was drawn in, counts of rejection reasons)."""
        reasons: dict[str, int] = {}
        end = self.end_of(group)
        if end is not None and reject(end) is None:
            self.stats["ends_offered"] += 1
            return end, group, reasons
        order = sorted(range(self.groups), key=lambda g: (abs(g - group), g))[:max_groups]
        for g in order:
            for _ in range(tries_per_group):
                arch = self.sample(g, rng)
                reason = reject(arch)
                if reason is None:
                    if g != group:
                        self.stats["group_fallbacks"] += 1
                    return arch, g, reasons
                reasons[reason] = reasons.get(reason, 0) + 1
        return None, group, reasons

"""Latency-group sampler and the evolution's parent selection (select_pareto_frontier), on the synthetic latency."""

from __future__ import annotations

import random
from collections import Counter

import numpy as np
import pytest

from inas.search.searchers.lgs import LatencyGroupSampler
from inas.search.searchers.selection import latency_groups, pareto_front_2d, select_pareto_frontier
from inas.search.testing import synthetic_latency_breakdown, synthetic_latency_ms
from inas.space import inas_space, sample_max, sample_min, sample_uniform, validate_arch


@pytest.fixture(scope="module")
def space():
    return inas_space()


def group_counts(sampler: LatencyGroupSampler, archs) -> list[int]:
    counts = Counter(sampler.group_of(synthetic_latency_ms(a)) for a in archs)
    return [counts.get(g, 0) for g in range(sampler.groups)]


@pytest.mark.parametrize("part_latency", [None, synthetic_latency_breakdown], ids=["whole-arch", "per-part"])
def test_lgs_spreads_over_every_latency_group(space, part_latency):
    sampler = LatencyGroupSampler(space, synthetic_latency_ms, groups=5, part_latency_fn=part_latency)
    rng = random.Random(0)
    archs = [sampler.sample(i % 5, rng) for i in range(50)]
    for arch in archs:
        validate_arch(arch, space)
    counts = group_counts(sampler, archs)
    assert min(counts) >= 3 and max(counts) <= 20, counts  # 10 expected per group
    assert sampler.stats["part_fallbacks"] == 0
    # uniform sampling concentrates in the middle (sum of many parts): the same check fails for it
    uniform = [sample_uniform(space, rng) for _ in range(50)]
    assert min(group_counts(sampler, uniform)) < 3


def test_lgs_grid_and_relaxation(space):
    sampler = LatencyGroupSampler(space, synthetic_latency_ms, groups=10)
    assert sampler.min_latency_ms == pytest.approx(synthetic_latency_ms(sample_min(space)))
    assert sampler.max_latency_ms == pytest.approx(synthetic_latency_ms(sample_max(space)))
    assert sampler.group_of(sampler.min_latency_ms) == 0
    assert sampler.group_of(sampler.max_latency_ms) == 9  # the top edge belongs to the last group
    assert sampler.group_of(sampler.min_latency_ms - 1) == 0
    # original relaxation G = groups // ceil(tries / 100) with p = g / groups fixed
    assert sampler.window(7, 1) == pytest.approx((0.7, 0.8))
    assert sampler.window(7, 150) == pytest.approx((0.6, 0.8))  # G = 5
    assert sampler.window(7, 250) == pytest.approx((2 / 3, 1.0))  # G = 3
    assert sampler.window(7, 10_000) == pytest.approx((0.0, 1.0))  # never below one group


def test_lgs_max_latency_scales_the_grid(space):
    lo = synthetic_latency_ms(sample_min(space))
    hi = synthetic_latency_ms(sample_max(space))
    cap = lo + 0.5 * (hi - lo)
    sampler = LatencyGroupSampler(space, synthetic_latency_ms, groups=4, max_latency_ms=cap)
    assert sampler.max_latency_ms == pytest.approx(cap) and sampler.scale == pytest.approx(0.5)
    rng = random.Random(1)
    latencies = [synthetic_latency_ms(sampler.sample(g, rng)) for g in range(4) for _ in range(5)]
    assert sum(lat <= cap for lat in latencies) >= 18  # nearly all under the cap (per-part windows are scaled)


def test_lgs_part_draws_are_bounded(space):
    # The stem has 3 widths, so most of 10 fine groups are unreachable for it; without relaxation and with 5 draws
    # per part the sampler must give up on such parts, take the closest draw and count it.
    sampler = LatencyGroupSampler(space, synthetic_latency_ms, groups=10, relax_every=10**6, max_part_tries=5)
    rng = random.Random(0)
    for g in range(10):
        validate_arch(sampler.sample(g, rng), space)
    assert sampler.stats["part_fallbacks"] > 0
    assert sampler.stats["part_draws"] <= 10 * 10 * 5


def test_lgs_sample_accepted_falls_back_to_nearest_group(space):
    sampler = LatencyGroupSampler(space, synthetic_latency_ms, groups=5)
    rng = random.Random(0)

    def reject(arch):
        return "infeasible" if sampler.group_of(synthetic_latency_ms(arch)) >= 2 else None

    arch, used, reasons = sampler.sample_accepted(4, rng, reject, tries_per_group=3)
    assert arch is not None and sampler.group_of(synthetic_latency_ms(arch)) < 2
    assert used < 4 and sampler.stats["group_fallbacks"] == 1 and reasons["infeasible"] >= 3
    none, _, reasons = sampler.sample_accepted(0, rng, lambda a: "infeasible", tries_per_group=1, max_groups=2)
    assert none is None and reasons == {"infeasible": 2}


def test_lgs_sample_accepted_offers_both_ends_of_the_range_once(space):
    sampler = LatencyGroupSampler(space, synthetic_latency_ms, groups=4)
    rng = random.Random(0)
    asked: set[str] = set()

    def reject(arch):
        return "duplicate" if arch.arch_id in asked else None

    firsts = []
    for group in (0, 3, 0, 3, 1):
        arch, used, _ = sampler.sample_accepted(group, rng, reject)
        asked.add(arch.arch_id)
        firsts.append(arch)
    assert firsts[0] == sample_min(space) and firsts[1] == sample_max(space)
    assert len(asked) == 5 and sampler.stats["ends_offered"] == 2  # then ordinary draws of the groups
    assert sampler.group_of(synthetic_latency_ms(firsts[2])) == 0
    # under a latency cap the largest arch is beyond the grid: the top group only draws
    cap = synthetic_latency_ms(sample_min(space)) + 1.0
    capped = LatencyGroupSampler(space, synthetic_latency_ms, groups=4, max_latency_ms=cap)
    assert capped.end_of(3) is None and capped.end_of(0) == sample_min(space) and capped.end_of(1) is None


def test_pareto_front_2d_ties():
    latency = np.array([1.0, 1.0, 2.0, 3.0, 3.0, 4.0])
    score = np.array([0.5, 0.6, 0.6, 0.7, 0.9, 0.8])
    # equal latency: the better score only (the original kept (1, .5) too); (2, .6) is not better than (1, .6)
    assert pareto_front_2d(latency, score).tolist() == [1, 4]


def test_select_pareto_frontier_quota_per_group():
    rng = np.random.default_rng(0)
    latency = rng.uniform(0, 10, 200)
    score = np.sqrt(latency) + rng.normal(0, 0.3, 200)
    selected = select_pareto_frontier(latency, score, num=20, groups=5, min_latency_ms=0, max_latency_ms=10)
    assert len(selected) == 20 and len(set(selected)) == 20
    groups = latency_groups(latency[selected], 0, 10, 5)
    assert np.bincount(groups, minlength=5).tolist() == [4, 4, 4, 4, 4]
    assert selected == reference_selection(latency, score, 20, 5, 0.0, 10.0)


def reference_selection(latency, score, num, groups, lo, hi):
    """docs/design.md §9.3 select_pareto_frontier written out with plain lists (ties by descending score)."""
    quota = [num // groups] * groups
    pool = list(range(len(latency)))
    selected = []
    while len(selected) < num:
        front, best = [], -np.inf
        for i in sorted(pool, key=lambda i: (latency[i], -score[i])):
            if score[i] > best:
                front.append(i)
                best = score[i]
        for i in front:
            pool.remove(i)
            g = min(int((latency[i] - lo) / ((hi - lo) / groups)), groups - 1)
            if quota[g] > 0:
                selected.append(i)
                quota[g] -= 1
                if len(selected) == num:
                    break
    return selected


def test_select_pareto_frontier_with_sparse_groups():
    # every candidate sits in group 0 of 10: the original would loop on an empty pool; here the quota pass takes
    # 1 and the second pass fills up, best fronts first.
    latency = np.linspace(0, 0.5, 30)
    score = np.linspace(0, 1, 30)  # all on one front
    selected = select_pareto_frontier(latency, score, num=12, groups=10, min_latency_ms=0, max_latency_ms=10)
    assert len(selected) == 12 and len(set(selected)) == 12
    assert select_pareto_frontier(latency[:5], score[:5], num=12, groups=10, min_latency_ms=0,
                                  max_latency_ms=10) == [0, 1, 2, 3, 4]
    assert select_pareto_frontier([], [], num=5, groups=3, min_latency_ms=0, max_latency_ms=1) == []

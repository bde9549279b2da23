"""Block enumeration: exact against sampled architectures, hand counts, non-square inputs, input size checks."""

from __future__ import annotations

import random

import pytest

from inas.errors import BadInputError
from inas.latency import BlockKey, arch_blocks, count_by_kind, enumerate_blocks, parse_input_size
from inas.space import inas_space, sample_max, sample_min, sample_uniform

TINY = {
    "stages": {
        "stem": {"widths": [32, 40]},
        "stage_1": {"widths": [16], "depths": [1, 2]},
        "stage_2": {"widths": [24, 32], "depths": [2]},
        "stage_3": {"widths": [40], "depths": [2], "kernels": [3, 5]},
        "stage_4": {"widths": [80], "depths": [2], "kernels": [3]},
        "stage_5": {"widths": [112, 128], "depths": [2], "kernels": [3]},
        "stage_6": {"widths": [192], "depths": [2], "kernels": [3]},
        "stage_7": {"widths": [320], "depths": [1], "kernels": [3, 7]},
    },
    "transport": {"level_0": {"connections": [0, 1], "kernels": [3]}, "level_3": {"connections": [1, 3, 4]}},
    "decoder": {"level_0": {"connections": [0, 1, 3]}, "level_2": {"kernels": [5]}},
}


@pytest.fixture(scope="module")
def tiny():
    return inas_space().narrow(TINY["stages"], TINY["transport"], TINY["decoder"])


def test_enumeration_is_exactly_the_union_of_sampled_archs(tiny):
    keys = enumerate_blocks(tiny, (64, 96))
    assert len(keys) == len(set(keys))
    rng = random.Random(0)
    seen = set()
    for _ in range(3000):
        blocks = arch_blocks(sample_uniform(tiny, rng), tiny, (64, 96))
        assert set(blocks) <= set(keys)
        seen |= set(blocks)
    for arch in (sample_min(tiny), sample_max(tiny)):
        assert set(arch_blocks(arch, tiny, (64, 96))) <= set(keys)
    assert seen == set(keys)  # nothing enumerated that no sub-network contains


def test_hand_counts_of_the_tiny_space(tiny):
    counts = count_by_kind(enumerate_blocks(tiny, (64, 64)))
    assert counts["stem"] == 2
    # first layers: s1 2x1, s2 1x2, s3 2x1x2 kernels, s4 1, s5 1x2, s6 2x1, s7 1x1x2; later layers (depth > 1):
    # s1 1, s2 2x2, s3 1x2, s4 1, s5 2x2, s6 1 (s7 has depth 1)
    assert counts["mbconv"] == (2 + 2 + 4 + 1 + 2 + 2 + 2) + (1 + 4 + 2 + 1 + 4 + 1)
    assert counts["head"] == 1  # level-0 channels: stage_1 widths (16)
    # transport identity: one per level and level width (1, 2, 1, 2, 1)
    assert counts["transport_identity"] == 7
    # level widths (1, 2, 1, 2, 1); transport level 0 reads {0, 1}, level 3 reads {1, 3, 4}, the others all levels
    # down (j < L): L1 from 0; L2 from 0, 1; L3 from 1; L4 from 0, 1, 2, 3  (source widths x level widths)
    assert counts["transport_down"] == 1 * 2 + (1 * 1 + 2 * 1) + 2 * 2 + (1 + 2 + 1 + 2) * 1
    # up (j > L): L0 from 1; L1 from 2, 3, 4; L2 from 3, 4; L3 from 4
    assert counts["transport_up"] == 2 * 1 + (1 + 2 + 1) * 2 + (2 + 1) * 1 + 1 * 2
    assert counts["transport_fusion"] == 1 * 1 * 2 + 2 * 4 * 5 + 1 * 4 * 5 + 2 * 4 * 3 + 1 * 4 * 5


def test_keys_of_a_non_square_input():
    space = inas_space()
    arch = sample_max(space)
    keys = arch_blocks(arch, space, (64, 128))
    stem = keys[0]
    assert (stem.kind, stem.in_h, stem.in_w, stem.out_h, stem.out_w, stem.stride) == ("stem", 64, 128, 32, 64, 2)
    deepest = [k for k in keys if k.kind == "mbconv"][-1]
    assert (deepest.out_h, deepest.out_w) == (2, 4)
    head = keys[-1]
    assert (head.kind, head.in_h, head.in_w, head.out_h, head.out_w) == ("head", 32, 64, 64, 128)
    down = next(k for k in keys if k.kind == "transport_down" and k.stride == 16)
    assert (down.in_h, down.in_w, down.out_h, down.out_w) == (32, 64, 2, 4)


def test_kernel_is_the_max_of_the_set_and_keys_are_readable():
    space = inas_space()
    arch = sample_max(space)  # every kernel set is {3, 5, 7, 9}
    keys = arch_blocks(arch, space, (320, 320))
    assert {k.kernel for k in keys if k.kind in ("mbconv", "transport_fusion") and k.out_h <= 40} == {9}
    assert {k.kernel for k in keys if k.kind == "mbconv" and k.out_h > 40} == {3}  # stages 1, 2 only have 3
    key = BlockKey("mbconv", 40, 48, 64, 64, 32, 32, 2, 5, 6, 1)
    assert key.text == "mbconv 40x64x64->48x32x32 s2 k5 e6 n1"
    assert BlockKey.from_row(key.to_row()) == key


def test_full_space_counts():
    keys = enumerate_blocks(inas_space(), (320, 320))
    counts = count_by_kind(keys)
    assert len(keys) == 2522
    assert counts["transport_fusion"] == (3 + 3 + 3 + 5 + 9) * 4 * 5
    assert counts["decoder_fusion"] == 4 * (3 * 4 + 3 * 3 + 3 * 2 + 5 * 1 + 9 * 1)
    assert counts["head"] == 3


@pytest.mark.parametrize("bad", [100, [64], [64, 100], [0, 64], [64, 64, 64]])
def test_bad_input_size(bad):
    with pytest.raises(BadInputError, match="multiples of 32"):
        parse_input_size(bad, "lut.input_size")


def test_input_size_forms():
    assert parse_input_size(160) == (160, 160)
    assert parse_input_size([64, 128]) == (64, 128)

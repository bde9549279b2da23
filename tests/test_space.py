"""The search space: cardinality, Arch validation and JSON, sampling distributions, operators, encoding."""

from __future__ import annotations

import itertools
import json
import random
from collections import Counter

import pytest

from inas.space import (
    Arch,
    ArchEncoding,
    ArchError,
    LevelArch,
    MutationRates,
    StageArch,
    arch_from_json,
    crossover,
    inas_space,
    load_arch,
    mutate,
    sample_max,
    sample_min,
    sample_uniform,
    validate_arch,
)
from inas.space.space import STAGE_NAMES


@pytest.fixture(scope="module")
def space():
    return inas_space()


def tiny_space():
    """A space small enough to enumerate every architecture."""
    full = inas_space()
    stages = {name: {"widths": [min(full.stage(name).widths)], "depths": [min(full.stage(name).depths)]}
              for name in STAGE_NAMES}
    stages["stage_1"] = {"widths": [16, 20], "depths": [1, 2]}
    stages["stage_3"] = {"widths": [40], "depths": [2], "kernels": [3, 5]}
    for name in ("stage_4", "stage_5", "stage_6", "stage_7"):
        stages[name]["kernels"] = [3]
    transport = {f"level_{i}": {"connections": [i], "kernels": [3]} for i in range(5)}
    transport["level_2"] = {"connections": [1, 2, 3], "kernels": [3, 5]}
    decoder = {f"level_{i}": {"connections": [i, i + 1] if i < 4 else [4], "kernels": [3]} for i in range(5)}
    decoder["level_0"] = {"connections": [0, 1, 2], "kernels": [3]}
    return full.narrow(stages, transport, decoder)


def enumerate_all(space):
    """Brute force: every Arch of `space`, built without using the cardinality formula."""
    stage_options = []
    for s in space.stages:
        options = []
        for depth in s.depths:
            layer_choices = list(itertools.product(s.widths, s.kernel_sets))
            for layers in itertools.product(layer_choices, repeat=depth):
                options.append(tuple(layers))
        stage_options.append(options)
    level_options = [list(itertools.product(lv.connection_sets, lv.kernel_sets))
                     for lv in space.transport + space.decoder]
    from inas.space import LevelArch, StageArch

    for stages in itertools.product(*stage_options):
        for levels in itertools.product(*level_options):
            yield Arch(
                tuple(StageArch(tuple(w for w, _ in layers), tuple(k for _, k in layers)) for layers in stages),
                tuple(LevelArch(c, k) for c, k in levels[:5]),
                tuple(LevelArch(c, k) for c, k in levels[5:]),
            )


def test_cardinality_of_the_inas_space_matches_spec(space):
    per_stage = [s.cardinality() for s in space.stages]
    assert per_stage[:4] == [3, 12, 36, 93150]
    assert per_stage[-1] == 18360
    assert [lv.cardinality() for lv in space.decoder] == [8 * 15, 4 * 15, 2 * 15, 15, 15]
    assert [lv.cardinality() for lv in space.transport] == [16 * 15] * 5
    assert 8.7e61 < space.cardinality() < 8.9e61


def test_cardinality_agrees_with_brute_force_on_a_reduced_space():
    space = tiny_space()
    archs = list(enumerate_all(space))
    assert len(archs) == space.cardinality()
    assert len({a.arch_id for a in archs}) == len(archs)
    for arch in archs[:: max(1, len(archs) // 50)]:
        validate_arch(arch, space)


def test_json_round_trip_and_stable_id(space):
    rng = random.Random(3)
    for _ in range(20):
        arch = sample_uniform(space, rng)
        again = arch_from_json(arch.to_json(indent=2), space)
        assert again == arch and hash(again) == hash(arch) and again.arch_id == arch.arch_id
    assert sample_min(space).arch_id == sample_min(space).arch_id
    assert len(sample_min(space).arch_id) == 12


def test_canonical_form_sorts_sets():
    space = inas_space()
    doc = sample_max(space).to_dict()
    doc["transport"]["level_1"]["connections"] = [4, 1, 0]
    doc["backbone"]["stage_3"]["kernels"][0] = [9, 3]
    arch = arch_from_json(json.dumps(doc), space)
    assert arch.transport[1].connections == (0, 1, 4)
    assert arch.stage("stage_3").kernels[0] == (3, 9)


def test_integer_code_layout_and_identity(space):
    arch = sample_min(space)
    depths = [s.depth for s in arch.backbone]
    expected = [8, 5, 5, *depths]
    for lv in arch.transport + arch.decoder:
        expected += [sum(1 << c for c in lv.connections), sum(1 << k for k in lv.kernels)]
    for s in arch.backbone:
        for width, kernels in zip(s.widths, s.kernels, strict=True):
            expected += [width, sum(1 << k for k in kernels)]
    assert list(arch.code) == expected
    # lists, unsorted and repeated members give the canonical form and the same code
    messy = Arch(tuple(StageArch(list(s.widths), [list(reversed(k)) * 2 for k in s.kernels]) for s in arch.backbone),
                 tuple(LevelArch(list(lv.connections) * 2, list(lv.kernels)) for lv in arch.transport), arch.decoder)
    assert messy == arch and messy.code == arch.code and messy.backbone[1].kernels == arch.backbone[1].kernels
    rng = random.Random(5)
    archs = {sample_uniform(space, rng) for _ in range(300)}
    assert len({a.code for a in archs}) == len(archs)  # lossless: distinct archs, distinct codes
    odd = Arch(arch.backbone[:1] + (StageArch((16,), ((3, 99),)),) + arch.backbone[2:], arch.transport, arch.decoder)
    assert odd.code[3 + 8 + 20 + 3] == -1  # a member beyond 0..52 has no bit: the mask is -1
    assert odd.backbone[1].kernels == ((3, 99),)


def test_original_saved_format_is_read_with_literal_eval(space, tmp_path):
    arch = sample_uniform(space, random.Random(1))
    cfg = arch.to_original(space)
    # the original stores unsorted connection lists and json.dump(str(cfg))
    cfg["decoder_cfg"]["level_0"]["connection"] = list(reversed(cfg["decoder_cfg"]["level_0"]["connection"]))
    path = tmp_path / "orig.json"
    path.write_text(json.dumps(str(cfg)))
    assert load_arch(path, space) == arch
    evil = tmp_path / "evil.json"
    evil.write_text(json.dumps("__import__('os').system('echo pwned')"))
    with pytest.raises(ArchError, match="evil.json"):
        load_arch(evil, space)


@pytest.mark.parametrize(
    "edit, field, fragment",
    [
        (lambda d: d["backbone"]["stage_5"]["widths"].__setitem__(0, 113), "backbone.stage_5.widths[0]", "113"),
        (lambda d: d["backbone"]["stage_2"]["kernels"].__setitem__(0, [5]), "backbone.stage_2.kernels[0]", "[5]"),
        (lambda d: d["transport"]["level_2"].update(connections=[0, 1]), "transport.level_2.connections", "[0, 1]"),
        (lambda d: d["decoder"]["level_0"].update(connections=[0, 2]), "decoder.level_0.connections", "[0, 2]"),
        (lambda d: d["backbone"]["stage_7"].update(widths=[320] * 3, kernels=[[3]] * 3), "backbone.stage_7.widths",
         "depth 3"),
        (lambda d: d["transport"]["level_0"].update(kernels=[]), "transport.level_0.kernels", "[]"),
        (lambda d: d.pop("decoder"), "<root>", "missing ['decoder']"),
        (lambda d: d["backbone"]["stem"].update(depth=1), "backbone.stem", "unknown ['depth']"),
    ],
)
def test_arch_outside_the_space_names_field_value_and_allowed(space, edit, field, fragment):
    doc = sample_max(space).to_dict()
    edit(doc)
    with pytest.raises(ArchError) as info:
        arch_from_json(json.dumps(doc), space, "x.json")
    message = str(info.value)
    assert message.startswith("x.json: ")
    assert field in message and fragment in message


def test_truncated_json_is_a_clear_error(space):
    text = sample_max(space).to_json()[:50]
    with pytest.raises(ArchError, match="not valid JSON"):
        arch_from_json(text, space, "cut.json")


def test_min_and_max_are_the_extremes(space):
    lo, hi = sample_min(space), sample_max(space)
    assert lo.level_channels == (16, 24, 40, 112, 320)
    assert hi.level_channels == (24, 32, 48, 128, 352)
    assert [s.depth for s in lo.backbone] == [1, 1, 2, 2, 2, 2, 2, 1]
    assert [s.depth for s in hi.backbone] == [1, 2, 3, 3, 4, 6, 6, 2]
    assert [lv.connections for lv in lo.decoder] == [(0, 1), (1, 2), (2, 3), (3, 4), (4,)]
    assert hi.transport[0].connections == (0, 1, 2, 3, 4)
    assert hi.stage("stage_3").kernels[0] == (3, 5, 7, 9)
    assert hi.stage("stage_2").kernels[0] == (3,)


def test_uniform_sampling_is_seeded_and_follows_the_original_distribution(space):
    a = [sample_uniform(space, random.Random(7)) for _ in range(2)]
    assert a[0] == a[1]
    rng = random.Random(0)
    archs = [sample_uniform(space, rng) for _ in range(4000)]
    # kernel-set size is uniform over 1..4 (then a uniform subset), so a singleton set has probability 1/4
    sizes = Counter(len(a.stage("stage_5").kernels[0]) for a in archs)
    for n in range(1, 5):
        assert abs(sizes[n] / len(archs) - 0.25) < 0.03
    # depth uniform over its choices
    depths = Counter(a.stage("stage_5").depth for a in archs)
    assert set(depths) == {2, 3, 4, 5, 6}
    assert max(depths.values()) - min(depths.values()) < 0.06 * len(archs)
    # connections: k ~ U{0..5} distinct draws from 5 candidates, then the own level added
    full = sum(a.transport[2].connections == (0, 1, 2, 3, 4) for a in archs) / len(archs)
    expected_full = 1 / 6 + 1 / 6 * (1 / 5)  # k = 5, or k = 4 leaving out exactly the own level
    assert abs(full - expected_full) < 0.03
    for arch in archs[:200]:
        validate_arch(arch, space)


def test_mutation_and_crossover_stay_in_the_space(space):
    rng = random.Random(11)
    parents = [sample_uniform(space, rng) for _ in range(30)]
    for p, q in zip(parents, parents[1:], strict=False):
        child = crossover(p, q, rng)
        validate_arch(child, space)
        assert child != p
        for part in range(8):
            assert child.backbone[part] in (p.backbone[part], q.backbone[part])
        mutant = mutate(child, space, rng)
        validate_arch(mutant, space)
        assert [s.depth for s in mutant.backbone] == [s.depth for s in child.backbone]  # depth never mutated
    deep = [mutate(p, space, rng, MutationRates(depth=1.0)) for p in parents]
    for d, p in zip(deep, parents, strict=True):
        validate_arch(d, space)
        assert all(a.depth != b.depth for a, b, s in zip(d.backbone, p.backbone, space.stages, strict=True)
                   if len(s.depths) > 1)


def test_crossover_of_identical_parents_terminates(space):
    arch = sample_max(space)
    assert crossover(arch, arch, random.Random(0), max_tries=5) == arch


def test_encoding_round_trip_and_repair(space):
    enc = ArchEncoding(space)
    assert all(d.size > 1 for d in enc.dimensions)
    rng = random.Random(5)
    for _ in range(50):
        arch = sample_uniform(space, rng)
        assert enc.decode(enc.encode(arch)) == arch
    for _ in range(50):
        values = [rng.uniform(-3, 20) for _ in range(len(enc))]
        validate_arch(enc.decode_repair(values), space)
        validate_arch(enc.decode_unit([rng.random() for _ in range(len(enc))]), space)
    with pytest.raises(ValueError):
        enc.decode([0] * (len(enc) - 1))
    with pytest.raises(ValueError):
        enc.decode([10**6] * len(enc))


def test_narrowing_rejects_choices_outside_inas():
    from inas.errors import BadInputError

    with pytest.raises(BadInputError, match=r"space.stages.stage_5.widths.*\[113\]"):
        inas_space().narrow({"stage_5": {"widths": [112, 113]}})
    with pytest.raises(BadInputError, match="required"):
        inas_space().narrow(decoder={"level_0": {"connections": [0, 2]}})
    narrow = inas_space().narrow({"stage_5": {"widths": [112], "depths": [2]}})
    assert narrow.stage("stage_5").max_width == 112
    assert narrow.cardinality() < inas_space().cardinality()

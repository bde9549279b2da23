"""Latency predictor: sums equal hand sums, vectorised equals scalar, missing blocks and bad tables are clear
errors, the fitted correction is applied and only adopted when it helps on held-out networks."""

from __future__ import annotations

import dataclasses
import json
import random
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from fuzz_cases import damage_json_field

from inas.errors import BadInputError
from inas.latency import (
    TABLE_COLUMNS,
    BlockSums,
    Correction,
    Figures,
    LatencyPredictor,
    arch_blocks,
    correction_path,
    enumerate_blocks,
    fit_correction,
    read_table,
    write_table,
)
from inas.latency.blocks import (
    BACKBONE_PARTS,
    LATENCY_GROUPS,
    LATENCY_PARTS,
    BlockKey,
    group_of_part,
    latency_part,
)
from inas.latency.predictor import MAX_CORRECTION_BYTES, CorrectionDocument, block_io_mb
from inas.latency.table import table_from_rows
from inas.latency.validate import judge_saved_corrections
from inas.space import Arch, StageArch, inas_space, sample_max, sample_min, sample_uniform

NARROW = {
    "stage_5": {"widths": [112, 120], "depths": [2, 3, 4]},
    "stage_6": {"widths": [192, 200, 216]},
    "stage_7": {"widths": [320, 352], "kernels": [3, 9]},
}


def fake_table(space, input_hw=(128, 160), device="cpu", seed=0, num_classes=1) -> pd.DataFrame:
    """A table with a random latency per block (distinct values, so any wrong lookup changes the sum)."""
    rng = np.random.default_rng(seed)
    rows = []
    for key in enumerate_blocks(space, input_hw, num_classes):
        ms = float(rng.uniform(0.01, 1.0))
        rows.append({"block": key.text, **key.to_row(), "params": int(rng.integers(0, 100_000)), "device": device,
                     "backend": "onnxruntime", "batch": 1, "threads": 1, "latency_ms": ms, "latency_ms_mean": ms,
                     "latency_ms_std": 0.0, "runs": 5,
                     "torch_version": "t", "onnxruntime_version": "o", "python_version": "p", "host": "h",
                     "measured_at": "2026-01-01T00:00:00+00:00"})
    return table_from_rows(rows)


@pytest.fixture(scope="module")
def space():
    return inas_space().narrow(NARROW)


@pytest.fixture(scope="module")
def table(space):
    return fake_table(space)


@pytest.fixture(scope="module")
def predictor(table, space):
    return LatencyPredictor(table, space)


def hand_sum(table: pd.DataFrame, arch, space) -> float:
    """Sum of table rows looked up by the readable `block` text (independent of the predictor's lookups)."""
    by_text = dict(zip(table["block"], table["latency_ms"], strict=True))
    return sum(by_text[k.text] for k in arch_blocks(arch, space, (128, 160)))


def test_predict_equals_hand_sum(predictor, table, space):
    rng = random.Random(1)
    for arch in [sample_min(space), sample_max(space)] + [sample_uniform(space, rng) for _ in range(20)]:
        assert predictor.predict(arch) == pytest.approx(hand_sum(table, arch, space), rel=1e-12)
    assert predictor.input_hw == (128, 160) and predictor.num_classes == 1 and predictor.device == "cpu"


def test_predict_many_equals_predict(predictor, space):
    rng = random.Random(2)
    archs = [sample_uniform(space, rng) for _ in range(1100)]  # more than one vectorised chunk
    many = predictor.predict_many(archs)
    assert many.shape == (1100,)
    np.testing.assert_allclose(many, [predictor.predict(a) for a in archs], rtol=1e-12)
    sums = predictor.block_sums_many(archs[:50])
    assert list(sums.n_blocks) == [len(arch_blocks(a, space, (128, 160))) for a in archs[:50]]
    params = dict(zip(predictor.table["block"], predictor.table["params"], strict=True))
    np.testing.assert_allclose(sums.params_m, [sum(params[k.text] for k in arch_blocks(a, space, (128, 160))) / 1e6
                                               for a in archs[:50]], rtol=1e-12)
    io = [sum(block_io_mb(k) for k in arch_blocks(a, space, (128, 160))) for a in archs[:50]]
    np.testing.assert_allclose(sums.io, io, rtol=1e-12)  # boundary activations, vectorised = per block
    by_text = dict(zip(predictor.table["block"], predictor.table["latency_ms"], strict=True))
    for arch, row in zip(archs[:50], sums.by_group_ms, strict=True):  # the sum split by group, per block by hand
        expected = dict.fromkeys(LATENCY_GROUPS, 0.0)
        for key in arch_blocks(arch, space, (128, 160)):
            group = "backbone" if key.kind in ("stem", "mbconv", "head") else key.kind
            expected[group] += by_text[key.text]
        np.testing.assert_allclose(row, list(expected.values()), rtol=1e-12)
    np.testing.assert_allclose(sums.by_group_ms.sum(axis=1), sums.latency_ms, rtol=1e-12)
    for arch, row in zip(archs[:50], sums.by_part_ms, strict=True):  # the finer split: backbone by resolution
        expected = dict.fromkeys(LATENCY_PARTS, 0.0)
        for key in arch_blocks(arch, space, (128, 160)):
            expected[latency_part(key, 128)] += by_text[key.text]
        np.testing.assert_allclose(row, list(expected.values()), rtol=1e-12)
        assert row[:len(BACKBONE_PARTS)].all()  # every resolution has layers in every network
    assert predictor.predict_many([]).shape == (0,)


def test_full_space_predictor_handles_narrowed_archs(table, space):
    full = LatencyPredictor(table)  # default: the iNAS space's structure and choices
    rng = random.Random(3)
    archs = [sample_uniform(space, rng) for _ in range(30)]
    np.testing.assert_allclose(full.predict_many(archs), [hand_sum(table, a, space) for a in archs], rtol=1e-12)


def test_missing_block_names_block_and_file(tmp_path, table, space):
    arch = sample_max(space)
    dropped = arch_blocks(arch, space, (128, 160))[5]
    path = tmp_path / "cpu.parquet"
    write_table(path, table[table["block"] != dropped.text])
    predictor = LatencyPredictor(path, space)
    assert predictor.missing_blocks(enumerate_blocks(space, (128, 160))) == [dropped]
    for call in (lambda: predictor.predict(arch), lambda: predictor.predict_many([sample_min(space), arch])):
        with pytest.raises(BadInputError) as info:
            call()
        assert dropped.text in str(info.value) and str(path) in str(info.value)
    # an arch outside the table's space is a missing block too (wider stage_5 than the table holds)
    other = sample_max(inas_space())
    with pytest.raises(BadInputError, match="missing from the latency table"):
        predictor.predict_many([other])


def test_predict_many_scores_odd_archs_like_predict(predictor, space):
    """Archs the vectorised path cannot score (a kernel beyond the space, lists for tuples, a width beyond int64) go
    through the reference path: same value or same error, and the rest of the batch is still scored."""
    rng = random.Random(4)
    good = [sample_uniform(space, rng) for _ in range(5)]
    base = good[0]

    def with_stage(stage_index, stage):
        backbone = list(base.backbone)
        backbone[stage_index] = stage
        return Arch(tuple(backbone), base.transport, base.decoder)

    stage = base.backbone[4]
    listed = with_stage(4, StageArch(list(stage.widths), [list(k) for k in stage.kernels]))
    values = predictor.predict_many(good[:2] + [listed] + good[2:])
    np.testing.assert_allclose(values, [predictor.predict(a) for a in good[:2] + [base] + good[2:]], rtol=1e-12)
    for odd, block in ((with_stage(4, StageArch(stage.widths, ((11,),) * stage.depth)), "k11"),
                       (with_stage(4, StageArch((10**30,) * stage.depth, stage.kernels)), "->" + "1" + "0" * 30)):
        with pytest.raises(BadInputError, match="missing from the latency table") as info:
            predictor.predict_many(good + [odd])
        assert block in str(info.value)


@pytest.mark.parametrize("damage, fragment", [
    (lambda f: f.drop(columns=["latency_ms_std"]), "missing columns ['latency_ms_std']"),
    (lambda f: f.assign(kernel=f["kernel"].astype(str)), "wrong types"),
    (lambda f: f.assign(latency_ms=-1.0), "negative"),
    (lambda f: f.assign(latency_ms=np.where(np.arange(len(f)) == 3, np.inf, f["latency_ms"])), "infinite"),
    (lambda f: f.assign(latency_ms=0.0), "zero"),
    (lambda f: f.assign(latency_ms=True), "wrong types {'latency_ms': 'bool'}"),
    (lambda f: f.assign(params=np.where(np.arange(len(f)) == 2, -5, f["params"])), "params: latency table has values "
     "below 0, e.g. -5"),
    (lambda f: f.assign(in_channels=np.where(np.arange(len(f)) == 1, 0, f["in_channels"])), "in_channels: latency "
     "table has values below 1"),
    (lambda f: pd.concat([f, f.iloc[:1]]), "duplicate blocks"),
    (lambda f: f.assign(threads=np.arange(len(f)) % 2 + 1), "mixes several values of 'threads'"),
])
def test_bad_tables_are_clear_errors(tmp_path, table, damage, fragment):
    path = tmp_path / "bad.parquet"
    damage(table).to_parquet(path, index=False)
    with pytest.raises(BadInputError) as info:
        LatencyPredictor(path)
    assert fragment in str(info.value) and str(path) in str(info.value)


def test_not_parquet_and_missing_file(tmp_path):
    junk = tmp_path / "junk.parquet"
    junk.write_text("not parquet")
    with pytest.raises(BadInputError, match="cannot be read as Parquet"):
        read_table(junk)
    (tmp_path / "folder.parquet").mkdir()
    with pytest.raises(BadInputError, match="expected a latency table .a Parquet file., found a folder"):
        read_table(tmp_path / "folder.parquet")
    (tmp_path / "loop.parquet").symlink_to("loop.parquet")
    with pytest.raises(BadInputError, match="symbolic links"):
        read_table(tmp_path / "loop.parquet")
    with pytest.raises(BadInputError, match="latency table not found"):
        LatencyPredictor(tmp_path / "nope.parquet")


def test_table_round_trip_keeps_schema(tmp_path, table):
    path = tmp_path / "t.parquet"
    write_table(path, table.sample(frac=1.0, random_state=0))
    back = read_table(path)
    assert list(back.columns) == list(TABLE_COLUMNS)
    assert len(back) == len(table) and back["latency_ms"].sum() == pytest.approx(table["latency_ms"].sum())


def test_correction_is_applied_and_loaded_beside_the_table(tmp_path, table, space):
    path = tmp_path / "cpu.parquet"
    write_table(path, table)
    corr = Correction(0.5, 1.2, 0.001, "affine+per_block+params", 50, 10.0, 3.0, "cpu", per_mparam_ms=2.0)
    corr.save(correction_path(path))
    assert correction_path(path).name == "cpu.correction.json"
    pred = LatencyPredictor(path, space)
    raw = LatencyPredictor(path, space, correction=None)
    arch = sample_max(space)
    keys = arch_blocks(arch, space, (128, 160))
    params_m = table.set_index("block").loc[[k.text for k in keys], "params"].sum() / 1e6
    assert pred.predict(arch) == pytest.approx(0.5 + 1.2 * raw.predict(arch) + 0.001 * len(keys) + 2.0 * params_m)
    assert pred.predict_many([arch])[0] == pytest.approx(pred.predict(arch))
    assert pred.predict_many([arch], corrected=False)[0] == pytest.approx(raw.predict(arch))


def test_fit_correction_finds_the_memory_term_and_adopts_only_what_helps():
    rng = np.random.default_rng(0)
    sums = BlockSums(rng.uniform(5, 15, 50), rng.integers(40, 70, 50), rng.uniform(2, 12, 50))
    # in-network time = 1.05 x block sum + 0.3 ms per million weights, 0.5 % noise
    measured = (1.05 * sums.latency_ms + 0.3 * sums.params_m) * (1 + rng.normal(0, 0.005, 50))
    corr, oof = fit_correction(sums, measured, "cpu")
    assert corr is not None and oof is not None and corr.fitted_on == 50 and "params" in corr.model
    assert corr.cv_mape_corrected < 1.0 < corr.cv_mape_raw
    assert corr.per_mparam_ms == pytest.approx(0.3, abs=0.05) and corr.scale == pytest.approx(1.05, abs=0.05)
    assert Figures.of(oof, measured).within_5_pct == 100.0
    # the block sums already predict: no correction can beat them on held-out networks
    exact = BlockSums(sums.latency_ms, sums.n_blocks, rng.uniform(2, 12, 50))
    assert fit_correction(exact, exact.latency_ms.copy()) == (None, None)
    few = BlockSums(sums.latency_ms[:9], sums.n_blocks[:9], sums.params_m[:9])
    assert fit_correction(few, measured[:9]) == (None, None)  # too few networks


def test_fit_correction_finds_the_boundary_activation_term():
    rng = np.random.default_rng(1)
    sums = BlockSums(rng.uniform(40, 80, 50), rng.integers(90, 130, 50), rng.uniform(4, 19, 50),
                     rng.uniform(20, 60, 50))
    # stand-alone blocks copy their activations in and out: the network costs 0.4 ms less per boundary MB
    measured = (2.0 + 0.9 * sums.latency_ms - 0.4 * sums.io) * (1 + rng.normal(0, 0.005, 50))
    corr, _ = fit_correction(sums, measured, "ov")
    assert corr is not None and "io" in corr.model and corr.per_io_mb_ms == pytest.approx(-0.4, abs=0.05)
    assert corr.apply(sums) == pytest.approx(measured, rel=0.03)
    assert BlockSums(sums.latency_ms, sums.n_blocks, sums.params_m).io.tolist() == [0.0] * 50  # not known: 0


def test_fit_correction_scales_block_groups_separately(predictor, space):
    rng = random.Random(4)
    sums = predictor.block_sums_many([sample_uniform(space, rng) for _ in range(60)])
    # inside a network the decoder's blocks keep 20 % of their stand-alone time, identity branches nothing
    share = {g: (0.2 if g.startswith("decoder") else 0.0 if g.endswith("identity") else 1.1) for g in LATENCY_GROUPS}
    noise = 1 + np.random.default_rng(4).normal(0, 0.003, 60)
    measured = (1.0 + sums.by_group_ms @ np.array(list(share.values()))) * noise
    corr, oof = fit_correction(sums, measured, "ov")
    assert corr is not None and oof is not None and corr.model.startswith("per_group")
    assert corr.group_scales["backbone"] == pytest.approx(1.1, rel=0.05)
    assert corr.group_scales["decoder_fusion"] == pytest.approx(0.2, abs=0.1)
    assert corr.apply(sums) == pytest.approx(measured, rel=0.02)
    assert Figures.of(oof, measured).within_5_pct == 100.0
    with pytest.raises(ValueError, match="groups"):  # a group model needs the sums by group
        corr.apply(BlockSums(sums.latency_ms, sums.n_blocks, sums.params_m))


def test_latency_part_is_the_stride_of_an_mbconv_input():
    def mbconv(in_h: int) -> BlockKey:
        return BlockKey("mbconv", 16, 24, in_h, in_h, in_h // 2, in_h // 2, 2, 3, 6, 1)

    assert [latency_part(mbconv(h), 320) for h in (160, 80, 40, 20, 10)] == [
        "mbconv_s2", "mbconv_s4", "mbconv_s8", "mbconv_s16", "mbconv_s32"]
    assert latency_part(mbconv(64), 128) == "mbconv_s2" and latency_part(mbconv(5), 320) == "mbconv_s32"
    stem = BlockKey("stem", 3, 32, 320, 320, 160, 160, 2, 3, 1, 1)
    assert (group_of_part(latency_part(stem, 320)), latency_part(stem, 320)) == ("backbone", "stem")
    up = BlockKey("decoder_up", 40, 24, 20, 20, 40, 40)
    assert group_of_part(latency_part(up, 320)) == latency_part(up, 320) == "decoder_up"


def test_fit_correction_scales_backbone_resolutions_separately(predictor, space):
    rng = random.Random(6)
    sums = predictor.block_sums_many([sample_uniform(space, rng) for _ in range(80)])
    # inside a network the high-resolution layers keep less of their stand-alone time than the low-resolution ones
    share = dict.fromkeys(LATENCY_PARTS, 0.6) | {"stem": 0.3, "mbconv_s2": 0.5, "mbconv_s4": 0.8, "mbconv_s8": 1.2,
                                                 "mbconv_s16": 1.0, "mbconv_s32": 1.4, "head": 0.9}
    noise = 1 + np.random.default_rng(6).normal(0, 0.002, 80)
    measured = (1.0 + sums.by_part_ms @ np.array(list(share.values()))) * noise
    corr, oof = fit_correction(sums, measured, "ov")
    assert corr is not None and oof is not None and corr.model.startswith("per_resolution")
    assert set(corr.group_scales) == set(LATENCY_PARTS)
    for part in ("mbconv_s2", "mbconv_s4", "mbconv_s8", "mbconv_s16"):
        assert corr.group_scales[part] == pytest.approx(share[part], abs=0.15), part
    assert corr.apply(sums) == pytest.approx(measured, rel=0.01)


def test_a_backbone_scale_applies_to_every_backbone_part_unless_a_part_has_its_own(predictor, space):
    rng = random.Random(7)
    sums = predictor.block_sums_many([sample_uniform(space, rng) for _ in range(10)])
    by_group = dict(zip(LATENCY_GROUPS, sums.by_group_ms.T, strict=True))
    by_part = dict(zip(LATENCY_PARTS, sums.by_part_ms.T, strict=True))
    old = Correction(1.0, 0.0, 0.0, "per_group", 50, 30.0, 2.0, "ov",
                     group_scales={"backbone": 1.1, "decoder_fusion": 0.2})  # a file written before the parts
    np.testing.assert_allclose(old.apply(sums), 1.0 + 1.1 * by_group["backbone"] + 0.2 * by_group["decoder_fusion"])
    mixed = Correction(1.0, 0.0, 0.0, "per_group", 50, 30.0, 2.0, "ov", group_scales={"backbone": 1.1, "stem": 0.5})
    np.testing.assert_allclose(mixed.apply(sums), 1.0 + 1.1 * (by_group["backbone"] - by_part["stem"])
                               + 0.5 * by_part["stem"])


def test_correction_file_is_checked(tmp_path):
    path = tmp_path / "ov.correction.json"
    good = Correction(1.0, 0.0, 0.0, "per_group", 50, 30.0, 2.0, "ov", group_scales={"backbone": 1.1})
    good.save(path)
    assert Correction.load(path) == good
    parts = Correction(1.0, 0.0, 0.0, "per_resolution", 50, 30.0, 2.0, "ov", group_scales={"mbconv_s8": 0.9})
    parts.save(tmp_path / "parts.json")
    assert Correction.load(tmp_path / "parts.json") == parts
    doc = json.loads(path.read_text())
    for key, value, expected in [("scale", "fast", "scale"), ("intercept_ms", float("nan"), "intercept_ms"),
                                 ("group_scales", {"neck": 1.0}, "group_scales"),
                                 ("group_scales", [1.0], "group_scales"),
                                 ("group_scales", {"backbone": None}, "group_scales.backbone"),
                                 ("fitted_on", 0, "fitted_on"), ("confirmations", -1, "confirmations"),
                                 ("confirmed_mape_pct", "low", "confirmed_mape_pct")]:
        path.write_text(json.dumps({**doc, key: value}))
        with pytest.raises(BadInputError, match=expected) as info:
            Correction.load(path)
        assert str(path) in str(info.value)
    for raw in (b"\xff\xfe not UTF-8", b"{not json", b" " * (MAX_CORRECTION_BYTES + 1)):
        path.write_bytes(raw)
        with pytest.raises(BadInputError, match="latency correction") as info:
            Correction.load(path)
        assert str(path) in str(info.value)



# (field, damaged value, key path, message). The old hand checks refused every case not marked "new" naming the same
# file and key (pinned here; its messages read e.g. "group_scales: unknown block group 'neck'; expected some of
# [...]"); they accepted the ones marked "new", or refused them without naming the key (or naming its parent).
DAMAGED_CORRECTION = [
    ("format", "inas-search-state", "format",  # new: "not a latency correction file" without the key
     "expected 'inas-latency-correction', got 'inas-search-state'"),
    ("version", 2, "version", "expected 1, got 2"),  # new: the version was not checked
    ("version", True, "version", "expected 1, got True"),  # new
    ("scale", "fast", "scale", "expected a finite number, got 'fast'"),
    ("scale", True, "scale", "expected a finite number, got True"),  # bool for a number
    ("intercept_ms", float("nan"), "intercept_ms", "expected a finite number, got nan"),
    ("per_io_mb_ms", float("-inf"), "per_io_mb_ms", "expected a finite number, got -inf"),
    ("confirmed_mape_pct", float("inf"), "confirmed_mape_pct", "expected a finite number, got inf"),
    ("group_scales", [1.0], "group_scales", "expected an object of block group -> scale, got [1.0]"),
    ("group_scales", {"backbone": "1.1"}, "group_scales.backbone", "expected a finite number, got '1.1'"),
    ("group_scales", {"neck": 1.0}, "group_scales.neck", "expected a block group or part (backbone, "),  # new: key
    ("fitted_on", 0, "fitted_on", "expected an integer >= 1, got 0"),
    ("fitted_on", 50.0, "fitted_on", "expected an integer >= 1, got 50.0"),
    ("confirmations", False, "confirmations", "expected an integer >= 0, got False"),
    ("model", 3, "model", "expected a string, got 3"),  # new: any value was taken
    ("device", None, "device", "expected a string, got None"),  # new
    ("scale", ..., "scale", "missing"),  # ...: the key is left out; new: "malformed latency correction (...)"
    ("format", ..., "format", "missing"),  # new: "not a latency correction file" without the key
    ("version", ..., "version", "missing"),  # new
    ("per_group_ms", 1.0, "per_group_ms", "unknown key"),  # new: an unknown key was ignored
]


@pytest.mark.parametrize(("field", "value", "key", "message"), DAMAGED_CORRECTION)
def test_a_damaged_correction_field_is_refused_naming_the_file_and_key(tmp_path, field, value, key, message):
    path = tmp_path / "ov.correction.json"
    Correction(1.0, 0.0, 0.0, "per_group", 50, 30.0, 2.0, "ov", group_scales={"backbone": 1.1}).save(path)
    damage_json_field(path, field, value)
    with pytest.raises(BadInputError) as info:
        Correction.load(path)
    assert (info.value.path, info.value.key) == (str(path), key)
    assert str(info.value).startswith(f"{path}: {key}: {message}")


def test_the_correction_file_model_holds_every_field_of_a_correction():
    fields = {f.name for f in dataclasses.fields(Correction)}
    assert set(CorrectionDocument.model_fields) == fields | {"format", "version"}


def test_the_corrections_of_the_recorded_benchmarks_load():
    files = sorted(Path(__file__).resolve().parents[1].glob("benchmarks/data/*/*.correction*.json"))
    assert files
    for path in files:
        assert Correction.load(path).device in path.name

def test_a_saved_correction_is_applied_only_if_it_beats_the_block_sum_on_a_later_run():
    rng = np.random.default_rng(5)
    sums = BlockSums(rng.uniform(5, 15, 40), rng.integers(40, 70, 40), rng.uniform(2, 12, 40))
    drift = 1.1  # this run's machine is 10 % slower than during the table's build
    measured = 0.8 * sums.latency_ms * drift * (1 + rng.normal(0, 0.01, 40))  # networks keep 80 % of the sum

    def scale(factor: float, confirmations: int = 0) -> Correction:
        return Correction(0.0, factor, 0.0, "scale", 40, 25.0, 1.0, "cpu", confirmations=confirmations)

    good, close, wrong = scale(0.8, confirmations=2), scale(0.82), scale(1.3)
    role, kept, judged = judge_saved_corrections({"applied": wrong, "candidate": good}, sums, measured, drift)
    assert role == "candidate" and kept.scale == 0.8 and kept.confirmations == 3  # promoted, counted
    assert set(judged) == {"applied", "candidate"} and judged["candidate"].mape_pct < 2.0 < judged["applied"].mape_pct
    assert kept.confirmed_mape_pct == judged["candidate"].mape_pct
    raw = Figures.of(sums.latency_ms * drift, measured).mape_pct
    assert kept.confirmed_raw_mape_pct == pytest.approx(raw)
    role, kept, _ = judge_saved_corrections({"applied": good, "candidate": close}, sums, measured, drift)
    assert role == "applied" and kept.scale == 0.8  # the applied one stays while it predicts better
    assert judge_saved_corrections({"applied": wrong}, sums, measured, drift)[:2] == (None, None)  # worse than sum
    assert judge_saved_corrections({}, sums, measured, drift) == (None, None, {})


def test_table_of_two_input_sizes_is_rejected(space):
    mixed = pd.concat([fake_table(space, (128, 160)), fake_table(space, (64, 64))], ignore_index=True)
    with pytest.raises(BadInputError, match="input size"):
        LatencyPredictor(mixed)


def test_a_table_row_of_unknown_or_null_kind_is_one_line(space, tmp_path):
    """Found by the fuzz suite (INAS_FUZZ_SEED=7): a null `kind` cell was a ValueError traceback in `lut`."""
    frame = fake_table(space, (128, 160))
    frame["kind"] = pd.Series([None] + frame["kind"].tolist()[1:], dtype=object)
    frame.to_parquet(tmp_path / "d.parquet")
    with pytest.raises(BadInputError, match=r"d.parquet: kind: latency table has rows of unknown block kind, e.g. "
                       "(None|nan)"):
        read_table(tmp_path / "d.parquet")

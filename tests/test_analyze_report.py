"""`analyze`: tables (fronts, hypervolume, knee, budgets), files written by the CLI, bad-input errors.

Search outputs are generated here from the synthetic trade-off of inas.search.testing, following the
evaluations.parquet contract of DESIGN.md (two searchers, two devices)."""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from inas.errors import BadInputError
from inas.run import main as run_main
from inas.search.analysis import (
    OVERALL,
    analyze,
    default_budgets_ms,
    front_size_text,
    load_results,
    read_evaluations,
    read_validation,
    validation_summary,
)
from inas.search.pareto import best_under_budget, default_reference, hypervolume, knee_point
from inas.search.testing import synthetic_accuracy, synthetic_latency_ms
from inas.space import inas_space, sample_uniform


def make_evaluations(searcher: str, n: int, seed: int, biased: bool = False, duplicates: int = 0) -> pd.DataFrame:
    """n rows of the evaluations.parquet contract; `biased` keeps the best of 3 samples (a better searcher);
    `duplicates` re-appends that many earlier rows (re-evaluated archs)."""
    space = inas_space()
    rng = random.Random(seed)
    noise = np.random.default_rng(seed)
    rows = []
    for i in range(n):
        candidates = [sample_uniform(space, rng) for _ in range(3 if biased else 1)]
        arch = max(candidates, key=lambda a: synthetic_accuracy(a) / synthetic_latency_ms(a))
        cpu_ms = synthetic_latency_ms(arch)
        rows.append({"arch_id": arch.arch_id, "arch": arch.to_json(), "searcher": searcher,
                     "generation": i // 20 if biased else -1, "max_fmeasure": synthetic_accuracy(arch),
                     "mae": 0.2 - 0.15 * synthetic_accuracy(arch), "latency_ms__cpu": cpu_ms,
                     "latency_ms__gpu": 0.25 * cpu_ms + 0.5 + float(noise.uniform(0.0, 0.3)),
                     "params_m": cpu_ms / 10, "macs_g": cpu_ms / 20, "eval_seconds": 0.01})
    frame = pd.DataFrame(rows)
    if duplicates:
        frame = pd.concat([frame, frame.iloc[:duplicates]], ignore_index=True)
    return frame


def write_result(folder: Path, frame: pd.DataFrame) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    frame.to_parquet(folder / "evaluations.parquet", index=False)
    return folder


def brute_force_front_ids(frame: pd.DataFrame, latency: str, metric: str) -> set[tuple[str, str]]:
    """(searcher, arch_id) of rows no other row dominates (<= latency, >= metric, one strictly)."""
    lat = frame[latency].to_numpy()
    acc = frame[metric].to_numpy()
    keep = set()
    for i in range(len(frame)):
        dominated = np.any((lat <= lat[i]) & (acc >= acc[i]) & ((lat < lat[i]) | (acc > acc[i])))
        if not dominated:
            keep.add((frame["searcher"].iloc[i], frame["arch_id"].iloc[i]))
    return keep


@pytest.fixture(scope="module")
def results(tmp_path_factory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("search")
    first = write_result(root / "run_random", make_evaluations("random", 150, seed=1, duplicates=5))
    second = write_result(root / "run_evolution", make_evaluations("evolution", 150, seed=2, biased=True))
    return first, second


@pytest.fixture(scope="module")
def analysis(results):
    evaluations, dropped = load_results(results)
    return analyze(evaluations, duplicates_dropped=dropped)


def test_load_results_tags_and_deduplicates(results, analysis):
    evaluations = analysis.evaluations
    assert analysis.duplicates_dropped == 5
    assert len(evaluations) == 300  # 305 rows written, the 5 re-evaluated archs dropped
    assert not evaluations.duplicated(["searcher", "arch_id"]).any()
    assert set(evaluations["source"]) == {"run_random", "run_evolution"}
    assert (evaluations.groupby("searcher")["evaluation"].apply(lambda s: list(s) == list(range(1, len(s) + 1)))).all()
    assert analysis.latency_column == "latency_ms__cpu" and analysis.metric == "max_fmeasure"


def test_fronts_are_exactly_the_non_dominated_rows(analysis):
    evaluations = analysis.evaluations
    lat, metric = analysis.latency_column, analysis.metric
    overall = set(zip(analysis.front_overall.searcher, analysis.front_overall.arch_id, strict=True))
    assert overall == brute_force_front_ids(evaluations, lat, metric)
    assert len(overall) == len(analysis.front_overall) >= 3
    for name in ("random", "evolution"):
        front = analysis.front_per_searcher[analysis.front_per_searcher.searcher == name]
        expected = brute_force_front_ids(evaluations[evaluations.searcher == name], lat, metric)
        assert set(zip(front.searcher, front.arch_id, strict=True)) == expected
    assert analysis.front_overall[lat].is_monotonic_increasing
    assert set(analysis.front_devices.columns) >= {"arch_id", "latency_ms__cpu", "latency_ms__gpu", metric}
    assert list(analysis.front_devices.arch_id) == list(analysis.front_overall.arch_id)


def test_hypervolume_table_uses_one_common_reference(analysis):
    evaluations, objectives = analysis.evaluations, analysis.objectives
    reference = default_reference(evaluations, objectives)
    assert analysis.reference == reference
    assert reference[analysis.latency_column] == evaluations[analysis.latency_column].max()
    table = analysis.hypervolume_table.set_index("searcher")
    for name in ("random", "evolution"):
        group = evaluations[evaluations.searcher == name]
        assert table.loc[name, "hypervolume"] == pytest.approx(hypervolume(group, objectives, reference), rel=1e-12)
    assert (table[f"reference_{analysis.latency_column}"] == reference[analysis.latency_column]).all()
    assert (table[f"reference_{analysis.metric}"] == 0.0).all()
    assert table.loc[OVERALL, "hypervolume"] == pytest.approx(hypervolume(evaluations, objectives, reference))
    assert table.loc[OVERALL, "hypervolume"] >= table.drop(OVERALL)["hypervolume"].max() > 0
    assert table.loc["evolution", "hypervolume"] > table.loc["random", "hypervolume"]  # the biased searcher wins


def test_hypervolume_curve_equals_hypervolume_of_each_prefix(analysis):
    evaluations, objectives, reference = analysis.evaluations, analysis.objectives, analysis.reference
    for name in ("random", "evolution"):
        group = evaluations[evaluations.searcher == name]
        curve = analysis.hypervolume_curve[analysis.hypervolume_curve.searcher == name]
        assert list(curve.evaluation) == list(range(1, len(group) + 1))
        assert np.all(np.diff(curve.hypervolume.to_numpy()) >= 0)
        for n in (1, 2, 7, 40, len(group)):
            expected = hypervolume(group.iloc[:n], objectives, reference)
            assert curve.hypervolume.iloc[n - 1] == pytest.approx(expected, rel=1e-12, abs=1e-12)
        final = analysis.hypervolume_table.set_index("searcher").loc[name, "hypervolume"]
        assert curve.hypervolume.iloc[-1] == pytest.approx(final)


def test_knee_and_budgets(analysis):
    evaluations, lat, metric = analysis.evaluations, analysis.latency_column, analysis.metric
    knee = knee_point(evaluations, analysis.objectives)
    assert analysis.knee["arch_id"] == knee["arch_id"] and analysis.knee["searcher"] == knee["searcher"]
    budgets = list(analysis.budgets.budget_ms)
    assert budgets == default_budgets_ms(evaluations[lat])
    assert len(budgets) == 5 and evaluations[lat].min() < budgets[0] < budgets[-1] <= evaluations[lat].max() * 1.01
    for row in analysis.budgets.to_dict("records"):
        fits = evaluations[evaluations[lat] <= row["budget_ms"]]
        assert row[lat] <= row["budget_ms"] and row[metric] == fits[metric].max()
    expected = best_under_budget(evaluations[evaluations.searcher == "random"], metric, lat, budgets)[metric]
    assert list(analysis.budgets_per_searcher["random"]) == list(expected)


def test_other_device_and_explicit_budgets(analysis):
    other = analyze(analysis.evaluations, device="gpu", budgets_ms=[0.1, 5.0])
    assert other.latency_column == "latency_ms__gpu"
    assert other.budgets["arch_id"].isna().iloc[0]  # nothing runs in 0.1 ms
    assert set(zip(other.front_overall.searcher, other.front_overall.arch_id, strict=True)) == \
        brute_force_front_ids(analysis.evaluations, "latency_ms__gpu", "max_fmeasure")
    with pytest.raises(BadInputError, match="devices in the results"):
        analyze(analysis.evaluations, device="tpu")


def test_segmentation_metric_is_detected(tmp_path):
    frame = make_evaluations("random", 30, seed=3).drop(columns=["mae"]).rename(columns={"max_fmeasure": "miou"})
    evaluations, _ = load_results([write_result(tmp_path / "seg", frame)])
    assert analyze(evaluations).metric == "miou"


@pytest.fixture(scope="module")
def cli_run(results, tmp_path_factory):
    out = tmp_path_factory.mktemp("report")
    validation = pd.DataFrame({"arch_id": ["a", "b", "c", "d"], "arch": ["{}"] * 4, "device": ["cpu"] * 2 + ["gpu"] * 2,
                               "predicted_ms": [10.0, 21.0, 3.0, 4.5], "measured_ms": [10.5, 20.0, 3.5, 4.4]})
    validation_path = out.parent / "validation.parquet"
    validation.to_parquet(validation_path, index=False)
    rc = run_main(["analyze", *map(str, results), "-o", str(out), "--budgets", "15,20,25",
                   "--validation", str(validation_path)])
    return rc, out


def test_cli_writes_report_tables_and_plots(cli_run, capsys):
    rc, out = cli_run
    assert rc == 0
    for name in ("front_overall", "front_per_searcher", "front_devices", "hypervolume", "hypervolume_curve",
                 "knee_point", "budgets", "budgets_per_searcher", "evaluations_all", "lut_validation"):
        parquet = pd.read_parquet(out / f"{name}.parquet")
        csv = pd.read_csv(out / f"{name}.csv")
        assert len(parquet) == len(csv) > 0, name
    assert list(pd.read_parquet(out / "budgets.parquet").budget_ms) == [15.0, 20.0, 25.0]
    lut = pd.read_parquet(out / "lut_validation.parquet").set_index("device")
    assert lut.loc["cpu", "mape_pct"] == pytest.approx((0.5 / 10.5 + 1.0 / 20.0) / 2 * 100)
    assert lut.loc["gpu", "within_10pct"] == 0.5
    for png in ("accuracy_vs_latency.png", "hypervolume_vs_evaluations.png", "lut_predicted_vs_measured.png"):
        with Image.open(out / png) as image:
            assert image.format == "PNG" and image.size[0] > 300
    report = (out / "report.md").read_text()
    for link in ("(accuracy_vs_latency.png)", "(hypervolume_vs_evaluations.png)", "(lut_predicted_vs_measured.png)"):
        assert f"]{link}" in report
    front = pd.read_parquet(out / "front_overall.parquet")
    assert all(arch_id in report for arch_id in front.arch_id)
    assert "## Knee point" in report and "## Hypervolume" in report and "| budget_ms |" in report
    assert not list(out.glob(".*.tmp"))  # no temporary files left behind


def test_cli_prints_summary(results, tmp_path, capsys):
    rc = run_main(["analyze", str(results[0]), "-o", str(tmp_path / "r"), "--device", "gpu"])
    printed = capsys.readouterr().out
    assert rc == 0
    assert "overall front:" in printed and "knee point:" in printed and "best under budget" in printed
    assert "latency_ms__gpu" in printed and "random" in printed


def test_missing_evaluations_file_is_bad_input(tmp_path, capsys):
    (tmp_path / "empty_run").mkdir()
    rc = run_main(["analyze", str(tmp_path / "empty_run"), "-o", str(tmp_path / "r")])
    err = capsys.readouterr().err
    assert rc == 2 and "empty_run" in err and "evaluations.parquet" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "r" / "report.md").exists()


def test_missing_columns_are_named(tmp_path, capsys):
    frame = make_evaluations("random", 5, seed=4).drop(columns=["macs_g", "latency_ms__cpu", "latency_ms__gpu"])
    folder = write_result(tmp_path / "broken_run", frame)
    with pytest.raises(BadInputError) as info:
        read_evaluations(folder)
    message = str(info.value)
    assert "broken_run" in message and "macs_g" in message and "latency_ms__<device>" in message
    rc = run_main(["analyze", str(folder), "-o", str(tmp_path / "r")])
    assert rc == 2 and "missing columns" in capsys.readouterr().err
    no_metric = make_evaluations("random", 5, seed=4).drop(columns=["max_fmeasure", "mae"])
    with pytest.raises(BadInputError, match="max_fmeasure and mae .SOD. or miou"):
        read_evaluations(write_result(tmp_path / "no_metric", no_metric))


@pytest.mark.parametrize(("column", "value", "expected"), [
    ("latency_ms__gpu", -2.0, r"latency_ms__gpu: expected a finite number >= 0 or missing in every row, got -2.0"),
    ("max_fmeasure", 1.5, r"max_fmeasure: expected a number in \[0, 1\] or missing in every row, got 1.5 in row 3"),
    ("mae", -0.1, r"mae: expected a number in \[0, 1\]"),
    ("macs_g", -1.0, r"macs_g: expected a finite number >= 0"),
])
def test_values_out_of_range_are_named(tmp_path, capsys, column, value, expected):
    """A negative latency or a metric outside [0, 1] would win the front and skew the hypervolume silently."""
    frame = make_evaluations("random", 5, seed=4)
    frame.loc[3, column] = value
    folder = write_result(tmp_path / "edited_run", frame)
    with pytest.raises(BadInputError, match=expected):
        read_evaluations(folder)
    assert run_main(["analyze", str(folder), "-o", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err
    assert "edited_run" in err and column in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "r").exists()


def test_an_output_path_of_the_wrong_kind_is_refused_before_writing(results, tmp_path, capsys):
    """-o naming a file was a FileExistsError traceback; a folder where report.md goes failed after the tables."""
    (tmp_path / "a_file").write_text("x", encoding="utf-8")
    assert run_main(["analyze", str(results[0]), "-o", str(tmp_path / "a_file"), "--predictor", "none"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "a_file: --out: the output path exists and is a file, not a folder" in err[0]
    (tmp_path / "r" / "report.md").mkdir(parents=True)
    assert run_main(["analyze", str(results[0]), "-o", str(tmp_path / "r"), "--predictor", "none"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "report.md: the output path exists and is a folder, not a file" in err[0]
    assert [p.name for p in (tmp_path / "r").iterdir()] == ["report.md"]  # nothing half-written


def test_bad_options_are_bad_input(results, tmp_path, capsys):
    out = str(tmp_path / "r")
    assert run_main(["analyze", str(results[0]), "-o", out, "--budgets", "5,abc"]) == 2
    assert "--budgets" in capsys.readouterr().err
    assert run_main(["analyze", str(results[0]), "-o", out, "--budgets", "5,-1"]) == 2
    assert run_main(["analyze", str(results[0]), "-o", out, "--device", "tpu"]) == 2
    assert "tpu" in capsys.readouterr().err
    bad_validation = tmp_path / "validation.parquet"
    pd.DataFrame({"arch_id": ["a"], "device": ["cpu"]}).to_parquet(bad_validation)
    assert run_main(["analyze", str(results[0]), "-o", out, "--validation", str(bad_validation)]) == 2
    err = capsys.readouterr().err
    assert "validation.parquet" in err and "predicted_ms" in err and "measured_ms" in err
    seg = make_evaluations("random", 5, seed=5).drop(columns=["mae"]).rename(columns={"max_fmeasure": "miou"})
    write_result(tmp_path / "seg_run", seg)
    assert run_main(["analyze", str(results[0]), str(tmp_path / "seg_run"), "-o", out]) == 2
    assert "different tasks" in capsys.readouterr().err
    assert not Path(out).exists()


def test_folders_with_different_devices_are_joined(tmp_path):
    with_gpu = write_result(tmp_path / "a", make_evaluations("random", 40, seed=6))
    cpu_only = write_result(tmp_path / "b", make_evaluations("evolution", 40, seed=7).drop(columns=["latency_ms__gpu"]))
    evaluations, _ = load_results([with_gpu, cpu_only])
    assert evaluations.loc[evaluations.source == "b", "latency_ms__gpu"].isna().all()
    gpu = analyze(evaluations, device="gpu")
    assert set(gpu.front_overall.searcher) == {"random"}  # rows without a gpu latency take no part
    assert gpu.hypervolume_table.set_index("searcher").loc["evolution", "hypervolume"] == 0.0
    assert set(analyze(evaluations).front_overall.searcher) <= {"random", "evolution"}


def test_front_size_counts_an_arch_found_by_several_searchers_once():
    front = pd.DataFrame({"arch_id": ["a", "b", "b"], "searcher": ["random", "random", "evolution"]})
    assert front_size_text(front) == "2 distinct architectures in 3 rows (one row per searcher that found each)"
    assert front_size_text(front.iloc[:2]) == "2 architectures"


def test_lut_validation_predictions_are_judged_at_the_runs_drift(tmp_path):
    """`predicted_ms` is in the table's time base; `run_drift` (the run's reference over the table's) scales it to
    the run's timings; files without the column (before 2026-12-03) are taken as they are."""
    frame = pd.DataFrame({"arch_id": ["a", "b"], "arch": ["{}"] * 2, "device": ["cpu"] * 2,
                          "predicted_ms": [5.0, 10.0], "measured_ms": [10.0, 20.0], "run_drift": [2.0, 2.0]})
    path = tmp_path / "validation.parquet"
    frame.to_parquet(path, index=False)
    row = validation_summary(read_validation(path)).iloc[0]
    assert row["mape_pct"] == pytest.approx(0.0) and row["within_10pct"] == 1.0
    assert validation_summary(frame.drop(columns="run_drift")).iloc[0]["mape_pct"] == pytest.approx(50.0)
    frame.assign(run_drift=[2.0, float("nan")]).to_parquet(path, index=False)
    with pytest.raises(BadInputError, match="run_drift"):
        read_validation(path)

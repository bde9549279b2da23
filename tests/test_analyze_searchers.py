"""`analyze` on results written the way the driver writes them, by every searcher kind (with their tag columns):
evolution's `lgs_group`, nevergrad's `budget_ms`, ..., in one folder and across folders."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from inas.run import main as run_main
from inas.search import build_searcher, run_searcher
from inas.search.analysis import analyze, load_results
from inas.search.evaluators import EvaluationTable
from inas.search.schema import EVALUATIONS_FILE
from inas.search.testing import synthetic_accuracy, synthetic_latency_ms, synthetic_result
from inas.space import Arch, inas_space

SPACE = inas_space()
DEVICES = ("cpu", "gpu")
PARAMS = {"evolution": {"population_size": 12, "selection_num": 6, "lgs_groups": 3}, "nevergrad": {"num_budgets": 3},
          "random": {}}


def gpu_latency_ms(arch: Arch, cpu_ms: float) -> float:
    """A second device that ranks archs differently: cheap MACs, costly multi-level connections."""
    connections = sum(len(lv.connections) for lv in (*arch.transport, *arch.decoder))
    return 0.2 * cpu_ms + 0.4 * connections


def result_row(arch: Arch, name: str, tags: dict) -> dict:
    """One evaluations.parquet row of the synthetic problem, as the driver builds it."""
    cpu_ms = synthetic_latency_ms(arch)
    accuracy = synthetic_accuracy(arch)
    return {"arch_id": arch.arch_id, "arch": arch.to_json(), "searcher": name, **tags, "max_fmeasure": accuracy,
            "mae": 0.2 - 0.15 * accuracy, "latency_ms__cpu": cpu_ms, "latency_ms__gpu": gpu_latency_ms(arch, cpu_ms),
            "params_m": cpu_ms / 10, "macs_g": cpu_ms / 20, "eval_seconds": 0.01, "cached": False, "trial_id": "t"}


def searcher_table(names: list[str], budget: int, seed: int) -> EvaluationTable:
    """Run each searcher on the synthetic problem; their rows (with tags) in one results table."""
    table = EvaluationTable("sod", [f"latency_ms__{d}" for d in DEVICES])
    for i, name in enumerate(names):
        searcher = run_searcher(build_searcher(name, SPACE, synthetic_latency_ms, budget, seed + i, **PARAMS[name]),
                                synthetic_result)
        for record in searcher.records:
            table.add(result_row(record.arch, name, searcher.tags(record.arch)))
    return table


def write_table(folder: Path, table: EvaluationTable) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    table.save(folder / EVALUATIONS_FILE)
    return folder


@pytest.fixture(scope="module")
def mixed_folder(tmp_path_factory) -> Path:
    return write_table(tmp_path_factory.mktemp("mixed") / "run", searcher_table(["evolution", "nevergrad", "random"],
                                                                                24, seed=3))


def test_nevergrad_tag_does_not_collide_with_the_budget_tables(mixed_folder):
    raw = pd.read_parquet(mixed_folder / EVALUATIONS_FILE)
    assert {"budget_ms", "lgs_group"} <= set(raw.columns)  # the tags that used to collide are really there
    evaluations, _ = load_results([mixed_folder])
    result = analyze(evaluations, budgets_ms=[10.0, 1e9])
    assert list(result.budgets.columns).count("budget_ms") == 1
    assert list(result.budgets["budget_ms"]) == [10.0, 1e9]
    nevergrad = result.evaluations[result.evaluations.searcher == "nevergrad"]
    assert nevergrad["searcher_budget_ms"].notna().all()
    assert (nevergrad["latency_ms__cpu"] <= nevergrad["searcher_budget_ms"] + 1e-9).all()
    assert set(result.hypervolume_table.searcher) == {"evolution", "nevergrad", "random", "(overall)"}


def test_cli_analyze_on_a_mixed_folder_and_across_folders(mixed_folder, tmp_path, capsys):
    only_nevergrad = write_table(tmp_path / "ng", searcher_table(["nevergrad"], 12, seed=9))
    out = tmp_path / "report"
    assert run_main(["analyze", str(mixed_folder), str(only_nevergrad), "-o", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "nevergrad" in printed and "evolution" in printed and "random" in printed
    budgets = pd.read_parquet(out / "budgets.parquet")
    assert "budget_ms" in budgets.columns and "searcher_budget_ms" in budgets.columns
    assert (out / "report.md").is_file()


def brute_force_front(frame: pd.DataFrame, minimised: list[str], maximised: str) -> set[str]:
    points = np.column_stack([frame[c].to_numpy() for c in minimised] + [-frame[maximised].to_numpy()])
    keep = set()
    for i, p in enumerate(points):
        if not np.any(np.all(points <= p, axis=1) & np.any(points < p, axis=1)):
            keep.add(frame["arch_id"].iloc[i])
    return keep


def brute_force_tau(x: np.ndarray, y: np.ndarray) -> float:
    """Kendall tau-b by every pair: (concordant - discordant) / sqrt(pairs untied in x * pairs untied in y)."""
    total = 0.0
    untied_x = untied_y = 0
    for i in range(len(x)):
        for j in range(i + 1, len(x)):
            total += np.sign(x[i] - x[j]) * np.sign(y[i] - y[j])
            untied_x += x[i] != x[j]
            untied_y += y[i] != y[j]
    return total / np.sqrt(untied_x * untied_y)


def test_joint_analysis_over_two_devices(mixed_folder):
    evaluations, _ = load_results([mixed_folder])
    result = analyze(evaluations, devices=["cpu", "gpu"])
    joint = result.joint
    assert result.latency_column == "latency_ms__cpu"  # the 2-D views: the first of the devices
    assert joint.objectives == {"latency_ms__cpu": "min", "latency_ms__gpu": "min", "max_fmeasure": "max"}
    rows = result.evaluations
    assert set(joint.front.arch_id) == brute_force_front(rows, ["latency_ms__cpu", "latency_ms__gpu"], "max_fmeasure")
    # a 2-D front point is never dominated in N-D: every device's 2-D front lies inside the joint front
    assert set(result.front_overall.arch_id) <= set(joint.front.arch_id)
    table = joint.hypervolume_table.set_index("searcher")
    assert table.loc["(overall)", "hypervolume_share"] == 1.0
    assert (table["hypervolume"] <= table.loc["(overall)", "hypervolume"] + 1e-12).all()
    agreement = joint.rank_agreement.set_index(["device_a", "device_b"])
    unique = rows.drop_duplicates("arch_id")
    want = brute_force_tau(unique["latency_ms__cpu"].to_numpy(), unique["latency_ms__gpu"].to_numpy())
    assert agreement.loc[("cpu", "gpu"), "kendall_tau"] == pytest.approx(want)
    assert agreement.loc[("gpu", "cpu"), "kendall_tau"] == pytest.approx(want)
    assert 0 < want < 1  # the two devices really disagree on some pairs
    cpu_front = brute_force_front(unique, ["latency_ms__cpu"], "max_fmeasure")
    gpu_front = brute_force_front(unique, ["latency_ms__gpu"], "max_fmeasure")
    assert agreement.loc[("cpu", "gpu"), "front_a"] == len(cpu_front)
    assert agreement.loc[("cpu", "gpu"), "front_a_on_front_b"] == len(cpu_front & gpu_front)


def test_cli_devices_writes_the_joint_tables(mixed_folder, tmp_path, capsys):
    out = tmp_path / "report"
    assert run_main(["analyze", str(mixed_folder), "-o", str(out), "--devices", "gpu,cpu"]) == 0
    printed = capsys.readouterr().out
    assert "joint front over max_fmeasure and gpu, cpu" in printed and "Kendall tau" in printed
    assert "latency_ms__gpu" in printed.splitlines()[0]  # 2-D views on the first listed device
    for name in ("joint_front", "joint_hypervolume", "joint_hypervolume_curve", "device_rank_agreement"):
        assert len(pd.read_parquet(out / f"{name}.parquet")) > 0, name
    assert "## Joint front over gpu, cpu" in (out / "report.md").read_text()
    for bad in ("cpu,tpu", "cpu,cpu", "cpu,"):
        assert run_main(["analyze", str(mixed_folder), "-o", str(tmp_path / "bad"), "--devices", bad]) == 2
        assert "--devices" in capsys.readouterr().err


def test_predictor_quality_section(mixed_folder, tmp_path, capsys):
    evaluations, _ = load_results([mixed_folder])
    report = analyze(evaluations).predictor
    oof = report.out_of_fold
    assert len(oof) == evaluations.drop_duplicates("arch_id").shape[0] == report.table["samples"].iloc[0]
    row = report.table.iloc[0]
    assert row["kendall_tau"] == pytest.approx(oof["predicted"].corr(oof["measured"], method="kendall"))
    assert row["mae"] == pytest.approx((oof["predicted"] - oof["measured"]).abs().mean())
    assert row["kendall_tau"] > 0.2  # the synthetic metric is learnable from the features
    assert analyze(evaluations.iloc[:9]).predictor is None  # too few archs
    assert analyze(evaluations, predictor_variants=()).predictor is None
    assert analyze(evaluations.assign(arch="{}")).predictor is None  # not architectures: the section is skipped
    out = tmp_path / "report"
    assert run_main(["analyze", str(mixed_folder), "-o", str(out), "--predictor", "compare"]) == 0
    assert "accuracy predictor (gp, summary)" in capsys.readouterr().out
    from inas.search.predictor_quality import COMPARE_VARIANTS

    assert len(pd.read_parquet(out / "predictor_quality.parquet")) == len(COMPARE_VARIANTS)
    assert "(predictor_predicted_vs_measured.png)" in (out / "report.md").read_text()
    assert (out / "predictor_predicted_vs_measured.png").stat().st_size > 1000
    assert run_main(["analyze", str(mixed_folder), "-o", str(tmp_path / "none"), "--predictor", "none"]) == 0
    assert not (tmp_path / "none" / "predictor_quality.parquet").exists()

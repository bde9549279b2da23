"""`analyze` on results written the way the driver writes them, by every searcher kind (with their tag columns):
evolution's `lgs_group`, nevergrad's `budget_ms`, ..., in one folder and across folders."""

from __future__ import annotations

from pathlib import Path

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


def result_row(arch: Arch, name: str, tags: dict) -> dict:
    """One evaluations.parquet row of the synthetic problem, as the driver builds it."""
    cpu_ms = synthetic_latency_ms(arch)
    accuracy = synthetic_accuracy(arch)
    return {"arch_id": arch.arch_id, "arch": arch.to_json(), "searcher": name, **tags, "max_fmeasure": accuracy,
            "mae": 0.2 - 0.15 * accuracy, "latency_ms__cpu": cpu_ms, "latency_ms__gpu": 0.3 * cpu_ms + 1.0,
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

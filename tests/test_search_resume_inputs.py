"""A search output folder read back on a re-run is untrusted input: what a clumsy user (or a damaged disk) leaves in
it is refused before anything runs, as one line naming the file and what was expected (exit code 2), never a
traceback at the end of the run, nor silently wrong results (a wiped front, a searcher told a corrupt metric)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from test_search_driver import simulate
from test_search_evaluators import make_problem

from inas.errors import BadInputError
from inas.run import main
from inas.search.driver import EVALUATIONS_FILE, STATE_FILE, prepare_search, run_search

SEARCHERS = [{"kind": "random", "budget": 3, "params": {"ends_first": False}},
             {"kind": "evolution", "budget": 3, "params": {"population_size": 2, "selection_num": 2,
                                                            "lgs_groups": 2}}]


@pytest.fixture(scope="module")
def problem_root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("resume_inputs")
    make_problem(root)
    return root


@pytest.fixture(scope="module")
def finished(problem_root, tmp_path_factory) -> Path:
    """A finished search (seeded, simulated evaluations) to copy and damage."""
    config, _ = make_problem(problem_root, searchers=SEARCHERS)
    out = tmp_path_factory.mktemp("finished") / "out"
    simulate(prepare_search(config, out), [])
    run_search(prepare_search(config, out), dashboard=False)  # finished: writes the front without Ray
    return out


@pytest.fixture
def config(problem_root):
    return make_problem(problem_root, searchers=SEARCHERS)[0]


def copy_of(finished: Path, tmp_path: Path) -> Path:
    out = tmp_path / "out"
    shutil.copytree(finished, out)
    return out


@pytest.mark.parametrize("name", [EVALUATIONS_FILE, STATE_FILE, "pareto.parquet", "summary.txt", "front/x.json"])
def test_a_folder_where_an_output_file_goes_is_refused_before_the_run(config, finished, tmp_path, name):
    out = copy_of(finished, tmp_path)
    target = out / name
    if target.exists():
        target.unlink()
    target.mkdir(parents=True)
    with pytest.raises(BadInputError, match="exists and is a folder, not a file") as info:
        prepare_search(config, out)
    assert str(target) in str(info.value)


def test_a_file_where_the_front_folder_goes_is_refused_through_the_cli(problem_root, finished, tmp_path, capsys):
    _, config_path = make_problem(problem_root, searchers=SEARCHERS)
    out = copy_of(finished, tmp_path)
    shutil.rmtree(out / "front")
    (out / "front").write_text("not a folder", encoding="utf-8")
    code = main(["search", "-c", str(config_path), "-o", str(out), "--address", "local"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and f"{out / 'front'}: the output path exists and is a file" in err[0]

"""A search output folder read back on a re-run is untrusted input: what a clumsy user (or a damaged disk) leaves in
it is refused before anything runs, as one line naming the file and what was expected (exit code 2), never a
traceback at the end of the run, nor silently wrong results (a wiped front, a searcher told a corrupt metric)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pandas as pd
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


def front_files(out: Path) -> set[str]:
    return {p.name for p in (out / "front").glob("*.json")}


def damage_table(out: Path, change) -> None:
    path = out / EVALUATIONS_FILE
    frame = pd.read_parquet(path)
    frame = change(frame)
    frame.to_parquet(path, index=False)


def _set(column, value, row=1):
    def change(frame):
        frame = frame.copy()
        if isinstance(value, str):
            frame[column] = frame[column].astype(str)
        frame.loc[row, column] = value
        return frame
    return change


@pytest.mark.parametrize(("change", "expected"), [
    (_set("max_fmeasure", "abc"), r"max_fmeasure: column must be numeric"),
    (_set("max_fmeasure", 7.5), r"max_fmeasure: expected a number in \[0, 1\] or missing in every row, got 7.5 in"),
    (_set("mae", float("inf")), r"mae: expected a number in \[0, 1\] or missing in every row, got inf"),
    (_set("latency_ms__dev_a", -5.0), r"latency_ms__dev_a: expected a finite number >= 0 in every row, got -5.0"),
    (_set("latency_ms__dev_b", float("nan")), r"latency_ms__dev_b: expected a finite number >= 0 in every row, got na"),
    (_set("params_m", -1.0), r"params_m: expected a finite number >= 0"),
    (lambda f: f.assign(cached=f["cached"].map({True: "yes", False: "no"})), r"cached: column must be true/false"),
])
def test_corrupt_values_in_the_results_table_are_refused(config, finished, tmp_path, change, expected):
    out = copy_of(finished, tmp_path)
    front = front_files(out)
    damage_table(out, change)
    with pytest.raises(BadInputError, match=expected) as info:
        prepare_search(config, out)
    assert str(out / EVALUATIONS_FILE) in str(info.value)
    assert front_files(out) == front and front


def _edit_state(edit, searcher="random"):
    def change(out: Path) -> None:
        path = out / STATE_FILE
        doc = json.loads(path.read_text(encoding="utf-8"))
        edit(doc["searchers"][searcher])
        path.write_text(json.dumps(doc), encoding="utf-8")
    return change


def _first_metric(state, value):
    state["records"][0]["metric"] = value


@pytest.mark.parametrize(("damage", "expected"), [
    (lambda out: (out / EVALUATIONS_FILE).unlink(), r"evaluations.parquet: missing, but search_state.json records 3"),
    (lambda out: damage_table(out, lambda f: f.iloc[:0]), r"holds no row of searcher '\w+' for arch"),
    (lambda out: damage_table(out, lambda f: f[f["searcher"] != "evolution"]),
     r"holds no row of searcher 'evolution' for arch"),
    (lambda out: damage_table(out, lambda f: f.assign(max_fmeasure=0.5)), r"has max_fmeasure 0.5, but search_state"),
    (lambda out: damage_table(out, lambda f: f.assign(max_fmeasure=float("nan"))),
     r"has max_fmeasure none \(a failed evaluation\), but search_state.json records 0\."),
    (_edit_state(lambda s: _first_metric(s, 1e9)), r"search_state.json records 1000000000.0"),
    (_edit_state(lambda s: _first_metric(s, None)), r"search_state.json records none \(a failed evaluation\)"),
])
def test_a_state_and_a_table_that_disagree_are_refused(config, finished, tmp_path, damage, expected):
    """A re-run of a finished search whose table was deleted or truncated used to resume the finished searchers with
    an empty table and wipe the front; a table row that disagrees with what the searcher was told (a failure where
    the state has a metric) used to be evaluated again and crash the run when the searcher refused the amendment."""
    out = copy_of(finished, tmp_path)
    front = front_files(out)
    damage(out)
    with pytest.raises(BadInputError, match=expected) as info:
        prepare_search(config, out)
    assert str(out / EVALUATIONS_FILE) in str(info.value)
    assert front_files(out) == front and front


def test_a_searcher_state_missing_a_key_names_the_key(config, finished, tmp_path):
    out = copy_of(finished, tmp_path)
    _edit_state(lambda s: s.pop("rng"))(out)
    with pytest.raises(BadInputError, match=r"searchers.random: searcher 'random' cannot resume: rng: missing"):
        prepare_search(config, out)


def test_a_damaged_field_of_a_searchers_own_state_is_one_line_naming_it_through_the_cli(problem_root, finished,
                                                                                          tmp_path, capsys):
    """A counter of evolution's own state set to null used to end the run with "int() argument must be a string, a
    bytes-like object or a real number, not 'NoneType'", which named no key."""
    _, config_path = make_problem(problem_root, searchers=SEARCHERS)
    out = copy_of(finished, tmp_path)
    _edit_state(lambda s: s["extra"]["lgs_stats"].update(part_draws=None), "evolution")(out)
    code = main(["search", "-c", str(config_path), "-o", str(out), "--address", "local"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1
    assert (f"{out / STATE_FILE}: searchers.evolution: searcher 'evolution' cannot resume: "
            "extra.lgs_stats.part_draws: expected an integer >= 0, got None") in err[0]


def test_a_second_search_into_a_folder_being_written_is_refused(config, finished, tmp_path):
    """Two searches into one folder both evaluated and the last to save overwrote the other's results: the second
    now fails at once naming the holder; the lock dies with its process, so a re-run after a kill is not blocked."""
    import subprocess
    import sys

    out = copy_of(finished, tmp_path)
    holder = subprocess.Popen([sys.executable, "-c", "import sys; from inas.folder_lock import lock_folder; "
                               f"lock_folder({str(out)!r}, 'search'); print('held', flush=True); sys.stdin.read()"],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(BadInputError, match=f"another search \\(pid {holder.pid}\\) is writing into this folder"):
            prepare_search(config, out)
    finally:
        holder.kill()
        holder.wait()
    run_search(prepare_search(config, out), dashboard=False)  # the holder is gone: its lock with it


def test_a_search_refused_after_taking_the_lock_leaves_no_folder(config, tmp_path, monkeypatch):
    """The lock file is the first thing a new output folder gets: a failure before the first save removes both."""
    import inas.search.driver as driver

    def refuse(*args, **kwargs):
        raise BadInputError("refused")

    monkeypatch.setattr(driver, "_restore", refuse)
    with pytest.raises(BadInputError, match="refused"):
        prepare_search(config, tmp_path / "new")
    assert not (tmp_path / "new").exists()

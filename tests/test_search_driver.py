"""Search driver: bad inputs fail before Ray starts; the Tune searcher (driven here by a simulated Tune loop, no
cluster) respects per-searcher concurrency and budgets, batches archs, serves known archs from the table, writes the
contract files, and resumes after an interruption without evaluating any done arch again. Slow: the real thing on a
local Ray, and kill -9 of the CLI followed by a re-run."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import pandas as pd
import pytest
from cli_subprocess import REPO, cli_env
from test_search_evaluators import make_problem

from inas.errors import BadInputError
from inas.search.driver import (
    EVALUATIONS_FILE,
    PARETO_FILE,
    STATE_FILE,
    build_scheduler,
    prepare_search,
    save_state,
    write_front,
)
from inas.search.scheduler import FINISHED
from inas.search.searchers import build_searcher
from inas.search.testing import synthetic_accuracy
from inas.search.trial import TrialReport, evaluate_batch

# random without its end archs: the two searchers then share no arch, and the counts below are per arch
SEARCHERS = [{"kind": "random", "budget": 5, "concurrent_trials": 2, "params": {"ends_first": False}},
             {"kind": "evolution", "budget": 6, "params": {"population_size": 4, "selection_num": 2, "lgs_groups": 2}}]


def fake_evaluate(calls: list[str]):
    """A cheap deterministic stand-in for the accuracy evaluator that records what it scores."""

    def evaluate(arch):
        calls.append(arch.arch_id)
        return {"max_fmeasure": synthetic_accuracy(arch), "mae": 1 - synthetic_accuracy(arch), "eval_seconds": 0.01}

    return evaluate


def simulate(setup, calls: list[str], archs_per_trial: int = 2, stop_after: int | None = None) -> dict:
    """Drive the Tune searcher like Tune does: suggest until None, complete the oldest trial, repeat."""
    setup.config.search.archs_per_trial = archs_per_trial
    scheduler = build_scheduler(setup)
    live: dict[str, dict] = {}
    counter = 0
    peak: dict[str, int] = {}
    completed = 0
    while True:
        while True:
            counter += 1
            suggestion = scheduler.suggest(f"t{counter}")
            if suggestion is None or suggestion == FINISHED:
                break
            suggestion = suggestion.to_tune()
            assert 1 <= len(suggestion["archs"]) <= archs_per_trial
            live[f"t{counter}"] = suggestion
            running = sum(1 for s in live.values() if s["searcher"] == suggestion["searcher"])
            peak[suggestion["searcher"]] = max(peak.get(suggestion["searcher"], 0), running)
        if suggestion == FINISHED:
            break
        assert live, "the searcher waits with nothing running"
        trial_id = next(iter(live))
        config = live.pop(trial_id)
        outcomes, total = evaluate_batch(fake_evaluate(calls), setup.space, config["archs"])
        scheduler.complete(trial_id, TrialReport(outcomes, total))
        completed += 1
        if stop_after is not None and completed >= stop_after:
            return {"peak": peak, "stopped_with_live": len(live)}
    assert not live
    return {"peak": peak, "stats": scheduler.stats}


def test_bad_inputs_fail_before_ray(problem_root, tmp_path):
    import ray

    config, _ = make_problem(problem_root)
    with pytest.raises(BadInputError, match="supernet checkpoint not found"):
        prepare_search(config, tmp_path / "out", supernet_path=tmp_path / "missing.pt")
    with pytest.raises(BadInputError, match="latency table not found"):
        prepare_search(config, tmp_path / "out", lut_dir=tmp_path)
    bad_param, _ = make_problem(problem_root, searchers=[{"kind": "random", "params": {"populaton": 3}}])
    with pytest.raises(BadInputError, match=r"search.searchers\[0\].*unknown parameters"):
        prepare_search(bad_param, tmp_path / "out")
    with pytest.raises(BadInputError, match=r"search\.searchers\[0\]\.kind"):
        make_problem(problem_root, searchers=[{"kind": "annealing"}])
    with pytest.raises(BadInputError, match="nothing to resume"):
        prepare_search(config, tmp_path / "out", resume=True)
    for internal in ("metric", "mode", "constraints", "device_latency_fns"):  # set by the driver, not the config
        bad_param, _ = make_problem(problem_root, searchers=[{"kind": "random", "params": {internal: "x"}}])
        with pytest.raises(BadInputError, match=rf"search.searchers\[0\].params: parameters \['{internal}'\] are set "
                           "by the search itself; a config sets only .'ends_first', 'max_latency_ms', 'max_tries'.$"):
            prepare_search(bad_param, tmp_path / "out")
    assert not ray.is_initialized()


def test_foreign_checkpoint_is_refused(problem_root, tmp_path):
    from inas.config import parse_config

    config, _ = make_problem(problem_root)
    doc = config.model_dump(mode="json")
    doc["space"]["stages"]["stem"] = {"widths": [36]}
    other = parse_config(doc, "test")
    with pytest.raises(BadInputError, match="different search space"):
        _prepare_with_tables_of(other, tmp_path)


def _prepare_with_tables_of(config, tmp_path):
    """The foreign-space config with tables covering its space, so the checkpoint check is what fails."""
    from test_search_evaluators import DEVICES, fake_table

    from inas.latency import write_table

    space = config.space.build()
    for i, device in enumerate(DEVICES):
        write_table(tmp_path / "lut" / f"{device}.parquet", fake_table(space, device, seed=i))
    return prepare_search(config, tmp_path / "out", lut_dir=tmp_path / "lut")


def test_tune_searcher_runs_every_searcher_to_its_budget(problem_root, tmp_path):
    config, _ = make_problem(problem_root, searchers=SEARCHERS)
    setup = prepare_search(config, tmp_path / "out")
    calls: list[str] = []
    run = simulate(setup, calls)
    assert run["peak"] == {"random": 2, "evolution": 1}
    frame = pd.read_parquet(tmp_path / "out" / EVALUATIONS_FILE)
    assert frame.groupby("searcher").size().to_dict() == {"evolution": 6, "random": 5}
    assert len(calls) == len(set(calls)) == 11
    assert (frame["generation"][frame["searcher"] == "evolution"] >= 0).all()
    assert frame.loc[frame["searcher"] == "evolution", "generation"].max() >= 1
    for column in ("latency_ms__dev_a", "latency_ms__dev_b", "params_m", "macs_g", "max_fmeasure", "mae"):
        assert frame[column].notna().all(), column
    state = json.loads((tmp_path / "out" / STATE_FILE).read_text())
    assert set(state["searchers"]) == {"random", "evolution"}
    front = write_front(tmp_path / "out", frame, "sod", "dev_a")
    on_disk = pd.read_parquet(tmp_path / "out" / PARETO_FILE)
    assert len(on_disk) == len(front) >= 1 and (on_disk["rank"] == 0).all()
    assert sorted(p.stem for p in (tmp_path / "out" / "front").glob("*.json")) == sorted(front["arch_id"])


def test_known_archs_are_served_from_the_table(problem_root, tmp_path):
    config, _ = make_problem(problem_root, searchers=[{"kind": "random", "budget": 4}])
    setup = prepare_search(config, tmp_path / "out")
    twin = build_searcher("random", setup.space, setup.resources.latency_ms, 4, config.seed)
    known = [twin.ask(), twin.ask()]
    for arch in known:  # as if an earlier run had evaluated them
        setup.table.add({"arch_id": arch.arch_id, "arch": arch.to_json(), "searcher": "old", "generation": -1,
                         "max_fmeasure": 0.5, "mae": 0.5, **setup.resources.evaluate(arch), "eval_seconds": 1.0,
                         "cached": False, "trial_id": "old"})
    calls: list[str] = []
    simulate(setup, calls)
    frame = setup.table.frame()
    mine = frame[frame["searcher"] == "random"]
    assert len(mine) == 4 and mine["cached"].sum() == 2
    assert not set(calls) & {a.arch_id for a in known} and len(calls) == 2
    assert (mine.loc[mine["cached"], "max_fmeasure"] == 0.5).all()


def test_an_arch_in_flight_for_one_searcher_is_not_evaluated_for_another(problem_root, tmp_path):
    config, _ = make_problem(problem_root, searchers=[{"kind": "random", "label": "r1", "budget": 4},
                                                     {"kind": "random", "label": "r2", "budget": 4}])
    setup = prepare_search(config, tmp_path / "out")
    # r2 with r1's seed asks exactly r1's archs, while r1's trials are still running
    setup.searchers["r2"] = build_searcher("random", setup.space, setup.resources.latency_ms, 4, config.seed)
    calls: list[str] = []
    simulate(setup, calls)
    frame = setup.table.frame()
    assert len(calls) == len(set(calls)) == 4
    assert frame.groupby("searcher").size().to_dict() == {"r1": 4, "r2": 4}
    assert set(frame["arch_id"]) == set(calls)
    per_arch = frame.groupby("arch_id")["cached"].agg(["sum", "size"])
    assert (per_arch["size"] == 2).all() and (per_arch["sum"] == 1).all()  # evaluated once, served once


def test_interrupted_search_resumes_without_reevaluating(problem_root, tmp_path):
    config, _ = make_problem(problem_root, searchers=SEARCHERS)
    first_calls: list[str] = []
    run = simulate(prepare_search(config, tmp_path / "out"), first_calls, stop_after=3)
    assert run["stopped_with_live"] >= 1  # trials were in flight when it stopped
    done = set(pd.read_parquet(tmp_path / "out" / EVALUATIONS_FILE)["arch_id"])
    assert len(done) == 6
    setup = prepare_search(config, tmp_path / "out")
    assert setup.resumed and len(setup.table) == 6
    second_calls: list[str] = []
    simulate(setup, second_calls)
    assert not done & set(second_calls)
    frame = pd.read_parquet(tmp_path / "out" / EVALUATIONS_FILE)
    assert frame.groupby("searcher").size().to_dict() == {"evolution": 6, "random": 5}
    assert frame["arch_id"].is_unique
    # the same search without interruption evaluates the same archs (searchers resumed exactly)
    calls: list[str] = []
    simulate(prepare_search(config, tmp_path / "fresh"), calls)
    assert set(calls) == done | set(second_calls)


def test_rerun_of_a_finished_search_writes_outputs_without_ray(problem_root, tmp_path):
    import ray

    from inas.search.driver import run_search

    config, _ = make_problem(problem_root, searchers=SEARCHERS)
    simulate(prepare_search(config, tmp_path / "out"), [])
    result = run_search(prepare_search(config, tmp_path / "out"), dashboard=False)
    assert not ray.is_initialized() and result.stats.trials == 0
    assert len(result.evaluations) == 11 and (result.pareto["rank"] == 0).all()
    assert "front size" in result.summary and "hypervolume" in result.summary
    assert (tmp_path / "out" / PARETO_FILE).exists() and (tmp_path / "out" / "summary.txt").exists()


def test_save_state_is_consistent(problem_root, tmp_path):
    config, _ = make_problem(problem_root)
    setup = prepare_search(config, tmp_path / "out")
    save_state(tmp_path / "out", config, setup.searchers, setup.table)
    assert pd.read_parquet(tmp_path / "out" / EVALUATIONS_FILE).empty
    assert json.loads((tmp_path / "out" / STATE_FILE).read_text())["task"] == "sod"
    assert prepare_search(config, tmp_path / "out").resumed


def _ok(arch):
    return {"max_fmeasure": synthetic_accuracy(arch), "mae": 0.5, "eval_seconds": 0.1}


def test_failed_evaluations_are_retried_then_recorded(problem_root, tmp_path):
    """A died trial and an arch that raises are evaluated again (bounded); only an arch that fails every attempt is
    recorded as failed, with its error; failures never use up the budget."""
    config, _ = make_problem(problem_root, searchers=[{"kind": "random", "budget": 4}])
    config.search.max_trial_retries = 1
    setup = prepare_search(config, tmp_path / "out")
    config.search.archs_per_trial = 2
    scheduler = build_scheduler(setup)
    first = scheduler.suggest("t1")
    scheduler.complete("t1", None)  # the whole trial died (worker lost): both archs go back to the queue
    again = scheduler.suggest("t2")
    assert again.archs == first.archs and scheduler.stats.retried == 2
    broken = first.archs[0].arch_id

    def sometimes_broken(arch):
        if arch.arch_id == broken:
            raise RuntimeError("out of memory")
        return _ok(arch)

    outcomes, _ = evaluate_batch(sometimes_broken, setup.space, again.to_tune()["archs"])
    assert outcomes[broken].error == "RuntimeError: out of memory"
    scheduler.complete("t2", TrialReport(outcomes, 0.1))  # second failure of `broken`: given up (1 retry)
    while (suggestion := scheduler.suggest(f"t{len(scheduler.stats.trial_seconds) + 3}")) not in (None, FINISHED):
        outcomes, _ = evaluate_batch(_ok, setup.space, suggestion.to_tune()["archs"])
        scheduler.complete(next(iter(scheduler.live)), TrialReport(outcomes, 0.1))
    assert suggestion == FINISHED and scheduler.stats.failed_trials == 1
    frame = setup.table.frame()
    assert len(frame) == 4 and frame["arch_id"].is_unique  # budget 4: 4 archs, the retries did not count
    assert frame["max_fmeasure"].isna().sum() == 1
    assert frame.loc[frame["arch_id"] == broken, "error"].item() == "RuntimeError: out of memory"
    assert scheduler.stats.given_up == [("random", broken, "RuntimeError: out of memory")]


def test_rerun_retries_failed_rows_without_spending_budget(problem_root, tmp_path):
    """Every trial of a run fails (e.g. workers could not read data): the rerun evaluates those archs again,
    replaces their rows and ends with a complete table; the run_search of the failed run exits with RunFailedError
    quoting the first error."""
    config, _ = make_problem(problem_root, searchers=SEARCHERS)
    config.search.max_trial_retries = 0
    setup = prepare_search(config, tmp_path / "out")
    scheduler = build_scheduler(setup)
    n = 0
    while (suggestion := scheduler.suggest(f"t{n}")) not in (None, FINISHED):
        n += 1
        scheduler.complete(f"t{n - 1}", TrialReport({}, error="BadInputError: data/x.lst: list file not found"))
    assert suggestion == FINISHED
    failed = pd.read_parquet(tmp_path / "out" / EVALUATIONS_FILE)
    assert failed["max_fmeasure"].isna().all() and len(failed) == 11
    assert (failed["error"] == "BadInputError: data/x.lst: list file not found").all()
    calls: list[str] = []
    rerun = prepare_search(config, tmp_path / "out")
    simulate(rerun, calls)
    frame = pd.read_parquet(tmp_path / "out" / EVALUATIONS_FILE)
    assert frame.groupby("searcher").size().to_dict() == {"evolution": 6, "random": 5}
    assert frame["max_fmeasure"].notna().all() and sorted(calls) == sorted(failed["arch_id"])
    assert all(s.stats.get("failed_evaluations", 0) == 0 for s in rerun.searchers.values())


def test_run_search_reports_total_failure_in_one_line(problem_root, tmp_path, monkeypatch):
    from inas.errors import RunFailedError
    from inas.search import driver

    config, _ = make_problem(problem_root, searchers=[{"kind": "random", "budget": 2}])
    config.search.max_trial_retries = 0
    setup = prepare_search(config, tmp_path / "out")

    def failing_fit(setup, scheduler, verbose):
        n = 0
        while scheduler.suggest(f"t{n}") not in (None, FINISHED):
            scheduler.complete(f"t{n}", TrialReport({}, error="OSError: disk full"))
            n += 1

    monkeypatch.setattr(driver, "_fit", failing_fit)
    monkeypatch.setattr(driver, "connect", lambda *args: SimpleNamespace(close=lambda: None))
    with pytest.raises(RunFailedError, match=r"every evaluation of this run failed .*OSError: disk full.*again"):
        driver.run_search(setup, dashboard=False)
    assert (tmp_path / "out" / "summary.txt").exists()


def _fit_stopping_after(batches: int | None, reason: str | None = None):
    """A stand-in for `driver._fit` that completes `batches` batches (None: all) and returns like Tune does after
    Ctrl-C (the scheduler not finished, no reason) or a dead mailbox (`reason`)."""

    def fit(setup, scheduler, verbose):
        n = 0
        while batches is None or n < batches:
            config = scheduler.suggest(f"t{n}")
            if config is None or config == FINISHED:
                break
            outcomes, total = evaluate_batch(fake_evaluate([]), setup.space, config.to_tune()["archs"])
            scheduler.complete(f"t{n}", TrialReport(outcomes, total))
            n += 1
        return reason

    return fit


def test_ctrl_c_ends_the_search_with_130_and_a_rerun_continues(problem_root, tmp_path, monkeypatch, capsys):
    """Tune catches SIGINT and returns from `fit` as if the run were done: the search said nothing and exited 0
    with its budgets not met. It saves its state, says how to go on, exits 130; the re-run continues."""
    from inas.run import main
    from inas.search import driver

    _, config_path = make_problem(problem_root, searchers=[{"kind": "random", "budget": 6}], archs_per_trial=1)
    out = tmp_path / "out"
    monkeypatch.setattr(driver, "connect", lambda *args: SimpleNamespace(close=lambda: None))
    monkeypatch.setattr(driver, "_fit", _fit_stopping_after(2))
    code = main(["search", "-c", str(config_path), "-o", str(out)])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 130, err
    assert err[-1].startswith("interrupted: search: stopped before its budgets were met (Ctrl-C); 2 evaluations")
    assert "running the same command again continues" in err[-1]
    assert json.loads((out / STATE_FILE).read_text())["rows"] == 2
    monkeypatch.setattr(driver, "_fit", _fit_stopping_after(None))
    assert main(["search", "-c", str(config_path), "-o", str(out)]) == 0
    frame = pd.read_parquet(out / EVALUATIONS_FILE)
    assert len(frame) == 6 and frame["arch_id"].is_unique


def test_a_run_cut_short_says_why_and_exits_1(problem_root, tmp_path, monkeypatch):
    from inas.errors import RunFailedError
    from inas.search import driver

    config, _ = make_problem(problem_root, searchers=[{"kind": "random", "budget": 4}], archs_per_trial=1)
    setup = prepare_search(config, tmp_path / "out")
    monkeypatch.setattr(driver, "connect", lambda *args: SimpleNamespace(close=lambda: None))
    monkeypatch.setattr(driver, "_fit", _fit_stopping_after(1, "the mailbox died"))
    with pytest.raises(RunFailedError, match=r"stopped before its budgets were met: the mailbox died; 1 evaluations "
                                             r"are saved in .*running the same command again continues"):
        driver.run_search(setup, dashboard=False)


def test_a_worker_slot_larger_than_the_local_ray_is_refused(problem_root, tmp_path, monkeypatch, capsys):
    """`search.cpus_per_trial: 4` on a 2-CPU machine's local Ray: Tune waited forever, warning every 60 s."""
    import ray

    from inas.search import driver

    config, _ = make_problem(problem_root, searchers=[{"kind": "random", "budget": 2}])
    config.search.cpus_per_trial = 4
    assert driver.slot_shortfall(config.search, {"CPU": 4.0}) is None
    setup = prepare_search(config, tmp_path / "out")
    closed: list[int] = []
    connection = SimpleNamespace(local=True, close=lambda: closed.append(1))
    monkeypatch.setattr(driver, "init_ray", lambda *args, **kwargs: connection)
    monkeypatch.setattr(ray, "cluster_resources", lambda: {"CPU": 2.0})
    with pytest.raises(BadInputError, match=r"^search.cpus_per_trial: a worker slot needs 4 CPU \(the cluster has "
                                            r"2\), more than this machine's local Ray offers"):
        driver.run_search(setup, dashboard=False)
    assert closed and not (tmp_path / "out").exists()
    connection.local = False  # a joined cluster may still grow: said, then waited for
    monkeypatch.setattr(driver, "_fit", _fit_stopping_after(None))
    driver.run_search(setup, dashboard=False)
    assert "search: warning: search.cpus_per_trial: a worker slot needs 4 CPU" in capsys.readouterr().err


def test_a_forged_arch_id_in_the_results_is_refused(problem_root, tmp_path):
    config, _ = make_problem(problem_root, searchers=[{"kind": "random", "budget": 2}])
    simulate(prepare_search(config, tmp_path / "out"), [])
    path = tmp_path / "out" / EVALUATIONS_FILE
    frame = pd.read_parquet(path)
    frame.loc[0, "arch_id"] = "../../escaped"
    frame.to_parquet(path)
    with pytest.raises(BadInputError, match=r"row 0: arch_id '../../escaped' is not the id of the row's arch"):
        prepare_search(config, tmp_path / "out")
    assert not (tmp_path / "escaped.json").exists()


def test_cli_bad_input_is_one_line_and_exit_code_2(problem_root, tmp_path, capsys):
    from inas.run import main

    _, config_path = make_problem(problem_root)
    code = main(["search", "-c", str(config_path), "-o", str(tmp_path / "out"), "--supernet", str(tmp_path / "x.pt")])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "supernet checkpoint not found" in err[0]
    assert not (tmp_path / "out").exists()


# ----- slow: real Ray ----------------------------------------------------------------------------------------------
def _run_cli(config_path: Path, out: Path, env: dict[str, str] | None = None, **popen) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "inas.run", "search", "-c", str(config_path), "-o", str(out), "--no-dashboard"]
    return subprocess.Popen(cmd, cwd=REPO, env=env or cli_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, **popen)


@pytest.mark.slow
def test_search_on_local_ray_then_kill_and_resume(problem_root, tmp_path):
    """Two searchers on a local Ray through the CLI; kill -9 after some trials; the re-run finishes the budgets and
    evaluates no done arch again; the result equals an uninterrupted run."""
    # budgets large enough, one arch per trial, that the kill lands mid-run (budgets 5 + 6 sometimes finished first)
    searchers = [{**SEARCHERS[0], "budget": 10}, {**SEARCHERS[1], "budget": 12}]
    _, config_path = make_problem(problem_root, searchers=searchers, archs_per_trial=1)
    out = tmp_path / "out"
    proc = _run_cli(config_path, out, start_new_session=True)
    deadline = time.time() + 300
    rows = 0
    while time.time() < deadline and proc.poll() is None:
        path = out / EVALUATIONS_FILE
        if path.exists():
            rows = len(pd.read_parquet(path))
            if rows >= 4:
                break
        time.sleep(0.2)
    assert proc.poll() is None, proc.stdout.read()
    os.killpg(proc.pid, signal.SIGKILL)  # the driver and the local Ray it started
    proc.wait()
    done = pd.read_parquet(out / EVALUATIONS_FILE)
    assert 4 <= len(done) < 22
    done = done.iloc[: json.loads((out / STATE_FILE).read_text())["rows"]]  # a kill mid-save: later rows are redone
    rerun = _run_cli(config_path, out)
    text, _ = rerun.communicate(timeout=300)
    assert rerun.returncode == 0, text
    assert "resuming with" in text and "front size" in text
    frame = pd.read_parquet(out / EVALUATIONS_FILE)
    assert frame.groupby("searcher").size().to_dict() == {"evolution": 12, "random": 10}
    assert frame["arch_id"].is_unique  # nothing evaluated twice
    kept = frame.set_index("arch_id").loc[done["arch_id"], "trial_id"]
    assert (kept.to_numpy() == done["trial_id"].to_numpy()).all()  # done rows kept as they were
    assert (out / PARETO_FILE).exists() and any((out / "front").glob("*.json"))
    fresh = _run_cli(config_path, tmp_path / "fresh")
    text, _ = fresh.communicate(timeout=300)
    assert fresh.returncode == 0, text
    assert set(pd.read_parquet(tmp_path / "fresh" / EVALUATIONS_FILE)["arch_id"]) == set(frame["arch_id"])


@pytest.mark.slow
def test_killed_trial_worker_is_retried_and_the_table_is_complete(problem_root, tmp_path):
    """SIGKILL of a Ray trial worker mid-run: its trial's archs are evaluated again, the run ends with every budget
    met, no NaN row and no arch evaluated twice."""
    import psutil

    from inas.ray_watchdog import session_processes

    def is_trial_worker(process: psutil.Process) -> bool:
        try:
            return any("ImplicitFunc" in part or "evaluate_trial" in part for part in process.cmdline())
        except psutil.Error:
            return False

    # random without its end archs: no arch is shared with evolution (a shared one is a cached second row)
    searchers = [{**SEARCHERS[0], "budget": 10}, {**SEARCHERS[1], "budget": 8}]
    _, config_path = make_problem(problem_root, searchers=searchers, archs_per_trial=1)
    out = tmp_path / "out"
    ray_tmp = Path(f"/tmp/inas_kt_{os.getpid()}")  # this run's own Ray: only its workers are killed
    proc = _run_cli(config_path, out, env={**cli_env(), "RAY_TMPDIR": str(ray_tmp)})
    deadline = time.time() + 300
    killed = None
    while time.time() < deadline and proc.poll() is None and killed is None:
        if (out / EVALUATIONS_FILE).exists() and len(pd.read_parquet(out / EVALUATIONS_FILE)) >= 2:
            ours = [p for session in (ray_tmp / "ray").glob("session_2*") for p in session_processes(str(session))]
            workers = [p for p in ours if is_trial_worker(p)]
            if workers:
                killed = workers[0].pid
                workers[0].kill()
        time.sleep(0.2)
    assert killed is not None, "no trial worker found to kill"
    text, _ = proc.communicate(timeout=600)
    shutil.rmtree(ray_tmp, ignore_errors=True)
    assert proc.returncode == 0, text
    frame = pd.read_parquet(out / EVALUATIONS_FILE)
    assert frame.groupby("searcher").size().to_dict() == {"evolution": 8, "random": 10}
    assert frame["max_fmeasure"].notna().all() and frame["arch_id"].is_unique


def test_analyze_explains_an_all_failed_folder(problem_root, tmp_path, capsys):
    from inas.run import main

    config, _ = make_problem(problem_root, searchers=[{"kind": "random", "budget": 2}])
    config.search.max_trial_retries = 0
    scheduler = build_scheduler(prepare_search(config, tmp_path / "out"))
    n = 0
    while scheduler.suggest(f"t{n}") not in (None, FINISHED):
        scheduler.complete(f"t{n}", TrialReport({}, error="OSError: no space left on device"))
        n += 1
    code = main(["analyze", str(tmp_path / "out"), "-o", str(tmp_path / "report")])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1
    assert "every one of its 2 evaluations failed" in err[0] and "OSError: no space left on device" in err[0]
    assert "run the same `search` command again" in err[0] and not (tmp_path / "report").exists()

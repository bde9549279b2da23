"""The search driver: every searcher of the config runs in ONE Ray Tune run, side by side, sharing the cluster.

- `prepare_search` loads and checks everything before Ray starts (supernet, latency tables, data lists, searchers,
  an earlier run's state in the output folder); every path is absolute from here on, so Tune's workers, which run in
  other working directories, read the same files.
- `run_search` starts or joins Ray (`inas.ray_session`), and runs one `tune.Tuner` of long-lived worker slots (one
  Tune trial per slot, `concurrent_trials` summed over searchers): the thin `SlotSearcher` (`inas.search.tune_adapter`)
  forwards Tune's calls to a `SlotDispatcher` (`inas.search.slots`), which feeds each slot the batches of the Ray-free
  `TrialScheduler` (`inas.search.scheduler`: round robin over searchers, batching, de-duplication, bounded retries of
  failed evaluations) through a mailbox actor on the driver's node; each batch's result comes back as one
  `tune.report` of the slot's trial, so Tune starts each slot's worker once and shows every batch's result.
- Slots run `evaluate_trial` (`inas.search.trial`) on Ray workers: the supernet weights travel once through the
  object store (`tune.with_parameters`), each worker builds its `AccuracyEvaluator` once and reuses it. A slot whose
  worker dies (or its node) fails the batch it held (the scheduler retries its archs) and Tune opens a new slot.
- Resources (LUT latency per device, params, MACs) are computed in the driver (microseconds per arch).
- Resume: the driver saves `evaluations.parquet`, then `search_state.json`, both whole and atomically, after the
  first trials, then rate-limited (`inas.search.state.StateSaver`: when the new rows reach 10 % of the saved ones, or
  30 s after the oldest unsaved result, and at the end), so a run's write cost stays O(new rows) per trial
  amortised; a kill -9 loses at most that window's results, which a re-run evaluates again. Re-running the same
  command on the same output folder restores the searchers (archs that were in flight are asked again), serves
  every arch already evaluated from the table, and evaluates again the archs an earlier run recorded as failed
  (their rows are replaced; no budget is spent on them).
- Progress: Ray metrics (`inas.search.progress`, names in `inas.progress`): evaluations by searcher and status, best
  metric, hypervolume, in the dashboard's Metrics view and on each node's Prometheus endpoint.
- Outputs in the folder: `evaluations.parquet`, `pareto.parquet` (front of the primary device's latency vs the task
  metric, `rank` 0), `front/<arch_id>.json`, `search_state.json`, `summary.txt`, `tune/` (Tune's trial logs).
"""

from __future__ import annotations

import json
import logging
import math
import os
import re
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import pandas as pd

from inas.config import ExperimentConfig, SearchConfig
from inas.errors import BadInputError, RunFailedError
from inas.folder_lock import LOCK_FILE, lock_folder, unlock_folder
from inas.io import atomic_write_parquet, atomic_write_text
from inas.paths import check_output_path
from inas.ray_session import RayConnection, init_ray, require_capacity, resource_shortfall
from inas.search.evaluators import (
    EvaluationTable,
    ResourceEvaluator,
    file_key,
    load_latency_predictors,
    load_search_supernet,
    supernet_payload,
)
from inas.search.pareto import best_under_budget, default_reference, hypervolume, pareto_front
from inas.search.progress import SearchProgress
from inas.search.scheduler import TrialScheduler, TrialStats
from inas.search.schema import EVALUATIONS_FILE, PARETO_FILE, latency_column, primary_metric
from inas.search.searchers import DRIVER_PARAMS, LatencyFn, Searcher, build_searcher, config_params
from inas.search.state import (
    STATE_FILE,
    SavePolicy,
    SaveStats,
    SearchState,
    StateSaver,
    read_search_state,
    write_search_state,
)
from inas.search.trial import EvaluatorFactory, WorkerSetup
from inas.search.warm_start import read_warm_start, warm_start_searchers
from inas.space import SearchSpace

log = logging.getLogger(__name__)

FRONT_DIR = "front"
SUMMARY_FILE = "summary.txt"
# what a run writes into its output folder, and of which kind each must be if it is already there
OUTPUT_KINDS: dict[str, Literal["file", "folder"]] = {
    EVALUATIONS_FILE: "file", STATE_FILE: "file", PARETO_FILE: "file", SUMMARY_FILE: "file", FRONT_DIR: "folder",
    "tune": "folder", LOCK_FILE: "file"}
ARCH_ID_PATTERN = re.compile(r"^[0-9a-f]{12}$")


# ----- setup (everything checked before Ray starts) ----------------------------------------------------------------
@dataclass
class SearchSetup:
    """Everything a search run needs, built and checked without Ray."""

    config: ExperimentConfig
    space: SearchSpace
    out_dir: Path
    supernet_path: Path
    supernet: Any
    resources: ResourceEvaluator
    searchers: dict[str, Searcher]
    concurrency: dict[str, int]
    table: EvaluationTable
    resumed: bool = False
    setup_seconds: float = 0.0
    save_policy: SavePolicy = field(default_factory=SavePolicy)
    evaluator: EvaluatorFactory | None = None  # replaces the workers' accuracy evaluator (no supernet): benchmarks
    warm_started: dict[str, int] = field(default_factory=dict)  # `--warm-start`: {searcher: earlier records new to it}
    warm_start_records: int = 0  # `--warm-start`: the distinct successful evaluations read from the folders
    made_out_dir: bool = False  # `prepare_search` made `out_dir` (for its lock): a run that writes nothing removes it


def _devices(config: ExperimentConfig) -> list[str]:
    devices = config.search.devices or [d.name for d in config.lut.devices]
    if not devices or len(set(devices)) != len(devices):
        raise BadInputError(f"must list at least one device, each once, got {devices}", key="search.devices")
    return devices


def _search_paths(config: ExperimentConfig, out_dir: str | Path | None, supernet_path: str | Path | None,
                  lut_dir: str | Path | None) -> tuple[Path, Path, Path]:
    """(output folder, supernet checkpoint, latency-table folder), absolute: the arguments, else the config's."""
    search = config.search
    out = Path(out_dir if out_dir is not None else search.out_dir).absolute()
    check_output_path(out, "folder", key="--out")
    for name, kind in OUTPUT_KINDS.items():  # a folder where a file goes fails now, not at the end of the run
        check_output_path(out / name, kind)
    if (out / FRONT_DIR).is_dir():  # every front/*.json is rewritten or removed at the end
        for path in (out / FRONT_DIR).glob("*.json"):
            check_output_path(path, "file")
    supernet_path = supernet_path if supernet_path is not None else search.supernet
    if supernet_path is None:
        raise BadInputError("no supernet checkpoint: set search.supernet in the config or pass --supernet",
                            key="search.supernet")
    lut = Path(lut_dir if lut_dir is not None else (search.lut_dir or config.lut.out_dir)).absolute()
    return out, Path(supernet_path).absolute(), lut


def _build_searchers(config: ExperimentConfig, space: SearchSpace, resources: ResourceEvaluator,
                     device_fns: dict[str, LatencyFn]) -> tuple[dict[str, Searcher], dict[str, int]]:
    """(searchers by name, concurrent trials by name) of `search.searchers`, seeded config.seed + their index;
    `device_fns`: every device's latency predictor (ms) for the searchers that use each device's latency."""
    metric = primary_metric(config.task)
    searchers: dict[str, Searcher] = {}
    for i, spec in enumerate(config.search.searchers):
        internal = sorted(set(spec.params) & DRIVER_PARAMS)
        if internal:  # e.g. `metric: mae` with mode max, or a `metric` no result holds: every result a failure
            raise BadInputError(f"parameters {internal} are set by the search itself; a config sets only "
                                f"{sorted(config_params(spec.kind))}", key=f"search.searchers[{i}].params")
        params = {"metric": metric, "mode": "max", **spec.params}
        try:
            searchers[spec.name] = build_searcher(spec.kind, space, resources.latency_ms, spec.budget,
                                                  config.seed + i, device_latency_fns=device_fns, **params)
        except BadInputError as exc:
            raise BadInputError(str(exc), key=f"search.searchers[{i}]") from None
    return searchers, {spec.name: spec.concurrent_trials for spec in config.search.searchers}


def prepare_search(config: ExperimentConfig, out_dir: str | Path | None = None,
                   supernet_path: str | Path | None = None, lut_dir: str | Path | None = None,
                   resume: bool = False, warm_start: Sequence[str | Path] = ()) -> SearchSetup:
    """Load and check the supernet, the latency tables, the searchers and any previous state in `out_dir`.

    Raises BadInputError (before any Ray work) for a missing/foreign checkpoint, a missing/incomplete table, an
    unknown searcher or parameter, `resume=True` without a previous run, or a previous run of another config.
    """
    from inas.latency import lut_input_hw

    start = time.perf_counter()
    space = config.space.build()
    out_dir, supernet_path, lut_dir = _search_paths(config, out_dir, supernet_path, lut_dir)
    input_hw = lut_input_hw(config)
    predictors = load_latency_predictors(lut_dir, _devices(config), space, config.num_classes, input_hw)
    resources = ResourceEvaluator(predictors, space, input_hw, config.num_classes)
    device_fns = {device: predictor.predict for device, predictor in resources.predictors.items()}
    searchers, concurrency = _build_searchers(config, space, resources, device_fns)
    prior = read_warm_start(warm_start, space, config.task, device_fns) if warm_start else []
    supernet = load_search_supernet(supernet_path, space, config.num_classes)
    check_data(config)
    table = EvaluationTable(config.task, resources.latency_columns)
    created = not out_dir.exists()
    lock_folder(out_dir, "search")  # before its state is read: two searches into one folder would overwrite each other
    try:
        resumed = _restore(out_dir, config, space, searchers, table, resume)
        # after the restore: a resumed state keeps its earlier warm start, and a folder new to it adds its records
        warm_started = warm_start_searchers(searchers, prior) if prior else {}
    except BaseException:
        _unlock(out_dir, remove=created)
        raise
    return SearchSetup(config, space, out_dir, supernet_path, supernet, resources, searchers, concurrency, table,
                       resumed, time.perf_counter() - start, warm_started=warm_started, warm_start_records=len(prior),
                       made_out_dir=created)


def _unlock(out_dir: Path, remove: bool) -> None:
    """Release the output folder's lock; `remove`: the folder was made for the lock, remove it if nothing else was
    written into it (the run failed before its first save)."""
    unlock_folder(out_dir)
    if remove and out_dir.is_dir() and [p.name for p in out_dir.iterdir()] == [LOCK_FILE]:
        (out_dir / LOCK_FILE).unlink()
        out_dir.rmdir()


def check_data(config: ExperimentConfig) -> None:
    """The training list (BN recalibration) and the validation list exist and are complete (BadInputError naming the
    list and the bad entries otherwise), so workers do not all fail on them later."""
    from inas.data import bn_dataset, eval_dataset

    bn_dataset(config.data, config.task, progress=False)
    eval_dataset(config.data, config.task, progress=False)


def _restore(out_dir: Path, config: ExperimentConfig, space: SearchSpace, searchers: Mapping[str, Searcher],
             table: EvaluationTable, resume: bool) -> bool:
    """Load an earlier run's results (checked: every row's arch id names its arch) and searcher states from
    `out_dir`; False when there is no state (results alone are reused as a cache). Rows saved after the searchers'
    state (a run killed between the two writes of a save) are left out: their archs are asked and evaluated again."""
    state_path = out_dir / STATE_FILE
    evaluations_path = out_dir / EVALUATIONS_FILE
    state = read_search_state(state_path) if state_path.is_file() else None
    if state is not None and state.task != config.task:
        raise BadInputError(f"the folder holds a {state.task!r} search, the config is {config.task!r}; use "
                            "another output folder", path=state_path, key="task")
    if evaluations_path.is_file():
        rows = EvaluationTable.load(evaluations_path, table.task, table.latency_columns, space).rows
        if state is not None and state.rows is not None and len(rows) > state.rows:
            log.warning("%d results were saved after the searchers' state (the run was killed while saving): they "
                        "are evaluated again", len(rows) - state.rows)
            rows = rows[: state.rows]
        for row in rows:
            table.add(row)
    if state is None:
        if resume:
            raise BadInputError("nothing to resume: no search_state.json in the output folder", path=out_dir,
                                key="--resume")
        return False
    for name, searcher in searchers.items():
        if name in state.searchers:
            try:  # every field is checked by the searchers' typed state models: anything else is a bug
                searcher.load_state_dict(state.searchers[name])
            except BadInputError as exc:
                raise BadInputError(f"searcher {name!r} cannot resume: {str(exc)[:300]}", path=state_path,
                                    key=f"searchers.{name}") from None
            _check_told_rows(name, searcher, table, evaluations_path)
    log.info("resuming the search in %s: %d evaluations so far", out_dir, len(table))
    return True


def _check_told_rows(name: str, searcher: Searcher, table: EvaluationTable, path: Path) -> None:
    """Every result the restored searcher `name` was told is its row of the results table, with the same metric
    (a failure where the row has none): a state and a table that disagree (one replaced, truncated, deleted or edited
    by hand) would resume with wrong results, e.g. an empty front. BadInputError naming the table otherwise."""
    metric = searcher.metric
    rows = {row["arch_id"]: row for row in table.rows if row.get("searcher") == name}
    for record in searcher.records:
        arch_id = record.arch.arch_id
        row = rows.get(arch_id)
        if row is None:
            what = "missing" if not path.is_file() else f"holds no row of searcher {name!r} for arch {arch_id}"
            raise BadInputError(f"{what}, but {STATE_FILE} records {len(searcher.records)} results told to it (the "
                                "table was replaced, truncated or deleted?); restore both files or use another output "
                                "folder", path=path)
        value = row.get(metric)
        value = None if value is None or math.isnan(value) else float(value)
        if (value is None) != (record.metric is None) or (
                value is not None and record.metric is not None and not math.isclose(value, record.metric)):
            def shown(v: float | None) -> str:
                return "none (a failed evaluation)" if v is None else repr(v)

            raise BadInputError(f"the row of searcher {name!r} for arch {arch_id} has {metric} {shown(value)}, but "
                                f"{STATE_FILE} records {shown(record.metric)} (one of the two was edited?); restore "
                                "both files or use another output folder", path=path)


def save_state(out_dir: Path, config: ExperimentConfig, searchers: Mapping[str, Searcher],
               table: EvaluationTable) -> None:
    """evaluations.parquet first, then the searcher states with the table's row count (so every told arch is in the
    table on resume, and rows written by a save that was cut short are recognised)."""
    table.save(out_dir / EVALUATIONS_FILE)
    write_search_state(out_dir / STATE_FILE,
                       SearchState(config.task, {name: s.state_dict() for name, s in searchers.items()}, len(table)))


# ----- Ray ---------------------------------------------------------------------------------------------------------
_ENV_SET_HERE: dict[str, str] = {}


def _set_env_default(key: str, value: str) -> None:
    """`os.environ[key] = value` unless the user set `key`; a value set by an earlier call is replaced (run_search may
    run several times in one process, e.g. a benchmark or a notebook, with different concurrency)."""
    if key not in os.environ or os.environ[key] == _ENV_SET_HERE.get(key):
        os.environ[key] = value
        _ENV_SET_HERE[key] = value


def connect(address: str | None, dashboard: bool = True, search: SearchConfig | None = None) -> RayConnection:
    """Start or join Ray for a search (see `inas.ray_session.init_ray`); with `search`, check that the cluster can
    hold a worker slot (`check_slot_resources`)."""
    connection = init_ray(address, verb="search", dashboard=dashboard)
    if search is not None:
        try:
            check_slot_resources(search, connection.local)
        except BaseException:
            connection.close()
            raise
    return connection


def slot_shortfall(search: SearchConfig, total: Mapping[str, float]) -> str | None:
    """What one worker slot (`search.cpus_per_trial` CPUs, `search.gpus_per_trial` GPUs) needs beyond the cluster's
    `total` resources (`ray.cluster_resources()`), None if it fits."""
    short = resource_shortfall({"CPU": search.cpus_per_trial, "GPU": search.gpus_per_trial}, total)
    return "a worker slot needs " + " and ".join(short) if short else None


def check_slot_resources(search: SearchConfig, local: bool) -> None:
    """A worker slot the cluster cannot hold: refused on a local Ray, said on a joined one (`require_capacity`)."""
    import ray

    shortfall = slot_shortfall(search, ray.cluster_resources())
    key = "search.gpus_per_trial" if shortfall and "GPU" in shortfall else "search.cpus_per_trial"
    require_capacity(shortfall, local=local, key=key, verb="search", remedy="lower it")


@dataclass
class SearchResult:
    out_dir: Path
    evaluations: pd.DataFrame
    pareto: pd.DataFrame
    summary: str
    stats: TrialStats
    wall_seconds: float
    saves: SaveStats = field(default_factory=SaveStats)


def state_saver(setup: SearchSetup) -> StateSaver:
    """Saves `setup`'s table and searcher states following `setup.save_policy` (what is loaded counts as saved)."""
    return StateSaver(lambda: save_state(setup.out_dir, setup.config, setup.searchers, setup.table),
                      setup.save_policy, saved_rows=len(setup.table), saved_changes=setup.table.changes)


def search_progress(setup: SearchSetup) -> SearchProgress:
    """The run's Ray metrics (`inas.search.progress`): exported once Ray is initialised in this process."""
    return SearchProgress(setup.table, primary_metric(setup.config.task),
                          latency_column(setup.resources.primary_device))


def build_scheduler(setup: SearchSetup, saver: StateSaver | None = None,
                    progress: SearchProgress | None = None) -> TrialScheduler:
    """The scheduler of `setup`, telling `saver` (default `state_saver(setup)`) and `progress` after every recorded
    result; archs an earlier run recorded as failed are queued for another evaluation."""
    config = setup.config
    saver = saver or state_saver(setup)
    table = setup.table

    def on_change() -> None:
        saver.changed(len(table), table.changes)
        if progress is not None:
            progress.update()

    scheduler = TrialScheduler(setup.searchers, setup.concurrency, table, setup.resources, config.task,
                               config.search.archs_per_trial, config.search.max_trial_retries, on_change=on_change)
    queued = scheduler.retry_failed_rows()
    if queued:
        log.warning("%d architectures recorded as failed by an earlier run are evaluated again", queued)
    return scheduler


def worker_setup(config: ExperimentConfig) -> WorkerSetup:
    search = config.search
    return WorkerSetup(data=config.data, task=config.task, bn_batches=search.bn_recalibration_batches,
                       val_batch_size=search.val_batch_size, seed=config.seed,
                       threads=max(1, int(search.cpus_per_trial)), cuda=search.gpus_per_trial > 0)


class _NoTuneRestoreHint(logging.Filter):
    """Drops Tune's "Resume experiment with: Tuner.restore(...)" after Ctrl-C: a search continues by running the same
    command (`_raise_unfinished` says so)."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "Tuner.restore(" not in record.getMessage()


def _tune_environment(setup: SearchSetup, verbose: int) -> None:
    tune_log = logging.getLogger("ray.tune.tune")
    if not any(isinstance(f, _NoTuneRestoreHint) for f in tune_log.filters):
        tune_log.addFilter(_NoTuneRestoreHint())
    os.environ.setdefault("TUNE_DISABLE_AUTO_CALLBACK_LOGGERS", "1")  # no per-trial CSV/JSON/TensorBoard files
    os.environ.setdefault("TUNE_MAX_LEN_IDENTIFIER", "40")  # trial folder names hold the config: keep them short
    # Tune keeps 1 trial pending with a search algorithm: allow every worker slot to be pending, so all slots' actors
    # start together at the beginning
    _set_env_default("TUNE_MAX_PENDING_TRIALS_PG", str(slot_count(setup)))
    if not verbose:
        os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")  # the legacy reporter honours verbose=0 (no tables)
        # per-trial result files are disabled above, so Tune's end-of-run analysis finds none: not a problem
        logging.getLogger("ray.tune.analysis.experiment_analysis").setLevel(logging.ERROR)


def _fit(setup: SearchSetup, scheduler: TrialScheduler, verbose: int) -> str | None:
    """One Tune run of `slot_count(setup)` worker slots (`evaluate_trial`, `inas.search.slots`) kept busy with the
    batches of `scheduler` (Ray must be initialised). Returns why the run was cut short (the slots' mailbox died),
    None otherwise: the scheduler is finished, or Tune stopped on Ctrl-C (SIGINT)."""
    import ray
    from ray import tune

    from inas.search.slots import SlotDispatcher
    from inas.search.trial import evaluate_trial
    from inas.search.tune_adapter import SlotSearcher, mailbox_lost, post_to, start_mailbox

    search = setup.config.search
    slots = slot_count(setup)
    payload = None if setup.evaluator is not None else supernet_payload(setup.supernet, file_key(setup.supernet_path))
    mailbox = start_mailbox(slots)
    try:
        trainable = tune.with_parameters(evaluate_trial, payload=payload, setup=worker_setup(setup.config),
                                         mailbox=mailbox, factory=setup.evaluator)
        trainable = tune.with_resources(trainable, {"cpu": search.cpus_per_trial, "gpu": search.gpus_per_trial})
        dispatcher = SlotDispatcher(scheduler, slots, post_to(mailbox))
        searcher = SlotSearcher(dispatcher, mailbox_lost(mailbox))
        tuner = tune.Tuner(
            trainable,
            # a slot trial lives for the whole run: actors are never reused (no cache, no discarded starts)
            tune_config=tune.TuneConfig(search_alg=searcher, num_samples=-1, reuse_actors=False),
            run_config=tune.RunConfig(name="tune", storage_path=str(setup.out_dir), verbose=verbose,
                                      failure_config=tune.FailureConfig(max_failures=0)),
        )
        tuner.fit()
    finally:
        ray.kill(mailbox)
    return dispatcher.aborted


def slot_count(setup: SearchSetup) -> int:
    """Worker slots (long-lived Tune trials) of a run: the searchers' `concurrent_trials` summed."""
    return sum(setup.concurrency.values())


def run_search(setup: SearchSetup, address: str | None = None, dashboard: bool = True,
               verbose: int = 0) -> SearchResult:
    """Run every searcher of `setup` to its budget under one Tune run; write the outputs; return them.
    RunFailedError (after writing the outputs) when some architectures failed every retry. The output folder's lock
    (taken by `prepare_search`) is released at the end."""
    try:
        return _run(setup, address, dashboard, verbose)
    finally:
        _unlock(setup.out_dir, remove=setup.made_out_dir)


def _run(setup: SearchSetup, address: str | None, dashboard: bool, verbose: int) -> SearchResult:
    _tune_environment(setup, verbose)
    config = setup.config
    saver = state_saver(setup)
    progress = search_progress(setup)
    scheduler = build_scheduler(setup, saver, progress)
    # a finished re-run needs no Ray
    connection = connect(address, dashboard, config.search) if not scheduler.finished else None
    cut_short: str | None = None
    try:
        setup.out_dir.mkdir(parents=True, exist_ok=True)
        start = time.perf_counter()
        if connection is not None:
            cut_short = _fit(setup, scheduler, verbose)
            progress.finish()
    finally:
        if connection is not None:
            connection.close()
    saver.flush(len(setup.table), setup.table.changes)
    evaluations = setup.table.frame()
    pareto = write_front(setup.out_dir, evaluations, config.task, setup.resources.primary_device)
    summary = format_summary(evaluations, pareto, config.task, setup.resources.primary_device,
                             config.search.latency_budgets_ms, scheduler.stats, time.perf_counter() - start)
    atomic_write_text(setup.out_dir / SUMMARY_FILE, summary + "\n")
    if connection is not None and not scheduler.finished:
        _raise_unfinished(setup, cut_short)
    _raise_if_failed(setup, scheduler.stats)
    return SearchResult(setup.out_dir, evaluations, pareto, summary, scheduler.stats, time.perf_counter() - start,
                        saver.stats)


def _raise_unfinished(setup: SearchSetup, reason: str | None) -> None:
    """The Tune run ended before the budgets were met (its state is saved): RunFailedError quoting `reason`, or
    KeyboardInterrupt (exit 130) when there is none: Tune stops on Ctrl-C (SIGINT) and returns as if done."""
    rows = len(setup.table)
    again = (f"{rows} evaluations are saved in {setup.out_dir / EVALUATIONS_FILE}, and running the same command "
             "again continues the search")
    if reason:
        raise RunFailedError(f"search: stopped before its budgets were met: {reason}; {again}")
    raise KeyboardInterrupt(f"search: stopped before its budgets were met (Ctrl-C); {again}")


def _raise_if_failed(setup: SearchSetup, stats: TrialStats) -> None:
    if not stats.given_up:
        return
    searcher, arch_id, error = stats.given_up[0]
    attempts = 1 + setup.config.search.max_trial_retries
    every = stats.evaluated == 0 and not stats.cached
    what = "every evaluation of this run failed" if every else f"{len(stats.given_up)} architectures failed"
    tries = f"{attempts} attempt{'s' if attempts > 1 else ''} each"
    raise RunFailedError(f"search: {what} ({tries}); first error (arch {arch_id} of {searcher}): "
                         f"{error}; they are kept in {setup.out_dir / EVALUATIONS_FILE} with their error, and running "
                         "the same command again evaluates them again without using up any budget")


# ----- outputs -----------------------------------------------------------------------------------------------------
def objectives(task: str, device: str) -> dict[str, str]:
    return {latency_column(device): "min", primary_metric(task): "max"}


def unique_evaluations(evaluations: pd.DataFrame) -> pd.DataFrame:
    """One row per arch (its first evaluation; cached copies dropped)."""
    return evaluations[~evaluations["cached"]].drop_duplicates("arch_id", keep="first")


def write_front(out_dir: Path, evaluations: pd.DataFrame, task: str, device: str) -> pd.DataFrame:
    """pareto.parquet (front rows with `rank` 0) and front/<arch_id>.json (stale files of earlier fronts removed)."""
    unique = unique_evaluations(evaluations)
    front = pareto_front(unique, objectives(task, device)) if len(unique) else unique.assign(rank=pd.Series(dtype=int))
    front = front.reset_index(drop=True)
    atomic_write_parquet(out_dir / PARETO_FILE, front)
    front_dir = out_dir / FRONT_DIR
    front_dir.mkdir(exist_ok=True)
    keep = set()
    for arch_json, arch_id in zip(front["arch"], front["arch_id"], strict=True):
        if not ARCH_ID_PATTERN.match(arch_id):  # ids name files: checked on load, and here once more
            raise BadInputError(f"arch_id {arch_id[:40]!r} is not an arch id", path=out_dir / EVALUATIONS_FILE)
        doc = json.loads(arch_json)
        atomic_write_text(front_dir / f"{arch_id}.json", json.dumps(doc, indent=2) + "\n")
        keep.add(f"{arch_id}.json")
    for path in front_dir.glob("*.json"):
        if path.name not in keep:
            path.unlink()
    return front


def format_summary(evaluations: pd.DataFrame, front: pd.DataFrame, task: str, device: str,
                   budgets_ms: list[float], stats: TrialStats | None = None, wall_seconds: float | None = None) -> str:
    """Front size, hypervolume per searcher (one common reference), best archs under latency budgets."""
    metric = primary_metric(task)
    lat = latency_column(device)
    unique = unique_evaluations(evaluations)
    lines = [f"evaluations: {len(unique)} archs ({int(evaluations['cached'].sum())} served from the table), "
             f"front size: {len(front)} ({lat} vs {metric})"]
    if stats is not None and wall_seconds:
        rate = stats.evaluated / wall_seconds * 60
        workers = f" by {len(stats.workers)} workers" if stats.workers else ""
        lines.append(f"this run: {stats.trials} batches{workers}, {stats.evaluated} archs evaluated in "
                     f"{wall_seconds:.1f} s ({rate:.1f} evaluations/min)")
    if unique[metric].notna().any():
        objs = objectives(task, device)
        reference = default_reference(unique, objs)
        lines.append(f"hypervolume ({lat} <= {reference[lat]:.4g} ms, {metric} >= 0):")
        for name, rows in evaluations.groupby("searcher", sort=True):
            rows = rows.drop_duplicates("arch_id")
            lines.append(f"  {name:16s} {hypervolume(rows, objs, reference):10.4f}  ({len(rows)} archs)")
        lines.append(f"  {'(overall)':16s} {hypervolume(unique, objs, reference):10.4f}")
        if not budgets_ms:
            budgets_ms = sorted({float(v) for v in unique[lat].quantile([0.25, 0.5, 0.75, 1.0])})
        best = best_under_budget(unique, metric, lat, budgets_ms)
        lines.append(f"best under latency budgets ({device}):")
        for _, row in best.iterrows():
            if isinstance(row["arch_id"], str):
                lines.append(f"  <= {row['budget']:8.3f} ms: {row['arch_id']}  {metric} {row[metric]:.4f}  "
                             f"{row[lat]:.3f} ms  {row['params_m']:.2f} M params  {row['macs_g']:.3f} GMACs")
            else:
                lines.append(f"  <= {row['budget']:8.3f} ms: none")
    return "\n".join(lines)

"""The Ray Tune search driver: every searcher of the config runs in ONE Tune run, side by side, sharing the cluster.

Design (chosen for robustness and low overhead):
- One `tune.Tuner` whose search algorithm is `ArchBatchSearcher`, a `ray.tune.search.Searcher` that multiplexes the
  configured inas searchers: `suggest(trial_id)` takes the next searcher (round robin) that is below its
  `concurrent_trials` and hands Tune a config `{"searcher": name, "archs": [Arch JSON, ...]}` with up to
  `archs_per_trial` new archs of that searcher (batching amortises Tune's per-trial overhead);
  `on_trial_complete` tells every arch's result to its searcher. An arch another searcher already evaluated is told
  from the results table, one being evaluated in another trial is told when that trial completes (`cached` rows);
  no arch is evaluated twice. Tune's own searcher checkpointing is not used.
- Trials run `evaluate_trial` (a function trainable) on Ray workers: the supernet weights travel once through the
  object store (`tune.with_parameters`, numpy arrays), the worker process builds the `AccuracyEvaluator` on its
  first trial and reuses it (`reuse_actors=True`); BN and validation batches are decoded once per worker.
- Resources (LUT latency per device, params, MACs) are computed in the driver (microseconds per arch).
- Resume: after every completed trial the driver writes `evaluations.parquet`, then `search_state.json` (every
  searcher's JSON `state_dict`), both atomically. Re-running the same command on the same output folder restores
  the searchers (archs that were in flight are asked again) and serves every arch already in
  `evaluations.parquet` from the table (`cached = True` rows, no recomputation), so nothing done is evaluated again.
  This does not depend on Tune's experiment restore, which cannot resume a custom searcher across a killed driver.
- Outputs in the folder: `evaluations.parquet`, `pareto.parquet` (front of the primary device's latency vs the task
  metric, `rank` 0), `front/<arch_id>.json` (one Arch JSON per front point), `search_state.json`, `tune/` (Tune's
  trial logs), and the printed summary (`format_summary`).
"""

from __future__ import annotations

import json
import logging
import math
import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from inas.config import ExperimentConfig
from inas.errors import BadInputError
from inas.io import atomic_write_json, atomic_write_parquet, atomic_write_text
from inas.ray_address import join_ray_cluster
from inas.search.evaluators import (
    EvaluationTable,
    ResourceEvaluator,
    file_key,
    load_latency_predictors,
    load_search_supernet,
    supernet_payload,
)
from inas.search.pareto import best_under_budget, default_reference, hypervolume, pareto_front
from inas.search.schema import EVALUATIONS_FILE, PARETO_FILE, TASK_METRICS, latency_column, primary_metric
from inas.search.searchers import Searcher, build_searcher
from inas.search.warm_start import read_warm_start, warm_start_searchers
from inas.space import Arch, SearchSpace, arch_from_json

log = logging.getLogger(__name__)

STATE_FILE = "search_state.json"
FRONT_DIR = "front"
STATE_FORMAT = "inas-search-state"
STATE_VERSION = 1


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


def _devices(config: ExperimentConfig) -> list[str]:
    devices = config.search.devices or [d.name for d in config.lut.devices]
    if not devices or len(set(devices)) != len(devices):
        raise BadInputError(f"must list at least one device, each once, got {devices}", key="search.devices")
    return devices


def prepare_search(config: ExperimentConfig, out_dir: str | Path | None = None,
                   supernet_path: str | Path | None = None, lut_dir: str | Path | None = None,
                   resume: bool = False, warm_start: Sequence[str | Path] = ()) -> SearchSetup:
    """Load and check the supernet, the latency tables, the searchers and any previous state in `out_dir`.

    Raises BadInputError (before any Ray work) for a missing/foreign checkpoint, a missing/incomplete table, an
    unknown searcher or parameter, `resume=True` without a previous run, or a previous run of another config.
    """
    from inas.latency import lut_input_hw

    start = time.perf_counter()
    search = config.search
    space = config.space.build()
    out_dir = Path(out_dir) if out_dir is not None else search.out_dir
    supernet_path = supernet_path if supernet_path is not None else search.supernet
    if supernet_path is None:
        raise BadInputError("no supernet checkpoint: set search.supernet in the config or pass --supernet",
                            key="search.supernet")
    supernet_path = Path(supernet_path)
    lut_dir = Path(lut_dir) if lut_dir is not None else (search.lut_dir or config.lut.out_dir)
    input_hw = lut_input_hw(config)
    predictors = load_latency_predictors(lut_dir, _devices(config), space, config.num_classes, input_hw)
    resources = ResourceEvaluator(predictors, space, input_hw, config.num_classes)
    metric = primary_metric(config.task)
    device_fns = {device: predictor.predict for device, predictor in resources.predictors.items()}
    searchers: dict[str, Searcher] = {}
    concurrency: dict[str, int] = {}
    for i, spec in enumerate(search.searchers):
        params = {"metric": metric, "mode": "max", **spec.params}
        try:
            searchers[spec.name] = build_searcher(spec.kind, space, resources.latency_ms, spec.budget,
                                                  config.seed + i, device_latency_fns=device_fns, **params)
        except BadInputError as exc:
            raise BadInputError(str(exc), key=f"search.searchers[{i}]") from None
        concurrency[spec.name] = spec.concurrent_trials
    if warm_start:  # earlier evaluations (`--warm-start`); a resumed state below holds them already
        warm_start_searchers(searchers, read_warm_start(warm_start, space, config.task, device_fns))
    supernet = load_search_supernet(supernet_path, space, config.num_classes)
    check_data(config)
    table = EvaluationTable(config.task, resources.latency_columns)
    resumed = _restore(out_dir, config, searchers, table, resume)
    return SearchSetup(config, space, out_dir, supernet_path, supernet, resources, searchers, concurrency, table,
                       resumed, time.perf_counter() - start)


def check_data(config: ExperimentConfig) -> None:
    """The training list (BN recalibration) and the validation list exist and are complete (BadInputError naming the
    list and the bad entries otherwise), so workers do not all fail on them later."""
    from inas.data import bn_dataset, eval_dataset

    bn_dataset(config.data, config.task, progress=False)
    eval_dataset(config.data, config.task, progress=False)


def _restore(out_dir: Path, config: ExperimentConfig, searchers: Mapping[str, Searcher], table: EvaluationTable,
             resume: bool) -> bool:
    state_path = out_dir / STATE_FILE
    evaluations_path = out_dir / EVALUATIONS_FILE
    if not state_path.is_file():
        if resume:
            raise BadInputError("nothing to resume: no search_state.json in the output folder", path=out_dir,
                                key="--resume")
        if evaluations_path.is_file():  # results of another run without state: reuse them as a cache only
            for row in EvaluationTable.load(evaluations_path, table.task, table.latency_columns).rows:
                table.add(row)
        return False
    try:
        state = json.loads(state_path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise BadInputError(f"cannot read the search state ({exc})", path=state_path) from None
    if not isinstance(state, dict) or state.get("format") != STATE_FORMAT or state.get("version") != STATE_VERSION:
        raise BadInputError(f"not a search state (format {STATE_FORMAT!r} version {STATE_VERSION})", path=state_path)
    if state.get("task") != config.task:
        raise BadInputError(f"the folder holds a {state.get('task')!r} search, the config is {config.task!r}; use "
                            "another output folder", path=state_path, key="task")
    if evaluations_path.is_file():
        for row in EvaluationTable.load(evaluations_path, table.task, table.latency_columns).rows:
            table.add(row)
    saved = state.get("searchers", {})
    for name, searcher in searchers.items():
        if name in saved:
            try:
                searcher.load_state_dict(saved[name])
            except BadInputError as exc:
                raise BadInputError(f"searcher {name!r} cannot resume: {exc}", path=state_path) from None
    log.info("resuming the search in %s: %d evaluations so far", out_dir, len(table))
    return True


def save_state(out_dir: Path, config: ExperimentConfig, searchers: Mapping[str, Searcher],
               table: EvaluationTable) -> None:
    """evaluations.parquet first, then the searcher states (so every told arch is in the table on resume)."""
    table.save(out_dir / EVALUATIONS_FILE)
    atomic_write_json(out_dir / STATE_FILE, {
        "format": STATE_FORMAT, "version": STATE_VERSION, "task": config.task,
        "searchers": {name: s.state_dict() for name, s in searchers.items()},
    })


# ----- the Tune searcher -------------------------------------------------------------------------------------------
def _tune_searcher_base() -> type:
    from ray.tune.search import Searcher as TuneSearcher

    return TuneSearcher


@dataclass
class _Trial:
    searcher: str
    archs: list[Arch]
    started: float


@dataclass
class TrialStats:
    trials: int = 0
    failed_trials: int = 0
    evaluated: int = 0
    cached: int = 0
    trial_seconds: list[float] = field(default_factory=list)  # driver-side wall time from suggest to complete
    eval_seconds: list[float] = field(default_factory=list)  # worker-side evaluation time per trial
    completed_at: list[float] = field(default_factory=list)  # perf_counter() when each trial completed
    archs_per_completed: list[int] = field(default_factory=list)  # archs of each completed trial
    worker_per_completed: list[int] = field(default_factory=list)  # worker pid of each completed trial (-1: failed)

    @property
    def workers(self) -> set[int]:
        """Worker processes that ran trials successfully (each builds one evaluator)."""
        return set(self.worker_per_completed) - {-1}

    def steady_evaluations_per_minute(self) -> float:
        """Archs per minute in steady state, excluding each worker's start-up: per worker process, the archs of its
        2nd..last trials over the time between its first and last completion, summed over workers. (Per worker, so
        that trials completing side by side on concurrent workers do not inflate the rate.) NaN if no worker
        completed two trials."""
        per_worker: dict[int, list[tuple[float, int]]] = {}
        for pid, at, archs in zip(self.worker_per_completed, self.completed_at, self.archs_per_completed, strict=True):
            if pid != -1:
                per_worker.setdefault(pid, []).append((at, archs))
        rate = 0.0
        counted = False
        for done in per_worker.values():
            if len(done) >= 2 and done[-1][0] > done[0][0]:
                rate += sum(a for _, a in done[1:]) / (done[-1][0] - done[0][0]) * 60
                counted = True
        return rate if counted else math.nan


def make_tune_searcher(setup: SearchSetup, archs_per_trial: int):
    """An `ArchBatchSearcher` over `setup` (a ray.tune.search.Searcher instance; see the module docstring)."""
    base = _tune_searcher_base()

    class ArchBatchSearcher(base):  # type: ignore[misc, valid-type]
        def __init__(self) -> None:
            super().__init__(metric=None, mode=None)
            self.setup = setup
            self.k = archs_per_trial
            self.order = list(setup.searchers)
            self.next_index = 0
            self.live: dict[str, _Trial] = {}
            self.running = {name: 0 for name in self.order}
            self.waiting: dict[str, list[tuple[str, Arch]]] = {}  # arch id being evaluated -> other askers
            self.stats = TrialStats()

        # Tune API ------------------------------------------------------------------------------------------------
        def set_search_properties(self, metric, mode, config, **spec) -> bool:  # noqa: ANN001
            return True

        def suggest(self, trial_id: str):  # noqa: ANN201
            for offset in range(len(self.order)):
                name = self.order[(self.next_index + offset) % len(self.order)]
                if self.running[name] >= self.setup.concurrency[name]:
                    continue
                batch = self._collect(name)
                if batch:
                    self.next_index = (self.next_index + offset + 1) % len(self.order)
                    self.live[trial_id] = _Trial(name, batch, time.perf_counter())
                    self.running[name] += 1
                    return {"searcher": name, "archs": [a.to_json() for a in batch]}
            if not self.live and all(s.is_finished() for s in self.setup.searchers.values()):
                return base.FINISHED
            return None

        def on_trial_complete(self, trial_id: str, result: dict | None = None, error: bool = False) -> None:
            trial = self.live.pop(trial_id, None)
            if trial is None:
                return
            self.running[trial.searcher] -= 1
            self.stats.trials += 1
            self.stats.trial_seconds.append(time.perf_counter() - trial.started)
            self.stats.completed_at.append(time.perf_counter())
            self.stats.archs_per_completed.append(len(trial.archs))
            scores: dict[str, dict] = {}
            if result and not error and "evaluations" in result:
                scores = json.loads(result["evaluations"])
                self.stats.eval_seconds.append(float(result.get("eval_seconds_total", math.nan)))
                self.stats.worker_per_completed.append(int(result.get("worker_pid", 0)))
            else:
                self.stats.worker_per_completed.append(-1)
                self.stats.failed_trials += 1
                log.warning("trial %s of searcher %s failed; its %d archs are recorded as failed", trial_id,
                            trial.searcher, len(trial.archs))
            for arch in trial.archs:
                arch_scores = scores.get(arch.arch_id) or {}
                self._record(trial.searcher, arch, arch_scores, trial_id, cached=False)
                for name, same in self.waiting.pop(arch.arch_id, []):  # asked by another searcher meanwhile
                    self._record(name, same, arch_scores, trial_id, cached=True)
            save_state(self.setup.out_dir, self.setup.config, self.setup.searchers, self.setup.table)

        def save_to_dir(self, checkpoint_dir: str, session_str: str = "default") -> None:
            """The state lives in the output folder (`save_state`), not in Tune's experiment folder."""

        def restore_from_dir(self, checkpoint_dir: str) -> None:
            """See `save_to_dir`."""

        # internals -----------------------------------------------------------------------------------------------
        def _collect(self, name: str) -> list[Arch]:
            """Up to k new archs of searcher `name`; archs already in the table are told at once from it, archs being
            evaluated in another searcher's trial are told when that trial completes."""
            searcher = self.setup.searchers[name]
            batch: list[Arch] = []
            told_from_cache = False
            while len(batch) < self.k:
                arch = searcher.ask()
                if arch is None:
                    break
                row = self.setup.table.lookup(arch.arch_id)
                if row is not None:
                    self._record(name, arch, row, row.get("trial_id", ""), cached=True)
                    told_from_cache = True
                    continue
                if any(arch.arch_id == a.arch_id for t in self.live.values() for a in t.archs):
                    self.waiting.setdefault(arch.arch_id, []).append((name, arch))  # told when that trial ends
                    continue
                batch.append(arch)
            if told_from_cache:
                save_state(self.setup.out_dir, self.setup.config, self.setup.searchers, self.setup.table)
            return batch

        def _record(self, name: str, arch: Arch, scores: Mapping[str, Any], trial_id: str, cached: bool) -> None:
            setup = self.setup
            metrics = {m: _float(scores.get(m)) for m in TASK_METRICS[setup.config.task]}
            resources = setup.resources.evaluate(arch)
            searcher = setup.searchers[name]
            searcher.tell(arch, {**metrics, "latency_ms": resources[latency_column(setup.resources.primary_device)]})
            row = {"arch_id": arch.arch_id, "arch": arch.to_json(), "searcher": name, **searcher.tags(arch),
                   **metrics, **resources, "eval_seconds": _float(scores.get("eval_seconds")), "cached": cached,
                   "trial_id": str(trial_id)}
            if "error" in scores:
                row["error"] = str(scores["error"])
            setup.table.add(row)
            if cached:
                self.stats.cached += 1
            else:
                self.stats.evaluated += 1

    return ArchBatchSearcher()


def _float(value: Any) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan


# ----- the trial (runs on Ray workers) -----------------------------------------------------------------------------
def evaluate_batch(evaluate: Any, space: SearchSpace, arch_jsons: list[str]) -> tuple[dict[str, dict], float]:
    """Score Arch JSON documents with `evaluate(arch) -> {metric: value, "eval_seconds": s}`: ({arch_id: scores or
    {"error": text}}, total evaluation seconds). A failing arch is logged and recorded as failed, the rest go on."""
    results: dict[str, dict] = {}
    total = 0.0
    for doc in arch_jsons:
        arch = arch_from_json(doc, space, "trial config")
        try:
            scores = dict(evaluate(arch))
            total += float(scores.get("eval_seconds", 0.0))
        except Exception as exc:  # noqa: BLE001 - one broken arch must not lose the batch; recorded as failed
            log.exception("evaluation of %s failed", arch.arch_id)
            scores = {"error": f"{type(exc).__name__}: {exc}"}
        results[arch.arch_id] = scores
    return results, total


def evaluate_trial(config: dict, payload: dict | None = None, setup: dict | None = None) -> None:
    """Tune function trainable: score every arch of `config["archs"]` with this worker's `AccuracyEvaluator` and
    report `{"evaluations": JSON {arch_id: {metric: value, "eval_seconds": s} | {"error": text}}, ...}`."""
    import torch
    from ray import tune

    from inas.search.evaluators import worker_evaluator

    assert payload is not None and setup is not None
    torch.set_num_threads(max(1, int(setup.get("threads", 1))))  # oversubscribed threads are 10-50x slower
    evaluator = worker_evaluator(payload, setup)
    results, total = evaluate_batch(evaluator.evaluate, evaluator.space, config["archs"])
    tune.report({"evaluations": json.dumps(results), "eval_seconds_total": total, "archs": len(results),
                 "worker_pid": os.getpid(), "worker_evaluations": evaluator.evaluations})


# ----- Ray ---------------------------------------------------------------------------------------------------------
def connect(address: str | None, dashboard: bool = True) -> bool:
    """Join the cluster at `address` (or RAY_ADDRESS, e.g. inside `ray job submit`), else start a local Ray with
    every CPU of this machine (dashboard on 127.0.0.1 when `dashboard`). Returns True if this call started or
    joined Ray (the caller shuts it down)."""
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    import ray

    if ray.is_initialized():
        return False
    address = address or os.environ.get("RAY_ADDRESS")
    if address:
        join_ray_cluster(address, hint="; with token authentication (on by default in Ray 2.60) export "
                         "RAY_AUTH_MODE=token and RAY_AUTH_TOKEN=<output of `ray get-auth-token` on the head node>")
        return True
    ray.init(num_cpus=os.cpu_count(), include_dashboard=dashboard, dashboard_host="127.0.0.1",
             logging_level=logging.WARNING, log_to_driver=False)
    return True


_ENV_SET_HERE: dict[str, str] = {}


def _set_env_default(key: str, value: str) -> None:
    """`os.environ[key] = value` unless the user set `key`; a value set by an earlier call is replaced (run_search may
    run several times in one process, e.g. a benchmark or a notebook, with different concurrency)."""
    if key not in os.environ or os.environ[key] == _ENV_SET_HERE.get(key):
        os.environ[key] = value
        _ENV_SET_HERE[key] = value


@dataclass
class SearchResult:
    out_dir: Path
    evaluations: pd.DataFrame
    pareto: pd.DataFrame
    summary: str
    stats: TrialStats
    wall_seconds: float


def run_search(setup: SearchSetup, address: str | None = None, dashboard: bool = True,
               verbose: int = 0) -> SearchResult:
    """Run every searcher of `setup` to its budget under one Tune run; write the outputs; return them."""
    os.environ.setdefault("TUNE_DISABLE_AUTO_CALLBACK_LOGGERS", "1")  # no per-trial CSV/JSON/TensorBoard files
    os.environ.setdefault("TUNE_MAX_LEN_IDENTIFIER", "40")  # archs are in the config: keep trial folder names short
    # Tune keeps 1 trial pending with a search algorithm: allow one per concurrent slot, so every slot gets its own
    # worker actor (with a single pending trial the first actor is reused and the second is never started)
    _set_env_default("TUNE_MAX_PENDING_TRIALS_PG", str(sum(setup.concurrency.values())))
    if not verbose:
        os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")  # the legacy reporter honours verbose=0 (no tables)
        # per-trial result files are disabled above, so Tune's end-of-run analysis finds none: not a problem
        logging.getLogger("ray.tune.analysis.experiment_analysis").setLevel(logging.ERROR)
    import ray
    from ray import tune

    config = setup.config
    search = config.search
    unfinished = not all(s.is_finished() for s in setup.searchers.values())  # a finished search's re-run needs no Ray
    started = connect(address, dashboard) if unfinished else False  # a dead address fails here, before any output
    try:
        setup.out_dir.mkdir(parents=True, exist_ok=True)
        start = time.perf_counter()
        tune_searcher = make_tune_searcher(setup, search.archs_per_trial)
        if unfinished:
            payload = supernet_payload(setup.supernet, file_key(setup.supernet_path))
            worker_setup = {"data": config.data.model_dump(mode="json"), "task": config.task,
                            "bn_batches": search.bn_recalibration_batches, "val_batch_size": search.val_batch_size,
                            "seed": config.seed, "threads": max(1, int(search.cpus_per_trial)),
                            "cuda": search.gpus_per_trial > 0}
            trainable = tune.with_parameters(evaluate_trial, payload=payload, setup=worker_setup)
            trainable = tune.with_resources(trainable, {"cpu": search.cpus_per_trial, "gpu": search.gpus_per_trial})
            tuner = tune.Tuner(
                trainable,
                tune_config=tune.TuneConfig(search_alg=tune_searcher, num_samples=-1, reuse_actors=True),
                run_config=tune.RunConfig(name="tune", storage_path=str(setup.out_dir.resolve()), verbose=verbose,
                                          failure_config=tune.FailureConfig(max_failures=0)),
            )
            tuner.fit()
    finally:
        if started:
            ray.shutdown()
    save_state(setup.out_dir, config, setup.searchers, setup.table)
    stats = tune_searcher.stats
    if stats.trials and stats.failed_trials == stats.trials:
        raise RuntimeError(f"every trial of this run failed ({stats.trials}); see the trial errors under "
                           f"{setup.out_dir / 'tune'}")
    evaluations = setup.table.frame()
    pareto = write_front(setup.out_dir, evaluations, config.task, setup.resources.primary_device)
    summary = format_summary(evaluations, pareto, config.task, setup.resources.primary_device,
                             search.latency_budgets_ms, tune_searcher.stats, time.perf_counter() - start)
    atomic_write_text(setup.out_dir / "summary.txt", summary + "\n")
    return SearchResult(setup.out_dir, evaluations, pareto, summary, tune_searcher.stats, time.perf_counter() - start)


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
        lines.append(f"this run: {stats.trials} trials, {stats.evaluated} archs evaluated in {wall_seconds:.1f} s "
                     f"({rate:.1f} evaluations/min)")
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

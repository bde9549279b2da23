"""The search driver at scale, by simulation: can ONE driver keep 8, 16, 32 and 64 concurrent trials busy, and what
does saving the search state cost as the results table grows?

The driver is the real one (`run_search`: Ray Tune running one long-lived worker slot per concurrent batch, the
`SlotDispatcher` and `TrialScheduler`, the searchers, the resource evaluator on the full iNAS space, the state saves);
only the workers' evaluator is replaced, through `SearchSetup.evaluator`, by a controlled-cost one that sleeps
`--eval-s` seconds per architecture and reports a synthetic accuracy (`inas.search.testing`). Why this hook and not
an environment variable read by the worker: the real worker's code path stays free of test branches, and the
benchmark's factory travels to the workers the way the real one does (`tune.with_parameters`, pickled by value since
this file runs as `__main__`). Slots reserve a fraction of a CPU (`--cpus-per-trial`, default 1.9 / 64) so that 64
run at once on a 2-core machine: the workers sleep, the driver is what is measured. Each slot's worker is a separate
process of about 240 MB (Tune's function trainable imports ray.tune, pandas and pyarrow): 64 slots need about 15 GB.

1. Throughput (Ray): one random searcher with `concurrent_trials` C in --concurrency (default 8 16 32 64),
   --archs-per-trial archs per batch, --rounds batches per slot. Figures per C (`trials` counts batches):
   - ideal evals/min = C x 60 / eval_s (every slot always evaluating);
   - steady evals/min: per worker, the archs of its 2nd..last batches over the time between its first and last
     completion, summed over workers (`TrialStats.steady_evaluations_per_minute`: worker start-up excluded);
     efficiency = steady / ideal (target >= 90 % at C = 64 with 2-s evaluations); worker efficiency = steady / (the
     workers that ran x 60 / eval_s): how busy the driver keeps the workers Ray did start. `workers` (the worker
     processes that evaluated batches) is C when every slot's worker started before the budget ran out. Before the
     slots (one Tune trial per batch, reuse_actors=True) it fell far short of C: Tune scheduled an actor for every
     pending trial and, when a finished trial's cached actor freed up first, gave it the next trial and removed the
     actor it had scheduled (`TuneController._maybe_reuse_cached_actor`), so most starts (2-3 CPU-s each here) were
     wasted: 587 actors destroyed for 512 trials at C = 64, 12-21 workers ever ran, efficiency 0.17-0.29. With
     slots Tune starts C actors once;
   - gap ms: per worker, the median time between two consecutive batches beyond the evaluation itself (Tune's and
     the driver's share of a slot: a result through Tune, the scheduler, a post to the mailbox actor, the take);
   - driver CPU ms per batch (the driver process: Tune's loop, the dispatcher and scheduler, resources, saves) and
     its share of one core over the run;
   - suggest latency: median and max ms of the `TrialScheduler.suggest` calls that started a batch (asks, table
     look-ups, resources); `complete` likewise over every batch (tells, rows, saves);
   - state-write ms per batch: seconds spent in full saves / batches, and the number of full saves.
2. State writes (no Ray): --write-evals evaluations told one trial at a time (the scheduler and the real saves, no
   Tune) with the old policy (a full save after every trial: `SavePolicy(growth=0)`, up to --old-evals since it is
   quadratic) and the current one (`SavePolicy()`): full saves, rows written, save ms per trial, and the cost of ONE
   full save at the final table size (what the old policy paid per trial there).

Prints tables and appends one JSON line per part to benchmarks/results.jsonl (with `lscpu` model and flags, and the
load average: this 2-core machine may be shared).

    python benchmarks/bench_driver_scale.py [--concurrency 8 16 32 64 --eval-s 2 --archs-per-trial 4 --rounds 8]
        [--write-evals 10000 --old-evals 2000] [--skip-throughput | --skip-writes] [--note TEXT]
"""

from __future__ import annotations

import argparse
import itertools
import logging
import math
import os
import resource
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.common import format_table, record_result  # noqa: E402
from inas.config import parse_config  # noqa: E402
from inas.search.driver import SearchSetup, build_scheduler, connect, run_search, state_saver  # noqa: E402
from inas.search.evaluators import EvaluationTable, ResourceEvaluator  # noqa: E402
from inas.search.scheduler import TrialConfig, TrialScheduler  # noqa: E402
from inas.search.searchers import build_searcher  # noqa: E402
from inas.search.state import SavePolicy  # noqa: E402
from inas.search.testing import synthetic_latency_ms  # noqa: E402
from inas.search.trial import ArchOutcome, EvaluatorFactory, TrialReport  # noqa: E402

INPUT_HW = (320, 320)


class SyntheticLatency:
    """A latency predictor without a table: `inas.search.testing.synthetic_latency_ms` (a MAC count)."""

    def predict(self, arch: Any) -> float:
        return synthetic_latency_ms(arch)


def make_setup(out_dir: Path, concurrency: int, budget: int, archs_per_trial: int, cpus_per_trial: float,
               evaluator: EvaluatorFactory | None, policy: SavePolicy = SavePolicy()) -> SearchSetup:
    """A search of the full iNAS space with one random searcher, synthetic latencies, no supernet (the workers
    evaluate with `evaluator`)."""
    doc = {"task": "sod", "seed": 0,
           "search": {"archs_per_trial": archs_per_trial, "cpus_per_trial": cpus_per_trial, "max_trial_retries": 2,
                      "searchers": [{"kind": "random", "budget": budget, "concurrent_trials": concurrency}]}}
    config = parse_config(doc, "bench_driver_scale")
    space = config.space.build()
    resources = ResourceEvaluator({"synthetic": SyntheticLatency()}, space, INPUT_HW, config.num_classes)
    searcher = build_searcher("random", space, resources.latency_ms, budget, 0, metric="max_fmeasure", mode="max")
    table = EvaluationTable("sod", resources.latency_columns)
    return SearchSetup(config, space, out_dir, out_dir / "no-supernet.pt", None, resources, {"random": searcher},
                       {"random": concurrency}, table, save_policy=policy, evaluator=evaluator)


def sleep_evaluator_of(eval_s: float) -> EvaluatorFactory:
    """An `EvaluatorFactory` whose evaluator sleeps `eval_s` per arch and reports the synthetic accuracy (a closure:
    pickled by value with `eval_s`)."""

    def sleep_evaluator(payload: Any, setup: Any) -> Callable[[Sequence[str]], TrialReport]:
        from inas.search.testing import synthetic_accuracy
        from inas.space import arch_from_json, inas_space

        space = inas_space()
        evaluations = 0

        def evaluate(arch_jsons: Sequence[str]) -> TrialReport:
            nonlocal evaluations
            start = time.perf_counter()
            outcomes = {}
            for i, doc in enumerate(arch_jsons):
                arch = arch_from_json(doc, space, "trial config")
                accuracy = synthetic_accuracy(arch)
                time.sleep(max(0.0, start + (i + 1) * eval_s - time.perf_counter()))
                outcomes[arch.arch_id] = ArchOutcome({"max_fmeasure": accuracy, "mae": 1 - accuracy}, eval_s)
            evaluations += len(outcomes)
            return TrialReport(outcomes, time.perf_counter() - start, os.getpid(), evaluations)

        return evaluate

    return sleep_evaluator


class Timed:
    """Wraps a method of TrialScheduler to record its wall time per call (seconds) when `keep(returned)` holds."""

    def __init__(self, name: str, keep: Callable[[Any], bool] = lambda returned: True) -> None:
        self.name = name
        self.seconds: list[float] = []
        self.original = getattr(TrialScheduler, name)
        self.keep = keep

    def __enter__(self) -> Timed:
        original, seconds, keep = self.original, self.seconds, self.keep

        def timed(scheduler: TrialScheduler, *args: Any) -> Any:
            start = time.perf_counter()
            returned = original(scheduler, *args)
            if keep(returned):
                seconds.append(time.perf_counter() - start)
            return returned

        setattr(TrialScheduler, self.name, timed)
        return self

    def __exit__(self, *exc: Any) -> None:
        setattr(TrialScheduler, self.name, self.original)


def _ms(values: list[float], how: Callable[[list[float]], float]) -> float:
    return round(how(values) * 1e3, 2) if values else math.nan


def trial_gaps(stats: Any) -> list[float]:
    """Per worker, the time between a trial's completion and the next one's minus its evaluation time (seconds):
    the driver's and Tune's share of a slot's time (each worker's first trial, which includes its start-up, left
    out)."""
    by_worker: dict[int, list[tuple[float, float]]] = {}
    ok = [(pid, at) for pid, at in zip(stats.worker_per_completed, stats.completed_at, strict=True) if pid != -1]
    for (pid, at), eval_s in zip(ok, stats.eval_seconds, strict=True):  # eval_seconds: successful trials only
        by_worker.setdefault(pid, []).append((at, eval_s))
    gaps = []
    for done in by_worker.values():
        gaps += [(b[0] - a[0]) - b[1] for a, b in itertools.pairwise(done)]
    return gaps


def throughput(concurrency: int, args: argparse.Namespace, root: Path) -> dict[str, Any]:
    budget = concurrency * args.archs_per_trial * args.rounds
    setup = make_setup(root / f"c{concurrency}", concurrency, budget, args.archs_per_trial, args.cpus_per_trial,
                       sleep_evaluator_of(args.eval_s))
    cpu_before = resource.getrusage(resource.RUSAGE_SELF)
    is_trial = lambda returned: isinstance(returned, TrialConfig)  # noqa: E731 - calls that started a trial
    with Timed("suggest", is_trial) as suggest, Timed("complete") as complete:
        result = run_search(setup, dashboard=False)
    cpu_after = resource.getrusage(resource.RUSAGE_SELF)
    cpu_s = (cpu_after.ru_utime - cpu_before.ru_utime) + (cpu_after.ru_stime - cpu_before.ru_stime)
    stats = result.stats
    ideal = concurrency * 60 / args.eval_s
    steady = stats.steady_evaluations_per_minute()
    workers = len(stats.workers)
    return {"concurrency": concurrency, "archs": len(result.evaluations), "trials": stats.trials,
            "failed_trials": stats.failed_trials, "workers": len(stats.workers),
            "wall_s": round(result.wall_seconds, 1),
            "ideal_evals_per_min": round(ideal, 1), "steady_evals_per_min": round(steady, 1),
            "efficiency": round(steady / ideal, 3),
            "worker_efficiency": round(steady / (workers * 60 / args.eval_s), 3) if workers else math.nan,
            "gap_ms_median": _ms(trial_gaps(stats), statistics.median),
            "wall_evals_per_min": round(len(result.evaluations) / result.wall_seconds * 60, 1),
            "driver_cpu_ms_per_trial": round(cpu_s / max(1, stats.trials) * 1e3, 1),
            "driver_cpu_share": round(cpu_s / result.wall_seconds, 3),
            "suggest_ms_median": _ms(suggest.seconds, statistics.median), "suggest_ms_max": _ms(suggest.seconds, max),
            "complete_ms_median": _ms(complete.seconds, statistics.median),
            "complete_ms_max": _ms(complete.seconds, max),
            "full_saves": result.saves.saves,
            "state_write_ms_per_trial": round(result.saves.save_seconds / max(1, stats.trials) * 1e3, 2),
            "load_average_1m_after": round(os.getloadavg()[0], 1)}


def state_writes(evals: int, policy: SavePolicy, archs_per_trial: int, root: Path) -> dict[str, Any]:
    """`evals` evaluations told `archs_per_trial` at a time through the scheduler (no Tune), saved by `policy`."""
    setup = make_setup(root, 1, evals, archs_per_trial, 1.0, None, policy)
    saver = state_saver(setup)
    scheduler = build_scheduler(setup, saver)
    trials = 0
    start = time.perf_counter()
    while isinstance(config := scheduler.suggest(f"t{trials}"), TrialConfig):
        outcomes = {a.arch_id: ArchOutcome({"max_fmeasure": 0.5, "mae": 0.5}, 0.0) for a in config.archs}
        scheduler.complete(f"t{trials}", TrialReport(outcomes, 0.0, os.getpid(), 1))
        trials += 1
    loop_s = time.perf_counter() - start
    one_start = time.perf_counter()
    saver.flush(len(setup.table), setup.table.changes)
    one_save_s = time.perf_counter() - one_start
    each = saver.stats.save_seconds_each[:-1]
    return {"policy": "every trial" if policy.growth == 0 else f"growth {policy.growth}, {policy.interval_s:g} s",
            "evaluations": len(setup.table), "trials": trials, "full_saves": len(each),
            "rows_written": saver.stats.rows_written - len(setup.table),
            "save_ms_per_trial": round(sum(each) / max(1, trials) * 1e3, 2),
            "loop_s": round(loop_s, 1), "one_full_save_ms_at_end": round(one_save_s * 1e3, 1)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--concurrency", type=int, nargs="+", default=[8, 16, 32, 64])
    parser.add_argument("--eval-s", type=float, default=2.0, help="seconds per architecture on the worker")
    parser.add_argument("--archs-per-trial", type=int, default=4, help="default: search.archs_per_trial's")
    parser.add_argument("--rounds", type=int, default=8, help="trials per concurrent slot")
    parser.add_argument("--cpus-per-trial", type=float, default=None, help="default: 1.9 / the largest concurrency")
    parser.add_argument("--write-evals", type=int, default=10_000)
    parser.add_argument("--old-evals", type=int, default=2000, help="evaluations with a full save per trial")
    parser.add_argument("--skip-throughput", action="store_true")
    parser.add_argument("--skip-writes", action="store_true")
    parser.add_argument("--no-record", action="store_true", help="do not append to benchmarks/results.jsonl")
    parser.add_argument("--note", default="", help="a note stored with the records (e.g. what else loaded the machine)")
    args = parser.parse_args(argv)
    args.cpus_per_trial = args.cpus_per_trial or round(1.9 / max(args.concurrency), 4)
    logging.basicConfig(level=logging.WARNING)
    machine = {"load_average_1m": os.getloadavg()[0], **({"note": args.note} if args.note else {})}
    with tempfile.TemporaryDirectory(prefix="bench_driver_scale_") as tmp:
        root = Path(tmp)
        if not args.skip_writes:
            rows = [state_writes(args.old_evals, SavePolicy(growth=0.0, interval_s=0.0), 1, root / "old"),
                    state_writes(args.old_evals, SavePolicy(), 1, root / "new_small"),
                    state_writes(args.write_evals, SavePolicy(), 1, root / "new")]
            print(format_table(rows, list(rows[0])))
            if not args.no_record:
                record_result("driver_state_writes", {**machine, "rows": rows})
        if not args.skip_throughput:
            connection = connect(None, dashboard=False)
            try:
                rows = []
                for concurrency in args.concurrency:
                    rows.append(throughput(concurrency, args, root))
                    print(format_table(rows[-1:], list(rows[-1])), flush=True)
            finally:
                connection.close()
            print(format_table(rows, list(rows[0])))
            if not args.no_record:
                settings = {k: getattr(args, k) for k in ("eval_s", "archs_per_trial", "rounds", "cpus_per_trial")}
                record_result("driver_scale", {**machine, **settings, "rows": rows})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

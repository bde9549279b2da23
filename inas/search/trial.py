"""What crosses the process boundary of a search trial, typed, and the trial itself (runs on Ray workers).

- `WorkerSetup`: what every trial worker needs besides the supernet (data config, task, BN batches, ...), built once
  by the driver and passed through `tune.with_parameters`.
- `BatchOrder`: what the driver posts to a worker slot (`inas.search.slots`): one batch of Arch JSON documents to
  evaluate, or stop.
- `TrialReport`: what a worker sends back per batch (`tune.report` takes a flat dict: `to_result` / `from_result`
  convert and check it): one `ArchOutcome` per architecture, or a batch-level `error` when the worker could not even
  build its evaluator; a report with no `batch_id` is the worker's "ready" signal.
- `evaluate_trial`: the Tune function trainable of one worker slot: builds its evaluator once, then evaluates the
  batches the driver posts until told to stop (`accuracy_evaluator` builds the real evaluator; a driver benchmark
  passes another `EvaluatorFactory`).
"""

from __future__ import annotations

import json
import logging
import math
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from typing import Any, Protocol

from inas.config import DataConfig
from inas.space import Arch, SearchSpace, arch_from_json

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class WorkerSetup:
    """Everything a trial worker needs to build its accuracy evaluator, besides the supernet weights."""

    data: DataConfig
    task: str
    bn_batches: int
    val_batch_size: int
    seed: int
    threads: int = 1
    cuda: bool = False

    def cache_key(self) -> str:
        doc = {**asdict(self), "data": self.data.model_dump(mode="json")}
        return json.dumps(doc, sort_keys=True, default=str)


@dataclass(frozen=True)
class ArchOutcome:
    """The evaluation of one architecture: `metrics` ({name: value}, empty on failure) or `error` (one line)."""

    metrics: dict[str, float] = field(default_factory=dict)
    eval_seconds: float = math.nan
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None and bool(self.metrics)


@dataclass(frozen=True)
class BatchOrder:
    """What the driver posts to a worker slot: evaluate `archs` (Arch JSON documents) of `searcher` as batch
    `batch_id`, or stop (`STOP`: no batch id)."""

    batch_id: str
    searcher: str = ""
    archs: tuple[str, ...] = ()

    @property
    def stop(self) -> bool:
        return not self.batch_id


STOP = BatchOrder("")


@dataclass(frozen=True)
class TrialReport:
    """A batch's result: one outcome per arch id, the total evaluation time, the worker process id, and `error`
    when the batch failed before evaluating anything (then `outcomes` is empty). `batch_id` names the batch
    (`BatchOrder.batch_id`); empty, it is the worker's ready signal (sent once, when its evaluator is built)."""

    outcomes: dict[str, ArchOutcome]
    eval_seconds_total: float = 0.0
    worker_pid: int = -1
    worker_evaluations: int = 0
    error: str | None = None
    batch_id: str = ""

    def to_result(self) -> dict[str, Any]:
        """The flat dict given to `tune.report` (the outcomes as one JSON string)."""
        outcomes = {k: {"metrics": v.metrics, "eval_seconds": v.eval_seconds, "error": v.error}
                    for k, v in self.outcomes.items()}
        return {"evaluations": json.dumps(outcomes), "eval_seconds_total": self.eval_seconds_total,
                "archs": len(self.outcomes), "worker_pid": self.worker_pid,
                "worker_evaluations": self.worker_evaluations, "trial_error": self.error or "",
                "batch_id": self.batch_id}

    @classmethod
    def from_result(cls, result: Mapping[str, Any]) -> TrialReport:
        """Check and read a result dict written by `to_result`; a malformed one raises ValueError."""
        if not isinstance(result, Mapping) or not isinstance(result.get("evaluations"), str):
            raise ValueError("a trial result needs an `evaluations` JSON string")
        docs = json.loads(result["evaluations"])
        if not isinstance(docs, dict):
            raise ValueError("`evaluations` must hold an object keyed by arch id")
        outcomes = {}
        for arch_id, doc in docs.items():
            if not isinstance(doc, dict) or not isinstance(doc.get("metrics", {}), dict):
                raise ValueError(f"outcome of {arch_id!r} is not an object with `metrics`")
            metrics = {str(k): float(v) for k, v in doc.get("metrics", {}).items()}
            error = doc.get("error")
            outcomes[str(arch_id)] = ArchOutcome(metrics, float(doc.get("eval_seconds", math.nan)),
                                                 None if error in (None, "") else str(error))
        trial_error = result.get("trial_error") or None
        return cls(outcomes, float(result.get("eval_seconds_total", 0.0)), int(result.get("worker_pid", -1)),
                   int(result.get("worker_evaluations", 0)), None if trial_error is None else str(trial_error),
                   str(result.get("batch_id", "")))


def one_line(exc: BaseException) -> str:
    """`Type: message`, first line only, at most 300 characters."""
    text = f"{type(exc).__name__}: {exc}".strip().splitlines()[0] if str(exc) else type(exc).__name__
    return text[:300]


def evaluate_batch(evaluate: Callable[[Arch], Mapping[str, float]], space: SearchSpace,
                   arch_jsons: Sequence[str]) -> tuple[dict[str, ArchOutcome], float]:
    """Score Arch JSON documents with `evaluate(arch) -> {metric: value, "eval_seconds": s}`: ({arch_id: outcome},
    total evaluation seconds). A failing arch gets an outcome with its error; the rest go on."""
    outcomes: dict[str, ArchOutcome] = {}
    total = 0.0
    for doc in arch_jsons:
        arch = arch_from_json(doc, space, "trial config")
        try:
            scores = dict(evaluate(arch))
            seconds = float(scores.pop("eval_seconds", 0.0))
            total += seconds
            outcomes[arch.arch_id] = ArchOutcome({k: float(v) for k, v in scores.items()}, seconds)
        except Exception as exc:  # noqa: BLE001 - one broken arch must not lose the batch; retried by the driver
            log.exception("evaluation of %s failed", arch.arch_id)
            outcomes[arch.arch_id] = ArchOutcome(error=one_line(exc))
    return outcomes, total


BatchEvaluator = Callable[[Sequence[str]], TrialReport]  # Arch JSON documents -> their report (no batch id)


class EvaluatorFactory(Protocol):
    """Builds a worker's `BatchEvaluator` once, on the worker, from the supernet payload and the `WorkerSetup`."""

    def __call__(self, payload: dict | None, setup: WorkerSetup) -> BatchEvaluator: ...


class OrderSource(Protocol):
    """Where a worker slot takes its orders from (the driver's mailbox, `inas.search.tune_adapter.Mailbox`)."""

    def take(self, slot: str) -> BatchOrder: ...


def accuracy_evaluator(payload: dict | None, setup: WorkerSetup) -> BatchEvaluator:
    """The real `EvaluatorFactory`: this worker's `AccuracyEvaluator` (built once per worker process) scoring a
    batch with `evaluate_batch`."""
    import torch

    from inas.search.evaluators import worker_evaluator

    assert payload is not None
    torch.set_num_threads(max(1, setup.threads))  # oversubscribed threads are 10-50x slower
    evaluator = worker_evaluator(payload, setup)

    def evaluate(arch_jsons: Sequence[str]) -> TrialReport:
        outcomes, total = evaluate_batch(evaluator.evaluate, evaluator.space, arch_jsons)
        return TrialReport(outcomes, total, os.getpid(), evaluator.evaluations)

    return evaluate


def failing_evaluator(error: str) -> BatchEvaluator:
    """Reports `error` for every batch (a worker whose evaluator could not be built: the driver retries its archs
    elsewhere and quotes the error)."""
    return lambda arch_jsons: TrialReport({}, worker_pid=os.getpid(), error=error)


def build_evaluator(factory: EvaluatorFactory, payload: dict | None, setup: WorkerSetup) -> BatchEvaluator:
    """`factory(payload, setup)`, or a `failing_evaluator` quoting why it raised."""
    try:
        return factory(payload, setup)
    except Exception as exc:  # noqa: BLE001 - reported to the driver, which retries and quotes it
        log.exception("the worker's evaluator could not be built")
        return failing_evaluator(one_line(exc))


def serve_slot(slot: str, evaluate: BatchEvaluator, orders: OrderSource, report: Callable[[TrialReport], None]) -> int:
    """A worker slot's loop: `report` ready, then for each order `orders.take(slot)` evaluate its batch and `report`
    the result, until the STOP order; returns the number of batches evaluated."""
    report(TrialReport({}, worker_pid=os.getpid()))
    batches = 0
    while not (order := orders.take(slot)).stop:
        report(replace(evaluate(order.archs), batch_id=order.batch_id))
        batches += 1
    return batches


class _MailboxOrders:
    """`OrderSource` over the driver's mailbox actor handle."""

    def __init__(self, mailbox: Any) -> None:
        self.mailbox = mailbox

    def take(self, slot: str) -> BatchOrder:
        import ray

        return ray.get(self.mailbox.take.remote(slot))


def evaluate_trial(config: dict, payload: dict | None = None, setup: WorkerSetup | None = None,
                   mailbox: Any = None, factory: EvaluatorFactory | None = None) -> None:
    """Tune function trainable of the worker slot `config["slot"]`: build the evaluator (`factory`, default
    `accuracy_evaluator`) once, then `serve_slot` the batches the driver posts to `mailbox`, one `tune.report` of a
    `TrialReport` per batch. An evaluator that cannot be built is reported as each batch's error (so the driver can
    retry elsewhere and quote it) instead of raising."""
    from ray import tune

    assert setup is not None and mailbox is not None
    evaluate = build_evaluator(factory or accuracy_evaluator, payload, setup)
    serve_slot(str(config["slot"]), evaluate, _MailboxOrders(mailbox), lambda r: tune.report(r.to_result()))

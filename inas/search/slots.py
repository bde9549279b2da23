"""Long-lived worker slots: the Ray-free part of how ONE driver keeps many trials busy.

A Tune trial is a worker slot, not a batch: it starts once, builds its evaluator, reports "ready", then evaluates the
batches the driver posts to it (`inas.search.trial.serve_slot`), one `tune.report` per batch, until it is posted
STOP. So Tune starts one actor per slot for the whole run instead of one per batch (with a trial per batch and
`reuse_actors`, Tune schedules an actor for every pending trial and discards it when a cached actor frees up first:
`benchmarks/bench_driver_scale.py`), and the driver's work per batch is one result and one post.

`SlotDispatcher` turns Tune's calls into the `TrialScheduler`'s: `open_slot` (Tune's `suggest`) opens up to `slots`
slots; `on_result` (a slot's report) completes its batch in the scheduler and gives every idle ready slot the
scheduler's next batch through `post(slot, order)`; `on_end` (the slot's Tune trial ended: stopped, failed, or its
node died) completes a batch it still held as failed (the scheduler retries its archs) and frees the slot, which
Tune then opens again. When the scheduler is finished every slot is posted STOP. Batch ids are
`<trial id>.<n>`: the results table's `trial_id` names the Tune trial and its n-th batch.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from inas.search.scheduler import FINISHED, TrialConfig, TrialScheduler
from inas.search.trial import STOP, BatchOrder, TrialReport

log = logging.getLogger(__name__)

Post = Callable[[str, BatchOrder], None]  # (slot = Tune trial id, order): delivered to that slot's worker


@dataclass
class _Slot:
    ready: bool = False  # its worker reported ready (evaluator built)
    batch_id: str | None = None  # the batch it is evaluating
    batches: int = 0  # batches posted to it
    stopped: bool = False  # posted STOP


class SlotDispatcher:
    """See the module docstring."""

    def __init__(self, scheduler: TrialScheduler, slots: int, post: Post) -> None:
        if slots < 1:
            raise ValueError(f"a search needs at least one worker slot, got {slots}")
        self.scheduler = scheduler
        self.slots = slots
        self.post = post
        self.open: dict[str, _Slot] = {}
        self.aborted: str | None = None  # why the run cannot go on (`abort`)

    def abort(self, reason: str) -> None:
        """End the run early (e.g. the channel to the workers is gone): no slot is opened or given a batch again, so
        Tune finishes once the open slots' trials have ended; the scheduler keeps what is unfinished for a re-run."""
        if self.aborted is None:
            log.error("search stops: %s", reason)
            self.aborted = reason

    def open_slot(self, trial_id: str) -> dict[str, Any] | str | None:
        """Tune's `suggest`: the config of a new slot trial, None (every slot is open), or FINISHED."""
        if self.scheduler.finished or self.aborted is not None:
            return FINISHED
        if len(self.open) >= self.slots:
            return None
        self.open[trial_id] = _Slot()
        return {"slot": trial_id}

    def on_result(self, trial_id: str, report: TrialReport) -> None:
        """A slot's report: ready, or its batch's result (a result of another batch, e.g. Tune's repeat of the last
        one when a trial ends, is ignored)."""
        slot = self.open.get(trial_id)
        if slot is None:
            return
        if not report.batch_id:
            slot.ready = True
        elif report.batch_id == slot.batch_id:
            slot.batch_id = None
            self.scheduler.complete(report.batch_id, report)
        self.dispatch()

    def on_end(self, trial_id: str, report: TrialReport | None = None) -> None:
        """A slot's trial ended; a batch it still held is completed with `report` if that is its result, else as
        failed (its archs are retried on other slots)."""
        slot = self.open.pop(trial_id, None)
        if slot is None:
            return
        if slot.batch_id is not None:
            done = report is not None and report.batch_id == slot.batch_id
            if not slot.stopped and not done:
                log.warning("worker slot %s ended during batch %s", trial_id, slot.batch_id)
            self.scheduler.complete(slot.batch_id, report if done else None)
        self.dispatch()

    def dispatch(self) -> None:
        """Give each ready idle slot the scheduler's next batch; post STOP to every slot once it is finished."""
        if self.aborted is not None:
            return
        for trial_id, slot in self.open.items():
            if not slot.ready or slot.batch_id is not None or slot.stopped:
                continue
            batch_id = f"{trial_id}.{slot.batches + 1}"
            suggestion = self.scheduler.suggest(batch_id)
            if not isinstance(suggestion, TrialConfig):
                break  # nothing to run now (or finished): the same for every other slot
            slot.batch_id = batch_id
            slot.batches += 1
            self.post(trial_id, BatchOrder(batch_id, suggestion.searcher, tuple(a.to_json() for a in suggestion.archs)))
        if self.scheduler.finished:
            self.stop_all()

    def stop_all(self) -> None:
        """Post STOP to every open slot not stopped yet (its worker ends its trial when it takes it)."""
        for trial_id, slot in self.open.items():
            if not slot.stopped:
                slot.stopped = True
                self.post(trial_id, STOP)

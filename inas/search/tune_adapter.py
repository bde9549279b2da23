"""The thin Ray parts of the search driver: `SlotSearcher`, the Tune `Searcher` in front of a `SlotDispatcher`, and
`Mailbox`, the driver's channel to its worker slots (all decisions are in `inas.search.slots` and
`inas.search.scheduler`).

`SlotSearcher` converts between Tune's calls and the dispatcher's typed objects, and keeps itself out of
`tuner.pkl`: Tune pickles its search algorithm into the experiment folder, and the scheduler holds the searchers, the
results table and the latency tables; the state of a search lives in the output folder instead
(`inas.search.state`), so the pickled adapter is empty.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

from ray.tune.search import Searcher as TuneSearcher

from inas.errors import clip
from inas.search.scheduler import FINISHED
from inas.search.slots import Post, SlotDispatcher
from inas.search.trial import BatchOrder, TrialReport

log = logging.getLogger(__name__)


class SlotSearcher(TuneSearcher):
    """Tune's `suggest` / `on_trial_result` / `on_trial_complete` forwarded to `dispatcher`."""

    def __init__(self, dispatcher: SlotDispatcher, channel_lost: Callable[[], str | None] | None = None) -> None:
        super().__init__(metric=None, mode=None)
        self.dispatcher = dispatcher
        self.channel_lost = channel_lost  # after a failed trial: why the slots' mailbox is gone, None if it is not

    def set_search_properties(self, metric, mode, config, **spec) -> bool:  # noqa: ANN001 - Tune's signature
        return True

    def suggest(self, trial_id: str) -> dict[str, Any] | str | None:
        suggestion = self.dispatcher.open_slot(trial_id)
        return TuneSearcher.FINISHED if suggestion == FINISHED else suggestion

    def on_trial_result(self, trial_id: str, result: dict) -> None:
        report = _report(trial_id, result)
        if report is not None:
            self.dispatcher.on_result(trial_id, report)

    def on_trial_complete(self, trial_id: str, result: dict | None = None, error: bool = False) -> None:
        if error and self.channel_lost is not None and self.dispatcher.aborted is None:
            reason = self.channel_lost()  # a dead mailbox fails every slot: retrying its batches cannot succeed
            if reason:
                self.dispatcher.abort(reason)
        self.dispatcher.on_end(trial_id, None if error or not result else _report(trial_id, result))

    def save_to_dir(self, checkpoint_dir: str, session_str: str = "default") -> None:
        """The state lives in the output folder (`inas.search.state`), not in Tune's experiment folder."""

    def restore_from_dir(self, checkpoint_dir: str) -> None:
        """See `save_to_dir`."""

    def __getstate__(self) -> dict[str, Any]:
        return {}  # see the module docstring: nothing of a search is restored from Tune's pickle

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.dispatcher = None


def _report(trial_id: str, result: dict) -> TrialReport | None:
    try:
        return TrialReport.from_result(result)
    except (ValueError, TypeError) as exc:
        log.warning("trial %s sent a malformed result (%s); ignored", trial_id, exc)
        return None


class Mailbox:
    """Orders from the driver to its worker slots, one queue per slot (run as a Ray async actor, `start_mailbox`):
    the driver `post`s without waiting, a slot's worker `take`s its next order, waiting for it."""

    def __init__(self) -> None:
        self.queues: dict[str, asyncio.Queue[BatchOrder]] = {}

    def _queue(self, slot: str) -> asyncio.Queue[BatchOrder]:
        return self.queues.setdefault(slot, asyncio.Queue())

    async def post(self, slot: str, order: BatchOrder) -> None:
        self._queue(slot).put_nowait(order)

    async def take(self, slot: str) -> BatchOrder:
        order = await self._queue(slot).get()
        if order.stop:
            self.queues.pop(slot, None)
        return order


def start_mailbox(slots: int) -> Any:
    """A `Mailbox` actor on this (the driver's) node, with no CPU reserved, serving `slots` waiting workers."""
    import ray
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    here = NodeAffinitySchedulingStrategy(ray.get_runtime_context().get_node_id(), soft=False)
    actor = ray.remote(Mailbox).options(num_cpus=0, max_concurrency=max(1000, 2 * slots + 8),
                                        scheduling_strategy=here).remote()
    ray.get(actor.__ray_ready__.remote())
    return actor


def mailbox_lost(mailbox: Any, timeout_s: float = 30.0) -> Callable[[], str | None]:
    """`SlotSearcher.channel_lost` for the mailbox actor `mailbox`: why it is dead (its process was killed, its node
    lost), or None while it answers (or is merely slow to)."""

    def check() -> str | None:
        import ray
        from ray.exceptions import GetTimeoutError, RayActorError

        try:
            ray.get(mailbox.__ray_ready__.remote(), timeout=timeout_s)
        except RayActorError as exc:
            return ("the search's mailbox actor (the driver's channel to its worker slots) died: "
                    f"{clip(str(exc), 160)}")
        except GetTimeoutError:
            return None
        return None

    return check


def post_to(mailbox: Any) -> Post:
    """The dispatcher's `post(slot, order)` on the mailbox actor `mailbox` (does not wait)."""
    return lambda slot, order: mailbox.post.remote(slot, order)

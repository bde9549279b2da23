"""`ArchBatchSearcher`: the thin Ray Tune `Searcher` in front of a `TrialScheduler` (all decisions are there).

It converts between Tune's calls and the scheduler's typed objects, and keeps itself out of `tuner.pkl`: Tune
pickles its search algorithm into the experiment folder, and the scheduler holds the searchers, the results table
and the latency tables; the state of a search lives in the output folder instead (`inas.search.state`), so the
pickled adapter is empty.
"""

from __future__ import annotations

import logging
from typing import Any

from ray.tune.search import Searcher as TuneSearcher

from inas.search.scheduler import FINISHED, TrialConfig, TrialScheduler
from inas.search.trial import TrialReport

log = logging.getLogger(__name__)


class ArchBatchSearcher(TuneSearcher):
    """Tune's `suggest` / `on_trial_complete` forwarded to `scheduler`."""

    def __init__(self, scheduler: TrialScheduler) -> None:
        super().__init__(metric=None, mode=None)
        self.scheduler = scheduler

    def set_search_properties(self, metric, mode, config, **spec) -> bool:  # noqa: ANN001 - Tune's signature
        return True

    def suggest(self, trial_id: str) -> dict[str, Any] | str | None:
        suggestion = self.scheduler.suggest(trial_id)
        if suggestion == FINISHED:
            return TuneSearcher.FINISHED
        return suggestion.to_tune() if isinstance(suggestion, TrialConfig) else None

    def on_trial_complete(self, trial_id: str, result: dict | None = None, error: bool = False) -> None:
        report = None
        if result and not error:
            try:
                report = TrialReport.from_result(result)
            except (ValueError, TypeError) as exc:
                log.warning("trial %s sent a malformed result (%s); treated as failed", trial_id, exc)
        self.scheduler.complete(trial_id, report)

    def save_to_dir(self, checkpoint_dir: str, session_str: str = "default") -> None:
        """The state lives in the output folder (`inas.search.state`), not in Tune's experiment folder."""

    def restore_from_dir(self, checkpoint_dir: str) -> None:
        """See `save_to_dir`."""

    def __getstate__(self) -> dict[str, Any]:
        return {}  # see the module docstring: nothing of a search is restored from Tune's pickle

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.scheduler = None

"""Worker slots (`inas.search.slots`, `inas.search.trial.serve_slot`), driven here like Tune drives them, without Ray:
a fixed number of long-lived slots is opened once and kept busy until every budget is met, then each is posted STOP;
a slot that dies mid-batch has its archs retried on other slots and is opened again; duplicate and stale results are
ignored; the worker loop reports ready, one report per batch, and stops on STOP."""

from __future__ import annotations

from collections import deque

import pytest
from test_search_driver import SEARCHERS, fake_evaluate
from test_search_evaluators import make_problem

from inas.search.driver import build_scheduler, prepare_search
from inas.search.scheduler import FINISHED
from inas.search.slots import SlotDispatcher
from inas.search.trial import STOP, BatchOrder, TrialReport, evaluate_batch, failing_evaluator, serve_slot


class FakeTune:
    """Plays Tune and the workers: opens slots through `open_slot`, answers each posted batch with a result."""

    def __init__(self, setup, slots: int, calls: list[str]) -> None:
        self.setup = setup
        self.posted: dict[str, deque[BatchOrder]] = {}
        self.dispatcher = SlotDispatcher(build_scheduler(setup), slots, self.post)
        self.calls = calls
        self.opened: list[str] = []
        self.stopped: set[str] = set()
        self.counter = 0

    def post(self, slot: str, order: BatchOrder) -> None:
        self.posted.setdefault(slot, deque()).append(order)

    def open_slots(self) -> str | None:
        """Tune's suggest loop: open slots until None or FINISHED; each new worker reports ready at once."""
        while True:
            self.counter += 1
            trial_id = f"trial{self.counter}"
            config = self.dispatcher.open_slot(trial_id)
            if not isinstance(config, dict):
                return config
            assert config == {"slot": trial_id}
            self.opened.append(trial_id)
            self.dispatcher.on_result(trial_id, TrialReport({}, worker_pid=self.counter))

    def answer(self, slot: str) -> None:
        """The worker of `slot` evaluates its next posted order (or ends its trial on STOP)."""
        order = self.posted[slot].popleft()
        if order.stop:
            self.stopped.add(slot)
            self.dispatcher.on_end(slot, None)
            return
        outcomes, total = evaluate_batch(fake_evaluate(self.calls), self.setup.space, order.archs)
        self.dispatcher.on_result(slot, TrialReport(outcomes, total, worker_pid=int(slot.removeprefix("trial")),
                                                         batch_id=order.batch_id))

    def run(self, kill: str | None = None) -> None:
        """Answer the first slot with posted orders until Tune would finish; `kill`: that slot's trial dies when it
        holds its first batch."""
        while True:
            finished = self.open_slots() == FINISHED
            waiting = [slot for slot, orders in self.posted.items() if orders]
            if finished and not waiting:  # Tune ends once the searcher is finished and every trial has ended
                return
            assert waiting, "no slot has work and the run is not finished"
            slot = waiting[0]
            if slot == kill and not self.posted[slot][0].stop:
                self.posted[slot].clear()
                self.dispatcher.on_end(slot, None)  # the worker (or its node) died mid-batch
                kill = None
                continue
            self.answer(slot)


@pytest.fixture()
def setup(problem_root, tmp_path):  # noqa: F811 - the imported fixture
    config, _ = make_problem(problem_root, searchers=SEARCHERS, archs_per_trial=2)
    return prepare_search(config, tmp_path / "out")


def test_slots_open_once_and_meet_every_budget(setup):
    calls: list[str] = []
    tune = FakeTune(setup, slots=3, calls=calls)
    tune.run()
    assert len(tune.opened) == 3  # no slot restarted: one worker start per slot for the whole run
    assert tune.stopped == set(tune.opened)  # every slot told to stop
    frame = setup.table.frame()
    assert frame.groupby("searcher").size().to_dict() == {"evolution": 6, "random": 5}
    assert len(calls) == len(set(calls)) == frame["arch_id"].nunique()  # nothing evaluated twice
    assert all(trial_id.split(".")[0] in tune.opened for trial_id in frame["trial_id"])  # `<trial id>.<n>`


def test_a_slot_that_dies_mid_batch_is_retried_elsewhere_and_reopened(setup):
    calls: list[str] = []
    tune = FakeTune(setup, slots=2, calls=calls)
    tune.run(kill="trial1")
    assert len(tune.opened) == 3  # the dead slot was opened again
    stats = tune.dispatcher.scheduler.stats
    assert stats.failed_trials == 1 and stats.retried >= 1
    frame = setup.table.frame()
    assert frame.groupby("searcher").size().to_dict() == {"evolution": 6, "random": 5}
    assert frame["max_fmeasure"].notna().all() and frame["arch_id"].is_unique


def test_stale_and_duplicate_results_are_ignored(setup):
    tune = FakeTune(setup, slots=1, calls=[])
    tune.open_slots()
    order = tune.posted["trial1"][0]
    outcomes, total = evaluate_batch(fake_evaluate([]), setup.space, order.archs)
    report = TrialReport(outcomes, total, batch_id=order.batch_id)
    tune.dispatcher.on_result("trial1", TrialReport({}, batch_id="trial1.99"))  # not its batch
    tune.dispatcher.on_result("trial9", report)  # not a slot
    assert tune.dispatcher.scheduler.stats.trials == 0
    tune.posted["trial1"].clear()
    tune.dispatcher.on_result("trial1", report)
    tune.dispatcher.on_result("trial1", report)  # Tune repeats the last result when a trial ends
    assert tune.dispatcher.scheduler.stats.trials == 1
    assert len(tune.posted["trial1"]) == 1  # one next batch, not two


def test_the_end_result_of_a_batch_completes_it(setup):
    tune = FakeTune(setup, slots=1, calls=[])
    tune.open_slots()
    order = tune.posted["trial1"].popleft()
    outcomes, total = evaluate_batch(fake_evaluate([]), setup.space, order.archs)
    tune.dispatcher.on_end("trial1", TrialReport(outcomes, total, batch_id=order.batch_id))
    stats = tune.dispatcher.scheduler.stats
    assert (stats.trials, stats.failed_trials, stats.evaluated) == (1, 0, len(order.archs))


def test_no_slot_is_needed_to_finish_a_finished_search(problem_root, tmp_path):  # noqa: F811
    config, _ = make_problem(problem_root, searchers=[{"kind": "random", "budget": 2}])
    setup = prepare_search(config, tmp_path / "out")
    tune = FakeTune(setup, slots=2, calls=[])
    tune.run()
    assert len(setup.table) == 2
    assert tune.dispatcher.open_slot("late") == FINISHED


def test_a_dead_mailbox_ends_the_run_instead_of_failing_every_batch(setup):
    """The mailbox actor killed: every slot's next `take` fails, so does its trial. Each failed batch was retried on
    a new slot whose `take` failed again, until every arch had failed every attempt (minutes of worker starts, and
    a message blaming the evaluations). The first failure finds the mailbox dead and ends the run."""
    from ray.tune.search import Searcher

    from inas.search.tune_adapter import SlotSearcher

    tune = FakeTune(setup, slots=2, calls=[])
    searcher = SlotSearcher(tune.dispatcher, channel_lost=lambda: "the mailbox died")
    tune.open_slots()  # two ready slots, each given a batch
    for slot in list(tune.dispatcher.open):
        tune.posted[slot].clear()
        searcher.on_trial_complete(slot, None, error=True)
    assert tune.dispatcher.aborted == "the mailbox died"
    assert searcher.suggest("trial9") == Searcher.FINISHED  # Tune ends: no slot opened again
    assert not any(tune.posted.values())  # nothing posted to the dead mailbox
    scheduler = tune.dispatcher.scheduler
    assert not scheduler.finished and scheduler.stats.failed_trials == 2 and not scheduler.stats.given_up


def test_a_failed_trial_with_the_mailbox_alive_is_retried(setup):
    from inas.search.tune_adapter import SlotSearcher

    tune = FakeTune(setup, slots=2, calls=[])
    searcher = SlotSearcher(tune.dispatcher, channel_lost=lambda: None)
    tune.open_slots()
    tune.posted["trial1"].clear()
    searcher.on_trial_complete("trial1", None, error=True)
    assert tune.dispatcher.aborted is None and tune.dispatcher.open_slot("trial3") == {"slot": "trial3"}


def test_zero_slots_are_refused(setup):
    with pytest.raises(ValueError, match="at least one worker slot"):
        SlotDispatcher(build_scheduler(setup), 0, lambda slot, order: None)


class ListOrders:
    def __init__(self, orders: list[BatchOrder]) -> None:
        self.orders = deque(orders)
        self.slots: list[str] = []

    def take(self, slot: str) -> BatchOrder:
        self.slots.append(slot)
        return self.orders.popleft()


def test_serve_slot_reports_ready_then_each_batch_until_stop():
    reports: list[TrialReport] = []
    orders = ListOrders([BatchOrder("t.1", "random", ("a",)), BatchOrder("t.2", "random", ("b", "c")), STOP,
                         BatchOrder("t.3", "random", ("d",))])
    seen: list[tuple[str, ...]] = []

    def evaluate(archs):
        seen.append(tuple(archs))
        return TrialReport({}, eval_seconds_total=float(len(archs)))

    assert serve_slot("t", evaluate, orders, reports.append) == 2
    assert [r.batch_id for r in reports] == ["", "t.1", "t.2"]  # ready, then one report per batch
    assert seen == [("a",), ("b", "c")] and orders.slots == ["t"] * 3  # nothing taken after STOP


def test_a_worker_without_evaluator_reports_the_error_for_each_batch():
    reports: list[TrialReport] = []
    orders = ListOrders([BatchOrder("t.1", "random", ("a",)), STOP])
    serve_slot("t", failing_evaluator("OSError: no data"), orders, reports.append)
    assert reports[1].batch_id == "t.1" and reports[1].error == "OSError: no data"


def test_batch_id_round_trips_through_the_tune_result():
    report = TrialReport({}, 1.5, 7, 3, None, "abc_00001.4")
    assert TrialReport.from_result(report.to_result()) == report

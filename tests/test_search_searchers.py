"""Searchers behind one interface on the synthetic problem (no networks): budget and dedup, parallel asks,
constraints, bounded retries on impossible constraints, JSON state round trips and exact resume, evolution's
generations, nevergrad's routing and replay, the factory's errors."""

from __future__ import annotations

import functools
import json
import math
import random
import time

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from inas.errors import BadInputError
from inas.search import InfeasibleConstraintError, build_searcher, run_searcher
from inas.search.testing import ask_tell, synthetic_accuracy, synthetic_latency_ms, synthetic_result
from inas.space import inas_space, sample_max, sample_min, validate_arch
from inas.space.space import STAGE_NAMES

SPACE = inas_space()
NAMES = ["evolution", "nevergrad", "random", "optuna", "predictor"]
SMALL = {
    "evolution": {"population_size": 16, "selection_num": 8, "lgs_groups": 4},
    "nevergrad": {"num_budgets": 4},
    "random": {},
    "optuna": {"population_size": 8, "n_startup_trials": 8},
    "predictor": {"initial_size": 8, "candidates": 120, "lgs_candidates": 8, "n_estimators": 20},
}
MIN_MS = synthetic_latency_ms(sample_min(SPACE))
MAX_MS = synthetic_latency_ms(sample_max(SPACE))


def make(name, budget=40, seed=0, **params):
    return build_searcher(name, SPACE, synthetic_latency_ms, budget, seed, **{**SMALL[name], **params})


def round_trip(state):
    return json.loads(json.dumps(state, allow_nan=False))


@pytest.mark.parametrize("name", NAMES)
def test_runs_to_budget_without_repeats(name):
    searcher = run_searcher(make(name, budget=40), synthetic_result)
    frame = searcher.results_frame()
    assert searcher.is_finished() and searcher.ask() is None
    assert searcher.num_asked == searcher.num_told == len(frame) == 40
    assert frame["arch_id"].is_unique
    assert {"arch_id", "arch", "searcher", "max_fmeasure", "latency_ms", "generation"} <= set(frame.columns)
    assert (frame["searcher"] == name).all()
    for record in searcher.records:
        validate_arch(record.arch, SPACE)
        assert record.latency_ms == pytest.approx(synthetic_latency_ms(record.arch))


@pytest.mark.parametrize("name", NAMES)
def test_parallel_asks_out_of_order_tells(name):
    """A driver keeping up to 6 evaluations in flight and telling them in random order."""
    searcher = make(name, budget=36, num_workers=2) if name == "nevergrad" else make(name, budget=36)
    rng = random.Random(0)
    in_flight, asked, max_parallel = [], [], 0
    while not searcher.is_finished():
        while len(in_flight) < 6 and (arch := searcher.ask()) is not None:
            in_flight.append(arch)
            asked.append(arch.arch_id)
        max_parallel = max(max_parallel, len(in_flight))
        assert in_flight, "nothing asked and nothing in flight"
        arch = in_flight.pop(rng.randrange(len(in_flight)))
        searcher.tell(arch, synthetic_result(arch))
    assert len(asked) == len(set(asked)) == 36
    assert max_parallel == 6


@pytest.mark.parametrize("name", NAMES)
def test_constraints_are_respected(name):
    cap = MIN_MS + 0.4 * (MAX_MS - MIN_MS)

    def shallow_stage_7(arch):
        return arch.stage("stage_7").depth == 1

    searcher = run_searcher(make(name, budget=30, max_latency_ms=cap, constraints=[shallow_stage_7]),
                            synthetic_result)
    assert searcher.num_told == 30
    for record in searcher.records:
        assert synthetic_latency_ms(record.arch) <= cap
        assert record.arch.stage("stage_7").depth == 1


@pytest.mark.parametrize("name", NAMES)
def test_impossible_constraints_fail_clearly_and_quickly(name):
    with pytest.raises(InfeasibleConstraintError, match="smallest architecture"):
        make(name, max_latency_ms=MIN_MS * 0.9)

    def never(arch):
        return False

    bounded = {"evolution": {"lgs_tries_per_group": 2}, "nevergrad": {"num_budgets": 2, "max_tries_per_ask": 5},
               "random": {"max_tries": 50}, "optuna": {"max_tries_per_ask": 5, "max_tries": 50},
               "predictor": {"lgs_tries_per_group": 2}}[name]
    searcher = make(name, constraints=[never], **bounded)
    start = time.monotonic()
    with pytest.raises(InfeasibleConstraintError, match=r"constraints \[never\].*relax"):
        searcher.ask()
    assert time.monotonic() - start < 20


@pytest.mark.parametrize("name", ["evolution", "random", "nevergrad", "optuna", "predictor"])
def test_resume_gives_the_same_asks(name):
    full = ask_tell(make(name), 40)
    first = make(name)
    head = ask_tell(first, 23)
    resumed = make(name)
    resumed.load_state_dict(round_trip(first.state_dict()))
    tail = ask_tell(resumed, 17)
    assert head + tail == full
    assert resumed.stats.get("replay_mismatches", 0) == 0


@pytest.mark.parametrize("name", ["evolution", "random", "nevergrad", "optuna", "predictor"])
def test_a_resumed_searcher_resumes_again(name):
    """Resumed twice (a search continued with a larger budget, then again): nevergrad's replay dropped the asks from
    its log, so the second resume failed with a bare KeyError 0 on its own state."""
    full = ask_tell(make(name), 30)
    first = make(name)
    ids = ask_tell(first, 10)
    second = make(name)
    second.load_state_dict(round_trip(first.state_dict()))
    ids += ask_tell(second, 10)
    third = make(name)
    third.load_state_dict(round_trip(second.state_dict()))
    ids += ask_tell(third, 10)
    assert ids == full
    assert third.stats.get("replay_mismatches", 0) == 0


@pytest.mark.parametrize("name", ["evolution", "random", "nevergrad", "optuna", "predictor"])
def test_resume_reasks_archs_that_were_in_flight(name):
    def run(interrupt: bool):
        searcher = make(name)
        ids = ask_tell(searcher, 10)
        pending = [searcher.ask() for _ in range(2)]
        ids += [a.arch_id for a in pending]
        if interrupt:
            state = round_trip(searcher.state_dict())
            searcher = make(name)
            searcher.load_state_dict(state)
            again = [searcher.ask() for _ in range(2)]
            assert [a.arch_id for a in again] == ids[-2:]  # lost trials come back first
        for arch in pending:
            searcher.tell(arch, synthetic_result(arch))
        return ids + ask_tell(searcher, 15)

    assert run(interrupt=True) == run(interrupt=False)


def test_nevergrad_replay_mismatch_falls_back_without_reasking():
    searcher = make("nevergrad")
    head = ask_tell(searcher, 20)
    state = round_trip(searcher.state_dict())
    events = state["extra"]["instances"][0]["events"]
    first_ask = next(e for e in events if e[0] == "a")
    first_ask[1] = "000000000000"  # pretend the optimiser proposed something else at replay
    resumed = make("nevergrad")
    resumed.load_state_dict(state)
    assert resumed.stats["replay_mismatches"] == 1
    tail = ask_tell(resumed, 20)
    assert not set(tail) & set(head)
    assert resumed.is_finished()


def test_nevergrad_log_without_its_asks_is_refused_with_the_way_out():
    """States saved after a resume before 61b14f2 lost their asks: one line that says to --warm-start instead."""
    searcher = make("nevergrad")
    ask_tell(searcher, 20)
    state = round_trip(searcher.state_dict())
    for instance in state["extra"]["instances"]:
        instance["events"] = [e for e in instance["events"] if e[0] != "a"]
    with pytest.raises(BadInputError, match="never asked.*--warm-start"):
        make("nevergrad").load_state_dict(state)


def test_state_of_another_searcher_or_space_is_refused():
    state = round_trip(run_searcher(make("random", budget=5), synthetic_result).state_dict())
    with pytest.raises(BadInputError, match="searcher"):
        make("evolution").load_state_dict(state)
    narrowed = SPACE.narrow({"stage_7": {"depths": [1]}})
    other = build_searcher("random", narrowed, synthetic_latency_ms, 5)
    with pytest.raises(BadInputError, match="space"):
        other.load_state_dict(state)


def _set_first_record(key, value):
    def edit(state):
        state["records"][0][key] = value
    return edit


@pytest.mark.parametrize(("edit", "expected"), [
    (lambda s: s.update(asked=-4), r"asked: expected an integer >= 0, got -4"),
    (lambda s: s.update(asked=10**9), r"asked: 1000000000 architectures asked, but 5 told"),
    (lambda s: s.update(asked=2.7), r"asked: expected an integer >= 0, got 2.7"),
    (lambda s: s.update(records={"a": 1}), r"records: expected a JSON list"),
    (lambda s: s.update(stats=[1]), r"stats: expected a JSON object"),
    (lambda s: s.update(prior=5), r"prior: expected a JSON list, got 5"),
    (_set_first_record("metric", math.inf), r"records\[0\].metric: expected a finite number, got inf"),
    (_set_first_record("metric", "0.5"), r"records\[0\].metric: expected a finite number, got '0.5'"),
    (_set_first_record("latency_ms", -3), r"records\[0\].latency_ms: expected a finite number >= 0, got -3"),
    (lambda s: s["records"][0].pop("metric"), r"records\[0\]\.metric: missing"),
    (lambda s: s["records"].__setitem__(0, []), r"records\[0\]: expected a JSON object, got \[\]"),
    (lambda s: s.update(stats={"ends_asked": "2"}), r"stats\.ends_asked: expected an integer, got '2'"),
    (lambda s: s.update(rng=[3, [1, 2], None]), r"rng\[1\]: expected at least 625 items"),
    (lambda s: s.update(in_flight=[s["records"][0]["arch"]], asked=6),
     r"in_flight\[0\]: arch \w+ is in flight, but `records` holds its result already"),
])
def test_a_hand_edited_state_is_refused_naming_the_key(edit, expected):
    """A negative or too large `asked` used to resume with a wrong number of archs left to ask (2.7 was cut to 2),
    an infinite metric or a negative latency was told to the searcher as a result."""
    state = round_trip(run_searcher(make("random", budget=5), synthetic_result).state_dict())
    edit(state)
    with pytest.raises(BadInputError, match=expected):
        make("random", budget=5).load_state_dict(state)


@pytest.mark.parametrize("name", NAMES)
def test_a_flag_or_counter_of_the_wrong_type_in_a_searchers_own_state_is_refused(name):
    """`done: "false"` was read as true (the searcher resumed finished) and a float counter was cut to an integer."""
    searcher = make(name)
    ask_tell(searcher, 3)
    state = round_trip(searcher.state_dict())
    state["extra"]["done"] = "false"
    with pytest.raises(BadInputError, match="extra.done: expected true or false, got 'false'"):
        make(name).load_state_dict(state)
    counter = {"evolution": "generation", "nevergrad": "cursor", "optuna": "study_seed", "predictor": "round"}
    if name in counter:
        state = round_trip(searcher.state_dict())
        state["extra"][counter[name]] = 1.5
        with pytest.raises(BadInputError, match=f"extra.{counter[name]}: expected an integer .*, got 1.5"):
            make(name).load_state_dict(state)


@functools.cache
def _saved_state(name: str) -> str:
    """`name`'s state after 10 seeded asks and tells, as JSON (its queue, tags and logs hold entries)."""
    searcher = make(name)
    ask_tell(searcher, 10)
    return json.dumps(searcher.state_dict(), allow_nan=False)


def _first_event(events: list, kind: str) -> list:
    return next(e for e in events if e[0] == kind)


@pytest.mark.parametrize(("name", "edit", "expected"), [
    ("evolution", lambda x: x["queue"][0].update(group="two"),
     r"extra\.queue\[0\]\.group: expected an integer >= 0, got 'two'"),
    ("evolution", lambda x: x["queue"][0].update(group=7),
     r"extra\.queue\[0\]\.group: expected an index of one of the 4 latency groups, got 7"),
    ("evolution", lambda x: x["queue"].__setitem__(0, {}),
     r'extra\.queue\[0\]: expected exactly one of "arch" \(a child\) and "group" \(a latency-group slot\), got \{\}'),
    ("evolution", lambda x: x.update(tags={"x": ["a", 1]}), r"extra\.tags\.x\[0\]: expected an integer >= 0, got 'a'"),
    ("evolution", lambda x: x.update(tags={"x": [1]}), r"extra\.tags\.x: expected \[generation, latency group\]"),
    ("evolution", lambda x: x.update(lgs_stats={"a": None}),
     r"extra\.lgs_stats\.a: expected an integer >= 0, got None"),
    ("evolution", lambda x: x.pop("queue"), r"extra\.queue: missing"),
    ("nevergrad", lambda x: x.update(waiting={"x": 5}), r"extra\.waiting\.x: expected a JSON list, got 5"),
    ("nevergrad", lambda x: x.update(origin={"x": 9}),
     r"extra\.origin\.x: expected an index of one of the 4 optimisers, got 9"),
    ("nevergrad", lambda x: x["instances"][0].update(seed=-1),
     r"extra\.instances\[0\]\.seed: expected an integer in \[0, 2\*\*32\) \(a seed\), got -1"),
    ("nevergrad", lambda x: x["instances"].pop(), r"extra\.instances: expected one optimiser per latency budget \(4\)"),
    ("nevergrad", lambda x: x["instances"][0].update(init=[0, 1]),
     r"extra\.instances\[0\]\.init: expected an encoded architecture \(\d+ option indices"),
    ("nevergrad", lambda x: x["instances"][0]["events"].insert(0, ["t", "first", 0.5]),
     r"extra\.instances\[0\]\.events\[0\]\[1\]: expected an integer >= 0, got 'first'"),
    ("nevergrad", lambda x: x["instances"][0]["events"].insert(0, {"a": 1}),
     r'extra\.instances\[0\]\.events\[0\]: expected \["a", arch id\], \["t", ask number, loss\] or \["n", '),
    ("optuna", lambda x: x.update(waiting={"x": 5}), r"extra\.waiting\.x: expected a JSON list, got 5"),
    ("optuna", lambda x: x["events"].insert(0, ["a"]), r"extra\.events\[0\]: expected \[\"a\", arch id\], got \['a'\]"),
    ("optuna", lambda x: _first_event(x["events"], "t").__setitem__(2, [0.5]),
     r"extra\.events\[\d+\]\[2\]: expected 2 objective values"),
    ("optuna", lambda x: x["events"].insert(0, ["f", 0]),
     r"extra\.events\[0\]\[1\]: trial 0 is told, but it was never asked or was told already"),
    ("optuna", lambda x: x.update(study_seed="7"), r"extra\.study_seed: expected an integer in \[0, 2\*\*32\)"),
    ("predictor", lambda x: x["queue"][0].update(mean="high"),
     r"extra\.queue\[0\]\.mean: expected a finite number, got 'high'"),
    ("predictor", lambda x: x["queue"][0]["arch"].update(backbone=5), r"extra\.queue\[0\]\.arch\.backbone: expected"),
    ("predictor", lambda x: x.update(tags={"x": [1, 0.5]}),
     r"extra\.tags\.x: expected \[round, predicted mean or null, predicted std or null\], got \[1, 0.5\]"),
    ("predictor", lambda x: x.update(round=True), r"extra\.round: expected an integer >= -1"),
    ("random", lambda x: x.pop("done"), r"extra\.done: missing"),
    ("random", lambda x: x.update(surprise=1), r"extra\.surprise: unknown key"),
])
def test_a_damaged_field_of_a_searchers_own_state_is_refused_naming_its_key_path(name, edit, expected):
    """A hand-edited or damaged `extra` used to fail deep in the restore with a bare "invalid literal for int()",
    "'int' object is not iterable" or KeyError that named no key, or to resume silently with a wrong state (an
    origin naming no optimiser, a told trial that was never asked)."""
    state = json.loads(_saved_state(name))
    edit(state["extra"])
    with pytest.raises(BadInputError, match=expected):
        make(name).load_state_dict(state)


def _leaves(node, path=()):
    """Every (path, value) of a JSON document, containers included (their path first)."""
    yield path, node
    items = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else ()
    for key, child in items:
        yield from _leaves(child, (*path, key))


_ODD_VALUES = [None, True, -1, 0, 7, 2**40, 0.5, -2.5, "", "x", [], [0], {}, {"a": 1}]


@pytest.mark.parametrize("name", NAMES)
@settings(max_examples=60, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_any_damaged_value_of_a_saved_state_is_bad_input_or_resumes(name, data):
    """One value anywhere in a searcher's saved state replaced by an odd one (or a key removed): the restore either
    refuses it as bad input (one line, exit 2) or resumes a searcher that goes on asking and telling; never another
    exception (the driver no longer turns KeyError/TypeError/... into bad input)."""
    state = json.loads(_saved_state(name))
    paths = [path for path, _ in _leaves(state) if path]
    path = data.draw(st.sampled_from(paths), label="path")
    parent = functools.reduce(lambda node, key: node[key], path[:-1], state)
    if isinstance(parent, dict) and data.draw(st.booleans(), label="remove"):
        del parent[path[-1]]
    else:
        parent[path[-1]] = data.draw(st.sampled_from(_ODD_VALUES), label="value")
    searcher = make(name)
    try:
        searcher.load_state_dict(state)
    except BadInputError:
        return
    ask_tell(searcher, 3)


@pytest.mark.parametrize("name", ["evolution", "predictor"])
def test_a_state_saved_before_the_first_ask_resumes(name):
    """Their generation (round) is -1 before the first ask: such a state was refused as "expected an integer >= 0"."""
    resumed = make(name)
    resumed.load_state_dict(round_trip(make(name).state_dict()))
    assert ask_tell(resumed, 12) == ask_tell(make(name), 12)


def test_evolution_generations():
    searcher = make("evolution", budget=30, population_size=12, selection_num=6, lgs_groups=4)
    gen0 = [searcher.ask() for _ in range(12)]
    assert all(a is not None for a in gen0)
    assert searcher.ask() is None and not searcher.is_finished()  # waits for the whole generation
    tags = [searcher.tags(a) for a in gen0]
    assert {t["generation"] for t in tags} == {0}
    assert sorted(t["lgs_group"] for t in tags) == [0, 0, 0, 1, 1, 1, 2, 2, 2, 3, 3, 3]
    for arch in gen0[:-1]:
        searcher.tell(arch, synthetic_result(arch))
    assert searcher.ask() is None
    searcher.tell(gen0[-1], synthetic_result(gen0[-1]))
    gen1 = [searcher.ask() for _ in range(6)]
    assert all(a is not None and searcher.tags(a)["generation"] == 1 for a in gen1)
    assert searcher.ask() is None
    for arch in gen1:
        searcher.tell(arch, synthetic_result(arch))
    run_searcher(searcher, synthetic_result)
    assert searcher.results_frame()["generation"].value_counts().sort_index().tolist() == [12, 6, 6, 6]

    limited = run_searcher(make("evolution", budget=100, population_size=12, selection_num=6, generations=2),
                           synthetic_result)
    assert limited.num_told == 18 and limited.is_finished()


def test_evolution_initial_population_covers_latency_groups():
    searcher = make("evolution", budget=40, population_size=40, lgs_groups=5)
    archs = [searcher.ask() for _ in range(40)]
    width = (MAX_MS - MIN_MS) / 5
    groups = [min(int((synthetic_latency_ms(a) - MIN_MS) / width), 4) for a in archs]
    counts = [groups.count(g) for g in range(5)]
    assert min(counts) >= 3 and max(counts) <= 16, counts  # 8 expected per group


def test_evolution_children_come_from_selected_parents():
    """With mutation off and crossover on, every child's stages/levels are copies of two population members."""
    searcher = run_searcher(make("evolution", budget=24, population_size=16, selection_num=8, mutation_prob=0.0,
                                 crossover_prob=0.5), synthetic_result)
    frame = searcher.results_frame()
    population = [r.arch for r in searcher.records[:16]]
    for record in searcher.records[16:]:
        child = record.arch
        parts = [child.backbone[i] for i in range(8)] + list(child.transport) + list(child.decoder)
        for j, part in enumerate(parts):
            pool = [(a.backbone + a.transport + a.decoder)[j] for a in population]
            assert part in pool
    assert (frame["generation"] == 1).sum() == 8


def test_evolution_failed_evaluations_are_refilled_from_lgs():
    searcher = make("evolution", budget=24, population_size=16, selection_num=8)
    while not searcher.is_finished():
        arch = searcher.ask()
        searcher.tell(arch, {"max_fmeasure": math.nan})
    assert searcher.stats["failed_evaluations"] == 24
    assert searcher.stats["lgs_refills"] == 1
    assert all(searcher.tags(r.arch)["lgs_group"] >= 0 for r in searcher.records)


def test_tell_checks_the_arch():
    searcher = make("random")
    arch = searcher.ask()
    with pytest.raises(ValueError, match="never asked"):
        searcher.tell(sample_max(SPACE), {"max_fmeasure": 0.5})
    searcher.tell(arch, {"max_fmeasure": 0.5})
    with pytest.raises(ValueError, match="already told"):
        searcher.tell(arch, {"max_fmeasure": 0.5})
    assert searcher.records[0].latency_ms == pytest.approx(synthetic_latency_ms(arch))  # from latency_fn


@pytest.mark.parametrize("optimizer", ["DE", "PortfolioDiscreteOnePlusOne", "TwoPointsDE"])
def test_nevergrad_optimizers_by_name(optimizer):
    searcher = run_searcher(make("nevergrad", budget=24, optimizer=optimizer), synthetic_result)
    frame = searcher.results_frame()
    assert len(frame) == 24 and frame["arch_id"].is_unique
    # each budget instance only evaluates archs under its budget
    assert (frame["latency_ms"] <= frame["budget_ms"] + 1e-9).all()


def test_nevergrad_minimises_a_min_metric():
    def result(arch):
        return {"mae": 1.0 - synthetic_accuracy(arch), "latency_ms": synthetic_latency_ms(arch)}

    searcher = run_searcher(make("nevergrad", budget=40, metric="mae", mode="min", num_budgets=1), result)
    maes = searcher.results_frame()["mae"].to_numpy()
    assert maes[-10:].min() < maes[:5].min()  # the single unconstrained instance improves


def test_build_searcher_errors():
    with pytest.raises(BadInputError, match="unknown searcher 'bayes'"):
        build_searcher("bayes", SPACE, synthetic_latency_ms, 10)
    with pytest.raises(BadInputError, match=r"unknown parameters \['population'\]"):
        build_searcher("evolution", SPACE, synthetic_latency_ms, 10, population=5)
    with pytest.raises(BadInputError, match="did you mean"):
        build_searcher("nevergrad", SPACE, synthetic_latency_ms, 10, optimizer="NGopt")
    with pytest.raises(BadInputError, match="budget"):
        build_searcher("random", SPACE, synthetic_latency_ms, 0)
    with pytest.raises(BadInputError, match="crossover_prob"):
        build_searcher("evolution", SPACE, synthetic_latency_ms, 10, crossover_prob=1.5)


@pytest.mark.parametrize(("name", "params", "expected"), [
    ("evolution", {"crossover_prob": "abc"}, r"crossover_prob: must be a finite number, got 'abc'"),
    ("evolution", {"generations": 2.5}, r"generations: must be a positive integer"),
    ("evolution", {"offspring_num": -1}, r"offspring_num: must be a positive integer, got -1"),
    ("nevergrad", {"budgets_ms": "abc"}, r"budgets_ms: must be a non-empty list of latencies in ms"),
    ("nevergrad", {"budgets_ms": []}, r"budgets_ms: must be a non-empty list"),
    ("nevergrad", {"penalty": math.nan}, r"penalty: must be a finite number, got nan"),
    ("nevergrad", {"warm_start": "no"}, r"warm_start: must be true or false, got 'no'"),
    ("optuna", {"sampler": "tpe", "sampler_options": {"bogus": 1}}, r"sampler_options: the tpe sampler refuses"),
    ("optuna", {"sampler_options": "x"}, r"sampler_options: must be a mapping"),
    ("optuna", {"lgs_initial": "x"}, r"lgs_initial: must be an integer >= 0, got 'x'"),
    ("random", {"max_tries": True}, r"max_tries: must be an integer, got True"),
    ("random", {"max_latency_ms": "abc"}, r"max_latency_ms: must be a finite number of ms, got 'abc'"),
    ("random", {"max_latency_ms": math.nan}, r"max_latency_ms: must be a finite number of ms, got nan"),
])
def test_parameters_of_the_wrong_type_are_named(name, params, expected):
    """Values a YAML config can hold (text, NaN, a bool for a number): once a ValueError/TypeError traceback deep in
    the searcher, or silently taken (`warm_start: "no"` as true, a NaN latency bound that refuses every arch)."""
    with pytest.raises(BadInputError, match=expected):
        make(name, **params)


def tiny_space():
    """27 architectures: only stage_5's layer widths and decoder level 0's connections/kernels vary."""
    stages = {n: {"widths": [min(SPACE.stage(n).widths)], "depths": [min(SPACE.stage(n).depths)], "kernels": [3]}
              for n in STAGE_NAMES}
    stages["stage_5"] = {"widths": [112, 116, 120], "depths": [2], "kernels": [3]}
    transport = {f"level_{i}": {"connections": [i], "kernels": [3]} for i in range(5)}
    decoder = {f"level_{i}": {"connections": [i, i + 1] if i < 4 else [4], "kernels": [3]} for i in range(5)}
    decoder["level_0"] = {"connections": [0, 1], "kernels": [3, 5]}
    return SPACE.narrow(stages, transport, decoder)


@pytest.mark.parametrize("name, params", [
    ("random", {"max_tries": 200}),
    ("evolution", {"population_size": 8, "selection_num": 4, "lgs_groups": 3}),
    ("nevergrad", {"num_budgets": 3, "max_tries_per_ask": 10}),
    ("optuna", {"population_size": 4, "max_tries_per_ask": 10, "max_tries": 200}),
    ("predictor", {"initial_size": 6, "lgs_groups": 3, "candidates": 50, "lgs_candidates": 3, "n_estimators": 10,
                   "max_tries": 200}),
])
def test_exhausted_space_finishes_early(name, params):
    space = tiny_space()
    assert space.cardinality() == 27
    searcher = run_searcher(build_searcher(name, space, synthetic_latency_ms, 50, 0, **params), synthetic_result)
    assert searcher.is_finished()
    assert 20 <= searcher.num_told <= 27
    assert len({r.arch.arch_id for r in searcher.records}) == searcher.num_told


@pytest.mark.parametrize("name", NAMES)
def test_every_searcher_evaluates_both_ends_of_the_latency_range_early(name):
    """The smallest and the largest arch are among the first 8 asks of every searcher, so every front reaches both
    ends of the latency range (random: `ends_first`; nevergrad: the lowest/highest budget's start points; the others
    through the latency-group sampler)."""
    first = ask_tell(make(name, budget=40, seed=3), 8)
    assert sample_min(SPACE).arch_id in first
    assert sample_max(SPACE).arch_id in first


def test_random_without_ends_first_is_the_plain_uniform_sampler():
    plain = ask_tell(make("random", seed=3, ends_first=False), 8)
    assert sample_min(SPACE).arch_id not in plain and sample_max(SPACE).arch_id not in plain
    with pytest.raises(BadInputError, match="ends_first"):
        make("random", ends_first="yes")


def test_nevergrad_end_start_points_respect_max_latency():
    cap_ms = MIN_MS + 0.5 * (MAX_MS - MIN_MS)
    first = ask_tell(make("nevergrad", seed=3, max_latency_ms=cap_ms), 8)
    assert sample_min(SPACE).arch_id in first
    assert sample_max(SPACE).arch_id not in first

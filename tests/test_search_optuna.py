"""The Optuna searcher on the synthetic problem: N-D objectives over every device, told device latencies, exact resume
after a kill for both samplers, the rebuild when a replay diverges, warm start, bad parameters."""

from __future__ import annotations

import json

import pytest

from inas.errors import BadInputError
from inas.search import build_searcher, run_searcher
from inas.search.searchers.base import Record
from inas.search.testing import ask_tell, synthetic_latency_ms, synthetic_result
from inas.space import Arch, inas_space

SPACE = inas_space()


def gpu_ms(arch: Arch) -> float:
    return 0.2 * synthetic_latency_ms(arch) + 0.4 * sum(len(lv.connections) for lv in (*arch.transport, *arch.decoder))


DEVICES = {"cpu": synthetic_latency_ms, "gpu": gpu_ms}


def make(sampler: str = "nsga2", budget: int = 30, seed: int = 0, **params):
    params = {"population_size": 6, "n_startup_trials": 6, "device_latency_fns": DEVICES, **params}
    return build_searcher("optuna", SPACE, synthetic_latency_ms, budget, seed, sampler=sampler, **params)


drive = ask_tell


def round_trip(state):
    return json.loads(json.dumps(state, allow_nan=False))


def test_objectives_are_the_metric_and_every_device():
    searcher = make(budget=8)
    assert [d.name for d in searcher.study.directions] == ["MAXIMIZE", "MINIMIZE", "MINIMIZE"]
    arch = searcher.ask()
    searcher.tell(arch, {**synthetic_result(arch), "latency_ms__gpu": 123.0})  # the told value wins over the LUT
    run_searcher(searcher, synthetic_result)
    trials = {t.number: t for t in searcher.study.get_trials() if t.values is not None}
    values = {tuple(t.values) for t in trials.values()}
    assert (synthetic_result(arch)["max_fmeasure"], synthetic_latency_ms(arch), 123.0) in values
    for record in searcher.records[1:]:
        want = (synthetic_result(record.arch)["max_fmeasure"], synthetic_latency_ms(record.arch), gpu_ms(record.arch))
        assert want in values


def test_without_devices_the_second_objective_is_the_primary_latency():
    searcher = build_searcher("optuna", SPACE, synthetic_latency_ms, 6, 0, sampler="tpe", n_startup_trials=3)
    run_searcher(searcher, synthetic_result)
    assert len(searcher.study.directions) == 2
    told = [t.values for t in searcher.study.get_trials() if t.values is not None]
    assert sorted(v[1] for v in told) == sorted(r.latency_ms for r in searcher.records)


@pytest.mark.parametrize("sampler", ["nsga2", "tpe"])
def test_resume_after_a_kill_continues_exactly(sampler):
    def run(kill: bool) -> list[str]:
        searcher = make(sampler)
        ids = drive(searcher, 10)
        pending = [searcher.ask(), searcher.ask()]  # in flight when the process dies
        ids += [a.arch_id for a in pending]
        if kill:
            state = round_trip(searcher.state_dict())
            searcher = make(sampler)
            searcher.load_state_dict(state)
            assert [searcher.ask().arch_id for _ in pending] == ids[-2:]  # lost trials come back first
            assert searcher.stats.get("replay_mismatches", 0) == 0
        for arch in pending:
            searcher.tell(arch, synthetic_result(arch))
        return ids + drive(searcher, 12)

    assert run(kill=True) == run(kill=False)


def test_replay_mismatch_rebuilds_without_reasking():
    searcher = make(budget=30)
    head = drive(searcher, 12)
    in_flight = searcher.ask()
    state = round_trip(searcher.state_dict())
    first_ask = next(e for e in state["extra"]["events"] if e[0] == "a")
    first_ask[-1] = "000000000000"  # as if another Optuna version proposed something else
    resumed = make(budget=30)
    resumed.load_state_dict(state)
    assert resumed.stats["replay_mismatches"] == 1
    assert resumed.ask().arch_id == in_flight.arch_id
    resumed.tell(in_flight, synthetic_result(in_flight))
    tail = drive(resumed, 17)
    assert not set(tail) & set(head) and in_flight.arch_id not in tail
    assert resumed.is_finished()
    assert len(resumed.study.get_trials()) >= 30


def test_warm_start_feeds_the_study_and_is_not_asked_again():
    earlier = run_searcher(make(budget=12, seed=5), synthetic_result).records
    searcher = make(budget=20)
    assert searcher.warm_start(earlier) == 12 and searcher.warm_start(earlier) == 0
    assert len(searcher.study.get_trials()) == 12
    run_searcher(searcher, synthetic_result)
    assert not {r.arch.arch_id for r in searcher.records} & {r.arch.arch_id for r in earlier}
    assert searcher.num_told == 20
    resumed = make(budget=20)
    resumed.load_state_dict(round_trip(searcher.state_dict()))
    assert set(resumed._prior) == {r.arch.arch_id for r in earlier}
    assert len(resumed.study.get_trials()) == len(searcher.study.get_trials())


def test_bad_parameters_and_foreign_states():
    with pytest.raises(BadInputError, match="sampler"):
        make("cmaes")
    with pytest.raises(BadInputError, match="population_size"):
        make(population_size=1)
    state = round_trip(run_searcher(make(budget=4), synthetic_result).state_dict())
    one_device = build_searcher("optuna", SPACE, synthetic_latency_ms, 4, 0, device_latency_fns={"cpu": gpu_ms})
    with pytest.raises(BadInputError, match="devices"):
        one_device.load_state_dict(state)
    with pytest.raises(BadInputError, match="sampler"):
        make("tpe", budget=4).load_state_dict(state)


def test_failed_evaluations_are_told_as_failed():
    searcher = make(budget=6)
    run_searcher(searcher, lambda arch: {"max_fmeasure": float("nan")})
    assert searcher.stats["failed_evaluations"] == 6
    assert all(t.state.name == "FAIL" for t in searcher.study.get_trials())
    assert isinstance(searcher.records[0], Record)


def test_first_generation_is_spread_over_the_latency_groups():
    searcher = make(budget=12, population_size=8)
    run_searcher(searcher, synthetic_result)
    first = [r.arch for r in searcher.records[:8]]
    groups = {searcher.sampler.group_of(synthetic_latency_ms(a)) for a in first}
    assert len(groups) >= 3 and searcher.stats["lgs_initial"] == 8
    plain = make(budget=12, population_size=8, lgs_initial=0)
    run_searcher(plain, synthetic_result)
    assert "lgs_initial" not in plain.stats
    assert max(synthetic_latency_ms(r.arch) for r in plain.records[:8]) < max(synthetic_latency_ms(a) for a in first)


def generations(searcher) -> list[int | None]:
    return [t.system_attrs.get("NSGAIISampler:generation") for t in searcher.study.get_trials(deepcopy=False)]


def test_nsga2_breeds_from_the_lgs_population_and_warm_start():
    # Optuna sets a trial's generation only when it samples it: enqueued (LGS) and added (warm start) trials must be
    # placed by us, else they are never parents and the next population_size asks are uniform draws
    searcher = make(budget=18, population_size=6)
    assert searcher.lgs_initial == 6
    run_searcher(searcher, synthetic_result)
    assert generations(searcher)[:18] == [0] * 6 + [1] * 6 + [2] * 6
    earlier = run_searcher(make(budget=6, seed=5), synthetic_result).records
    warm = make(budget=6, population_size=6, lgs_initial=0)
    warm.warm_start(earlier)
    run_searcher(warm, synthetic_result)
    assert generations(warm) == [0] * 6 + [1] * 6

"""Every benchmark line says which processor it ran on (model and flags: INT8 timings depend on VNNI / AMX)."""

from __future__ import annotations

import json
import shutil

import pytest

from benchmarks.common import record_result


@pytest.mark.skipif(shutil.which("lscpu") is None, reason="lscpu is not installed here")
def test_a_record_carries_the_cpu_model_and_flags_and_appends(tmp_path):
    path = tmp_path / "results.jsonl"
    path.write_text('{"bench": "old"}', encoding="utf-8")  # an earlier line without its newline
    record_result("unit", {"value_ms": 1.5}, path=path)
    lines = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
    assert [r["bench"] for r in lines] == ["old", "unit"]
    assert lines[1]["value_ms"] == 1.5 and lines[1]["cpu_model"] and lines[1]["cpu_flags"]


def test_predictor_curve_pools_each_scored_arch_once(tmp_path):
    """bench_predictor_curve's pool: the first row of each arch over the league's runs, failed rows dropped; a
    folder without runs exits with one line."""
    import random

    import pandas as pd

    from benchmarks.bench_predictor_curve import scored_archs
    from inas.space import inas_space, sample_uniform

    space, rng = inas_space(), random.Random(0)
    a, b = (sample_uniform(space, rng) for _ in range(2))

    def rows(pairs: list) -> pd.DataFrame:
        return pd.DataFrame({"arch_id": [x.arch_id for x, _ in pairs], "arch": [x.to_json() for x, _ in pairs],
                             "max_fmeasure": [v for _, v in pairs]})

    rows([(a, 0.8), (b, float("nan"))]).to_parquet(tmp_path / "seed0-evolution-96.parquet")
    rows([(a, 0.7), (b, 0.6)]).to_parquet(tmp_path / "seed1-random-96.parquet")
    pool = scored_archs(tmp_path)
    assert list(pool["arch_id"]) == [a.arch_id, b.arch_id] and list(pool["metric"]) == [0.8, 0.6]
    with pytest.raises(SystemExit, match="no seed"):
        scored_archs(tmp_path / "missing")


def test_predictor_curve_holds_out_archs_with_a_second_pass():
    """The held-out archs come from those the league scored twice (so the noise ceiling is measured on them) when
    enough have a second pass, else from all; the two parts of a split are disjoint and cover the pool."""
    import pandas as pd

    from benchmarks.bench_predictor_curve import split

    pool = pd.DataFrame({"arch_id": [f"a{i}" for i in range(40)]})
    second = {f"a{i}": 0.5 for i in range(0, 40, 4)}  # 10 archs scored twice
    for test, only_second in ((8, True), (12, False)):
        held_out, rest = split(pool, second, test, repeat=3)
        assert len(held_out) == test and sorted([*held_out, *rest]) == list(range(40))
        assert all(pool["arch_id"][i] in second for i in held_out) == only_second
    assert list(split(pool, second, 8, 3)[0]) == list(split(pool, second, 8, 3)[0])  # seeded


def test_league_runs_folder_changes_with_the_evaluation_and_its_assets(tmp_path):
    """A league's saved runs are reused only by a run that scores archs the same way: other BN batches, validation
    images or a supernet with other content get a folder of their own; the same settings the same folder."""
    from benchmarks.league_runs import evaluation_identity, runs_folder
    from inas.config import parse_config

    supernet = tmp_path / "supernet.pt"
    supernet.write_bytes(b"weights 1")

    def folder(bn_batches: int, val_images: int | None) -> str:
        doc = {"task": "sod", "search": {"supernet": str(supernet), "bn_recalibration_batches": bn_batches,
                                         "lut_dir": str(tmp_path / "lut")},
               "lut": {"devices": [{"name": "cpu", "backend": "onnxruntime"}]}}
        identity = evaluation_identity(parse_config(doc, "unit"), "demo", val_images)
        return runs_folder(tmp_path / "work", identity).name

    first = folder(4, None)
    assert folder(4, None) == first and first.startswith("demo-")
    assert len({first, folder(16, None), folder(4, 30)}) == 3
    supernet.write_bytes(b"weights 2")  # retrained in place
    assert folder(4, None) != first
    written = json.loads((tmp_path / "work" / "league_runs" / first / "evaluation.json").read_text())
    assert written["bn_batches"] == 4 and written["supernet_sha256"] != "missing"


def test_eval_noise_quality_on_noiseless_scores_has_ceilings_of_one(tmp_path):
    """bench_eval_noise: identical passes give ceilings of 1; the forest ranks a synthetic metric above chance; a
    malformed cache is read as empty (measured again)."""
    import random

    from benchmarks.bench_eval_noise import quality, read_scores
    from benchmarks.league_runs import League
    from inas.space import sample_uniform

    league = League.synthetic()
    rng = random.Random(0)
    runs = [[sample_uniform(league.space, rng) for _ in range(24)] for _ in range(2)]
    noise = [sample_uniform(league.space, rng) for _ in range(12)]
    scores = {a.arch_id: league.evaluator.evaluate(a)["max_fmeasure"] for a in [*noise, *runs[0], *runs[1]]}
    row = quality(runs, noise, scores, scores, league)
    assert row["noise_ceiling"] == 1.0 and row["same_archs_ceiling"] == 1.0
    assert row["oof_tau"] > 0.2 and row["held_out_tau"] > 0.2
    (tmp_path / "bad.json").write_text('{"a": "x"}', encoding="utf-8")
    assert read_scores(tmp_path / "bad.json") == {} and read_scores(tmp_path / "missing.json") == {}


def test_league_run_names_hash_the_resolved_settings(tmp_path, monkeypatch):
    """A saved league run's name hashes the searcher's settings with its code defaults filled in: spelling a default
    out names the same run, another value (or a changed default) another run."""
    import inspect

    from benchmarks import league_runs as league
    from inas.search.searchers import SEARCHERS

    default = inspect.signature(SEARCHERS["predictor"].__init__).parameters["mutation_prob"].default
    entries = {"implicit": ("predictor", {"initial_size": 8}),
               "explicit": ("predictor", {"initial_size": 8, "mutation_prob": default}),
               "other": ("predictor", {"initial_size": 8, "mutation_prob": default / 2})}
    monkeypatch.setattr(league, "LEAGUE", entries)
    hashes = {name: league.saved_run_path(tmp_path, name, 96, 0).name.rsplit("-", 1)[1] for name in entries}
    assert hashes["implicit"] == hashes["explicit"] != hashes["other"]


def test_league_scores_round_trip_and_a_malformed_file_is_ignored(tmp_path):
    """The league's scores (first-pass.json) load back into a fresh league's cache; a file of another shape or
    without the metric is ignored (those archs are scored again)."""
    import random

    from benchmarks.league_runs import League
    from inas.space import sample_uniform

    league = League.synthetic()
    archs = [sample_uniform(league.space, random.Random(i)) for i in range(3)]
    scored = [league.result(a)[league.metric] for a in archs]
    league.save_scores(tmp_path / "first-pass.json")
    fresh = League.synthetic()
    fresh.evaluator = None  # a cache miss would fail
    fresh.load_scores(tmp_path / "first-pass.json")
    assert [fresh.result(a)[fresh.metric] for a in archs] == scored
    for text in ('{"a": {"mae": 0.1}}', '{"a": {"max_fmeasure": "x"}}', "[1]", "{"):
        (tmp_path / "bad.json").write_text(text, encoding="utf-8")
        other = League.synthetic()
        other.load_scores(tmp_path / "bad.json")
        assert other.cache == {}


def test_league_processes_sharing_a_runs_folder_keep_each_others_scores(tmp_path):
    """Two leagues (seeds run side by side) each load the scores file before the other saves: every save unites
    with what is on disk, so neither loses the other's scores; the second pass's file likewise."""
    import random

    from benchmarks.league_runs import League, read_scores, write_merged_json
    from inas.space import sample_uniform

    path = tmp_path / "first-pass.json"
    first, second = League.synthetic(), League.synthetic()
    first.load_scores(path)
    second.load_scores(path)  # both start from the same (missing) file
    archs = [sample_uniform(first.space, random.Random(i)) for i in range(4)]
    for arch in archs[:2]:
        first.result(arch)
    for arch in archs[2:]:
        second.result(arch)
    first.save_scores(path)
    second.save_scores(path)
    assert set(first.read_scores_file(path)) == {a.arch_id for a in archs}
    passes = tmp_path / "second-pass.json"
    write_merged_json(passes, {"a": 0.5}, read_scores)
    write_merged_json(passes, {"b": 0.7}, read_scores)
    assert read_scores(passes) == {"a": 0.5, "b": 0.7}


def test_predictor_models_rank_a_synthetic_metric_and_read_one_run_per_seed(tmp_path):
    """bench_predictor_models: the forest ranks the synthetic problem's metric out of fold well above chance; a runs
    folder gives one run per seed (the first n rows), and a folder without runs of that entry is a clear exit."""
    import random

    import numpy as np
    import pandas as pd

    from benchmarks.bench_predictor_models import out_of_fold_tau, seed_runs
    from benchmarks.league_runs import League
    from inas.search.surrogate import ArchFeatures
    from inas.space import sample_uniform

    league = League.synthetic()
    archs = [sample_uniform(league.space, random.Random(i)) for i in range(48)]
    y = np.array([league.evaluator.evaluate(a)[league.metric] for a in archs])
    x = ArchFeatures(league.space).matrix(archs)
    assert out_of_fold_tau("forest", x, y, shuffles=1) > 0.3
    more = [sample_uniform(league.space, random.Random(100 + i)) for i in range(192)]  # a warm start ranks better
    scored = np.array([league.evaluator.evaluate(a)[league.metric] for a in more])
    prior = (ArchFeatures(league.space).matrix(more), scored)
    assert out_of_fold_tau("forest", x[:24], y[:24], shuffles=2, prior=prior) > \
        out_of_fold_tau("forest", x[:24], y[:24], shuffles=2) + 0.05
    rows = pd.DataFrame({"arch_id": [a.arch_id for a in archs], "arch": [a.to_json() for a in archs],
                         "max_fmeasure": y, "seed": 3})
    rows.to_parquet(tmp_path / "seed3-predictor-48-abc.parquet")
    rows.iloc[:40].to_parquet(tmp_path / "seed3-predictor-40-def.parquet")
    runs = seed_runs(tmp_path, "predictor", 32)
    assert list(runs) == [3] and len(runs[3]) == 32
    with pytest.raises(SystemExit, match="no seed"):
        seed_runs(tmp_path, "evolution", 32)


def test_shared_search_feeds_the_partners_in_lockstep_or_before_the_first_ask():
    """bench_shared_search: in lockstep nothing is shared before the initial design (the same first 8 archs as the
    plain run); a warm start of >= initial_size evaluations replaces it. Neither asks a partner's arch it was told."""
    from benchmarks.bench_shared_search import partner_records, run_shared
    from benchmarks.league_runs import League

    league = League.synthetic()
    partner = partner_records(league, league.run("random", 24, 5))
    plain = league.run("predictor", 12, 0)
    lockstep = run_shared(league, 0, 12, {"random": partner}, warm_start_n=0)
    warm = run_shared(league, 0, 12, {"random": partner}, warm_start_n=24)
    assert list(lockstep["arch_id"][:8]) == list(plain["arch_id"][:8])
    assert list(lockstep["arch_id"]) != list(plain["arch_id"])  # rounds fitted on the partner's evaluations too
    assert not set(warm["arch_id"][:8]) & set(plain["arch_id"][:8])  # no LGS initial design
    partner_ids = {r.arch.arch_id for r in partner}
    assert len(warm) == len(lockstep) == 12 and not set(warm["arch_id"]) & partner_ids

"""The accuracy predictor (features, fit/predict, cross-validation), the expected hypervolume improvement against a
brute-force reference, and the predictor-guided searcher (warm start, N-D objectives, tags, bad parameters)."""

from __future__ import annotations

import random

import numpy as np
import pandas as pd
import pytest
from scipy.stats import norm

from inas.errors import BadInputError
from inas.search import build_searcher, run_searcher
from inas.search.acquisition import expected_improvement, non_dominated, select_batch
from inas.search.pareto import hypervolume, hypervolume_points
from inas.search.surrogate import AccuracyPredictor, ArchFeatures
from inas.search.testing import synthetic_accuracy, synthetic_latency_ms, synthetic_result
from inas.space import ArchEncoding, inas_space, sample_uniform

SPACE = inas_space()
FAST = {"initial_size": 8, "candidates": 150, "lgs_candidates": 8, "n_estimators": 20}


@pytest.fixture(scope="module")
def data():
    rng = random.Random(0)
    archs = [sample_uniform(SPACE, rng) for _ in range(80)]
    noise = np.random.default_rng(0).normal(0, 0.003, len(archs))
    return archs, np.array([synthetic_accuracy(a) for a in archs]) + noise


def test_features_have_a_fixed_length_and_see_the_choices(data):
    archs, _ = data
    summary, encoding = ArchFeatures(SPACE, "summary"), ArchFeatures(SPACE, "encoding")
    assert encoding.matrix(archs).shape == (80, len(ArchEncoding(SPACE)))
    both = ArchFeatures(SPACE, "both").matrix(archs[:3])
    assert both.shape[1] == summary.matrix(archs[:1]).shape[1] + len(ArchEncoding(SPACE))
    x = summary.matrix(archs)
    assert len({tuple(r) for r in x}) == 80  # distinct archs, distinct rows here
    with pytest.raises(BadInputError, match="feature"):
        ArchFeatures(SPACE, "pixels")


def test_summary_features_count_finer_and_coarser_sources(data):
    """Per transport/decoder level: its source bits, then finer and coarser source counts and whether any, then the
    kernel-set size and the largest kernel."""
    arch = data[0][0]
    row = ArchFeatures(SPACE, "summary").vector(arch)
    at = 5 * len(SPACE.stages)
    levels = [*enumerate(zip(SPACE.transport, arch.transport, strict=True)),
              *enumerate(zip(SPACE.decoder, arch.decoder, strict=True))]
    for index, (space_level, arch_level) in levels:
        sources = sorted({j for s in space_level.connection_sets for j in s})
        assert row[at : at + len(sources)] == [float(j in arch_level.connections) for j in sources]
        at += len(sources)
        finer = sum(j < index for j in arch_level.connections)
        coarser = sum(j > index for j in arch_level.connections)
        assert row[at : at + 6] == [finer, coarser, float(finer > 0), float(coarser > 0), len(arch_level.kernels),
                                    max(arch_level.kernels)]
        at += 6
    assert at == len(row)


@pytest.mark.parametrize("model", ["forest", "boosting", "ridge", "gp", "auto"])
def test_predictor_fit_predict_and_cross_validation(data, model):
    archs, y = data
    predictor = AccuracyPredictor(SPACE, model=model, n_estimators=40, n_bags=4, seed=1).fit(archs[:60], y[:60])
    mean, std = predictor.predict(archs[60:])
    assert mean.shape == std.shape == (20,) and (std >= 0).all() and std.max() > 0
    held_out_tau = pd.Series(mean).corr(pd.Series(y[60:]), method="kendall")
    assert held_out_tau > 0.3  # it learned the trade-off, not noise
    again, _ = AccuracyPredictor(SPACE, model=model, n_estimators=40, n_bags=4, seed=1).fit(
        archs[:60], y[:60]).predict(archs[60:])
    np.testing.assert_array_equal(mean, again)  # seeded
    quality = predictor.cross_validate(archs, y, folds=4)
    assert quality.samples == 80 and quality.folds == 4 and quality.predicted.shape == (80,)
    assert quality.kendall_tau > 0.3 and 0 < quality.mae < np.abs(y - y.mean()).mean()
    assert 0 <= quality.within_1std <= 1
    np.testing.assert_array_equal(predictor.predict(archs[60:])[0], mean)  # the fitted model is kept
    assert predictor.chosen_model in ("forest", "ridge") if model == "auto" else predictor.chosen_model == model
    with pytest.raises(BadInputError, match="model"):
        AccuracyPredictor(SPACE, model="mlp")


def test_auto_predictor_picks_the_best_out_of_fold_model(data):
    from inas.search.surrogate import AUTO_MODELS, _out_of_fold

    archs, y = data
    predictor = AccuracyPredictor(SPACE, model="auto", n_estimators=40, n_bags=4, seed=1).fit(archs, y)
    x = predictor.features.matrix(archs)
    taus = {m: _out_of_fold(m, x, y, 5, 40, 4, 1)[2] for m in AUTO_MODELS}
    assert taus[predictor.chosen_model] == max(taus.values())
    few = AccuracyPredictor(SPACE, model="auto", seed=1).fit(archs[:6], y[:6])
    assert few.chosen_model == "forest"  # too few samples to choose on
    one_tree, std = AccuracyPredictor(SPACE, model="forest", n_estimators=1).fit(archs, y).predict(archs[:3])
    assert one_tree.shape == (3,) and (std == 0).all()  # a one-member ensemble is not mistaken for a process


def test_gaussian_process_fits_on_its_last_rows_only(data, monkeypatch):
    import inas.search.surrogate as surrogate

    archs, y = data
    monkeypatch.setattr(surrogate, "GP_MAX_SAMPLES", 30)
    capped = AccuracyPredictor(SPACE, model="gp", seed=1).fit(archs, y)
    assert capped._members[0].steps[-1][1].X_train_.shape[0] == 30
    last = AccuracyPredictor(SPACE, model="gp", seed=1).fit(archs[-30:], y[-30:])
    np.testing.assert_allclose(capped.predict(archs[:5])[0], last.predict(archs[:5])[0])

def brute_force_ehvi(front_lat, front_score, lat, mu, sigma, ref_lat, ref_score, nodes=601):
    """E[HV(front + p) - HV(front)] by the trapezoid rule on a dense grid over mu +- 8 sigma, weighted by the
    normal density (the gain is piecewise linear in the score; sigma 0: the exact difference)."""
    ref = np.append(ref_lat, -ref_score)

    def gain(m):
        base = hypervolume_points(np.column_stack([front_lat, -front_score]), ref)
        return hypervolume_points(np.vstack([np.column_stack([front_lat, -front_score]), np.append(lat, -m)]),
                                  ref) - base

    if sigma == 0:
        return gain(mu)
    grid = np.linspace(mu - 8 * sigma, mu + 8 * sigma, nodes)
    return float(np.trapezoid([gain(m) for m in grid] * norm.pdf(grid, mu, sigma), grid))


@pytest.mark.parametrize("devices", [1, 2, 3])
@pytest.mark.parametrize("seed", range(3))
def test_expected_improvement_matches_brute_force(devices, seed):
    rng = np.random.default_rng(10 * devices + seed)
    front_lat, front_score = rng.random((7, devices)), rng.random(7)
    keep = non_dominated(front_lat, front_score)
    front_lat, front_score = front_lat[keep], front_score[keep]
    ref_lat = np.full(devices, 1.0)
    lat = rng.random(devices) * 0.9
    for mu, sigma in ((0.7, 0.0), (0.5, 0.15), (0.9, 0.05)):
        got = expected_improvement(front_lat, front_score, lat, mu, sigma, ref_lat, 0.0)
        want = brute_force_ehvi(front_lat, front_score, lat, mu, sigma, ref_lat, 0.0)
        assert got == pytest.approx(want, rel=2e-3, abs=1e-6)


def test_select_batch_spreads_over_the_front():
    front_lat = np.array([[0.2], [0.5], [0.8]])
    front_score = np.array([0.3, 0.6, 0.8])
    # two near-identical candidates in one gap, one in another gap, one dominated
    lat = np.array([[0.3], [0.31], [0.6], [0.9]])
    mu, sigma = np.array([0.7, 0.7, 0.75, 0.1]), np.zeros(4)
    chosen, values = select_batch(front_lat, front_score, lat, mu, sigma, np.array([1.0]), 0.0, count=3)
    assert chosen[:2] in ([0, 2], [2, 0]) and 3 not in chosen  # the believer makes the twin worth less
    assert values == sorted(values, reverse=True) or len(values) < 3


def test_warm_start_replaces_the_initial_design_and_is_not_asked_again():
    earlier = run_searcher(build_searcher("random", SPACE, synthetic_latency_ms, 20, 7), synthetic_result).records
    searcher = build_searcher("predictor", SPACE, synthetic_latency_ms, 12, 0, **FAST)
    assert searcher.warm_start(earlier) == 20
    run_searcher(searcher, synthetic_result)
    frame = searcher.results_frame()
    assert (frame["generation"] >= 1).all()  # no initial LGS design: enough earlier evaluations
    assert frame["predicted_mean"].notna().all() and (frame["predicted_std"] >= 0).all()
    assert not set(frame["arch_id"]) & {r.arch.arch_id for r in earlier}


def test_objectives_over_every_device_and_better_than_random():
    def gpu_ms(arch):
        return 0.2 * synthetic_latency_ms(arch) + 0.4 * sum(len(lv.connections)
                                                          for lv in (*arch.transport, *arch.decoder))

    devices = {"cpu": synthetic_latency_ms, "gpu": gpu_ms}
    results = {}
    for name, params in (("predictor", FAST), ("random", {})):
        searcher = build_searcher(name, SPACE, synthetic_latency_ms, 32, 3, device_latency_fns=devices, **params)
        run_searcher(searcher, synthetic_result)
        results[name] = pd.DataFrame([{"acc": r.metric, **r.device_ms} for r in searcher.records])
    assert list(searcher.records[0].device_ms) == ["cpu", "gpu"]
    objectives = {"acc": "max", "cpu": "min", "gpu": "min"}
    reference = {"acc": 0.0, "cpu": 40.0, "gpu": 40.0}
    assert hypervolume(results["predictor"], objectives, reference) > hypervolume(results["random"], objectives,
                                                                                   reference)


def test_bad_parameters():
    for params, key in (({"batch_size": 0}, "batch_size"), ({"mutation_prob": 2.0}, "mutation_prob"),
                        ({"model": "svm"}, "model"), ({"lgs_candidates": -1}, "lgs_candidates")):
        with pytest.raises(BadInputError, match=key):
            build_searcher("predictor", SPACE, synthetic_latency_ms, 10, 0, **params)

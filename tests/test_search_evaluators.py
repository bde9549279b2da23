"""Search evaluators: accuracy with pristine BN per arch (no leakage), worker-side caching of the supernet, resource
columns from the latency tables and the profiler, the results table as a cache, and bad inputs."""

from __future__ import annotations

import logging
import math
import random
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from inas.config import ExperimentConfig, parse_config
from inas.data import synthesize_sod
from inas.errors import BadInputError
from inas.evaluation import bn_state
from inas.latency import enumerate_blocks, write_table
from inas.latency.table import table_from_rows
from inas.nn import Supernet, arch_cost, save_supernet
from inas.nn.testing import perturb_
from inas.search.evaluators import (
    AccuracyEvaluator,
    EvaluationTable,
    ResourceEvaluator,
    load_eval_data,
    load_latency_predictors,
    load_search_supernet,
    supernet_from_payload,
    supernet_payload,
    worker_evaluator,
)
from inas.search.trial import WorkerSetup
from inas.space import sample_max, sample_min, sample_uniform

IMAGE_SIZE = 64
DEVICES = ("dev_a", "dev_b")


def tiny_space_doc() -> dict:
    """One width/depth/kernel per stage (the smallest iNAS choices), kernels {3, 5} in two levels: the variety is in
    the transport/decoder connections and two kernel sets, a supernet that runs a 64 px image in ~10 ms."""
    widths = {"stem": 32, "stage_1": 16, "stage_2": 24, "stage_3": 40, "stage_4": 80, "stage_5": 112,
              "stage_6": 192, "stage_7": 320}
    depths = {"stage_1": 1, "stage_2": 2, "stage_3": 2, "stage_4": 2, "stage_5": 2, "stage_6": 2, "stage_7": 1}
    stages = {name: {"widths": [w], **({"depths": [depths[name]]} if name in depths else {}),
                     **({"kernels": [3]} if name not in ("stem", "stage_1", "stage_2") else {})}
              for name, w in widths.items()}
    levels = {f"level_{i}": {"kernels": [3, 5] if i in (0, 1) else [3]} for i in range(5)}
    return {"stages": stages, "transport": levels, "decoder": {k: dict(v) for k, v in levels.items()}}


def fake_table(space, device: str, seed: int) -> pd.DataFrame:
    """A latency table in the LUT schema with a distinct random latency per block."""
    rng = np.random.default_rng(seed)
    rows = []
    for key in enumerate_blocks(space, (IMAGE_SIZE, IMAGE_SIZE), 1):
        ms = float(rng.uniform(0.01, 1.0))
        rows.append({"block": key.text, **key.to_row(), "params": int(rng.integers(0, 100_000)), "device": device,
                     "backend": "onnxruntime", "batch": 1,
                     "threads": 1, "latency_ms": ms, "latency_ms_mean": ms, "latency_ms_std": 0.0, "runs": 5,
                     "torch_version": "t", "onnxruntime_version": "o", "python_version": "p", "host": "h",
                     "measured_at": "2026-01-01T00:00:00+00:00"})
    return table_from_rows(rows)


def make_problem(root: Path, searchers: list[dict] | None = None, **search) -> tuple[ExperimentConfig, Path]:
    """Synthetic data, a perturbed random supernet checkpoint and two fake latency tables under `root`; returns the
    config (as parsed) and the config document path (YAML) for CLI runs."""
    import yaml

    data_root = root / "data"
    if not data_root.exists():
        synthesize_sod(data_root, n_train=4, n_test=3, size=IMAGE_SIZE, seed=0, workers=1)
    doc = {
        "task": "sod", "seed": 0, "space": tiny_space_doc(),
        "data": {"root": str(data_root), "image_size": IMAGE_SIZE, "batch_size": 2, "num_workers": 0,
                 "val_list": "test.lst"},
        "lut": {"out_dir": str(root / "lut"), "devices": [{"name": d} for d in DEVICES]},
        "search": {"supernet": str(root / "supernet.pt"), "out_dir": str(root / "search"),
                   "bn_recalibration_batches": 2, "archs_per_trial": 2,
                   "searchers": searchers or [{"kind": "random", "budget": 4}], **search},
    }
    config = parse_config(doc, "test")
    space = config.space.build()
    if not (root / "supernet.pt").exists():
        torch.manual_seed(0)
        save_supernet(perturb_(Supernet(space), seed=0), root / "supernet.pt")
        for i, device in enumerate(DEVICES):
            write_table(root / "lut" / f"{device}.parquet", fake_table(space, device, seed=i))
    path = root / "config.yaml"
    path.write_text(yaml.safe_dump(doc), encoding="utf-8")
    return config, path


@pytest.fixture(scope="module")
def problem(tmp_path_factory):
    torch.set_num_threads(1)  # a loaded 2-core machine: oversubscribed threads are 10-50x slower
    root = tmp_path_factory.mktemp("problem")
    config, _ = make_problem(root)
    space = config.space.build()
    supernet = load_search_supernet(root / "supernet.pt", space, 1)
    data = load_eval_data(config.data, "sod", 2, 1, seed=0)
    return root, config, space, supernet, data


def test_accuracy_starts_from_pristine_bn_for_every_arch(problem):
    _, _, space, supernet, data = problem
    evaluator = AccuracyEvaluator(supernet, data, "sod", bn_batches=2)
    before = bn_state(supernet)
    rng = random.Random(3)
    a, b = sample_max(space), sample_uniform(space, rng)
    first = evaluator.evaluate(a)
    other = evaluator.evaluate(b)
    again = evaluator.evaluate(a)
    assert set(first) == {"max_fmeasure", "mae", "eval_seconds"}
    assert first["max_fmeasure"] == again["max_fmeasure"] and first["mae"] == again["mae"]
    assert (other["max_fmeasure"], other["mae"]) != (first["max_fmeasure"], first["mae"])
    assert 0.0 <= first["max_fmeasure"] <= 1.0 and 0.0 <= first["mae"] <= 1.0
    after = bn_state(supernet)
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert not supernet.training and evaluator.evaluations == 3


def test_bn_recalibration_changes_the_score(problem):
    """Recalibration is really applied: scoring with the checkpoint's (perturbed) BN statistics differs."""
    from inas.evaluation import evaluate_predictions, supernet_predictor

    _, _, space, supernet, data = problem
    arch = sample_min(space)
    recalibrated = AccuracyEvaluator(supernet, data, "sod", bn_batches=2).evaluate(arch)
    raw = evaluate_predictions(supernet_predictor(supernet.eval(), arch, "sod"), data.val_batches, "sod",
                               metrics="search")
    assert raw["mae"] != recalibrated["mae"]


def test_worker_evaluator_is_built_once_from_the_payload(problem):
    root, config, space, supernet, _ = problem
    payload = supernet_payload(supernet, key="k1")
    assert all(isinstance(v, np.ndarray) for v in payload["state"].values())
    rebuilt = supernet_from_payload(payload)
    x = torch.randn(1, 3, IMAGE_SIZE, IMAGE_SIZE)
    arch = sample_max(space)
    with torch.no_grad():
        torch.testing.assert_close(rebuilt(x, arch), supernet.eval()(x, arch))
    setup = WorkerSetup(data=config.data, task="sod", bn_batches=2, val_batch_size=1, seed=0)
    first = worker_evaluator(payload, setup)
    assert worker_evaluator(payload, setup) is first
    assert worker_evaluator({**payload, "key": "k2"}, setup) is not first


def test_resource_columns_per_device(problem):
    root, config, space, _, _ = problem
    predictors = load_latency_predictors(root / "lut", DEVICES, space, 1, (IMAGE_SIZE, IMAGE_SIZE))
    resources = ResourceEvaluator(predictors, space, (IMAGE_SIZE, IMAGE_SIZE))
    arch = sample_uniform(space, random.Random(0))
    out = resources.evaluate(arch)
    assert list(out) == ["latency_ms__dev_a", "latency_ms__dev_b", "params_m", "macs_g"]
    assert out["latency_ms__dev_a"] == pytest.approx(predictors["dev_a"].predict(arch))
    assert out["latency_ms__dev_a"] != out["latency_ms__dev_b"]
    params, macs = arch_cost(space, arch, (IMAGE_SIZE, IMAGE_SIZE))
    assert out["params_m"] == pytest.approx(params / 1e6) and out["macs_g"] == pytest.approx(macs / 1e9)
    assert resources.latency_ms(arch) == out["latency_ms__dev_a"]


def test_an_unconfirmed_candidate_correction_is_not_applied_and_said(problem, tmp_path, caplog):
    from inas.latency import Correction

    root, _, space, _, _ = problem
    lut = tmp_path / "lut"
    shutil.copytree(root / "lut", lut)
    Correction(0.0, 3.0, 0.0, "scale", 20, 9.0, 1.0, "dev_a").save(lut / "dev_a.correction-candidate.json")
    with caplog.at_level(logging.WARNING, logger="inas.search.evaluators"):
        predictors = load_latency_predictors(lut, DEVICES, space, 1, (IMAGE_SIZE, IMAGE_SIZE))
    assert predictors["dev_a"].correction is None  # block sums until a later `lut validate` confirms it
    assert "dev_a" in caplog.text and "candidate correction" in caplog.text and "dev_b" not in caplog.text


def test_evaluation_table_serves_successes_and_round_trips(tmp_path):
    lat = ["latency_ms__dev_a"]
    table = EvaluationTable("sod", lat)
    base = {"arch": "{}", "searcher": "random", "generation": -1, "mae": 0.2, "latency_ms__dev_a": 1.0,
            "params_m": 1.0, "macs_g": 0.1, "eval_seconds": 0.5, "cached": False, "trial_id": "t"}
    table.add({**base, "arch_id": "a", "max_fmeasure": math.nan})  # failed: never served
    table.add({**base, "arch_id": "b", "max_fmeasure": 0.7})
    table.add({**base, "arch_id": "b", "max_fmeasure": 0.1, "cached": True})
    assert table.lookup("a") is None
    assert table.lookup("b")["max_fmeasure"] == 0.7
    table.save(tmp_path / "evaluations.parquet")
    frame = pd.read_parquet(tmp_path / "evaluations.parquet")
    assert list(frame.columns) == ["arch_id", "arch", "searcher", "generation", "max_fmeasure", "mae",
                                   "latency_ms__dev_a", "params_m", "macs_g", "eval_seconds", "cached", "trial_id"]
    assert frame["generation"].dtype == "int64" and frame["cached"].dtype == bool
    loaded = EvaluationTable.load(tmp_path / "evaluations.parquet", "sod", lat)
    assert len(loaded) == 3 and loaded.lookup("b")["max_fmeasure"] == 0.7 and loaded.lookup("a") is None
    with pytest.raises(BadInputError, match="missing columns"):
        EvaluationTable.load(tmp_path / "evaluations.parquet", "seg", lat)


def test_bad_supernet_and_tables_are_clear_errors(problem, tmp_path):
    root, config, space, _, _ = problem
    with pytest.raises(BadInputError, match="supernet checkpoint not found"):
        load_search_supernet(tmp_path / "nope.pt", space, 1)
    with pytest.raises(BadInputError, match="expected supernet checkpoint .a file., found a folder"):
        load_search_supernet(tmp_path, space, 1)
    other = parse_config({"space": {"stages": {"stem": {"widths": [36]}}}}).space.build()
    with pytest.raises(BadInputError, match="different search space"):
        load_search_supernet(root / "supernet.pt", other, 1)
    with pytest.raises(BadInputError, match="latency table not found"):
        load_latency_predictors(tmp_path, ["dev_a"], space, 1, (IMAGE_SIZE, IMAGE_SIZE))
    with pytest.raises(BadInputError, match="built for input"):
        load_latency_predictors(root / "lut", ["dev_a"], space, 1, (96, 96))

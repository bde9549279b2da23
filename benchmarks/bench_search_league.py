"""The searcher league: every searcher at EQUAL budget on one supernet and its latency tables, several seeds;
hypervolume (2-D on the primary device and N-D over every device) mean +- standard error at each checkpoint, the
evaluations each needs to reach random's and evolution's final hypervolume, how much of the latency range its front
covers, and the accuracy predictor's quality against the noise ceiling: out of fold on its own evaluations, and on
the noise ceiling's own archs (fitted on its first 64 evaluations, it ranks the archs the ceiling was measured on).

0. Assets: the config's supernet checkpoint and latency tables are used when present; otherwise they are built into
   --work with the pipeline's own verbs (`data synth`, `train`, `lut`) on the config (--train-iterations, --quick for
   a smoke version). `--space wide` replaces the config's space with every width and depth choice of iNAS (kernels
   {3, 5}), to be trained and tabled into --work: a space whose networks spread much more in latency than the demo's.
1. Noise ceiling first: --noise-archs archs (spread over latency groups) evaluated twice with two different seeded
   BN-recalibration subsets; Kendall tau between the two passes. A predictor cannot rank archs better than the
   evaluation itself does.
2. League: for each seed, every searcher (evolution+LGS, nevergrad NGOpt, optuna nsga2, optuna tpe, predictor,
   random) asks and is told in-process (`run_searcher`) up to the largest checkpoint. Every searcher and seed shares
   ONE accuracy evaluator (fixed BN subset, the config seed) and one cache of scores by arch id, so an arch is
   scored once and identically for everyone; searchers differ only in what they ask. Each is told the metric and
   every device's LUT latency (`latency_ms__<device>`).
3. Hypervolume after the first n evaluations of each searcher (in the order told) with one reference point for all
   runs: per latency column the largest latency observed in the league, metric = the lowest observed; normalised
   by the box between that reference and the best observed values (1 would be one point at the ideal corner).

Prints Markdown tables and appends one JSON line to benchmarks/results.jsonl (unless --no-record). Every run, the
scores (`first-pass.json`), the second pass and the noise ceiling are saved under --work/league_runs/SPACE-HASH/ and
reused by a later call; HASH is of the evaluation's identity (space, BN batches and seed, validation images, the
supernet's and tables' content, written there as evaluation.json), so other settings or rebuilt assets never reuse
another evaluation's scores.

    python benchmarks/bench_search_league.py [--config experiments/sod_demo.yaml] [--seeds 0 1 2 3 4]
        [--checkpoints 16 32 64 96] [--val-images 30 --bn-batches 4] [--space demo|wide] [--work runs/league]
    python benchmarks/bench_search_league.py --quick --seeds 0 1 --checkpoints 4 8   # a smoke run, minutes
    python benchmarks/bench_search_league.py --synthetic     # the searchers alone, on inas.search.testing's problem
    python benchmarks/bench_search_league.py --searchers evolution predictor \
        --variant 'predictor_b2=predictor:{"initial_size": 16, "batch_size": 2}'   # a searcher's settings compared
"""

from __future__ import annotations

import argparse
import copy
import hashlib
import json
import logging
import math
import os
import random
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.common import record_result  # noqa: E402
from inas.config import ExperimentConfig, parse_config  # noqa: E402
from inas.io import atomic_write_json, atomic_write_parquet  # noqa: E402
from inas.search.pareto import hypervolume  # noqa: E402
from inas.search.schema import latency_column, primary_metric  # noqa: E402
from inas.search.searchers import (  # noqa: E402
    LatencyGroupSampler,
    build_searcher,
    run_searcher,
    searcher_defaults,
)
from inas.search.surrogate import AccuracyPredictor  # noqa: E402
from inas.space import Arch, SearchSpace, arch_from_json  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
LEAGUE = {  # name -> (kind, params); evolution's are those of the demo config's evolution searcher
    "evolution": ("evolution", {"population_size": 16, "selection_num": 8, "lgs_groups": 4}),
    "nevergrad": ("nevergrad", {"optimizer": "NGOpt", "num_budgets": 4}),
    "optuna_nsga2": ("optuna", {"sampler": "nsga2", "population_size": 8}),
    "optuna_tpe": ("optuna", {"sampler": "tpe", "n_startup_trials": 16}),
    "predictor": ("predictor", {"initial_size": 8, "batch_size": 4}),
    "random": ("random", {}),
}


def parse_variant(text: str) -> tuple[str, tuple[str, dict[str, Any]]]:
    """`--variant NAME=KIND:JSON` -> (NAME, (KIND, params)): an extra league entry with its own settings."""
    name, _, rest = text.partition("=")
    kind, _, params_json = rest.partition(":")
    try:
        params = json.loads(params_json or "{}")
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"--variant {text!r}: parameters are not JSON ({exc})") from None
    if not name.isidentifier() or name in LEAGUE or not kind or not isinstance(params, dict):
        raise argparse.ArgumentTypeError(f"--variant {text!r}: expected NAME=KIND:{{JSON object}} with a new NAME "
                                         f"(not one of {list(LEAGUE)})")
    return name, (kind, params)


QUICK = {"synth": ["--n-train", "24", "--n-test", "8"], "train": {"iterations": 20, "warmup_iterations": 4,
         "checkpoint_every": 10, "log_every": 5, "validate_every": 20, "val_images": 8, "bn_recalibration_batches": 1,
         "validate_at_start": False}, "lut": {"warmup_runs": 1, "runs": 3}}


# ----- assets ------------------------------------------------------------------------------------------------------
def wide_space() -> dict[str, Any]:
    """Every width and depth choice of iNAS, kernels {3, 5}: the space section of `--space wide`."""
    from inas.space import inas_space

    full = inas_space()
    stages = {s.name: {"kernels": [3, 5]} for s in full.stages if s.block != "conv" and len(s.kernels) > 1}
    levels = {f"level_{i}": {"kernels": [3, 5]} for i in range(5)}
    return {"stages": stages, "transport": levels, "decoder": {k: dict(v) for k, v in levels.items()}}


def league_document(config_path: Path, work: Path, space: str, quick: bool, iterations: int | None,
                    val_images: int | None, bn_batches: int | None) -> tuple[dict[str, Any], bool]:
    """The config with the benchmark's settings, and whether its assets must be built into `work`."""
    doc = yaml.safe_load(config_path.read_text(encoding="utf-8"))
    config = parse_config(copy.deepcopy(doc), str(config_path))
    doc.setdefault("data", {})["root"] = str(Path(config.data.root).resolve())
    search = doc.setdefault("search", {})
    supernet = Path(search.get("supernet") or "").resolve() if search.get("supernet") else None
    lut_dir = Path(search.get("lut_dir") or config.lut.out_dir).resolve()
    build = space == "wide" or quick or supernet is None or not supernet.is_file() or not all(
        (lut_dir / f"{d.name}.parquet").is_file() for d in config.lut.devices)
    if space == "wide":
        doc["space"] = wide_space()
    if build:
        doc["data"]["root"] = str(work / "data")
        doc.setdefault("train", {})["out_dir"] = str(work / "train")
        doc.setdefault("lut", {})["out_dir"] = str(work / "lut")
        supernet, lut_dir = work / "train" / "supernet.pt", work / "lut"
        if quick:
            doc["train"].update(QUICK["train"])
            doc["lut"].update(QUICK["lut"])
        if iterations is not None:
            doc["train"]["iterations"] = iterations
    search["supernet"], search["lut_dir"] = str(supernet), str(lut_dir)
    if bn_batches is not None:
        search["bn_recalibration_batches"] = bn_batches
    if val_images is not None:
        doc["league_val_images"] = val_images
    return doc, build


def build_assets(doc: dict[str, Any], work: Path, quick: bool) -> None:
    """data synth (if the data root is missing), train, lut: the pipeline's verbs on the benchmark config."""
    from inas.run import main as run_verb

    work.mkdir(parents=True, exist_ok=True)
    config_file = work / "config.yaml"
    config_file.write_text(yaml.safe_dump({k: v for k, v in doc.items() if not k.startswith("league_")},
                                          sort_keys=False), encoding="utf-8")
    steps = []
    if not Path(doc["data"]["root"]).is_dir():
        size = str(doc["data"].get("image_size", 128))
        steps.append(["data", "synth", "--task", doc.get("task", "sod"), "--out", doc["data"]["root"], "--size", size,
                      *(QUICK["synth"] if quick else [])])
    if not Path(doc["search"]["supernet"]).is_file():
        steps.append(["train", "-c", str(config_file)])
    steps.append(["lut", "-c", str(config_file)])  # completes missing blocks only
    for argv in steps:
        print(f"assets: python -m inas.run {' '.join(argv)}", flush=True)
        if run_verb(argv) != 0:
            raise SystemExit(f"building the league's assets failed at `{' '.join(argv)}`")


# ----- evaluation --------------------------------------------------------------------------------------------------
def make_evaluator(config: ExperimentConfig, val_images: int | None, bn_seed: int) -> Any:
    """An AccuracyEvaluator on the config's supernet, its BN subset drawn with `bn_seed`, the first `val_images`."""
    from inas.search.evaluators import AccuracyEvaluator, load_eval_data, load_search_supernet

    space = config.space.build()
    supernet = load_search_supernet(config.search.supernet, space, config.num_classes)
    data = load_eval_data(config.data, config.task, config.search.bn_recalibration_batches,
                          config.search.val_batch_size, seed=bn_seed)
    if val_images is not None:
        data.val_batches = data.val_batches[:max(1, math.ceil(val_images / config.search.val_batch_size))]
    return AccuracyEvaluator(supernet, data, config.task, config.search.bn_recalibration_batches)


class League:
    """The shared scorer: cached accuracy by arch id plus every device's latency function."""

    def __init__(self, space: SearchSpace, metric: str, device_fns: dict[str, Callable[[Arch], float]],
                 evaluator: Any) -> None:
        self.space = space
        self.metric = metric
        self.device_fns = device_fns
        self.evaluator = evaluator
        self.cache: dict[str, dict[str, float]] = {}

    @classmethod
    def from_config(cls, config: ExperimentConfig, evaluator: Any) -> League:
        """The config's space and metric, every device's LUT predictor."""
        from inas.latency import lut_input_hw
        from inas.search.evaluators import load_latency_predictors

        space = config.space.build()
        devices = config.search.devices or [d.name for d in config.lut.devices]
        predictors = load_latency_predictors(config.search.lut_dir, devices, space, config.num_classes,
                                             lut_input_hw(config))
        return cls(space, primary_metric(config.task), {d: p.predict for d, p in predictors.items()}, evaluator)

    @classmethod
    def synthetic(cls) -> League:
        """`--synthetic`: the full iNAS space, `inas.search.testing`'s accuracy and latency ("cpu") and a second
        device ("gpu") that ranks archs differently (cheap MACs, costly multi-level connections). No network."""
        from inas.search.testing import synthetic_accuracy, synthetic_latency_ms
        from inas.space import inas_space

        class Scorer:
            def evaluate(self, arch: Arch) -> dict[str, float]:
                return {"max_fmeasure": synthetic_accuracy(arch)}

        def gpu_ms(arch: Arch) -> float:
            connections = sum(len(lv.connections) for lv in (*arch.transport, *arch.decoder))
            return 0.2 * synthetic_latency_ms(arch) + 0.4 * connections

        return cls(inas_space(), "max_fmeasure", {"cpu": synthetic_latency_ms, "gpu": gpu_ms}, Scorer())

    @property
    def columns(self) -> list[str]:
        return [latency_column(d) for d in self.device_fns]

    def result(self, arch: Arch) -> dict[str, float]:
        scores = self.cache.get(arch.arch_id)
        if scores is None:
            scores = {k: v for k, v in self.evaluator.evaluate(arch).items() if k != "eval_seconds"}
            self.cache[arch.arch_id] = scores
        latencies = {latency_column(d): float(fn(arch)) for d, fn in self.device_fns.items()}
        return {**scores, **latencies, "latency_ms": latencies[self.columns[0]]}

    def read_scores_file(self, path: Path) -> dict[str, dict[str, float]]:
        """{arch id: scores} from `path` (written by `save_scores`; empty when missing or not of that shape)."""
        try:
            doc = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {}
        if isinstance(doc, dict) and all(isinstance(v, dict) and isinstance(v.get(self.metric), float)
                                         and all(isinstance(x, float) for x in v.values()) for v in doc.values()):
            return {str(arch_id): dict(scores) for arch_id, scores in doc.items()}
        return {}

    def load_scores(self, path: Path) -> None:
        """Fill the cache from `path` (ignored when missing or not of that shape)."""
        for arch_id, scores in self.read_scores_file(path).items():
            self.cache.setdefault(arch_id, scores)

    def save_scores(self, path: Path) -> None:
        """Write every cached score to `path` (the noise archs' first pass is in no saved run), united with what
        another league process on the same runs folder wrote there since this one read it."""
        write_merged_json(path, self.cache, self.read_scores_file)

    def run(self, name: str, budget: int, seed: int) -> pd.DataFrame:
        kind, params = LEAGUE[name]
        primary = next(iter(self.device_fns.values()))
        searcher = build_searcher(kind, self.space, primary, budget, seed, metric=self.metric,
                                  device_latency_fns=self.device_fns, **params)
        rows = []

        def evaluate(arch: Arch) -> dict[str, float]:
            result = self.result(arch)
            rows.append({"arch_id": arch.arch_id, "arch": arch.to_json(), **result})
            return result

        run_searcher(searcher, evaluate)
        return pd.DataFrame(rows).assign(searcher=name, seed=seed, evaluation=lambda f: np.arange(1, len(f) + 1))

    def run_saved(self, name: str, budget: int, seed: int, runs_dir: Path | None) -> pd.DataFrame:
        """`run`, kept in `runs_dir` so that a re-run of the benchmark (after a kill, or with more seeds) reuses it (the
        file name carries a hash of the entry's kind and resolved settings, `saved_run_path`: a changed setting or
        default is run again); the scores of a reused run fill the cache (the same archs are not evaluated again)."""
        path = saved_run_path(runs_dir, name, budget, seed) if runs_dir is not None else None
        frame = saved_run(path, self, budget) if path is not None and path.is_file() else None
        if frame is None:
            frame = self.run(name, budget, seed)
            if path is not None:
                atomic_write_parquet(path, frame)
            return frame
        scores = [c for c in frame.columns if c not in RUN_COLUMNS and c not in self.columns and c != "latency_ms"]
        for row in frame.itertuples(index=False):
            self.cache.setdefault(row.arch_id, {c: float(getattr(row, c)) for c in scores})
        return frame


RUN_COLUMNS = ("arch_id", "arch", "searcher", "seed", "evaluation")


def resolved_params(kind: str, params: dict[str, Any]) -> dict[str, Any]:
    """The searcher's keyword defaults (those of plain values) overlaid with `params`: what the run is made with, so
    that a changed default in the code changes a saved run's name too."""
    return {**searcher_defaults(kind), **params}


def saved_run_path(runs_dir: Path, name: str, budget: int, seed: int) -> Path:
    """Where the run of league entry `name` is saved: its kind and resolved settings hashed into the file name."""
    kind, params = LEAGUE[name]
    settings = json.dumps([kind, resolved_params(kind, params)], sort_keys=True)
    return runs_dir / f"seed{seed}-{name}-{budget}-{hashlib.sha256(settings.encode()).hexdigest()[:8]}.parquet"


def file_digest(path: Path) -> str:
    """The first 16 hex digits of the file's sha256 ("missing" when there is no such file)."""
    if not path.is_file():
        return "missing"
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()[:16]


def evaluation_identity(config: ExperimentConfig, space: str, val_images: int | None) -> dict[str, Any]:
    """What decides a saved run's scores and latencies: the space, the evaluation's settings (BN batches and seed,
    validation images) and the exact supernet and latency tables (by content)."""
    lut_dir = Path(config.search.lut_dir or config.lut.out_dir)
    devices = config.search.devices or [d.name for d in config.lut.devices]
    return {"space": space, "space_cardinality": config.space.build().cardinality(), "task": config.task,
            "image_size": config.data.image_size, "data_root": str(Path(config.data.root).resolve()),
            "bn_batches": config.search.bn_recalibration_batches, "bn_seed": config.seed,
            "val_images": val_images or "all", "val_batch_size": config.search.val_batch_size,
            "supernet_sha256": file_digest(Path(str(config.search.supernet))),
            "lut_sha256": {d: file_digest(lut_dir / f"{d}.parquet") for d in devices}}


def runs_folder(work: Path, identity: dict[str, Any]) -> Path:
    """`work`/league_runs/SPACE-HASH: saved runs, second pass and noise ceiling of one evaluation identity, so that a
    run with other BN batches, validation images, a retrained supernet or re-timed tables never reuses another's
    scores; the identity is written beside them (`evaluation.json`) for people to read."""
    key = hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()[:8]
    folder = work / "league_runs" / f"{identity['space']}-{key}"
    folder.mkdir(parents=True, exist_ok=True)
    atomic_write_json(folder / "evaluation.json", identity)
    return folder


def saved_run(path: Path, league: League, budget: int) -> pd.DataFrame | None:
    """A run saved by an earlier invocation, if it is complete and well-formed (else None: it is run again)."""
    try:
        frame = pd.read_parquet(path)
    except Exception as exc:  # noqa: BLE001 - any unreadable file is simply measured again
        print(f"ignoring {path} ({exc})", flush=True)
        return None
    needed = {*RUN_COLUMNS, league.metric, *league.columns}
    if not needed <= set(frame.columns) or len(frame) > budget or frame[league.metric].isna().any():
        print(f"ignoring {path} (columns or rows not those of a {budget}-evaluation league run)", flush=True)
        return None
    for arch_json, arch_id in zip(frame["arch"], frame["arch_id"], strict=True):
        if arch_from_json(arch_json, league.space).arch_id != arch_id:
            print(f"ignoring {path} (arch_id {arch_id} does not match its arch)", flush=True)
            return None
    return frame


def saved_noise_ceiling(runs_dir: Path, count: int) -> dict[str, Any] | None:
    """The noise ceiling an earlier invocation measured with the same number of archs, if well-formed."""
    path = runs_dir / f"noise-{count}.json"
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    ok = isinstance(doc, dict) and doc.get("archs") == count and isinstance(doc.get("kendall_tau"), float)
    return doc if ok else None


def read_scores(path: Path) -> dict[str, float]:
    """{arch_id: score} from a cache file; {} when missing or not of that shape (it is then measured again)."""
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    ok = isinstance(doc, dict) and all(isinstance(v, float) for v in doc.values())
    return dict(doc) if ok else {}


def write_merged_json(path: Path, ours: dict[str, Any], read: Callable[[Path], dict[str, Any]]) -> None:
    """Write `ours` to `path` (atomically) after adding to it every entry `read(path)` finds there that it lacks,
    under an exclusive lock on `path`.lock: league processes sharing one runs folder (seeds run side by side) keep
    each other's scores instead of the last writer's alone."""
    from inas.latency.devices import node_lock  # an exclusive fcntl lock on the file given

    with node_lock(True, path.with_name(path.name + ".lock")):
        for key, value in read(path).items():
            ours.setdefault(key, value)
        atomic_write_json(path, ours)


class SecondPass:
    """Scores of a second evaluation with the BN-recalibration subset of another seed (config seed + 1), cached by
    arch id in `path` (reused on a re-run when well-formed)."""

    def __init__(self, config: ExperimentConfig, val_images: int | None, metric: str, path: Path | None) -> None:
        self.config, self.val_images, self.metric, self.path = config, val_images, metric, path
        self.evaluator: Any = None
        self.scores: dict[str, float] = read_scores(path) if path is not None else {}

    def score(self, arch: Arch) -> float:
        if arch.arch_id not in self.scores:
            if self.evaluator is None:
                self.evaluator = make_evaluator(self.config, self.val_images, bn_seed=self.config.seed + 1)
            self.scores[arch.arch_id] = float(self.evaluator.evaluate(arch)[self.metric])
            if self.path is not None:
                write_merged_json(self.path, self.scores, read_scores)
        return self.scores[arch.arch_id]


def repeat_tau(league: League, second: SecondPass, archs: list[Arch]) -> tuple[float, float]:
    """Kendall tau and mean |difference| between the league's scores and a second pass over the same archs."""
    from scipy.stats import kendalltau

    first = [league.result(a)[league.metric] for a in archs]
    again = [second.score(a) for a in archs]
    return float(kendalltau(first, again).statistic), float(np.mean(np.abs(np.subtract(first, again))))


def noise_archs(league: League, count: int) -> list[Arch]:
    """`count` archs spread over the latency groups of the primary device (a fixed seed: the same every run)."""
    primary = next(iter(league.device_fns.values()))
    sampler = LatencyGroupSampler(league.space, primary, groups=min(count, 10))
    rng = random.Random(12345)
    archs: dict[str, Arch] = {}
    for i in range(20 * count):
        if len(archs) >= count:
            break
        arch = sampler.sample(i % sampler.groups, rng)
        archs.setdefault(arch.arch_id, arch)
    return list(archs.values())


def noise_ceiling(league: League, second: SecondPass, count: int) -> dict[str, Any]:
    """Kendall tau between two passes over `count` archs spread over latency groups (BN subsets of two seeds)."""
    archs = noise_archs(league, count)
    tau, diff = repeat_tau(league, second, archs)
    return {"archs": len(archs), "kendall_tau": round(tau, 4), "mean_abs_diff": round(diff, 5)}


def held_out_tau(frame: pd.DataFrame, league: League, n: int, held_out: list[Arch],
                 searcher: str = "predictor") -> list[float]:
    """Per run of `searcher` (a predictor searcher): the predictor (`forest`, the searcher's default) fitted on its
    first n evaluations ranks the `held_out` archs (the noise ceiling's archs, none of them in its training set);
    Kendall tau against their measured scores. The like-for-like comparison with the noise ceiling, which is measured on
    those same archs."""
    from scipy.stats import kendalltau

    measured = [league.result(a)[league.metric] for a in held_out]
    held_ids = {a.arch_id for a in held_out}
    taus = []
    for _, runs in frame[frame.searcher == searcher].groupby("seed"):
        runs = runs.iloc[:n]
        runs = runs[~runs["arch_id"].isin(held_ids)]
        archs = [arch_from_json(a, league.space) for a in runs["arch"]]
        predictor = AccuracyPredictor(league.space, model="forest").fit(archs, runs[league.metric].to_numpy(float))
        mean, _ = predictor.predict(held_out)
        taus.append(float(kendalltau(mean, measured).statistic))
    return taus


# ----- figures -----------------------------------------------------------------------------------------------------
def objectives_of(columns: list[str], metric: str) -> dict[str, dict[str, str]]:
    return {"2d": {columns[0]: "min", metric: "max"}, "nd": {**{c: "min" for c in columns}, metric: "max"}}


def hypervolumes(frame: pd.DataFrame, objectives: dict[str, str], metric: str,
                 checkpoints: list[int]) -> tuple[pd.DataFrame, float]:
    """Normalised hypervolume per (searcher, seed, checkpoint) with one common reference (see module docstring)."""
    ok = frame[frame[metric].notna()]
    reference = {c: float(ok[c].max()) if d == "min" else float(ok[c].min()) for c, d in objectives.items()}
    box = float(np.prod([abs(reference[c] - (ok[c].min() if d == "min" else ok[c].max()))
                         for c, d in objectives.items()])) or 1.0
    rows = []
    for (name, seed), runs in frame.groupby(["searcher", "seed"], sort=True):
        for n in checkpoints:
            rows.append({"searcher": name, "seed": seed, "n": n,
                         "hv": hypervolume(runs.iloc[:n], objectives, reference) / box})
    return pd.DataFrame(rows), box


def mean_se(values: list[float]) -> str:
    if len(values) < 2:
        return f"{values[0]:.4f}" if values else "-"
    return f"{statistics.mean(values):.4f} ± {statistics.stdev(values) / math.sqrt(len(values)):.4f}"


def evaluations_to_reach(frame: pd.DataFrame, objectives: dict[str, str], metric: str, target: str,
                         budget: int) -> dict[str, list[float]]:
    """Per searcher and seed (sorted), the first n at which its hypervolume reaches `target`'s at `budget` on the same
    seed (NaN where it never does within budget)."""
    curves, _ = hypervolumes(frame, objectives, metric, list(range(1, budget + 1)))
    out = {}
    for name in sorted(frame["searcher"].unique()):
        reached = []
        for seed in sorted(frame["seed"].unique()):
            goal = curves[(curves.searcher == target) & (curves.seed == seed) & (curves.n == budget)]["hv"]
            mine = curves[(curves.searcher == name) & (curves.seed == seed)].sort_values("n")
            hit = mine[mine["hv"] >= float(goal.iloc[0]) - 1e-12]["n"] if len(goal) else pd.Series(dtype=float)
            reached.append(float(hit.iloc[0]) if len(hit) else math.nan)
        out[name] = reached
    return out


def reach_summary(reached: list[float] | None) -> tuple[float, str]:
    """(mean over the seeds that reach, "hits/seeds"): the mean alone hides seeds that never reach."""
    hits = [r for r in reached or [] if not math.isnan(r)]
    return (round(statistics.mean(hits), 1) if hits else math.nan), f"{len(hits)}/{len(reached or [])}"


def front_coverage(frame: pd.DataFrame, column: str, metric: str, lo: float, hi: float) -> dict[str, float]:
    """Mean over seeds of the latency span of each searcher's 2-D front / the span [lo, hi] (the smallest and largest
    networks' latencies, widened to every latency in the league)."""
    from inas.search.pareto import pareto_front

    out: dict[str, list[float]] = {}
    for (name, _), runs in frame.groupby(["searcher", "seed"]):
        front = pareto_front(runs, {column: "min", metric: "max"})
        out.setdefault(name, []).append((front[column].max() - front[column].min()) / (hi - lo) if hi > lo else 0.0)
    return {k: round(statistics.mean(v), 3) for k, v in out.items()}


PREDICTOR_MODELS = ("forest", "auto", "ridge", "gp")  # "forest" (the predictor searcher's default) first


def predictor_quality(frame: pd.DataFrame, league: League, n: int, second: SecondPass | None,
                      searcher: str = "predictor") -> dict[str, Any]:
    """5-fold out-of-fold tau and MAE of the accuracy predictor (each of PREDICTOR_MODELS, summary features) on the
    first n evaluations of each run of `searcher` (a predictor searcher), mean over seeds; with `second`, also the noise
    ceiling of those same archs (the tau between two evaluation passes over them: archs near a front differ less than
    archs spread over the latency range, so a ceiling measured on the latter is not the one a predictor can reach on the
    former)."""
    taus: dict[str, list[float]] = {m: [] for m in PREDICTOR_MODELS}
    maes: dict[str, list[float]] = {m: [] for m in PREDICTOR_MODELS}
    ceilings = []
    for _, runs in frame[frame.searcher == searcher].groupby("seed"):
        runs = runs.iloc[:n]
        archs = [arch_from_json(a, league.space) for a in runs["arch"]]
        for model in PREDICTOR_MODELS:
            quality = AccuracyPredictor(league.space, model=model).cross_validate(
                archs, runs[league.metric].to_numpy(dtype=float))
            taus[model].append(quality.kendall_tau)
            maes[model].append(quality.mae)
        if second is not None:
            ceilings.append(repeat_tau(league, second, archs)[0])
    head = PREDICTOR_MODELS[0]
    out: dict[str, Any] = {"evaluations": n, "model": head, "kendall_tau": round(statistics.mean(taus[head]), 4),
                           "mae": round(statistics.mean(maes[head]), 5),
                           "kendall_tau_per_seed": [round(t, 4) for t in taus[head]],
                           "kendall_tau_by_model": {m: round(statistics.mean(v), 4) for m, v in taus.items()},
                           "mae_by_model": {m: round(statistics.mean(v), 5) for m, v in maes.items()}}
    if ceilings:
        out["same_archs_noise_ceiling"] = round(statistics.mean(ceilings), 4)
        out["same_archs_noise_ceiling_per_seed"] = [round(t, 4) for t in ceilings]
    return out


def tau_by_sample(frame: pd.DataFrame, league: League, n: int) -> dict[str, float]:
    """Per searcher: the 5-fold out-of-fold Kendall tau of the predictor (the searcher's default model) on that
    searcher's first n evaluations, mean over seeds. The same predictor ranks some samples far better than others:
    archs spread over the space differ more than archs gathered near a front, relative to the evaluation noise."""
    out = {}
    for name, runs in frame.groupby("searcher", sort=True):
        taus = []
        for _, seed_runs in runs.groupby("seed"):
            seed_runs = seed_runs.iloc[:n]
            archs = [arch_from_json(a, league.space) for a in seed_runs["arch"]]
            taus.append(AccuracyPredictor(league.space, model="forest").cross_validate(
                archs, seed_runs[league.metric].to_numpy(dtype=float)).kendall_tau)
        out[str(name)] = round(statistics.mean(taus), 4)
    return out


def report_predictor_quality(frame: pd.DataFrame, league: League, n: int, second: SecondPass | None,
                             ceiling: dict[str, Any], searcher: str, noise_count: int) -> dict[str, Any]:
    """`predictor_quality` of `searcher`'s runs against the noise ceilings, and (with a second pass) how the predictor
    fitted on their first n evaluations ranks the noise ceiling's archs; printed and returned."""
    quality = predictor_quality(frame, league, n, second, searcher)
    quality["ratio_to_noise_ceiling"] = round(quality["kendall_tau"] / ceiling["kendall_tau"], 3) \
        if ceiling["kendall_tau"] > 0 else math.nan
    same = float(quality.get("same_archs_noise_ceiling", math.nan))
    quality["ratio_to_same_archs_noise_ceiling"] = round(quality["kendall_tau"] / same, 3) if same > 0 else math.nan
    if second is not None:
        held = held_out_tau(frame, league, n, noise_archs(league, noise_count), searcher)
        quality["noise_archs_kendall_tau"] = round(statistics.mean(held), 4)
        quality["noise_archs_kendall_tau_per_seed"] = [round(t, 4) for t in held]
        quality["noise_archs_ratio_to_noise_ceiling"] = round(statistics.mean(held) / ceiling["kendall_tau"], 3)
        print(f"\n{searcher}: the predictor fitted on {n} evaluations ranks the {noise_count} noise-ceiling archs "
              f"with Kendall tau {quality['noise_archs_kendall_tau']} (per seed "
              f"{quality['noise_archs_kendall_tau_per_seed']}): "
              f"{quality['noise_archs_ratio_to_noise_ceiling']} x the ceiling measured on them", flush=True)
    print(f"{searcher}: the predictor after {n} evaluations (5-fold out of fold): Kendall tau "
          f"{quality['kendall_tau']} ({quality['ratio_to_noise_ceiling']} x the noise ceiling; the same archs "
          f"evaluated twice: tau {same}, ratio {quality['ratio_to_same_archs_noise_ceiling']}), MAE {quality['mae']}; "
          f"tau by model: {quality['kendall_tau_by_model']}", flush=True)
    return quality


def markdown_table(rows: list[dict[str, Any]], columns: list[str]) -> str:
    lines = ["| " + " | ".join(columns) + " |", "|" + "|".join("---" for _ in columns) + "|"]
    lines += ["| " + " | ".join(str(r.get(c, "")) for c in columns) + " |" for r in rows]
    return "\n".join(lines)


def league_tables(frame: pd.DataFrame, league: League, checkpoints: list[int]) -> dict[str, Any]:
    """The hypervolume tables (2-D, N-D) with evaluations-to-reach and front coverage."""
    from inas.space import sample_max, sample_min

    primary = next(iter(league.device_fns.values()))
    seen = frame[league.columns[0]]  # a table can time a larger choice faster than the smallest one
    lo, hi = min(primary(sample_min(league.space)), seen.min()), max(primary(sample_max(league.space)), seen.max())
    out: dict[str, Any] = {}
    for label, objectives in objectives_of(league.columns, league.metric).items():
        curves, box = hypervolumes(frame, objectives, league.metric, checkpoints)
        budget = checkpoints[-1]
        to_random = evaluations_to_reach(frame, objectives, league.metric, "random", budget)
        to_evolution = evaluations_to_reach(frame, objectives, league.metric, "evolution", budget)
        coverage = front_coverage(frame, league.columns[0], league.metric, lo, hi)
        rows = []
        for name in LEAGUE:
            mine = curves[curves.searcher == name]
            if mine.empty:
                continue
            row: dict[str, Any] = {"searcher": name}
            for n in checkpoints:
                row[f"hv@{n}"] = mean_se(mine[mine.n == n]["hv"].tolist())
                row[f"mean@{n}"] = round(float(mine[mine.n == n]["hv"].mean()), 4)
            row["evals_to_random_final"], row["seeds_reaching_random"] = reach_summary(to_random.get(name))
            row["evals_to_evolution_final"], row["seeds_reaching_evolution"] = reach_summary(to_evolution.get(name))
            row["evals_to_evolution_per_seed"] = to_evolution.get(name)
            row["front_latency_coverage"] = coverage.get(name, math.nan)
            rows.append(row)
        out[label] = {"objectives": objectives, "box": box, "rows": rows}
    return out


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="experiments/sod_demo.yaml", help="config with data, train, lut, search")
    parser.add_argument("--work", default="runs/league", help="folder for built assets (supernet, tables, data)")
    parser.add_argument("--space", choices=("demo", "wide"), default="demo", help="the config's space or the wide one")
    parser.add_argument("--quick", action="store_true", help="smoke-size assets (build into --work)")
    parser.add_argument("--train-iterations", type=int, default=None, help="training iterations of built assets")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    parser.add_argument("--checkpoints", type=int, nargs="+", default=[16, 32, 64, 96])
    parser.add_argument("--searchers", nargs="+", default=list(LEAGUE), choices=list(LEAGUE))
    parser.add_argument("--variant", type=parse_variant, action="append", default=[],
                        help="extra entry NAME=KIND:JSON (e.g. 'predictor_b2=predictor:{\"batch_size\": 2}'); "
                             "repeatable, run after --searchers")
    parser.add_argument("--noise-archs", type=int, default=30)
    parser.add_argument("--val-images", type=int, default=None, help="first N validation images (default: all)")
    parser.add_argument("--bn-batches", type=int, default=None, help="BN-recalibration batches per arch")
    parser.add_argument("--synthetic", action="store_true",
                        help="the synthetic problem of inas.search.testing instead of a supernet (no assets, minutes)")
    parser.add_argument("--threads", type=int, default=max(1, min(4, os.cpu_count() or 1)),
                        help="torch intra-op threads of the evaluator (default: min(4, CPUs))")
    parser.add_argument("--no-record", action="store_true", help="do not append to benchmarks/results.jsonl")
    return parser.parse_args()


def supernet_league(args: argparse.Namespace, checkpoints: list[int]) -> tuple[League, dict[str, Any], Path,
                                                                             SecondPass]:
    """The league on the config's (or built) supernet and tables: (league, settings to print and record, the runs
    folder of this evaluation, the second pass cached in it)."""
    work = Path(args.work).resolve()
    doc, build = league_document(Path(args.config), work, args.space, args.quick, args.train_iterations,
                                 args.val_images, args.bn_batches)
    if build:
        build_assets(doc, work, args.quick)
    config = parse_config({k: v for k, v in doc.items() if not k.startswith("league_")}, "bench_search_league")
    league = League.from_config(config, make_evaluator(config, args.val_images, bn_seed=config.seed))
    settings = {"config": args.config, "space": args.space, "assets_built": build,
                "supernet": doc["search"]["supernet"], "image_size": config.data.image_size,
                "val_images": args.val_images or "all", "bn_batches": config.search.bn_recalibration_batches,
                "devices": list(league.device_fns), "seeds": args.seeds, "checkpoints": checkpoints,
                "space_cardinality": league.space.cardinality(), "threads": args.threads}
    runs_dir = runs_folder(work, evaluation_identity(config, args.space, args.val_images))
    settings["runs"] = str(runs_dir.relative_to(REPO) if runs_dir.is_relative_to(REPO) else runs_dir)
    second = SecondPass(config, args.val_images, league.metric, runs_dir / "second-pass.json")
    return league, settings, runs_dir, second


def print_tables(tables: dict[str, dict[str, Any]], league: League, seeds: int, checkpoints: list[int]) -> None:
    for label, table in tables.items():
        title = "2-D (primary device)" if label == "2d" else f"N-D ({', '.join(league.device_fns)})"
        print(f"\n### Hypervolume, {title}: mean ± s.e. over {seeds} seeds, normalised\n")
        print(markdown_table(table["rows"], ["searcher", *[f"hv@{n}" for n in checkpoints], "evals_to_random_final",
                                             "seeds_reaching_random", "evals_to_evolution_final",
                                             "seeds_reaching_evolution", "front_latency_coverage"]))
        print("evaluations to evolution's final hypervolume per seed: " + "; ".join(
            f"{r['searcher']} {r['evals_to_evolution_per_seed']}" for r in table["rows"]))


def predictor_records(frame: pd.DataFrame, league: League, n: int, second: SecondPass | None,
                      ceiling: dict[str, Any], args: argparse.Namespace) -> dict[str, Any]:
    """Each predictor entry's quality after n evaluations (printed); for the default `predictor` also the forest
    fitted on every searcher's first n, out of fold and on the noise-ceiling archs."""
    record: dict[str, Any] = {}
    for name in [name for name in args.searchers if LEAGUE[name][0] == "predictor"]:
        quality = report_predictor_quality(frame, league, n, second, ceiling, name, args.noise_archs)
        if name != "predictor":
            record.setdefault("variant_predictor_quality", {})[name] = quality
            continue
        quality["kendall_tau_by_sample"] = tau_by_sample(frame, league, n)
        print(f"predictor (forest) out of fold on each searcher's first {n} evaluations: "
              f"{quality['kendall_tau_by_sample']}")
        if second is not None:
            held_out = noise_archs(league, args.noise_archs)
            quality["noise_archs_kendall_tau_by_sample"] = {
                str(s): round(statistics.mean(held_out_tau(frame, league, n, held_out, str(s))), 4)
                for s in sorted(frame["searcher"].unique())}
            print(f"predictor (forest) fitted on each searcher's first {n} evaluations, Kendall tau on the "
                  f"{args.noise_archs} noise-ceiling archs: {quality['noise_archs_kendall_tau_by_sample']}")
        record["predictor_quality"] = quality
    return record


def main() -> None:
    args = parse_args()
    LEAGUE.update(dict(args.variant))
    args.searchers += [name for name, _ in args.variant]
    logging.basicConfig(level=logging.WARNING)
    import torch

    torch.set_num_threads(args.threads)
    start = time.perf_counter()
    checkpoints = sorted(set(args.checkpoints))
    runs_dir: Path | None = None
    second: SecondPass | None = None
    if args.synthetic:
        league = League.synthetic()
        settings: dict[str, Any] = {"problem": "synthetic (inas.search.testing), full iNAS space",
                                    "devices": list(league.device_fns), "seeds": args.seeds,
                                    "checkpoints": checkpoints}
        ceiling = {"archs": 0, "kendall_tau": 1.0, "mean_abs_diff": 0.0, "note": "deterministic scores"}
        print("settings: " + ", ".join(f"{k} {v}" for k, v in settings.items()), flush=True)
    else:
        league, settings, runs_dir, second = supernet_league(args, checkpoints)
        print("settings: " + ", ".join(f"{k} {v}" for k, v in settings.items() if k != "runs"), flush=True)
        print(f"runs saved under {runs_dir}", flush=True)
        league.load_scores(runs_dir / "first-pass.json")
        ceiling = saved_noise_ceiling(runs_dir, args.noise_archs) or noise_ceiling(league, second, args.noise_archs)
        atomic_write_json(runs_dir / f"noise-{args.noise_archs}.json", ceiling)
        league.save_scores(runs_dir / "first-pass.json")
        print(f"\nnoise ceiling: Kendall tau {ceiling['kendall_tau']} between two BN-recalibration subsets over "
              f"{ceiling['archs']} archs (mean |difference| {ceiling['mean_abs_diff']})", flush=True)
    frames = []
    for seed in args.seeds:
        for name in args.searchers:
            t0 = time.perf_counter()
            frames.append(league.run_saved(name, checkpoints[-1], seed, runs_dir))
            print(f"seed {seed} {name}: {len(frames[-1])} evaluations in {time.perf_counter() - t0:.1f} s "
                  f"({len(league.cache)} distinct archs scored so far)", flush=True)
    frame = pd.concat(frames, ignore_index=True)
    tables = league_tables(frame, league, checkpoints)
    print_tables(tables, league, len(args.seeds), checkpoints)
    record: dict[str, Any] = {"settings": settings, "noise_ceiling": ceiling,
                              "hypervolume": {k: {"objectives": v["objectives"],
                                                  "rows": [{c: x for c, x in r.items() if not c.startswith("hv@")}
                                                           for r in v["rows"]]} for k, v in tables.items()}}
    record.update(predictor_records(frame, league, min(64, checkpoints[-1]), second, ceiling, args))
    if runs_dir is not None:
        league.save_scores(runs_dir / "first-pass.json")
    record["distinct_archs_scored"] = len(league.cache)
    record["seconds"] = round(time.perf_counter() - start, 1)
    print(f"\n{len(league.cache)} distinct archs scored; {record['seconds']} s")
    if not args.no_record:
        record_result("search_league", record)


if __name__ == "__main__":
    main()

"""The league's searchers and how their runs are scored and kept: the roster (`LEAGUE`, `--variant`), the shared
scorer (`League`: one evaluator and one cache of scores by arch id for every searcher and seed), the saved runs and
score files under --work/league_runs/SPACE-HASH/ (united under a lock when league processes share the folder), and the
second pass and noise ceiling (the same archs scored with another BN-recalibration subset). Used by
`bench_search_league.py` (see its docstring for the whole benchmark) and the predictor benchmarks."""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import random
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from inas.config import ExperimentConfig  # noqa: E402
from inas.io import atomic_write_json, atomic_write_parquet  # noqa: E402
from inas.search.schema import latency_column, primary_metric  # noqa: E402
from inas.search.searchers import (  # noqa: E402
    LatencyGroupSampler,
    build_searcher,
    run_searcher,
    searcher_defaults,
)
from inas.space import Arch, SearchSpace, arch_from_json  # noqa: E402

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

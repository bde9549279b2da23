"""The league's figures: hypervolume tables (2-D on the primary device, N-D over every device) with evaluations
to reach random's and evolution's final hypervolume and each front's share of the latency range, and the accuracy
predictor's quality after n evaluations against the noise ceilings (out of fold on its own evaluations, and on the
noise ceiling's archs held out). Used by `bench_search_league.py`."""

from __future__ import annotations

import argparse
import math
import statistics
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.league_runs import LEAGUE, League, SecondPass, noise_archs, repeat_tau  # noqa: E402
from inas.search.pareto import hypervolume  # noqa: E402
from inas.search.surrogate import AccuracyPredictor  # noqa: E402
from inas.space import Arch, arch_from_json  # noqa: E402


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


def reference_box(rows: pd.DataFrame, objectives: dict[str, str]) -> tuple[dict[str, float], float]:
    """The common reference point (per objective the worst value in `rows`) and the volume of the box between it and
    the best values (1.0 when that is empty): every hypervolume of a league is divided by it."""
    reference = {c: float(rows[c].max()) if d == "min" else float(rows[c].min()) for c, d in objectives.items()}
    box = float(np.prod([abs(reference[c] - (rows[c].min() if d == "min" else rows[c].max()))
                         for c, d in objectives.items()])) or 1.0
    return reference, box


def hypervolumes(frame: pd.DataFrame, objectives: dict[str, str], metric: str,
                 checkpoints: list[int]) -> tuple[pd.DataFrame, float]:
    """Normalised hypervolume per (searcher, seed, checkpoint) with one common reference (see module docstring)."""
    reference, box = reference_box(frame[frame[metric].notna()], objectives)
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

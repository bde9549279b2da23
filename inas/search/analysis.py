"""Pareto analysis of search results (the tables behind `analyze`): load and check `evaluations.parquet` folders,
fronts per searcher and overall, hypervolume with one common reference point, hypervolume vs evaluations, the knee
point, the best model under latency budgets, per-device latencies of the front, and LUT validation statistics.

All numbers come from `inas.search.pareto`; this module only chooses the objectives, the reference and the slices.
Objectives: the task metric (`max_fmeasure` for SOD, `miou` for segmentation, maximised) and one device's latency
(`latency_ms__<device>`, minimised).

Common reference point (so hypervolumes of different searchers are comparable): `pareto.default_reference` computed
once on ALL evaluations of all searchers and folders together, i.e. latency = the largest latency observed in any
evaluation, metric = 0.0. Hypervolumes are in ms x metric units.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq

from inas.errors import BadInputError, clip
from inas.search.pareto import (
    best_under_budget,
    default_reference,
    hypervolume,
    hypervolume_points,
    knee_point,
    pareto_front,
    to_minimisation,
)
from inas.search.predictor_quality import DEFAULT_VARIANTS, PredictorReport, predictor_quality
from inas.search.schema import (
    EVALUATIONS_FILE,
    LATENCY_PREFIX,
    NUMERIC_COLUMNS,
    REQUIRED_COLUMNS,
    SEARCHER_BUDGET_TAG,
    TASK_METRICS,
    check_values,
    detect_task,
    device_of,
    extra_metrics,
    latency_column,
    primary_metric,
)
from inas.search.schema import latency_columns as schema_latency_columns

VALIDATION_COLUMNS = ("arch_id", "arch", "device", "predicted_ms", "measured_ms")
OVERALL = "(overall)"  # the `searcher` value of the all-searchers row in the hypervolume table
SOURCE_COLUMN = "source"  # folder name each row came from
EVALUATION_COLUMN = "evaluation"  # 1-based evaluation count within its searcher (after dedup, in row order)
BUDGET_COLUMN = "budget_ms"  # the latency budget of the budget tables
# a searcher's own tag renamed in the analysis tables, so that it never meets the budget tables' BUDGET_COLUMN
RENAMED_TAGS = {SEARCHER_BUDGET_TAG: "searcher_budget_ms"}


def latency_columns(frame: pd.DataFrame) -> list[str]:
    """The `latency_ms__<device>` columns of `frame`, in column order."""
    return schema_latency_columns(frame.columns)


def _read_parquet(path: Path) -> pd.DataFrame:
    """The whole file as a frame, fully validated by pyarrow; BadInputError for any unreadable file."""
    try:
        table = pq.read_table(path)
        table.validate(full=True)  # e.g. text that is not UTF-8 fails here, not in the report writer
        return table.to_pandas()
    except Exception as exc:  # pyarrow raises several types for corrupt files
        raise BadInputError(f"cannot be read as Parquet ({type(exc).__name__}: {clip(str(exc), 200)})",
                            path=path) from None


def _check_columns(frame: pd.DataFrame, path: Path) -> str:
    """The task the columns are of; BadInputError listing every missing column, or naming a non-numeric one."""
    columns = [str(c) for c in frame.columns]
    missing = [c for c in REQUIRED_COLUMNS if c not in columns]
    task = detect_task(columns)
    if task is None:
        missing.append("max_fmeasure and mae (SOD) or miou (segmentation)")
    else:
        missing += [c for c in extra_metrics(task) if c not in columns]
    if not latency_columns(frame):
        missing.append(f"{LATENCY_PREFIX}<device> (at least one)")
    if missing or task is None:
        raise BadInputError(f"missing columns: {', '.join(missing)}", path=path)
    for column in (*NUMERIC_COLUMNS, *TASK_METRICS[task], *latency_columns(frame)):
        if not pd.api.types.is_numeric_dtype(frame[column]):
            raise BadInputError(f"column must be numeric, got dtype {frame[column].dtype}", path=path, key=column)
        if np.isinf(frame[column].to_numpy(dtype=float, na_value=np.nan)).any():
            raise BadInputError("column holds infinite values", path=path, key=column)
    check_values(frame, path, task, latency_columns(frame))
    return task


def _check_some_succeeded(frame: pd.DataFrame, metric: str, path: Path, warm_start: bool) -> None:
    """BadInputError when there are no rows, or every evaluation failed (naming the first error); the way out
    depends on whether the folder is analysed or a `--warm-start` folder."""
    if warm_start:
        use, way_out = "to warm-start from", "leave this folder out of --warm-start, or "
    else:
        use, way_out = "to analyse", ""
    if frame.empty:
        raise BadInputError(f"has no rows, nothing {use}: the search evaluated no architecture yet ({way_out}run "
                            "`search` on this folder to start or continue it)", path=path)
    if frame[metric].isna().all():
        errors = frame["error"].dropna().astype(str) if "error" in frame.columns else pd.Series(dtype=str)
        first = f"; first error: {errors.iloc[0][:300]}" if len(errors) else ""
        raise BadInputError(f"every one of its {len(frame)} evaluations failed, nothing {use}{first}; {way_out}run "
                            "the same `search` command again to evaluate them again (no budget is spent on them)",
                            path=path, key=metric)


def read_evaluations(folder: str | Path, warm_start: bool = False) -> pd.DataFrame:
    """Read and check `folder/evaluations.parquet` against the search output contract (DESIGN.md); `warm_start`:
    read for `search --warm-start` (only the messages differ).

    Raises BadInputError naming the folder/file and every missing column (or a non-numeric one).
    """
    folder = Path(folder)
    path = folder / EVALUATIONS_FILE
    if not folder.is_dir():
        raise BadInputError("not a folder; expected a search output folder holding evaluations.parquet", path=folder)
    if not path.is_file():
        raise BadInputError("missing; expected the search output evaluations.parquet in this folder", path=path)
    frame = _read_parquet(path)
    task = _check_columns(frame, path)
    _check_arch_ids(frame, path)
    _check_some_succeeded(frame, TASK_METRICS[task][0], path, warm_start)
    return frame


def _source_names(folders: Sequence[Path]) -> list[str]:
    """Folder names as row tags; a repeated name gets the full path instead so tags stay unique."""
    names = [f.resolve().name or str(f) for f in folders]
    return [str(f) if names.count(n) > 1 else n for f, n in zip(folders, names, strict=True)]


def _check_arch_ids(frame: pd.DataFrame, path: Path) -> None:
    """Every row's arch parses in the iNAS space and its `arch_id` is that arch's id (ids name files);
    BadInputError naming `path` and the row otherwise."""
    from inas.search.evaluators import check_row_id
    from inas.space import inas_space

    space = inas_space()
    for index, row in enumerate(frame[["arch", "arch_id"]].to_dict(orient="records")):
        check_row_id(row, space, path, index)


def load_results(folders: Sequence[str | Path]) -> tuple[pd.DataFrame, int]:
    """Concatenate the evaluations of several search output folders.

    Rows are tagged with their folder name (`source`), de-duplicated by `arch_id` within each searcher (first
    occurrence kept, folders in the given order), then numbered per searcher in row order (`evaluation`, 1-based).
    Returns (table, number of duplicate rows dropped). All folders must hold the same task (metric).
    """
    if not folders:
        raise BadInputError("needs at least one search output folder", key="RESULT_DIR")
    paths = [Path(f) for f in folders]
    frames = [read_evaluations(p) for p in paths]
    tasks = {p: detect_task([str(c) for c in f.columns]) for p, f in zip(paths, frames, strict=True)}
    if len(set(tasks.values())) > 1:
        listing = ", ".join(f"{p} ({t})" for p, t in tasks.items())
        raise BadInputError(f"folders hold different tasks (sod: max_fmeasure, seg: miou): {listing}", key="RESULT_DIR")
    tagged = [f.assign(**{SOURCE_COLUMN: name}) for f, name in zip(frames, _source_names(paths), strict=True)]
    table = pd.concat(tagged, ignore_index=True, sort=False)
    table["arch_id"] = table["arch_id"].astype(str)
    table["searcher"] = table["searcher"].astype(str)
    keep = ~table.duplicated(subset=["searcher", "arch_id"], keep="first")
    dropped = int((~keep).sum())
    table = table[keep].reset_index(drop=True)
    table[EVALUATION_COLUMN] = table.groupby("searcher", sort=False).cumcount() + 1
    return table, dropped


def default_budgets_ms(latency_ms: pd.Series, count: int = 5) -> list[float]:
    """`count` budgets evenly spread over the observed latency range (min, max], 3 significant digits."""
    values = pd.to_numeric(latency_ms, errors="coerce").dropna()
    if values.empty:
        return []
    lo, hi = float(values.min()), float(values.max())
    if hi <= lo:
        return [_round_sig(hi)]
    raw = np.linspace(lo, hi, count + 1)[1:]
    return sorted({_round_sig(float(v)) for v in raw})


def _round_sig(value: float, digits: int = 3) -> float:
    if value == 0 or not math.isfinite(value):
        return value
    return round(value, digits - 1 - int(math.floor(math.log10(abs(value)))))


def parse_budgets(text: str) -> list[float]:
    """"5,10,20" -> [5.0, 10.0, 20.0]; every budget a positive number of milliseconds."""
    budgets = []
    for item in text.split(","):
        item = item.strip()
        try:
            value = float(item)
        except ValueError:
            raise BadInputError(f"expected comma-separated milliseconds like 5,10,20, got {text!r}",
                                key="--budgets") from None
        if not math.isfinite(value) or value <= 0:
            raise BadInputError(f"every budget must be a positive number of ms, got {item!r}", key="--budgets")
        budgets.append(value)
    return budgets


def hypervolume_curve(frame: pd.DataFrame, objectives: dict[str, str], reference: dict[str, float]) -> pd.DataFrame:
    """Hypervolume of the first n rows of `frame` (row order = evaluation order) for n = 1..len(frame).

    Maintains the running non-dominated set, so each step costs O(front size). Columns: `evaluation` (n),
    `hypervolume`, `front_size`. Equals `pareto.hypervolume(frame.iloc[:n], objectives, reference)` for every n.
    """
    points = to_minimisation(frame, objectives)
    ref = np.array([-reference[c] if d == "max" else reference[c] for c, d in objectives.items()], dtype=float)
    front = np.empty((0, points.shape[1]))
    volume = 0.0
    volumes, sizes = [], []
    for p in points:
        if not np.isnan(p).any() and not np.any(np.all(front <= p, axis=1)):
            front = np.vstack([front[~np.all(p <= front, axis=1)], p])
            volume = hypervolume_points(front, ref)
        volumes.append(volume)
        sizes.append(len(front))
    return pd.DataFrame({EVALUATION_COLUMN: np.arange(1, len(points) + 1), "hypervolume": volumes,
                         "front_size": sizes})


def read_validation(path: str | Path) -> pd.DataFrame:
    """Read and check a `lut validate` output (`validation.parquet`: arch_id, arch, device, predicted_ms,
    measured_ms)."""
    path = Path(path)
    if not path.is_file():
        raise BadInputError("missing; expected the validation.parquet written by `lut validate`", path=path,
                            key="--validation")
    try:
        frame = pd.read_parquet(path)
    except Exception as exc:
        raise BadInputError(f"cannot be read as Parquet ({type(exc).__name__}: {exc})", path=path) from exc
    missing = [c for c in VALIDATION_COLUMNS if c not in frame.columns]
    if missing:
        raise BadInputError(f"missing columns: {', '.join(missing)}", path=path)
    for column in ("predicted_ms", "measured_ms", "run_drift"):
        if column in frame.columns and not pd.api.types.is_numeric_dtype(frame[column]):
            raise BadInputError(f"column must be numeric, got dtype {frame[column].dtype}", path=path, key=column)
    if "run_drift" in frame.columns and not (np.isfinite(frame["run_drift"]) & (frame["run_drift"] > 0)).all():
        raise BadInputError("expected finite positive factors", path=path, key="run_drift")
    if frame.empty:
        raise BadInputError("has no rows", path=path)
    return frame


def predicted_now_ms(validation: pd.DataFrame) -> pd.Series:
    """The predictions at the validation run's machine speed: `predicted_ms x run_drift` (files without
    `run_drift`, written before 2026-12-03, predicted in the run's own time base)."""
    predicted = validation["predicted_ms"].astype(float)
    return predicted * validation["run_drift"].astype(float) if "run_drift" in validation.columns else predicted


def validation_summary(validation: pd.DataFrame) -> pd.DataFrame:
    """Per device: `archs`, `mape_pct` (mean |predicted - measured| / measured x 100), `within_10pct` (fraction of
    archs predicted within +-10 % of measured), `spearman` (rank correlation predicted vs measured); predictions at
    the run's speed (`predicted_now_ms`)."""
    rows = []
    for device, group in validation.groupby("device", sort=True):
        predicted = predicted_now_ms(group)
        measured = group["measured_ms"].astype(float)
        relative = (predicted - measured).abs() / measured
        spearman = predicted.corr(measured, method="spearman") if len(group) > 1 else float("nan")
        rows.append({"device": str(device), "archs": len(group), "mape_pct": float(relative.mean() * 100),
                     "within_10pct": float((relative <= 0.10).mean()), "spearman": float(spearman)})
    return pd.DataFrame(rows, columns=["device", "archs", "mape_pct", "within_10pct", "spearman"])


@dataclass(frozen=True)
class Analysis:
    """Every table of one analysis. `evaluations` holds all (de-duplicated) rows; fronts are sorted by latency."""

    evaluations: pd.DataFrame
    metric: str  # task metric column, maximised
    latency_column: str  # latency_ms__<device> used as the second objective
    objectives: dict[str, str]
    reference: dict[str, float]  # common hypervolume reference point (see module docstring)
    front_overall: pd.DataFrame  # non-dominated rows over all searchers, with `rank` (0)
    front_per_searcher: pd.DataFrame  # each searcher's own non-dominated rows
    hypervolume_table: pd.DataFrame  # searcher, evaluations, front_size, hypervolume, hypervolume_share
    hypervolume_curve: pd.DataFrame  # searcher, evaluation, hypervolume, front_size
    knee: pd.Series  # the knee row of the overall front
    budgets: pd.DataFrame  # best row (all searchers) per budget
    budgets_per_searcher: pd.DataFrame  # budget x searcher -> best metric
    front_devices: pd.DataFrame  # overall front: arch_id, searcher, metric, every latency_ms__* column
    duplicates_dropped: int = 0
    validation: pd.DataFrame | None = None
    validation_summary: pd.DataFrame | None = None
    joint: JointAnalysis | None = None  # the N-D analysis over several devices (`analyze(devices=...)`)
    predictor: PredictorReport | None = None  # accuracy-predictor quality on these evaluations (out-of-fold)

    @property
    def device(self) -> str:
        return device_of(self.latency_column)

    @property
    def searchers(self) -> list[str]:
        return list(dict.fromkeys(self.evaluations["searcher"]))


def choose_latency_column(frame: pd.DataFrame, device: str | None, key: str = "--device") -> str:
    """`latency_ms__<device>`, default the first latency column; BadInputError listing the devices if absent."""
    columns = latency_columns(frame)
    if device is None:
        return columns[0]
    column = latency_column(device)
    if column not in columns:
        raise BadInputError(f"no {column} column; devices in the results: {[device_of(c) for c in columns]}",
                            key=key)
    if frame[column].isna().all():
        raise BadInputError(f"{column} has no values in any result row", key=key)
    return column


def searcher_hypervolumes(evaluations: pd.DataFrame, objectives: dict[str, str], reference: dict[str, float],
                          ) -> tuple[pd.DataFrame, dict[str, pd.DataFrame]]:
    """(table: searcher, evaluations, front_size, hypervolume, hypervolume_share, reference_<objective>...;
    {searcher or OVERALL: its front}) over one common reference point."""
    groups = {s: evaluations[evaluations["searcher"] == s] for s in dict.fromkeys(evaluations["searcher"])}
    groups[OVERALL] = evaluations
    fronts = {s: pareto_front(g, objectives) for s, g in groups.items()}  # (non-dominated sorting is the cost)
    overall_volume = hypervolume(evaluations, objectives, reference)
    rows = []
    for name, group in groups.items():
        volume = hypervolume(group, objectives, reference)
        rows.append({"searcher": name, "evaluations": len(group), "front_size": len(fronts[name]),
                     "hypervolume": volume,
                     "hypervolume_share": volume / overall_volume if overall_volume > 0 else float("nan"),
                     **{f"reference_{c}": reference[c] for c in objectives}})
    return pd.DataFrame(rows), fronts


def searcher_curves(evaluations: pd.DataFrame, objectives: dict[str, str], reference: dict[str, float],
                    ) -> pd.DataFrame:
    """`hypervolume_curve` of every searcher: searcher, evaluation, hypervolume, front_size."""
    groups = {s: evaluations[evaluations["searcher"] == s] for s in dict.fromkeys(evaluations["searcher"])}
    return pd.concat([hypervolume_curve(g, objectives, reference).assign(searcher=s) for s, g in groups.items()],
                     ignore_index=True)[["searcher", EVALUATION_COLUMN, "hypervolume", "front_size"]]


@dataclass(frozen=True)
class JointAnalysis:
    """The metric against the latency on several devices at once (N-D): the joint front and its hypervolume, and how
    the devices agree on the architectures' latency ranking. Rows missing a chosen device's latency take no part."""

    devices: tuple[str, ...]
    objectives: dict[str, str]  # every chosen latency_ms__<device> "min", the metric "max"
    reference: dict[str, float]  # largest observed latency per device, metric 0 (as the 2-D reference)
    front: pd.DataFrame  # non-dominated rows over all searchers in N-D, with `rank` (0)
    hypervolume_table: pd.DataFrame  # as Analysis.hypervolume_table, in ms^devices x metric units
    hypervolume_curve: pd.DataFrame  # searcher, evaluation, hypervolume, front_size
    rank_agreement: pd.DataFrame  # see `device_rank_agreement`


def parse_devices(text: str) -> list[str]:
    """"cpu,gpu" -> ["cpu", "gpu"]: at least one name, each once."""
    devices = [d.strip() for d in text.split(",")]
    if not all(devices) or len(set(devices)) != len(devices):
        raise BadInputError(f"expected distinct comma-separated device names like cpu,gpu, got {text!r}",
                            key="--devices")
    return devices


def device_rank_agreement(evaluations: pd.DataFrame, metric: str, columns: Sequence[str]) -> pd.DataFrame:
    """For every ordered pair of latency columns (a, b): `archs` with both values, `kendall_tau` of the two latency
    rankings over those archs (one row per arch_id), `front_a` = size of a's 2-D front (metric vs a) and
    `front_a_on_front_b` = how many of those archs are also on b's 2-D front."""
    from scipy.stats import kendalltau

    unique = evaluations.drop_duplicates("arch_id")
    fronts = {c: set(pareto_front(unique, {c: "min", metric: "max"})["arch_id"]) for c in columns}
    rows = []
    for a in columns:
        for b in columns:
            if a == b:
                continue
            both = unique[[a, b]].dropna()
            tau = float(kendalltau(both[a], both[b]).statistic) if len(both) > 1 else float("nan")
            rows.append({"device_a": device_of(a), "device_b": device_of(b), "archs": len(both), "kendall_tau": tau,
                         "front_a": len(fronts[a]), "front_a_on_front_b": len(fronts[a] & fronts[b])})
    return pd.DataFrame(rows, columns=["device_a", "device_b", "archs", "kendall_tau", "front_a",
                                       "front_a_on_front_b"])


def joint_analysis(evaluations: pd.DataFrame, metric: str, devices: Sequence[str]) -> JointAnalysis:
    """The N-D tables over `metric` and the latency of every device of `devices` (see JointAnalysis)."""
    columns = [choose_latency_column(evaluations, d, key="--devices") for d in devices]
    objectives = {**{c: "min" for c in columns}, metric: "max"}
    reference = default_reference(evaluations, objectives)
    table, fronts = searcher_hypervolumes(evaluations, objectives, reference)
    return JointAnalysis(tuple(devices), objectives, reference, fronts[OVERALL].reset_index(drop=True), table,
                         searcher_curves(evaluations, objectives, reference),
                         device_rank_agreement(evaluations, metric, columns))


def front_size_text(front: pd.DataFrame) -> str:
    """How many architectures a front holds, in words: a front keeps one row per (searcher, arch), so an arch that
    several searchers found counts once."""
    distinct = int(front["arch_id"].nunique()) if "arch_id" in front.columns else len(front)
    if distinct == len(front):
        return f"{distinct} architectures"
    return f"{distinct} distinct architectures in {len(front)} rows (one row per searcher that found each)"


def _prepared(evaluations: pd.DataFrame) -> tuple[pd.DataFrame, str, list[str]]:
    """(evaluations with renamed tags and an `evaluation` counter per searcher, the primary metric, the task's other
    metric columns present)."""
    task = detect_task([str(c) for c in evaluations.columns])
    if task is None:
        raise BadInputError("no task metric column: expected max_fmeasure (SOD) or miou (segmentation)",
                            key="metric")
    extras = [c for c in extra_metrics(task) if c in evaluations.columns]
    evaluations = evaluations.rename(columns={k: v for k, v in RENAMED_TAGS.items() if k in evaluations.columns})
    if EVALUATION_COLUMN not in evaluations.columns:
        evaluations = evaluations.assign(**{EVALUATION_COLUMN: evaluations.groupby("searcher").cumcount() + 1})
    return evaluations, primary_metric(task), extras


def _budget_tables(evaluations: pd.DataFrame, metric: str, latency: str,
                   budgets_ms: Sequence[float] | None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(best arch under each latency budget over all searchers, the best metric per searcher by budget)."""
    budgets = list(budgets_ms) if budgets_ms is not None else default_budgets_ms(evaluations[latency])
    overall = best_under_budget(evaluations, metric, latency, budgets).rename(columns={"budget": BUDGET_COLUMN})
    per_searcher = pd.DataFrame({BUDGET_COLUMN: budgets})
    for name in dict.fromkeys(evaluations["searcher"]):
        group = evaluations[evaluations["searcher"] == name]
        per_searcher[name] = best_under_budget(group, metric, latency, budgets)[metric].to_numpy()
    return overall, per_searcher


def analyze(evaluations: pd.DataFrame, device: str | None = None, budgets_ms: Sequence[float] | None = None,
            validation: pd.DataFrame | None = None, duplicates_dropped: int = 0,
            devices: Sequence[str] | None = None,
            predictor_variants: Sequence[tuple[str, str]] = DEFAULT_VARIANTS) -> Analysis:
    """All tables for one device from a table shaped like `load_results` output (needs `searcher`, the metric and
    the latency columns; `evaluation` is added if absent). `budgets_ms` default: `default_budgets_ms`. `devices`:
    also the N-D analysis over the metric and those devices' latencies (`Analysis.joint`); the 2-D views then use
    `device`, default the first of `devices`. `predictor_variants`: (model, features) pairs whose k-fold quality
    goes into `Analysis.predictor` (empty: none)."""
    evaluations, metric, extras = _prepared(evaluations)
    latency = choose_latency_column(evaluations, device if device or not devices else devices[0])
    objectives = {latency: "min", metric: "max"}
    reference = default_reference(evaluations, objectives)
    front_overall = pareto_front(evaluations, objectives)
    hypervolume_table, fronts = searcher_hypervolumes(evaluations, objectives, reference)
    front_per_searcher = pd.concat([fronts[s] for s in dict.fromkeys(evaluations["searcher"])])
    budgets, per_searcher = _budget_tables(evaluations, metric, latency, budgets_ms)
    device_columns = ["arch_id", "searcher", metric, *extras, *latency_columns(evaluations), "params_m",
                      "macs_g"]
    front_devices = front_overall[[c for c in device_columns if c in front_overall.columns]].reset_index(drop=True)
    return Analysis(
        evaluations=evaluations, metric=metric, latency_column=latency, objectives=objectives, reference=reference,
        front_overall=front_overall.reset_index(drop=True),
        front_per_searcher=front_per_searcher.reset_index(drop=True),
        hypervolume_table=hypervolume_table, hypervolume_curve=searcher_curves(evaluations, objectives, reference),
        knee=knee_point(front_overall, objectives),  # same row as on all evaluations: the front of a front is itself
        budgets=budgets, budgets_per_searcher=per_searcher,
        front_devices=front_devices, duplicates_dropped=duplicates_dropped, validation=validation,
        validation_summary=validation_summary(validation) if validation is not None else None,
        joint=joint_analysis(evaluations, metric, devices) if devices else None,
        predictor=predictor_quality(evaluations, metric, variants=predictor_variants) if predictor_variants else None,
    )

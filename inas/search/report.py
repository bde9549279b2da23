"""Write an analysis to a folder: Parquet + CSV tables, PNG plots and a Markdown report (report.md) that embeds the
plots by relative path. Every file is written atomically.
"""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd

from inas.io import atomic_write_parquet, atomic_write_text
from inas.paths import check_output_path
from inas.search.analysis import OVERALL, Analysis, front_size_text, latency_columns
from inas.search.plots import (
    plot_accuracy_vs_latency,
    plot_hypervolume_curve,
    plot_lut_validation,
    plot_predictor_quality,
)
from inas.search.schema import device_of

REPORT_FILE = "report.md"
ACCURACY_PLOT = "accuracy_vs_latency.png"
HYPERVOLUME_PLOT = "hypervolume_vs_evaluations.png"
LUT_PLOT = "lut_predicted_vs_measured.png"
PREDICTOR_PLOT = "predictor_predicted_vs_measured.png"


def _cell(value: object, digits: int) -> str:
    if isinstance(value, float):
        if math.isnan(value):
            return "-"
        return f"{value:.{digits}f}"
    return str(value).replace("|", "\\|")


def markdown_table(frame: pd.DataFrame, digits: int = 4) -> str:
    """A GitHub Markdown table of `frame` (floats with `digits` decimals, NaN as '-')."""
    header = "| " + " | ".join(str(c) for c in frame.columns) + " |"
    rule = "| " + " | ".join("---" for _ in frame.columns) + " |"
    lines = [header, rule]
    for row in frame.itertuples(index=False):
        lines.append("| " + " | ".join(_cell(v, digits) for v in row) + " |")
    return "\n".join(lines)


def table_tables(analysis: Analysis) -> dict[str, pd.DataFrame]:
    """The tables written as `<name>.parquet` and `<name>.csv`."""
    knee = analysis.knee.to_frame().T.reset_index(drop=True)
    tables = {
        "evaluations_all": analysis.evaluations,
        "front_overall": analysis.front_overall,
        "front_per_searcher": analysis.front_per_searcher,
        "front_devices": analysis.front_devices,
        "hypervolume": analysis.hypervolume_table,
        "hypervolume_curve": analysis.hypervolume_curve,
        "knee_point": knee.infer_objects(),
        "budgets": analysis.budgets,
        "budgets_per_searcher": analysis.budgets_per_searcher,
    }
    if analysis.validation_summary is not None:
        tables["lut_validation"] = analysis.validation_summary
    if analysis.predictor is not None:
        tables["predictor_quality"] = analysis.predictor.table
        tables["predictor_out_of_fold"] = analysis.predictor.out_of_fold
    if analysis.joint is not None:
        tables.update({"joint_front": analysis.joint.front, "joint_hypervolume": analysis.joint.hypervolume_table,
                       "joint_hypervolume_curve": analysis.joint.hypervolume_curve,
                       "device_rank_agreement": analysis.joint.rank_agreement})
    return tables


def predictor_section(analysis: Analysis) -> list[str]:
    """The Markdown of the accuracy-predictor quality (empty without one)."""
    report = analysis.predictor
    if report is None:
        return []
    return [
        "## Accuracy predictor on these evaluations",
        "",
        f"How well `inas.search.surrogate.AccuracyPredictor` (the `predictor` searcher's model) predicts "
        f"`{report.metric}` of these architectures, out of fold ({int(report.table['folds'].iloc[0])}-fold "
        "cross-validation, one row per architecture): Kendall tau and MAE of predicted vs measured; `within_1std` is "
        "the fraction of errors inside the predicted +-1 std (0.68 if the uncertainty is calibrated).",
        "",
        markdown_table(report.table),
        "",
        f"![predictor predicted vs measured]({PREDICTOR_PLOT})",
        "",
    ]


def joint_section(analysis: Analysis) -> list[str]:
    """The Markdown of the N-D analysis over several devices (empty without one)."""
    joint = analysis.joint
    if joint is None:
        return []
    latencies = [c for c in joint.objectives if c != analysis.metric]
    reference = ", ".join(f"`{c}` = {joint.reference[c]:.4f} ms" for c in latencies)
    front_columns = list(dict.fromkeys(c for c in ["arch_id", "searcher", analysis.metric, *latencies, "params_m",
                                                    "source"] if c in joint.front.columns))
    return [
        f"## Joint front over {', '.join(joint.devices)}",
        "",
        f"Maximise `{analysis.metric}` and minimise the latency on every one of these devices at once. Reference "
        f"point: {reference} (the largest latency per device among all evaluations) and `{analysis.metric}` = "
        f"{joint.reference[analysis.metric]:g}; hypervolume in ms^{len(latencies)} x {analysis.metric}.",
        "",
        markdown_table(joint.hypervolume_table[["searcher", "evaluations", "front_size", "hypervolume",
                                                "hypervolume_share"]], digits=5),
        "",
        "How the devices rank the same architectures: Kendall tau of the two latency columns over the archs with "
        "both, and how many archs of one device's 2-D front (metric vs that latency) are on the other's.",
        "",
        markdown_table(joint.rank_agreement, digits=3),
        "",
        f"Joint front ({front_size_text(joint.front)}):",
        "",
        markdown_table(joint.front[front_columns]),
        "",
    ]


def _display_columns(analysis: Analysis, frame: pd.DataFrame, extra: tuple[str, ...] = ()) -> list[str]:
    wanted = ["arch_id", "searcher", analysis.metric, "mae", analysis.latency_column, "params_m", "macs_g", *extra]
    return list(dict.fromkeys(c for c in wanted if c in frame.columns))


def render_report(analysis: Analysis, sources: list[str], has_lut_plot: bool) -> str:
    """The Markdown text of report.md (plots referenced by relative file name)."""
    lines = overview_section(analysis, sources) + choice_section(analysis) + hypervolume_section(analysis)
    lines += front_section(analysis) + lut_section(analysis, has_lut_plot)
    lines += joint_section(analysis)
    lines += predictor_section(analysis)
    lines += ["Tables: `*.parquet` (full columns) and `*.csv` beside this file.", ""]
    return "\n".join(lines)


def overview_section(analysis: Analysis, sources: list[str]) -> list[str]:
    """Title, what was read, the objectives and the accuracy-vs-latency plot."""
    metric, latency = analysis.metric, analysis.latency_column
    return [
        "# inas search analysis",
        "",
        f"- results: {', '.join(f'`{s}`' for s in sources)}",
        f"- evaluations: {len(analysis.evaluations)} unique (searcher, arch_id) rows"
        f" ({analysis.duplicates_dropped} duplicates dropped); searchers: {', '.join(analysis.searchers)}",
        f"- objectives: maximise `{metric}`, minimise `{latency}` (device `{device_of(latency)}`)",
        f"- devices in the results: {', '.join(device_of(c) for c in latency_columns(analysis.evaluations))}",
        f"- overall Pareto front: {front_size_text(analysis.front_overall)}",
        "",
        f"![{metric} vs latency]({ACCURACY_PLOT})",
        "",
    ]


def choice_section(analysis: Analysis) -> list[str]:
    """The knee point and the best architecture under each latency budget (overall and per searcher)."""
    metric, latency, knee = analysis.metric, analysis.latency_column, analysis.knee.to_frame().T
    return [
        "## Knee point",
        "",
        "The front row farthest from the line through the front's extremes (objectives normalised over the front).",
        "",
        markdown_table(knee[_display_columns(analysis, knee, ("source",))]),
        "",
        "## Best architecture under each latency budget",
        "",
        f"Best `{metric}` among all evaluations with `{latency}` <= budget (ties: lower latency).",
        "",
        markdown_table(analysis.budgets[["budget_ms", *_display_columns(analysis, analysis.budgets)]]),
        "",
        f"Best `{metric}` per searcher under each budget:",
        "",
        markdown_table(analysis.budgets_per_searcher),
        "",
    ]


def hypervolume_section(analysis: Analysis) -> list[str]:
    """Each searcher's hypervolume against the common reference point, and its plot over evaluations."""
    metric, latency, ref = analysis.metric, analysis.latency_column, analysis.reference
    return [
        "## Hypervolume",
        "",
        f"Common reference point for every searcher: `{latency}` = {ref[latency]:.4f} ms (the largest latency among "
        f"all evaluations of all searchers) and `{metric}` = {ref[metric]:g}. Hypervolume is the area (ms x "
        f"{metric}) dominated by a searcher's evaluations inside that box; `hypervolume_share` is its fraction of "
        f"the `{OVERALL}` hypervolume (all searchers together).",
        "",
        markdown_table(analysis.hypervolume_table[["searcher", "evaluations", "front_size", "hypervolume",
                                                   "hypervolume_share"]]),
        "",
        f"![hypervolume vs evaluations]({HYPERVOLUME_PLOT})",
        "",
    ]


def front_section(analysis: Analysis) -> list[str]:
    """The overall Pareto front, and its latency on every device of the results."""
    return [
        "## Overall Pareto front",
        "",
        markdown_table(analysis.front_overall[_display_columns(analysis, analysis.front_overall, ("source",))]),
        "",
        "## Front latency on every device",
        "",
        markdown_table(analysis.front_devices, digits=3),
        "",
    ]


def lut_section(analysis: Analysis, has_lut_plot: bool) -> list[str]:
    """The latency tables' validation figures, when the results came with a validation summary."""
    if analysis.validation_summary is None:
        return []
    lines = [
        "## LUT predicted vs measured latency",
        "",
        "`mape_pct`: mean |predicted - measured| / measured in %; `within_10pct`: fraction of architectures "
        "inside the +-10 % band; `spearman`: rank correlation.",
        "",
        markdown_table(analysis.validation_summary),
        "",
    ]
    return lines + ([f"![LUT predicted vs measured]({LUT_PLOT})", ""] if has_lut_plot else [])


def write_report(analysis: Analysis, out_dir: str | Path, sources: list[str]) -> list[Path]:
    """Write every table (Parquet + CSV), the plots and report.md into `out_dir`; returns the written paths."""
    out = check_output_path(out_dir, "folder", key="--out")
    tables = table_tables(analysis)
    targets = [out / f"{name}.{ext}" for name in tables for ext in ("parquet", "csv")]
    for path in (*targets, out / ACCURACY_PLOT, out / HYPERVOLUME_PLOT, out / LUT_PLOT, out / PREDICTOR_PLOT,
                 out / REPORT_FILE):
        check_output_path(path, "file")  # before the first write: no half-written report
    out.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    for name, frame in tables.items():
        atomic_write_parquet(out / f"{name}.parquet", frame)
        atomic_write_text(out / f"{name}.csv", frame.to_csv(index=False))
        written += [out / f"{name}.parquet", out / f"{name}.csv"]
    written.append(plot_accuracy_vs_latency(analysis, out / ACCURACY_PLOT))
    written.append(plot_hypervolume_curve(analysis, out / HYPERVOLUME_PLOT))
    has_lut_plot = analysis.validation is not None
    if has_lut_plot:
        written.append(plot_lut_validation(analysis.validation, out / LUT_PLOT))
    if analysis.predictor is not None:
        written.append(plot_predictor_quality(analysis.predictor, out / PREDICTOR_PLOT))
    atomic_write_text(out / REPORT_FILE, render_report(analysis, sources, has_lut_plot))
    written.append(out / REPORT_FILE)
    return written

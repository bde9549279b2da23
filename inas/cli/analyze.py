"""`analyze RESULT_DIR [RESULT_DIR ...] -o REPORT_DIR`: Pareto analysis and report over search output folders."""

from __future__ import annotations

import argparse

from inas.cli.common import add_out_argument
from inas.paths import check_output_path
from inas.search.analysis import (
    OVERALL,
    Analysis,
    analyze,
    front_size_text,
    load_results,
    parse_budgets,
    parse_devices,
    read_validation,
)
from inas.search.predictor_quality import COMPARE_VARIANTS, DEFAULT_VARIANTS
from inas.search.report import REPORT_FILE, write_report

PREDICTOR_VARIANTS = {"default": DEFAULT_VARIANTS, "compare": COMPARE_VARIANTS, "none": ()}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("results", nargs="+", metavar="RESULT_DIR",
                        help="search output folder(s) holding evaluations.parquet; rows are concatenated, tagged "
                             "with the folder name and de-duplicated by arch_id per searcher")
    add_out_argument(parser, "folder for report.md, the PNG plots and the Parquet/CSV tables", required=True,
                     metavar="REPORT_DIR")
    parser.add_argument("--device", default=None,
                        help="device whose latency_ms__<device> column is the latency objective "
                             "(default: the first latency column)")
    parser.add_argument("--devices", default=None, metavar="DEV,DEV,...",
                        help="also the joint (N-D) front and hypervolume over the metric and these devices' latencies, "
                             "and how the devices rank the same architectures; the 2-D views use --device, default "
                             "the first of these")
    parser.add_argument("--predictor", choices=("default", "compare", "none"), default="default",
                        help="accuracy-predictor quality on these evaluations (k-fold Kendall tau, MAE, plot): the "
                             "predictor searcher's default model, every model x feature variant, or none")
    parser.add_argument("--budgets", default=None, metavar="MS,MS,...",
                        help="latency budgets in ms, e.g. 5,10,20 (default: 5 budgets spread over the observed "
                             "latency range)")
    parser.add_argument("--validation", default=None, metavar="validation.parquet",
                        help="`lut validate` output: adds the LUT predicted-vs-measured plot and table")


def summary_text(analysis: Analysis) -> str:
    """The short stdout summary: front size, hypervolume per searcher, knee point, budgets."""
    metric, latency = analysis.metric, analysis.latency_column
    lines = [f"{len(analysis.evaluations)} evaluations, searchers: {', '.join(analysis.searchers)}; "
             f"objectives: max {metric}, min {latency}",
             f"overall front: {front_size_text(analysis.front_overall)}",
             f"hypervolume (reference {analysis.reference[latency]:.4f} ms, {metric} {analysis.reference[metric]:g}):"]
    for row in analysis.hypervolume_table.itertuples(index=False):
        label = "all searchers" if row.searcher == OVERALL else row.searcher
        lines.append(f"  {label:<20} {row.hypervolume:10.4f}  front {row.front_size:4d} / {row.evaluations} evals")
    knee = analysis.knee
    lines.append(f"knee point: {knee['arch_id']} ({knee['searcher']}) {metric} {knee[metric]:.4f} at "
                 f"{knee[latency]:.3f} ms")
    lines.append(f"best under budget ({latency}):")
    for best in analysis.budgets.to_dict("records"):
        if isinstance(best["arch_id"], str):
            lines.append(f"  <= {best['budget_ms']:8.3f} ms: {best['arch_id']} {metric} {best[metric]:.4f} "
                         f"at {best[latency]:.3f} ms ({best['searcher']})")
        else:
            lines.append(f"  <= {best['budget_ms']:8.3f} ms: none fits")
    if analysis.joint is not None:
        lines += joint_summary_lines(analysis)
    if analysis.predictor is not None:
        for row in analysis.predictor.table.itertuples(index=False):
            lines.append(f"accuracy predictor ({row.model}, {row.features}), {row.folds}-fold out of fold over "
                         f"{row.samples} archs: Kendall tau {row.kendall_tau:.3f}, MAE {row.mae:.4f}, "
                         f"within 1 std {row.within_1std:.2f}")
    return "\n".join(lines)


def joint_summary_lines(analysis: Analysis) -> list[str]:
    """The N-D part of the summary: joint front size, hypervolume per searcher, device rank agreement."""
    joint = analysis.joint
    assert joint is not None
    lines = [f"joint front over {analysis.metric} and {', '.join(joint.devices)}: {front_size_text(joint.front)}",
             "joint hypervolume (reference: the largest latency per device, metric 0):"]
    for row in joint.hypervolume_table.itertuples(index=False):
        label = "all searchers" if row.searcher == OVERALL else row.searcher
        lines.append(f"  {label:<20} {row.hypervolume:12.5g}  share {row.hypervolume_share:6.3f}")
    for row in joint.rank_agreement.itertuples(index=False):
        lines.append(f"  {row.device_a} vs {row.device_b}: Kendall tau {row.kendall_tau:.3f} over {row.archs} archs, "
                     f"{row.front_a_on_front_b} of {row.front_a} {row.device_a}-front archs on the {row.device_b} "
                     "front")
    return lines


def main(args: argparse.Namespace) -> int:
    check_output_path(args.out, "folder", key="--out")
    budgets = parse_budgets(args.budgets) if args.budgets else None
    devices = parse_devices(args.devices) if args.devices else None
    validation = read_validation(args.validation) if args.validation else None
    evaluations, dropped = load_results(args.results)
    analysis = analyze(evaluations, device=args.device, budgets_ms=budgets, validation=validation,
                       duplicates_dropped=dropped, devices=devices,
                       predictor_variants=PREDICTOR_VARIANTS[args.predictor])
    sources = list(dict.fromkeys(evaluations["source"]))
    write_report(analysis, args.out, sources)
    print(summary_text(analysis))
    print(f"wrote {args.out}/{REPORT_FILE}")
    return 0

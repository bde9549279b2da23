"""PNG plots of an analysis (matplotlib, Agg backend, no display needed). Each function writes one file atomically."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (after the backend choice)
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from inas.io import atomic_path  # noqa: E402
from inas.search.analysis import Analysis, predicted_now_ms  # noqa: E402
from inas.search.predictor_quality import PredictorReport, measured_range  # noqa: E402
from inas.search.schema import device_of  # noqa: E402

DPI = 120


def _save(fig: plt.Figure, path: str | Path) -> Path:
    path = Path(path)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=DPI, bbox_inches="tight")
    plt.close(fig)
    return path


def _colors(names: list[str]) -> dict[str, tuple]:
    cmap = plt.get_cmap("tab10")
    return {name: cmap(i % 10) for i, name in enumerate(names)}


def plot_accuracy_vs_latency(analysis: Analysis, path: str | Path) -> Path:
    """Metric vs latency: every evaluation (light dots), each searcher's front (step line = best metric reachable
    under a latency), the knee point (star) and the budgets (dotted verticals)."""
    fig, ax = plt.subplots(figsize=(8, 5.5))
    latency, metric = analysis.latency_column, analysis.metric
    colors = _colors(analysis.searchers)
    x_max = analysis.reference[latency]
    for name in analysis.searchers:
        rows = analysis.evaluations[analysis.evaluations["searcher"] == name]
        ax.scatter(rows[latency], rows[metric], s=8, alpha=0.18, color=colors[name], linewidths=0)
        front = analysis.front_per_searcher[analysis.front_per_searcher["searcher"] == name].sort_values(latency)
        if front.empty:  # no row of this searcher has both objectives
            continue
        xs = np.append(front[latency].to_numpy(dtype=float), x_max)
        ys = np.append(front[metric].to_numpy(dtype=float), front[metric].iloc[-1])
        ax.plot(xs, ys, drawstyle="steps-post", color=colors[name], linewidth=1.8,
                label=f"{name} front ({len(front)} / {len(rows)} evals)")
        ax.scatter(front[latency], front[metric], s=18, color=colors[name], zorder=3)
    knee = analysis.knee
    ax.scatter([knee[latency]], [knee[metric]], marker="*", s=260, color="black", zorder=4,
               label=f"knee {knee['arch_id']} ({knee[latency]:.2f} ms, {knee[metric]:.4f})")
    for budget in analysis.budgets["budget_ms"]:
        ax.axvline(budget, color="grey", linestyle=":", linewidth=0.8)
    ax.set_xlabel(f"latency on {device_of(latency)} (ms)")
    ax.set_ylabel(metric)
    ax.set_title(f"{metric} vs latency ({device_of(latency)}): all evaluations and Pareto fronts")
    ax.grid(True, alpha=0.3)
    ax.legend(loc="lower right", fontsize=8)
    return _save(fig, path)


def plot_hypervolume_curve(analysis: Analysis, path: str | Path) -> Path:
    """Hypervolume of each searcher's evaluations so far vs the number of evaluations (common reference point)."""
    fig, ax = plt.subplots(figsize=(8, 4.5))
    colors = _colors(analysis.searchers)
    for name in analysis.searchers:
        curve = analysis.hypervolume_curve[analysis.hypervolume_curve["searcher"] == name]
        ax.plot(curve["evaluation"], curve["hypervolume"], color=colors[name], label=name, linewidth=1.6)
    ref = analysis.reference
    ax.set_xlabel("evaluations")
    ax.set_ylabel(f"hypervolume (ms x {analysis.metric})")
    ax.set_title(f"hypervolume vs evaluations, reference ({ref[analysis.latency_column]:.2f} ms, "
                 f"{analysis.metric} {ref[analysis.metric]:g})")
    ax.grid(True, alpha=0.3)
    ax.legend(loc="lower right", fontsize=8)
    return _save(fig, path)


def plot_lut_validation(validation: pd.DataFrame, path: str | Path) -> Path:
    """LUT-predicted vs measured latency per device: scatter, the y = x line and the +-10 % band."""
    fig, ax = plt.subplots(figsize=(6, 6))
    devices = sorted(str(d) for d in validation["device"].unique())
    colors = _colors(devices)
    for device in devices:
        rows = validation[validation["device"].astype(str) == device]
        ax.scatter(rows["measured_ms"], predicted_now_ms(rows), s=16, alpha=0.7, color=colors[device], label=device)
    values = np.concatenate([validation["measured_ms"].to_numpy(dtype=float), predicted_now_ms(validation).to_numpy()])
    lo, hi = float(np.nanmin(values)) * 0.9, float(np.nanmax(values)) * 1.1
    line = np.array([lo, hi])
    ax.plot(line, line, color="black", linewidth=1, label="y = x")
    ax.fill_between(line, line * 0.9, line * 1.1, color="grey", alpha=0.2, label="+-10 %")
    ax.set_xlim(lo, hi)
    ax.set_ylim(lo, hi)
    if hi / max(lo, 1e-9) > 30:  # devices an order of magnitude apart: log axes keep the fast ones readable
        ax.set_xscale("log")
        ax.set_yscale("log")
    ax.set_xlabel("measured latency (ms)")
    ax.set_ylabel("LUT predicted latency (ms)")
    ax.set_title("LUT predicted vs measured latency")
    ax.grid(True, alpha=0.3)
    ax.legend(loc="upper left", fontsize=8)
    return _save(fig, path)


def plot_predictor_quality(report: PredictorReport, path: str | Path) -> Path:
    """Out-of-fold predicted vs measured metric per architecture (bars: +-1 predicted std), the y = x line."""
    fig, ax = plt.subplots(figsize=(6, 6))
    frame = report.out_of_fold
    searchers = list(dict.fromkeys(frame["searcher"]))
    colors = _colors(searchers)
    for name in searchers:
        rows = frame[frame["searcher"] == name]
        ax.errorbar(rows["measured"], rows["predicted"], yerr=rows["predicted_std"], fmt="o", markersize=3,
                    alpha=0.7, elinewidth=0.8, color=colors[name], label=name)
    lo, hi = measured_range(report)
    pad = 0.05 * (hi - lo or 1.0)
    line = np.array([lo - pad, hi + pad])
    ax.plot(line, line, color="black", linewidth=1, label="y = x")
    ax.set_xlim(*line)
    ax.set_ylim(*line)
    best = report.table.iloc[0]
    ax.set_xlabel(f"measured {report.metric}")
    ax.set_ylabel(f"predicted {report.metric} (out of fold)")
    ax.set_title(f"accuracy predictor ({best['model']}, {best['features']}): Kendall tau {best['kendall_tau']:.3f}, "
                 f"MAE {best['mae']:.4f}", fontsize=9)
    ax.grid(True, alpha=0.3)
    ax.legend(loc="upper left", fontsize=8)
    return _save(fig, path)

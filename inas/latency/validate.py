"""`lut validate`: how well block sums predict whole networks.

N random sub-networks are built as stand-alone models (random weights, folded, level-0 head), exported to ONNX and
timed whole on every device's actors with the device's backend, threads and batch. The report gives, per device,
Spearman's rank correlation, the mean absolute percentage error (MAPE) and the share of networks predicted within
±10 % and ±5 %, for the raw block sum and for a per-device `Correction` fitted on the measured networks.

A correction is applied only once networks timed in a later, separate run confirm it. Each run fits a new one,
judged by nested K-fold cross-validation (each network predicted by a model chosen and fitted without it), and
saves it as the candidate (`<device>.correction-candidate.json`, not applied) if it lowers the held-out MAPE.
The next run first judges the corrections saved before it, the applied one (`<device>.correction.json`) and the
candidate, on its own networks, which neither has seen: the one with the lower MAPE, if it beats the block sum
there, is applied from then on (its `confirmations` counted up); if neither beats the block sum, none is applied.
So a correction that learnt one run's noise, or the machine's speed of that afternoon, is never applied, and one
that holds stays applied until a later candidate predicts a later run better.

Outputs in the LUT folder: `validation.parquet` (one row per network and device: `arch_id`, `arch`, `device`,
`predicted_ms` = what the predictor now predicts, in the table's time base (the applied correction, fitted on an
earlier run's networks, or the block sum; compare `predicted_ms x run_drift` with `measured_ms`), `run_drift`,
`measured_ms`, and `block_sum_ms`, `n_blocks`, `params_m`, `io_mb`, `corrected_ms_cv` (the new fit, held out),
`measured_ms_std`, `reference_ms`, `reference_network_ms`, `run_drift_block`, `run_drift_network`,
`measured_ms_round<i>`, `reference_ms_round<i>`), `validation.png` (predicted vs
measured). Each network is timed in several rounds; how well round 2 reproduces round 1
(`repeatability`) is the ceiling for any predictor on that device.

Every backend is validated the same way: the whole network is exported, quantised (INT8 backends, calibrated like
the blocks) or read by OpenVINO, and timed by the device's actors. Drift: the actors time the table's reference
block before every network (`reference_ms` per network) and its reference network once `lut.reference_network_every_s`
seconds have passed (`reference_network_ms`); the run's drift factor (`run_drift`) is the median reference network
time of this run over its median while the table was built, or, for a table without reference network times, the
same ratio of the reference block (`run_drift_network`, `run_drift_block`: both, NaN where either side has none; 1 if
neither is known). A shared machine's speed moves by 10 % and more between runs (measured: the reference block 8-15 %
slower during the validation of 2026-12-02 than during its table's build, and back to +1-4 % a day later), and
whole networks can move against the blocks (OpenVINO FP32 networks 6.4 % faster against their block sums in one run
than in the run before, the reference block within 0.2 %): the network is the better yardstick for networks. The
correction is fitted on `measured_ms / run_drift` (networks at the speed the table was built at: the correction
predicts in the table's time base) and every prediction is judged as `prediction x run_drift` against what this run
measured.
"""

from __future__ import annotations

import logging
import random
import time
from collections import deque
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm import tqdm

from inas.config import ExperimentConfig
from inas.errors import BadInputError
from inas.io import atomic_path, atomic_write_parquet
from inas.latency.blocks import LATENCY_GROUPS, LATENCY_PARTS
from inas.latency.build import device_specs, lut_calibration, lut_input_hw
from inas.latency.devices import DeviceSpec, device_actors, dispatch
from inas.latency.predictor import (
    BlockSums,
    Correction,
    LatencyPredictor,
    candidate_correction_path,
    correction_path,
    finite_median,
)
from inas.latency.table import table_path
from inas.nn import space_spec
from inas.space import Arch, SearchSpace, sample_uniform

log = logging.getLogger(__name__)

CV_FOLDS = 5
MIN_NETWORKS_FOR_CORRECTION = 10
# Candidate corrections: design-matrix columns drawn from 1 (per-network overhead), the block sum, the number of
# blocks (per-block call overhead), the network's parameters in millions (weights streamed from memory) and the
# blocks' boundary activations in MB (copied in and out of a stand-alone block, not of a fused network; on
# OpenVINO FP32 this term took the held-out Spearman from 0.90 to 0.94 on 50 full-space networks at 320 px).
CORRECTION_MODELS: dict[str, tuple[str, ...]] = {
    "scale": ("sum",),
    "affine": ("one", "sum"),
    "affine+per_block": ("one", "sum", "blocks"),
    "scale+params": ("sum", "params"),
    "affine+params": ("one", "sum", "params"),
    "affine+per_block+params": ("one", "sum", "blocks", "params"),
    "affine+io": ("one", "sum", "io"),
    "affine+per_block+params+io": ("one", "sum", "blocks", "params", "io"),
    # one scale per LATENCY_GROUPS group instead of one for the whole sum (on the 50 OpenVINO INT8 networks of the
    # 2026-12-02 validation: held-out Spearman 0.84 -> 0.94, and 0.89 -> 0.93 on other networks timed 52 min later)
    "per_group": ("one", "groups"),
    "per_group+io": ("one", "groups", "io"),
    # the backbone's group split by resolution (LATENCY_PARTS): OpenVINO FP32 speeds the high-resolution layers up
    # by another share than the low-resolution ones (fit on one run, judged on a later one: see LATENCY_PARTS)
    "per_resolution": ("one", "parts"),
    "per_resolution+io": ("one", "parts", "io"),
}


@dataclass(frozen=True)
class Figures:
    spearman: float
    mape_pct: float
    within_10_pct: float
    within_5_pct: float

    @classmethod
    def of(cls, predicted: np.ndarray, measured: np.ndarray) -> Figures:
        rel = np.abs(predicted - measured) / measured
        rho = pd.Series(predicted).corr(pd.Series(measured), method="spearman") if len(measured) > 1 else float("nan")
        return cls(float(rho), float(100 * rel.mean()), float(100 * (rel <= 0.10).mean()),
                   float(100 * (rel <= 0.05).mean()))


@dataclass
class DeviceValidation:
    device: str
    raw: Figures
    corrected_cv: Figures | None  # the new fit, held out (nested cross-validation)
    correction: Correction | None  # the new fit, saved as the candidate if it beats the block sum held out
    networks: int
    seconds: float
    repeatability: Figures | None = None  # round 2 against round 1 of the same networks
    drift_pct: float = float("nan")  # 100 x (run_drift - 1): the reference now vs while the table was built
    drift_source: str = ""  # which reference run_drift comes from: "network", "block" or "" (none: run_drift 1)
    block_drift_pct: float = float("nan")  # the reference block's drift, also when the network's is used
    reference_scaled: Figures | None = None  # block sum x run_drift
    saved_before: dict[str, Figures] = field(default_factory=dict)  # "applied"/"candidate" saved before, this run
    applied: Correction | None = None  # the correction applied from now on (confirmed on this or an earlier run)
    applied_role: str | None = None  # which of saved_before it is ("applied" kept, "candidate" promoted)


def sample_archs(space: SearchSpace, n: int, seed: int) -> list[Arch]:
    """n distinct uniformly sampled archs (the original's uniform sampler), seeded."""
    rng = random.Random(seed)
    archs: dict[str, Arch] = {}
    attempts = 0
    while len(archs) < n and attempts < 100 * n:
        arch = sample_uniform(space, rng)
        archs.setdefault(arch.arch_id, arch)
        attempts += 1
    return list(archs.values())


def _design(columns: tuple[str, ...], sums: BlockSums, rows: np.ndarray) -> np.ndarray:
    """(rows, terms) design matrix; "groups" stands for one column per LATENCY_GROUPS group, "parts" for one per
    LATENCY_PARTS part."""
    latency = sums.latency_ms[rows]
    parts = {"one": np.ones_like(latency), "sum": latency, "blocks": sums.n_blocks[rows].astype(float),
             "params": sums.params_m[rows], "io": sums.io[rows]}
    if sums.by_part_ms is not None:
        parts["parts"] = sums.by_part_ms[rows]
        if "groups" in columns:  # the parts added up
            parts["groups"] = np.asarray(sums.by_group_ms)[rows]
    return np.column_stack([parts[c] for c in columns])


def _terms(columns: tuple[str, ...]) -> list[str]:
    """The design matrix's column names: `columns` with "groups" and "parts" expanded to `group:<name>`."""
    expanded = {"groups": LATENCY_GROUPS, "parts": LATENCY_PARTS}
    return [t for c in columns for t in ([f"group:{g}" for g in expanded[c]] if c in expanded else [c])]


def _models(sums: BlockSums) -> dict[str, tuple[str, ...]]:
    """The CORRECTION_MODELS these sums can fit (the group and part models need the sums by part)."""
    return {name: cols for name, cols in CORRECTION_MODELS.items() if sums.by_part_ms is not None
            or not {"groups", "parts"} & set(cols)}


def _fit(columns: tuple[str, ...], sums: BlockSums, measured: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """Least squares on relative error (rows weighted by 1/measured)."""
    x = _design(columns, sums, rows) / measured[rows, None]
    coef, *_ = np.linalg.lstsq(x, np.ones(len(x)), rcond=None)
    return coef


def _fold_of(n: int, folds: int, seed: int) -> np.ndarray:
    fold_of = np.empty(n, dtype=np.int64)
    fold_of[np.random.default_rng(seed).permutation(n)] = np.arange(n) % folds
    return fold_of


def _mape(predicted: np.ndarray, measured: np.ndarray) -> float:
    return float(np.mean(np.abs(predicted - measured) / measured))


def _select_model(sums: BlockSums, measured: np.ndarray, rows: np.ndarray, folds: int, seed: int) -> str:
    """The candidate model with the lowest K-fold cross-validated MAPE on `rows`."""
    fold_of = _fold_of(len(rows), folds, seed)
    scores = {}
    for name, columns in _models(sums).items():
        oof = np.empty(len(rows))
        for f in range(folds):
            train, test = rows[fold_of != f], fold_of == f
            oof[test] = _design(columns, sums, rows[test]) @ _fit(columns, sums, measured, train)
        scores[name] = _mape(oof, measured[rows])
    return min(scores, key=scores.get)


def fit_correction(sums: BlockSums, measured: np.ndarray, device: str = "", folds: int = CV_FOLDS,
                   seed: int = 0) -> tuple[Correction | None, np.ndarray | None]:
    """Choose and fit a correction on measured whole networks.

    Nested cross-validation: for each of `folds` outer folds, the model is chosen (inner K-fold CV among
    CORRECTION_MODELS) and fitted on the other folds only, then predicts the held-out fold. If these out-of-fold
    predictions beat the raw block sum (MAPE), returns (the correction chosen and fitted on all networks, the
    out-of-fold predictions); otherwise (None, None). Needs MIN_NETWORKS_FOR_CORRECTION networks.
    """
    n = len(measured)
    if n < max(MIN_NETWORKS_FOR_CORRECTION, 2 * folds):
        return None, None
    everything = np.arange(n)
    outer = _fold_of(n, folds, seed)
    oof = np.empty(n)
    for f in range(folds):
        train, test = everything[outer != f], everything[outer == f]
        columns = CORRECTION_MODELS[_select_model(sums, measured, train, folds, seed + 1)]
        oof[test] = _design(columns, sums, test) @ _fit(columns, sums, measured, train)
    raw_mape, held_out_mape = _mape(sums.latency_ms, measured), _mape(oof, measured)
    if held_out_mape >= raw_mape:
        return None, None
    name = _select_model(sums, measured, everything, folds, seed + 1)
    coef = dict(zip(_terms(CORRECTION_MODELS[name]), _fit(CORRECTION_MODELS[name], sums, measured, everything),
                    strict=True))
    correction = Correction(float(coef.get("one", 0.0)), float(coef.get("sum", 0.0)), float(coef.get("blocks", 0.0)),
                            model=name, fitted_on=n, cv_mape_raw=100 * raw_mape, cv_mape_corrected=100 * held_out_mape,
                            device=device, per_mparam_ms=float(coef.get("params", 0.0)),
                            per_io_mb_ms=float(coef.get("io", 0.0)),
                            group_scales={t.removeprefix("group:"): float(v) for t, v in coef.items()
                                          if t.startswith("group:")})
    return correction, oof


MeasuredRows = dict[str, dict[str, list[dict]]]  # {device: {arch_id: one `measure_networks` row per round}}


def validate_tables(config: ExperimentConfig, samples: int, out_dir: str | Path | None = None,
                    address: str | None = None, seed: int | None = None, progress: bool = True, rounds: int = 2,
                    in_process: bool = False) -> tuple[list[DeviceValidation], pd.DataFrame]:
    """Measure `samples` random whole networks on every device (Ray actors, or in this process with
    `in_process`) and compare them with the predictions.

    Every network is timed in `rounds` separate rounds (all networks, then all again); `measured_ms` is the mean of
    its round medians, and the agreement between the first two rounds (`repeatability`) is the best any predictor
    can reach against these measurements."""
    out_dir = Path(out_dir) if out_dir is not None else config.lut.out_dir
    space = config.space.build()
    specs = device_specs(config)
    predictors = _table_predictors(out_dir, [s.name for s in specs], space, lut_input_hw(config))
    archs = sample_archs(space, samples, config.seed if seed is None else seed)
    measured, seconds = _measure_networks(config, space, specs, archs, rounds, address, in_process, progress)
    results, frames = [], []
    for spec in specs:
        result, frame = _judge_device(spec.name, predictors[spec.name], archs, measured[spec.name], rounds,
                                      seconds.get(spec.name, 0.0), config.seed)
        results.append(result)
        frames.append(frame)
    frame = pd.concat(frames, ignore_index=True)
    atomic_write_parquet(out_dir / "validation.parquet", frame)
    write_scatter(frame, results, out_dir / "validation.png")
    return results, frame


def _table_predictors(out_dir: Path, devices: list[str], space: SearchSpace,
                      input_hw: tuple[int, int]) -> dict[str, LatencyPredictor]:
    """Each device's table as an uncorrected predictor; a table built for another input size is an error."""
    predictors = {name: LatencyPredictor(table_path(out_dir, name), space, correction=None) for name in devices}
    for pred in predictors.values():
        if pred.input_hw != input_hw:
            raise BadInputError(f"table was built for input {pred.input_hw}, the config asks for {input_hw}",
                                path=pred.source)
    return predictors


def _measure_networks(config: ExperimentConfig, space: SearchSpace, specs: list[DeviceSpec], archs: list[Arch],
                      rounds: int, address: str | None, in_process: bool,
                      progress: bool) -> tuple[MeasuredRows, dict[str, float]]:
    """Time every arch `rounds` times on every device: ({device: {arch_id: one row per round}}, {device: seconds
    from the actors being up to its last network})."""
    space_doc = space_spec(space)
    input_hw = lut_input_hw(config)
    measured: MeasuredRows = {s.name: {a.arch_id: [] for a in archs} for s in specs}
    seconds: dict[str, float] = {}
    bars = {}
    t0 = time.perf_counter()  # reset once the actors are up

    def on_result(device: str, rows: list[dict]) -> None:
        for row in rows:
            measured[device][row["arch_id"]].append(row)
        bars[device].update(len(rows))
        seconds[device] = time.perf_counter() - t0

    try:
        with device_actors(specs, address, in_process, lut_calibration(config)) as actors:
            bars.update({s.name: tqdm(total=len(archs) * rounds, desc=f"validate {s.name}", position=i, unit="net",
                                      disable=not progress) for i, s in enumerate(specs)})
            todo = {s.name: deque(a.to_json() for _ in range(rounds) for a in archs) for s in specs}
            t0 = time.perf_counter()
            dispatch(actors, todo, "measure_networks",
                     lambda text: (space_doc, [text], input_hw, config.num_classes), on_result)
    finally:
        for bar in bars.values():
            bar.close()
    return measured, seconds


def _judge_device(device: str, pred: LatencyPredictor, archs: list[Arch], measured: dict[str, list[dict]],
                  rounds: int, seconds: float, seed: int) -> tuple[DeviceValidation, pd.DataFrame]:
    """One device's validation: the block sums, the saved corrections and a new fit against the measured networks
    (each scaled by this run's drift); saves the applied and candidate corrections; its rows of validation.parquet."""
    ids = [a.arch_id for a in archs]
    block_sums = pred.block_sums_many(archs)
    sums = block_sums.latency_ms
    per_round = np.array([[r["measured_ms"] for r in measured[i]] for i in ids])  # (n, rounds)
    meas = per_round.mean(axis=1)
    std = np.array([np.mean([r["measured_ms_std"] for r in measured[i]]) for i in ids])
    repeat = Figures.of(per_round[:, 1], per_round[:, 0]) if rounds > 1 else None
    corr_file, candidate_file = correction_path(pred.source), candidate_correction_path(pred.source)
    ref_rounds = _rounds(measured, ids, "reference_ms")
    network_ref_rounds = _rounds(measured, ids, "reference_network_ms")
    ref_block, ref_network = _finite_medians(ref_rounds), _finite_medians(network_ref_rounds)
    drifts = RunDrift.of(pred, ref_block, ref_network)
    drift = drifts.factor
    saved = {role: Correction.load(path) for role, path in (("applied", corr_file), ("candidate", candidate_file))
             if path.is_file()}
    role, applied, judged = judge_saved_corrections(saved, block_sums, meas, drift)
    correction, oof = fit_correction(block_sums, meas / drift, device, seed=seed)
    _save_or_remove(corr_file, applied)
    _save_or_remove(candidate_file, correction)
    predicted = applied.apply(block_sums) if applied is not None else sums
    result = DeviceValidation(device, Figures.of(sums, meas),
                              Figures.of(oof * drift, meas) if oof is not None else None, correction,
                              len(ids), seconds, repeat, drifts.pct(drifts.chosen), drifts.source,
                              drifts.pct(drifts.block), Figures.of(sums * drift, meas), judged, applied, role)
    frame = pd.DataFrame({
        "arch_id": ids, "arch": [a.to_json() for a in archs], "device": device,
        "predicted_ms": predicted, "run_drift": drift, "measured_ms": meas, "block_sum_ms": sums,
        "n_blocks": block_sums.n_blocks,
        "params_m": block_sums.params_m, "io_mb": block_sums.io,
        "corrected_ms_cv": oof if oof is not None else np.full(len(ids), np.nan), "measured_ms_std": std,
        "reference_ms": ref_block, "reference_network_ms": ref_network,
        "run_drift_block": np.nan if drifts.block is None else drifts.block,
        "run_drift_network": np.nan if drifts.network is None else drifts.network,
        **{f"measured_ms_round{r}": per_round[:, r] for r in range(rounds)},
        **{f"reference_ms_round{r}": ref_rounds[:, r] for r in range(rounds)},
        **{f"reference_network_ms_round{r}": network_ref_rounds[:, r] for r in range(rounds)},
    })
    return result, frame


def _rounds(rows_by_arch: dict[str, list[dict]], ids: list[str], column: str) -> np.ndarray:
    """(networks, rounds) array of one measured column (NaN where an older actor did not report it)."""
    return np.array([[r.get(column, np.nan) for r in rows_by_arch[i]] for i in ids], dtype=float)


def _finite_medians(rounds: np.ndarray) -> np.ndarray:
    """Per row: the median of its finite values, NaN if none."""
    return np.array([finite_median(row) for row in rounds])


def judge_saved_corrections(saved: dict[str, Correction], sums: BlockSums, measured: np.ndarray,
                            drift: float) -> tuple[str | None, Correction | None, dict[str, Figures]]:
    """Judge the corrections an earlier run saved ("applied", "candidate") on this run's networks, each prediction x
    this run's drift. Returns (its role, the correction to apply from now on, the figures of each): the one with
    the lower MAPE among those whose MAPE is below the block sum's (x drift), the applied one on a tie, with this
    run counted in its `confirmations`; (None, None, figures) when none beats the block sum."""
    raw_mape_pct = Figures.of(sums.latency_ms * drift, measured).mape_pct
    judged = {role: Figures.of(c.apply(sums) * drift, measured) for role, c in saved.items()}
    better = [role for role in ("applied", "candidate") if role in judged and judged[role].mape_pct < raw_mape_pct]
    if not better:
        return None, None, judged
    role = min(better, key=lambda r: judged[r].mape_pct)  # min keeps the first ("applied") on ties
    kept = replace(saved[role], confirmations=saved[role].confirmations + 1,
                   confirmed_mape_pct=judged[role].mape_pct, confirmed_raw_mape_pct=raw_mape_pct)
    return role, kept, judged


def _save_or_remove(path: Path, correction: Correction | None) -> None:
    if correction is not None:
        correction.save(path)
    elif path.exists():
        path.unlink()


def run_drift(table_reference_ms: float, reference_ms: np.ndarray) -> float | None:
    """The machine's speed now against while the table was built: the median of this run's reference timings over
    the table's median reference; None if either has none (then predictions are taken as they are)."""
    finite = reference_ms[np.isfinite(reference_ms)]
    if not np.isfinite(table_reference_ms) or table_reference_ms <= 0 or finite.size == 0:
        return None
    return float(np.median(finite)) / table_reference_ms


@dataclass(frozen=True)
class RunDrift:
    """A validation run's speed against its table's build, by the reference network and by the reference block
    (`run_drift`; None where either side has no timings). `chosen`: the network's if known, else the block's."""

    network: float | None
    block: float | None

    @classmethod
    def of(cls, predictor: LatencyPredictor, reference_block_ms: np.ndarray,
           reference_network_ms: np.ndarray) -> RunDrift:
        """From this run's reference timings (one per network; NaN where none) and those stored in the table."""
        return cls(run_drift(predictor.table_reference_network_ms, reference_network_ms),
                   run_drift(predictor.table_reference_ms, reference_block_ms))

    @property
    def chosen(self) -> float | None:
        return self.network if self.network is not None else self.block

    @property
    def source(self) -> str:
        return "network" if self.network is not None else "block" if self.block is not None else ""

    @property
    def factor(self) -> float:
        """What predictions are multiplied by (1 when neither reference is known)."""
        return 1.0 if self.chosen is None else self.chosen

    @staticmethod
    def pct(value: float | None) -> float:
        return float("nan") if value is None else 100 * (value - 1)


def write_scatter(frame: pd.DataFrame, results: list[DeviceValidation], path: Path) -> None:
    """Predicted vs measured per device (block sum and, if adopted, the held-out corrected prediction)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(results), figsize=(5 * len(results), 4.6), squeeze=False)
    for ax, res in zip(axes[0], results, strict=True):
        rows = frame[frame["device"] == res.device]
        lo = 0.9 * min(rows["measured_ms"].min(), rows["block_sum_ms"].min())
        hi = 1.1 * max(rows["measured_ms"].max(), rows["block_sum_ms"].max())
        line = np.array([lo, hi])
        ax.fill_between(line, line * 0.9, line * 1.1, color="0.9", label="±10 %")
        ax.plot(line, line, color="0.5", lw=1)
        ax.scatter(rows["measured_ms"], rows["block_sum_ms"], s=14, label=f"block sum (ρ={res.raw.spearman:.3f}, "
                   f"{res.raw.within_10_pct:.0f} % in ±10 %)")
        if res.corrected_cv is not None:
            ax.scatter(rows["measured_ms"], rows["corrected_ms_cv"] * rows["run_drift"], s=14, marker="x",
                       label=f"corrected, held-out (ρ={res.corrected_cv.spearman:.3f}, "
                       f"{res.corrected_cv.within_10_pct:.0f} % in ±10 %)")
        ax.set_xlim(lo, hi)
        ax.set_ylim(lo, hi)
        ax.set_xlabel("measured whole network (ms)")
        ax.set_ylabel("predicted (ms)")
        ax.set_title(f"{res.device}: {res.networks} networks")
        ax.legend(fontsize=7, loc="upper left")
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110)
    plt.close(fig)

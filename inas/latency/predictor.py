"""The latency predictor: an architecture's latency on one device = the sum of its blocks' table latencies,
optionally corrected by a per-device model fitted on measured whole networks (`Correction`).

    predictor = LatencyPredictor("runs/lut/cpu.parquet", space)   # loads cpu.correction.json beside it if present
    predictor.predict(arch) -> float (ms)
    predictor.predict_many(archs) -> np.ndarray (ms), vectorised

Why a correction: a block timed alone, over and over, finds its weights in the CPU cache; inside a network the
weights of the other blocks have evicted them, so weight-heavy blocks run slower in context (measured: chains of
2-8 early layers run 0-8 % FASTER than their blocks' sum - one call instead of several - while the whole network,
whose wide late stages hold most weights, runs 15-25 % slower). The correction therefore uses the network's
parameter count (sum of the blocks' `params`) besides the block sum: measured ~= a + b * block_sum + c * n_blocks
+ d * params_m, with the terms chosen by cross-validation (see `inas.latency.validate.fit_correction`).

`predict_many` never builds block keys per arch: dense arrays hold the latency of every (stage position, input
width, output width, kernel) and (level, source channels, level channels, kernel, fusion count) combination of the
space; each arch's integer code (`Arch.code`, built by the Arch constructor) is decoded in numpy into indices of
those arrays, and the sums run in numpy (about 230,000 archs/s on one core).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from itertools import chain
from operator import attrgetter
from pathlib import Path
from typing import Annotated

import numpy as np
import pandas as pd
from pydantic import AfterValidator, Field, Strict
from pydantic_core import PydanticCustomError

from inas.errors import BadInputError, excerpt
from inas.io import atomic_write_json
from inas.json_files import read_json_document
from inas.latency.blocks import (
    BACKBONE_PARTS,
    LATENCY_GROUPS,
    LATENCY_PARTS,
    BlockKey,
    SpaceGeometry,
    arch_blocks_geo,
    group_of_part,
    latency_part,
)
from inas.latency.table import check_schema, read_table, values_by_key
from inas.space import LEVEL_STAGES, NUM_LEVELS, STAGE_NAMES, Arch, SearchSpace, inas_space
from inas.validation_problems import Count, DocumentModel, Number, Text, exactly, expecting, parse_document

CORRECTION_FORMAT, CORRECTION_VERSION = "inas-latency-correction", 1
MAX_CORRECTION_BYTES = 1 << 20  # a correction file holds a few dozen numbers
CHUNK = 512  # archs per vectorised pass (their objects stay in the CPU cache across the ~20 passes)
_code = attrgetter("code")
_POPCOUNT = np.array([bin(m).count("1") for m in range(1 << NUM_LEVELS)], dtype=np.int64)


def correction_path(table_path: str | Path, kind: str = "correction") -> Path:
    """`<device>.correction.json` beside `<device>.parquet`: the correction the predictor applies (`kind`
    "correction-candidate": the newest fit, applied only once a later `lut validate` confirms it)."""
    table_path = Path(table_path)
    return table_path.with_name(f"{table_path.stem}.{kind}.json")


def candidate_correction_path(table_path: str | Path) -> Path:
    """`<device>.correction-candidate.json` beside `<device>.parquet` (see `inas.latency.validate`)."""
    return correction_path(table_path, "correction-candidate")


_PART_INDEX = {part: i for i, part in enumerate(LATENCY_PARTS)}
_GROUP_OF_PART = {part: group_of_part(part) for part in LATENCY_PARTS}


@dataclass(frozen=True)
class BlockSums:
    """Per arch: sum of block latencies (ms), number of blocks, sum of block parameters (millions), sum of the
    blocks' input + output activations (MB as float32, one image; None: not known, taken as 0) and the latency
    sum split by LATENCY_PARTS (ms, shape (archs, parts); None: not known)."""

    latency_ms: np.ndarray
    n_blocks: np.ndarray
    params_m: np.ndarray
    io_mb: np.ndarray | None = None
    by_part_ms: np.ndarray | None = None

    @property
    def io(self) -> np.ndarray:
        return np.zeros_like(self.latency_ms) if self.io_mb is None else self.io_mb

    @property
    def by_group_ms(self) -> np.ndarray | None:
        """The latency sum split by LATENCY_GROUPS, shape (archs, groups): the backbone's parts added up."""
        if self.by_part_ms is None:
            return None
        n_backbone = len(BACKBONE_PARTS)
        return np.column_stack([self.by_part_ms[:, :n_backbone].sum(axis=1), self.by_part_ms[:, n_backbone:]])


def block_io_mb(key: BlockKey) -> float:
    """Input + output activation size of one block in MB (float32, one image): what a stand-alone block reads from
    and writes to memory at its boundary, which a fused whole network keeps in cache or never materialises."""
    return 4e-6 * (key.in_channels * key.in_h * key.in_w + key.out_channels * key.out_h * key.out_w)


@dataclass(frozen=True)
class Correction:
    """measured_ms ~= intercept_ms + scale * block_sum_ms + per_block_ms * n_blocks + per_mparam_ms * params_m
    + per_io_mb_ms * io_mb + sum over groups g of group_scales[g] * (block sum of group g), fitted on measured whole
    networks (terms a model leaves out are 0).

    `intercept_ms`: per-network overhead; `per_block_ms`: per-block call overhead a table entry holds but a network
    does not pay (negative) or pays extra; `per_mparam_ms`: time per million weights streamed from memory because
    they are no longer in cache inside a network; `per_io_mb_ms`: time per MB of block-boundary activations that a
    stand-alone block copies in and out (OpenVINO's inference requests) but a network does not; `scale`: what
    remains proportional; `group_scales`: the share of its stand-alone time each LATENCY_GROUPS group or
    LATENCY_PARTS part keeps inside a network (models that scale groups separately; a part's own scale takes
    precedence over its group's, so "backbone" scales every backbone part that has none). `cv_mape_*`: mean
    absolute percentage errors of the raw sum and of the corrected prediction on held-out networks.
    `confirmations`: how many later `lut validate` runs it predicted better than the block sum;
    `confirmed_mape_pct`, `confirmed_raw_mape_pct`: its MAPE and the block sum's on the networks of the latest of
    them (None before any).
    """

    intercept_ms: float
    scale: float
    per_block_ms: float
    model: str
    fitted_on: int
    cv_mape_raw: float
    cv_mape_corrected: float
    device: str = ""
    per_mparam_ms: float = 0.0
    per_io_mb_ms: float = 0.0
    group_scales: dict[str, float] = field(default_factory=dict)
    confirmations: int = 0
    confirmed_mape_pct: float | None = None
    confirmed_raw_mape_pct: float | None = None

    def apply(self, sums: BlockSums) -> np.ndarray:
        """Corrected latencies (ms) of the archs of `sums`, shape (archs,)."""
        total = (self.intercept_ms + self.scale * sums.latency_ms + self.per_block_ms * sums.n_blocks
                 + self.per_mparam_ms * sums.params_m + self.per_io_mb_ms * sums.io)
        if self.group_scales:
            if sums.by_part_ms is None:
                raise ValueError("this correction scales block groups; the block sums carry none")
            weights = np.array([self.group_scales.get(p, self.group_scales.get(_GROUP_OF_PART[p], 0.0))
                                for p in LATENCY_PARTS])
            total = total + sums.by_part_ms @ weights
        return np.asarray(total, dtype=float)

    def save(self, path: str | Path) -> None:
        atomic_write_json(path, {"format": CORRECTION_FORMAT, "version": CORRECTION_VERSION, **asdict(self)})

    @classmethod
    def load(cls, path: str | Path) -> Correction:
        """Read and check a correction file written by `save`; BadInputError naming the file and the key path of the
        first problem otherwise."""
        path = Path(path)
        doc = parse_document(CorrectionDocument, read_json_document(path, "latency correction", MAX_CORRECTION_BYTES),
                             path=path)
        return cls(**doc.model_dump(exclude={"format", "version"}))


_GROUPS_AND_PARTS = tuple(dict.fromkeys((*LATENCY_GROUPS, *LATENCY_PARTS)))


def _group_or_part(name: str) -> str:
    if name not in _GROUPS_AND_PARTS:
        raise PydanticCustomError("expected", "expected a block group or part ({known}), got {got}",
                                  {"known": ", ".join(_GROUPS_AND_PARTS), "got": excerpt(name)})
    return name


_GroupOrPart = Annotated[str, AfterValidator(_group_or_part)]
_PositiveCount = Annotated[int, Strict(), Field(ge=1), expecting("an integer >= 1")]


class CorrectionDocument(DocumentModel):
    """What a correction file holds (`Correction.save`): its format and version, then `Correction`'s fields, each a
    finite number, a string or a count as there (`fitted_on` >= 1; `group_scales` by block group or part)."""

    format: Annotated[str, exactly(CORRECTION_FORMAT)]
    version: Annotated[int, exactly(CORRECTION_VERSION)]
    intercept_ms: Number
    scale: Number
    per_block_ms: Number
    model: Text
    fitted_on: _PositiveCount
    cv_mape_raw: Number
    cv_mape_corrected: Number
    device: Text = ""
    per_mparam_ms: Number = 0.0
    per_io_mb_ms: Number = 0.0
    group_scales: Annotated[dict[_GroupOrPart, Number], expecting("an object of block group -> scale")] = {}
    confirmations: Count = 0
    confirmed_mape_pct: Number | None = None
    confirmed_raw_mape_pct: Number | None = None


def finite_median(values: np.ndarray) -> float:
    """Median of the finite values, NaN if there are none."""
    finite = values[np.isfinite(values)]
    return float(np.median(finite)) if finite.size else float("nan")


class LatencyPredictor:
    """Latency of architectures on one device from its latency table (see `inas.latency.table`).

    table: a table path or DataFrame; space: the space whose structure (strides, expansions) and choices the archs
    come from (default: the full iNAS space, which covers every narrowed space); correction: "auto" loads
    `<device>.correction.json` beside a table file if present, None disables it, or a `Correction`.
    """

    def __init__(self, table: str | Path | pd.DataFrame, space: SearchSpace | None = None, *,
                 correction: Correction | str | None = "auto") -> None:
        if isinstance(table, pd.DataFrame):
            self.source = "<latency table>"
            frame = check_schema(table, self.source)
        else:
            self.source = str(table)
            frame = read_table(table)
        if frame.empty:
            raise BadInputError("latency table is empty", path=self.source)
        self.table = frame
        first = frame.iloc[0]
        self.device, self.backend = str(first["device"]), str(first["backend"])
        self.batch, self.threads = int(first["batch"]), int(first["threads"])
        in_h, in_w = self._unique_shape(frame, "stem", ("in_h", "in_w"), "input size")
        self.input_hw = (in_h, in_w)
        self.num_classes = self._unique_shape(frame, "head", ("out_channels",), "number of classes")[0]
        self.space = space or inas_space()
        self.geometry = SpaceGeometry.of(self.space, self.input_hw)
        self._values = values_by_key(frame)
        if correction == "auto":
            path = correction_path(self.source) if not isinstance(table, pd.DataFrame) else None
            correction = Correction.load(path) if path is not None and path.is_file() else None
        elif isinstance(correction, str):
            raise ValueError("correction must be 'auto', None or a Correction")
        self.correction: Correction | None = correction
        self._arrays: _DenseTables | None = None

    @property
    def table_reference_ms(self) -> float:
        """Median time of the reference block while the table was built (NaN if the table has none)."""
        return finite_median(self.table["reference_ms"].to_numpy(dtype=float))

    @property
    def table_reference_network_ms(self) -> float:
        """Median time of the reference network while the table was built (NaN if the table has none)."""
        return finite_median(self.table["reference_network_ms"].to_numpy(dtype=float))

    def _unique_shape(self, frame: pd.DataFrame, kind: str, cols: tuple[str, ...], what: str) -> tuple[int, ...]:
        rows = frame.loc[frame["kind"] == kind, list(cols)].drop_duplicates()
        if len(rows) != 1:
            found = [tuple(int(v) for v in r) for r in rows.itertuples(index=False)]
            raise BadInputError(f"cannot tell the table's {what} from its {kind!r} blocks (found {found or 'none'}); "
                                "a table holds the blocks of one input size and task", path=self.source)
        return tuple(int(v) for v in rows.iloc[0])

    # ----- single architecture (reference path) ---------------------------------------------------------------------
    def _block(self, key) -> tuple[float, int]:
        """(latency ms, params) of one BlockKey; BadInputError naming the block and the table if it is missing."""
        try:
            return self._values[key.as_tuple()]
        except KeyError:
            raise BadInputError(f"block '{key.text}' is missing from the latency table of device {self.device!r} "
                                "(built for another space or input size? rebuild it with `lut`)",
                                path=self.source, key=key.text) from None

    def missing_blocks(self, keys: Iterable[BlockKey]) -> list[BlockKey]:
        """The keys among `keys` that the table does not hold, in their order."""
        return [key for key in keys if key.as_tuple() not in self._values]

    def blocks_of(self, arch: Arch) -> list:
        return arch_blocks_geo(arch, self.geometry, self.num_classes)

    def _sums_of(self, arch: Arch) -> BlockSums:
        """Block sums of one arch (arrays of length 1), block by block."""
        keys = self.blocks_of(arch)
        values = [self._block(k) for k in keys]
        by_part = np.zeros((1, len(LATENCY_PARTS)))
        for key, (latency_ms, _) in zip(keys, values, strict=True):
            by_part[0, _PART_INDEX[latency_part(key, self.input_hw[0])]] += latency_ms
        return BlockSums(np.array([sum(v[0] for v in values)], dtype=float), np.array([len(values)]),
                         np.array([sum(v[1] for v in values) / 1e6]),
                         np.array([sum(block_io_mb(k) for k in keys)], dtype=float), by_part)

    def predict(self, arch: Arch) -> float:
        """Predicted latency of one arch (ms): block sum, corrected if a correction is loaded."""
        if self.correction is None:
            return float(sum(self._block(k)[0] for k in self.blocks_of(arch)))
        return float(self.correction.apply(self._sums_of(arch))[0])

    # ----- many architectures ------------------------------------------------------------------------------------
    def predict_many(self, archs: Sequence[Arch], corrected: bool = True) -> np.ndarray:
        """Predicted latencies (ms) of `archs`, shape (len(archs),); equal to `predict` on each."""
        sums = self.block_sums_many(archs)
        if corrected and self.correction is not None:
            return self.correction.apply(sums)
        return sums.latency_ms

    def block_sums_many(self, archs: Sequence[Arch]) -> BlockSums:
        """Uncorrected block sums (latency, count, parameters, boundary activations, latency by part) of each
        arch, vectorised."""
        archs = list(archs)
        if not archs:
            return BlockSums(np.zeros(0), np.zeros(0, dtype=np.int64), np.zeros(0), np.zeros(0),
                             np.zeros((0, len(LATENCY_PARTS))))
        if self._arrays is None:
            self._arrays = _DenseTables(self)
        latency, params, io, counts, by_part = self._arrays.sums(archs)
        for i in np.flatnonzero(np.isnan(latency)):  # a choice outside the predictor's space, or a missing block
            one = self._sums_of(archs[i])
            latency[i], counts[i], params[i], io[i] = one.latency_ms[0], one.n_blocks[0], one.params_m[0], one.io[0]
            by_part[i] = np.asarray(one.by_part_ms)[0]
        return BlockSums(latency, counts, params, io, by_part)


class _DenseTables:
    """Latencies over the choices of the predictor's space in padded arrays indexed by choice positions (the last
    position of every axis is a sentinel for "not a choice of the space"; NaN = block not in the table).

    backbone[s, i, o, k]: stage s, input choice i (stage s-1's widths for a first layer, stage s's for a later
    one; the stem's only input is the image), output width o, kernel k. fusion[p, L, c, k, n]: part p (transport,
    decoder), level L, channels c, kernel k, fusion count n. branch[p, L, j, cj, cl]: branch from level j into L.
    """

    def __init__(self, predictor: LatencyPredictor) -> None:
        values = predictor._values
        missing = (float("nan"),) * 3

        def get(key) -> tuple[float, float, float]:
            """(latency_ms, params, boundary activations MB) of one block; NaN if the table lacks it."""
            found = values.get(key.as_tuple())
            return missing if found is None else (found[0], found[1], block_io_mb(key))

        space = predictor.space
        self._index_stages(space)
        self._fill_stages(space, predictor.geometry, get)
        self._index_parts(space, predictor.geometry)
        self._index_levels(space)
        self._fill_levels(space, predictor.geometry, get)
        self.head = np.array([get(predictor.geometry.head(c, predictor.num_classes))
                              for c in space.level_channel_choices[0]] + [missing])
        for array in (self.first, self.later, self.fusion, self.branch, self.head):
            array[..., 1] /= 1e6
        self.n_masks = 1 << NUM_LEVELS  # connection masks 0..31
        # by_part columns: fusion blocks by part; branches by part and direction (down, identity, up)
        self.fusion_column = np.array([_PART_INDEX["transport_fusion"], _PART_INDEX["decoder_fusion"]])
        self.branch_column = np.array([[_PART_INDEX[f"{p}_{d}"] if f"{p}_{d}" in _PART_INDEX else 0
                                       for d in ("down", "identity", "up")] for p in ("transport", "decoder")])

    def _index_stages(self, space: SearchSpace) -> None:
        """Positions of each stage's widths and kernels: out_index[s, width], first_in_index[s, width] (the previous
        stage's choices; the stem's input is 3 channels), kernel_index[s, kernel]; the sentinel is the choice count."""
        widths = [s.widths for s in space.stages]
        kernels = [s.kernels for s in space.stages]
        n_stages = len(space.stages)
        self.max_w = max(max(w) for w in widths) + 2
        self.n_w = max(len(w) for w in widths)
        self.n_k = max(len(k) for k in kernels)
        self.out_index = np.full((n_stages, self.max_w), self.n_w, dtype=np.int64)
        self.first_in_index = np.full((n_stages, self.max_w), self.n_w, dtype=np.int64)
        kernel_slots = max(max(k) for k in kernels) + 2  # the last slot: a kernel outside the space
        self.kernel_index = np.full((n_stages, kernel_slots), self.n_k, dtype=np.int64)
        for s in range(n_stages):
            self.out_index[s, list(widths[s])] = np.arange(len(widths[s]))
            prev = (3,) if s == 0 else widths[s - 1]
            self.first_in_index[s, list(prev)] = np.arange(len(prev))
            self.kernel_index[s, list(kernels[s])] = np.arange(len(kernels[s]))

    def _fill_stages(self, space: SearchSpace, geo: SpaceGeometry, get) -> None:
        """first/later[s, i, o, k, (latency_ms, params, io_mb)]: a stage's first layer (or the stem) and its later
        layers, by input, output width and kernel position."""
        stages = space.stages
        shape = (len(stages), self.n_w + 1, self.n_w + 1, self.n_k + 1, 3)
        self.first = np.full(shape, float("nan"))
        self.later = np.full(shape, float("nan"))
        for o, w in enumerate(stages[0].widths):
            self.first[0, 0, o, 0] = get(geo.stem(w))
        for s in range(1, len(stages)):
            for o, w in enumerate(stages[s].widths):
                for k, kernel in enumerate(stages[s].kernels):
                    for i, cin in enumerate(stages[s - 1].widths):
                        self.first[s, i, o, k] = get(geo.mbconv(s, True, cin, w, kernel))
                    for i, cin in enumerate(stages[s].widths):
                        self.later[s, i, o, k] = get(geo.mbconv(s, False, cin, w, kernel))

    def _index_parts(self, space: SearchSpace, geo: SpaceGeometry) -> None:
        """by_part columns (LATENCY_PARTS positions) of each stage's first layer (the stem for stage 0) and of its
        later layers."""
        stages, image_h = space.stages, geo.stage_in_hw[0][0]
        self.first_column = np.full(len(stages), _PART_INDEX["stem"], dtype=np.int64)
        self.later_column = self.first_column.copy()
        for s in range(1, len(stages)):
            width, kernel = stages[s].widths[0], stages[s].kernels[0]
            for first, columns, cin in ((True, self.first_column, stages[s - 1].widths[0]),
                                        (False, self.later_column, width)):
                columns[s] = _PART_INDEX[latency_part(geo.mbconv(s, first, cin, width, kernel), image_h)]

    def _index_levels(self, space: SearchSpace) -> None:
        """Positions of each level's channel choices (level_index[L, channels]) and of each transport/decoder level's
        kernels (level_kernel_index[part, L, kernel]); the sentinel is the choice count."""
        self.level_stage = np.array([STAGE_NAMES.index(n) for n in LEVEL_STAGES])
        channels = space.level_channel_choices
        self.n_c = max(len(c) for c in channels)
        self.level_index = np.full((NUM_LEVELS, self.max_w), self.n_c, dtype=np.int64)
        for L, level_channels in enumerate(channels):
            self.level_index[L, list(level_channels)] = np.arange(len(level_channels))
        levels = (*space.transport, *space.decoder)
        self.n_lk = max(len(lv.kernels) for lv in levels)
        level_kernel_slots = max(max(lv.kernels) for lv in levels) + 2
        self.level_kernel_index = np.full((2, NUM_LEVELS, level_kernel_slots), self.n_lk, dtype=np.int64)
        for p, part_levels in enumerate((space.transport, space.decoder)):
            for lv in part_levels:
                self.level_kernel_index[p, lv.level, list(lv.kernels)] = np.arange(len(lv.kernels))

    def _fill_levels(self, space: SearchSpace, geo: SpaceGeometry, get) -> None:
        """fusion[p, L, c, k, n] and branch[p, L, j, cj, c] (each with a last axis of (latency_ms, params, io_mb))
        for the transport (p = 0) and the decoder (p = 1)."""
        channels = space.level_channel_choices
        nan = float("nan")
        self.fusion = np.full((2, NUM_LEVELS, self.n_c + 1, self.n_lk + 1, NUM_LEVELS + 1, 3), nan)
        self.branch = np.full((2, NUM_LEVELS, NUM_LEVELS, self.n_c + 1, self.n_c + 1, 3), nan)
        for p, (part, levels) in enumerate((("transport", space.transport), ("decoder", space.decoder))):
            for lv in levels:
                L = lv.level
                for c, ch in enumerate(channels[L]):
                    for k, kernel in enumerate(lv.kernels):
                        for n in range(1, NUM_LEVELS + 1):
                            self.fusion[p, L, c, k, n] = get(geo.fusion(part, L, ch, kernel, n))
                    for j in range(L if part == "decoder" else 0, NUM_LEVELS):
                        for cj, chj in enumerate(channels[j]):
                            self.branch[p, L, j, cj, c] = get(geo.branch(part, j, L, chj, ch))

    def sums(self, archs: list[Arch]) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """(latency sums, params sums, boundary-activation sums, block counts, (archs, parts) latency sums by
        LATENCY_PARTS); NaN latency for an arch this path cannot score (outside the space, or a block missing from
        the table). Chunks of archs stay in the CPU cache across the passes."""
        parts = [self._sums(archs[i : i + CHUNK]) for i in range(0, len(archs), CHUNK)]
        totals = np.concatenate([p[0] for p in parts])
        return (totals[:, 0].copy(), totals[:, 1].copy(), totals[:, 2].copy(), np.concatenate([p[1] for p in parts]),
                np.concatenate([p[2] for p in parts]))

    def _sums(self, archs: list[Arch]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Decode the archs' integer codes (see `Arch`) and sum their blocks: ((n, 3) latency, params and boundary
        activations, (n,) block counts, (n, parts) latency by LATENCY_PARTS)."""
        n = len(archs)
        codes = _Codes.of(archs, self.first.shape[0])
        if codes is None:  # a width beyond int64: outside any space
            return np.full((n, 3), np.nan), np.zeros(n, dtype=np.int64), np.full((n, len(LATENCY_PARTS)), np.nan)
        good = codes.well_formed(self.n_masks)
        if not good.all():  # score the rest; these get NaN and the caller's reference path (or its error)
            total, counts = np.full((n, 3), np.nan), np.zeros(n, dtype=np.int64)
            by_part = np.full((n, len(LATENCY_PARTS)), np.nan)
            keep = np.flatnonzero(good)
            if keep.size:
                total[keep], counts[keep], by_part[keep] = self._sums([archs[i] for i in keep])
            return total, counts, by_part
        backbone, stage_out, by_part = self._backbone_sums(codes)
        return self._level_sums(codes, backbone, stage_out, by_part)

    def _backbone_sums(self, codes: _Codes) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Stem and MBConv layers, every layer of every arch in one flat array (arch-major, then stage, then layer):
        ((n, 3) sums, (n, stages) each stage's output width, (n, parts) latency by LATENCY_PARTS)."""
        n, n_stages, flat, depth = codes.n, codes.depth.shape[1], codes.flat, codes.depth
        layer_counts = codes.layer_counts
        m = int(layer_counts.sum())
        first_layer = np.cumsum(layer_counts) - layer_counts
        position = np.repeat(codes.starts + codes.head - 2 * first_layer, layer_counts) + 2 * np.arange(m)
        widths = flat[position]
        k_i = _max_member(flat[position + 1], self.kernel_index.shape[1])
        stage_of = np.repeat(np.tile(np.arange(n_stages), n), depth.ravel())
        stage_starts = np.cumsum(depth.ravel()) - depth.ravel()
        in_w = np.empty_like(widths)
        in_w[1:] = widths[:-1]  # a stage's first layer reads the previous stage's last layer
        in_w[first_layer] = 3  # the stem reads the image
        np.clip(widths, 0, self.max_w - 1, out=widths)
        np.clip(in_w, 0, self.max_w - 1, out=in_w)
        out_i = _take(self.out_index, stage_of, widths)
        k_i = _take(self.kernel_index, stage_of, k_i)
        lat = _take(self.later, stage_of, _take(self.out_index, stage_of, in_w), out_i, k_i)
        first_s = stage_of[stage_starts]
        lat[stage_starts] = _take(self.first, first_s, _take(self.first_in_index, first_s, in_w[stage_starts]),
                                  out_i[stage_starts], k_i[stage_starts])
        stage_out = widths[stage_starts + depth.ravel() - 1].reshape(n, n_stages)
        column = self.later_column[stage_of]  # each layer's by_part column
        column[stage_starts] = self.first_column[first_s]
        n_parts = len(LATENCY_PARTS)
        arch_of = np.repeat(np.arange(n), layer_counts)
        by_part = np.bincount(arch_of * n_parts + column, lat[:, 0], n * n_parts).reshape(n, n_parts)
        return np.add.reduceat(lat, first_layer, axis=0), stage_out, by_part

    def _level_sums(self, codes: _Codes, backbone: np.ndarray, stage_out: np.ndarray,
                    by_part: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Add the head, and the transport and decoder blocks as (n, part, level) arrays (the branches of each arch's
        set connection bits) to the backbone's (n, 3) sums and (n, parts) latency: `_sums`' triple."""
        n = codes.n
        ch_i = _take(self.level_index, np.arange(NUM_LEVELS), stage_out[:, self.level_stage])  # (n, 5)
        parts, levels = np.arange(2)[:, None], np.arange(NUM_LEVELS)
        masks = codes.level_masks[..., 0]
        n_in = _POPCOUNT[masks]
        k_i = _take(self.level_kernel_index, parts, levels,
                    _max_member(codes.level_masks[..., 1], self.level_kernel_index.shape[2]))
        head_block = np.take(self.head, ch_i[:, 0], axis=0)  # (n, 3)
        by_part[:, _PART_INDEX["head"]] += head_block[:, 0]
        fusion = _take(self.fusion, parts, levels, ch_i[:, None, :], k_i, n_in)  # (n, part, level, 3)
        by_part[:, self.fusion_column] = fusion[..., 0].sum(axis=2)
        total = backbone + fusion.sum(axis=(1, 2))
        arch_of, part, level, source = np.nonzero((masks[..., None] >> levels) & 1)
        branch = _take(self.branch, part, level, source, ch_i[arch_of, source], ch_i[arch_of, level])  # (branches, 3)
        for column in range(total.shape[1]):
            total[:, column] += np.bincount(arch_of, branch[:, column], n)
        column = self.branch_column[part, np.sign(source - level) + 1]  # down, identity, up
        n_parts = len(LATENCY_PARTS)
        by_part += np.bincount(arch_of * n_parts + column, branch[:, 0], n * n_parts).reshape(n, -1)
        counts = codes.layer_counts + 1 + (n_in + 1).sum(axis=(1, 2))  # layers, head, fusions and branches
        return total + head_block, counts, by_part


@dataclass(frozen=True)
class _Codes:
    """The integer codes of n archs (see `Arch`) side by side: `flat` all codes, `starts` (n,) where each arch's code
    begins, `head` the fixed-length prefix (layout, depths, (connection mask, kernel mask) per level) after which each
    arch's (width, kernel mask) pairs follow, `depth` (n, stages) and its row sums `layer_counts` (n,), `level_masks`
    (n, part, level, conn/kernel)."""

    n: int
    flat: np.ndarray
    lengths: np.ndarray
    starts: np.ndarray
    head: int
    prefix: np.ndarray  # (n, head)
    depth: np.ndarray
    layer_counts: np.ndarray
    level_masks: np.ndarray

    @classmethod
    def of(cls, archs: list[Arch], n_stages: int) -> _Codes | None:
        """None when a code does not fit int64 (outside any space)."""
        n = len(archs)
        codes = list(map(_code, archs))
        lengths = np.fromiter(map(len, codes), np.int64, n)
        try:
            flat = np.fromiter(chain.from_iterable(codes), np.int64, int(lengths.sum()))
        except OverflowError:
            return None
        starts = np.cumsum(lengths) - lengths
        head = 3 + n_stages + 4 * NUM_LEVELS
        prefix = flat[np.minimum(starts[:, None] + np.arange(head), flat.size - 1)]
        depth = prefix[:, 3 : 3 + n_stages]
        return cls(n, flat, lengths, starts, head, prefix, depth, depth.sum(axis=1),
                   prefix[:, 3 + n_stages :].reshape(n, 2, NUM_LEVELS, 2))

    def well_formed(self, n_masks: int) -> np.ndarray:
        """(n,) bool: the layout matches the tables', the length its depths, every connection mask is known."""
        n_stages = self.depth.shape[1]
        conn = self.level_masks[..., 0]
        return ((self.prefix[:, 0] == n_stages) & (self.prefix[:, 1] == NUM_LEVELS)
                & (self.prefix[:, 2] == NUM_LEVELS) & (self.lengths == self.head + 2 * self.layer_counts)
                & (self.depth > 0).all(axis=1) & ((conn >= 0) & (conn < n_masks)).all(axis=(1, 2)))


def _take(table: np.ndarray, *index: np.ndarray) -> np.ndarray:
    """`table[index...]` (leading axes indexed by broadcast integer arrays, the rest kept) through one linear index
    and `np.take`: several times faster than numpy's fancy indexing with several index arrays."""
    flat = index[0]
    for size, idx in zip(table.shape[1 : len(index)], index[1:], strict=True):
        flat = flat * size + idx
    return np.take(table.reshape(-1, *table.shape[len(index):]), flat, axis=0)


def _max_member(masks: np.ndarray, slots: int) -> np.ndarray:
    """The largest member of each set given as a bit mask (see `Arch.code`), clipped to slots - 1 (the sentinel slot
    of the index arrays, "not a choice"); an empty set (0) or an uncoded one (-1) also gives the sentinel."""
    largest = np.frexp(masks.astype(np.float64))[1].astype(np.int64) - 1  # exact: masks are < 2**53
    largest[masks <= 0] = slots - 1
    return np.minimum(largest, slots - 1)

"""The latency table: one Parquet file per device, `<out_dir>/<device>.parquet`, one row per block shape.

Schema (every column required; extra columns are allowed and kept):

| column                | type    | meaning                                                                       |
|-----------------------|---------|-------------------------------------------------------------------------------|
| `block`               | string  | readable canonical key, e.g. `mbconv 40x64x64->48x32x32 s2 k5 e6 n1`          |
| `kind`                | string  | block kind (see `inas.latency.blocks`)                                        |
| `in_channels`         | int64   | input channels                                                                |
| `out_channels`        | int64   | output channels                                                               |
| `in_h`, `in_w`        | int64   | input resolution of one image                                                 |
| `out_h`, `out_w`      | int64   | output resolution of one image                                                |
| `stride`              | int64   | spatial stride (2 for stride-2 MBConv/stem, 2^d for down branches, else 1)    |
| `kernel`              | int64   | depthwise kernel after folding the kernel set (= max of the set); 1 if none   |
| `expand_ratio`        | int64   | MBConv expansion; 1 otherwise                                                 |
| `fusion`              | int64   | number of fused inputs of a fusion block; 1 otherwise                         |
| `params`              | int64   | parameters of the block as deployed (kernel set and BNs folded)               |
| `device`              | string  | device name from the config                                                   |
| `backend`             | string  | one of `inas.latency.backends.BACKENDS` (`onnxruntime`, `onnxruntime-int8`, ...)|
| `batch`               | int64   | images per forward pass                                                       |
| `threads`             | int64   | intra-op threads of the runtime                                               |
| `latency_ms`          | float64 | MEDIAN wall time of one forward pass of `batch` images, milliseconds          |
| `latency_ms_mean`     | float64 | mean of the timed runs                                                        |
| `latency_ms_std`      | float64 | standard deviation of the timed runs                                          |
| `latency_ms_iqr`      | float64 | interquartile range of the timed runs (the entry's spread)                    |
| `runs`                | int64   | number of timed runs (after the warm-up runs)                                 |
| `retimes`             | int64   | extra timings made because the spread exceeded `lut.max_spread`               |
| `reference_ms`        | float64 | median of the fixed reference block, timed by the same actor at most          |
|                       |         | `lut.reference_every` blocks before this one (drift of the machine); NaN: off |
| `reference_network_ms`| float64 | median of the fixed reference network, timed by the same actor at most        |
|                       |         | `lut.reference_network_every_s` seconds before this block; NaN: off           |
| `calibration`         | string  | INT8 backends: what the block was calibrated on (`images:<list>`, `random`)   |
| `torch_version`       | string  | torch that built the block (and ran it for the torch backends)                |
| `onnxruntime_version` | string  | onnxruntime that ran it ("" if not used)                                      |
| `openvino_version`    | string  | OpenVINO that ran it ("" if not used)                                         |
| `python_version`      | string  | Python of the measuring process                                               |
| `host`                | string  | host name of the measuring node                                               |
| `measured_at`         | string  | ISO-8601 UTC time of the measurement                                          |
| `node_id`             | string  | the Ray node that measured the row ("" in-process or in an older table)       |

The block key columns (`kind` .. `fusion`) identify a row; a table holds one device and one (backend, batch,
threads) setting. A network's latency is predicted from the sums of `latency_ms` and `params` over its blocks (see
`inas.latency.predictor`). Rows are written with `write_table` (atomic rewrite) and read with `read_table` (schema
checked). Tables written before `latency_ms_iqr`, `retimes`, `reference_ms`, `reference_network_ms`, `calibration` and
`openvino_version` existed are read with NaN / 0 / "" in those columns.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa

from inas.errors import BadInputError, excerpt
from inas.io import atomic_write_parquet
from inas.latency.blocks import BLOCK_KINDS, KEY_FIELDS, BlockKey
from inas.paths import path_kind

INT_COLUMNS = ("in_channels", "out_channels", "in_h", "in_w", "out_h", "out_w", "stride", "kernel", "expand_ratio",
               "fusion", "params", "batch", "threads", "runs", "retimes")
FLOAT_COLUMNS = ("latency_ms", "latency_ms_mean", "latency_ms_std", "latency_ms_iqr", "reference_ms",
                 "reference_network_ms")
STRING_COLUMNS = ("block", "kind", "device", "backend", "calibration", "torch_version", "onnxruntime_version",
                  "openvino_version", "python_version", "host", "measured_at", "node_id")
# Columns added after the first tables were written: filled with these values when an older table is read.
LATER_COLUMNS: dict[str, object] = {"latency_ms_iqr": float("nan"), "reference_ms": float("nan"),
                                    "reference_network_ms": float("nan"), "calibration": "", "openvino_version": "",
                                    "retimes": 0, "node_id": ""}
# Column order of a written table.
TABLE_COLUMNS: tuple[str, ...] = (
    "block", *KEY_FIELDS, "params", "device", "backend", "batch", "threads", "latency_ms", "latency_ms_mean",
    "latency_ms_std", "latency_ms_iqr", "runs", "retimes", "reference_ms", "reference_network_ms", "calibration",
    "torch_version", "onnxruntime_version", "openvino_version", "python_version", "host", "measured_at", "node_id",
)
SETTING_COLUMNS = ("device", "backend", "batch", "threads")
# integer columns that are sizes or counts >= 1 (`params` may be 0: a block without weights)
POSITIVE_COLUMNS = ("in_channels", "out_channels", "in_h", "in_w", "out_h", "out_w", "stride", "kernel",
                    "expand_ratio", "fusion", "batch", "threads")


def table_path(out_dir: str | Path, device: str) -> Path:
    """Where the table of `device` lives."""
    return Path(out_dir) / f"{device}.parquet"


def empty_table() -> pd.DataFrame:
    return normalise(pd.DataFrame({c: [] for c in TABLE_COLUMNS}))


def normalise(frame: pd.DataFrame) -> pd.DataFrame:
    """Columns in schema order (extras after), schema dtypes; later columns get their defaults if missing."""
    frame = frame.assign(**{c: v for c, v in LATER_COLUMNS.items() if c not in frame.columns})
    for c in INT_COLUMNS:
        frame[c] = frame[c].astype("int64")
    for c in FLOAT_COLUMNS:
        frame[c] = frame[c].astype("float64")
    for c in STRING_COLUMNS:
        frame[c] = frame[c].astype(str) if len(frame) else frame[c].astype(object)
    extras = [c for c in frame.columns if c not in TABLE_COLUMNS]
    return frame[list(TABLE_COLUMNS) + extras].reset_index(drop=True)


def check_schema(frame: pd.DataFrame, source: str | Path) -> pd.DataFrame:
    """Raise BadInputError naming `source` unless `frame` has every schema column with a compatible type."""
    frame = frame.assign(**{c: v for c, v in LATER_COLUMNS.items() if c not in frame.columns})  # older tables
    missing = [c for c in TABLE_COLUMNS if c not in frame.columns]
    if missing:
        raise BadInputError(f"not a latency table: missing columns {missing}; expected the schema of "
                            f"inas.latency.table ({', '.join(TABLE_COLUMNS)})", path=source)
    bad = [c for c in INT_COLUMNS if not pd.api.types.is_integer_dtype(frame[c])]
    bad += [c for c in FLOAT_COLUMNS
            if not pd.api.types.is_numeric_dtype(frame[c]) or pd.api.types.is_bool_dtype(frame[c])]
    bad += [c for c in STRING_COLUMNS if not (pd.api.types.is_string_dtype(frame[c]) or frame[c].dtype == object)]
    if bad:
        found = {c: str(frame[c].dtype) for c in bad}
        raise BadInputError(f"latency table columns have wrong types {found}; expected integers for "
                            f"{list(INT_COLUMNS)}, floats for {list(FLOAT_COLUMNS)}, strings otherwise", path=source)
    latency = frame["latency_ms"].to_numpy(dtype=float)
    if not (np.isfinite(latency) & (latency > 0)).all():
        raise BadInputError(f"latency table has missing, infinite, zero or negative latency_ms values, e.g. "
                            f"{latency[~(np.isfinite(latency) & (latency > 0))][0]}; expected finite times > 0 ms",
                            path=source, key="latency_ms")
    for columns, least in ((POSITIVE_COLUMNS, 1), (("params",), 0)):
        for c in columns:
            low = frame[c] < least
            if low.any():
                raise BadInputError(f"latency table has values below {least}, e.g. {frame.loc[low, c].iloc[0]} in "
                                    f"the row of {excerpt(frame.loc[low, 'block'].iloc[0])}", path=source, key=c)
    unknown = ~frame["kind"].isin(BLOCK_KINDS)
    if unknown.any():
        first = excerpt(frame.loc[unknown, "kind"].iloc[0])
        raise BadInputError(f"latency table has rows of unknown block kind, e.g. {first}; expected one of "
                            f"{list(BLOCK_KINDS)}", path=source, key="kind")
    dupes = frame.duplicated(list(KEY_FIELDS))
    if dupes.any():
        raise BadInputError(f"latency table has duplicate blocks, e.g. {frame.loc[dupes, 'block'].iloc[0]!r}",
                            path=source)
    for c in SETTING_COLUMNS:
        if frame[c].nunique() > 1:
            raise BadInputError(f"latency table mixes several values of {c!r} ({sorted(frame[c].unique())}); "
                                "one table holds one device setting", path=source)
    return normalise(frame)


def read_table(path: str | Path) -> pd.DataFrame:
    """Read and check a latency table (BadInputError naming the file if it is missing or malformed)."""
    path = Path(path)
    kind = path_kind(path)
    if kind == "missing":
        raise BadInputError("latency table not found (build it with `python -m inas.run lut -c CONFIG`)", path=path)
    if kind != "file":
        raise BadInputError(f"expected a latency table (a Parquet file), found a {kind}", path=path)
    try:
        frame = pd.read_parquet(path)
    except (OSError, ValueError, pa.ArrowException) as exc:
        raise BadInputError(f"cannot be read as Parquet ({exc})", path=path) from None
    return check_schema(frame, path)


def write_table(path: str | Path, frame: pd.DataFrame) -> None:
    """Atomically (re)write a table, rows sorted by block key."""
    frame = normalise(frame).sort_values(list(KEY_FIELDS), kind="stable").reset_index(drop=True)
    atomic_write_parquet(path, frame)


def table_from_rows(rows: Iterable[dict]) -> pd.DataFrame:
    """A normalised table of row dicts (columns added after the first tables get their defaults if missing)."""
    rows = [{**LATER_COLUMNS, **row} for row in rows]
    return normalise(pd.DataFrame(rows, columns=list(TABLE_COLUMNS))) if rows else empty_table()


def keys_of(frame: pd.DataFrame) -> list[BlockKey]:
    """The BlockKey of every row."""
    cols = [frame[c].tolist() for c in KEY_FIELDS]
    return [BlockKey(str(r[0]), *(int(v) for v in r[1:])) for r in zip(*cols, strict=True)]


def values_by_key(frame: pd.DataFrame) -> dict[tuple, tuple[float, int]]:
    """{BlockKey.as_tuple(): (latency_ms, params)}."""
    values = zip(frame["latency_ms"].tolist(), frame["params"].tolist(), strict=True)
    return {k.as_tuple(): (float(ms), int(p)) for k, (ms, p) in zip(keys_of(frame), values, strict=True)}

"""Helpers of the hostile-input tests: crafted files (decompression bombs) and byte / value mutations."""

from __future__ import annotations

import struct
import zlib
from pathlib import Path


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def bomb_png(path: Path, width: int, height: int) -> Path:
    """A ~100-byte grayscale PNG whose header claims `width` x `height` pixels (its one IDAT holds one row)."""
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    idat = zlib.compress(b"\x00" * (width + 1))
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", header) + _chunk(b"IDAT", idat) + _chunk(b"IEND", b""))
    return path


# (width, height): over 2 x Image.MAX_IMAGE_PIXELS (Pillow raises), and between 1 x and 2 x (Pillow only warns)
BOMB_ERROR_SIZE = (200_000, 200_000)
BOMB_WARNING_SIZE = (10_000, 10_000)


# ----- the valid files every fuzz case starts from ------------------------------------------------------------------
def build_world(root: Path) -> dict[str, Path]:
    """Valid inputs of every file kind the verbs read, under `root` (built once per test module): a tiny search
    problem (64 px SOD data, supernet, two latency tables, config), Arch JSON ours + legacy (NumPy >= 2 reprs),
    a stand-alone model file, a search result folder (evaluations.parquet) and a pred/gt folder pair."""
    import json
    import re
    import shutil

    import torch
    import yaml
    from test_analyze_report import make_evaluations, write_result
    from test_search_evaluators import make_problem

    from inas.deploy.model_file import save_model_file
    from inas.nn import extract_subnet, load_supernet
    from inas.space import sample_max

    make_problem(root)
    doc = yaml.safe_load((root / "config.yaml").read_text(encoding="utf-8"))
    doc["lut"].update(runs=1, warmup_runs=0, drop_preempted_runs=False)
    (root / "config.yaml").write_text(yaml.safe_dump(doc), encoding="utf-8")
    supernet = load_supernet(root / "supernet.pt")
    arch = sample_max(supernet.space)
    (root / "arch.json").write_text(arch.to_json(indent=2), encoding="utf-8")
    legacy = re.sub(r"(?<![\w.])(\d+)", r"np.int64(\1)", repr(arch.to_original(supernet.space)))
    (root / "legacy.json").write_text(json.dumps(legacy), encoding="utf-8")
    torch.manual_seed(0)
    save_model_file(extract_subnet(supernet, arch), root / "model.pt", task="sod", input_hw=(64, 64))
    write_result(root / "result", make_evaluations("random", 30, seed=1))
    images = root / "images"
    images.mkdir()
    pred, gt = root / "pred", root / "gt"
    pred.mkdir()
    gt.mkdir()
    for line in (root / "data" / "test.lst").read_text().splitlines()[:2]:
        image, mask = line.split()
        shutil.copy(root / "data" / image, images)
        shutil.copy(root / "data" / mask, gt)
        shutil.copy(root / "data" / mask, pred)
    return {"root": root, "config": root / "config.yaml", "data": root / "data", "supernet": root / "supernet.pt",
            "lut": root / "lut", "arch": root / "arch.json", "legacy": root / "legacy.json", "model": root / "model.pt",
            "result": root / "result", "images": images, "pred": pred, "gt": gt}


# ----- mutations ----------------------------------------------------------------------------------------------------
def nested_paths(doc: object) -> list[tuple]:
    """The key/index path of every value nested in `doc` (dicts and lists), the root itself excluded."""
    paths: list[tuple] = []

    def walk(node: object, path: tuple) -> None:
        if path:
            paths.append(path)
        if isinstance(node, dict):
            for k, v in node.items():
                walk(v, (*path, k))
        elif isinstance(node, list):
            for i, v in enumerate(node):
                walk(v, (*path, i))

    walk(doc, ())
    return paths


def _strategies():
    from hypothesis import strategies as st

    return st


def mutated_bytes(data: bytes):
    """A strategy: `data` truncated, with bytes flipped, inserted, deleted or overwritten, or emptied."""
    st = _strategies()

    @st.composite
    def strategy(draw) -> bytes:
        kind = draw(st.sampled_from(["truncate", "flip", "insert", "delete", "overwrite", "empty"]))
        n = len(data)
        pos = draw(st.integers(0, max(n - 1, 0)))
        if kind == "truncate":
            return data[:pos]
        if kind == "flip":
            out = bytearray(data)
            for p in draw(st.lists(st.integers(0, n - 1), min_size=1, max_size=8)):
                out[p] ^= draw(st.integers(1, 255))
            return bytes(out)
        if kind == "insert":
            return data[:pos] + draw(st.binary(min_size=1, max_size=64)) + data[pos:]
        if kind == "delete":
            return data[:pos] + data[pos + draw(st.integers(1, 256)):]
        if kind == "overwrite":
            chunk = draw(st.binary(min_size=1, max_size=64))
            return data[:pos] + chunk + data[pos + len(chunk):]
        return b""

    return strategy()


_HOSTILE_SNIPPETS = [
    b"\xff\xfe", b"\xed\xa0\x80", b"\x00", "\u202e".encode(), b"\xc3", "\U0001f600".encode(), b"\r", b"\t",
    b"\\ud800", b"&a [*a, *a]", b"!!python/object:os.system", b"{", b"]", b"'", b'"', b"~", b"1e999", b"-0", b".nan",
]
_HUGE_NUMBERS = ["-1", "0", "1e999", "99999999999999999999", "9" * 400, "9" * 5000, "-" + "9" * 30, "1.5", "nan"]


def mutated_text(text: str):
    """A strategy: bytes of `text` mutated (see `mutated_bytes`), or deep nesting, a huge or odd number, bad
    unicode or a hostile snippet inserted, or a token replaced."""
    import re

    st = _strategies()
    data = text.encode("utf-8")
    numbers = [m.span() for m in re.finditer(rb"-?\d+(\.\d+)?", data)] or [(0, 0)]
    tokens = [m.span() for m in re.finditer(rb"[A-Za-z_0-9.]+|\[[^\[\]]*\]|\"[^\"]*\"", data)] or [(0, 0)]

    @st.composite
    def strategy(draw) -> bytes:
        kind = draw(st.sampled_from(["bytes", "deep", "number", "snippet", "token"]))
        if kind == "bytes":
            return draw(mutated_bytes(data))
        if kind == "number":
            start, end = draw(st.sampled_from(numbers))
            return data[:start] + draw(st.sampled_from(_HUGE_NUMBERS)).encode() + data[end:]
        if kind == "token":
            start, end = draw(st.sampled_from(tokens))
            value = draw(st.sampled_from(["null", "[]", "{}", "[1]", "-1", "''", "[[[[0]]]]", "x" * 300, "true"]))
            return data[:start] + value.encode() + data[end:]
        pos = draw(st.integers(0, len(data)))
        if kind == "deep":
            depth = draw(st.sampled_from([40, 150, 1000, 100_000]))
            opener, closer = draw(st.sampled_from([(b"[", b"]"), (b"{a: ", b"}"), (b'{"a": ', b"}"), (b"- ", b"")]))
            closed = draw(st.booleans())
            return data[:pos] + opener * depth + b"1" + (closer * depth if closed else b"") + data[pos:]
        return data[:pos] + draw(st.sampled_from(_HOSTILE_SNIPPETS)) + data[pos:]

    return strategy()


def json_values(max_leaves: int = 8):
    st = _strategies()
    leaves = (st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats(allow_nan=True)
              | st.text(max_size=12) | st.sampled_from([0, 1, -1, 2**32, 10**30]))
    return st.recursive(leaves, lambda c: st.lists(c, max_size=4) | st.dictionaries(st.text(max_size=6), c, max_size=3),
                        max_leaves=max_leaves)


def mutated_doc(doc):
    """A strategy: a copy of the nested dict/list `doc` with one value swapped for a random JSON value, one key
    removed or renamed, or one value nested 200 levels deep."""
    import copy

    st = _strategies()
    inner = nested_paths(doc)

    @st.composite
    def strategy(draw):
        out = copy.deepcopy(doc)
        path = draw(st.sampled_from(inner))
        parent = out
        for step in path[:-1]:
            parent = parent[step]
        kind = draw(st.sampled_from(["swap", "swap", "remove", "rename", "deep"]))
        last = path[-1]
        if kind == "swap":
            parent[last] = draw(json_values())
        elif kind == "deep":
            value = parent[last]
            for _ in range(200):
                value = [value]
            parent[last] = value
        elif isinstance(parent, dict):
            value = parent.pop(last)
            if kind == "rename":
                parent[draw(st.text(min_size=1, max_size=8))] = value
        else:
            parent.pop(last)
        return out

    return strategy()


def mutated_frame(frame, remove_rows: bool = True):
    """A strategy: a copy of the DataFrame `frame` with a column dropped, renamed or turned into text, a cell set to
    an odd value (NaN, inf, negative, huge, text, None), rows duplicated, cut or all removed (with `remove_rows`),
    or a column added."""
    import pandas as pd

    st = _strategies()
    columns = list(frame.columns)
    odd = [float("nan"), float("inf"), -float("inf"), -1, 0, 1e300, "x", None, "../../escape", "/abs/path", ""]

    @st.composite
    def strategy(draw):
        out = frame.copy()
        kinds = ["drop", "rename", "text", "cell", "cell", "dup", "add"] + (["cut", "empty"] if remove_rows else [])
        kind = draw(st.sampled_from(kinds))
        column = draw(st.sampled_from(columns))
        if kind == "drop":
            out = out.drop(columns=[column])
        elif kind == "rename":
            out = out.rename(columns={column: draw(st.text(min_size=1, max_size=10))})
        elif kind == "text":
            out[column] = out[column].astype(str)
        elif kind == "cell":
            row = draw(st.integers(0, len(out) - 1))
            value = draw(st.sampled_from(odd))
            if isinstance(value, str) or value is None:
                out[column] = out[column].astype(object)
                out.loc[row, column] = value
                if not all(isinstance(v, str) or v is None for v in out[column]):
                    out[column] = out[column].map(lambda v: None if v is None else str(v))
            else:
                if not pd.api.types.is_numeric_dtype(out[column]) or pd.api.types.is_bool_dtype(out[column]):
                    out[column] = out[column].astype(object)
                    out.loc[row, column] = str(value)
                else:
                    out[column] = out[column].astype(float)
                    out.loc[row, column] = value
        elif kind == "cut":
            out = out.iloc[: draw(st.integers(1, max(1, len(out) - 1)))]
        elif kind == "dup":
            out = out.iloc[[draw(st.integers(0, len(out) - 1))] * 3 + list(range(len(out)))].reset_index(drop=True)
        elif kind == "empty":
            out = out.iloc[:0]
        else:
            out[draw(st.text(min_size=1, max_size=10))] = 1.0
        return out

    return strategy()


def mutated_checkpoint(obj):
    """A strategy: a copy of a loaded checkpoint dict with one header value or tensor swapped (random plain value,
    a tensor of another shape or dtype), removed, or nested deeply."""
    import torch

    st = _strategies()
    paths = nested_paths(obj)
    tensors = st.sampled_from([torch.zeros(3), torch.zeros(2, 2, dtype=torch.int64), torch.tensor(float("nan")),
                               torch.zeros(0), torch.ones(1, 1, 1, 1, dtype=torch.bool)])

    @st.composite
    def strategy(draw):
        out = {k: v for k, v in obj.items()}
        path = draw(st.sampled_from(paths))
        # copy the containers along the path, keep the tensors shared
        parent = out
        for step in path[:-1]:
            parent[step] = dict(parent[step]) if isinstance(parent[step], dict) else list(parent[step])
            parent = parent[step]
        kind = draw(st.sampled_from(["value", "tensor", "remove", "deep"]))
        last = path[-1]
        if kind == "value":
            parent[last] = draw(json_values())
        elif kind == "tensor":
            parent[last] = draw(tensors)
        elif kind == "deep":
            value = parent[last]
            for _ in range(200):
                value = [value]
            parent[last] = value
        else:
            parent.pop(last)
        return out

    return strategy()


def damage_json_field(path: Path, field: str, value: object) -> None:
    """Rewrite the JSON object file `path` with `field` set to `value` (removed when `value` is `...`); json writes
    NaN and Infinity, as a damaged or foreign writer may."""
    import json

    doc = json.loads(path.read_text())
    if value is ...:
        del doc[field]
    else:
        doc[field] = value
    path.write_text(json.dumps(doc))

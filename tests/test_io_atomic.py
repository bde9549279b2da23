"""Atomic writes (inas.io): normal file permissions (the umask applies, not mkstemp's 0600), nothing left on error,
temporary files of dead writers removed by the next write; and no user-facing artefact of the package is written
without going through them."""

from __future__ import annotations

import os
import re
import stat
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from inas.io import (
    TMP_SUFFIX,
    atomic_path,
    atomic_write_bytes,
    atomic_write_json,
    atomic_write_parquet,
    atomic_write_text,
    remove_stale_temp_files,
    remove_stale_temp_files_in,
    temp_files_of,
)

PACKAGE = Path(__file__).resolve().parents[1] / "inas"


@pytest.fixture
def umask():
    def set_mask(mask: int) -> None:
        os.umask(mask)

    old = os.umask(0o022)
    yield set_mask
    os.umask(old)


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.mark.parametrize("mask", [0o022, 0o027, 0o002])
def test_atomic_writes_have_normal_permissions(tmp_path, umask, mask):
    umask(mask)
    expected = 0o666 & ~mask
    writers = {
        "a.txt": lambda p: atomic_write_text(p, "text\n"),
        "b.bin": lambda p: atomic_write_bytes(p, b"\x00\x01"),
        "c.json": lambda p: atomic_write_json(p, {"a": 1}),
        "d.parquet": lambda p: atomic_write_parquet(p, pd.DataFrame({"x": [1, 2]})),
    }
    for name, write in writers.items():
        write(tmp_path / name)
        assert _mode(tmp_path / name) == expected, (name, oct(_mode(tmp_path / name)))
    reference = tmp_path / "plain.txt"
    reference.write_text("x")
    assert _mode(reference) == expected  # the same as any other file the user's process creates
    atomic_write_text(tmp_path / "a.txt", "again\n")  # a rewrite too
    assert _mode(tmp_path / "a.txt") == expected
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(TMP_SUFFIX)]


def test_failed_write_leaves_nothing(tmp_path):
    target = tmp_path / "out" / "x.parquet"
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        tmp.write_bytes(b"partial")
        raise RuntimeError("killed halfway")
    assert not target.exists() and not list(target.parent.iterdir())
    atomic_write_text(tmp_path / "y.txt", "old")
    with pytest.raises(RuntimeError), atomic_path(tmp_path / "y.txt") as tmp:
        tmp.write_text("new, half")
        raise RuntimeError
    assert (tmp_path / "y.txt").read_text() == "old" and temp_files_of(tmp_path / "y.txt") == []


def test_temp_files_of_dead_writers_are_removed_by_the_next_write(tmp_path):
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    dead_pid = int(dead.stdout)
    target = tmp_path / "evaluations.parquet"
    stale = tmp_path / f".{target.name}.{dead_pid}.abcd1234{TMP_SUFFIX}"
    alive = tmp_path / f".{target.name}.{os.getpid()}.abcd1234{TMP_SUFFIX}"  # a concurrent writer: kept
    other = tmp_path / f".other.parquet.{dead_pid}.abcd1234{TMP_SUFFIX}"  # another target's: not ours to touch
    foreign = tmp_path / f".{target.name}.notapid{TMP_SUFFIX}"  # not our naming: left alone
    for path in (stale, alive, other, foreign):
        path.write_bytes(b"junk")
    assert set(temp_files_of(target)) == {stale, alive, foreign}
    atomic_write_text(target, "done")
    assert not stale.exists() and alive.exists() and other.exists() and foreign.exists()
    assert remove_stale_temp_files(tmp_path / "other.parquet") == [other]


def test_a_folder_of_many_targets_is_cleaned_in_one_scan(tmp_path):
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    dead_pid = int(dead.stdout)
    stale = [tmp_path / f".img_{i}.png.{dead_pid}.abcd1234{TMP_SUFFIX}" for i in range(3)]
    alive = tmp_path / f".img_9.png.{os.getpid()}.abcd1234{TMP_SUFFIX}"
    foreign = [tmp_path / f".img_1.png.notapid{TMP_SUFFIX}", tmp_path / f".{dead_pid}.x{TMP_SUFFIX}"]
    for path in (*stale, alive, *foreign):
        path.write_bytes(b"junk")
    with atomic_path(tmp_path / "img_0.png", clean_stale=False) as tmp:  # the per-write scan is skipped
        tmp.write_bytes(b"png")
    assert all(p.exists() for p in stale)
    assert remove_stale_temp_files_in(tmp_path) == sorted(stale)
    assert alive.exists() and all(p.exists() for p in foreign) and (tmp_path / "img_0.png").read_bytes() == b"png"
    assert remove_stale_temp_files_in(tmp_path / "missing") == []


# ----- static: every user-facing write goes through inas.io ----------------------------------------------------------
WRITE_CALLS = re.compile(r"\.to_parquet\(|\.to_csv\(|torch\.save\(|\.savefig\(|\.write_text\(|"
                         r"\.write_bytes\(|onnx\.save|open\([^)]*['\"][wax]b?\+?['\"]|\.open\(['\"][wax]")
# (file, text of the line) of the writes that are fine without inas.io, with the reason
ALLOWED = {
    ("inas/io.py", ""): "the atomic helpers themselves",
    ("inas/train/runlog.py", 'self.path.open("a"'): "append-only training log, rewritten atomically on resume",
    ("inas/deploy/testing.py", "path.write_text("): "test helper writing a fixture",
    ("inas/latency/devices.py", 'open(path, "a+")'): "the node-wide measurement lock file (flock), no content",
    ("inas/runtimes/ov_runtime.py", "path.write_bytes(onnx_bytes)"): "input file in a private TemporaryDirectory",
    ("inas/runtimes/quantize.py", "fp32.write_bytes(onnx_bytes)"): "input file in a private TemporaryDirectory",
    ("inas/train/cluster.py", "(folder / BAD_INPUT_FILE).write_text("):
        "a message in a fresh mkdtemp folder that Ray Train copies as a checkpoint",
}


def test_package_writes_go_through_the_atomic_helpers():
    offenders = []
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(PACKAGE.parent).as_posix()
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            code = line.split("#", 1)[0]
            if not WRITE_CALLS.search(code):
                continue
            if re.search(r"\btmp\b|atomic_write_", code):  # the temporary file of atomic_path, or text for a helper
                continue
            if any(rel == f and text in code for f, text in ALLOWED):
                continue
            offenders.append(f"{rel}:{number}: {line.strip()}")
    assert not offenders, "writes that bypass inas.io (temporary file + rename):\n" + "\n".join(offenders)

"""Shared benchmark helpers: a short machine description and appending one result line to results.jsonl."""

from __future__ import annotations

import datetime as dt
import json
import os
import platform
import subprocess
from pathlib import Path
from typing import Any

from inas.io import atomic_write_text

RESULTS_PATH = Path(__file__).resolve().parent / "results.jsonl"


def machine_description() -> str:
    """e.g. 'Linux x86_64, Intel(R) Xeon(R) ... (2 cores), torch 2.13.0+cpu, 2 threads'."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    parts = [f"{platform.system()} {platform.machine()}", f"{cpu} ({os.cpu_count()} cores)"]
    try:
        import torch

        parts.append(f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    except ImportError:
        pass
    return ", ".join(parts)


def cpu_description() -> dict[str, str]:
    """`lscpu`'s model name and flags (empty when lscpu is missing): processors differ between machines (AVX-512
    VNNI, AMX), and INT8 timings depend on them."""
    try:
        text = subprocess.run(["lscpu"], capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.SubprocessError):
        return {}
    fields = dict(line.split(":", 1) for line in text.splitlines() if ":" in line)
    return {"cpu_model": fields.get("Model name", "").strip(), "cpu_flags": fields.get("Flags", "").strip()}


def record_result(bench: str, figures: dict[str, Any], path: Path = RESULTS_PATH) -> dict[str, Any]:
    """Append {"bench", "date", "machine", "cpu_model", "cpu_flags", **figures} as one JSON line to `path`;
    returns the record."""
    record = {"bench": bench, "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
              "machine": machine_description(), **cpu_description(), **figures}
    existing = path.read_text(encoding="utf-8") if path.exists() else ""
    if existing and not existing.endswith("\n"):
        existing += "\n"
    atomic_write_text(path, existing + json.dumps(record) + "\n")
    return record


def format_table(rows: list[dict[str, Any]], columns: list[str]) -> str:
    """A plain fixed-width text table of `rows` restricted to `columns`."""
    cells = [[str(r.get(c, "")) for c in columns] for r in rows]
    widths = [max([len(c)] + [len(row[i]) for row in cells]) for i, c in enumerate(columns)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(columns, widths, strict=True))]
    lines.append("  ".join("-" * w for w in widths))
    lines += ["  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)) for row in cells]
    return "\n".join(lines)

"""`demo [--quick] [-o OUT]`: the whole pipeline on synthetic data, each step one verb of `inas.run`.

Steps: data synth -> train -> lut -> search -> analyze -> convert (knee model) -> export (ONNX) -> test.
The experiment config is `experiments/demo.yaml` (or `--config`), with `--quick` shrinking every size; the paths are
rewritten into OUT and the resolved config is saved as OUT/config.yaml. Each finished step leaves a marker in
OUT/.done/, so re-running the command reuses finished steps (and an interrupted step resumes where the verb can);
a folder whose finished steps ran with another config (--quick or -c changed) is refused.
"""

from __future__ import annotations

import argparse
import copy
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from inas.cli.common import add_out_argument
from inas.config import SearcherConfig, parse_config, read_yaml
from inas.errors import BadInputError, excerpt
from inas.io import atomic_write_text
from inas.paths import check_output_path, path_kind
from inas.search.searchers import scaled_searcher

if TYPE_CHECKING:
    from inas.space import SearchSpace

DEFAULT_CONFIG = Path(__file__).resolve().parents[2] / "experiments" / "demo.yaml"

# --quick: a smoke run of every step (CI), minutes on 2 cores.
QUICK_OVERRIDES: dict[str, Any] = {
    "synth": {"n_train": 48, "n_test": 12},
    "train": {"iterations": 30, "warmup_iterations": 5, "checkpoint_every": 15, "log_every": 5, "validate_every": 30,
              "val_images": 12, "bn_recalibration_batches": 2},
    "lut": {"warmup_runs": 2, "runs": 5},
    "search": {"budget_scale": 0.25, "bn_recalibration_batches": 2},
}
SYNTH_KEYS = frozenset({"n_train", "n_test", "seed", "workers"})  # the `synth:` options (`data synth --n-train` ...)
CONVERT_BN_BATCHES = {False: 50, True: 10}  # BN recalibration of the knee model (the original: 200)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--quick", action="store_true", help="a smoke version of every step (about 3 minutes)")
    add_out_argument(parser, "output folder (default: runs/demo or runs/demo_quick)")
    parser.add_argument("-c", "--config", default=str(DEFAULT_CONFIG), help="demo experiment YAML")
    parser.add_argument("--fresh", action="store_true",
                        help="run every step's verb again instead of skipping finished steps; each verb still resumes "
                        "from what its folder holds (a trained supernet, measured tables, evaluated architectures): "
                        "delete OUT to start from scratch")


def _load_demo_doc(path: Path) -> dict[str, Any]:
    doc = read_yaml(path)  # bounded like any config: size, nesting, aliases expanded
    if not isinstance(doc, dict):
        raise BadInputError("expected a mapping at the top level", path=path)
    synth = doc.get("synth")
    if synth is not None and not (isinstance(synth, dict) and set(synth) <= SYNTH_KEYS):
        raise BadInputError(f"expected a mapping of {sorted(SYNTH_KEYS)} (options of `data synth`), got "
                            f"{excerpt(synth)}", path=path, key="synth")
    return doc


def _check_finished_steps(out: Path, doc: dict[str, Any]) -> None:
    """Finished steps in `out` are reused only when they ran with this very config (OUT/config.yaml, written at
    each start): a run with --quick and one without, or with another -c, must not share them."""
    done = out / ".done"
    if path_kind(done) != "folder" or not any(done.iterdir()):
        return
    previous = out / "config.yaml"
    try:
        same = yaml.safe_load(previous.read_text(encoding="utf-8")) == doc
    except (OSError, UnicodeError, ValueError, yaml.YAMLError, RecursionError):
        same = False
    if not same:
        raise BadInputError(f"this folder holds steps finished with another demo config ({previous} differs from "
                            "this one: --quick or -c changed); choose another -o, or delete the folder to start again",
                            path=out, key="--out")


def resolve_demo_config(base: dict[str, Any], out: Path, quick: bool) -> tuple[dict[str, Any], dict[str, Any]]:
    """The experiment config (paths inside `out`, quick sizes applied) and the synth options."""
    doc = copy.deepcopy(base)
    synth = doc.pop("synth", {}) or {}
    if quick:
        synth.update(QUICK_OVERRIDES["synth"])
        doc.setdefault("train", {}).update(QUICK_OVERRIDES["train"])
        doc.setdefault("lut", {}).update(QUICK_OVERRIDES["lut"])
        search = doc.setdefault("search", {})
        scale = QUICK_OVERRIDES["search"]["budget_scale"]
        search["bn_recalibration_batches"] = QUICK_OVERRIDES["search"]["bn_recalibration_batches"]
        for searcher in search.get("searchers", []):
            budget = searcher.get("budget", SearcherConfig.model_fields["budget"].default)
            searcher["budget"], params = scaled_searcher(searcher.get("kind", ""), budget,
                                                         searcher.get("params", {}), scale)
            if "params" in searcher:
                searcher["params"] = params
    doc.setdefault("data", {})["root"] = str(out / "data")
    doc.setdefault("train", {})["out_dir"] = str(out / "train")
    doc.setdefault("lut", {})["out_dir"] = str(out / "lut")
    search = doc.setdefault("search", {})
    search["out_dir"] = str(out / "search")
    search["supernet"] = str(out / "train" / "supernet.pt")
    search["lut_dir"] = str(out / "lut")
    return doc, synth


def devices_argument(doc: dict[str, Any]) -> list[str]:
    """`--devices a,b` for analyze when the config has several latency devices (the joint front), else nothing."""
    devices = doc.get("search", {}).get("devices") or [d["name"] for d in doc.get("lut", {}).get("devices", [])]
    return ["--devices", ",".join(devices)] if len(devices) > 1 else []


Step = tuple[str, Callable[[], list[str]], str]  # (name, its `inas.run` argv when it starts, what it does)


def demo_steps(doc: dict, synth: dict, out: Path, cfg: str, space: SearchSpace, quick: bool) -> list[Step]:
    """The demo's verbs in order, each with the arguments it runs with (built when it starts: `convert` reads the
    knee point `analyze` wrote)."""
    size = str(doc["data"].get("image_size", 320))

    def knee_arch() -> list[str]:
        import pandas as pd

        knee = pd.read_parquet(out / "report" / "knee_point.parquet")
        arch_file = out / "model" / "knee_arch.json"
        arch_file.parent.mkdir(parents=True, exist_ok=True)
        from inas.space import arch_from_json

        atomic_write_text(arch_file, arch_from_json(str(knee.iloc[0]["arch"]), space).to_json(indent=2))
        return ["convert", "--arch", str(arch_file), "--supernet", str(out / "train" / "supernet.pt"), "-c", cfg,
                "-o", str(out / "model" / "knee.pt"), "--bn-batches", str(CONVERT_BN_BATCHES[quick])]

    return [
        ("data", lambda: ["data", "synth", "--task", doc.get("task", "sod"), "--out", str(out / "data"),
                          "--size", size, *(f"--{k.replace('_', '-')}={v}" for k, v in synth.items()), "--force"],
         "synthetic data set"),
        ("train", lambda: ["train", "-c", cfg], "supernet training"),
        ("lut", lambda: ["lut", "-c", cfg], "latency tables of two targets: onnxruntime FP32 and INT8"),
        ("search", lambda: ["search", "-c", cfg], "searchers in parallel on Ray Tune"),
        ("analyze", lambda: ["analyze", str(out / "search"), "-o", str(out / "report"), *devices_argument(doc)],
         "Pareto analysis and report (2-D, and N-D over every device)"),
        ("convert", knee_arch, "stand-alone knee model"),
        ("export", lambda: ["export", str(out / "model" / "knee.pt"), "-o", str(out / "model" / "knee.onnx")],
         "ONNX export"),
        ("test", lambda: ["test", str(out / "model" / "knee.onnx"), "-c", cfg, "-o", str(out / "test")],
         "test metrics through onnxruntime"),
    ]


def print_summary(out: Path, resolved: Path, timings: list[tuple[str, float, str]], total_s: float) -> None:
    """Where the demo's artefacts are and how long each step took."""
    print(f"\ndemo finished in {total_s:.1f} s; artefacts in {out}:")
    for label, path in [
        ("config", resolved), ("data", out / "data"), ("supernet", out / "train" / "supernet.pt"),
        ("latency tables", out / "lut"), ("search results", out / "search" / "evaluations.parquet"),
        ("Pareto front", out / "search" / "pareto.parquet"), ("report", out / "report" / "report.md"),
        ("knee model", out / "model" / "knee.pt"), ("ONNX model", out / "model" / "knee.onnx"),
        ("test metrics", out / "test" / "metrics.csv"),
    ]:
        print(f"  {label:15s} {path}")
    for name, seconds, how in timings:
        print(f"  step {name:8s} {seconds:7.1f} s ({how})")


def main(args: argparse.Namespace) -> int:
    from inas.run import main as run_verb

    out = Path(args.out or ("runs/demo_quick" if args.quick else "runs/demo")).resolve()
    config_path = Path(args.config)
    doc, synth = resolve_demo_config(_load_demo_doc(config_path), out, args.quick)
    space = parse_config(doc, str(config_path)).space.build()  # fail before any work
    check_output_path(out, "folder", key="--out")
    done_dir = out / ".done"
    check_output_path(out / "config.yaml", "file")
    check_output_path(done_dir, "folder")
    _check_finished_steps(out, doc)
    out.mkdir(parents=True, exist_ok=True)
    resolved = out / "config.yaml"
    atomic_write_text(resolved, yaml.safe_dump(doc, sort_keys=False))
    cfg = str(resolved)
    done_dir.mkdir(exist_ok=True)
    if args.fresh:
        for marker in done_dir.glob("*"):
            marker.unlink()

    steps = demo_steps(doc, synth, out, cfg, space, args.quick)
    started = time.perf_counter()
    timings: list[tuple[str, float, str]] = []
    for index, (name, make_argv, what) in enumerate(steps, 1):
        marker = done_dir / name
        if marker.exists():
            print(f"[{index}/{len(steps)}] {name}: done before, reused ({what})", flush=True)
            timings.append((name, 0.0, "reused"))
            continue
        argv = make_argv()
        print(f"[{index}/{len(steps)}] {name}: {what}\n    python -m inas.run {' '.join(argv)}", flush=True)
        step_start = time.perf_counter()
        code = run_verb(argv)
        seconds = time.perf_counter() - step_start
        if code == 130:  # the verb caught Ctrl-C
            print(f"demo: interrupted in step '{name}' after {seconds:.1f} s; re-run the same command to continue "
                  "from this step")
            return code
        if code != 0:
            print(f"demo: step '{name}' failed (exit {code}) after {seconds:.1f} s; fix it and re-run the same "
                  "command to continue from this step")
            return code
        atomic_write_text(marker, f"{seconds:.1f}\n")
        timings.append((name, seconds, "ran"))
        print(f"[{index}/{len(steps)}] {name}: done in {seconds:.1f} s", flush=True)
    print_summary(out, resolved, timings, time.perf_counter() - started)
    return 0

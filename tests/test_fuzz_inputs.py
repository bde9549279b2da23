"""Property-based fuzz of every file kind a verb reads, through the CLI entry point in-process (`inas.run.main`).

Each case copies the inputs it mutates into a fresh folder, mutates one file (truncation, byte flips, inserted
garbage, type swaps, deep nesting, huge numbers, bad unicode, a decompression bomb...), runs the verb with that
folder as the working directory under a time limit, and checks the contract: exit code 2 (or 0 where the mutation
left a valid input), on 2 exactly one `error:` line naming the mutated file, never a `Traceback`, no output created
and no file in the case folder created or changed; on 0 only the output path changed; no hang. The world of valid
inputs is never written to.

The seeded fast part runs by default; the `slow` part draws many more cases. The number of cases per file kind is
printed at the end of the module (`-s`) and written to `$INAS_FUZZ_COUNTS` when that is set; `$INAS_FUZZ_SEED`
draws other cases than the fixed default ones.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import shutil
import signal
import tempfile
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import hypothesis
import pandas as pd
import pytest
import torch
import yaml
from fuzz_cases import (
    BOMB_ERROR_SIZE,
    BOMB_WARNING_SIZE,
    bomb_png,
    build_world,
    mutated_bytes,
    mutated_checkpoint,
    mutated_doc,
    mutated_frame,
    mutated_text,
)
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from inas.run import main

pytestmark = pytest.mark.usefixtures("one_torch_thread")

CASE_SECONDS = 60  # a case that does not answer within this is a hang
FAST = {"config": 40, "arch": 30, "legacy_arch": 30, "list": 30, "image_list": 16, "image_evaluate": 10,
        "image_test": 10, "supernet": 8, "model": 12, "latency_table": 12, "evaluations": 12}
SLOW_FACTOR = 10
CASES: Counter[str] = Counter()
ERRORS_NAMING_ANOTHER_INPUT: Counter[str] = Counter()


# ----- fixtures -----------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def world(tmp_path_factory) -> dict[str, Path]:
    return build_world(tmp_path_factory.mktemp("fuzz_world"))


@pytest.fixture(scope="module", autouse=True)
def _report_counts():
    yield
    summary = {"cases": dict(sorted(CASES.items())), "total": sum(CASES.values())}
    print(f"\nfuzz cases per file kind: {json.dumps(summary)}")
    target = os.environ.get("INAS_FUZZ_COUNTS")
    if target:
        Path(target).write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")


@pytest.fixture(scope="module")
def world_untouched(world):
    before = snapshot(world["root"])
    yield
    assert snapshot(world["root"]) == before, "a fuzz case wrote into the world of valid inputs"


# ----- the contract -------------------------------------------------------------------------------------------------
class CaseTimeout(Exception):
    """A case ran past CASE_SECONDS."""


@contextlib.contextmanager
def time_limit(seconds: float):
    def expire(signum, frame):
        raise CaseTimeout(f"no answer within {seconds} s (a hang)")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def snapshot(root: Path) -> dict[str, tuple]:
    """Relative path -> (size, mtime) of every file, ("dir",) of every folder under `root`."""
    out: dict[str, tuple] = {}
    for path in root.rglob("*"):
        rel = str(path.relative_to(root))
        if path.is_dir() and not path.is_symlink():
            out[rel] = ("dir",)
        else:
            info = path.lstat()
            out[rel] = (info.st_size, info.st_mtime_ns)
    return out


def run_case(kind: str, case: Path, argv: list[str], mutated: Path, output: str | None = None,
             also_named: tuple[str, ...] = ()) -> int:
    """Run the CLI in `case` and check the contract (see the module docstring); returns the exit code. The error
    must name the mutated file (or one of `also_named`, e.g. the list that holds it)."""
    CASES[kind] += 1
    before = snapshot(case)
    out, err = io.StringIO(), io.StringIO()
    with time_limit(CASE_SECONDS), contextlib.chdir(case), contextlib.redirect_stdout(out), \
            contextlib.redirect_stderr(err):
        code = main(argv)
    text = out.getvalue() + err.getvalue()
    assert "Traceback" not in text, text
    assert code in (0, 2), f"exit code {code}\n{text}"
    after = snapshot(case)
    changed = sorted(k for k in before.keys() | after.keys() if before.get(k) != after.get(k))
    if code == 2:
        errors = [line for line in err.getvalue().splitlines() if line.startswith("error:")]
        assert len(errors) == 1, f"expected one error line:\n{err.getvalue()}"
        assert len(errors[0]) < 10_000, f"error line of {len(errors[0])} characters"  # a path can be 4096 bytes
        message = text[text.index(errors[0]):]
        if not any(name in message for name in (mutated.name, *also_named)):
            ERRORS_NAMING_ANOTHER_INPUT[kind] += 1  # e.g. a config edit that points at another file
            assert kind == "config", f"the error does not name {mutated.name}:\n{errors[0]}"
        assert not changed, f"files created or changed by a failed run: {changed}"
    else:
        stray = [k for k in changed if output is None or (k != output and not k.startswith(output + "/"))]
        assert not stray, f"files written outside the output {output}: {stray}"
    return code


def fuzz(kind: str, strategy, check: Callable, slow: bool) -> None:
    """Draw cases of `strategy` (FAST[kind] of them, SLOW_FACTOR times as many when `slow`) and `check` each."""

    explore = os.environ.get("INAS_FUZZ_SEED")  # another seed draws other cases (to hunt for escapes)

    @settings(max_examples=FAST[kind] * (SLOW_FACTOR if slow else 1), derandomize=explore is None, deadline=None,
              database=None, suppress_health_check=list(HealthCheck))
    @hypothesis.seed(int(explore or 0))
    @given(strategy)
    def cases(value):
        case = Path(tempfile.mkdtemp(prefix=f"fuzz-{kind}-"))
        try:
            check(case, value)
        finally:
            shutil.rmtree(case, ignore_errors=True)

    cases()


SPEED = [pytest.param(False, id="fast"), pytest.param(True, id="slow", marks=pytest.mark.slow)]


# ----- YAML config, Arch JSON (ours and legacy), list files ---------------------------------------------------------
def text_or_doc(path: Path, loader) -> st.SearchStrategy[bytes]:
    """Mutated bytes of a text file, or a structurally mutated copy of its document dumped back."""
    text = path.read_text(encoding="utf-8")
    doc = loader(text)
    docs = mutated_doc(doc).map(lambda d: (yaml.safe_dump(d) if loader is yaml.safe_load
                                          else json.dumps(d)).encode("utf-8"))
    return st.one_of(mutated_text(text), docs)


@pytest.mark.parametrize("slow", SPEED)
def test_fuzz_yaml_config(world, world_untouched, slow):
    def check(case: Path, data: bytes) -> None:
        config = case / "config.yaml"
        config.write_bytes(data)
        run_case("config", case, ["data", "check", "-c", str(config)], config)

    fuzz("config", text_or_doc(world["config"], yaml.safe_load), check, slow)


@pytest.mark.parametrize("slow", SPEED)
@pytest.mark.parametrize("kind", ["arch", "legacy_arch"])
def test_fuzz_arch_json(world, world_untouched, kind, slow):
    source = world["arch" if kind == "arch" else "legacy"]
    if kind == "arch":
        strategy = text_or_doc(source, json.loads)
    else:  # the legacy file is a JSON string holding a Python dict repr: mutate the repr, and the file
        inner = json.loads(source.read_text(encoding="utf-8"))
        strategy = st.one_of(mutated_text(inner).map(lambda b: json.dumps(b.decode("utf-8", "replace")).encode()),
                             mutated_text(source.read_text(encoding="utf-8")))

    def check(case: Path, data: bytes) -> None:
        arch = case / "arch.json"
        arch.write_bytes(data)
        run_case(kind, case, ["space", "validate", str(arch), "-c", str(world["config"])], arch)

    fuzz(kind, strategy, check, slow)


@pytest.mark.parametrize("slow", SPEED)
def test_fuzz_list_file(world, world_untouched, slow):
    def check(case: Path, data: bytes) -> None:
        listed = case / "train.lst"
        listed.write_bytes(data)
        run_case("list", case, ["data", "check", "--root", str(world["data"]), "--list", str(listed)], listed)

    fuzz("list", mutated_text((world["data"] / "train.lst").read_text(encoding="utf-8")), check, slow)


# ----- images -------------------------------------------------------------------------------------------------------
def image_strategy(sample: Path) -> st.SearchStrategy:
    """("bytes", mutated bytes of `sample`) or ("bomb", size) or ("other", (width, height, mode))."""
    return st.one_of(
        mutated_bytes(sample.read_bytes()).map(lambda b: ("bytes", b)),
        st.sampled_from([BOMB_ERROR_SIZE, BOMB_WARNING_SIZE]).map(lambda s: ("bomb", s)),
        st.tuples(st.integers(1, 80), st.integers(1, 80), st.sampled_from(["L", "RGB", "RGBA", "P", "I;16", "LA", "1"]))
        .map(lambda t: ("other", t)),
    )


def write_image(path: Path, how: tuple) -> None:
    from PIL import Image

    kind, value = how
    if kind == "bytes":
        path.write_bytes(value)
    elif kind == "bomb":
        bomb_png(path, *value)
    else:
        width, height, mode = value
        Image.new(mode, (width, height)).save(path, format="PNG" if path.suffix == ".png" else "TIFF")


def data_with_bad_image(source: Path, case: Path, value: tuple) -> tuple[Path, Path]:
    """A copy of the data set `source` in `case/data` with the image `value[0]` replaced as `value[1]` says;
    returns (the copy, the replaced file)."""
    relative, how = value
    data = case / "data"
    shutil.copytree(source, data)
    target = data / relative
    if how[0] == "other" and target.suffix != ".png":
        how = ("bytes", how[1][0].to_bytes(2, "big") * 10)  # garbage in the JPEG's place
    write_image(target, how)
    return data, target


@pytest.mark.parametrize("slow", SPEED)
def test_fuzz_images_in_a_list(world, world_untouched, slow):
    lines = (world["data"] / "train.lst").read_text(encoding="utf-8").split()
    targets = st.sampled_from(lines)

    def check(case: Path, value) -> None:
        data, target = data_with_bad_image(world["data"], case, value)
        run_case("image_list", case, ["data", "check", "--root", str(data), "--list", "train.lst"], target,
                 also_named=(f"{data / 'train.lst'}: ",))

    sample = world["data"] / lines[0]
    fuzz("image_list", st.tuples(targets, image_strategy(sample)), check, slow)


@pytest.mark.parametrize("slow", SPEED)
def test_fuzz_images_in_evaluate(world, world_untouched, slow):
    names = sorted(p.name for p in world["pred"].iterdir())

    def check(case: Path, value) -> None:
        name, how = value
        pred = case / "pred"
        shutil.copytree(world["pred"], pred)
        write_image(pred / name, how)
        run_case("image_evaluate", case, ["evaluate", "--pred", str(pred), "--gt", str(world["gt"]), "-o", "m.csv",
                                          "--no-progress"], pred / name, output="m.csv")

    fuzz("image_evaluate", st.tuples(st.sampled_from(names), image_strategy(world["pred"] / names[0])), check, slow)


@pytest.mark.parametrize("slow", SPEED)
def test_fuzz_images_in_test(world, world_untouched, slow):
    """Images read by the data loaders of `test` (the list check first, then the loader)."""
    lines = (world["data"] / "test.lst").read_text(encoding="utf-8").split()
    doc = yaml.safe_load(world["config"].read_text(encoding="utf-8"))

    def check(case: Path, value) -> None:
        data, target = data_with_bad_image(world["data"], case, value)
        config = case / "config.yaml"
        config.write_text(yaml.safe_dump({**doc, "data": {**doc["data"], "root": str(data)}}), encoding="utf-8")
        run_case("image_test", case, ["test", str(world["model"]), "-c", str(config), "-o", "metrics",
                                      "--no-progress"], target, output="metrics", also_named=("test.lst",))

    fuzz("image_test", st.tuples(st.sampled_from(lines), image_strategy(world["data"] / lines[0])), check, slow)


# ----- our PyTorch files --------------------------------------------------------------------------------------------
def torch_file_strategy(path: Path) -> st.SearchStrategy[bytes]:
    obj = torch.load(path, map_location="cpu", weights_only=True)

    def saved(o) -> bytes:
        buffer = io.BytesIO()
        torch.save(o, buffer)
        return buffer.getvalue()

    return st.one_of(mutated_bytes(path.read_bytes()), mutated_checkpoint(obj).map(saved))


@pytest.mark.parametrize("slow", SPEED)
def test_fuzz_supernet_file(world, world_untouched, slow):
    def check(case: Path, data: bytes) -> None:
        supernet = case / "supernet.pt"
        supernet.write_bytes(data)
        run_case("supernet", case, ["convert", "--arch", str(world["arch"]), "--supernet", str(supernet), "-c",
                                    str(world["config"]), "-o", "model.pt", "--bn-batches", "1", "--no-check",
                                    "--no-progress", "--threads", "1"], supernet, output="model.pt")

    fuzz("supernet", torch_file_strategy(world["supernet"]), check, slow)


@pytest.mark.parametrize("slow", SPEED)
def test_fuzz_model_file(world, world_untouched, slow):
    def check(case: Path, data: bytes) -> None:
        model = case / "model.pt"
        model.write_bytes(data)
        run_case("model", case, ["predict", str(model), str(world["images"]), "-o", "maps", "--no-progress",
                                 "--threads", "1"], model, output="maps")

    fuzz("model", torch_file_strategy(world["model"]), check, slow)


# ----- Parquet tables -----------------------------------------------------------------------------------------------
def parquet_strategy(path: Path, remove_rows: bool = True) -> st.SearchStrategy[bytes]:
    frame = pd.read_parquet(path)

    def saved(f: pd.DataFrame) -> bytes:
        buffer = io.BytesIO()
        f.to_parquet(buffer, index=False)
        return buffer.getvalue()

    return st.one_of(mutated_bytes(path.read_bytes()), mutated_frame(frame, remove_rows).map(saved))


@pytest.mark.parametrize("slow", SPEED)
def test_fuzz_latency_table(world, world_untouched, slow):
    name = sorted(p.name for p in world["lut"].iterdir())[0]

    def check(case: Path, data: bytes) -> None:
        lut = case / "lut"
        shutil.copytree(world["lut"], lut)
        (lut / name).write_bytes(data)
        run_case("latency_table", case, ["lut", "-c", str(world["config"]), "-o", "lut", "--in-process",
                                         "--no-progress"], lut / name, output="lut")

    # no row removal: a table missing blocks is valid and `lut` measures them again (a minute of work per case,
    # tested in tests/test_latency_*); every other mutation fails at reading or measures at most a block or two
    fuzz("latency_table", parquet_strategy(world["lut"] / name, remove_rows=False), check, slow)


@pytest.mark.parametrize("slow", SPEED)
def test_fuzz_evaluations_table(world, world_untouched, slow):
    def check(case: Path, data: bytes) -> None:
        result = case / "result"
        result.mkdir()
        (result / "evaluations.parquet").write_bytes(data)
        run_case("evaluations", case, ["analyze", str(result), "-o", "report"], result / "evaluations.parquet",
                 output="report")

    fuzz("evaluations", parquet_strategy(world["result"] / "evaluations.parquet"), check, slow)

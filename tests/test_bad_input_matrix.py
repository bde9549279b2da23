"""The bad-input matrix, through the CLI as a user meets it: every row runs `python -m inas.run VERB ...` (in-process
via `inas.run.main`, or as a subprocess where a hang must be bounded) and checks the contract: exit code 2, ONE
`error:` line on stderr that names the file (or option) and what was expected, no traceback, and no output left
behind (the output path does not exist afterwards)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import torch
import yaml
from cli_subprocess import REPO, cli_env
from test_search_evaluators import DEVICES, make_problem
from test_train_support import TINY_SPACE, tiny_config_doc

from inas.data.synth_sod import synthesize_sod
from inas.latency import arch_blocks
from inas.nn import Supernet, save_supernet
from inas.run import main
from inas.space import sample_max, sample_min


# ----- fixtures -----------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def sod_root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("matrix_data") / "sod"
    synthesize_sod(root, n_train=4, n_test=2, size=64, seed=0, workers=1)
    return root


@pytest.fixture(scope="module")
def train_space_supernet(tmp_path_factory) -> Path:
    """A supernet checkpoint over the training tests' tiny space (not the search problem's space)."""
    from inas.config import parse_config

    path = tmp_path_factory.mktemp("matrix_ckpt") / "other_space.pt"
    torch.manual_seed(0)
    save_supernet(Supernet(parse_config({"space": TINY_SPACE}).space.build()), path)
    return path


def write_yaml(path: Path, doc: dict) -> Path:
    path.write_text(yaml.safe_dump(doc, sort_keys=False), encoding="utf-8")
    return path


def train_config(tmp_path: Path, data_root: Path, **data) -> Path:
    doc = tiny_config_doc(data_root, tmp_path / "run")
    doc["data"].update(data)
    return write_yaml(tmp_path / "train.yaml", doc)


def copy_data(sod_root: Path, tmp_path: Path) -> Path:
    root = tmp_path / "data"
    shutil.copytree(sod_root, root)
    return root


# ----- the contract -------------------------------------------------------------------------------------------------
def assert_clean_failure(code: int, out: str, err: str, must_name: list[str], absent: list[Path]) -> str:
    """Exit 2, exactly one `error:` line (first of the message) naming every string of `must_name`, no traceback,
    no path of `absent` on disk. Returns the error line."""
    assert code == 2, f"exit code {code}\nstdout:\n{out}\nstderr:\n{err}"
    assert "Traceback" not in out + err, err
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, f"expected one error line, got:\n{err}"
    message = err[err.index(errors[0]):]  # the error line and its continuation lines (a list check lists them all)
    for text in must_name:
        assert text in message, f"{text!r} not in the error message:\n{message}"
    for path in absent:
        assert not path.exists(), f"{path} was left behind"
    return errors[0]


def run_cli(capsys, argv: list[str]) -> tuple[int, str, str]:
    code = main(argv)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


# ----- config ---------------------------------------------------------------------------------------------------------
def test_malformed_yaml(sod_root, tmp_path, capsys):
    cfg = tmp_path / "bad.yaml"
    cfg.write_text("task: sod\ndata: {root: [unclosed\n", encoding="utf-8")
    code, out, err = run_cli(capsys, ["train", "-c", str(cfg), "-o", str(tmp_path / "run")])
    assert_clean_failure(code, out, err, [str(cfg), "YAML"], [tmp_path / "run"])


def test_unknown_key(sod_root, tmp_path, capsys):
    doc = tiny_config_doc(sod_root, tmp_path / "run")
    doc["train"]["iteratons"] = 3
    cfg = write_yaml(tmp_path / "c.yaml", doc)
    code, out, err = run_cli(capsys, ["train", "-c", str(cfg), "-o", str(tmp_path / "run")])
    assert_clean_failure(code, out, err, [str(cfg), "train.iteratons"], [tmp_path / "run"])


def test_wrong_type(sod_root, tmp_path, capsys):
    cfg = train_config(tmp_path, sod_root, image_size="large")
    code, out, err = run_cli(capsys, ["train", "-c", str(cfg), "-o", str(tmp_path / "run")])
    assert_clean_failure(code, out, err, [str(cfg), "data.image_size"], [tmp_path / "run"])


# ----- architectures --------------------------------------------------------------------------------------------------
def _arch_outside_space(problem_root: Path, tmp_path: Path) -> Path:
    doc = json.loads(sample_max(make_problem(problem_root)[0].space.build()).to_json())
    doc["backbone"]["stage_5"]["widths"][0] = 113
    path = tmp_path / "outside.json"
    path.write_text(json.dumps(doc), encoding="utf-8")
    return path


def test_arch_outside_the_space(problem_root, tmp_path, capsys):
    arch = _arch_outside_space(problem_root, tmp_path)
    code, out, err = run_cli(capsys, ["space", "validate", str(arch), "-c", str(problem_root / "config.yaml")])
    assert_clean_failure(code, out, err, [str(arch), "backbone.stage_5.widths[0]", "113", "allowed"], [])
    model = tmp_path / "model.pt"
    code, out, err = run_cli(capsys, ["convert", "--arch", str(arch), "--supernet", str(problem_root / "supernet.pt"),
                                      "-c", str(problem_root / "config.yaml"), "-o", str(model)])
    assert_clean_failure(code, out, err, [str(arch), "backbone.stage_5.widths[0]", "113"], [model])


def test_truncated_arch_json(problem_root, tmp_path, capsys):
    text = sample_max(make_problem(problem_root)[0].space.build()).to_json()
    arch = tmp_path / "truncated.json"
    arch.write_text(text[: len(text) // 2], encoding="utf-8")
    model = tmp_path / "model.pt"
    code, out, err = run_cli(capsys, ["convert", "--arch", str(arch), "--supernet", str(problem_root / "supernet.pt"),
                                      "-c", str(problem_root / "config.yaml"), "-o", str(model)])
    line = assert_clean_failure(code, out, err, [str(arch)], [model])
    assert "JSON" in line


# ----- data sets ------------------------------------------------------------------------------------------------------
def test_list_naming_missing_files(sod_root, tmp_path, capsys):
    root = copy_data(sod_root, tmp_path)
    (root / "train.lst").write_text("images/nope.jpg masks/nope.png\n" + (root / "train.lst").read_text())
    cfg = train_config(tmp_path, root)
    code, out, err = run_cli(capsys, ["train", "-c", str(cfg), "-o", str(tmp_path / "run")])
    line = assert_clean_failure(code, out, err, [str(root / "train.lst"), "line 1", "nope.jpg"], [tmp_path / "run"])
    assert "problem" in line


@pytest.mark.parametrize("damage", [
    lambda data: b"\xff\xd8\xff\xe0 this is not a JPEG any more" * 4,  # corrupt
    lambda data: data[: len(data) // 2],  # truncated: header intact, scan data cut
], ids=["corrupt", "truncated"])
def test_damaged_jpeg(damage, sod_root, tmp_path, capsys):
    root = copy_data(sod_root, tmp_path)
    image = root / (root / "train.lst").read_text().split()[0]
    image.write_bytes(damage(image.read_bytes()))
    cfg = train_config(tmp_path, root)
    code, out, err = run_cli(capsys, ["train", "-c", str(cfg), "-o", str(tmp_path / "run")])
    assert_clean_failure(code, out, err, [str(root / "train.lst"), image.name], [tmp_path / "run"])


def test_image_damaged_inside_read_by_a_data_worker(sod_root, tmp_path, capsys):
    """A mask PNG whose chunks are intact (CRCs right, so the list check passes) but whose pixel data stops after a
    few bytes fails only when a DataLoader worker decodes it: torch re-raises the BadInputError with the worker's
    traceback as its message; the CLI still prints the one original line."""
    import struct
    import zlib

    from fuzz_cases import _chunk

    root = copy_data(sod_root, tmp_path)
    mask = root / (root / "train.lst").read_text().split()[1]
    width, height = struct.unpack(">II", mask.read_bytes()[16:24])  # the IHDR's size: the image's
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    mask.write_bytes(b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", header) + _chunk(b"IDAT", zlib.compress(b"\x00" * 9))
                     + _chunk(b"IEND", b""))
    doc = tiny_config_doc(root, tmp_path / "run")
    doc["data"]["num_workers"] = 1
    cfg = write_yaml(tmp_path / "train.yaml", doc)
    code, out, err = run_cli(capsys, ["train", "-c", str(cfg), "-o", str(tmp_path / "run"), "--no-progress"])
    assert_clean_failure(code, out, err, [str(mask), "cannot be read"], [])
    assert "DataLoader worker" not in err and "Original Traceback" not in err, err


def test_bad_input_error_raised_again_by_torch_keeps_its_message():
    from inas.errors import BadInputError

    wrapped = ("Caught BadInputError in DataLoader worker process 0.\nOriginal Traceback (most recent call last):\n"
               '  File "x.py", line 1, in f\n    raise BadInputError(...)\n'
               "inas.errors.BadInputError: a.jpg: image file cannot be read\n  line 2 of it\n")
    assert str(BadInputError(wrapped)) == "a.jpg: image file cannot be read\n  line 2 of it"
    assert str(BadInputError("Caught BadInputError somewhere else")) == "Caught BadInputError somewhere else"


def test_mask_of_the_wrong_size(sod_root, tmp_path, capsys):
    from PIL import Image

    root = copy_data(sod_root, tmp_path)
    mask = root / (root / "train.lst").read_text().split()[1]
    Image.new("L", (17, 9)).save(mask)
    cfg = train_config(tmp_path, root)
    code, out, err = run_cli(capsys, ["train", "-c", str(cfg), "-o", str(tmp_path / "run")])
    assert_clean_failure(code, out, err, [str(root / "train.lst"), mask.name, "17"], [tmp_path / "run"])


def test_empty_data_set(sod_root, tmp_path, capsys):
    root = copy_data(sod_root, tmp_path)
    (root / "train.lst").write_text("", encoding="utf-8")
    cfg = train_config(tmp_path, root)
    code, out, err = run_cli(capsys, ["train", "-c", str(cfg), "-o", str(tmp_path / "run")])
    line = assert_clean_failure(code, out, err, [str(root / "train.lst")], [tmp_path / "run"])
    assert "empty" in line or "no samples" in line


# ----- a run folder read back on resume -------------------------------------------------------------------------------
SESSIONS_HEADER = "session,start_iteration,resumed_from,world_size,nodes,started_at\n"


@pytest.mark.parametrize("name, damage, fragment", [
    ("sessions.csv", lambda p: p.write_text(SESSIONS_HEADER + "x,0,,1,,1.0\n"), "line 2"),
    ("sessions.csv", lambda p: p.write_text("a,b\n1,2\n"), "expected the columns"),
    ("sessions.csv", lambda p: p.write_bytes(b"\xff\xfe\x00garbage"), "UTF-8"),
    ("sessions.csv", lambda p: p.mkdir(), "found a folder"),
    ("metrics.csv", lambda p: p.write_bytes(b"iteration\n\xff\xfe\n"), "UTF-8"),
    ("validation.csv", lambda p: p.mkdir(), "found a folder"),
    ("summary.json", lambda p: p.mkdir(), "found a folder"),
    ("checkpoint.pt", lambda p: p.symlink_to(p.name), "symbolic links"),
    ("tb", lambda p: p.write_text("x"), "found a file"),
], ids=["sessions-bad-int", "sessions-columns", "sessions-not-utf8", "sessions-folder", "metrics-not-utf8",
        "validation-folder", "summary-folder", "checkpoint-symlink-loop", "tb-file"])
def test_run_folder_damaged_before_resume(name, damage, fragment, sod_root, tmp_path, capsys):
    """The run folder's own files, read back or rewritten by a resumed session, are checked before any work: one
    error line naming the entry, the folder left as it was (they were tracebacks, some after training; a checkpoint
    that is a symlink loop silently restarted the run from iteration 0)."""
    run = tmp_path / "run"
    run.mkdir()
    (run / "metrics.csv").write_text("iteration,loss\n1,0.5\n", encoding="utf-8")
    if (run / name).exists():
        (run / name).unlink()
    damage(run / name)
    before = {p.name: (p.is_dir(), p.is_file() and p.read_bytes()) for p in run.iterdir()}
    cfg = train_config(tmp_path, sod_root)
    code, out, err = run_cli(capsys, ["train", "-c", str(cfg), "-o", str(run)])
    assert_clean_failure(code, out, err, [str(run / name), fragment], [])
    assert {p.name: (p.is_dir(), p.is_file() and p.read_bytes()) for p in run.iterdir()} == before


# ----- latency tables -------------------------------------------------------------------------------------------------
def _search(capsys, problem_root: Path, out: Path, *extra: str) -> tuple[int, str, str]:
    return run_cli(capsys, ["search", "-c", str(problem_root / "config.yaml"), "-o", str(out), "--no-dashboard",
                            *extra])


def test_latency_table_missing_blocks(problem_root, tmp_path, capsys):
    lut = tmp_path / "lut"
    shutil.copytree(problem_root / "lut", lut)
    table = pd.read_parquet(lut / f"{DEVICES[0]}.parquet")
    space = make_problem(problem_root)[0].space.build()
    # drop blocks that neither the smallest nor the largest arch uses: the whole space must be covered
    used = {k.text for a in (sample_min(space), sample_max(space)) for k in arch_blocks(a, space, (64, 64))}
    dropped = table[~table["block"].isin(used)].index[:3]
    assert len(dropped) == 3
    table.drop(index=dropped).to_parquet(lut / f"{DEVICES[0]}.parquet", index=False)
    out = tmp_path / "out"
    code, out_text, err = _search(capsys, problem_root, out, "--lut-dir", str(lut))
    line = assert_clean_failure(code, out_text, err, [f"{DEVICES[0]}.parquet", "3 of the"], [out])
    assert "missing" in line and "lut" in line


def test_latency_table_with_a_wrong_schema(problem_root, tmp_path, capsys):
    lut = tmp_path / "lut"
    shutil.copytree(problem_root / "lut", lut)
    pd.DataFrame({"layer": ["conv"], "ms": [1.0]}).to_parquet(lut / f"{DEVICES[1]}.parquet", index=False)
    out = tmp_path / "out"
    code, out_text, err = _search(capsys, problem_root, out, "--lut-dir", str(lut))
    assert_clean_failure(code, out_text, err, [f"{DEVICES[1]}.parquet", "missing columns", "latency_ms"], [out])
    (lut / f"{DEVICES[1]}.parquet").write_bytes(b"PAR1 not really parquet")
    code, out_text, err = _search(capsys, problem_root, out, "--lut-dir", str(lut))
    assert_clean_failure(code, out_text, err, [f"{DEVICES[1]}.parquet", "Parquet"], [out])


# ----- checkpoints and models -----------------------------------------------------------------------------------------
def test_checkpoint_from_a_different_space(problem_root, train_space_supernet, tmp_path, capsys):
    out = tmp_path / "out"
    code, out_text, err = _search(capsys, problem_root, out, "--supernet", str(train_space_supernet))
    assert_clean_failure(code, out_text, err, [str(train_space_supernet), "different search space"], [out])
    arch = tmp_path / "arch.json"
    arch.write_text(sample_max(make_problem(problem_root)[0].space.build()).to_json(), encoding="utf-8")
    model = tmp_path / "model.pt"
    code, out_text, err = run_cli(capsys, ["convert", "--arch", str(arch), "--supernet", str(train_space_supernet),
                                           "-c", str(problem_root / "config.yaml"), "-o", str(model)])
    assert_clean_failure(code, out_text, err, [str(arch), str(train_space_supernet), "space"], [model])


def test_onnx_file_that_is_not_onnx(problem_root, sod_root, tmp_path, capsys):
    fake = tmp_path / "model.onnx"
    fake.write_bytes(b"\x08\x07garbage that is not a protobuf model" * 8)
    out = tmp_path / "metrics"
    code, out_text, err = run_cli(capsys, ["test", str(fake), "-c", str(problem_root / "config.yaml"), "-o", str(out)])
    assert_clean_failure(code, out_text, err, [str(fake), "ONNX"], [out])
    maps = tmp_path / "maps"
    code, out_text, err = run_cli(capsys, ["predict", str(fake), str(sod_root / "images"), "-o", str(maps)])
    assert_clean_failure(code, out_text, err, [str(fake), "ONNX"], [maps])


# ----- a Ray address that does not answer -----------------------------------------------------------------------------
def _cli_subprocess(argv: list[str], timeout: float) -> tuple[int, str, str, float]:
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "inas.run", *argv], cwd=REPO, env=cli_env(), capture_output=True,
                          text=True, timeout=timeout)
    return proc.returncode, proc.stdout, proc.stderr, time.perf_counter() - start


@pytest.mark.parametrize("verb", ["search", "lut", "train"])
def test_ray_address_that_does_not_answer(verb, problem_root, tmp_path):
    out = tmp_path / "out"
    argv = [verb, "-c", str(problem_root / "config.yaml"), "-o", str(out), "--address", "127.0.0.1:1"]
    code, out_text, err, seconds = _cli_subprocess(argv, timeout=90)
    assert_clean_failure(code, out_text, err, ["--address", "127.0.0.1:1"], [out])
    assert seconds < 45, f"took {seconds:.0f} s to give up"


def test_ray_address_probe():
    import socket

    from inas.errors import BadInputError
    from inas.ray_address import check_ray_address

    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        port = server.getsockname()[1]
        check_ray_address(f"127.0.0.1:{port}")
        check_ray_address(f"ray://localhost:{port}")
    for left_to_ray in (None, "", "auto", "local"):
        check_ray_address(left_to_ray)
    for dashboard in ("http://127.0.0.1:8265", "HTTPS://head:443"):  # `ray job submit`'s address, not a cluster's
        with pytest.raises(BadInputError, match=r"^RAY_ADDRESS: .* is an HTTP address .*HOST:6379"):
            check_ray_address(dashboard, key="RAY_ADDRESS")
    start = time.perf_counter()
    with pytest.raises(BadInputError, match=r"--address: cannot reach a Ray cluster at ray://127.0.0.1:1"):
        check_ray_address("ray://127.0.0.1:1")
    assert time.perf_counter() - start < 15


def test_a_refused_token_is_named_as_such(monkeypatch):
    """ray.init reports a token the cluster refuses only as "Failed to connect to Ray cluster at IP:PORT" (the
    refusal is in the errors it chains): the line says the token was refused, with how to pass the right one."""
    import socket

    import ray

    from inas.errors import BadInputError
    from inas.ray_address import join_ray_cluster

    def refuse(**kwargs):
        try:
            raise RuntimeError("Failed to connect to GCS. Last connection error: AuthenticationError: RPC error: "
                               "InvalidAuthToken: Authentication token is missing or incorrect")
        except RuntimeError as exc:
            raise ConnectionError("Failed to connect to Ray cluster at 192.0.2.2:6379") from exc

    monkeypatch.setattr(ray, "init", refuse)
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        address = f"127.0.0.1:{server.getsockname()[1]}"
        with pytest.raises(BadInputError, match=rf"^--address: the Ray cluster at {address} refused this machine's "
                                                r"authentication token \(Ray: InvalidAuthToken\); HINT$"):
            join_ray_cluster(address, "; HINT")
        monkeypatch.setattr(ray, "init", lambda **kwargs: (_ for _ in ()).throw(ConnectionError("no GCS")))
        with pytest.raises(BadInputError, match=r"cannot connect to the Ray cluster at .* \(no GCS\); HINT$"):
            join_ray_cluster(address, "; HINT")


def test_ray_auth_token_missing_is_one_line(problem_root, tmp_path):
    """Token authentication on (RAY_AUTH_MODE=token) but no token on this machine: Ray's AuthenticationError was a
    traceback with exit 1; it is one line naming the address, with how to pass the token, exit 2."""
    import socket

    out = tmp_path / "out"
    env = {k: v for k, v in cli_env().items() if not k.startswith("RAY_AUTH_TOKEN") and k != "RAY_ADDRESS"}
    env.update({"HOME": str(tmp_path / "home"), "RAY_AUTH_MODE": "token"})  # no ~/.ray/auth_token there
    with socket.socket() as server:  # something answers at the address: Ray itself must refuse
        server.bind(("127.0.0.1", 0))
        server.listen()
        address = f"127.0.0.1:{server.getsockname()[1]}"
        proc = subprocess.run([sys.executable, "-m", "inas.run", "search", "-c", str(problem_root / "config.yaml"),
                               "-o", str(out), "--address", address], cwd=REPO, env=env, capture_output=True,
                              text=True, timeout=90)
    assert_clean_failure(proc.returncode, proc.stdout, proc.stderr, ["--address", address, "RAY_AUTH_TOKEN"], [out])


def test_dashboard_address_in_ray_address_is_one_line(problem_root, tmp_path):
    """RAY_ADDRESS left at the dashboard's URL (for `ray job submit`): one line, not Ray's four-line ValueError."""
    out = tmp_path / "out"
    env = {**cli_env(), "RAY_ADDRESS": "http://127.0.0.1:1"}
    proc = subprocess.run([sys.executable, "-m", "inas.run", "search", "-c", str(problem_root / "config.yaml"),
                           "-o", str(out)], cwd=REPO, env=env, capture_output=True, text=True, timeout=90)
    error = assert_clean_failure(proc.returncode, proc.stdout, proc.stderr, ["RAY_ADDRESS", "HOST:6379"], [out])
    assert proc.stderr.strip().endswith(error), proc.stderr  # nothing after the one line

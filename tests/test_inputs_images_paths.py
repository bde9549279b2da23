"""Images and paths as a hostile user hands them in: decompression bombs (Pillow's error and its warning), names
too long for the file system, lone surrogates, output paths of the wrong kind, `predict` with no readable image,
`data synth --force` on a folder it did not write. Each is one `error:` line and exit 2 through the CLI."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import yaml
from fuzz_cases import BOMB_ERROR_SIZE, BOMB_WARNING_SIZE, bomb_png
from PIL import Image

from inas.data.synth_sod import synthesize_sod
from inas.errors import BadInputError
from inas.images import UnreadableImage, open_image
from inas.paths import check_output_path, path_kind
from inas.run import main

BOMBS = {"error": BOMB_ERROR_SIZE, "warning": BOMB_WARNING_SIZE}


@pytest.fixture(scope="module")
def sod_root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("paths_data") / "sod"
    synthesize_sod(root, n_train=2, n_test=2, size=48, seed=0, workers=1)
    return root


def run(capsys, argv: list[str]) -> tuple[int, str]:
    code = main(argv)
    captured = capsys.readouterr()
    return code, captured.out + captured.err


def one_error(code: int, text: str, *names: str) -> str:
    assert code == 2, text
    assert "Traceback" not in text and "Warning" not in text, text
    errors = [line for line in text.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, text
    for name in names:
        assert name in text[text.index(errors[0]):], text
    return errors[0]


@pytest.mark.parametrize("kind", sorted(BOMBS))
def test_open_image_refuses_bombs(tmp_path, kind):
    path = bomb_png(tmp_path / "bomb.png", *BOMBS[kind])
    with pytest.raises(UnreadableImage, match="decompression bomb"):
        open_image(path)


@pytest.mark.parametrize("kind", sorted(BOMBS))
def test_bomb_in_a_list_is_a_listed_problem(sod_root, tmp_path, capsys, kind):
    root = tmp_path / "data"
    shutil.copytree(sod_root, root)
    mask = root / (root / "train.lst").read_text().split()[1]
    bomb_png(mask, *BOMBS[kind])
    code, text = run(capsys, ["data", "check", "--root", str(root), "--list", "train.lst"])
    one_error(code, text, str(root / "train.lst"), mask.name, "decompression bomb")


@pytest.mark.parametrize("kind", sorted(BOMBS))
def test_bomb_in_evaluate(tmp_path, capsys, kind):
    pred, gt = tmp_path / "pred", tmp_path / "gt"
    pred.mkdir()
    gt.mkdir()
    Image.fromarray(np.zeros((8, 8), np.uint8)).save(gt / "a.png")
    bomb_png(pred / "a.png", *BOMBS[kind])
    out = tmp_path / "m.csv"
    code, text = run(capsys, ["evaluate", "--pred", str(pred), "--gt", str(gt), "-o", str(out), "--no-progress"])
    one_error(code, text, "a.png", "decompression bomb")
    assert not out.exists()


def test_name_too_long_in_a_list(sod_root, tmp_path, capsys):
    root = tmp_path / "data"
    shutil.copytree(sod_root, root)
    (root / "long.lst").write_text("images/" + "x" * 300 + ".jpg masks/m.png\n")
    code, text = run(capsys, ["data", "check", "--root", str(root), "--list", "long.lst"])
    one_error(code, text, "long.lst", "line 1", "File name too long")


def test_paths_too_long_or_unencodable(tmp_path):
    with pytest.raises(BadInputError, match="too long"):
        path_kind(tmp_path / ("y" * 300))
    with pytest.raises(BadInputError, match="lone surrogate"):
        path_kind(tmp_path / "a\ud800b")
    with pytest.raises(BadInputError, match="NUL"):
        path_kind(tmp_path / "a\x00b")
    assert path_kind(tmp_path / "none") == "missing" and path_kind(tmp_path) == "folder"


def test_config_paths_with_a_lone_surrogate(sod_root, tmp_path, capsys):
    config = tmp_path / "c.yaml"
    config.write_text('data: {root: "' + str(sod_root) + '/\\ud800"}\n', encoding="utf-8")
    assert "\ud800" in str(yaml.safe_load(config.read_text())["data"]["root"])
    code, text = run(capsys, ["data", "check", "-c", str(config)])
    one_error(code, text, str(config), "data.root", "lone surrogate", "\\ud800")


def _occupied_output(tmp_path: Path, wrong: str) -> tuple[Path, list[str]]:
    """`tmp_path/out` made a `wrong` ("folder" or "file"), and the names in `tmp_path` before the command."""
    out = tmp_path / "out"
    if wrong == "folder":
        out.mkdir()
    else:
        out.write_text("x")
    return out, sorted(p.name for p in tmp_path.iterdir())


@pytest.mark.parametrize("argv, wrong", [
    (["evaluate", "--pred", "P", "--gt", "G", "-o", "OUT"], "folder"),
    (["predict", "MODEL", "IN", "-o", "OUT"], "file"),
    (["data", "synth", "--out", "OUT", "--n-train", "1", "--n-test", "1", "--size", "32", "--workers", "1"], "file"),
])
def test_output_path_of_the_wrong_kind(tmp_path, capsys, argv, wrong):
    from test_deploy_predict import _model

    from inas.deploy.model_file import save_model_file

    save_model_file(_model(1, 3), tmp_path / "MODEL", task="sod", input_hw=(64, 64))
    (tmp_path / "IN").mkdir()
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(tmp_path / "IN" / "a.png")
    out, before = _occupied_output(tmp_path, wrong)
    argv = [str(out) if a == "OUT" else str(tmp_path / a) if a in ("P", "G", "IN", "MODEL") else a for a in argv]
    code, text = run(capsys, argv)
    one_error(code, text, str(out))
    assert sorted(p.name for p in tmp_path.iterdir()) == before


@pytest.mark.parametrize("argv, wrong", [
    (["train", "-c", "CFG", "-o", "OUT"], "file"),
    (["lut", "-c", "CFG", "-o", "OUT", "--in-process"], "file"),
    (["lut", "validate", "-c", "CFG", "-o", "OUT", "--in-process"], "file"),
    (["test", "MODEL", "-c", "CFG", "-o", "OUT"], "file"),
    (["convert", "--arch", "ARCH", "--supernet", "SUPERNET", "-o", "OUT"], "folder"),
    (["export", "MODEL", "-o", "OUT"], "folder"),
], ids=["train", "lut", "lut-validate", "test", "convert", "export"])
def test_output_path_of_the_wrong_kind_before_any_work(tmp_path, capsys, argv, wrong):
    """The verbs that write a run folder or a model file refuse an output of the wrong kind at once (they used to
    do all their work first and then fail in a traceback on mkdir / rename)."""
    (tmp_path / "CFG").write_text("task: sod\ndata: {root: nowhere}\n", encoding="utf-8")
    for name in ("MODEL", "ARCH", "SUPERNET"):
        (tmp_path / name).write_text("never read\n", encoding="utf-8")
    out, before = _occupied_output(tmp_path, wrong)
    code, text = run(capsys, [str(out) if a == "OUT" else str(tmp_path / a) if a.isupper() else a for a in argv])
    line = one_error(code, text, str(out))
    assert f"is a {wrong}, not a {'file' if wrong == 'folder' else 'folder'}" in line
    assert sorted(p.name for p in tmp_path.iterdir()) == before


@pytest.mark.parametrize("argv", [
    ["evaluate", "--pred", "P", "--gt", "G", "-o", "OUT/metrics.csv"],
    ["predict", "MODEL", "IN", "-o", "OUT/maps"],
    ["data", "synth", "--out", "OUT/data", "--n-train", "1", "--n-test", "1", "--size", "32", "--workers", "1"],
    ["demo", "--quick", "-o", "OUT/demo"],
    ["convert", "--arch", "ARCH", "--supernet", "SUPERNET", "-o", "OUT/m.pt"],
], ids=["evaluate", "predict", "synth", "demo", "convert"])
def test_output_path_below_a_file_is_refused_before_any_work(tmp_path, capsys, argv):
    """An output whose parent is a file was a FileExistsError / NotADirectoryError traceback at the first write,
    after the work (evaluate scored every image, convert sliced the model first)."""
    from test_deploy_predict import _model

    from inas.deploy.model_file import save_model_file

    save_model_file(_model(1, 3), tmp_path / "MODEL", task="sod", input_hw=(64, 64))
    for name in ("P", "G", "IN"):
        (tmp_path / name).mkdir()
        Image.fromarray(np.full((8, 8), 255, np.uint8)).save(tmp_path / name / "a.png")
    for name in ("ARCH", "SUPERNET"):
        (tmp_path / name).write_text("never read\n", encoding="utf-8")
    (tmp_path / "out").write_text("a file\n", encoding="utf-8")
    before = sorted(p.name for p in tmp_path.iterdir())
    argv = [a.replace("OUT", str(tmp_path / "out")) if a.startswith("OUT") else str(tmp_path / a)
            if a in ("P", "G", "IN", "MODEL", "ARCH", "SUPERNET") else a for a in argv]
    code, text = run(capsys, argv)
    assert "is a file, not a folder" in one_error(code, text, str(tmp_path / "out"))
    assert sorted(p.name for p in tmp_path.iterdir()) == before


def test_a_full_disk_is_one_line_naming_the_output(tmp_path, capsys, monkeypatch):
    """ENOSPC while writing an output: one line naming it, exit 1, no temporary file left (was a traceback)."""
    import errno
    import os

    import inas.io

    for name in ("P", "G"):
        (tmp_path / name).mkdir()
        Image.fromarray(np.full((8, 8), 255, np.uint8)).save(tmp_path / name / "a.png")

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(inas.io.os, "replace", full)
    out = tmp_path / "metrics.csv"
    code, text = run(capsys, ["evaluate", "--pred", str(tmp_path / "P"), "--gt", str(tmp_path / "G"), "-o", str(out),
                              "--no-progress"])
    assert code == 1 and "Traceback" not in text, text
    errors = [line for line in text.splitlines() if line.startswith("error:")]
    assert errors == [f"error: cannot write {out}: {os.strerror(errno.ENOSPC)} (outputs are written atomically: "
                      "none is half-written; make room and run the same command again)"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["G", "P"]


def test_test_save_maps_into_a_file_is_refused_before_any_work(tmp_path, capsys):
    (tmp_path / "CFG").write_text("task: sod\ndata: {root: nowhere}\n", encoding="utf-8")
    (tmp_path / "MODEL").write_text("never read\n", encoding="utf-8")
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "maps").write_text("x")
    code, text = run(capsys, ["test", str(tmp_path / "MODEL"), "-c", str(tmp_path / "CFG"), "-o",
                              str(tmp_path / "out"), "--save-maps"])
    assert "is a file, not a folder" in one_error(code, text, str(tmp_path / "out" / "maps"))


def test_check_output_path(tmp_path):
    assert check_output_path(tmp_path / "nonexistent" / "x.csv", "file").name == "x.csv"
    (tmp_path / "f").write_text("x")
    with pytest.raises(BadInputError, match="cannot be created: .*f is a file, not a folder"):
        check_output_path(tmp_path / "f" / "sub" / "x.csv", "file")
    with pytest.raises(BadInputError, match="is a folder, not a file"):
        check_output_path("/", "file")


def test_predict_leaves_no_folder_when_no_image_is_read(tmp_path, capsys):
    from test_deploy_predict import _model

    from inas.deploy.model_file import save_model_file

    model = tmp_path / "m.pt"
    save_model_file(_model(1, 3), model, task="sod", input_hw=(64, 64))
    images = tmp_path / "images"
    images.mkdir()
    (images / "a.png").write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(100))
    bomb_png(images / "b.png", *BOMB_WARNING_SIZE)
    out = tmp_path / "maps"
    code, text = run(capsys, ["predict", str(model), str(images), "-o", str(out), "--no-progress"])
    one_error(code, text, "no image could be read")
    assert "decompression bomb" in text and not out.exists()


def test_synth_force_refuses_a_folder_it_did_not_write(tmp_path, capsys):
    out = tmp_path / "mine"
    out.mkdir()
    (out / "thesis.tex").write_text("precious")
    argv = ["data", "synth", "--out", str(out), "--n-train", "1", "--n-test", "1", "--size", "32", "--workers", "1",
            "--force"]
    code, text = run(capsys, argv)
    one_error(code, text, str(out), ".inas-synth.json")
    assert (out / "thesis.tex").read_text() == "precious"


@pytest.mark.parametrize("option, value", [("--seed", "-1"), ("--seed", str(2**32)), ("--size", "100000"),
                                           ("--size", "8"), ("--n-train", "0"), ("--n-test", "10000000")])
def test_synth_options_out_of_bounds(tmp_path, capsys, option, value):
    out = tmp_path / "set"
    argv = ["data", "synth", "--out", str(out), "--n-train", "1", "--n-test", "1", "--size", "32", "--workers", "1"]
    code, text = run(capsys, [*argv, option, value])
    one_error(code, text, option, value)
    assert not out.exists() and list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("option, value", [("--num-classes", "5000"), ("--threads", "100000"),
                                           ("--ignore-index", str(10**20))])
def test_evaluate_options_out_of_bounds(tmp_path, capsys, option, value):
    for name in ("pred", "gt"):
        (tmp_path / name).mkdir()
        Image.fromarray(np.zeros((8, 8), np.uint8)).save(tmp_path / name / "a.png")
    out = tmp_path / "m.csv"
    code, text = run(capsys, ["evaluate", "--task", "seg", "--pred", str(tmp_path / "pred"), "--gt",
                              str(tmp_path / "gt"), "-o", str(out), "--no-progress", option, value])
    one_error(code, text, option, value)
    assert not out.exists()


def test_config_path_too_long(tmp_path, capsys):
    config = tmp_path / "c.yaml"
    config.write_text("data: {root: /tmp/" + "9" * 5000 + "}\n", encoding="utf-8")
    code, text = run(capsys, ["data", "check", "-c", str(config)])
    line = one_error(code, text, str(config), "data.root", "longer than a path can be")
    assert len(line) < 400


def test_analyze_text_that_is_not_utf8(tmp_path, capsys):
    """Parquet does not check UTF-8 on reading: the reader validates, else the report writer fails late."""
    import pyarrow as pa
    import pyarrow.parquet as pq
    from test_analyze_report import make_evaluations

    frame = make_evaluations("random", 5, seed=3)
    table = pa.Table.from_pandas(frame, preserve_index=False)
    broken = pa.array([b"\xeb\x00bad"] * len(frame), type=pa.binary()).view(pa.string())
    table = table.set_column(table.schema.get_field_index("arch"), "arch", broken)
    result = tmp_path / "result"
    result.mkdir()
    pq.write_table(table, result / "evaluations.parquet")
    code, text = run(capsys, ["analyze", str(result), "-o", str(tmp_path / "report")])
    one_error(code, text, "evaluations.parquet", "Parquet")
    assert not (tmp_path / "report").exists()


def test_infinite_objectives_neither_hang_nor_pass(tmp_path, capsys):
    """An infinite latency in evaluations.parquet hung the Pareto sort (found by the slow fuzz)."""
    import pandas as pd
    from test_analyze_report import make_evaluations

    from inas.search.pareto import non_dominated_rank

    frame = make_evaluations("random", 6, seed=3)
    frame.loc[:, "latency_ms__cpu"] = float("inf")
    ranks = non_dominated_rank(frame, {"latency_ms__cpu": "min", "max_fmeasure": "max"})
    assert ranks.notna().all() and (ranks == 0).sum() >= 1
    result = tmp_path / "result"
    result.mkdir()
    frame.to_parquet(result / "evaluations.parquet", index=False)
    code, text = run(capsys, ["analyze", str(result), "-o", str(tmp_path / "report")])
    one_error(code, text, "evaluations.parquet", "latency_ms__cpu", "infinite")
    assert isinstance(frame, pd.DataFrame) and not (tmp_path / "report").exists()

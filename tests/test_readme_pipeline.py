"""Slow: the README's pipeline blocks run as written, in a temporary copy of the repository (relative paths, the
shipped configs), so the README cannot drift from the code. Only iterations, budgets and counts are shrunk, and only
through documented CLI flags (`SHRINK`); `<arch_id>` becomes an architecture of the search's front and
`my_images/` a folder of a few images."""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from cli_subprocess import REPO, cli_env

README = REPO / "README.md"
# (verb prefix, flags appended): iterations, budgets and counts only
SHRINK = [
    ("data synth --task sod", "--n-train 24 --n-test 6"),
    ("data synth --task seg", "--n-train 8 --n-test 3"),
    ("train", "--iterations 2 --no-progress"),
    ("lut validate", "--samples 3 --rounds 1 --runs 2 --no-progress"),
    ("lut", "--runs 2 --no-progress"),
    ("search", "--budget 2 --no-dashboard"),
    ("convert", "--bn-batches 2"),
]


def readme_block(after_heading: str, nth: int = 0) -> list[str]:
    """The commands of the `nth` bash block after `after_heading`, continuation lines joined, comments dropped."""
    text = README.read_text(encoding="utf-8")
    section = text[text.index(after_heading):]
    block = re.findall(r"```bash\n(.*?)```", section, flags=re.S)[nth]
    commands = []
    for line in block.replace("\\\n", " ").splitlines():
        line = re.sub(r"\s+#.*$", "", line).strip()
        if line and not line.startswith("#"):
            commands.append(line)
    return commands


def shrink(command: str) -> str:
    body = command.removeprefix("python -m inas.run ").strip()
    for prefix, flags in SHRINK:
        if body.startswith(prefix):
            return f"{command} {flags}"
    return command


def run_block(commands: list[str], workdir: Path, search_dir: str) -> dict[str, str]:
    """Run the commands in order; returns each verb's stdout (the last run of a verb wins)."""
    outputs = {}
    for command in commands:
        command = shrink(command)
        if "<arch_id>" in command:
            arch_id = sorted((workdir / search_dir / "front").glob("*.json"))[0].stem
            command = command.replace("<arch_id>", arch_id)
        argv = shlex.split(command)
        assert argv[:3] == ["python", "-m", "inas.run"], command
        done = subprocess.run([sys.executable, *argv[1:]], cwd=workdir, env=cli_env(), capture_output=True,
                              text=True, timeout=900)
        assert done.returncode == 0, f"{command}\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
        outputs[argv[3]] = done.stdout
    return outputs


@pytest.fixture
def repo_copy(tmp_path):
    """The tracked files of the repository, copied (a fresh clone's content, without runs/ or data/)."""
    files = subprocess.run(["git", "ls-files", "-z"], cwd=REPO, capture_output=True, check=True).stdout
    copy = tmp_path / "repo"
    for name in files.decode().split("\0"):
        if name and (REPO / name).is_file():
            (copy / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / name, copy / name)
    return copy


@pytest.mark.slow
def test_readme_sod_pipeline_as_written(repo_copy):
    commands = readme_block("## The pipeline")
    assert any(c.startswith("python -m inas.run search") for c in commands)
    images = repo_copy / "my_images"
    predict = [c for c in commands if " predict " in c]
    main = [c for c in commands if " predict " not in c]
    run_block(main, repo_copy, "runs/sod_demo_search")
    images.mkdir()
    for path in sorted((repo_copy / "data/synth_sod/images").glob("*.jpg"))[:2]:
        shutil.copy2(path, images / path.name)
    run_block(predict, repo_copy, "runs/sod_demo_search")
    assert len(list((repo_copy / "my_maps").glob("*.png"))) == 2
    assert (repo_copy / "runs/sod_demo_report/report.md").is_file()


@pytest.mark.slow
def test_readme_segmentation_pipeline_as_written(repo_copy):
    commands = readme_block("Segmentation is the same pipeline")
    assert any("seg_demo.yaml" in c for c in commands)
    outputs = run_block(commands, repo_copy, "runs/seg_demo_search")
    assert (repo_copy / "runs/seg_model.onnx").is_file()
    # convert and test agree on the same model and data: the stand-alone model's mIoU in convert's consistency
    # check (PyTorch) equals the ONNX model's mIoU that `test` writes (same input size, same validation list)
    header = next(line for line in outputs["convert"].splitlines() if line.strip().startswith("path"))
    row = next(line for line in outputs["convert"].splitlines() if "stand-alone model" in line)
    converted = float(row.split()[-len(header.split()[1:]):][header.split()[1:].index("miou")])
    tested = pd.read_csv(repo_copy / "runs/seg_model.onnx-test/metrics.csv")["miou"].item()
    assert abs(converted - tested) < 1e-3, (converted, tested)

"""`train --cluster`: everything the workers read is checked on the driver before Ray starts (one line, exit 2, Ray
never imported), and a bad input a worker still meets ends the run without Ray Train retrying it (slow test)."""

from __future__ import annotations

import copy
import subprocess
import sys
from types import SimpleNamespace

import pytest
import torch
from cli_subprocess import REPO, cli_env
from test_train_support import tiny_config, tiny_config_doc, write_config

from inas.config import parse_config
from inas.data.synth_sod import synthesize_sod
from inas.errors import BadInputError
from inas.train.cluster import _agree_on_setup, _check_precision, capacity_shortfall, check_inputs
from inas.train.state import CHECKPOINT_NAME


@pytest.fixture(scope="module")
def sod_root(tmp_path_factory):
    out = tmp_path_factory.mktemp("cluster_checks") / "sod"
    synthesize_sod(out, n_train=8, n_test=2, size=32, seed=0, workers=1)
    return out


def _config(sod_root, tmp_path, **train):
    doc = tiny_config_doc(sod_root, tmp_path / "run", **train)
    doc["train"]["cluster"] = {"workers": 2}
    return doc


def test_a_good_config_passes(sod_root, tmp_path):
    check_inputs(parse_config(_config(sod_root, tmp_path)), tmp_path / "run", resume=False)


def test_a_missing_image_is_named_with_its_list_line(sod_root, tmp_path):
    doc = _config(sod_root, tmp_path)
    lines = (sod_root / "train.lst").read_text().splitlines()
    (tmp_path / "broken.lst").write_text("\n".join(lines + ["images/none.jpg masks/none.png"]) + "\n")
    doc["data"]["train_list"] = str(tmp_path / "broken.lst")
    with pytest.raises(BadInputError, match=r"(?s)broken.lst.*line 9: .*none.jpg: file not found"):
        check_inputs(parse_config(doc), tmp_path / "run", resume=False)


def test_batch_larger_than_a_worker_shard(sod_root, tmp_path):
    doc = _config(sod_root, tmp_path)
    doc["train"]["cluster"]["workers"] = 3  # 8 samples / 3 workers < batch 4
    with pytest.raises(BadInputError, match="data.batch_size: the training list has 8 sample"):
        check_inputs(parse_config(doc), tmp_path / "run", resume=False)


def test_damaged_or_foreign_checkpoint_in_the_run_folder(sod_root, tmp_path):
    config = parse_config(_config(sod_root, tmp_path))
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / CHECKPOINT_NAME).write_bytes(b"not a checkpoint")
    with pytest.raises(BadInputError, match=f"{run_dir / CHECKPOINT_NAME}: not a training checkpoint"):
        check_inputs(config, run_dir, resume=False)
    torch.save({"format": "inas-train-checkpoint", "version": 2, "iteration": -3}, run_dir / CHECKPOINT_NAME)
    with pytest.raises(BadInputError, match=f"{run_dir / CHECKPOINT_NAME}: iteration"):
        check_inputs(config, run_dir, resume=True)


def test_checkpoint_of_another_run_and_missing_resume(sod_root, tmp_path):
    from inas.train.loop import train_supernet

    other = tmp_path / "other"
    doc = copy.deepcopy(tiny_config_doc(sod_root, other, iterations=1, validate_at_end=False))
    doc["space"]["stages"]["stage_5"]["widths"] = [112]
    train_supernet(parse_config(doc), other, progress=False)
    config = parse_config(_config(sod_root, tmp_path))
    with pytest.raises(BadInputError, match="different search space"):
        check_inputs(config, other, resume=False)
    with pytest.raises(BadInputError, match="--resume: no checkpoint.pt"):
        check_inputs(config, tmp_path / "empty", resume=True)


def test_initial_weights_are_read_on_the_driver(sod_root, tmp_path):
    (tmp_path / "w.pt").write_bytes(b"\x80garbage")
    config = parse_config(_config(sod_root, tmp_path, init_checkpoint=str(tmp_path / "w.pt")))
    with pytest.raises(BadInputError, match=r"w.pt: train.init_checkpoint"):
        check_inputs(config, tmp_path / "run", resume=False)


def test_fp16_needs_gpu_workers():
    config = tiny_config(REPO, REPO, precision="fp16")
    with pytest.raises(BadInputError, match="train.precision: fp16 training needs GPU workers"):
        _check_precision(config, use_gpu=False)
    _check_precision(config, use_gpu=True)


def test_capacity_shortfall_of_the_worker_group():
    config = tiny_config(REPO, REPO)
    config.train.cluster.workers, config.train.cluster.cpus_per_worker = 3, 1.0
    assert capacity_shortfall(config, False, {"CPU": 3.0}) is None
    assert capacity_shortfall(config, False, {"CPU": 2.0}) == (
        "the worker group of 3 workers (train.cluster.cpus_per_worker 1) needs 3 CPU (the cluster has 2)")
    assert capacity_shortfall(config, True, {"CPU": 8.0, "GPU": 1.0}).endswith("needs 3 GPU (the cluster has 1)")


def test_a_worker_group_larger_than_the_local_ray_is_refused(sod_root, tmp_path, monkeypatch):
    """A local Ray (`--address local`, or none running) cannot grow: Ray Train waited forever for the group."""
    import ray

    import inas.train.cluster as cluster

    closed: list[int] = []
    connection = SimpleNamespace(local=True, close=lambda: closed.append(1))
    monkeypatch.setattr(cluster, "init_ray", lambda *a, **k: connection)
    monkeypatch.setattr(ray, "cluster_resources", lambda: {"CPU": 2.0})
    doc = _config(sod_root, tmp_path)
    doc["train"]["cluster"]["cpus_per_worker"] = 1.5
    with pytest.raises(BadInputError, match=r"^train.cluster.workers: the worker group of 2 workers .* needs 3 CPU "
                                            r"\(the cluster has 2\), more than this machine's local Ray offers"):
        cluster.train_on_ray(parse_config(doc), tmp_path / "run", progress=False)
    assert closed and not (tmp_path / "run").exists()


def test_ctrl_c_of_a_cluster_run_exits_130_saying_how_to_go_on(sod_root, tmp_path, monkeypatch, capsys):
    """Ray Train's SIGINT handler aborts the run and its driver's wait ends in SystemExit: `train --cluster` exited 1
    without a word. It says it was stopped and how to continue, exit 130."""
    import ray

    import inas.train.cluster as cluster
    from inas.run import main

    def interrupted_fit():
        raise SystemExit(1)

    connection = SimpleNamespace(local=False, close=lambda: None)
    monkeypatch.setattr(cluster, "init_ray", lambda *a, **k: connection)
    monkeypatch.setattr(ray, "cluster_resources", lambda: {"CPU": 8.0})
    monkeypatch.setattr(cluster, "_torch_trainer", lambda *a: SimpleNamespace(fit=interrupted_fit))
    config_path = write_config(tmp_path / "c.yaml", _config(sod_root, tmp_path))
    code = main(["train", "-c", str(config_path), "--cluster", "--no-progress", "-o", str(tmp_path / "run")])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 130 and err[-1].startswith("interrupted: train: stopped before its last iteration (Ctrl-C)"), err
    assert "running the same command again continues" in err[-1]


def test_setup_agreement_without_and_with_a_process_group(tmp_path):
    assert _agree_on_setup(None) is None and _agree_on_setup("x: bad") == "x: bad"
    torch.distributed.init_process_group("gloo", init_method=f"file://{tmp_path}/init", rank=0, world_size=1)
    try:
        assert _agree_on_setup("x: bad") == "x: bad" and _agree_on_setup(None) is None
    finally:
        torch.distributed.destroy_process_group()


def test_cli_bad_path_is_one_line_before_ray_is_imported(sod_root, tmp_path):
    doc = _config(sod_root, tmp_path)
    doc["data"]["val_list"] = "missing.lst"
    config_path = write_config(tmp_path / "c.yaml", doc)
    code = ("import sys; from inas.run import main; "
            f"rc = main(['train', '-c', {str(config_path)!r}, '--cluster', '--no-progress']); "
            "print('ray imported' if 'ray' in sys.modules else 'no ray'); sys.exit(rc)")
    done = subprocess.run([sys.executable, "-c", code], env=cli_env(), cwd=REPO, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 2, done.stderr[-2000:]
    assert done.stderr.count("\n") == 1 and "missing.lst" in done.stderr and "Traceback" not in done.stderr
    assert done.stdout.strip() == "no ray"


@pytest.mark.slow
def test_worker_input_error_ends_the_run_without_retry(sod_root, tmp_path, monkeypatch):
    """The driver check is skipped (as if the workers saw other files than the driver): the workers refuse the
    damaged checkpoint in their set-up, agree, end normally, and the driver raises the BadInputError, not Ray's
    'training failed' after max_failures retries."""
    import inas.train.cluster as cluster

    monkeypatch.setattr(cluster, "check_inputs", lambda *args: None)
    doc = _config(sod_root, tmp_path)
    doc["train"]["cluster"]["max_failures"] = 3
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    torch.save({"format": "inas-train-checkpoint", "version": 2, "iteration": "x"}, run_dir / CHECKPOINT_NAME)
    with pytest.raises(BadInputError, match=f"worker refused its input: {run_dir / CHECKPOINT_NAME}: iteration"):
        cluster.train_on_ray(parse_config(doc), run_dir, progress=False)
    assert not (run_dir / "metrics.csv").exists()

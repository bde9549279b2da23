"""The local training loop on a tiny space and tiny synthetic data: run folder, resume, initial weights, errors."""

from __future__ import annotations

import csv
import shutil

import pytest
import torch
from test_train_support import TINY_SPACE, tiny_config, tiny_config_doc, write_config

from inas.data.synth_sod import synthesize_sod
from inas.errors import BadInputError
from inas.nn import Supernet, load_supernet, space_spec
from inas.run import main as cli_main
from inas.space import inas_space
from inas.train import loop
from inas.train.context import LocalContext
from inas.train.loop import train_supernet
from inas.train.runlog import read_sessions
from inas.train.state import CHECKPOINT_NAME, load_train_checkpoint
from inas.train.summary import read_train_summary


@pytest.fixture(scope="module")
def sod_root(tmp_path_factory):
    out = tmp_path_factory.mktemp("train_loop") / "sod"
    synthesize_sod(out, n_train=12, n_test=3, size=64, seed=0, workers=1)
    return out


@pytest.fixture(scope="module")
def finished_run(sod_root, tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("runs") / "full"
    result = train_supernet(tiny_config(sod_root, run_dir), run_dir, progress=False)
    return run_dir, result


def _rows(path):
    with path.open(newline="") as handle:
        return list(csv.DictReader(handle))


def test_run_folder_contents(finished_run):
    run_dir, result = finished_run
    assert result.iterations == 4 and result.start_iteration == 0
    for name in ("checkpoint.pt", "supernet.pt", "metrics.csv", "validation.csv", "summary.json", "config.yaml",
                 "validation_archs.json", "sessions.csv"):
        assert (run_dir / name).is_file(), name
    assert list((run_dir / "tb").iterdir())
    rows = _rows(run_dir / "metrics.csv")
    assert [int(r["iteration"]) for r in rows] == [1, 2, 3, 4]
    assert all(float(r["loss_max"]) > 0 and float(r["images_per_s"]) > 0 for r in rows)
    assert float(rows[0]["lr"]) == pytest.approx(2e-4 * 2 / 2)  # after step 1 of a 2-step warm-up
    val = _rows(run_dir / "validation.csv")
    assert [(r["iteration"], r["subnet"]) for r in val] == [("4", "max"), ("4", "min"), ("4", "random")]
    assert set(result.validation) == {"max", "min", "random"}
    assert 0 <= result.validation["max"]["maxF"] <= 1
    supernet = load_supernet(run_dir / "supernet.pt")
    assert space_spec(supernet.space) == space_spec(tiny_config(run_dir, run_dir).space.build())
    assert supernet.output_levels == (0, 1, 2, 3, 4) and supernet.num_classes == 1
    checkpoint = load_train_checkpoint(run_dir / CHECKPOINT_NAME)
    assert checkpoint.iteration == 4
    for key, value in supernet.state_dict().items():
        assert torch.equal(value, checkpoint.model[key]), key


class _Interrupt(Exception):
    pass


class _DyingContext(LocalContext):
    """Stops the run (like a kill) when iteration `at` reports."""

    def __init__(self, at: int) -> None:
        super().__init__(torch.device("cpu"))
        self.at = at

    def report(self, metrics, checkpoint=None):
        if metrics.get("iteration") == self.at:
            raise _Interrupt


def test_resume_after_interruption_matches_uninterrupted_run(sod_root, finished_run, tmp_path):
    reference_dir, _ = finished_run
    config = tiny_config(sod_root, tmp_path)
    with pytest.raises(_Interrupt):
        train_supernet(config, tmp_path, progress=False, context=_DyingContext(at=3))
    assert load_train_checkpoint(tmp_path / CHECKPOINT_NAME).iteration == 2
    assert [int(r["iteration"]) for r in _rows(tmp_path / "metrics.csv")] == [1, 2, 3]
    result = train_supernet(config, tmp_path, resume=True, progress=False)
    assert (result.start_iteration, result.iterations) == (2, 4)
    assert [int(r["iteration"]) for r in _rows(tmp_path / "metrics.csv")] == [1, 2, 3, 4]
    sessions = read_sessions(tmp_path)  # the history of starts: never truncated
    assert [(s.number, s.start_iteration, s.resumed_from, s.world_size, s.nodes) for s in sessions] == [
        (1, 0, "", 1, ()), (2, 2, "run_folder", 1, ())]
    assert sessions[0].started_at <= sessions[1].started_at
    resumed = load_supernet(tmp_path / "supernet.pt").state_dict()
    reference = load_supernet(reference_dir / "supernet.pt").state_dict()
    for key, value in reference.items():
        assert torch.equal(value, resumed[key]), key
    reference_rows = _rows(reference_dir / "metrics.csv")
    resumed_rows = _rows(tmp_path / "metrics.csv")
    assert [r["loss"] for r in resumed_rows] == [r["loss"] for r in reference_rows]


class _HandingContext(LocalContext):
    """Hands over `handed` as the runner's checkpoint (Ray's last registered report); with `keep_at`, copies the
    checkpoint reported at that iteration to `handed` and stops the run at iteration `stop_at`."""

    def __init__(self, handed, keep_at=None, stop_at=None) -> None:
        super().__init__(torch.device("cpu"))
        self.handed, self.keep_at, self.stop_at = handed, keep_at, stop_at

    def latest_checkpoint(self):
        return self.handed if self.handed.exists() else None

    def report(self, metrics, checkpoint=None):
        if checkpoint is not None and metrics.get("iteration") == self.keep_at:
            shutil.copy2(checkpoint, self.handed)
        if metrics.get("iteration") == self.stop_at:
            raise _Interrupt


def test_restart_continues_from_the_later_of_the_runner_and_run_folder_checkpoints(sod_root, tmp_path):
    """Ray registers a checkpoint once every rank has reported it: a node lost after rank 0 wrote checkpoint.pt
    leaves Ray's checkpoint behind. The restart continues from the run folder's (iteration 3, not Ray's 1), and
    from Ray's when the run folder's is not newer."""
    config = tiny_config(sod_root, tmp_path / "run", checkpoint_every=1, validate_at_end=False)
    run_dir, handed = tmp_path / "run", tmp_path / "handed.pt"
    with pytest.raises(_Interrupt):
        train_supernet(config, run_dir, progress=False, context=_HandingContext(handed, keep_at=1, stop_at=3))
    assert load_train_checkpoint(handed).iteration == 1
    assert load_train_checkpoint(run_dir / CHECKPOINT_NAME).iteration == 3
    result = train_supernet(config, run_dir, progress=False, context=_HandingContext(handed))
    assert (result.start_iteration, result.iterations) == (3, 4)
    shutil.copy2(run_dir / CHECKPOINT_NAME, handed)  # now equal: Ray's copy is used
    longer = tiny_config(sod_root, run_dir, checkpoint_every=1, validate_at_end=False, iterations=5)
    assert train_supernet(longer, run_dir, progress=False, context=_HandingContext(handed)).start_iteration == 4
    assert [(s.start_iteration, s.resumed_from) for s in read_sessions(run_dir)] == [
        (0, ""), (3, "run_folder"), (4, "ray")]
    assert [int(r["iteration"]) for r in _rows(run_dir / "metrics.csv")] == [1, 2, 3, 4, 5]


class _DisagreeingContext(LocalContext):
    """Another rank reports a different start iteration (it read another checkpoint)."""

    def gather(self, value):
        node, start = value
        return [value, (node, start + 2)]


def test_ranks_continuing_from_different_checkpoints_stop_before_any_step(sod_root, tmp_path):
    config = tiny_config(sod_root, tmp_path)
    with pytest.raises(RuntimeError, match=r"different checkpoints \(iterations \[0, 2\]\).*every node sees"):
        train_supernet(config, tmp_path, progress=False, context=_DisagreeingContext(torch.device("cpu")))
    assert not (tmp_path / "metrics.csv").read_text().strip().count("\n")  # the header only: no step ran
    assert read_sessions(tmp_path) == []


def test_resume_with_a_data_worker_is_bit_exact(sod_root, finished_run, tmp_path):
    """num_workers 1: interrupted at iteration 3 (checkpoint at 2) and resumed, the weights equal those of the
    uninterrupted run with 1 worker, and those of the uninterrupted run with no worker (`finished_run`): the data
    order and augmentation depend on the iteration only."""
    doc = tiny_config_doc(sod_root, tmp_path)
    doc["data"]["num_workers"] = 1
    from inas.config import parse_config

    config = parse_config(doc)
    train_supernet(config, tmp_path / "straight", progress=False)
    with pytest.raises(_Interrupt):
        train_supernet(config, tmp_path / "resumed", progress=False, context=_DyingContext(at=3))
    assert load_train_checkpoint(tmp_path / "resumed" / CHECKPOINT_NAME).iteration == 2
    result = train_supernet(config, tmp_path / "resumed", progress=False)
    assert (result.start_iteration, result.iterations) == (2, 4)
    resumed = load_supernet(tmp_path / "resumed" / "supernet.pt").state_dict()
    straight = load_supernet(tmp_path / "straight" / "supernet.pt").state_dict()
    no_worker = load_supernet(finished_run[0] / "supernet.pt").state_dict()
    for key, value in straight.items():
        assert torch.equal(value, resumed[key]), key
        assert torch.equal(value, no_worker[key]), key


def test_finished_run_is_not_trained_again(sod_root, finished_run):
    run_dir, _ = finished_run
    before = (run_dir / CHECKPOINT_NAME).stat().st_mtime_ns
    result = train_supernet(tiny_config(sod_root, run_dir, validate_at_end=False), run_dir, progress=False)
    assert (result.start_iteration, result.iterations) == (4, 4)
    assert (run_dir / CHECKPOINT_NAME).stat().st_mtime_ns == before


def test_resume_errors(sod_root, finished_run, tmp_path):
    with pytest.raises(BadInputError, match="no checkpoint.pt"):
        train_supernet(tiny_config(sod_root, tmp_path), tmp_path, resume=True, progress=False)
    run_dir, _ = finished_run
    doc = tiny_config_doc(sod_root, run_dir)
    doc["space"] = {"stages": {"stem": {"widths": [36]}}}
    from inas.config import parse_config

    with pytest.raises(BadInputError, match="different search space"):
        train_supernet(parse_config(doc), run_dir, progress=False)


def test_initial_weights_ours_backbone_and_original(sod_root, finished_run, tmp_path):
    run_dir, _ = finished_run
    trained = load_supernet(run_dir / "supernet.pt").state_dict()
    config = tiny_config(sod_root, tmp_path / "a", iterations=1, validate_at_end=False,
                         init_checkpoint=str(run_dir / "supernet.pt"), lr=1e-12, warmup_iterations=0)
    train_supernet(config, tmp_path / "a", progress=False)
    started = load_train_checkpoint(tmp_path / "a" / CHECKPOINT_NAME).model
    key = "decoder.decoder_dict.level_0.conv.conv.weight"
    torch.testing.assert_close(started[key], trained[key], rtol=0, atol=1e-6)  # lr ~0: still the loaded weights

    # an original iNAS checkpoint: full-space shapes, 'params' wrapper, 'module.' prefixes
    torch.manual_seed(5)
    full = Supernet(inas_space(), num_classes=1, head_activation=None)
    original = {"params": {f"module.{k}": v for k, v in full.state_dict().items()}}
    path = tmp_path / "original.pth"
    torch.save(original, path)
    for fmt, expect_head in (("original", True), ("backbone", False)):
        out = tmp_path / fmt
        config = tiny_config(sod_root, out, iterations=1, validate_at_end=False, init_checkpoint=str(path),
                             init_format=fmt, lr=1e-12, warmup_iterations=0)
        train_supernet(config, out, progress=False)
        model = load_train_checkpoint(out / CHECKPOINT_NAME).model
        stem = "backbone.stem.stemconv.conv.weight"
        torch.testing.assert_close(model[stem], full.state_dict()[stem][:32], rtol=0, atol=1e-6)
        head = full.state_dict()[key][:, : model[key].shape[1]]
        assert torch.allclose(model[key], head, atol=1e-6) == expect_head, fmt


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda d: d["train"].update(bogus=1), "train.bogus: unknown key"),
        (lambda d: d["train"].update(iterations=0), "train.iterations"),
        (lambda d: d["train"].update(lr="fast"), "train.lr"),
        (lambda d: d["data"].update(root="/nonexistent/data"), "/nonexistent/data"),
        (lambda d: d["train"].update(init_checkpoint="/nonexistent/w.pt"), "train.init_checkpoint"),
    ],
)
def test_cli_rejects_bad_config_before_any_work(sod_root, tmp_path, capsys, change, message):
    doc = tiny_config_doc(sod_root, tmp_path / "run")
    change(doc)
    code = cli_main(["train", "-c", str(write_config(tmp_path / "c.yaml", doc)), "--no-progress"])
    err = capsys.readouterr().err
    assert code == 2
    assert message in err and "\rerror: " in "\r" + err.replace("\n", "\r") and "Traceback" not in err
    assert not (tmp_path / "run" / CHECKPOINT_NAME).exists()


def test_cli_trains_and_prints_summary(sod_root, tmp_path, capsys):
    doc = tiny_config_doc(sod_root, tmp_path / "unused", iterations=2, validate_at_end=False)
    config_path = write_config(tmp_path / "c.yaml", doc)
    code = cli_main(["train", "-c", str(config_path), "-o", str(tmp_path / "run"), "--no-progress"])
    out = capsys.readouterr().out
    assert code == 0
    assert "iterations: 2" in out and "supernet:" in out
    assert load_train_checkpoint(tmp_path / "run" / CHECKPOINT_NAME).iteration == 2
    assert TINY_SPACE  # the run used the tiny space


def test_local_run_never_imports_ray(sod_root, tmp_path):
    import subprocess
    import sys

    doc = tiny_config_doc(sod_root, tmp_path / "run", iterations=1, validate_at_end=False)
    config_path = write_config(tmp_path / "c.yaml", doc)
    code = ("import sys; from inas.run import main; "
            f"rc = main(['train', '-c', {str(config_path)!r}, '--no-progress']); "
            "assert rc == 0, rc; print('ray imported:', any(m == 'ray' or m.startswith('ray.') for m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300,
                         env={**__import__("os").environ, "OMP_NUM_THREADS": "1"})
    assert out.returncode == 0, out.stderr[-2000:]
    assert "ray imported: False" in out.stdout


def test_resuming_a_finished_run_replaces_a_corrupt_summary(sod_root, finished_run, tmp_path, monkeypatch):
    run_dir = tmp_path / "copy"
    shutil.copytree(finished_run[0], run_dir)
    (run_dir / "summary.json").write_text('{"iterations": "four"', encoding="utf-8")
    warnings = []
    monkeypatch.setattr(loop.log, "warning", lambda message, *args: warnings.append(message % args))
    result = train_supernet(tiny_config(sod_root, run_dir, validate_at_end=False), run_dir, progress=False)
    assert result.validation == {}
    assert len(warnings) == 1 and "summary.json" in warnings[0] and "without its validation scores" in warnings[0]
    assert read_train_summary(run_dir).iterations == 4

"""convert -> export -> test on a tiny supernet and synthetic data: the consistency check, PyTorch and ONNX giving
the same metrics, fine-tuning, segmentation, and the bad-input cases of the three verbs."""

from __future__ import annotations

import contextlib
import io
import json
import random

import pandas as pd
import pytest
import torch

from inas.config import load_config
from inas.data import eval_loader_from_config, synthesize_seg, synthesize_sod, train_loader_from_config
from inas.deploy import ConvertOptions, convert_arch
from inas.deploy.convert import check_consistency
from inas.deploy.finetune import finetune
from inas.deploy.model_file import load_model_file, save_model_file
from inas.deploy.testing import random_standalone, random_supernet, tiny_space, write_config
from inas.evaluation import recalibrate_bn
from inas.metrics import SOD_METRIC_NAMES
from inas.nn import extract_subnet, save_supernet
from inas.run import main as run_main
from inas.space import sample_uniform

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def sod(tmp_path_factory):
    """Synthetic SOD data, a config over the tiny space, a random supernet file and an arch file."""
    root = tmp_path_factory.mktemp("sod")
    synthesize_sod(root / "data", n_train=6, n_test=4, size=64, seed=0, workers=1)
    config = write_config(root / "config.yaml", root / "data", test_lists=["test.lst", "train.lst"])
    supernet = random_supernet(tiny_space(), seed=0)
    save_supernet(supernet, root / "supernet.pt")
    arch = sample_uniform(supernet.space, random.Random(1))
    (root / "arch.json").write_text(arch.to_json(indent=2))
    return {"root": root, "config": config, "supernet": root / "supernet.pt", "arch": root / "arch.json",
            "arch_value": arch}


def _convert(env, out, *extra) -> int:
    return run_main(["convert", "--arch", str(env["arch"]), "--supernet", str(env["supernet"]), "-c",
                     str(env["config"]), "-o", str(out), "--bn-batches", "2", "--threads", "1", "--no-progress",
                     *extra])


@pytest.fixture(scope="module")
def converted(sod, tmp_path_factory):
    """(model file, printed output) of one `convert` with the consistency check."""
    model_path = tmp_path_factory.mktemp("converted") / "m.pt"
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        assert _convert(sod, model_path) == 0
    return model_path, printed.getvalue()


def test_convert_export_test_give_the_same_metrics(sod, converted, tmp_path, capsys):
    model_path, out = converted
    for label in ("multi-branch SMSU", "folded SMSU (eval mode)", "stand-alone model"):
        assert label in out
    assert "the three paths agree" in out and "max |output difference|" in out
    model, info = load_model_file(model_path)
    assert info.arch == sod["arch_value"] and info.input_hw == (64, 64) and info.task == "sod"
    consistency = info.conversion["consistency"]
    for path in ("multibranch", "supernet_eval"):
        for name in ("maxF", "mae", "sm"):
            assert consistency[path][name] == pytest.approx(consistency["standalone"][name], abs=1e-5)
    assert consistency["max_abs_diff_multibranch"] < 1e-4 and consistency["max_abs_diff_supernet_eval"] < 1e-4

    onnx_path = tmp_path / "m.onnx"
    assert run_main(["export", str(model_path), "-o", str(onnx_path), "--threads", "1", "--repeats", "2",
                     "--warmup", "1"]) == 0
    assert "check passed" in capsys.readouterr().out

    frames = {}
    for path in (model_path, onnx_path):
        out_dir = tmp_path / f"{path.suffix[1:]}-results"
        assert run_main(["test", str(path), "-c", str(sod["config"]), "-o", str(out_dir), "--save-maps",
                         "--no-progress", "--threads", "1"]) == 0
        printed = capsys.readouterr().out
        assert "maxF" in printed and "test" in printed
        frames[path.suffix] = pd.read_csv(out_dir / "metrics.csv")
        assert pd.read_parquet(out_dir / "metrics.parquet").shape == frames[path.suffix].shape
        assert len(list((out_dir / "maps" / "test").glob("*.png"))) == 4
        assert len(list((out_dir / "maps" / "train").glob("*.png"))) == 6
    pt, onnx = frames[".pt"], frames[".onnx"]
    assert list(pt.columns) == ["dataset", "images", *SOD_METRIC_NAMES]
    assert pt["dataset"].tolist() == ["test", "train"] and pt["images"].tolist() == [4, 6]
    assert (pt[list(SOD_METRIC_NAMES)] - onnx[list(SOD_METRIC_NAMES)]).abs().max().max() < 1e-3
    # the stand-alone metrics of the consistency check are the test metrics of the converted file
    for name in ("maxF", "mae", "sm"):
        assert pt.loc[0, name] == pytest.approx(consistency["standalone"][name], abs=1e-6)


def test_convert_arch_is_the_verb_as_a_library_call(sod, converted, tmp_path):
    """The same file as `convert` writes (same weights, same record but the date); a failed check writes nothing."""
    config = load_config(sod["config"])
    result = convert_arch(sod["arch"], sod["supernet"], tmp_path / "lib.pt", config, ConvertOptions(bn_batches=2),
                          config_path=sod["config"])
    assert result.written and result.arch == sod["arch_value"] and result.consistency.agrees()
    ours, ours_info = load_model_file(tmp_path / "lib.pt")
    verb, verb_info = load_model_file(converted[0])
    assert ours_info.arch == verb_info.arch
    for key, value in verb.state_dict().items():
        assert torch.equal(ours.state_dict()[key], value), key
    skip = {"date", "consistency"}
    assert {k: v for k, v in ours_info.conversion.items() if k not in skip} == {
        k: v for k, v in verb_info.conversion.items() if k not in skip}
    assert ours_info.conversion["params"] == result.size.params

    failed = convert_arch(sod["arch"], sod["supernet"], tmp_path / "no.pt", config,
                          ConvertOptions(bn_batches=2, check_tolerance=-1.0))
    assert not failed.written and failed.size is None and failed.consistency is not None
    assert not (tmp_path / "no.pt").exists()


def test_consistency_check_detects_a_broken_model(sod):
    config = load_config(sod["config"])
    supernet = random_supernet(tiny_space(), seed=0)
    arch = sod["arch_value"]
    recalibrate_bn(supernet, [torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(0))], 1,
                   forward=lambda x: supernet(x, arch))
    loader = eval_loader_from_config(config.data, "sod", batch_size=2)
    model = extract_subnet(supernet, arch)
    assert check_consistency(supernet, model, arch, loader, "sod").agrees()
    with torch.no_grad():
        model.decoder.decoder_dict["level_0"].conv.conv.weight.mul_(1.5)
    broken = check_consistency(supernet, model, arch, loader, "sod")
    assert not broken.agrees() and broken.max_output_diff > 1e-2


def test_convert_with_finetuning(sod, converted, tmp_path, capsys):
    model_path = tmp_path / "ft.pt"
    assert _convert(sod, model_path, "--finetune", "3", "--no-check", "--keep-finetuned") == 0
    out = capsys.readouterr().out
    assert "fine-tuned 3 iterations" in out
    model, info = load_model_file(model_path)
    record = info.conversion["finetune"]
    assert record["iterations"] == 3 and set(record["metrics"]) == {"maxF", "mae", "sm"}
    assert model.folded
    plain, _ = load_model_file(converted[0])
    images = torch.randn(1, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        assert (model(images) - plain(images)).abs().max() > 1e-4  # fine-tuning changed the weights


def test_convert_keeps_the_better_of_before_and_after_finetuning(sod, converted, tmp_path, capsys):
    """Without --keep-finetuned the file holds the model the validation scores chose, and both scores are printed
    and recorded; here a learning rate of 1 (which ruins the model) and one of 1e-3 are tried."""
    images = torch.randn(1, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    plain, _ = load_model_file(converted[0])
    kept_seen = set()
    for lr in ("1.0", "1e-3"):
        chosen, forced = tmp_path / f"chosen{lr}.pt", tmp_path / f"forced{lr}.pt"
        assert _convert(sod, chosen, "--finetune", "3", "--no-check", "--lr", lr) == 0
        out = capsys.readouterr().out
        assert _convert(sod, forced, "--finetune", "3", "--no-check", "--lr", lr, "--keep-finetuned") == 0
        capsys.readouterr()
        record = load_model_file(chosen)[1].conversion["finetune"]
        before, after = record["metrics_before"]["maxF"], record["metrics"]["maxF"]
        assert f"maxF: {before:.6f} -> {after:.6f}" in out
        assert record["kept"] == ("fine-tuned" if after > before else "before fine-tuning")
        assert f"kept the {'fine-tuned model' if after > before else 'model before fine-tuning'}" in out
        expected = load_model_file(forced)[0] if after > before else plain
        with torch.no_grad():
            assert torch.allclose(load_model_file(chosen)[0](images), expected(images), atol=1e-6)
        kept_seen.add(record["kept"])
    assert "before fine-tuning" in kept_seen  # lr 1 makes the model worse: the original is kept


def test_finetune_choice_keeps_strictly_better_unless_forced():
    from inas.deploy.finetune import FinetuneChoice

    before = {"maxF": 0.716, "mae": 0.1}
    assert not FinetuneChoice.decide("sod", before, {"maxF": 0.657, "mae": 0.2}).keep_finetuned
    assert not FinetuneChoice.decide("sod", before, {"maxF": 0.716, "mae": 0.05}).keep_finetuned
    assert not FinetuneChoice.decide("sod", before, {"maxF": float("nan"), "mae": 0.05}).keep_finetuned
    assert FinetuneChoice.decide("sod", before, {"maxF": 0.72, "mae": 0.2}).keep_finetuned
    assert FinetuneChoice.decide("sod", before, {"maxF": 0.6, "mae": 0.2}, force=True).keep_finetuned
    assert FinetuneChoice.decide("seg", {"miou": 0.3}, {"miou": 0.31}).kept == "fine-tuned"


def test_finetune_lowers_the_training_loss(sod):
    config = load_config(sod["config"])
    model = extract_subnet(random_supernet(tiny_space(), seed=5), sod["arch_value"], fold=False)
    loader = train_loader_from_config(config.data, "sod", seed=0)
    losses = []
    result = finetune(model, loader, 24, "sod", config.train, lr=1e-3, progress=False,
                      on_step=lambda _it, loss: losses.append(loss))
    assert result.iterations == 24 and result.warmup_iterations == 2 and len(losses) == 24
    assert sum(losses[-4:]) / 4 < 0.9 * sum(losses[:4]) / 4
    assert not model.training
    with pytest.raises(ValueError, match="unfolded"):
        finetune(model.reparameterize(), loader, 1, "sod", config.train)


def test_convert_bad_inputs(sod, tmp_path, capsys):
    outside = json.loads(sod["arch"].read_text())
    outside["backbone"]["stage_5"]["widths"] = [116, 112]
    outside_path = tmp_path / "outside.json"
    outside_path.write_text(json.dumps(outside))
    seg_config = write_config(tmp_path / "seg.yaml", sod["root"] / "data", task="seg")
    model_file = tmp_path / "m.pt"
    save_model_file(random_standalone(tiny_space(), sod["arch_value"], seed=3), model_file,
                    task="sod", input_hw=(64, 64))
    cases = [
        ({"arch": outside_path}, ["stage_5.widths", "116", "space of the supernet"]),
        ({"arch": tmp_path / "missing.json"}, ["missing.json", "not found"]),
        ({"supernet": tmp_path / "missing.pt"}, ["missing.pt", "supernet checkpoint not found"]),
        ({"supernet": model_file}, ["m.pt", "expected a supernet checkpoint", "inas-standalone"]),
        ({"config": seg_config}, ["supernet has 1 output classes", "'seg'"]),
    ]
    for override, patterns in cases:
        env = dict(sod, **override)
        assert _convert(env, tmp_path / "never.pt") == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1, err
        for pattern in patterns:
            assert pattern in err, (pattern, err)
    assert _convert(sod, tmp_path / "never.pt", "--device", "tpu9") == 2
    assert "--device: unknown device 'tpu9'" in capsys.readouterr().err
    assert not (tmp_path / "never.pt").exists()


def test_test_and_export_bad_inputs(sod, tmp_path, capsys):
    notes = tmp_path / "notes.txt"
    notes.write_text("not a model")
    seg_config = write_config(tmp_path / "seg.yaml", sod["root"] / "data", task="seg")
    model_file = tmp_path / "m.pt"
    save_model_file(random_standalone(tiny_space(), sod["arch_value"], seed=3), model_file,
                    task="sod", input_hw=(64, 64))
    cases = [
        (["test", str(notes), "-c", str(sod["config"])], "not a model file"),
        (["test", str(tmp_path / "gone.onnx"), "-c", str(sod["config"])], "model file not found"),
        (["test", str(sod["supernet"]), "-c", str(sod["config"])], "supernet checkpoint, not a stand-alone model"),
        (["test", str(model_file), "-c", str(seg_config)], "the model is a 'sod' model but the config's task is"),
        (["test", str(model_file), "-c", str(sod["config"]), "--size", "70"], "multiples of 32"),
        (["test", str(model_file), "-c", str(sod["config"]), "--lists", "nope.lst"], "nope.lst"),
    ]
    for argv, pattern in cases:
        assert run_main([*argv, "--no-progress"]) == 2, argv
        err = capsys.readouterr().err
        assert pattern in err and err.count("\n") == 1, err


def test_segmentation_convert_and_test(tmp_path, capsys):
    synthesize_seg(tmp_path / "data", n_train=4, n_test=2, size=64, seed=0, workers=1)
    config = write_config(tmp_path / "seg.yaml", tmp_path / "data", task="seg", batch_size=2)
    supernet = random_supernet(tiny_space(), num_classes=19, seed=4, image_hw=(64, 128))
    save_supernet(supernet, tmp_path / "supernet.pt")
    arch = sample_uniform(supernet.space, random.Random(4))
    (tmp_path / "arch.json").write_text(arch.to_json())
    env = {"arch": tmp_path / "arch.json", "supernet": tmp_path / "supernet.pt", "config": config}
    assert _convert(env, tmp_path / "seg.pt") == 0
    out = capsys.readouterr().out
    assert "miou" in out and "the three paths agree" in out
    _, info = load_model_file(tmp_path / "seg.pt")
    assert info.task == "seg" and info.input_hw == (64, 128) and info.num_classes == 19
    assert run_main(["test", str(tmp_path / "seg.pt"), "-c", str(config), "-o", str(tmp_path / "res"),
                     "--save-maps", "--no-progress"]) == 0
    frame = pd.read_csv(tmp_path / "res" / "metrics.csv")
    assert frame["dataset"].tolist() == ["val"] and frame["images"].tolist() == [2]
    assert {"miou", "iou_0", "iou_18"} <= set(frame.columns)
    assert frame.loc[0, "miou"] == pytest.approx(info.conversion["consistency"]["standalone"]["miou"], abs=1e-6)
    assert len(list((tmp_path / "res" / "maps" / "val").glob("*.png"))) == 2

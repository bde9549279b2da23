"""`demo`: the resolved experiment config keeps every artefact inside OUT, `--quick` shrinks the sizes, the shipped
demo config is valid and shares its space with experiments/sod_demo.yaml, and a bad demo config is refused."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from inas.cli.demo import DEFAULT_CONFIG, resolve_demo_config
from inas.config import load_config, parse_config
from inas.run import main as run_main
from inas.search.searchers import scaled_searcher

EXPERIMENTS = Path(__file__).resolve().parents[1] / "experiments"


def _base() -> dict:
    return yaml.safe_load(DEFAULT_CONFIG.read_text(encoding="utf-8"))


@pytest.mark.parametrize("quick", [False, True])
def test_every_path_is_inside_out(tmp_path, quick):
    doc, synth = resolve_demo_config(_base(), tmp_path, quick)
    config = parse_config(doc, "demo")
    for path in (config.data.root, config.train.out_dir, config.lut.out_dir, config.search.out_dir,
                 config.search.supernet):
        assert Path(path).is_relative_to(tmp_path), path
    assert "synth" not in doc and synth["n_train"] > 0


def test_quick_shrinks_every_size(tmp_path):
    full, full_synth = resolve_demo_config(_base(), tmp_path, quick=False)
    quick, quick_synth = resolve_demo_config(_base(), tmp_path, quick=True)
    assert quick["train"]["iterations"] < full["train"]["iterations"]
    assert quick_synth["n_train"] < full_synth["n_train"]
    assert quick["lut"]["runs"] < full["lut"]["runs"]
    for fast, slow in zip(quick["search"]["searchers"], full["search"]["searchers"], strict=True):
        assert 0 < fast["budget"] < slow["budget"]
    assert _base() == yaml.safe_load(DEFAULT_CONFIG.read_text(encoding="utf-8"))  # the input is not mutated


def test_quick_shrinks_the_sizes_each_searcher_declares(tmp_path):
    quick, _ = resolve_demo_config(_base(), tmp_path, quick=True)
    by_kind = {s["kind"]: s for s in quick["search"]["searchers"]}
    assert by_kind["evolution"]["budget"] == 8  # 32 x 0.25
    evolution = by_kind["evolution"]["params"]
    assert evolution["population_size"] == 4 and evolution["selection_num"] == 2
    assert evolution["lgs_groups"] == 4  # not a size: unchanged
    assert by_kind["predictor"]["params"]["initial_size"] == 2  # 8 x 0.25, floored at 2
    assert by_kind["nevergrad"]["params"]["num_budgets"] == 4


def test_scaled_searcher_floors_and_unknown_kinds():
    assert scaled_searcher("evolution", 10, {"population_size": 3, "mutation_prob": 0.5}, 0.1) == (
        4, {"population_size": 2, "mutation_prob": 0.5})
    assert scaled_searcher("optuna", 100, {"population_size": 40, "n_startup_trials": 40}, 0.5) == (
        50, {"population_size": 20, "n_startup_trials": 40})
    assert scaled_searcher("no-such-kind", 100, {"population_size": 40}, 0.5) == (50, {"population_size": 40})


def test_demo_and_sod_demo_share_one_space():
    doc, _ = resolve_demo_config(_base(), Path("/tmp/x"), quick=False)
    demo_space = parse_config(doc, "demo").space.build()
    sod_demo = load_config(EXPERIMENTS / "sod_demo.yaml")
    assert demo_space == sod_demo.space.build()


def test_bad_demo_config_is_refused_before_any_work(tmp_path, capsys):
    bad = tmp_path / "demo.yaml"
    bad.write_text("task: sod\ntrain: {iterations: -3}\n", encoding="utf-8")
    out = tmp_path / "out"
    assert run_main(["demo", "-c", str(bad), "-o", str(out)]) == 2
    err = capsys.readouterr().err
    assert "iterations" in err and "Traceback" not in err
    assert not out.exists()


@pytest.mark.parametrize("text, expected", [
    ("synth: [1]\n", "synth: expected a mapping"),
    ("synth: {n_trian: 3}\n", "synth: expected a mapping"),
    ("seed: 2024-01-01\n", "seed: Input should be a valid integer"),  # was json.dumps' TypeError
    ("a: &a [1, 1, 1, 1, 1, 1, 1, 1, 1, 1]\n" + "".join(
        f"{n}: &{n} [{', '.join([f'*{p}'] * 10)}]\n" for p, n in zip("abcdef", "bcdefg", strict=True)),
     "more than 100000 values"),
], ids=["synth-list", "synth-key", "date", "alias-bomb"])
def test_demo_config_is_read_like_any_config(tmp_path, capsys, text, expected):
    bad = tmp_path / "demo.yaml"
    bad.write_text(text, encoding="utf-8")
    out = tmp_path / "out"
    assert run_main(["demo", "-c", str(bad), "-o", str(out)]) == 2
    err = capsys.readouterr().err
    assert expected in err and "Traceback" not in err and err.count("error:") == 1
    assert not out.exists()


def test_demo_config_that_is_a_folder(tmp_path, capsys):
    assert run_main(["demo", "-c", str(tmp_path), "-o", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert f"{tmp_path}: config file cannot be read" in err and "Traceback" not in err


def test_finished_steps_of_another_config_are_not_reused(tmp_path, capsys):
    """`demo --quick -o X` then `demo -o X` reported every step of the full demo as done (the quick artefacts),
    and replaced X/config.yaml with a config that does not describe them."""
    out = tmp_path / "out"
    doc, _ = resolve_demo_config(_base(), out, quick=True)
    (out / ".done").mkdir(parents=True)
    (out / "config.yaml").write_text(yaml.safe_dump(doc, sort_keys=False), encoding="utf-8")
    before = (out / "config.yaml").read_text(encoding="utf-8")
    for marker in ("data", "train", "lut", "search", "analyze", "convert", "export", "test"):
        (out / ".done" / marker).write_text("1.0\n")
    for extra in ([], ["--fresh"]):
        assert run_main(["demo", "-o", str(out), *extra]) == 2
        err = capsys.readouterr().err
        assert "holds steps finished with another demo config" in err and "Traceback" not in err
        assert (out / "config.yaml").read_text(encoding="utf-8") == before
    (out / "config.yaml").write_text("{{{", encoding="utf-8")  # unreadable: cannot tell, so refused too
    assert run_main(["demo", "--quick", "-o", str(out)]) == 2
    assert "another demo config" in capsys.readouterr().err
    (out / "config.yaml").write_text(before, encoding="utf-8")  # the same config: every step reused
    assert run_main(["demo", "--quick", "-o", str(out)]) == 0
    assert capsys.readouterr().out.count("done before, reused") == 8

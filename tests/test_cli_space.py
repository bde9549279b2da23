"""The `space` verbs and the CLI's exit-code contract."""

from __future__ import annotations

import json

from inas.run import main
from inas.space import inas_space, sample_max


def test_space_info_prints_exact_cardinality(capsys):
    assert main(["space", "info"]) == 0
    out = capsys.readouterr().out
    assert f"cardinality: {inas_space().cardinality()}" in out
    assert "stage_7" in out and "decoder" in out


def test_space_sample_prints_valid_json_lines(capsys, tmp_path):
    assert main(["space", "sample", "--n", "3", "--seed", "4"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 3
    for i, line in enumerate(lines):
        assert json.loads(line)["format"] == "inas-arch"
        (tmp_path / f"{i}.json").write_text(line)
        assert main(["space", "validate", str(tmp_path / f"{i}.json")]) == 0
    capsys.readouterr()
    assert main(["space", "sample", "--n", "3", "--seed", "4"]) == 0
    assert capsys.readouterr().out.strip().splitlines()[: len(lines)] == lines  # seeded


def test_space_validate_prints_id_or_exits_2(capsys, tmp_path):
    good = tmp_path / "good.json"
    good.write_text(sample_max(inas_space()).to_json(indent=2))
    assert main(["space", "validate", str(good)]) == 0
    assert capsys.readouterr().out.strip() == sample_max(inas_space()).arch_id
    bad = tmp_path / "bad.json"
    doc = sample_max(inas_space()).to_dict()
    doc["backbone"]["stem"]["widths"] = [41]
    bad.write_text(json.dumps(doc))
    assert main(["space", "validate", str(bad)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "bad.json" in err and "backbone.stem.widths[0]" in err and "41" in err


def test_verbs_not_built_exit_2(capsys):
    import inas.run

    unbuilt = [verb for verb, module, _ in inas.run.VERBS if inas.run._load_verb_module(module) is None]
    for verb in unbuilt:
        assert main([verb]) == 2
        assert "not built yet" in capsys.readouterr().err

"""Config loading: valid files parse, every kind of bad input names the file and the key."""

from __future__ import annotations

import pytest

from inas.config import load_config, parse_config
from inas.errors import BadInputError


def write(tmp_path, text):
    path = tmp_path / "exp.yaml"
    path.write_text(text)
    return path


def test_defaults_and_narrowed_space(tmp_path):
    cfg = load_config(write(tmp_path, "task: sod\nspace:\n  stages:\n    stage_5: {widths: [112, 116], depths: [2]}\n"))
    space = cfg.space.build()
    assert space.stage("stage_5").widths == (112, 116)
    assert cfg.num_classes == 1 and cfg.data.image_size == 320


@pytest.mark.parametrize(
    "text, fragments",
    [
        ("task: sod\ndata: {root: x, image_sizee: 320}\n", ["exp.yaml", "data.image_sizee", "unknown key"]),
        ("data: {batch_size: many}\n", ["data.batch_size", "integer"]),
        ("data: {image_size: 300}\n", ["data.image_size", "multiple of 32", "300"]),
        ("task: depth\n", ["task", "'sod' or 'seg'"]),
        ("space: {stages: {stage_5: {widths: [113]}}}\n", ["exp.yaml", "space.stages.stage_5.widths", "113"]),
        ("model: {output_levels: [1, 2]}\n", ["model.output_levels", "containing 0"]),
        ("data: [1, 2\n", ["exp.yaml", "malformed YAML", "line"]),
        ("- 1\n- 2\n", ["exp.yaml", "mapping"]),
    ],
)
def test_bad_config_names_file_and_key(tmp_path, text, fragments):
    with pytest.raises(BadInputError) as info:
        load_config(write(tmp_path, text))
    for fragment in fragments:
        assert fragment in str(info.value)


def test_missing_config_file(tmp_path):
    with pytest.raises(BadInputError, match="not found"):
        load_config(tmp_path / "nope.yaml")


def test_empty_document_is_all_defaults():
    assert parse_config(None).task == "sod"

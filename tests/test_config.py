"""Config loading: valid files parse, every kind of bad input names the file and the key."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from pydantic import BaseModel

from inas.config import load_config, parse_config
from inas.config_reference import BEGIN, END
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
        ("search: {searchers: [{kind: random, budget: true}]}\n", ["search.searchers[0].budget", "not a boolean"]),
        ("train: {lr: false}\n", ["train.lr", "expected float, not a boolean"]),
        ("search: {devices: []}\n", ["search.devices", "at least 1 item"]),
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


def _documented_defaults() -> list[tuple[str, str, str]]:
    """(section, key, default cell) of every row of the README's config reference, for the sections reached by
    attribute from the top level (not the per-item sections `x[]` / `x.<name>`)."""
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")
    rows, section = [], None
    for line in readme[readme.index(BEGIN): readme.index(END)].splitlines():
        heading = re.match(r"\*\*`([^`]+)`\*\*", line)
        if heading:
            section = heading.group(1)
        cells = re.match(r"\| `([^`]+)` \| .*? \| (.+?) \| .* \|$", line)
        if cells and section is not None and "[]" not in section and "<name>" not in section:
            rows.append((section, cells.group(1), cells.group(2)))
    return rows


def _as_documented(value) -> str:
    """A parsed value written the way the reference writes defaults."""
    if isinstance(value, BaseModel):
        return "see below"
    if isinstance(value, list) and value and isinstance(value[0], BaseModel):
        return "[" + ", ".join(str(v.model_dump(exclude_defaults=True)) for v in value) + "]"
    return "`null`" if value is None else "`" + str(value).replace("|", "\\|") + "`"


def test_empty_document_is_all_defaults():
    config = parse_config(None)
    rows = _documented_defaults()
    assert len(rows) > 60 and {section for section, _, _ in rows} >= {"(top level)", "data", "train", "search", "lut"}
    for section, key, documented in rows:
        owner = config
        for part in [] if section == "(top level)" else section.split("."):
            owner = getattr(owner, part)
        assert _as_documented(getattr(owner, key)) == documented, f"{section}.{key}"


def _alias_bomb(levels: int = 9) -> str:
    """A ~1 KB YAML document whose aliases expand to 9**levels strings."""
    text = 'a0: &a0 ["x", "x", "x", "x", "x", "x", "x", "x", "x"]\n'
    for i in range(1, levels):
        text += f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 9) + "]\n"
    return text + f"seed: *a{levels - 1}\n"


@pytest.mark.parametrize(
    "text, fragments",
    [
        ("seed: true\n", ["seed", "not a boolean"]),
        ("seed: -1\n", ["seed", "greater than or equal to 0"]),
        ("seed: 4294967296\n", ["seed", "less than or equal to 4294967295"]),
        ("seed: " + "9" * 5000 + "\n", ["exp.yaml", "malformed YAML"]),
        ("data: {image_size: 8192}\n", ["data.image_size", "4096"]),
        ("data: {multi_scale_sizes: [320, 8192]}\n", ["data.multi_scale_sizes", "4096"]),
        ("task: seg\ndata: {crop_size: [512, 100000]}\n", ["data.crop_size", "4096"]),
        ("task: seg\ndata: {num_classes: 100000}\n", ["data.num_classes", "255"]),
        ("data: {batch_size: 1000, image_size: 4096}\n", ["data", "MiB"]),
        ("data: {num_workers: 100000}\n", ["data.num_workers", "256"]),
        ("lut: {input_size: [320, 99999]}\n", ["lut.input_size", "4096"]),
        ("train: {lr: .nan}\n", ["train.lr", "finite"]),
        ("seed: " + "[" * 3000 + "\n", ["exp.yaml", "nested deeper than"]),
        ("seed: " + "[" * 100 + "]" * 100 + "\n", ["exp.yaml", "nested deeper than"]),
        ("a: &a [*a]\n", ["exp.yaml", "nested deeper than"]),
        (_alias_bomb(), ["exp.yaml", "more than 100000 values"]),
        ("data: {" + ", ".join(f"k{i}: 1" for i in range(50)) + "}\n", ["data.k0", "and 45 more problems"]),
    ],
    ids=lambda v: v[:20] if isinstance(v, str) else None,
)
def test_values_are_bounded_with_one_short_line(tmp_path, text, fragments):
    with pytest.raises(BadInputError) as info:
        load_config(write(tmp_path, text))
    message = str(info.value)
    assert "\n" not in message and len(message) < 1000, message
    for fragment in fragments:
        assert fragment in message


def test_long_values_are_quoted_as_an_excerpt(tmp_path):
    with pytest.raises(BadInputError) as info:
        load_config(write(tmp_path, "data: {image_size: [" + ", ".join(["123456789"] * 10000) + "]}\n"))
    assert "data.image_size" in str(info.value) and len(str(info.value)) < 400


def test_largest_seed_is_accepted(tmp_path):
    assert load_config(write(tmp_path, "seed: 4294967295\n")).seed == 2**32 - 1

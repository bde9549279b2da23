"""The original iNAS arch format: NumPy >= 2 scalar reprs read as numbers without evaluating anything; deep
nesting, scalars where lists belong and anything but literals give one line naming the file and the field."""

from __future__ import annotations

import json
import random
import re

import pytest

from inas.space import ArchError, arch_from_json, inas_space, load_arch, sample_uniform
from inas.space.literal import LiteralError, parse_literal

SPACE = inas_space()


def _original_text(numpy2: bool = False) -> tuple[str, object]:
    arch = sample_uniform(SPACE, random.Random(3))
    text = repr(arch.to_original(SPACE))
    if numpy2:  # every number as NumPy >= 2 writes it: np.int64(40)
        text = re.sub(r"(?<![\w.])(\d+)", r"np.int64(\1)", text)
    return text, arch


def test_numpy2_scalar_reprs_are_read_as_plain_numbers(tmp_path):
    text, arch = _original_text(numpy2=True)
    assert "np.int64(" in text
    path = tmp_path / "np2.json"
    path.write_text(json.dumps(text))
    assert load_arch(path, SPACE) == arch
    floats = text.replace("'ratio': np.int64(6)", "'ratio': np.float64(6.0)")
    assert floats != text and arch_from_json(json.dumps(floats), SPACE) == arch


@pytest.mark.parametrize("text, fragment", [
    ("{'a': __import__('os').system('true')}", "not np.<int or float type>"),
    ("{'a': np.int64(__import__('os'))}", "number literal"),
    ("{'a': np.int64(4.5)}", "non-integer"),
    ("{'a': numpy.load('x')}", "not np.<int or float type>"),
    ("{'a': open}", "Name"),
    ("{'a': 1 + 2}", "BinOp"),
    ("{'a': [x for x in 'ab']}", "ListComp"),
    ("{**{'a': 1}}", "unpacking"),
    ("[" * 100 + "]" * 100, "nested deeper than 32"),
    ("[" * 1000, "nested"),
])
def test_anything_but_literals_is_refused(text, fragment):
    with pytest.raises(LiteralError, match=re.escape(fragment)):
        parse_literal(text)


def test_literals_and_signed_numbers():
    assert parse_literal("{'a': (1, -2.5, np.uint8(3)), 2: [None, True, 'x', +4]}") == \
        {"a": [1, -2.5, 3], 2: [None, True, "x", 4]}


@pytest.mark.parametrize("edit, key", [
    (lambda t: t.replace("'filter': [", "'filter': 7, 'x': [", 1), "backbone_cfg.stem"),
    (lambda t: re.sub(r"'kernel': \[\[[^\]]*\]\]", "'kernel': None", t, count=1), "backbone_cfg.stem.kernel"),
    (lambda t: re.sub(r"'filter': \[[^\]]*\]", "'filter': None", t, count=1), "backbone_cfg.stem.filter"),
    (lambda t: re.sub(r"'connection': \[[^\]]*\]", "'connection': 3", t, count=1),
     "transport_cfg.level_0.connection"),
])
def test_a_scalar_or_null_where_a_list_belongs_names_the_field(edit, key):
    text, _ = _original_text()
    edited = edit(text)
    assert edited != text
    with pytest.raises(ArchError) as info:
        arch_from_json(json.dumps(edited), SPACE, "orig.json")
    assert str(info.value).startswith("orig.json") and key in str(info.value) and "\n" not in str(info.value)


@pytest.mark.parametrize("text", ["[" * 100000, json.dumps("[" * 150 + "]" * 150), '{"a": ' + "9" * 5000 + "}",
                                  json.dumps("{'a': 1}" + " " * (1 << 20))])
def test_deep_huge_or_oversized_json_gives_one_line(text):
    with pytest.raises(ArchError) as info:
        arch_from_json(text, SPACE, "deep.json")
    assert str(info.value).startswith("deep.json") and len(str(info.value)) < 300

"""Property-based fuzz of Arch JSON and config parsing: any input gives a value or one BadInputError, never a crash."""

import json

from hypothesis import given, settings
from hypothesis import strategies as st

from inas.config import parse_config
from inas.errors import BadInputError
from inas.space import arch_from_json, inas_space, sample_max

SPACE = inas_space()
json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-5, 400) | st.text(max_size=8),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=20,
)


@settings(max_examples=150, deadline=None)
@given(st.text(max_size=200))
def test_arbitrary_text_is_rejected_cleanly(text):
    try:
        arch_from_json(text, SPACE, "fuzz.json")
    except BadInputError as exc:
        assert str(exc).startswith("fuzz.json")


@settings(max_examples=150, deadline=None)
@given(st.sampled_from(["backbone", "transport", "decoder"]), st.data())
def test_mutated_valid_arch_is_accepted_or_rejected_cleanly(part, data):
    doc = sample_max(SPACE).to_dict()
    names = sorted(doc[part])
    name = data.draw(st.sampled_from(names))
    field = data.draw(st.sampled_from(sorted(doc[part][name])))
    doc[part][name][field] = data.draw(json_values)
    try:
        arch = arch_from_json(json.dumps(doc), SPACE, "fuzz.json")
    except BadInputError as exc:
        assert f"{part}.{name}" in str(exc) or part in str(exc)
    else:
        assert arch_from_json(arch.to_json(), SPACE) == arch


@settings(max_examples=150, deadline=None)
@given(st.dictionaries(st.sampled_from(["task", "seed", "data", "space", "model", "train", "lut", "search", "x"]),
                       json_values, max_size=3))
def test_config_documents_parse_or_fail_cleanly(doc):
    try:
        parse_config(doc, "fuzz.yaml")
    except BadInputError as exc:
        assert "fuzz.yaml" in str(exc)

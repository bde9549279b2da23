"""`search_state.json` read back (`inas.search.state.read_search_state`): a file written by the current code loads
as written; each damaged field is one BadInputError naming the file and the key path."""

from __future__ import annotations

import pytest
from fuzz_cases import damage_json_field

from inas.errors import BadInputError
from inas.search.state import STATE_FILE, SearchState, read_search_state, write_search_state

SEARCHERS = {"random": {"format": "inas-searcher-state", "extra": {"done": True}}, "evolution": {}}


@pytest.mark.parametrize("rows", [7, None])  # None: a file written before the row count was recorded
def test_a_written_state_loads_as_written(tmp_path, rows):
    state = SearchState("seg", SEARCHERS, rows)
    write_search_state(tmp_path / STATE_FILE, state)
    assert read_search_state(tmp_path / STATE_FILE) == state


# (field, damaged value, key path, message). The old hand checks refused every case not marked "new" naming the same
# file and key (pinned here; its messages read e.g. "format: not a search state: expected 'inas-search-state', got
# ..."); they accepted the ones marked "new", or named only `searchers`.
DAMAGED = [
    ("format", "inas-searcher-state", "format", "expected 'inas-search-state', got 'inas-searcher-state'"),
    ("format", None, "format", "expected 'inas-search-state', got None"),
    ("version", True, "version", "expected 1, got True"),  # bool for a number
    ("version", 1.0, "version", "expected 1, got 1.0"),  # new: 1.0 == 1 passed
    ("version", 2, "version", "expected 1, got 2"),
    ("task", "cls", "task", "expected 'sod' or 'seg', got 'cls'"),
    ("task", ["sod"], "task", "expected 'sod' or 'seg', got ['sod']"),
    ("searchers", ["random"], "searchers", "expected an object of searcher states by name, got ['random']"),
    ("searchers", {"random": [1]}, "searchers.random", "expected a JSON object, got [1]"),  # new: the name
    ("rows", -1, "rows", "expected an integer >= 0, got -1"),
    ("rows", True, "rows", "expected an integer >= 0, got True"),
    ("rows", 2.0, "rows", "expected an integer >= 0, got 2.0"),
    ("rows", float("nan"), "rows", "expected an integer >= 0, got nan"),
    ("rows", float("inf"), "rows", "expected an integer >= 0, got inf"),
    ("rows", "3", "rows", "expected an integer >= 0, got '3'"),
    ("task", ..., "task", "missing"),  # ...: the key is left out
    ("searchers", ..., "searchers", "missing"),
    ("format", ..., "format", "missing"),
    ("notes", "hand edit", "notes", "unknown key"),  # new: an unknown key was ignored
]


@pytest.mark.parametrize(("field", "value", "key", "message"), DAMAGED)
def test_a_damaged_field_is_refused_naming_the_file_and_key(tmp_path, field, value, key, message):
    path = tmp_path / STATE_FILE
    write_search_state(path, SearchState("sod", SEARCHERS, 3))
    damage_json_field(path, field, value)
    with pytest.raises(BadInputError) as info:
        read_search_state(path)
    assert (info.value.path, info.value.key) == (str(path), key)
    assert str(info.value) == f"{path}: {key}: {message}"


@pytest.mark.parametrize("text", ["[1, 2]", '"inas-search-state"', "null"])
def test_a_document_that_is_not_an_object_is_refused_naming_the_file(tmp_path, text):
    path = tmp_path / STATE_FILE
    path.write_text(text)
    with pytest.raises(BadInputError, match="expected a JSON object, got") as info:
        read_search_state(path)
    assert (info.value.path, info.value.key) == (str(path), None)

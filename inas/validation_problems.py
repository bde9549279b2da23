"""One pydantic validation error as the one-line bad-input text every reader of a typed file prints: the key path
of the value (`search.searchers[0].budget`, `extra.queue[3].group`) and what was wrong with it ("expected an integer
>= 0, got 'two'", "missing", "unknown key"). Used by the config, the training summary and the searcher states."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from inas.errors import clip, excerpt

# pydantic error types -> what was expected (formatted with the error's context)
_EXPECTED = {"list_type": "a JSON list", "tuple_type": "a JSON list", "dict_type": "a JSON object",
             "model_type": "a JSON object", "model_attributes_type": "a JSON object", "literal_error": "{expected}",
             "too_short": "at least {min_length} items", "too_long": "at most {max_length} items"}


def problem_text(error: Any) -> str:
    """One pydantic error (an item of `ValidationError.errors()`) as "expected ..., got ..." (or "missing",
    "unknown key", or pydantic's own message with the value given)."""
    kind, got = error["type"], excerpt(error.get("input"))
    if kind == "missing":
        return "missing"
    if kind == "extra_forbidden":
        return "unknown key"
    if kind in ("expected", "value_error"):  # a custom "expected ..." error; a model's own check (ValueError)
        message = error["msg"].removeprefix("Value error, ")
        return message if ", got " in message else f"{message}, got {got}"  # a check may name what it got itself
    if kind in _EXPECTED:
        return f"expected {_EXPECTED[kind].format(**error.get('ctx', {}))}, got {got}"
    return f"{clip(error['msg'])}, got {got}"


def key_path(doc: Any, loc: Sequence[int | str], parent: str = "") -> str:
    """pydantic's `loc` in the document `doc` (found at key path `parent`, "" at the top) as `parent.name[3].key`;
    the tag of a tagged union (a string step into a JSON list) is not a key and is left out."""
    path, node = parent, doc
    for step in loc:
        if isinstance(node, list) and isinstance(step, str):
            continue
        path = f"{path}[{step}]" if isinstance(step, int) else member_key(path, step)
        node = _child(node, step)
    return path


def member_key(parent: str, name: str) -> str:
    """The key path of member `name` of the object at `parent` ("" at the top): `parent.name`, or `parent['0a1b']`
    for a name that is not an identifier (an arch id that starts with a digit)."""
    if not name.isidentifier():
        return f"{parent}[{excerpt(name, 40)}]"
    return f"{parent}.{name}" if parent else name


def _child(node: Any, step: int | str) -> Any:
    if isinstance(node, dict):
        return node.get(step)
    if isinstance(node, list) and isinstance(step, int) and 0 <= step < len(node):
        return node[step]
    return None

"""Typed documents: a JSON document we read back (our own outputs included) is untrusted input, described by a
strict pydantic model and checked before anything uses it. A problem is one line of bad-input text: the key path of
the value (`search.searchers[0].budget`, `extra.queue[3].group`) and what was wrong with it ("expected an integer
>= 0, got 'two'", "missing", "unknown key").

- `parse_document(model, doc, path=..., key=...)`: `doc` checked against `model`; the first problem as one
  BadInputError naming the file and the key path (the search state, the searcher states, the latency correction,
  the training summary);
- `problem_text`, `key_path`, `member_key`: one pydantic error as that text (also the config's several problems);
- `DocumentModel` and the strict types (`Flag`, `Integer`, `Count`, `Number`, `Text`; `expecting`, `exactly`) the
  models are built from: no "1" -> 1, no true -> 1, no 1.5 -> 1, no NaN.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Annotated, Any, TypeVar

from pydantic import BaseModel, ConfigDict, Field, PlainValidator, Strict, ValidationError, WrapValidator
from pydantic_core import PydanticCustomError

from inas.errors import BadInputError, clip, excerpt

Model = TypeVar("Model", bound=BaseModel)

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
    the tag of a tagged union (a string step into a JSON list) is not a key and is left out, nor is pydantic's
    `[key]` after a member whose key (not value) is wrong."""
    path, node = parent, doc
    for step in loc:
        if isinstance(node, list) and isinstance(step, str):
            continue
        if step == "[key]" and not (isinstance(node, dict) and step in node):  # the member's key itself was wrong
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


def parse_document(model: type[Model], doc: Any, *, path: str | Path | None = None, key: str = "") -> Model:
    """`doc` (the document read from `path`, or the part of one at key path `key`; "" for the whole) checked against
    `model`; BadInputError naming `path` and the key path of the first problem otherwise."""
    try:
        return model.model_validate(doc)
    except ValidationError as exc:
        error = exc.errors()[0]
        raise BadInputError(problem_text(error), path=path, key=key_path(doc, error["loc"], key) or None) from None


class DocumentModel(BaseModel):
    """Base of the models of the documents we read back: an unknown key is refused, the parsed document is
    read-only. Build the fields from the strict types below."""

    model_config = ConfigDict(extra="forbid", frozen=True)


def expecting(what: str) -> WrapValidator:
    """Pydantic metadata: a value of the wrong type or shape is refused as "expected `what`"; a problem inside one of
    its items keeps that item's own message and path."""

    def check(value: Any, handler: Callable[[Any], Any]) -> Any:
        try:
            return handler(value)
        except ValidationError as exc:
            if all(_inside_an_item(error["loc"], error["type"]) for error in exc.errors()):
                raise
            raise PydanticCustomError("expected", "expected {what}", {"what": what}) from None

    return WrapValidator(check)


def _inside_an_item(loc: tuple[int | str, ...], kind: str) -> bool:
    """An error of an item of a list or tuple (not one about its length or its own type)."""
    return bool(loc) and not (len(loc) == 1 and kind in ("missing", "too_long"))


def exactly(value: str | int) -> PlainValidator:
    """Pydantic metadata of a document's constant (its format name, its version), e.g. `Annotated[int, exactly(1)]`:
    `value` itself only (not true or 1.0 for 1), "expected 1" otherwise."""

    def check(given: Any) -> Any:
        if type(given) is not type(value) or given != value:
            raise PydanticCustomError("expected", "expected {value}", {"value": repr(value)})
        return given

    return PlainValidator(check)


Flag = Annotated[bool, Strict(), expecting("true or false")]
Integer = Annotated[int, Strict(), expecting("an integer")]
Count = Annotated[int, Strict(), Field(ge=0), expecting("an integer >= 0")]
Number = Annotated[float, Strict(), Field(allow_inf_nan=False), expecting("a finite number")]
Text = Annotated[str, Strict(), expecting("a string")]

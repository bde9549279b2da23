"""Typed models of the searchers' JSON states (`state_dict()`), checked on resume before anything uses them.

A state file is untrusted input (a hand edit, a damaged disk): every field is described by a pydantic model next to
the searcher that owns it, built from the strict types below (no "1" -> 1, no true -> 1, no 1.5 -> 1), and
`parse_state` turns the first problem into one BadInputError naming the key path, e.g.
`extra.queue[3].group: expected an integer >= 0, got 'two'`. What a model cannot know (an index into the searcher's
latency groups or instances, the length of an encoded arch) is checked by the searcher with `check_state`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Annotated, Any, TypeVar

from pydantic import BaseModel, ConfigDict, Discriminator, Field, Strict, ValidationError, WrapValidator
from pydantic_core import PydanticCustomError

from inas.errors import BadInputError, excerpt
from inas.space import Arch, SearchSpace, arch_from_dict
from inas.validation_problems import key_path, problem_text

Model = TypeVar("Model", bound=BaseModel)



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


Flag = Annotated[bool, Strict(), expecting("true or false")]
Integer = Annotated[int, Strict(), expecting("an integer")]
Count = Annotated[int, Strict(), Field(ge=0), expecting("an integer >= 0")]
Generation = Annotated[int, Strict(), Field(ge=-1), expecting("an integer >= -1 (-1: none yet)")]
Seed = Annotated[int, Strict(), Field(ge=0, lt=2**32), expecting("an integer in [0, 2**32) (a seed)")]
Number = Annotated[float, Strict(), Field(allow_inf_nan=False), expecting("a finite number")]
Milliseconds = Annotated[float, Strict(), Field(ge=0, allow_inf_nan=False), expecting("a finite number >= 0")]
Text = Annotated[str, Strict(), expecting("a string")]
ArchDoc = Annotated[dict[str, Any], expecting("an architecture (a JSON object)")]  # checked by `state_arch`


def by_first_item(what: str) -> Discriminator:
    """Pydantic metadata of a union of JSON lists told apart by their first item (each member `Tag`ged with it, e.g.
    a log event ["a", arch id]); any other value is refused as "expected `what`"."""
    return Discriminator(_first_item, custom_error_type="expected", custom_error_message=f"expected {what}")


def _first_item(value: Any) -> str | None:
    return value[0] if isinstance(value, list) and value and isinstance(value[0], str) else None


class StateModel(BaseModel):
    """Base of the state models: unknown keys are refused, the parsed state is read-only."""

    model_config = ConfigDict(extra="forbid", frozen=True)


def parse_state(model: type[Model], doc: Any, key: str = "") -> Model:
    """`doc` (the state at `key`, "" for the whole state) checked against `model`; BadInputError naming the key path
    of the first problem otherwise."""
    try:
        return model.model_validate(doc)
    except ValidationError as exc:
        error = exc.errors()[0]
        path = key_path(doc, error["loc"], parent=key)
        raise BadInputError(problem_text(error), key=path or None) from None






def check_state(ok: bool, key: str, message: str) -> None:
    """BadInputError naming `key` with `message` unless `ok` (what a state model cannot know by itself)."""
    if not ok:
        raise BadInputError(message, key=key)


def check_below(value: int, limit: int, key: str, what: str) -> None:
    """`value` (an index >= 0) is below `limit`, the number of `what`; BadInputError naming `key` otherwise."""
    check_state(value < limit, key, f"expected an index of one of the {limit} {what}, got {value}")


def check_encoded(indices: Sequence[int], sizes: Sequence[int], key: str) -> None:
    """`indices` is an encoded arch: one option index per dimension of the encoding, each below its size."""
    check_state(len(indices) == len(sizes) and all(0 <= i < n for i, n in zip(indices, sizes, strict=False)), key,
                f"expected an encoded architecture ({len(sizes)} option indices, each below its dimension's size), "
                f"got {excerpt(list(indices))}")


def state_arch(doc: Any, space: SearchSpace, key: str) -> Arch:
    """The arch of a state document at `key`, checked on `space`; BadInputError naming the key path otherwise."""
    try:
        return arch_from_dict(doc, space)
    except BadInputError as exc:
        inner = exc.key if exc.key not in (None, "<root>") else None
        message = str(exc).removeprefix(f"{exc.key}: ") if exc.key is not None else str(exc)
        raise BadInputError(message, key=key if inner is None else f"{key}.{inner}") from None

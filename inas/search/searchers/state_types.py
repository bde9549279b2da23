"""Typed models of the searchers' JSON states (`state_dict()`), checked on resume before anything uses them.

A state file is untrusted input (a hand edit, a damaged disk): every field is described by a pydantic model next to
the searcher that owns it, a `DocumentModel` built from the strict types of `inas.validation_problems` (no "1" -> 1,
no true -> 1, no 1.5 -> 1) and the searcher-specific ones below, and `parse_document(model, state, key=...)` turns
the first problem into one BadInputError naming the key path, e.g. `extra.queue[3].group: expected an integer >= 0,
got 'two'`. What a model cannot know (an index into the searcher's latency groups or instances, the length of an
encoded arch) is checked by the searcher with `check_state`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated, Any, Literal

from pydantic import Discriminator, Field, Strict, Tag

from inas.errors import BadInputError, excerpt
from inas.space import Arch, SearchSpace, arch_from_dict
from inas.validation_problems import Text, expecting

Generation = Annotated[int, Strict(), Field(ge=-1), expecting("an integer >= -1 (-1: none yet)")]
Seed = Annotated[int, Strict(), Field(ge=0, lt=2**32), expecting("an integer in [0, 2**32) (a seed)")]
Milliseconds = Annotated[float, Strict(), Field(ge=0, allow_inf_nan=False), expecting("a finite number >= 0")]
ArchDoc = Annotated[dict[str, Any], expecting("an architecture (a JSON object)")]  # checked by `state_arch`


# a log event of an ask-and-tell optimiser (nevergrad's, Optuna's study): it asked and decoded this arch
AskEvent = Annotated[tuple[Literal["a"], Text], expecting('["a", arch id]'), Tag("a")]


def by_first_item(what: str) -> Discriminator:
    """Pydantic metadata of a union of JSON lists told apart by their first item (each member `Tag`ged with it, e.g.
    a log event ["a", arch id]); any other value is refused as "expected `what`"."""
    return Discriminator(_first_item, custom_error_type="expected", custom_error_message=f"expected {what}")


def _first_item(value: Any) -> str | None:
    return value[0] if isinstance(value, list) and value and isinstance(value[0], str) else None


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

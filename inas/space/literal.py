"""Read the Python dict repr of the original iNAS arch files as plain data, WITHOUT evaluating anything.

Files written under NumPy >= 2 hold reprs such as `np.int64(40)` or `np.float64(6.0)`. The text is parsed with
`ast.parse` and walked: only literal nodes (numbers, strings, booleans, None, lists, tuples, dicts with literal
keys, a sign before a number) and calls `np.<scalar>(<number literal>)` / `numpy.<scalar>(...)` of a fixed list of
NumPy scalar types are accepted; anything else (names, attributes, other calls, operators, comprehensions) is an
error naming its line. Tuples become lists. Nesting deeper than `MAX_DEPTH` and texts over `MAX_CHARS` are refused.
"""

from __future__ import annotations

import ast
import warnings
from typing import Any, TypeGuard

MAX_DEPTH = 32
MAX_CHARS = 1 << 20
_NUMPY_MODULES = ("np", "numpy")
_NUMPY_INTS = ("int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64", "intc", "intp")
_NUMPY_FLOATS = ("float16", "float32", "float64", "double")
_PLAIN = (int, float, str, bool, type(None))


class LiteralError(ValueError):
    """The text is not a plain literal (or is too big / too deep); the message says where."""


def parse_literal(text: str) -> Any:
    """The plain value (dict / list / number / str / bool / None) written in `text`; LiteralError otherwise."""
    if len(text) > MAX_CHARS:
        raise LiteralError(f"longer than {MAX_CHARS} characters")
    try:
        with warnings.catch_warnings():  # e.g. "invalid decimal literal": the text is refused or read, not warned on
            warnings.simplefilter("ignore", SyntaxWarning)
            tree = ast.parse(text.strip(), mode="eval")
    except (SyntaxError, ValueError) as exc:
        raise LiteralError(f"not a Python literal ({getattr(exc, 'msg', None) or exc})") from None
    except (RecursionError, MemoryError):
        raise LiteralError(f"nested deeper than {MAX_DEPTH} levels") from None
    return _value(tree.body, 1)


def _value(node: ast.AST, depth: int) -> Any:
    if depth > MAX_DEPTH:
        raise LiteralError(f"nested deeper than {MAX_DEPTH} levels")
    if isinstance(node, ast.Constant) and type(node.value) in _PLAIN:
        return node.value
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub | ast.UAdd):
        number = _number(node.operand)
        return -number if isinstance(node.op, ast.USub) else number
    if isinstance(node, ast.List | ast.Tuple):
        return [_value(item, depth + 1) for item in node.elts]
    if isinstance(node, ast.Dict):
        if any(key is None for key in node.keys):
            raise LiteralError(f"`**` unpacking at line {node.lineno} is not a literal")
        keys = [_key(key) for key in node.keys]
        return dict(zip(keys, (_value(v, depth + 1) for v in node.values), strict=True))
    if isinstance(node, ast.Call):
        return _numpy_scalar(node)
    raise LiteralError(f"holds a {type(node).__name__} at line {getattr(node, 'lineno', '?')}, not a plain literal")


def _key(node: ast.AST | None) -> str | int:
    if isinstance(node, ast.Constant) and isinstance(node.value, str | int) and not isinstance(node.value, bool):
        return node.value
    raise LiteralError(f"dict key at line {getattr(node, 'lineno', '?')} is not a string or integer literal")


def _is_number(value: object) -> TypeGuard[int | float]:
    """An int or a float literal value (bools are not numbers here)."""
    return isinstance(value, int | float) and not isinstance(value, bool)


def _number(node: ast.AST) -> int | float:
    if isinstance(node, ast.Constant) and _is_number(node.value):
        return node.value
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub) and isinstance(node.operand, ast.Constant) \
            and _is_number(node.operand.value):
        return -node.operand.value
    raise LiteralError(f"expected a number literal at line {getattr(node, 'lineno', '?')}")


def _numpy_scalar(node: ast.Call) -> int | float:
    func = node.func
    name = None
    if isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name) and func.value.id in _NUMPY_MODULES:
        name = func.attr
    if name not in _NUMPY_INTS + _NUMPY_FLOATS or node.keywords or len(node.args) != 1:
        raise LiteralError(f"call at line {node.lineno} is not np.<int or float type>(<number>)")
    number = _number(node.args[0])
    if name in _NUMPY_INTS:
        if not isinstance(number, int):
            raise LiteralError(f"np.{name} at line {node.lineno} holds a non-integer")
        return number
    return float(number)

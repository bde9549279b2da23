"""Reading a JSON document from a file as untrusted input (our own outputs read back included)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from inas.errors import BadInputError, clip


def read_json_document(path: Path, what: str, max_bytes: int) -> Any:
    """The parsed JSON of `path` (`what`, e.g. "search state", names it in errors); BadInputError naming the file
    when it is missing, larger than `max_bytes`, not UTF-8 or not JSON. The caller checks the document's shape."""
    try:
        if path.stat().st_size > max_bytes:
            raise BadInputError(f"larger than {max_bytes / 2**20:g} MiB: not a {what}", path=path)
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise BadInputError(f"cannot read the {what} ({type(exc).__name__}: {clip(str(exc), 200)})",
                            path=path) from None

"""List files (`NAME.lst`): parsing, and the pre-training check of every listed file.

A list file holds one sample per line, `<image> <label>` separated by whitespace, both relative to the data set
root (absolute paths are taken as they are). Blank lines and lines starting with `#` are skipped. A line with only
an image path is accepted by `read_list(..., require_labels=False)` (prediction-only lists).

`check_list` opens every listed file before training: it reports every problem at once (line number, path, what
is wrong) as one `ListCheckError`, a `BadInputError` naming the list file.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
from PIL import ImageFile, UnidentifiedImageError
from torch.utils.data import Dataset
from tqdm import tqdm

from inas.data.transforms import label_value_problem
from inas.errors import BadInputError, clip
from inas.images import IMAGE_ERRORS, UnreadableImage, open_image
from inas.paths import path_kind

Task = Literal["sod", "seg"]
TASKS: tuple[str, ...] = ("sod", "seg")
MAX_PROBLEMS_IN_MESSAGE = 200
SEG_LABEL_MODES = ("L", "P", "I", "I;16", "I;16B", "I;16L")


@dataclass(frozen=True)
class ListEntry:
    """One line of a list file: the resolved image path and label path (None for image-only lines)."""

    line_number: int
    image: Path
    label: Path | None

    @property
    def name(self) -> str:
        """The image file name without its extension (used to name predictions)."""
        return self.image.stem


@dataclass(frozen=True)
class ListProblem:
    """One problem found by `check_list`: where (line, path) and what."""

    line_number: int
    path: str
    what: str

    def __str__(self) -> str:
        return f"line {self.line_number}: {self.path}: {self.what}"


class ListCheckError(BadInputError):
    """Every problem of one list file; `problems` holds them all, the message lists them (one per line)."""

    def __init__(self, list_file: Path, problems: Sequence[ListProblem], num_lines: int) -> None:
        self.problems = list(problems)
        shown = [str(p) for p in self.problems[:MAX_PROBLEMS_IN_MESSAGE]]
        more = len(self.problems) - len(shown)
        if more > 0:
            shown.append(f"... and {more} more")
        head = f"{len(self.problems)} problem(s) in {num_lines} listed sample(s)"
        super().__init__("\n  ".join([head, *shown]), path=list_file)


def resolve_list_path(root: str | Path, list_file: str | Path) -> Path:
    """`list_file` itself if absolute, else `root / list_file`."""
    path = Path(list_file)
    return path if path.is_absolute() else Path(root) / path


def read_list(root: str | Path, list_file: str | Path, *, require_labels: bool = True) -> list[ListEntry]:
    """Parse a list file into entries with paths joined to `root`.

    Raises BadInputError (naming the list file and every bad line) if the file is missing, empty, or has lines with
    the wrong number of fields (1 field is accepted only when `require_labels` is False).
    """
    root = Path(root)
    path = resolve_list_path(root, list_file)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise BadInputError("list file not found", path=path) from None
    except (OSError, UnicodeError, ValueError) as exc:
        raise BadInputError(f"list file cannot be read ({clip(str(exc), 200)})", path=path) from None
    entries: list[ListEntry] = []
    problems: list[ListProblem] = []
    expected = "`<image> <label>`" if require_labels else "`<image> [<label>]`"
    for number, line in enumerate(text.splitlines(), start=1):
        fields = line.split()
        if not fields or fields[0].startswith("#"):
            continue
        if len(fields) > 2 or (require_labels and len(fields) != 2):
            problems.append(ListProblem(number, line.strip(), f"expected {expected}, got {len(fields)} field(s)"))
            continue
        label = root / fields[1] if len(fields) == 2 else None
        entries.append(ListEntry(number, root / fields[0], label))
    if problems:
        raise ListCheckError(path, problems, len(entries) + len(problems))
    if not entries:
        raise BadInputError("list file is empty (no `<image> <label>` lines)", path=path)
    return entries


def _jpeg_ends_with_eoi(path: Path) -> bool:
    """True if the file ends with the JPEG end-of-image marker (FF D9), a cheap completeness test."""
    with path.open("rb") as handle:
        handle.seek(0, 2)
        size = handle.tell()
        if size < 4:
            return False
        handle.seek(size - 2)
        return handle.read(2) == b"\xff\xd9"


def _decode_fully(path: Path) -> None:
    """Decode every pixel; truncated files raise even if some library set PIL's LOAD_TRUNCATED_IMAGES."""
    previous = ImageFile.LOAD_TRUNCATED_IMAGES
    ImageFile.LOAD_TRUNCATED_IMAGES = False
    try:
        with open_image(path) as image:
            image.load()
    finally:
        ImageFile.LOAD_TRUNCATED_IMAGES = previous


def inspect_image(path: Path, *, decode: bool = False) -> tuple[tuple[int, int], str]:
    """Check that `path` is a readable, complete image; return ((width, height), mode) read from the header.

    Fast by default: the size comes from the header; JPEGs must end with the EOI marker (else they are fully decoded,
    which detects truncation); other formats go through PIL's `verify()` (PNG: every chunk CRC). A JPEG damaged in
    the middle with intact header and end marker is only caught by `decode=True`, which decodes every file.
    Raises one of `IMAGE_ERRORS` when unreadable (a decompression bomb is an UnreadableImage, a ValueError).
    """
    with open_image(path) as image:
        size, mode, fmt = image.size, image.mode, image.format
        if not decode and fmt != "JPEG":
            image.verify()
    if decode or (fmt == "JPEG" and not _jpeg_ends_with_eoi(path)):
        _decode_fully(path)
    return size, mode


def _inspect(path: Path, line: int, problems: list[ListProblem], decode: bool) -> tuple[tuple[int, int], str] | None:
    try:
        kind = path_kind(path)
    except BadInputError as exc:  # a name too long, a lone surrogate, ...
        problems.append(ListProblem(line, ascii(str(path))[1:-1], str(exc).rsplit(": ", 1)[-1]))
        return None
    if kind != "file":
        problems.append(ListProblem(line, str(path), "file not found" if kind == "missing" else "not a file"))
        return None
    try:
        return inspect_image(path, decode=decode)
    except UnidentifiedImageError:
        problems.append(ListProblem(line, str(path), "not a readable image (unknown format)"))
    except UnreadableImage as exc:
        problems.append(ListProblem(line, str(path), str(exc)))
    except IMAGE_ERRORS as exc:
        problems.append(ListProblem(line, str(path), f"corrupt or truncated image ({clip(str(exc), 200)})"))
    return None


def _pair_problems(entry: ListEntry, task: Task, decode: bool, num_classes: int | None = None) -> list[ListProblem]:
    """What is wrong with one (image, label) line: unreadable files, differing sizes, a colour-coded seg label, and
    with `decode` and `num_classes` a seg label value that is no class id."""
    problems: list[ListProblem] = []
    assert entry.label is not None
    image_info = _inspect(entry.image, entry.line_number, problems, decode)
    label_info = _inspect(entry.label, entry.line_number, problems, decode)
    if image_info is None or label_info is None:
        return problems
    (image_size, _), (label_size, label_mode) = image_info, label_info
    if image_size != label_size:
        problems.append(ListProblem(entry.line_number, str(entry.label),
                                    f"label size {label_size[0]}x{label_size[1]} (WxH) differs from the image's "
                                    f"{image_size[0]}x{image_size[1]}"))
    if task == "seg" and label_mode not in SEG_LABEL_MODES:
        problems.append(ListProblem(entry.line_number, str(entry.label),
                                    "segmentation label must be single-channel trainIds (mode L/P/I), got mode "
                                    f"{label_mode}"))
    elif task == "seg" and decode and num_classes is not None:
        with open_image(entry.label) as label:
            problem = label_value_problem(np.asarray(label), num_classes)
        if problem is not None:
            problems.append(ListProblem(entry.line_number, str(entry.label), problem))
    return problems


def check_list(
    root: str | Path,
    list_file: str | Path,
    task: Task = "sod",
    *,
    decode: bool = False,
    progress: bool = True,
    num_classes: int | None = None,
) -> list[ListEntry]:
    """Verify every file of a list before training; return the entries when all are fine.

    For each line: the image and the label exist and are readable, complete images; the label has the image's size;
    for `seg`, the label is single-channel (trainIds, not a colour-coded PNG). All problems are collected and raised
    together as one ListCheckError (a BadInputError naming the list file, one `line N: path: what` per problem).
    An empty list is an error. `decode=True` fully decodes every file (slower, catches deeper corruption) and, for
    `seg` with `num_classes`, checks every label value is a class id or 255 (ignore).
    """
    if task not in TASKS:
        raise BadInputError(f"unknown task {task!r}, expected one of {TASKS}", key="task")
    path = resolve_list_path(root, list_file)
    entries = read_list(root, list_file, require_labels=True)
    problems: list[ListProblem] = []
    for entry in tqdm(entries, desc=f"check {path.name}", unit="pair", disable=not progress, leave=False):
        problems += _pair_problems(entry, task, decode, num_classes)
    if problems:
        raise ListCheckError(path, problems, len(entries))
    return entries


class ListDataset(Dataset):
    """Base of the labelled data sets over a list file: `root`, `list_file`, `entries` and `len()`.

    `check=True` runs `check_list` for `TASK` first (every file readable, label size = image size; all problems in
    one error); otherwise the list is only parsed (labels required). Subclasses build samples in `__getitem__`,
    taking the entry from `labelled_entry(index)`.
    """

    TASK: Task

    def __init__(self, root: str | Path, list_file: str | Path, check: bool, progress: bool) -> None:
        self.root = Path(root)
        self.list_file = str(list_file)
        if check:
            entries = check_list(root, list_file, self.TASK, progress=progress)
        else:
            entries = read_list(root, list_file, require_labels=True)
        self.entries: Sequence[ListEntry] = entries

    def __len__(self) -> int:
        return len(self.entries)

    def labelled_entry(self, index: int) -> ListEntry:
        """The entry at `index` (it has a label: the list was read with labels required)."""
        entry = self.entries[index]
        assert entry.label is not None
        return entry

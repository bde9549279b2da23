"""Prediction on a folder of images: one PNG per readable image, written at the image's original size.

- SOD: an 8-bit grayscale saliency map, 0..255 (`inas.deploy.maps.saliency_uint8`).
- Segmentation: a palette PNG whose pixel values are the class ids, coloured with the Cityscapes palette
  (`inas.deploy.palette.colorize`).

Every regular, non-hidden file directly inside the input folder is tried (not recursive). A file that cannot be read
as an image (corrupt, truncated, not an image at all) is skipped and listed in the report, never an exception; so is
a second input with the same file stem as an earlier one (the outputs would collide), and so is every other non-hidden
entry (a sub-folder, a broken link, a symlink loop, a special file), with what it is. The output folder must not be
the input folder (the maps would overwrite images of the same name). Outputs are `<stem>.png` in the
output folder, each written atomically; the output folder is created at the first output, so a run that
could read no image leaves none behind. Inputs are resized to the network input size (bilinear), outputs back.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path

from PIL import Image
from tqdm import tqdm

from inas.data import image_to_input, load_rgb
from inas.deploy.maps import saliency_uint8, segmentation_labels
from inas.deploy.palette import colorize
from inas.deploy.runtime import Predictor
from inas.errors import BadInputError
from inas.io import atomic_path, remove_stale_temp_files_in
from inas.paths import check_output_path, path_kind


@dataclass
class PredictReport:
    """What `predict_folder` did: outputs written, inputs skipped with the reason, wall time."""

    written: list[Path] = field(default_factory=list)
    failed: list[tuple[Path, str]] = field(default_factory=list)
    seconds: float = 0.0

    def summary(self) -> str:
        total = len(self.written) + len(self.failed)
        rate = len(self.written) / self.seconds if self.seconds > 0 else 0.0
        return (f"{len(self.written)} of {total} images predicted, {len(self.failed)} skipped "
                f"({self.seconds:.1f} s, {rate:.1f} images/s)")


_NOT_READ = {  # why an entry of the input folder is not read, by its `path_kind`
    "folder": "a sub-folder (predict reads only the files directly inside the input folder)",
    "missing": "a broken link (its target does not exist)",
}


def list_inputs(folder: str | Path) -> tuple[list[Path], list[tuple[Path, str]]]:
    """The regular, non-hidden files directly inside `folder`, sorted by name, and the other non-hidden entries with
    what they are (a sub-folder, a broken link, a symlink loop, ...: not read, but reported). BadInputError if the
    folder is missing or holds neither."""
    root = Path(folder)
    if path_kind(root) != "folder":
        raise BadInputError("the input folder does not exist or is not a folder", path=root)
    try:
        entries = sorted(p for p in root.iterdir() if not p.name.startswith("."))
    except OSError as exc:
        raise BadInputError(f"the input folder cannot be listed ({exc.strerror or exc})", path=root) from None
    files: list[Path] = []
    others: list[tuple[Path, str]] = []
    for path in entries:
        try:
            kind = path_kind(path)
        except BadInputError as exc:  # a symlink loop, ...
            others.append((path, str(exc).removeprefix(f"{path}: ")))
            continue
        if kind == "file":
            files.append(path)
        else:
            others.append((path, _NOT_READ.get(kind, "not a regular file")))
    if not files and not others:
        raise BadInputError("the input folder holds no files", path=root)
    return files, others


def _read_image(path: Path) -> tuple[Image.Image | None, str]:
    """(RGB image, "") or (None, reason): a bad file is a result, never an exception."""
    try:
        return load_rgb(path), ""
    except BadInputError as exc:
        return None, str(exc).removeprefix(f"{path}: ")
    except Exception as exc:  # noqa: BLE001 - e.g. DecompressionBombError, odd modes: skip the file, report why
        return None, f"image file cannot be read ({exc.__class__.__name__}: {exc})"


def predict_image(predictor: Predictor, image: Image.Image, input_hw: tuple[int, int]) -> Image.Image:
    """The output PNG image (original size) for one RGB image."""
    info = predictor.info
    size_hw = (image.height, image.width)
    maps = predictor(image_to_input(image, input_hw)[None])
    if info.task == "sod":
        return Image.fromarray(saliency_uint8(maps, size_hw, info.head_activation).numpy())
    return colorize(segmentation_labels(maps, size_hw).numpy(), info.num_classes)


def _make_folder(out: Path) -> list[Path]:
    """Make `out` (and missing parents) and clean stale temp files; the folders made, deepest first."""
    made = [p for p in (out, *out.parents) if not p.exists()]
    out.mkdir(parents=True, exist_ok=True)
    remove_stale_temp_files_in(out)  # once, not at every image (see inas.io)
    return made


def _remove_empty_folders(out: Path, made: list[Path]) -> None:
    """Remove the folders `_make_folder` made, deepest first, while they are empty."""
    for folder in made:
        try:
            folder.rmdir()
        except OSError:
            return


def predict_folder(predictor: Predictor, input_dir: str | Path, out_dir: str | Path, *,
                   input_hw: tuple[int, int] | None = None, progress: bool = True) -> PredictReport:
    """Predict every image of `input_dir` into `out_dir` (see the module docstring). `input_hw` defaults to the
    model's fixed input size, else its stored input size."""
    files, others = list_inputs(input_dir)
    input_hw = input_hw or predictor.fixed_hw or predictor.info.input_hw
    out = check_output_path(out_dir, "folder", key="--out")
    if path_kind(out) == "folder" and os.path.samefile(out, input_dir):
        raise BadInputError("the output folder is the input folder: the maps (<stem>.png) would overwrite the images "
                            "of the same name; give another folder", path=out, key="--out")
    report = PredictReport(failed=list(others))
    start = time.perf_counter()
    seen: dict[str, Path] = {}
    made: list[Path] = []
    for path in tqdm(files, desc="predict", unit="img", disable=not progress):
        if path.stem in seen:
            report.failed.append((path, f"same file stem as {seen[path.stem].name}; output would collide"))
            continue
        image, reason = _read_image(path)
        if image is None:
            report.failed.append((path, reason))
            continue
        seen[path.stem] = path
        result = predict_image(predictor, image, input_hw)
        if not report.written:  # the folder is made at the first output: no image read, no folder left behind
            made = _make_folder(out)
        target = out / f"{path.stem}.png"
        try:
            with atomic_path(target, clean_stale=False) as tmp:  # the folder was cleaned once, in _make_folder
                result.save(tmp, format="PNG")
        except OSError:
            if not report.written:  # e.g. a full disk at the first map: leave no empty folder behind
                _remove_empty_folders(out, made)
            raise
        report.written.append(target)
    report.seconds = time.perf_counter() - start
    return report

"""Score a folder of predicted maps against a folder of ground-truth masks, matched by file stem.

- Images are PNG, JPG/JPEG or BMP files directly inside each folder (not recursive); `a.png` in one folder matches
  `a.jpg` in the other. Cityscapes suffixes are not part of the stem: `x_gtFine_labelTrainIds.png` (or
  `_gtFine_labelIds`) matches the `x.png` that `test --save-maps` writes for `x_leftImg8bit.png`.
- SOD: both are read as 8-bit grayscale (PIL mode "L"). A prediction whose size differs from its mask is resized to
  the mask's size with bilinear interpolation (half-pixel centres, no antialiasing: the behaviour of
  `cv2.INTER_LINEAR`, which the original iNAS used) and rounded back to uint8.
- Segmentation: both are read as single-channel label maps (PIL modes "L", "P" (palette indices), "I", "I;16");
  a prediction of another size is resized with nearest-neighbour interpolation (labels must not be blended).
- Ground truth without a prediction is an error unless `allow_missing` (then those images are skipped and listed);
  predictions without ground truth are ignored with a warning.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from tqdm import tqdm

from inas.errors import BadInputError, clip
from inas.images import IMAGE_ERRORS, open_image, sod_mask_problem
from inas.metrics.seg import SegMetrics
from inas.metrics.sod import SODMetrics
from inas.paths import path_kind

log = logging.getLogger(__name__)

IMAGE_SUFFIXES: tuple[str, ...] = (".png", ".jpg", ".jpeg", ".bmp")
LABEL_MODES: tuple[str, ...] = ("L", "P", "I", "I;16")
_LISTED = 10  # file names shown in an error or warning before "... and N more"
CITYSCAPES_SUFFIXES = ("_leftImg8bit", "_gtFine_labelTrainIds", "_gtFine_labelIds")  # not part of a sample's stem


def sample_stem(path: Path) -> str:
    """The stem pairs are matched by: the file stem without a Cityscapes suffix."""
    for suffix in CITYSCAPES_SUFFIXES:
        if path.stem.endswith(suffix):
            return path.stem.removesuffix(suffix)
    return path.stem


@dataclass(frozen=True)
class FolderMatch:
    """Prediction / ground-truth pairs matched by stem, sorted by stem, plus the files left unmatched."""

    pairs: list[tuple[Path, Path]]
    missing_predictions: list[Path]  # ground-truth files with no prediction
    extra_predictions: list[Path]  # predictions with no ground truth


@dataclass
class FolderEvaluation:
    """The metrics of one folder pair and what was (not) scored."""

    metrics: dict[str, float]
    num_images: int
    resized: int  # predictions resized to their mask's size
    missing_predictions: list[Path] = field(default_factory=list)
    extra_predictions: list[Path] = field(default_factory=list)


def _names(paths: Sequence[Path]) -> str:
    shown = ", ".join(p.name for p in paths[:_LISTED])
    return shown + (f" ... and {len(paths) - _LISTED} more" if len(paths) > _LISTED else "")


def list_images(folder: str | Path, role: str) -> dict[str, Path]:
    """`{stem: path}` of the images directly inside `folder`; `role` ("prediction", "ground truth") names it in
    errors. Raises BadInputError for a missing or empty folder or two images with the same stem."""
    root = Path(folder)
    if path_kind(root) != "folder":
        raise BadInputError(f"the {role} folder does not exist or is not a folder", path=root)
    try:
        entries = sorted(root.iterdir())
    except OSError as exc:
        raise BadInputError(f"the {role} folder cannot be listed ({exc.strerror or exc})", path=root) from None
    found: dict[str, Path] = {}
    for path in entries:
        if path.suffix.lower() not in IMAGE_SUFFIXES or path_kind(path) != "file":
            continue
        stem = sample_stem(path)
        if stem in found:
            raise BadInputError(
                f"two {role} images share the stem '{stem}' ({found[stem].name}, {path.name}); keep one per stem",
                path=root,
            )
        found[stem] = path
    if not found:
        folders = [path for path in entries if path_kind(path) == "folder"]
        inside = (f"; it holds sub-folder(s) {_names(folders)}: images are read directly inside the folder given, "
                  "not in its sub-folders") if folders else ""
        raise BadInputError(f"no {role} images ({', '.join(IMAGE_SUFFIXES)}) in this folder{inside}", path=root)
    return found


def match_by_stem(pred_dir: str | Path, gt_dir: str | Path) -> FolderMatch:
    """Match predictions to ground truth by file stem."""
    preds = list_images(pred_dir, "prediction")
    gts = list_images(gt_dir, "ground truth")
    common = sorted(preds.keys() & gts.keys())
    return FolderMatch(
        pairs=[(preds[stem], gts[stem]) for stem in common],
        missing_predictions=[gts[stem] for stem in sorted(gts.keys() - preds.keys())],
        extra_predictions=[preds[stem] for stem in sorted(preds.keys() - gts.keys())],
    )


def _open(path: Path) -> Image.Image:
    try:
        image = open_image(path)
        image.load()
    except IMAGE_ERRORS as exc:
        raise BadInputError(f"not a readable image ({exc.__class__.__name__}: {clip(str(exc), 200)})",
                            path=path) from None
    return image


def load_gray(path: str | Path) -> np.ndarray:
    """An image as 8-bit grayscale, (H, W) uint8."""
    return np.asarray(_open(Path(path)).convert("L"))


def load_sod_mask(path: str | Path) -> np.ndarray:
    """A ground-truth SOD mask as 8-bit grayscale, (H, W) uint8; BadInputError for a mask whose foreground would be
    lost (transparent pixels, 0/1 values: `inas.images.sod_mask_problem`)."""
    image = _open(Path(path))
    problem = sod_mask_problem(image)
    if problem is not None:
        raise BadInputError(problem, path=path)
    return np.asarray(image.convert("L"))


def load_labels(path: str | Path) -> np.ndarray:
    """A single-channel label image, (H, W) int64 (palette images give their palette indices)."""
    image = _open(Path(path))
    if image.mode not in LABEL_MODES:
        raise BadInputError(
            f"expected a single-channel label image (PIL mode {'/'.join(LABEL_MODES)}), got mode {image.mode}",
            path=path,
        )
    return np.asarray(image).astype(np.int64)


def resize_bilinear_uint8(image: np.ndarray, size_hw: tuple[int, int]) -> np.ndarray:
    """Bilinear resize of a (H, W) uint8 map to `size_hw` (half-pixel centres, no antialiasing), rounded to uint8."""
    tensor = torch.from_numpy(image.astype(np.float32)).view(1, 1, *image.shape)
    resized = F.interpolate(tensor, size=size_hw, mode="bilinear", align_corners=False)
    return resized[0, 0].round().clamp(0, 255).to(torch.uint8).numpy()


def resize_nearest_labels(labels: np.ndarray, size_hw: tuple[int, int]) -> np.ndarray:
    """Nearest-neighbour resize of a (H, W) integer label map to `size_hw`."""
    tensor = torch.from_numpy(labels.astype(np.float64)).view(1, 1, *labels.shape)
    resized = F.interpolate(tensor, size=size_hw, mode="nearest")
    return resized[0, 0].to(torch.int64).numpy()


def evaluate_folders(
    pred_dir: str | Path,
    gt_dir: str | Path,
    task: str = "sod",
    protocol: str = "standard",
    num_classes: int = 19,
    ignore_index: int = 255,
    class_names: Sequence[str] | None = None,
    allow_missing: bool = False,
    progress: bool = True,
) -> FolderEvaluation:
    """Score every prediction in `pred_dir` against the mask of the same stem in `gt_dir`.

    `task` "sod" returns the keys of `SOD_METRIC_NAMES`; "seg" returns `miou` and `iou_<class>`.
    Raises BadInputError for missing/empty folders, unreadable images, missing predictions (unless
    `allow_missing`) and maps the metrics refuse (naming the file).
    """
    if task not in ("sod", "seg"):
        raise BadInputError(f"task must be 'sod' or 'seg', got {task!r}", key="task")
    match = _checked_match(pred_dir, gt_dir, allow_missing)
    if task == "sod":
        scorer: SODMetrics | SegMetrics = SODMetrics(protocol=protocol)
    else:
        scorer = SegMetrics(num_classes, ignore_index=ignore_index, class_names=class_names, protocol=protocol)
    resized = 0
    for pred_path, gt_path in tqdm(match.pairs, desc="evaluate", unit="img", disable=not progress):
        pred, gt, was_resized = _load_pair(pred_path, gt_path, task)
        resized += was_resized
        try:
            scorer.update(pred, gt)
        except ValueError as exc:
            raise BadInputError(f"cannot score against {gt_path.name}: {exc}", path=pred_path) from exc
    if isinstance(scorer, SegMetrics) and (scorer.confusion is None or int(scorer.confusion.sum()) == 0):
        raise BadInputError(f"every ground-truth pixel of the {len(match.pairs)} matched image(s) is the ignore index "
                            f"{ignore_index}: nothing to score (labels of another encoding, e.g. labelIds instead of "
                            "labelTrainIds?)", path=gt_dir)
    if resized:
        log.info("%d prediction(s) were resized to the size of their ground truth", resized)
    return FolderEvaluation(
        metrics=scorer.compute(),
        num_images=len(match.pairs),
        resized=resized,
        missing_predictions=match.missing_predictions,
        extra_predictions=match.extra_predictions,
    )


def _checked_match(pred_dir: str | Path, gt_dir: str | Path, allow_missing: bool) -> FolderMatch:
    """Predictions paired with ground truths by file stem; ground truths without a prediction are an error (a
    warning with `allow_missing`), predictions without one a warning, no pair at all an error."""
    match = match_by_stem(pred_dir, gt_dir)
    if not match.pairs:  # before the --allow-missing hint, which cannot help here
        raise BadInputError(f"no prediction matches a ground-truth image of {gt_dir} by file stem (predictions: "
                            f"{_names(match.extra_predictions)}; ground truth: {_names(match.missing_predictions)})",
                            path=pred_dir)
    if match.missing_predictions:
        message = (
            f"{len(match.missing_predictions)} ground-truth image(s) have no prediction: "
            f"{_names(match.missing_predictions)}"
        )
        if not allow_missing:
            raise BadInputError(message + " (pass --allow-missing to score only the matched images)", path=pred_dir)
        log.warning("%s; scoring only the %d matched images", message, len(match.pairs))
    if match.extra_predictions:
        log.warning(
            "%d prediction(s) have no ground truth and are ignored: %s",
            len(match.extra_predictions),
            _names(match.extra_predictions),
        )
    return match


def _load_pair(pred_path: Path, gt_path: Path, task: str) -> tuple[np.ndarray, np.ndarray, bool]:
    """(prediction, ground truth, whether the prediction was resized to the ground truth's size): grey maps for
    "sod" (bilinear resize), label maps for "seg" (nearest)."""
    load, resize = (load_gray, resize_bilinear_uint8) if task == "sod" else (load_labels, resize_nearest_labels)
    gt, pred = (load_sod_mask(gt_path) if task == "sod" else load(gt_path)), load(pred_path)
    if pred.shape == gt.shape:
        return pred, gt, False
    return resize(pred, gt.shape), gt, True

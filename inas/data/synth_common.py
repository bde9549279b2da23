"""Building blocks of the synthetic data generators (numpy + PIL only): textures, shapes, compositing, output.

Everything is drawn from a `numpy.random.Generator` seeded per image by (seed, split, index), so the files do not
depend on the number of worker processes or their order. Coverage masks are anti-aliased by rendering polygons at
`SUPERSAMPLE`x resolution and box-filtering down.
"""

from __future__ import annotations

import colorsys
import json
import multiprocessing
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw
from tqdm import tqdm

from inas.errors import BadInputError
from inas.io import atomic_write_text
from inas.paths import check_output_path, path_kind

SUPERSAMPLE = 4
SYNTH_MARKER = ".inas-synth.json"  # in every data set written here: `--force` replaces only folders holding it
SYNTH_GENERATORS = ("inas.data.synth_sod", "inas.data.synth_seg")
MAX_SIZE = 4096  # pixels: the config's bound on image sides
MAX_SAMPLES = 1_000_000
SPLIT_CODES = {"train": 0, "test": 1, "val": 2}

Polygon = np.ndarray  # (K, 2) float32 array of (x, y) pixel coordinates


@dataclass(frozen=True)
class SynthResult:
    """What a generator wrote: the folder, the number of samples per list file and the seconds it took."""

    out: Path
    counts: dict[str, int]
    seconds: float


def image_rng(seed: int, split: str, index: int) -> np.random.Generator:
    """The generator of one image: independent of the other images and of the worker that draws it."""
    return np.random.default_rng([int(seed), SPLIT_CODES[split], int(index)])


def hsv_colour(hue: float, saturation: float, value: float) -> np.ndarray:
    """HSV in [0, 1] (hue wraps) -> RGB float32 (3,) in [0, 1]."""
    return np.asarray(colorsys.hsv_to_rgb(hue % 1.0, float(np.clip(saturation, 0, 1)), float(np.clip(value, 0, 1))),
                      dtype=np.float32)


# ----------------------------------------------------------------------------------------------------- patterns
# Each pattern returns a float32 (h, w) array in [0, 1] over a box of the image whose top-left is (y0, x0).


def smooth_noise(rng: np.random.Generator, h: int, w: int, cells: int) -> np.ndarray:
    """Low-frequency noise: a random grid of about `cells` cells along the longer side, bicubic-upsampled."""
    cells = max(2, int(cells))
    gh = max(2, round(cells * h / max(h, w)))
    gw = max(2, round(cells * w / max(h, w)))
    grid = Image.fromarray(rng.integers(0, 256, (gh, gw), dtype=np.uint8), mode="L")
    return np.asarray(grid.resize((w, h), Image.BICUBIC), dtype=np.float32) * (1.0 / 255.0)


def stripes(rng: np.random.Generator, h: int, w: int, period_px: float) -> np.ndarray:
    """Sinusoidal stripes with a random orientation and phase, period in pixels."""
    angle = rng.uniform(0, np.pi)
    yy = np.arange(h, dtype=np.float32)[:, None]
    xx = np.arange(w, dtype=np.float32)[None, :]
    phase = rng.uniform(0, 2 * np.pi)
    proj = xx * np.float32(np.cos(angle)) + yy * np.float32(np.sin(angle))
    return 0.5 + 0.5 * np.sin(proj * np.float32(2 * np.pi / period_px) + np.float32(phase))


def gradient(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """A linear ramp from 0 to 1 along a random direction."""
    angle = rng.uniform(0, 2 * np.pi)
    yy = np.arange(h, dtype=np.float32)[:, None]
    xx = np.arange(w, dtype=np.float32)[None, :]
    proj = xx * np.float32(np.cos(angle)) + yy * np.float32(np.sin(angle))
    lo, hi = float(proj.min()), float(proj.max())
    return (proj - lo) * np.float32(1.0 / max(hi - lo, 1e-6))


def fine_noise(rng: np.random.Generator, h: int, w: int, sigma: float) -> np.ndarray:
    """Per-pixel Gaussian noise centred on 0.5 (float32)."""
    noise = rng.standard_normal((h, w), dtype=np.float32)
    noise *= np.float32(sigma)
    noise += np.float32(0.5)
    return np.minimum(np.maximum(noise, 0.0, out=noise), 1.0, out=noise)


def checks(rng: np.random.Generator, h: int, w: int, period_px: float) -> np.ndarray:
    """A checkerboard of period `period_px` (hard-edged 0 / 1 tiles, axis-aligned)."""
    yy = (np.arange(h)[:, None] // max(1, int(period_px / 2))) % 2
    xx = (np.arange(w)[None, :] // max(1, int(period_px / 2))) % 2
    return (yy ^ xx).astype(np.float32)


def two_tone(pattern: np.ndarray, colour_a: np.ndarray, colour_b: np.ndarray) -> np.ndarray:
    """(h, w) pattern in [0, 1] -> (h, w, 3) blend between two RGB colours."""
    t = pattern[..., None]
    return colour_a + (colour_b - colour_a) * t


# ----------------------------------------------------------------------------------------------------- shapes


def rotate(points: np.ndarray, angle: float) -> np.ndarray:
    c, s = np.cos(angle), np.sin(angle)
    return points @ np.asarray([[c, s], [-s, c]], dtype=np.float32)


def ellipse(rng: np.random.Generator, radius: float, n: int = 48) -> Polygon:
    t = np.linspace(0, 2 * np.pi, n, endpoint=False)
    aspect = rng.uniform(0.45, 1.0)
    pts = np.stack([np.cos(t) * radius, np.sin(t) * radius * aspect], axis=1)
    return rotate(pts.astype(np.float32), rng.uniform(0, np.pi))


def irregular_polygon(rng: np.random.Generator, radius: float) -> Polygon:
    k = int(rng.integers(3, 9))
    t = np.sort(rng.uniform(0, 2 * np.pi, k))
    r = radius * rng.uniform(0.65, 1.0, k)
    return np.stack([np.cos(t) * r, np.sin(t) * r], axis=1).astype(np.float32)


def star(rng: np.random.Generator, radius: float) -> Polygon:
    k = int(rng.integers(4, 9))
    inner = rng.uniform(0.35, 0.65)
    t = np.linspace(0, 2 * np.pi, 2 * k, endpoint=False) + rng.uniform(0, np.pi)
    r = np.where(np.arange(2 * k) % 2 == 0, radius, radius * inner)
    return np.stack([np.cos(t) * r, np.sin(t) * r], axis=1).astype(np.float32)


def blob(rng: np.random.Generator, radius: float, n: int = 72) -> Polygon:
    """A smooth random outline: a circle whose radius varies with a few random harmonics."""
    t = np.linspace(0, 2 * np.pi, n, endpoint=False)
    r = np.ones(n)
    for m in range(2, 6):
        r += rng.uniform(0, 0.28) / m * np.cos(m * t + rng.uniform(0, 2 * np.pi))
    r = radius * r / r.max()
    pts = np.stack([np.cos(t) * r, np.sin(t) * r * rng.uniform(0.6, 1.0)], axis=1)
    return rotate(pts.astype(np.float32), rng.uniform(0, np.pi))


SHAPES: dict[str, Callable[[np.random.Generator, float], Polygon]] = {
    "ellipse": ellipse,
    "polygon": irregular_polygon,
    "star": star,
    "blob": blob,
}


def random_shape(rng: np.random.Generator, radius: float) -> Polygon:
    """One of the SHAPES, centred on (0, 0)."""
    names = list(SHAPES)
    return SHAPES[names[int(rng.integers(len(names)))]](rng, radius)


@dataclass(frozen=True)
class Box:
    """Integer pixel box [y0, y1) x [x0, x1) inside an image."""

    y0: int
    y1: int
    x0: int
    x1: int

    @property
    def shape(self) -> tuple[int, int]:
        return self.y1 - self.y0, self.x1 - self.x0

    @property
    def slices(self) -> tuple[slice, slice]:
        return slice(self.y0, self.y1), slice(self.x0, self.x1)


def polygon_box(points: Polygon, h: int, w: int) -> Box | None:
    """The polygon's bounding box clipped to an h x w image (None if it falls outside or is empty)."""
    x0 = max(0, int(np.floor(points[:, 0].min())))
    x1 = min(w, int(np.ceil(points[:, 0].max())) + 1)
    y0 = max(0, int(np.floor(points[:, 1].min())))
    y1 = min(h, int(np.ceil(points[:, 1].max())) + 1)
    if x1 <= x0 or y1 <= y0:
        return None
    return Box(y0, y1, x0, x1)


def coverage(points: Polygon, box: Box, antialias: bool = True) -> np.ndarray:
    """Anti-aliased coverage (float32 (h, w) in [0, 1]) of a polygon over `box` (absolute pixel coordinates)."""
    h, w = box.shape
    ss = SUPERSAMPLE if antialias else 1
    canvas = Image.new("L", (w * ss, h * ss), 0)
    local = (points - np.asarray([box.x0, box.y0], dtype=np.float32)) * ss
    ImageDraw.Draw(canvas).polygon([(float(x), float(y)) for x, y in local], fill=255)
    if ss > 1:
        canvas = canvas.reduce(ss)
    return np.asarray(canvas, dtype=np.float32) * (1.0 / 255.0)


def composite(image: np.ndarray, box: Box, alpha: np.ndarray, texture: np.ndarray) -> None:
    """In place: image[box] = image[box] * (1 - alpha) + texture * alpha; image float32 (H, W, 3)."""
    region = image[box.slices]
    a = alpha[..., None]
    region += (texture - region) * a


# ----------------------------------------------------------------------------------------------------- output


def to_uint8(image: np.ndarray) -> np.ndarray:
    """float [0, 1] -> uint8 with rounding."""
    scaled = image * np.float32(255.0) + np.float32(0.5)
    np.minimum(np.maximum(scaled, 0.0, out=scaled), 255.0, out=scaled)
    return scaled.astype(np.uint8)


def is_synth_set(folder: Path) -> bool:
    """True if `folder` holds a data set written by these generators: the marker file, or (sets written before
    the marker existed) a `synth.json` naming one of our generators."""
    if (folder / SYNTH_MARKER).is_file():
        return True
    try:
        meta = json.loads((folder / "synth.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(meta, dict) and meta.get("generator") in SYNTH_GENERATORS


def prepare_output(out: Path, force: bool) -> None:
    """Refuse to overwrite a non-empty output folder unless `force`, and even then unless it is a data set written
    by `data synth` (checked before any work)."""
    kind = path_kind(out, key="--out")
    if kind not in ("missing", "folder"):
        raise BadInputError("output path exists and is not a folder", path=out)
    check_output_path(out, "folder", key="--out")  # below a file, or not writable
    if kind == "missing" or not any(out.iterdir()):
        return
    if not force:
        raise BadInputError("output folder exists and is not empty (use --force to replace it)", path=out)
    if not is_synth_set(out):
        raise BadInputError(f"--force replaces only a data set written by `data synth` (one holding {SYNTH_MARKER}); "
                            "this folder is not one: empty or remove it yourself, or choose another --out", path=out)


def make_staging_dir(out: Path) -> Path:
    """A fresh temporary folder beside `out` (same file system, so the final rename is atomic)."""
    out.parent.mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-", dir=out.parent))


def publish(staging: Path, out: Path) -> None:
    """Move the finished staging folder onto `out` (replacing an empty or, after --force, an old folder)."""
    old = None
    if out.is_dir():
        if any(out.iterdir()):
            old = Path(tempfile.mkdtemp(prefix=f".{out.name}.old-", dir=out.parent))
            os.replace(out, old / "data")
        else:
            out.rmdir()
    os.replace(staging, out)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


SynthFill = Callable[[Path], tuple[dict, Mapping[str, Sequence[tuple[str, str]]]]]


def check_synth_args(n_train: int, n_test: int, size: int, seed: int) -> None:
    """Counts, size and seed within the generators' bounds (BadInputError naming the option otherwise)."""
    for key, value, low, high in (("--n-train", n_train, 1, MAX_SAMPLES), ("--n-test", n_test, 1, MAX_SAMPLES),
                                  ("--size", size, 32, MAX_SIZE), ("--seed", seed, 0, 2**32 - 1)):
        if not low <= value <= high:
            raise BadInputError(f"must be in {low}..{high}, got {value}", key=key)


def build_synth_dataset(out: str | Path, n_train: int, n_test: int, size: int, force: bool,
                        fill: SynthFill, seed: int = 0) -> SynthResult:
    """Check the counts, then build a data set in a staging folder beside `out` and rename it onto `out`.

    `fill(staging)` writes the samples and returns (meta, lists): `meta` goes to `synth.json`, then each list file
    `name -> [(image, label), ...]` is written in order (lists last). All or nothing: on any error the staging
    folder is removed and `out` is left as it was.
    """
    check_synth_args(n_train, n_test, size, seed)
    out = Path(out)
    prepare_output(out, force)
    start = time.perf_counter()
    staging = make_staging_dir(out)
    try:
        meta, lists = fill(staging)
        atomic_write_text(staging / "synth.json", json.dumps(meta, indent=2) + "\n")
        marker = {"format": "inas-synth", "version": 1, "generator": meta.get("generator"), "task": meta.get("task")}
        atomic_write_text(staging / SYNTH_MARKER, json.dumps(marker) + "\n")
        for name, pairs in lists.items():
            atomic_write_text(staging / name, "".join(f"{a} {b}\n" for a, b in pairs))
        publish(staging, out)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return SynthResult(out, {name: len(pairs) for name, pairs in lists.items()}, time.perf_counter() - start)


def run_jobs(
    fn: Callable[[tuple], object], jobs: list[tuple], workers: int, desc: str
) -> list[object]:
    """Run `fn` over `jobs` (in order) with a fork pool of `workers` processes (1: in process), with a bar."""
    results: Iterable[object]
    if workers <= 1 or len(jobs) <= 1:
        return [fn(job) for job in tqdm(jobs, desc=desc, unit="img", leave=False)]
    methods = multiprocessing.get_all_start_methods()
    context = multiprocessing.get_context("fork" if "fork" in methods else None)
    with context.Pool(workers) as pool:
        results = pool.imap(fn, jobs, chunksize=max(1, min(16, len(jobs) // (workers * 4))))
        return list(tqdm(results, total=len(jobs), desc=desc, unit="img", leave=False))


def default_workers() -> int:
    """Worker processes for generation: the CPUs this process may use, at most 8."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:
        cpus = os.cpu_count() or 1
    return max(1, min(8, cpus))

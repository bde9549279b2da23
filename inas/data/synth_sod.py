"""Synthetic salient-object-detection data set in the DUTS layout.

Writes `images/{split}_{i:05d}.jpg` (RGB JPEG, quality 90), `masks/{split}_{i:05d}.png` (grayscale PNG, 255 on the
object, anti-aliased edges in between), `train.lst` and `test.lst` (`images/... masks/...` per line) and
`synth.json` (the generator's parameters).

Each image: a cluttered background (a dominant colour of any hue, saturation and brightness, mixed by smooth noise
with a second colour of a nearby or further hue, a brightness ramp, sometimes fine stripes or grain) with distractor
shapes of low contrast (background-like colours, or small faint salient-looking ones), then one to three salient
objects (ellipses, polygons, stars, blobs) that stand out by hue, by brightness or by saturation (duller or more
vivid than the background), with their own texture (plain, stripes, checks, smooth or fine noise) and shading,
sometimes cut by the image border; finally sensor noise and a slight blur. Image sides are drawn independently in
[0.75, 1.25] x size (non-square). Since objects can be darker or lighter, duller or more vivid than their background,
no global colour threshold separates them (best global saturation / brightness threshold: max F ~0.39 at 128 px);
a model has to learn local contrast.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageFilter

from inas.data.synth_common import (
    Box,
    SynthResult,
    build_synth_dataset,
    checks,
    composite,
    coverage,
    default_workers,
    fine_noise,
    gradient,
    hsv_colour,
    image_rng,
    polygon_box,
    random_shape,
    run_jobs,
    smooth_noise,
    stripes,
    to_uint8,
    two_tone,
)

GENERATOR_VERSION = 1
JPEG_QUALITY = 90


@dataclass(frozen=True)
class BackgroundStyle:
    """The dominant background colour (HSV, [0, 1]) that objects must stand out from."""

    hue: float
    saturation: float
    value: float


def _jitter(rng: np.random.Generator, x: float, spread: float, lo: float = 0.0, hi: float = 1.0) -> float:
    return float(np.clip(x + rng.uniform(-spread, spread), lo, hi))


def _away(rng: np.random.Generator, x: float, low: float, high: float) -> float:
    """A value at distance U(low, high) from x in [0, 1], on the side with more room."""
    step = rng.uniform(low, high)
    return float(np.clip(x - step if x > 0.5 else x + step, 0.0, 1.0))


def _object_texture(
    rng: np.random.Generator, h: int, w: int, base: np.ndarray, second: np.ndarray, strong: bool
) -> np.ndarray:
    """An object's fill: its colour with one of several textures and a shading ramp, (h, w, 3).

    `second` is the texture's other colour; `strong` forces a high-contrast pattern (stripes or checks).
    """
    kind = int(rng.integers(1, 3)) if strong else int(rng.integers(5))
    if kind == 0:  # plain colour
        tex = np.broadcast_to(base, (h, w, 3)).astype(np.float32)
    elif kind == 1:
        tex = two_tone(stripes(rng, h, w, rng.uniform(5, 24)), base, second)
    elif kind == 2:
        tex = two_tone(checks(rng, h, w, rng.uniform(8, 30)), base, second)
    elif kind == 3:
        tex = two_tone(smooth_noise(rng, h, w, rng.uniform(3, 10)), base, second)
    else:
        tex = two_tone(fine_noise(rng, h, w, 0.25), base, second)
    shade = 0.75 + 0.25 * gradient(rng, h, w)
    return tex * shade[..., None]


def _background(rng: np.random.Generator, h: int, w: int) -> tuple[np.ndarray, BackgroundStyle]:
    """Cluttered background, float32 (h, w, 3) in [0, 1], and its dominant colour.

    Any saturation and brightness (so that neither separates objects by itself); a second colour of a nearby hue,
    sometimes a further one, mixed by smooth noise; a brightness ramp; sometimes fine stripes or grain.
    """
    style = BackgroundStyle(rng.uniform(0, 1), rng.uniform(0.05, 0.85), rng.uniform(0.25, 0.85))
    col_a = hsv_colour(style.hue + rng.uniform(-0.04, 0.04), _jitter(rng, style.saturation, 0.1),
                       _jitter(rng, style.value, 0.1))
    hue_b = style.hue + (rng.uniform(0.12, 0.3) * rng.choice([-1, 1]) if rng.random() < 0.3 else
                         rng.uniform(-0.08, 0.08))
    col_b = hsv_colour(hue_b, _jitter(rng, style.saturation, 0.15), _jitter(rng, style.value, 0.25))
    image = two_tone(smooth_noise(rng, h, w, rng.uniform(2, 8)), col_a, col_b)
    image *= (0.8 + 0.2 * gradient(rng, h, w))[..., None]
    detail = int(rng.integers(3))
    amp = np.float32(rng.uniform(0.03, 0.12))
    if detail == 0:
        image += (amp * (stripes(rng, h, w, rng.uniform(4, 16)) - 0.5))[..., None]
    elif detail == 1:
        image += (amp * (smooth_noise(rng, h, w, rng.uniform(20, 50)) - 0.5))[..., None]
    return image, style


def _place(rng: np.random.Generator, shape: np.ndarray, h: int, w: int, at_border: bool) -> np.ndarray:
    """Translate a centred shape to a random position (near an edge, partly outside, if `at_border`)."""
    if at_border:
        side = int(rng.integers(4))
        along = rng.uniform(0.2, 0.8)
        depth = rng.uniform(0.0, 0.12)
        cx, cy = [(depth * w, along * h), ((1 - depth) * w, along * h), (along * w, depth * h),
                  (along * w, (1 - depth) * h)][side]
    else:
        cx, cy = rng.uniform(0.25, 0.75) * w, rng.uniform(0.25, 0.75) * h
    return shape + np.asarray([cx, cy], dtype=np.float32)


def _draw_distractors(rng: np.random.Generator, image: np.ndarray, style: BackgroundStyle) -> None:
    """Background-coloured shapes of low contrast, plus a few small, faint ones of a salient-looking colour."""
    h, w = image.shape[:2]
    side = min(h, w)
    for _ in range(int(rng.integers(3, 11))):
        if rng.random() < 0.2:
            colour, _ = _object_colours(rng, style)
            alpha_scale, radius = rng.uniform(0.12, 0.3), side * rng.uniform(0.02, 0.07)
        else:
            colour = hsv_colour(style.hue + rng.uniform(-0.06, 0.06), _jitter(rng, style.saturation, 0.12),
                                _jitter(rng, style.value, 0.15))
            alpha_scale, radius = rng.uniform(0.3, 0.75), side * rng.uniform(0.04, 0.2)
        points = random_shape(rng, radius) + np.asarray([rng.uniform(0, w), rng.uniform(0, h)], dtype=np.float32)
        box = polygon_box(points, h, w)
        if box is None:
            continue
        bh, bw = box.shape
        texture = two_tone(smooth_noise(rng, bh, bw, 4), colour, colour * np.float32(rng.uniform(0.7, 1.1)))
        composite(image, box, coverage(points, box) * np.float32(alpha_scale), texture)


def _object_colours(rng: np.random.Generator, style: BackgroundStyle) -> tuple[np.ndarray, np.ndarray]:
    """(main, second) colours of an object that stands out from `style` by hue, brightness or saturation.

    None of the three alone decides: objects may be duller, darker or lighter than their background.
    """
    mode = rng.choice(["hue", "value", "saturation"], p=[0.45, 0.35, 0.2])
    if mode == "hue":
        hue = style.hue + rng.uniform(0.25, 0.75)
        sat = float(np.clip(max(style.saturation, 0.35) + rng.uniform(-0.15, 0.25), 0, 1))
        val = _jitter(rng, style.value, 0.25, 0.3, 1.0)
    elif mode == "value":
        hue = style.hue + rng.uniform(-0.08, 0.08)
        sat = _jitter(rng, style.saturation, 0.2)
        val = _away(rng, style.value, 0.35, 0.6)
    elif style.saturation > 0.4:  # a grey / white / black object on a colourful background
        hue, sat = style.hue, rng.uniform(0.0, 0.12)
        val = _away(rng, style.value, 0.1, 0.4)
    else:  # a vivid object of the background's own hue on a dull background
        hue = style.hue + rng.uniform(-0.1, 0.1)
        sat = min(1.0, style.saturation + rng.uniform(0.45, 0.65))
        val = _jitter(rng, style.value, 0.2, 0.3, 1.0)
    main = hsv_colour(hue, sat, val)
    second = hsv_colour(hue + rng.uniform(-0.1, 0.1), _jitter(rng, sat, 0.2), _jitter(rng, val, 0.35))
    return main, second


def render_sod_sample(rng: np.random.Generator, size: int) -> tuple[np.ndarray, np.ndarray]:
    """One synthetic SOD sample: RGB uint8 (H, W, 3) and mask uint8 (H, W) (0 background, 255 object, AA edges)."""
    h = int(round(size * rng.uniform(0.75, 1.25)))
    w = int(round(size * rng.uniform(0.75, 1.25)))
    image, style = _background(rng, h, w)
    _draw_distractors(rng, image, style)
    mask = np.zeros((h, w), dtype=np.float32)
    num_objects = int(rng.choice([1, 2, 3], p=[0.6, 0.3, 0.1]))
    side = min(h, w)
    for _ in range(num_objects):
        radius = side * rng.uniform(0.12, 0.36) / np.sqrt(num_objects)
        points = _place(rng, random_shape(rng, radius), h, w, at_border=rng.random() < 0.2)
        box = polygon_box(points, h, w)
        if box is None:
            continue
        bh, bw = box.shape
        alpha = coverage(points, box)
        composite(image, box, alpha, _object_texture(rng, bh, bw, *_object_colours(rng, style), rng.random() < 0.1))
        np.maximum(mask[box.slices], alpha, out=mask[box.slices])
    if not (mask > 0.5).any():  # every object fell outside (or nearly): put one in the middle
        points = random_shape(rng, side * 0.25) + np.asarray([w / 2, h / 2], dtype=np.float32)
        box = polygon_box(points, h, w) or Box(0, h, 0, w)
        alpha = coverage(points, box)
        composite(image, box, alpha, _object_texture(rng, *box.shape, *_object_colours(rng, style), False))
        np.maximum(mask[box.slices], alpha, out=mask[box.slices])
    image += rng.standard_normal((h, w, 1), dtype=np.float32) * np.float32(rng.uniform(0.005, 0.03))
    pil = Image.fromarray(to_uint8(image))
    k = float(rng.uniform(1.5, 4.0))  # 3x3 separable blur [1, k, 1]^2: k = 1.5 soft ... 4 almost sharp
    pil = pil.filter(ImageFilter.Kernel((3, 3), [1, k, 1, k, k * k, k, 1, k, 1], scale=(k + 2) ** 2))
    return np.asarray(pil), to_uint8(mask)


def _write_sod_job(job: tuple) -> tuple[str, str]:
    staging, split, index, seed, size = job
    stem = f"{split}_{index:05d}"
    image, mask = render_sod_sample(image_rng(seed, split, index), size)
    image_rel, mask_rel = f"images/{stem}.jpg", f"masks/{stem}.png"
    Image.fromarray(image).save(Path(staging) / image_rel, quality=JPEG_QUALITY)
    Image.fromarray(mask, mode="L").save(Path(staging) / mask_rel)
    return image_rel, mask_rel


def synthesize_sod(
    out: str | Path,
    n_train: int = 400,
    n_test: int = 100,
    size: int = 320,
    seed: int = 0,
    *,
    workers: int | None = None,
    force: bool = False,
) -> SynthResult:
    """Write a synthetic SOD data set to `out` (see the module docstring); byte-identical for the same arguments.

    Generated in a temporary folder beside `out`, lists last, then renamed onto `out` (all or nothing).
    """

    def fill(staging: Path) -> tuple[dict, dict[str, list[tuple[str, str]]]]:
        (staging / "images").mkdir()
        (staging / "masks").mkdir()
        jobs = [(str(staging), "train", i, seed, size) for i in range(n_train)]
        jobs += [(str(staging), "test", i, seed, size) for i in range(n_test)]
        pairs = run_jobs(_write_sod_job, jobs, workers or default_workers(), "synth sod")
        meta = {"generator": "inas.data.synth_sod", "version": GENERATOR_VERSION, "task": "sod", "seed": seed,
                "size": size, "n_train": n_train, "n_test": n_test}
        return meta, {"train.lst": pairs[:n_train], "test.lst": pairs[n_train:]}

    return build_synth_dataset(out, n_train, n_test, size, force, fill, seed=seed)

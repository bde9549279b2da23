"""Synthetic street scenes in the Cityscapes layout (semantic segmentation, Cityscapes trainIds).

Writes `leftImg8bit/{train,val}/synth/synth_{i:06d}_000019_leftImg8bit.png` (RGB PNG),
`gtFine/{train,val}/synth/synth_{i:06d}_000019_gtFine_labelTrainIds.png` (grayscale PNG of trainIds, 255 = ignore),
`train.lst`, `val.lst` (`<image> <label>` per line, relative to the root) and `synth.json`.

A scene (height `size`, width 2 x `size`): sky above a horizon, a row of buildings with window grids and gaps,
trees, a perspective road (with lane marks) between sidewalks and grass, poles with traffic signs, cars on the road
(sized by perspective, far ones first), pedestrians on the sidewalks; an ego-vehicle bonnet and some unlabelled
clutter are 255 (ignore), as in Cityscapes. Classes used (trainIds): road 0, sidewalk 1, building 2, pole 5,
traffic sign 7, vegetation 8, terrain 9, sky 10, person 11, car 13 (10 of the 19).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from inas.data.seg import CITYSCAPES_IMAGE_SUFFIX, CITYSCAPES_LABEL_SUFFIX
from inas.data.synth_common import (
    Box,
    SynthResult,
    blob,
    build_synth_dataset,
    default_workers,
    fine_noise,
    gradient,
    hsv_colour,
    image_rng,
    run_jobs,
    smooth_noise,
    to_uint8,
    two_tone,
)

GENERATOR_VERSION = 1
ROAD, SIDEWALK, BUILDING, POLE, SIGN, VEGETATION, TERRAIN, SKY, PERSON, CAR = 0, 1, 2, 5, 7, 8, 9, 10, 11, 13
IGNORE = 255
CLASSES_USED: dict[int, str] = {
    ROAD: "road", SIDEWALK: "sidewalk", BUILDING: "building", POLE: "pole", SIGN: "traffic sign",
    VEGETATION: "vegetation", TERRAIN: "terrain", SKY: "sky", PERSON: "person", CAR: "car",
}
CITY = "synth"


class Scene:
    """An image (float32 (H, W, 3)) and its label map (uint8 (H, W)) painted layer by layer."""

    def __init__(self, rng: np.random.Generator, h: int, w: int) -> None:
        self.rng, self.h, self.w = rng, h, w
        self.image = np.zeros((h, w, 3), dtype=np.float32)
        self.label = np.full((h, w), IGNORE, dtype=np.uint8)

    def region(self, draw_fn) -> tuple[np.ndarray, Box] | None:
        """Rasterise `draw_fn(ImageDraw)` into a boolean mask; return it cropped to its bounding box."""
        canvas = Image.new("1", (self.w, self.h), 0)
        draw_fn(ImageDraw.Draw(canvas))
        mask = np.asarray(canvas)
        rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
        if rows.size == 0:
            return None
        box = Box(int(rows[0]), int(rows[-1]) + 1, int(cols[0]), int(cols[-1]) + 1)
        return mask[box.slices], box

    def paint(self, draw_fn, cls: int, texture_fn) -> Box | None:
        """Paint the region drawn by `draw_fn` with class `cls` and `texture_fn(box) -> (h, w, 3)` over its box."""
        found = self.region(draw_fn)
        if found is None:
            return None
        mask, box = found
        tex = texture_fn(box)
        np.copyto(self.image[box.slices], tex, where=mask[..., None])
        np.copyto(self.label[box.slices], np.uint8(cls), where=mask)
        return box


def _flat(colour: np.ndarray, rng: np.random.Generator, noise: float = 0.04):
    """A texture function: `colour` with a little smooth and fine noise."""

    def texture(box: Box) -> np.ndarray:
        h, w = box.shape
        n = (smooth_noise(rng, h, w, 6) - 0.5) * 2 * noise + (fine_noise(rng, h, w, 0.5) - 0.5) * noise
        return np.clip(colour + n[..., None], 0, 1)

    return texture


def _sky(scene: Scene, horizon: int) -> None:
    rng = scene.rng
    top = hsv_colour(rng.uniform(0.55, 0.62), rng.uniform(0.2, 0.6), rng.uniform(0.7, 1.0))
    low = hsv_colour(rng.uniform(0.55, 0.62), rng.uniform(0.0, 0.2), rng.uniform(0.8, 1.0))

    def texture(box: Box) -> np.ndarray:
        h, w = box.shape
        ramp = np.linspace(0, 1, h, dtype=np.float32)[:, None].repeat(w, axis=1)
        clouds = smooth_noise(rng, h, w, 8)
        sky = two_tone(ramp, top, low)
        return sky + (np.float32(rng.uniform(0.0, 0.3)) * np.clip(clouds - 0.5, 0, 1))[..., None]

    scene.paint(lambda d: d.rectangle([0, 0, scene.w, horizon], fill=1), SKY, texture)


def _buildings(scene: Scene, horizon: int) -> None:
    rng, w = scene.rng, scene.w
    x = -int(rng.integers(0, 20))
    while x < w:
        bw = int(w * rng.uniform(0.08, 0.25))
        if rng.random() < 0.15:  # a gap: sky shows through
            x += bw // 2
            continue
        top = int(horizon * rng.uniform(0.05, 0.8))
        wall = hsv_colour(rng.uniform(0.02, 0.15), rng.uniform(0.0, 0.35), rng.uniform(0.35, 0.8))
        window = wall * np.float32(rng.uniform(0.25, 0.6))
        period_x, period_y = int(rng.integers(8, 18)), int(rng.integers(10, 22))
        flat = _flat(wall, rng, 0.03)

        def texture(box: Box, flat=flat, window=window, px=period_x, py=period_y) -> np.ndarray:
            h, w_ = box.shape
            tex = flat(box)
            yy = (np.arange(h)[:, None] % py) < py * 0.55
            xx = (np.arange(w_)[None, :] % px) < px * 0.5
            tex[yy & xx] = window
            return tex

        x0, x1 = x, x + bw
        scene.paint(lambda d, x0=x0, x1=x1, top=top: d.rectangle([x0, top, x1, horizon + 2], fill=1), BUILDING, texture)
        x += bw


def _trees(scene: Scene, horizon: int) -> None:
    rng = scene.rng
    for _ in range(int(rng.integers(0, 5))):
        radius = scene.h * rng.uniform(0.08, 0.22)
        pts = blob(rng, radius) + np.asarray([rng.uniform(0, scene.w), horizon - radius * 0.6], dtype=np.float32)
        green = hsv_colour(rng.uniform(0.22, 0.36), rng.uniform(0.4, 0.8), rng.uniform(0.25, 0.6))
        shade = green * np.float32(0.5)

        def texture(box: Box, green=green, shade=shade) -> np.ndarray:
            h, w = box.shape
            return two_tone(smooth_noise(rng, h, w, max(h, w) / 6), green, shade)

        scene.paint(lambda d, pts=pts: d.polygon([tuple(p) for p in pts.tolist()], fill=1), VEGETATION, texture)


def _ground(scene: Scene, horizon: int, vanish_x: float) -> tuple[float, float]:
    """Sidewalk everywhere below the horizon, optional grass, then the road; returns the road's bottom x-range."""
    rng, h, w = scene.rng, scene.h, scene.w
    pave = hsv_colour(rng.uniform(0.05, 0.12), rng.uniform(0.05, 0.25), rng.uniform(0.5, 0.75))
    flat = _flat(pave, rng, 0.05)

    def pave_texture(box: Box) -> np.ndarray:
        hh, ww = box.shape
        tex = flat(box)
        joints = (np.arange(ww)[None, :] % 24 < 2) | (np.arange(hh)[:, None] % 12 < 1)
        tex[joints] *= 0.8
        return tex

    scene.paint(lambda d: d.rectangle([0, horizon, w, h], fill=1), SIDEWALK, pave_texture)
    left, right = w * rng.uniform(-0.35, 0.1), w * rng.uniform(0.9, 1.35)
    if rng.random() < 0.6:  # grass strips along the outer edges
        grass = hsv_colour(rng.uniform(0.18, 0.3), rng.uniform(0.3, 0.6), rng.uniform(0.35, 0.6))
        spread = w * rng.uniform(0.2, 0.5)
        scene.paint(lambda d: d.polygon([(vanish_x - 30, horizon), (0, horizon), (0, h), (left - spread, h)], fill=1),
                    TERRAIN, _flat(grass, rng, 0.1))
        scene.paint(lambda d: d.polygon([(vanish_x + 30, horizon), (w, horizon), (w, h), (right + spread, h)],
                                        fill=1), TERRAIN, _flat(grass, rng, 0.1))
    asphalt = hsv_colour(0.6, rng.uniform(0.0, 0.1), rng.uniform(0.2, 0.42))
    road_flat = _flat(asphalt, rng, 0.05)
    mark = rng.random() < 0.7

    def road_texture(box: Box) -> np.ndarray:
        hh, ww = box.shape
        tex = road_flat(box)
        if mark:  # dashed centre line, narrowing with distance
            yy = np.arange(hh, dtype=np.float32)[:, None]
            xx = np.arange(box.x0, box.x1, dtype=np.float32)[None, :]
            depth = (yy + 1) / hh
            centre = vanish_x + ((left + right) / 2 - vanish_x) * depth
            on_line = np.abs(xx - centre) < 1 + 4 * depth
            dashes = (np.log1p(yy) * 6).astype(int) % 2 == 0
            tex[on_line & dashes] = np.float32(0.9)
        return tex

    road_top = horizon
    scene.paint(lambda d: d.polygon([(vanish_x - 3, road_top), (vanish_x + 3, road_top), (right, h), (left, h)],
                                    fill=1), ROAD, road_texture)
    return left, right


def _road_x_range(y: float, horizon: int, h: int, vanish_x: float, left: float, right: float) -> tuple[float, float]:
    t = (y - horizon) / max(1, h - horizon)
    return vanish_x + (left - vanish_x) * t, vanish_x + (right - vanish_x) * t


def _poles_and_signs(scene: Scene, horizon: int, vanish_x: float, left: float, right: float) -> None:
    rng, h = scene.rng, scene.h
    for _ in range(int(rng.integers(1, 5))):
        base_y = rng.uniform(horizon + 0.05 * h, h * 0.95)
        lo, hi = _road_x_range(base_y, horizon, h, vanish_x, left, right)
        depth = (base_y - horizon) / (h - horizon)
        x = lo - rng.uniform(4, 30) * depth if rng.random() < 0.5 else hi + rng.uniform(4, 30) * depth
        width = max(2.0, 7 * depth)
        top_y = base_y - (h * rng.uniform(0.4, 0.8)) * max(depth, 0.25)
        grey = hsv_colour(0.6, 0.05, rng.uniform(0.2, 0.5))
        scene.paint(lambda d, x=x, width=width, top_y=top_y, base_y=base_y: d.rectangle(
            [x - width / 2, top_y, x + width / 2, base_y], fill=1), POLE, _flat(grey, rng, 0.02))
        if rng.random() < 0.7:
            s = max(4.0, 22 * max(depth, 0.25))
            colour = [hsv_colour(0.0, 0.9, 0.85), hsv_colour(0.6, 0.9, 0.7), hsv_colour(0.14, 0.9, 0.95),
                      hsv_colour(0.0, 0.0, 0.95)][int(rng.integers(4))]
            if rng.random() < 0.5:
                def draw(d, x=x, y=top_y, s=s):
                    d.ellipse([x - s / 2, y - s, x + s / 2, y], fill=1)
            else:
                def draw(d, x=x, y=top_y, s=s):
                    d.polygon([(x - s / 2, y), (x + s / 2, y), (x, y - s)], fill=1)
            scene.paint(draw, SIGN, _flat(colour, rng, 0.03))


def _cars(scene: Scene, horizon: int, vanish_x: float, left: float, right: float) -> None:
    rng, h = scene.rng, scene.h
    bottoms = np.sort(rng.uniform(horizon + 0.08 * h, h * 1.05, int(rng.integers(0, 5))))
    for base_y in bottoms:  # far cars first, near ones over them
        lo, hi = _road_x_range(min(base_y, h), horizon, h, vanish_x, left, right)
        depth = (base_y - horizon) / (h - horizon)
        cw = scene.w * 0.28 * depth
        ch = cw * rng.uniform(0.55, 0.8)
        cx = rng.uniform(lo + cw / 2, max(lo + cw / 2 + 1, hi - cw / 2))
        body = hsv_colour(rng.uniform(0, 1), rng.uniform(0, 0.9), rng.uniform(0.1, 0.95))
        glass = np.asarray([0.12, 0.14, 0.18], dtype=np.float32)

        def draw(d, cx=cx, cw=cw, ch=ch, y=base_y):
            d.rectangle([cx - cw / 2, y - ch * 0.6, cx + cw / 2, y - ch * 0.12], fill=1)
            d.polygon([(cx - cw * 0.38, y - ch * 0.6), (cx - cw * 0.28, y - ch), (cx + cw * 0.28, y - ch),
                       (cx + cw * 0.38, y - ch * 0.6)], fill=1)
            for wx in (cx - cw * 0.32, cx + cw * 0.32):
                d.ellipse([wx - ch * 0.14, y - ch * 0.28, wx + ch * 0.14, y], fill=1)

        def texture(box: Box, body=body, glass=glass) -> np.ndarray:
            hh, ww = box.shape
            tex = _flat(body, rng, 0.03)(box)
            top = int(hh * 0.38)
            tex[: max(1, top)] = glass  # windows band
            tex[int(hh * 0.75):] *= 0.25  # wheels / shadow
            tex *= (0.8 + 0.2 * gradient(rng, hh, ww))[..., None]
            return tex

        scene.paint(draw, CAR, texture)


def _people(scene: Scene, horizon: int, vanish_x: float, left: float, right: float) -> None:
    rng, h = scene.rng, scene.h
    for _ in range(int(rng.integers(0, 4))):
        base_y = rng.uniform(horizon + 0.1 * h, h * 0.98)
        lo, hi = _road_x_range(base_y, horizon, h, vanish_x, left, right)
        depth = (base_y - horizon) / (h - horizon)
        ph = h * 0.45 * depth
        pw = ph * rng.uniform(0.25, 0.35)
        x = lo - rng.uniform(pw, 3 * pw + 5) if rng.random() < 0.5 else hi + rng.uniform(pw, 3 * pw + 5)
        cloth = hsv_colour(rng.uniform(0, 1), rng.uniform(0.2, 0.9), rng.uniform(0.15, 0.8))
        skin = hsv_colour(rng.uniform(0.03, 0.09), rng.uniform(0.3, 0.6), rng.uniform(0.4, 0.9))

        def draw(d, x=x, y=base_y, ph=ph, pw=pw):
            d.ellipse([x - pw / 2, y - ph * 0.85, x + pw / 2, y], fill=1)
            d.ellipse([x - pw * 0.3, y - ph, x + pw * 0.3, y - ph * 0.8], fill=1)

        def texture(box: Box, cloth=cloth, skin=skin) -> np.ndarray:
            hh = box.shape[0]
            tex = _flat(cloth, rng, 0.05)(box)
            tex[: max(1, int(hh * 0.2))] = skin
            return tex

        scene.paint(draw, PERSON, texture)


def _ignored(scene: Scene) -> None:
    """Ego-vehicle bonnet and unlabelled clutter: label 255, as Cityscapes' void classes."""
    rng, h, w = scene.rng, scene.h, scene.w
    if rng.random() < 0.5:
        top = h * rng.uniform(0.86, 0.94)
        dark = hsv_colour(rng.uniform(0, 1), rng.uniform(0, 0.5), rng.uniform(0.05, 0.25))
        scene.paint(lambda d: d.ellipse([-0.2 * w, top, 1.2 * w, h + (h - top) * 2.5], fill=1), IGNORE,
                    _flat(dark, rng, 0.02))
    for _ in range(int(rng.integers(0, 3))):
        radius = h * rng.uniform(0.02, 0.06)
        pts = blob(rng, radius) + np.asarray([rng.uniform(0, w), rng.uniform(0.3 * h, h)], dtype=np.float32)
        colour = hsv_colour(rng.uniform(0, 1), rng.uniform(0, 0.6), rng.uniform(0.2, 0.8))
        scene.paint(lambda d, pts=pts: d.polygon([tuple(p) for p in pts.tolist()], fill=1), IGNORE,
                    _flat(colour, rng, 0.05))


def render_seg_sample(rng: np.random.Generator, height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    """One synthetic street scene: RGB uint8 (H, W, 3) and trainId labels uint8 (H, W) (255 = ignore)."""
    scene = Scene(rng, height, width)
    horizon = int(height * rng.uniform(0.35, 0.52))
    vanish_x = width * rng.uniform(0.35, 0.65)
    _sky(scene, horizon)
    _buildings(scene, horizon)
    _trees(scene, horizon)
    left, right = _ground(scene, horizon, vanish_x)
    _poles_and_signs(scene, horizon, vanish_x, left, right)
    _cars(scene, horizon, vanish_x, left, right)
    _people(scene, horizon, vanish_x, left, right)
    _ignored(scene)
    light = 0.85 + 0.3 * gradient(rng, height, width)
    image = scene.image * light[..., None] * np.float32(rng.uniform(0.8, 1.1))
    image += rng.standard_normal((height, width, 1), dtype=np.float32) * np.float32(0.015)
    pil = Image.fromarray(to_uint8(image)).filter(ImageFilter.Kernel((3, 3), [1, 3, 1, 3, 9, 3, 1, 3, 1], scale=25))
    return np.asarray(pil), scene.label


def _write_seg_job(job: tuple) -> tuple[str, str]:
    staging, split, index, seed, height, width = job
    stem = f"{CITY}_{index:06d}_000019"
    image, label = render_seg_sample(image_rng(seed, split, index), height, width)
    image_rel = f"leftImg8bit/{split}/{CITY}/{stem}{CITYSCAPES_IMAGE_SUFFIX}"
    label_rel = f"gtFine/{split}/{CITY}/{stem}{CITYSCAPES_LABEL_SUFFIX}"
    Image.fromarray(image).save(Path(staging) / image_rel, compress_level=1)
    Image.fromarray(label, mode="L").save(Path(staging) / label_rel)
    return image_rel, label_rel


def synthesize_seg(
    out: str | Path,
    n_train: int = 200,
    n_test: int = 50,
    size: int = 256,
    seed: int = 0,
    *,
    workers: int | None = None,
    force: bool = False,
) -> SynthResult:
    """Write a synthetic Cityscapes-layout data set (images `size` x 2`size`) to `out`; `n_test` goes to `val`.

    Byte-identical for the same arguments; built in a temporary folder, lists last, then renamed onto `out`.
    """

    def fill(staging: Path) -> tuple[dict, dict[str, list[tuple[str, str]]]]:
        height, width = size, 2 * size
        for split in ("train", "val"):
            (staging / "leftImg8bit" / split / CITY).mkdir(parents=True)
            (staging / "gtFine" / split / CITY).mkdir(parents=True)
        jobs = [(str(staging), "train", i, seed, height, width) for i in range(n_train)]
        jobs += [(str(staging), "val", i, seed, height, width) for i in range(n_test)]
        pairs = run_jobs(_write_seg_job, jobs, workers or default_workers(), "synth seg")
        meta = {"generator": "inas.data.synth_seg", "version": GENERATOR_VERSION, "task": "seg", "seed": seed,
                "height": height, "width": width, "n_train": n_train, "n_val": n_test,
                "classes": {str(k): v for k, v in CLASSES_USED.items()}, "ignore_index": IGNORE}
        return meta, {"train.lst": pairs[:n_train], "val.lst": pairs[n_train:]}

    return build_synth_dataset(out, n_train, n_test, size, force, fill, seed=seed)

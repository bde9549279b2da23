"""Helpers shared by the data tests (no tests here): tiny on-disk data sets written into tmp_path."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image


def write_image(path: Path, array: np.ndarray, **save_kwargs) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path, **save_kwargs)
    return path


def random_rgb(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    return rng.integers(0, 256, (h, w, 3), dtype=np.uint8)


def half_mask(h: int, w: int, value: int = 255) -> np.ndarray:
    """Left half `value`, right half 0 (uint8)."""
    mask = np.zeros((h, w), dtype=np.uint8)
    mask[:, : w // 2] = value
    return mask


def write_sod_set(root: Path, n: int = 3, h: int = 30, w: int = 40, seed: int = 0, name: str = "set.lst") -> Path:
    """n JPEG images with PNG masks (left half 255) and the list file; returns the list path."""
    rng = np.random.default_rng(seed)
    lines = []
    for i in range(n):
        write_image(root / "img" / f"{i}.jpg", random_rgb(rng, h, w), quality=90)
        write_image(root / "gt" / f"{i}.png", half_mask(h, w))
        lines.append(f"img/{i}.jpg gt/{i}.png")
    (root / name).write_text("\n".join(lines) + "\n")
    return root / name


def truncate(path: Path, keep_fraction: float = 0.5) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep_fraction)])

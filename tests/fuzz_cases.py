"""Helpers of the hostile-input tests: crafted files (decompression bombs) and byte / value mutations."""

from __future__ import annotations

import struct
import zlib
from pathlib import Path


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def bomb_png(path: Path, width: int, height: int) -> Path:
    """A ~100-byte grayscale PNG whose header claims `width` x `height` pixels (its one IDAT holds one row)."""
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    idat = zlib.compress(b"\x00" * (width + 1))
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", header) + _chunk(b"IDAT", idat) + _chunk(b"IEND", b""))
    return path


# (width, height): over 2 x Image.MAX_IMAGE_PIXELS (Pillow raises), and between 1 x and 2 x (Pillow only warns)
BOMB_ERROR_SIZE = (200_000, 200_000)
BOMB_WARNING_SIZE = (10_000, 10_000)

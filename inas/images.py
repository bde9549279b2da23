"""Opening image files that users hand in: one function, one tuple of the errors a bad file can raise.

Pillow refuses images over 2 x `Image.MAX_IMAGE_PIXELS` pixels with `DecompressionBombError` (not an OSError) and
only warns (`DecompressionBombWarning`) above `MAX_IMAGE_PIXELS`; `open_image` makes both an `UnreadableImage`
(a ValueError) before any pixel is decoded, so every reader reports a decompression bomb like any other bad file.
"""

from __future__ import annotations

import struct
import warnings
from pathlib import Path

from PIL import Image, UnidentifiedImageError


class UnreadableImage(ValueError):
    """An image file that must not or cannot be opened; the message says why."""


# what opening or decoding a damaged or hostile image file raises
IMAGE_ERRORS: tuple[type[BaseException], ...] = (
    UnidentifiedImageError, OSError, ValueError, SyntaxError, struct.error, EOFError, Image.DecompressionBombError,
)


def open_image(path: str | Path) -> Image.Image:
    """The image at `path`, opened lazily (header read, pixels not decoded); UnreadableImage for a decompression
    bomb (more than `Image.MAX_IMAGE_PIXELS` pixels), the other errors of `IMAGE_ERRORS` as Pillow raises them."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            return Image.open(path)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise UnreadableImage(f"too many pixels, refused as a possible decompression bomb ({exc})") from None


def sod_mask_problem(image: Image.Image) -> str | None:
    """Why `image` (opened, loaded) cannot be a salient-object mask read as grayscale with foreground > 127, or
    None: transparent pixels (the mask kept in the alpha channel, which the grayscale conversion drops) or values
    only 0 and 1 (a 0/1 mask: every pixel would be background). Either would score or train on an empty mask."""
    if "A" in image.getbands() or (image.mode == "P" and "transparency" in image.info):
        alpha = image.getchannel("A") if "A" in image.getbands() else image.convert("RGBA").getchannel("A")
        lowest = alpha.getextrema()[0]
        if isinstance(lowest, int | float) and lowest < 255:
            return ("the mask has transparent pixels (is the mask in its alpha channel?); expected an opaque "
                    "grayscale mask, foreground > 127")
    if image.convert("L").getextrema()[1] == 1:
        return ("the mask's values are only 0 and 1; expected 0..255 with foreground > 127 (a 0/1 mask: scale it "
                "by 255)")
    return None

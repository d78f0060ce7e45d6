"""Opening an image from a stranger: its pixel count is checked before anything is decoded.

A PNG of a few kilobytes can declare 30,000 x 30,000 pixels and inflate to gigabytes once
decoded (a decompression bomb). Pillow refuses only above ~179 million pixels and merely warns
above ~89 million; ModelDeck makes images of at most 4096 x 4096 and reads others only as
thumbnails or image-to-image sources, so it refuses anything above `MAX_IMAGE_PIXELS` first.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from app.errors import AppError

if TYPE_CHECKING:
    from PIL.Image import Image

__all__ = ["MAX_IMAGE_PIXELS", "ImageTooLargeError", "open_image"]

MAX_IMAGE_PIXELS = 8192 * 8192  # 64 megapixels: a large camera photo; ~200 MB decoded as RGB


class ImageTooLargeError(AppError, OSError):
    """An image declares more pixels than ModelDeck decodes (a decompression bomb, or huge)."""


@contextmanager
def open_image(path: Path) -> Iterator[Image]:
    """Open the image at `path` with Pillow (lazily: no pixel decoded yet), size checked.

    Raises:
        ImageTooLargeError: it declares more than `MAX_IMAGE_PIXELS` pixels.
        OSError: it cannot be read or is not an image (Pillow's UnidentifiedImageError).
    """
    from PIL import Image

    try:
        image = Image.open(path)
    except Image.DecompressionBombError:  # not an OSError: said here in the same words
        raise _too_large(path, None) from None
    with image:
        width, height = image.size
        if width * height > MAX_IMAGE_PIXELS:
            raise _too_large(path, (width, height))
        yield image


def _too_large(path: Path, size: tuple[int, int] | None) -> ImageTooLargeError:
    shown = f" ({size[0]} x {size[1]} pixels)" if size else ""
    return ImageTooLargeError(
        f"{Path(path).name} is too large to open{shown}: the limit is "
        f"{MAX_IMAGE_PIXELS // 1_000_000} megapixels",
        hint="Scale the image down, or use a smaller one.",
    )

"""Images in a prompt: where they go, and how untrusted image bytes become pixels.

The app puts `IMAGE_MARKER` in the rendered prompt where each image goes (libmtmd's default
media marker) and sends the image's bytes with its offset (`PromptImage`); the LLM engine's
child decodes them here, with Pillow, and hands the pixels to the projector. Decoding happens
only in the child: a hostile file costs the engine, never the window.

An image's size is read from its header and capped before a pixel is decoded, so a
decompression bomb (a few kB of PNG that claims 100,000 x 100,000 pixels) is refused at once.
"""

from __future__ import annotations

import io
import warnings
from dataclasses import dataclass

from app.errors import AppError

IMAGE_MARKER = "<__media__>"  # mtmd_default_marker(): the worker checks they agree
MAX_IMAGE_BYTES = 64 * 1024 * 1024
MAX_IMAGE_PIXELS = 64_000_000  # 8000 x 8000; Pillow's own bomb limit is ~179 M
# Longest side handed to the projector; each projector resizes again to its own input size,
# and those that tile (Qwen2.5-VL, MiniCPM-V) spend tokens per tile, so a 48 MP photo would
# otherwise fill the context.
MAX_IMAGE_SIDE = 1344


class ImageInputError(AppError, ValueError):
    """Bytes that are not an image this app will decode (not an image, too big, a bomb)."""


@dataclass(frozen=True)
class PromptImage:
    """One image of a prompt: its file's bytes and where its marker sits in the prompt."""

    offset: int  # of IMAGE_MARKER in the prompt's text
    data: bytes
    name: str = "image"  # for messages: the file name, or "image 2"


@dataclass(frozen=True)
class RgbPixels:
    """A decoded image: width x height x 3 bytes, row by row."""

    width: int
    height: int
    data: bytes


def image_offsets(prompt: str) -> list[int]:
    """Where `IMAGE_MARKER` occurs in `prompt`, in order."""
    offsets: list[int] = []
    start = prompt.find(IMAGE_MARKER)
    while start >= 0:
        offsets.append(start)
        start = prompt.find(IMAGE_MARKER, start + len(IMAGE_MARKER))
    return offsets


def neutralize_markers(text: str) -> str:
    """A person's text with any marker they typed broken up, so it cannot place an image."""
    return text.replace(IMAGE_MARKER, IMAGE_MARKER.replace("__", "_\u200b_", 1))


def decode_image(data: bytes, *, name: str = "image") -> RgbPixels:
    """Decode an image file's bytes into RGB pixels, at most `MAX_IMAGE_SIDE` on a side.

    Raises:
        ImageInputError: not an image Pillow can read, truncated, over `MAX_IMAGE_BYTES`,
            or more than `MAX_IMAGE_PIXELS` pixels (checked from the header, before decoding).
    """
    from PIL import Image, UnidentifiedImageError

    if len(data) > MAX_IMAGE_BYTES:
        raise ImageInputError(
            f"{name} is {len(data) / 2**20:.0f} MiB; images up to "
            f"{MAX_IMAGE_BYTES // 2**20} MiB are accepted."
        )
    with warnings.catch_warnings():
        # Pillow warns (or raises) on bombs itself; the cap below is ours and stricter.
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        try:
            with Image.open(io.BytesIO(data)) as image:
                width, height = image.size  # from the header: nothing is decoded yet
                if width * height > MAX_IMAGE_PIXELS:
                    raise ImageInputError(
                        f"{name} claims {width:,} x {height:,} pixels, more than the "
                        f"{MAX_IMAGE_PIXELS // 1_000_000} million this app decodes "
                        "(a decompression bomb, or a photo to scale down first)."
                    )
                image.draft("RGB", (MAX_IMAGE_SIDE, MAX_IMAGE_SIDE))  # JPEG: decode smaller
                rgb = image.convert("RGB")
        except ImageInputError:
            raise
        except UnidentifiedImageError:
            raise ImageInputError(f"{name} is not an image this app can read.") from None
        except (Image.DecompressionBombError, Image.DecompressionBombWarning) as error:
            # Pillow's own check, in `open`, for sizes far past ours.
            raise ImageInputError(f"{name} is a decompression bomb ({error})") from None
        except (OSError, ValueError, SyntaxError, EOFError) as error:
            # Pillow reports truncated or corrupt data with any of these.
            raise ImageInputError(f"{name} could not be decoded: {error}.") from None
    if max(rgb.size) > MAX_IMAGE_SIDE:
        rgb.thumbnail((MAX_IMAGE_SIDE, MAX_IMAGE_SIDE), Image.Resampling.BICUBIC)
    return RgbPixels(width=rgb.width, height=rgb.height, data=rgb.tobytes())

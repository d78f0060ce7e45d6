"""Images in a chat: attached files, where they go in a message, and which models can see.

A message with images carries one `IMAGE_MARKER` per image at its start (llama.cpp's server
places them the same way); the chat template renders the text as usual, and the engine finds
the markers in the rendered prompt and hands each image to the projector there. A marker a
person typed is broken up first (`neutralize_markers`), so text cannot claim an image's place.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from app.errors import AppError
from app.library.catalog import LibraryEntry
from app.llm.vision import (
    IMAGE_MARKER,
    MAX_IMAGE_BYTES,
    PromptImage,
    image_offsets,
    neutralize_markers,
)


class VisionError(AppError, ValueError):
    """Images that cannot go to this model: it cannot see, or an image file is unusable."""


@dataclass(frozen=True)
class ImageAttachment:
    """An image a person attached: the file's bytes (decoded only in the engine) and name."""

    data: bytes
    name: str

    @property
    def sha256(self) -> str:
        """The image's content address (stored and exported under it)."""
        return hashlib.sha256(self.data).hexdigest()


def read_image_file(path: Path) -> ImageAttachment:
    """An image file's bytes, refused before reading when it is larger than an image may be.

    Raises:
        VisionError: missing, unreadable, or over `MAX_IMAGE_BYTES`.
    """
    try:
        size = path.stat().st_size
        if size > MAX_IMAGE_BYTES:
            raise VisionError(
                f"{path.name} is {size / 2**20:.0f} MiB; images up to "
                f"{MAX_IMAGE_BYTES // 2**20} MiB are accepted."
            )
        return ImageAttachment(path.read_bytes(), path.name)
    except FileNotFoundError:
        raise VisionError(f"No image file at {path}") from None
    except OSError as error:
        raise VisionError(f"Cannot read {path}: {error.strerror or error}") from None


def image_from_data_uri(uri: str, name: str) -> ImageAttachment:
    """An image sent inline as a `data:[type];base64,...` URI (OpenAI's `image_url`).

    Raises:
        VisionError: an http(s) URL (this app does not fetch images), not base64 data, data
            that is not valid base64, or more than `MAX_IMAGE_BYTES`.
    """
    if uri[:8].lower().startswith(("http://", "https://")):
        raise VisionError(
            f"{name} is a URL; send images inline as data: URIs (fetching URLs is off)."
        )
    header, comma, payload = uri.partition(",")
    if not header.lower().startswith("data:") or not comma or ";base64" not in header.lower():
        raise VisionError(f"{name} is not a base64 data: URI.")
    return image_from_base64(payload, name)


def image_from_base64(payload: str, name: str) -> ImageAttachment:
    """An image sent inline as bare base64 (Ollama's `images`, Anthropic's image blocks).

    Raises:
        VisionError: data that is not valid base64, or more than `MAX_IMAGE_BYTES`.
    """
    if len(payload) > (MAX_IMAGE_BYTES // 3 + 1) * 4:
        raise VisionError(f"{name} is larger than {MAX_IMAGE_BYTES // 2**20} MiB.")
    try:
        data = base64.b64decode(payload, validate=True)
    except (binascii.Error, ValueError):  # ValueError: a character outside ASCII
        raise VisionError(f"{name}: its base64 data is malformed.") from None
    return ImageAttachment(data, name)


def content_with_images(text: str, image_count: int) -> str:
    """A message's content: a marker per image, then the person's text (markers in it broken)."""
    return IMAGE_MARKER * image_count + ("\n" if image_count else "") + neutralize_markers(text)


def place_images(prompt: str, images: Sequence[ImageAttachment]) -> tuple[PromptImage, ...]:
    """Each image at its marker in the rendered `prompt`, in order.

    Raises:
        VisionError: the prompt holds another number of markers than there are images (a
            template that drops message text, or content not made by `content_with_images`).
    """
    offsets = image_offsets(prompt)
    if len(offsets) != len(images):
        raise VisionError(
            f"The prompt has room for {len(offsets)} image(s) but {len(images)} were attached; "
            "this chat template may drop them."
        )
    return tuple(
        PromptImage(offset, image.data, image.name)
        for offset, image in zip(offsets, images, strict=True)
    )


def vision_models(entries: Iterable[LibraryEntry]) -> list[str]:
    """Names of the GGUF models among `entries` that can see (a projector beside them, as
    the library's scan found: `LibraryEntry.projector`)."""
    names = {entry.name for entry in entries if entry.projector is not None and entry.present}
    return sorted(names, key=str.lower)


def cannot_see(model_name: str, entries: Iterable[LibraryEntry]) -> VisionError:
    """The error for images sent to a model without a projector, naming those that can see."""
    seeing = vision_models(entries)
    others = (
        f"these can: {', '.join(seeing[:8])}{' …' if len(seeing) > 8 else ''}."
        if seeing
        else "no model in your library can yet."
    )
    return VisionError(
        f"{model_name} can't see images (no vision projector beside it); {others}",
        hint="A vision model's repository has an mmproj-*.gguf file; pass it with --mmproj, "
        "or download the model again to get it.",
    )

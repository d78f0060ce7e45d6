"""Images attached to chat messages, kept content-addressed beside the database.

A message records its images by sha256 (`StoredImage`); the bytes live once in
`<data dir>/chat-images/<ab>/<sha256><.ext>`, however many messages show them, and stay until
the folder is cleaned. The extension comes from the bytes (PNG, JPEG, GIF, WebP, BMP), so an
exported Markdown file's links open in any viewer. Writes go to a temporary file renamed into
place: a crash never leaves half an image under a real name.
"""

from __future__ import annotations

import hashlib
import os
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path

from app.errors import AppError

_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_SIGNATURES = (
    (b"\x89PNG\r\n\x1a\n", ".png"),
    (b"\xff\xd8\xff", ".jpg"),
    (b"GIF87a", ".gif"),
    (b"GIF89a", ".gif"),
    (b"BM", ".bmp"),
)


class ChatImageMissingError(AppError, FileNotFoundError):
    """A message's image is no longer in the store (the folder was cleaned or moved)."""


@dataclass(frozen=True)
class StoredImage:
    """An image a message shows: its content address and the name it was attached under."""

    sha256: str
    name: str
    suffix: str = ".img"  # from the bytes: ".png", ".jpg"…

    @property
    def file_name(self) -> str:
        return f"{self.sha256}{self.suffix}"

    def to_json(self) -> dict[str, str]:
        return {"sha256": self.sha256, "name": self.name, "suffix": self.suffix}

    @classmethod
    def from_json(cls, value: object) -> StoredImage | None:
        """The image a stored JSON object names; None for anything malformed."""
        if not isinstance(value, dict):
            return None
        sha, name, suffix = value.get("sha256"), value.get("name"), value.get("suffix", ".img")
        if not (isinstance(sha, str) and _SHA256.match(sha) and isinstance(name, str)):
            return None
        if not (isinstance(suffix, str) and re.fullmatch(r"\.[a-z]{1,4}", suffix)):
            suffix = ".img"
        return cls(sha, name, suffix)


def image_suffix(data: bytes) -> str:
    """The file extension the bytes' signature says, ".img" when none is known."""
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return ".webp"
    return next((suffix for magic, suffix in _SIGNATURES if data.startswith(magic)), ".img")


class ChatImageStore:
    """The content-addressed folder of chat images."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def put(self, data: bytes, name: str) -> StoredImage:
        """Keep `data` (once, whatever its name) and return its record."""
        image = StoredImage(hashlib.sha256(data).hexdigest(), name, image_suffix(data))
        path = self.path(image)
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=".incoming-")
            try:
                with os.fdopen(handle, "wb") as file:
                    file.write(data)
                os.replace(temporary, path)
            except BaseException:
                Path(temporary).unlink(missing_ok=True)
                raise
        return image

    def path(self, image: StoredImage) -> Path:
        return self.folder / image.sha256[:2] / image.file_name

    def read(self, image: StoredImage) -> bytes:
        """The image's bytes.

        Raises:
            ChatImageMissingError: the file is gone, or no longer has this content.
        """
        try:
            data = self.path(image).read_bytes()
        except OSError:
            raise ChatImageMissingError(
                f"The image {image.name} is no longer in {self.folder}."
            ) from None
        if hashlib.sha256(data).hexdigest() != image.sha256:
            raise ChatImageMissingError(f"The image {image.name} was changed on disk.")
        return data

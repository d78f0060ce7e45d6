"""The gallery: every generated image, indexed in the app database for fast paging.

Images are PNG files under `<data dir>/images/<YYYY-MM-DD>/` with their parameters inside
(`png_metadata`); the `images` table (migration 6) indexes them with a copy of the
parameters, the size and a thumbnail's path, so a page of a gallery of thousands is one
indexed query and no file is opened. Thumbnails are small JPEGs in `images/.thumbnails/`,
made by the engine as it saves an image, or by `make_thumbnail` (Pillow; blocking, call it
off the GUI thread) for files added later.

All methods block on SQLite or the disk; the GUI calls them through a worker.
"""

from __future__ import annotations

import contextlib
import json
import os
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from app import paths
from app.images.messages import GeneratedImage
from app.images.params import ImageParams, ImageParamsError
from app.images.pixels import open_image
from app.images.png_metadata import read_metadata
from app.store import Database

__all__ = ["THUMBNAIL_SIZE", "Gallery", "GalleryImage", "default_images_dir", "make_thumbnail"]

THUMBNAIL_SIZE = 256
_THUMBNAILS = ".thumbnails"
_COLUMNS = "id, path, thumbnail, params, model, width, height, seed, seconds, created_at"


def default_images_dir() -> Path:
    """Where generated images go: `<data dir>/images`."""
    return paths.data_dir() / "images"


@dataclass(frozen=True, kw_only=True)
class GalleryImage:
    """One image of the gallery."""

    id: int
    path: Path
    thumbnail: Path | None
    params: ImageParams | None  # None if the stored parameters no longer parse
    model: str | None
    width: int
    height: int
    seed: int | None
    seconds: float | None
    created_at: datetime


class Gallery:
    """The images table, and the files it indexes.

    Args:
        database: the app database (migration 6 made the `images` table).
        folder: where images are written (default: `default_images_dir()`).
    """

    def __init__(self, database: Database, *, folder: Path | None = None) -> None:
        self._database = database
        self.folder = folder or default_images_dir()

    @property
    def thumbnail_dir(self) -> Path:
        """Where thumbnails go (pass it to `ImageEngine.generate`)."""
        return self.folder / _THUMBNAILS

    def output_dir(self, when: datetime | None = None) -> Path:
        """Today's folder for new images (not created here; the engine creates it)."""
        day = (when or datetime.now()).strftime("%Y-%m-%d")
        return self.folder / day

    # -- adding -----------------------------------------------------------------------------

    def add(
        self,
        path: Path,
        params: ImageParams,
        *,
        width: int,
        height: int,
        thumbnail: Path | None = None,
        seconds: float | None = None,
        created_at: datetime | None = None,
    ) -> GalleryImage:
        """Index an image file (again: a path already indexed is updated)."""
        created = (created_at or datetime.now(UTC)).astimezone(UTC)
        model = params.model.name if params.model is not None else None
        row = (
            str(Path(path).absolute()),
            str(thumbnail) if thumbnail else None,
            json.dumps(params.to_json(), ensure_ascii=False),
            model,
            width,
            height,
            params.seed,
            seconds,
            created.isoformat(timespec="microseconds"),
        )
        with self._database.transaction() as connection:
            connection.execute(
                "INSERT INTO images (path, thumbnail, params, model, width, height, seed, "
                "seconds, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) "
                "ON CONFLICT(path) DO UPDATE SET thumbnail = excluded.thumbnail, "
                "params = excluded.params, model = excluded.model, width = excluded.width, "
                "height = excluded.height, seed = excluded.seed, seconds = excluded.seconds",
                row,
            )
            found = connection.execute(
                f"SELECT {_COLUMNS} FROM images WHERE path = ?", (row[0],)
            ).fetchone()
        return _image(found)

    def add_generated(self, image: GeneratedImage) -> GalleryImage:
        """Index an image the engine just wrote (from its "image" event or its RESULT)."""
        created = _parse_time(image.created_at) if image.created_at else None
        return self.add(
            image.path,
            image.params,
            width=image.width,
            height=image.height,
            thumbnail=image.thumbnail,
            seconds=image.seconds,
            created_at=created,
        )

    def add_file(self, path: Path) -> GalleryImage:
        """Index a PNG made elsewhere (ours or another tool's), making its thumbnail.

        Blocking (reads the image): call it off the GUI thread.

        Raises:
            OSError: the file cannot be read as an image.
        """
        from PIL import Image

        with Image.open(path) as image:
            width, height = image.size
        metadata = read_metadata(path)
        if metadata is not None:
            params = metadata.params
            seconds = metadata.seconds
            created = _parse_time(metadata.created_at) if metadata.created_at else None
        else:
            params = _unknown_params(width, height)
            seconds, created = None, None
        if created is None:
            created = datetime.fromtimestamp(Path(path).stat().st_mtime, UTC)
        thumbnail = make_thumbnail(path, self.thumbnail_dir)
        return self.add(
            path,
            params,
            width=width,
            height=height,
            thumbnail=thumbnail,
            seconds=seconds,
            created_at=created,
        )

    # -- reading ----------------------------------------------------------------------------

    def count(self) -> int:
        """How many images the gallery holds."""
        row = self._database.fetch_one("SELECT COUNT(*) FROM images")
        return int(row[0]) if row else 0

    def page(self, offset: int, limit: int) -> list[GalleryImage]:
        """Images `offset` … `offset + limit - 1`, newest first."""
        if offset < 0 or limit < 0:
            raise ValueError("offset and limit must not be negative")
        rows = self._database.fetch_all(
            f"SELECT {_COLUMNS} FROM images ORDER BY created_at DESC, id DESC LIMIT ? OFFSET ?",
            (limit, offset),
        )
        return [_image(row) for row in rows]

    def get(self, image_id: int) -> GalleryImage | None:
        """The image with this id, or None."""
        row = self._database.fetch_one(f"SELECT {_COLUMNS} FROM images WHERE id = ?", (image_id,))
        return _image(row) if row else None

    # -- deleting ---------------------------------------------------------------------------

    def delete(self, image_id: int) -> bool:
        """Delete an image: its file, its thumbnail, its row. False if there was no such image.

        A file already gone is not an error. Other OSErrors (permission) are raised and the
        row is kept, so the image stays visible.
        """
        image = self.get(image_id)
        if image is None:
            return False
        for file in (image.path, image.thumbnail):
            if file is None:
                continue
            with contextlib.suppress(FileNotFoundError):
                os.remove(file)
        self._database.execute("DELETE FROM images WHERE id = ?", (image_id,))
        return True


def make_thumbnail(path: Path, folder: Path, *, size: int = THUMBNAIL_SIZE) -> Path:
    """Write a JPEG of at most `size` px on its long side for the image at `path`.

    Blocking (Pillow): call it off the GUI thread.

    Raises:
        OSError: the image cannot be read (or declares too many pixels: `ImageTooLargeError`)
            or the thumbnail written.
    """
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / f"{Path(path).stem}.jpg"
    number = 2
    while target.exists():
        target = folder / f"{Path(path).stem}-{number}.jpg"
        number += 1
    with open_image(path) as image:  # a decompression bomb is refused before decoding
        image.draft("RGB", (size, size))  # JPEG sources decode at a smaller scale
        thumbnail = image.convert("RGB")
    thumbnail.thumbnail((size, size))
    thumbnail.save(target, format="JPEG", quality=85)
    return target


def _image(row: tuple[Any, ...] | None) -> GalleryImage:
    assert row is not None
    image_id, path, thumbnail, params_json, model, width, height, seed, seconds, created = row
    try:
        params: ImageParams | None = ImageParams.from_json(json.loads(params_json))
    except (ValueError, TypeError):  # ImageParamsError is a ValueError
        params = None
    return GalleryImage(
        id=int(image_id),
        path=Path(path),
        thumbnail=Path(thumbnail) if thumbnail else None,
        params=params,
        model=model,
        width=int(width),
        height=int(height),
        seed=None if seed is None else int(seed),
        seconds=None if seconds is None else float(seconds),
        created_at=_parse_time(created) or datetime.fromtimestamp(0, UTC),
    )


def _parse_time(text: str) -> datetime | None:
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        return None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def _unknown_params(width: int, height: int) -> ImageParams:
    """Parameters for an image that carries none (its size may be no multiple of 8)."""
    try:
        return ImageParams(prompt="", width=width, height=height)
    except ImageParamsError:
        return ImageParams(prompt="")

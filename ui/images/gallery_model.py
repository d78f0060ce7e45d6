"""The gallery as a list model: pages of `Gallery.page` fetched as the view scrolls, and
thumbnails decoded on a worker only for the rows the view paints, then kept in a bounded
cache. A gallery of thousands of images costs one page query and the visible thumbnails.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import (
    QAbstractListModel,
    QModelIndex,
    QObject,
    QPersistentModelIndex,
    QSize,
    Qt,
    Signal,
)
from PySide6.QtGui import QColor, QImage, QPixmap

from app.errors import AppError
from ui import theme
from ui.images.pictures import read_first
from ui.tasks import run_blocking, spawn
from ui.widgets import tooltip_html

if TYPE_CHECKING:
    import asyncio

    from app.images.gallery import Gallery, GalleryImage

    Index = QModelIndex | QPersistentModelIndex

PAGE_SIZE = 200
ICON_SIDE = 128
CACHE_SIZE = 600  # ~40 MB of 128-px pixmaps: several screens of scrolling back and forth
LOAD_BATCH = 24  # thumbnails decoded per worker call
ImageRole = Qt.ItemDataRole.UserRole


def describe(image: GalleryImage) -> str:
    """A tooltip: the prompt, size, seed and model."""
    params = image.params
    prompt = params.prompt if params is not None and params.prompt else "(no prompt)"
    if len(prompt) > 200:
        prompt = prompt[:199] + "…"
    facts = [f"{image.width} x {image.height}"]
    if image.seed is not None:
        facts.append(f"seed {image.seed}")
    if image.model:
        facts.append(image.model)
    return f"{prompt}\n{' · '.join(facts)}"


class GalleryModel(QAbstractListModel):
    """Newest first. `fetched` is emitted after each page (with the row count), `failed` with
    a message when the database cannot be read."""

    fetched = Signal(int)
    thumbnailsLoaded = Signal(int)  # how many arrived in one batch
    failed = Signal(str)

    def __init__(self, gallery: Callable[[], Gallery], parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._gallery = gallery  # may block on first use: call it on a worker
        self._images: list[GalleryImage] = []
        self._rows: dict[int, int] = {}  # image id -> row
        self._complete = False
        self._fetching: asyncio.Task[None] | None = None
        self._changes = 0  # bumped by every insert or removal, so a stale page is dropped
        # None: the image could not be decoded (it shows the placeholder).
        self._pixmaps: OrderedDict[int, QPixmap | None] = OrderedDict()
        self._wanted: OrderedDict[int, None] = OrderedDict()
        self._loading: asyncio.Task[None] | None = None
        self._placeholders: dict[str, QPixmap] = {}  # per colour: one per scheme

    # -- the list ------------------------------------------------------------------------

    def rowCount(self, parent: Index = QModelIndex()) -> int:  # noqa: B008
        return 0 if parent.isValid() else len(self._images)

    def data(self, index: Index, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if not index.isValid() or not 0 <= index.row() < len(self._images):
            return None
        image = self._images[index.row()]
        if role == Qt.ItemDataRole.DecorationRole:
            return self._pixmap(image)
        if role == Qt.ItemDataRole.ToolTipRole:
            return tooltip_html(describe(image))  # QToolTip guesses rich text; prompts are text
        if role == Qt.ItemDataRole.SizeHintRole:
            return QSize(ICON_SIDE, ICON_SIDE)
        if role == ImageRole:
            return image
        return None

    def canFetchMore(self, parent: Index = QModelIndex()) -> bool:  # noqa: B008
        return not parent.isValid() and not self._complete and self._fetching is None

    def fetchMore(self, parent: Index = QModelIndex()) -> None:  # noqa: B008
        if self.canFetchMore(parent):
            self._fetching = spawn(self._fetch())

    def image(self, row: int) -> GalleryImage | None:
        return self._images[row] if 0 <= row < len(self._images) else None

    def row_of(self, image_id: int) -> int:
        """The row of an image (-1 when it is not listed)."""
        return self._rows.get(image_id, -1)

    @property
    def complete(self) -> bool:
        """Whether every image of the gallery is listed."""
        return self._complete

    def refresh(self) -> None:
        """List from the start again (the first page is fetched on a worker)."""
        if self._fetching is not None:
            self._fetching.cancel()
            self._fetching = None
        self.beginResetModel()
        self._images, self._rows = [], {}
        self._complete = False
        self._changes += 1
        self.endResetModel()
        self.fetchMore()

    def prepend(self, images: Sequence[GalleryImage]) -> None:
        """Show images just added to the gallery (newest first) at the top."""
        fresh = [image for image in images if image.id not in self._rows]
        if not fresh:
            return
        fresh.sort(key=lambda image: (image.created_at, image.id), reverse=True)
        self.beginInsertRows(QModelIndex(), 0, len(fresh) - 1)
        self._images[:0] = fresh
        self._changed()
        self.endInsertRows()

    def remove(self, image_id: int) -> None:
        """Take a deleted image out of the list."""
        row = self._rows.get(image_id)
        if row is None:
            return
        self.beginRemoveRows(QModelIndex(), row, row)
        del self._images[row]
        self._changed()
        self.endRemoveRows()
        self._pixmaps.pop(image_id, None)

    def _changed(self) -> None:
        self._rows = {image.id: row for row, image in enumerate(self._images)}
        self._changes += 1

    async def _fetch(self) -> None:
        offset, changes = len(self._images), self._changes
        try:
            page = await run_blocking(lambda: self._gallery().page(offset, PAGE_SIZE))
        except (AppError, OSError) as exc:
            self._fetching = None
            self.failed.emit(f"The gallery could not be read: {exc}")
            return
        self._fetching = None
        if changes != self._changes:  # rows moved meanwhile: this page may overlap or skip
            self.fetchMore()
            return
        fresh = [image for image in page if image.id not in self._rows]
        if fresh:
            first = len(self._images)
            self.beginInsertRows(QModelIndex(), first, first + len(fresh) - 1)
            self._images.extend(fresh)
            self._changed()
            self.endInsertRows()
        self._complete = len(page) < PAGE_SIZE
        self.fetched.emit(len(self._images))

    # -- thumbnails ----------------------------------------------------------------------

    def placeholder(self) -> QPixmap:
        """The square shown until a thumbnail is decoded, in the scheme on screen (asked for at
        each paint, so it follows a light/dark switch)."""
        colour = theme.colours().button
        pixmap = self._placeholders.get(colour)
        if pixmap is None:
            pixmap = QPixmap(ICON_SIDE, ICON_SIDE)
            pixmap.fill(QColor(colour))
            self._placeholders[colour] = pixmap
        return pixmap

    def _pixmap(self, image: GalleryImage) -> QPixmap:
        if image.id in self._pixmaps:
            pixmap = self._pixmaps[image.id]
            self._pixmaps.move_to_end(image.id)
            return pixmap if pixmap is not None else self.placeholder()
        self._wanted[image.id] = None
        self._wanted.move_to_end(image.id)  # the latest asked for are the ones on screen
        if self._loading is None:
            self._loading = spawn(self._load_thumbnails())
        return self.placeholder()

    async def _load_thumbnails(self) -> None:
        try:
            while self._wanted:
                ids = list(reversed(self._wanted))[:LOAD_BATCH]
                for image_id in ids:
                    del self._wanted[image_id]
                sources: dict[int, list[Path | None]] = {}
                for image_id in ids:
                    row = self._rows.get(image_id)
                    if row is not None:
                        image = self._images[row]
                        sources[image_id] = [image.thumbnail, image.path]
                decoded = await run_blocking(_decode, sources)
                rows = []
                for image_id, picture in decoded.items():
                    row = self._rows.get(image_id)
                    if row is None:
                        continue
                    self._pixmaps[image_id] = (
                        QPixmap.fromImage(picture) if not picture.isNull() else None
                    )
                    rows.append(row)
                while len(self._pixmaps) > CACHE_SIZE:
                    self._pixmaps.popitem(last=False)
                if rows:
                    top, bottom = self.index(min(rows)), self.index(max(rows))
                    self.dataChanged.emit(top, bottom, [Qt.ItemDataRole.DecorationRole])
                    self.thumbnailsLoaded.emit(len(rows))
        finally:
            self._loading = None


def _decode(sources: dict[int, list[Path | None]]) -> dict[int, QImage]:
    """On a worker: each image's thumbnail (or, without one, the image) at icon size."""
    return {image_id: read_first(paths, ICON_SIDE) for image_id, paths in sources.items()}

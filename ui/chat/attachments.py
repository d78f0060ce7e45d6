"""Images in the Chat page: the tray of images attached to the message being written, and
the thumbnails a sent message shows.

Thumbnails are made on a worker thread (`QImageReader` scales while it decodes; a header
that claims more than `MAX_IMAGE_PIXELS` is refused before a pixel is read); the GUI thread
only turns the small `QImage` into a pixmap. The model's own decoding happens in the engine.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

import shiboken6
from PySide6.QtCore import QBuffer, QByteArray, QIODevice, QMimeData, QSize, Qt, Signal
from PySide6.QtGui import QImage, QImageReader, QImageWriter, QPixmap
from PySide6.QtWidgets import QHBoxLayout, QLabel, QToolButton, QVBoxLayout, QWidget

from app.chat.image_store import StoredImage
from app.chat.vision import ImageAttachment, VisionError, read_image_file
from app.llm.vision import MAX_IMAGE_PIXELS
from ui.icons import themed_icon
from ui.tasks import run_blocking, spawn
from ui.widgets import PlainLabel, tooltip_html

THUMBNAIL_SIDE = 72
IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".gif", ".bmp", ".webp"})


def thumbnail(data: bytes, side: int = THUMBNAIL_SIDE) -> QImage | None:
    """A small image of `data` (any thread); None when it is not an image Qt reads, or claims
    too many pixels."""
    buffer = QBuffer()
    buffer.setData(QByteArray(data))
    buffer.open(QIODevice.OpenModeFlag.ReadOnly)
    reader = QImageReader(buffer)
    size = reader.size()
    if not size.isValid() or size.width() * size.height() > MAX_IMAGE_PIXELS:
        return None
    reader.setScaledSize(size.scaled(QSize(side, side), Qt.AspectRatioMode.KeepAspectRatio))
    image = reader.read()
    return None if image.isNull() else image


def image_files(mime: QMimeData) -> list[Path]:
    """The local image files a drop or paste carries (by their extension)."""
    if not mime.hasUrls():
        return []
    paths = [Path(url.toLocalFile()) for url in mime.urls() if url.isLocalFile()]
    return [path for path in paths if path.suffix.lower() in IMAGE_SUFFIXES]


def pasted_image(mime: QMimeData) -> ImageAttachment | None:
    """An image pasted as pixels (a screenshot), as PNG bytes."""
    if not mime.hasImage():
        return None
    image = QImage(mime.imageData())
    if image.isNull():
        return None
    buffer = QBuffer()
    buffer.open(QIODevice.OpenModeFlag.WriteOnly)
    if not QImageWriter(buffer, QByteArray(b"PNG")).write(image):
        return None
    return ImageAttachment(bytes(buffer.data().data()), "pasted image.png")


class ThumbnailRow(QWidget):
    """A row of thumbnails, each with its name as a tooltip (and a remove button when
    `removable`)."""

    removed = Signal(int)  # the index of the image taken away

    def __init__(self, *, removable: bool = False, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._removable = removable
        self._layout = QHBoxLayout(self)
        self._layout.setContentsMargins(0, 2, 0, 2)
        self._layout.setSpacing(6)
        self._layout.addStretch(1)
        self.thumbnails: list[QLabel] = []
        self.remove_buttons: list[QToolButton] = []

    def set_images(self, images: Sequence[tuple[str, QImage | None]]) -> None:
        """Show `images` (name, thumbnail); a None thumbnail shows the name instead."""
        while self._layout.count() > 1:
            item = self._layout.takeAt(0)
            if item is not None and (widget := item.widget()) is not None:
                widget.deleteLater()
        self.thumbnails, self.remove_buttons = [], []
        for index, (name, image) in enumerate(images):
            cell = QWidget()
            column = QVBoxLayout(cell)
            column.setContentsMargins(0, 0, 0, 0)
            column.setSpacing(0)
            label = QLabel()
            label.setAccessibleName(f"Image {name}")
            label.setToolTip(tooltip_html(name))
            label.setFixedSize(THUMBNAIL_SIDE, THUMBNAIL_SIDE)
            label.setAlignment(Qt.AlignmentFlag.AlignCenter)
            label.setFrameShape(QLabel.Shape.StyledPanel)
            if image is not None:
                label.setPixmap(QPixmap.fromImage(image))
            else:
                label.setTextFormat(Qt.TextFormat.PlainText)
                label.setText("?")
            column.addWidget(label)
            if self._removable:
                remove = QToolButton()
                remove.setIcon(themed_icon("cancel"))
                remove.setToolTip("Remove this image")
                remove.setAccessibleName(f"Remove {name}")
                remove.clicked.connect(lambda _=False, at=index: self.removed.emit(at))
                column.addWidget(remove, 0, Qt.AlignmentFlag.AlignHCenter)
                self.remove_buttons.append(remove)
            self._layout.insertWidget(index, cell)
            self.thumbnails.append(label)
        self.setVisible(bool(images))


class AttachmentTray(QWidget):
    """The images attached to the message being written: thumbnails that can be removed, and a note
    when a file could not be attached."""

    changed = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._attachments: list[tuple[ImageAttachment, QImage | None]] = []
        self.row = ThumbnailRow(removable=True)
        self.note = PlainLabel()
        self.note.setWordWrap(True)
        self.note.hide()
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(2)
        layout.addWidget(self.row)
        layout.addWidget(self.note)
        self.row.removed.connect(self._remove)
        self.row.hide()

    @property
    def attachments(self) -> tuple[ImageAttachment, ...]:
        return tuple(attachment for attachment, _ in self._attachments)

    def add_files(self, paths: Iterable[Path]) -> None:
        """Attach image files (read and thumbnailed on a worker)."""
        spawn(self._add_files(list(paths)))

    def add(self, attachment: ImageAttachment) -> None:
        spawn(self._add([attachment]))

    def clear(self) -> None:
        self._attachments.clear()
        self.note.hide()
        self._show()

    async def _add_files(self, paths: list[Path]) -> None:
        def read() -> tuple[list[ImageAttachment], list[str]]:
            read_ok: list[ImageAttachment] = []
            problems: list[str] = []
            for path in paths:
                try:
                    read_ok.append(read_image_file(path))
                except VisionError as exc:
                    problems.append(str(exc))
            return read_ok, problems

        attachments, problems = await run_blocking(read)
        if not shiboken6.isValid(self):
            return
        await self._add(attachments, problems)

    async def _add(
        self, attachments: list[ImageAttachment], problems: list[str] | None = None
    ) -> None:
        thumbnails = await run_blocking(lambda: [thumbnail(a.data) for a in attachments])
        if not shiboken6.isValid(self):
            return
        problems = list(problems or [])
        for attachment, image in zip(attachments, thumbnails, strict=True):
            if image is None:
                problems.append(f"{attachment.name} is not an image this app can show.")
                continue
            self._attachments.append((attachment, image))
        self.note.setText(" ".join(problems))
        self.note.setVisible(bool(problems))
        self._show()

    def _remove(self, index: int) -> None:
        if 0 <= index < len(self._attachments):
            del self._attachments[index]
            self._show()

    def _show(self) -> None:
        self.row.set_images([(a.name, image) for a, image in self._attachments])
        self.changed.emit()


async def show_stored_images(
    row: ThumbnailRow, images: Sequence[StoredImage], read: Callable[[StoredImage], bytes]
) -> None:
    """Fill a message's thumbnail row from the image store (read and scaled on a worker)."""

    def load() -> list[tuple[str, QImage | None]]:
        loaded: list[tuple[str, QImage | None]] = []
        for image in images:
            try:
                loaded.append((image.name, thumbnail(read(image))))
            except OSError:  # gone from the store: the name stays
                loaded.append((image.name, None))
        return loaded

    thumbnails = await run_blocking(load)
    if shiboken6.isValid(row):
        row.set_images(thumbnails)

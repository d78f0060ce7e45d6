"""Decoding pictures off the GUI thread: QImage is reentrant, QPixmap is not, so workers read
QImages at the size they will be shown and the GUI thread turns them into pixmaps."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QSize, Qt
from PySide6.QtGui import QImage, QImageReader


def read_scaled(path: Path, side: int | None = None) -> QImage:
    """The image at `path`, at most `side` px on its long side (None: full size); a null
    QImage when it cannot be read. Blocking: call it on a worker.

    JPEG thumbnails decode at the smaller size directly; other formats are scaled after.
    """
    reader = QImageReader(str(path))
    reader.setAutoTransform(True)
    size = reader.size()
    if side is not None and size.isValid() and max(size.width(), size.height()) > side:
        reader.setScaledSize(size.scaled(QSize(side, side), Qt.AspectRatioMode.KeepAspectRatio))
    image = reader.read()
    if image.isNull() or side is None or max(image.width(), image.height()) <= side:
        return image
    return image.scaled(
        side,
        side,
        Qt.AspectRatioMode.KeepAspectRatio,
        Qt.TransformationMode.SmoothTransformation,
    )


def read_first(paths: list[Path | None], side: int) -> QImage:
    """The first of `paths` that reads as an image (a thumbnail, then the image itself)."""
    for path in paths:
        if path is not None:
            image = read_scaled(path, side)
            if not image.isNull():
                return image
    return QImage()

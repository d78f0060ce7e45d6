"""One image, large, beside how it was made; reuse its settings, start from it, or delete it."""

from __future__ import annotations

from collections.abc import Callable
from html import escape

import shiboken6
from PySide6.QtCore import QSize, Qt, Signal
from PySide6.QtGui import QPixmap, QResizeEvent
from PySide6.QtWidgets import (
    QDialog,
    QDialogButtonBox,
    QHBoxLayout,
    QPushButton,
    QSizePolicy,
    QVBoxLayout,
    QWidget,
)

from app.images.gallery import GalleryImage
from app.images.params import DEFAULT_SCHEDULER
from ui.images.pictures import read_scaled
from ui.inert_text import InertTextBrowser
from ui.tasks import run_blocking, spawn
from ui.widgets import PlainLabel


def parameters_html(image: GalleryImage) -> str:
    """How `image` was made, as a small HTML table (every value escaped)."""
    params = image.params
    rows: list[tuple[str, str]] = []
    if params is not None:
        rows += [
            ("Prompt", params.prompt or "(none)"),
            ("Negative prompt", params.negative or "(none)"),
            ("Steps", str(params.steps)),
            ("Guidance", f"{params.guidance:g}"),
            ("Seed", str(params.seed) if params.seed is not None else "unknown"),
            (
                "Scheduler",
                "model default" if params.scheduler == DEFAULT_SCHEDULER else params.scheduler,
            ),
        ]
        if params.init_image:
            rows.append(("Init image", f"{params.init_image} (strength {params.strength:g})"))
    else:
        rows.append(("Parameters", "not readable"))
    rows.append(("Size", f"{image.width} x {image.height}"))
    if image.model:
        rows.append(("Model", image.model))
    if image.seconds is not None:
        rows.append(("Time", f"{image.seconds:.1f} s"))
    rows.append(("Made", image.created_at.astimezone().strftime("%Y-%m-%d %H:%M")))
    rows.append(("File", str(image.path)))
    body = "".join(
        f"<tr><td valign='top'><b>{escape(name)}</b>&nbsp;</td>"
        f"<td>{escape(value).replace(chr(10), '<br>')}</td></tr>"
        for name, value in rows
    )
    return f"<table cellspacing='2'>{body}</table>"


class ImageViewer(QDialog):
    """Not modal: the page stays usable while it is open."""

    reuseRequested = Signal(object)  # the GalleryImage
    initRequested = Signal(object)
    deleteRequested = Signal(object)
    shown = Signal()  # the full image is on screen

    def __init__(self, image: GalleryImage, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.image = image
        self._pixmap: QPixmap | None = None
        self.setWindowTitle(image.path.name)
        self.picture = PlainLabel("Loading…")
        self.picture.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.picture.setMinimumSize(QSize(256, 256))
        self.picture.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Ignored)
        self.details = InertTextBrowser()  # prompts are outside text: escaped, and load nothing
        self.details.setHtml(parameters_html(image))
        self.details.setMinimumWidth(280)
        buttons = QDialogButtonBox()
        self.reuse_button = QPushButton("Reuse these settings")
        self.init_button = QPushButton("Use as init image")
        self.delete_button = QPushButton("Delete…")
        self.reuse_button.setAccessibleName("Reuse this image's settings")
        self.init_button.setAccessibleName("Use this image as the init image")
        self.delete_button.setAccessibleName("Delete this image")
        buttons.addButton(self.reuse_button, QDialogButtonBox.ButtonRole.ActionRole)
        buttons.addButton(self.init_button, QDialogButtonBox.ButtonRole.ActionRole)
        buttons.addButton(self.delete_button, QDialogButtonBox.ButtonRole.DestructiveRole)
        buttons.addButton(QDialogButtonBox.StandardButton.Close)
        self.reuse_button.setEnabled(image.params is not None)

        row = QHBoxLayout()
        row.addWidget(self.picture, 3)
        row.addWidget(self.details, 2)
        layout = QVBoxLayout(self)
        layout.addLayout(row, 1)
        layout.addWidget(buttons)
        self.resize(980, 640)

        buttons.rejected.connect(self.reject)
        self.reuse_button.clicked.connect(lambda: self._then_close(self.reuseRequested.emit))
        self.init_button.clicked.connect(lambda: self._then_close(self.initRequested.emit))
        self.delete_button.clicked.connect(lambda: self.deleteRequested.emit(self.image))
        spawn(self._load())

    def _then_close(self, emit: Callable[[object], None]) -> None:
        emit(self.image)
        self.accept()

    async def _load(self) -> None:
        picture = await run_blocking(read_scaled, self.image.path)
        if not shiboken6.isValid(self.picture):  # closed (and deleted) while it was read
            return
        if picture.isNull():
            self.picture.setText(f"{self.image.path.name} cannot be read (moved or deleted?)")
            return
        self._pixmap = QPixmap.fromImage(picture)
        self._fit()
        self.shown.emit()

    def resizeEvent(self, event: QResizeEvent) -> None:
        super().resizeEvent(event)
        self._fit()

    def _fit(self) -> None:
        if self._pixmap is None:
            return
        self.picture.setPixmap(fit(self._pixmap, self.picture.size()))


def fit(pixmap: QPixmap, area: QSize) -> QPixmap:
    """`pixmap` scaled to fill `area` (smoothly when it shrinks; small images grow in crisp
    pixels, which shows them as they are)."""
    if pixmap.isNull() or area.width() <= 0 or area.height() <= 0:
        return pixmap
    shrinking = pixmap.width() > area.width() or pixmap.height() > area.height()
    mode = (
        Qt.TransformationMode.SmoothTransformation
        if shrinking
        else Qt.TransformationMode.FastTransformation
    )
    return pixmap.scaled(area, Qt.AspectRatioMode.KeepAspectRatio, mode)

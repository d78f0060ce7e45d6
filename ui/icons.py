"""Line icons shipped as SVG (resources/icons/*.svg), drawn in the palette's text colours.

Each SVG strokes with `currentColor`. The icon engine puts in the colour of the current
palette each time a pixmap is asked for, so icons follow a light/dark switch with no
bookkeeping, and it renders at the requested pixel size, so they stay sharp on HiDPI screens
(Qt asks for the size times the device pixel ratio).
"""

from __future__ import annotations

import functools
from pathlib import Path

from PySide6.QtCore import QByteArray, QRect, QRectF, QSize, Qt
from PySide6.QtGui import QGuiApplication, QIcon, QIconEngine, QPainter, QPalette, QPixmap
from PySide6.QtSvg import QSvgRenderer

ICON_DIR = Path(__file__).resolve().parent.parent / "resources" / "icons"

# The colour an icon takes in each mode, as in the text beside it.
_ROLE_GROUPS = {
    QIcon.Mode.Normal: (QPalette.ColorGroup.Active, QPalette.ColorRole.ButtonText),
    QIcon.Mode.Active: (QPalette.ColorGroup.Active, QPalette.ColorRole.ButtonText),
    QIcon.Mode.Selected: (QPalette.ColorGroup.Active, QPalette.ColorRole.HighlightedText),
    QIcon.Mode.Disabled: (QPalette.ColorGroup.Disabled, QPalette.ColorRole.ButtonText),
}


@functools.cache
def _svg_source(name: str) -> str:
    """The SVG text of icon `name` ("" when the file is missing: an empty icon, not a crash)."""
    path = ICON_DIR / f"{name}.svg"
    return path.read_text(encoding="utf-8") if path.is_file() else ""


@functools.lru_cache(maxsize=256)
def _render(name: str, width: int, height: int, colour: str) -> QPixmap:
    pixmap = QPixmap(width, height)
    pixmap.fill(Qt.GlobalColor.transparent)
    source = _svg_source(name)
    if source and width > 0 and height > 0:
        renderer = QSvgRenderer(QByteArray(source.replace("currentColor", colour).encode()))
        painter = QPainter(pixmap)
        renderer.render(painter, QRectF(0, 0, width, height))
        painter.end()
    return pixmap


def icon_colour(mode: QIcon.Mode) -> str:
    """The colour (#rrggbb) an icon is drawn in, in `mode`, from the application palette."""
    group, role = _ROLE_GROUPS.get(mode, _ROLE_GROUPS[QIcon.Mode.Normal])
    return QGuiApplication.palette().color(group, role).name()


class ThemedSvgEngine(QIconEngine):
    """Renders one of the shipped SVGs in the palette's colour for the icon's mode."""

    def __init__(self, name: str) -> None:
        super().__init__()
        self.name = name

    def pixmap(self, size: QSize, mode: QIcon.Mode, state: QIcon.State) -> QPixmap:
        # `size` is in device pixels: QIcon multiplies by the screen's ratio before asking.
        return QPixmap(_render(self.name, size.width(), size.height(), icon_colour(mode)))

    def paint(self, painter: QPainter, rect: QRect, mode: QIcon.Mode, state: QIcon.State) -> None:
        ratio = painter.device().devicePixelRatioF() if painter.device() else 1.0
        pixels = QSize(round(rect.width() * ratio), round(rect.height() * ratio))
        pixmap = self.pixmap(pixels, mode, state)
        pixmap.setDevicePixelRatio(ratio)
        painter.drawPixmap(rect, pixmap)

    def clone(self) -> QIconEngine:
        return ThemedSvgEngine(self.name)

    def key(self) -> str:
        return "ModelDeckThemedSvg"

    def isNull(self) -> bool:
        return not _svg_source(self.name)


def themed_icon(name: str) -> QIcon:
    """The shipped icon `name` (resources/icons/`name`.svg), drawn in the palette's colours."""
    return QIcon(ThemedSvgEngine(name))

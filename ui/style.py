"""ModelDeck's few visual touches, set through fonts and palettes.

Not an application style sheet: one makes Qt polish every widget through its style-sheet
engine, which doubled the main window's construction time (about 20 ms of startup).
"""

from __future__ import annotations

from PySide6.QtGui import QColor, QFont, QPalette
from PySide6.QtWidgets import QApplication, QWidget

ERROR_COLOUR = QColor("#c62828")
NOTICE_BACKGROUND = QColor("#fff3e0")
NOTICE_TEXT = QColor("#5d4037")


def set_font(widget: QWidget, *, points_delta: float = 0.0, bold: bool = False) -> None:
    """Make `widget`'s font larger (or smaller) by `points_delta` and optionally bold."""
    font = QFont(widget.font())
    if points_delta:
        font.setPointSizeF(max(6.0, font.pointSizeF() + points_delta))
    font.setBold(bold)
    widget.setFont(font)


def mark_error(widget: QWidget, error: bool) -> None:
    """Show `widget`'s text in the error colour (or the normal one); `error` property follows."""
    widget.setProperty("error", error)
    palette = QPalette(widget.palette())
    normal = QApplication.palette().color(QPalette.ColorRole.WindowText)
    palette.setColor(QPalette.ColorRole.WindowText, ERROR_COLOUR if error else normal)
    widget.setPalette(palette)


def make_notice(widget: QWidget) -> None:
    """A pale warning band, for "offline copy" and "broken metadata" notes."""
    palette = QPalette(widget.palette())
    palette.setColor(QPalette.ColorRole.Window, NOTICE_BACKGROUND)
    palette.setColor(QPalette.ColorRole.WindowText, NOTICE_TEXT)
    widget.setPalette(palette)
    widget.setAutoFillBackground(True)
    widget.setContentsMargins(4, 4, 4, 4)

"""ModelDeck's few visual touches, set through fonts and palettes.

Not an application style sheet: one makes Qt polish every widget through its style-sheet
engine, which doubled the main window's construction time (about 20 ms of startup).
Colours come from `ui.theme`, in the scheme on screen; a marked widget takes the new
scheme's colour when the application palette changes.
"""

from __future__ import annotations

from PySide6.QtCore import QEvent, QObject
from PySide6.QtGui import QColor, QFont, QPalette
from PySide6.QtWidgets import QWidget

from ui import theme


def set_font(widget: QWidget, *, points_delta: float = 0.0, bold: bool = False) -> None:
    """Make `widget`'s font larger (or smaller) by `points_delta` and optionally bold."""
    font = QFont(widget.font())
    if points_delta:
        font.setPointSizeF(max(6.0, font.pointSizeF() + points_delta))
    font.setBold(bold)
    widget.setFont(font)


def mark_error(widget: QWidget, error: bool) -> None:
    """Show `widget`'s text in the error colour (or the normal one); `error` property follows."""
    was_error = bool(widget.property("error"))
    widget.setProperty("error", error)
    if error:
        _paint(widget, {QPalette.ColorRole.WindowText: theme.colours().error})
    elif was_error:
        widget.setPalette(QPalette())  # no role of its own: it inherits the scheme's text colour


def make_notice(widget: QWidget) -> None:
    """A pale warning band, for "offline copy" and "broken metadata" notes."""
    widget.setProperty("notice", True)
    _paint_notice(widget)
    widget.setAutoFillBackground(True)
    widget.setContentsMargins(4, 4, 4, 4)


def _paint_notice(widget: QWidget) -> None:
    colours = theme.colours()
    _paint(
        widget,
        {
            QPalette.ColorRole.Window: colours.notice_background,
            QPalette.ColorRole.WindowText: colours.notice_text,
        },
    )


def _paint(widget: QWidget, roles: dict[QPalette.ColorRole, str]) -> None:
    palette = QPalette(widget.palette())
    for role, colour in roles.items():
        palette.setColor(role, QColor(colour))
    widget.setPalette(palette)
    widget.installEventFilter(_SCHEME_FOLLOWER)  # installing twice keeps one


class _SchemeFollower(QObject):
    """Repaints marked widgets in the new scheme's colours when the app palette changes."""

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        # A top-level widget hears ApplicationPaletteChange; one inside a window hears only
        # PaletteChange, as its parent's palette changes. Its own colours are checked first,
        # so repainting (itself a PaletteChange) stops once they are the scheme's.
        if event.type() in _PALETTE_EVENTS and isinstance(watched, QWidget):
            colours = theme.colours()
            palette = watched.palette()
            if watched.property("notice"):
                if palette.color(QPalette.ColorRole.Window) != QColor(colours.notice_background):
                    _paint_notice(watched)
            elif watched.property("error") and palette.color(
                QPalette.ColorRole.WindowText
            ) != QColor(colours.error):
                _paint(watched, {QPalette.ColorRole.WindowText: colours.error})
        return False


_PALETTE_EVENTS = (QEvent.Type.ApplicationPaletteChange, QEvent.Type.PaletteChange)


_SCHEME_FOLLOWER = _SchemeFollower()

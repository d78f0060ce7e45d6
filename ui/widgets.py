"""Small widgets shared by pages, and the one way to show text from a hub or a file.

Qt guesses whether a string is rich text (`Qt.mightBeRichText`) wherever a widget's text
format is "auto": QLabel by default, tooltips, QMessageBox texts. A model name, a tag or a
file name that starts with `<img src="file:///…">` would then be rendered as HTML, and Qt
would load the image from disk. So text that came from a hub, a model file, a PNG or the
user goes into widgets only through these helpers:

- `plain_label` / `PlainLabel`: a QLabel whose text is always shown literally;
- `html_label`: a QLabel for HTML the app writes itself, with every outside value escaped;
- `plain_html`: outside text turned into rich text that shows literally, for the places
  that always sniff (tooltips, message boxes);
- `tooltip_html`: the same for tooltips, clipped so a huge name cannot fill the screen.

Item views draw `DisplayRole` text plainly (QStyledItemDelegate never sniffs), but their
`ToolTipRole` goes to QToolTip, which does: models answer tooltips through `tooltip_html`.
"""

from __future__ import annotations

import html

from PySide6.QtCore import Qt
from PySide6.QtGui import QPainter, QPaintEvent, QResizeEvent
from PySide6.QtWidgets import QLabel, QProgressBar, QSizePolicy, QVBoxLayout, QWidget

from ui import theme
from ui.style import mark_error, set_font

# Outside text is cut on screen (a hostile name can be 100 kB; one without spaces cannot wrap
# and would widen its window past the screen). Real ids and names are far shorter.
SHORT_CHARS = 300  # one-line facts: a repo id, a library name, a title
LONG_CHARS = 2_000  # tooltips and messages


def clip(text: str, limit: int = SHORT_CHARS) -> str:
    """`text`, cut to `limit` characters with an ellipsis."""
    return text if len(text) <= limit else text[: limit - 1] + "…"


def plain_html(text: str) -> str:
    """Rich text that shows exactly `text`: every character escaped, line breaks and spaces kept.

    For widgets that always guess the format (QToolTip, QMessageBox): escaping alone would
    show "&lt;" literally in a text that does not look like HTML, so the result is wrapped in
    a paragraph, which makes Qt read it as rich text every time.
    """
    return f'<p style="white-space:pre-wrap">{html.escape(text, quote=False)}</p>'


def tooltip_html(text: str, limit: int = LONG_CHARS) -> str:
    """A tooltip showing `text` literally (at most `limit` characters); "" stays "" (no tip)."""
    return plain_html(clip(text, limit)) if text else ""


def let_shrink(widget: QWidget) -> None:
    """Let `widget` be narrower than its text: it takes the width its layout gives, and clips.

    A word from outside with no space to wrap at (a 300-character id) would otherwise set the
    label's minimum width, and with it the window's.
    """
    widget.setSizePolicy(QSizePolicy.Policy.Ignored, widget.sizePolicy().verticalPolicy())


class PlainLabel(QLabel):
    """A QLabel that shows its text literally, whatever the text looks like."""

    def __init__(self, text: str = "", parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setTextFormat(Qt.TextFormat.PlainText)
        self.setText(text)


def plain_label(
    text: str = "", *, word_wrap: bool = False, selectable: bool = False, shrinkable: bool = False
) -> PlainLabel:
    """A label for text that came from outside (or may some day): never read as HTML.

    `shrinkable`: for outside text, which may hold a word too long to wrap (`let_shrink`).
    """
    label = PlainLabel(text)
    label.setWordWrap(word_wrap)
    if selectable:
        label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
    if shrinkable:
        let_shrink(label)
    return label


class ElidedLabel(PlainLabel):
    """One line of outside text that takes the width it is given and, when that is too
    narrow, shows "…" in the middle (a repo id keeps its owner and its end); the whole text
    is in `text()` and, when cut, in the tooltip."""

    def __init__(self, text: str = "", parent: QWidget | None = None) -> None:
        super().__init__(text, parent)
        let_shrink(self)

    def setText(self, text: str) -> None:
        super().setText(text)
        self._update_tooltip()

    def resizeEvent(self, event: QResizeEvent) -> None:
        super().resizeEvent(event)
        self._update_tooltip()

    def _elided(self) -> str:
        width = self.contentsRect().width()
        return self.fontMetrics().elidedText(self.text(), Qt.TextElideMode.ElideMiddle, width)

    def _update_tooltip(self) -> None:
        cut = self._elided() != self.text()
        self.setToolTip(tooltip_html(self.text()) if cut else "")

    def paintEvent(self, event: QPaintEvent) -> None:
        painter = QPainter(self)
        painter.setPen(self.palette().color(self.foregroundRole()))
        align = self.alignment() | Qt.AlignmentFlag.AlignVCenter
        painter.drawText(self.contentsRect(), align, self._elided())


def html_label(markup: str = "") -> QLabel:
    """A label for HTML the app writes, with every outside value escaped (`html.escape`).

    The format is stated, not guessed, so a caller's markup is never shown as source and
    nothing else in the label is ever taken for markup by accident.
    """
    label = QLabel()
    label.setTextFormat(Qt.TextFormat.RichText)
    label.setText(markup)
    return label


def heading_label(text: str) -> PlainLabel:
    """A page title: plain text in a larger bold font (no `<h2>` markup needed)."""
    label = PlainLabel(text)
    set_font(label, points_delta=theme.TITLE_POINTS, bold=True)
    return label


class MessageView(QWidget):
    """A centred title and explanation: the loading, empty, error and offline states."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        # Both may quote a repo id or a hub's error message: plain text.
        self.title = plain_label(shrinkable=True)
        set_font(self.title, points_delta=3, bold=True)
        self.text = plain_label(word_wrap=True, selectable=True, shrinkable=True)
        self.busy = QProgressBar()
        self.busy.setRange(0, 0)  # an indeterminate "working" bar
        self.busy.setMaximumWidth(200)
        self.busy.setTextVisible(False)
        layout = QVBoxLayout(self)
        layout.addStretch(1)
        layout.addWidget(self.title)
        layout.addWidget(self.text)
        layout.addWidget(self.busy, 0, Qt.AlignmentFlag.AlignHCenter)
        layout.addStretch(2)
        self.title.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.text.setAlignment(Qt.AlignmentFlag.AlignCenter)

    def show_message(
        self, title: str, text: str, *, busy: bool = False, error: bool = False
    ) -> None:
        self.title.setText(clip(title))
        self.text.setText(clip(text, LONG_CHARS))
        mark_error(self.text, error)
        self.busy.setVisible(busy)

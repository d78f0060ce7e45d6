"""Badges: small rounded chips of text in one of five tones ("GGUF", "fits", "MIT").

A badge is painted, never a QLabel: the text is drawn with `QPainter.drawText`, which never
reads rich text, so a tag or a license name from a hub can be shown in one safely. Its
colours come from `ui.theme` when it paints, so a badge follows a light/dark switch without
listening for it.

- `Badge`: a widget, for layouts (a row of chips above a tab, a status in a form);
- `paint_badge` / `badge_width`: the same chip drawn by hand;
- `BadgeDelegate`: draws a view's cell as a chip when the model gives the cell a `ToneRole`.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from PySide6.QtCore import QModelIndex, QPersistentModelIndex, QRect, QRectF, QSize, Qt
from PySide6.QtGui import QColor, QFont, QFontMetrics, QPainter, QPaintEvent
from PySide6.QtWidgets import (
    QApplication,
    QSizePolicy,
    QStyle,
    QStyledItemDelegate,
    QStyleOptionViewItem,
    QWidget,
)

from ui import theme
from ui.widgets import clip, tooltip_html

# Padding inside a chip and the gap between chips, in device-independent pixels.
H_PADDING = 6
V_PADDING = 2
TEXT_SLACK = 2
GAP = 4
RADIUS = 4.0
# A cell whose model answers a `Tone` (or its value: Qt hands a StrEnum back as a plain
# str) for this role is drawn as a chip by `BadgeDelegate`.
ToneRole = Qt.ItemDataRole.UserRole + 40
CELL_MARGIN = 3
# A badge is a short fact; a longer text (a hostile tag) is cut here before it is measured.
MAX_CHARS = 60


class Tone(StrEnum):
    """What a badge says about its fact: colour carries the meaning, the text says it too."""

    NEUTRAL = "neutral"
    GOOD = "good"
    CAUTION = "caution"
    BAD = "bad"
    ACCENT = "accent"


@dataclass(frozen=True, slots=True)
class BadgeColours:
    background: QColor
    border: QColor
    text: QColor


def badge_colours(tone: Tone) -> BadgeColours:
    """The chip colours for `tone` in the scheme on screen (call it when painting)."""
    c = theme.colours()
    ink = {
        Tone.NEUTRAL: c.neutral,
        Tone.GOOD: c.good,
        Tone.CAUTION: c.warning,
        Tone.BAD: c.bad,
        Tone.ACCENT: c.accent,
    }[tone]
    # A pale wash of the tone over the base colour, an outline of the tone, text in the
    # tone: readable on both schemes because the theme's tone colours already are.
    background = _blend(QColor(c.base), QColor(ink), 0.14)
    border = _blend(QColor(c.base), QColor(ink), 0.45)
    text = QColor(c.text) if tone is Tone.NEUTRAL else QColor(ink)
    return BadgeColours(background, border, text)


def _blend(under: QColor, over: QColor, amount: float) -> QColor:
    mix = 1.0 - amount
    return QColor(
        round(under.red() * mix + over.red() * amount),
        round(under.green() * mix + over.green() * amount),
        round(under.blue() * mix + over.blue() * amount),
    )


def badge_font(base: QFont) -> QFont:
    """The badges' font: one step smaller than `base` (secondary facts, theme.SMALL_POINTS)."""
    font = QFont(base)
    if font.pointSizeF() > 0:
        font.setPointSizeF(max(6.0, font.pointSizeF() + theme.SMALL_POINTS))
    return font


def badge_size(metrics: QFontMetrics, text: str) -> QSize:
    """The chip size for `text` in the font `metrics` measures (a badge font)."""
    shown = clip(text, MAX_CHARS)
    # Two pixels of slack: the integer advance rounds a fractional width down, and text drawn
    # into exactly that width is elided by its last fraction of a pixel ("License not kno…").
    width = metrics.horizontalAdvance(shown) + 2 * H_PADDING + TEXT_SLACK
    return QSize(width, metrics.height() + 2 * V_PADDING)


def badge_width(metrics: QFontMetrics, text: str) -> int:
    return badge_size(metrics, text).width()


def paint_badge(
    painter: QPainter, rect: QRect, text: str, tone: Tone, *, elide: bool = True
) -> None:
    """Draw a chip filling `rect` with `text` in the painter's current font (a badge font).

    The text is elided at the end when `rect` is narrower than it (`elide`).
    """
    colours = badge_colours(tone)
    painter.save()
    painter.setRenderHint(QPainter.RenderHint.Antialiasing, True)
    painter.setPen(colours.border)
    painter.setBrush(colours.background)
    painter.drawRoundedRect(QRectF(rect).adjusted(0.5, 0.5, -0.5, -0.5), RADIUS, RADIUS)
    painter.setPen(colours.text)
    inner = rect.adjusted(H_PADDING, 0, -H_PADDING, 0)
    shown = clip(text, MAX_CHARS)
    metrics = painter.fontMetrics()
    if elide and metrics.horizontalAdvance(shown) > inner.width():
        shown = metrics.elidedText(shown, Qt.TextElideMode.ElideRight, inner.width())
    painter.drawText(inner, Qt.AlignmentFlag.AlignCenter | Qt.TextFlag.TextDontClip, shown)
    painter.restore()


class Badge(QWidget):
    """One chip as a widget: `text` in `tone`, a tooltip that says the whole text.

    The accessible name is the text, so a screen reader reads the fact, not "graphic".
    """

    def __init__(
        self,
        text: str = "",
        tone: Tone = Tone.NEUTRAL,
        parent: QWidget | None = None,
        *,
        tooltip: str = "",
    ) -> None:
        super().__init__(parent)
        self._text = ""
        self._tone = tone
        self._tooltip = tooltip
        self.setFont(badge_font(self.font()))
        self.setSizePolicy(QSizePolicy.Policy.Maximum, QSizePolicy.Policy.Fixed)
        self.setText(text)

    def text(self) -> str:
        return self._text

    def tone(self) -> Tone:
        return self._tone

    def setText(self, text: str) -> None:
        self._text = text
        self.setAccessibleName(clip(text, MAX_CHARS))
        self._update_tooltip()
        self.updateGeometry()
        self.update()

    def setTone(self, tone: Tone) -> None:
        self._tone = tone
        self.update()

    def set_badge(self, text: str, tone: Tone, *, tooltip: str = "") -> None:
        """Change text, tone and tooltip at once (a status badge that moves through states)."""
        self._tone = tone
        self._tooltip = tooltip
        self.setText(text)

    def _update_tooltip(self) -> None:
        # Outside text: the tooltip shows it literally. A chip cut short shows it whole.
        whole = self._tooltip or (self._text if len(self._text) > MAX_CHARS else "")
        self.setToolTip(tooltip_html(whole))

    def sizeHint(self) -> QSize:
        return badge_size(self.fontMetrics(), self._text)

    def minimumSizeHint(self) -> QSize:
        hint = self.sizeHint()
        return QSize(min(hint.width(), 2 * H_PADDING + self.fontMetrics().height()), hint.height())

    def paintEvent(self, event: QPaintEvent) -> None:
        if not self._text:
            return
        painter = QPainter(self)
        painter.setFont(self.font())
        paint_badge(painter, self.rect(), self._text, self._tone)


def cell_tone(index: QModelIndex | QPersistentModelIndex) -> Tone | None:
    """The `Tone` a model gives `index` through `ToneRole`, if any."""
    value = index.data(ToneRole)
    try:
        return Tone(value) if isinstance(value, str) else None
    except ValueError:
        return None


class BadgeDelegate(QStyledItemDelegate):
    """Draws cells that have a `ToneRole` as a chip of their display text; others as usual.

    The chip is as wide as its text (the column fits it with `ResizeToContents`), or cut at
    its end when the column is narrower.
    """

    def sizeHint(
        self, option: QStyleOptionViewItem, index: QModelIndex | QPersistentModelIndex
    ) -> QSize:
        hint = super().sizeHint(option, index)
        if cell_tone(index) is None:
            return hint
        size = badge_size(QFontMetrics(badge_font(option.font)), str(index.data() or ""))
        return QSize(
            size.width() + 2 * CELL_MARGIN, max(hint.height(), size.height() + 2 * CELL_MARGIN)
        )

    def paint(
        self,
        painter: QPainter,
        option: QStyleOptionViewItem,
        index: QModelIndex | QPersistentModelIndex,
    ) -> None:
        tone = cell_tone(index)
        text = str(index.data() or "")
        if tone is None or not text:
            super().paint(painter, option, index)
            return
        opt = QStyleOptionViewItem(option)
        self.initStyleOption(opt, index)
        opt.text = ""  # the cell's panel (selection, alternate row); the chip is drawn on it
        style = opt.widget.style() if opt.widget is not None else QApplication.style()
        style.drawControl(QStyle.ControlElement.CE_ItemViewItem, opt, painter, opt.widget)
        painter.save()
        painter.setFont(badge_font(opt.font))
        size = badge_size(painter.fontMetrics(), text)
        area = opt.rect.adjusted(CELL_MARGIN, 0, -CELL_MARGIN, 0)
        width = min(size.width(), area.width())
        top = area.top() + (area.height() - size.height()) // 2
        paint_badge(painter, QRect(area.left(), top, width, size.height()), text, tone)
        painter.restore()

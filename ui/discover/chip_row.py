"""One line of chips whose height never changes: what does not fit becomes "+N more".

A model's tags can be two chips or forty; wrapped chips made the tabs below them jump up
and down as the user moved through the results. Here the row is exactly one badge high, the
chips that fit are shown whole, the rest are counted in a last badge, and the tooltip lists
them all.
"""

from __future__ import annotations

from PySide6.QtCore import QSize
from PySide6.QtGui import QFontMetrics, QResizeEvent
from PySide6.QtWidgets import QSizePolicy, QWidget

from ui.badges import GAP, Badge, Tone, badge_font, badge_size
from ui.widgets import LONG_CHARS, clip, tooltip_html


class ChipRow(QWidget):
    """Chips of outside text (tags, card metadata) on one line of a fixed height."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._texts: list[str] = []
        self._badges: list[Badge] = []
        self.more = Badge("", Tone.NEUTRAL, self)
        self.more.hide()
        height = badge_size(QFontMetrics(badge_font(self.font())), "Xg").height()
        self.setFixedHeight(height)
        # Any width: the row takes what the layout gives and counts what it had to leave out.
        self.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Fixed)
        self.setAccessibleName("Tags")

    def texts(self) -> list[str]:
        """Every chip's text, shown or counted in "+N more"."""
        return list(self._texts)

    def shown_texts(self) -> list[str]:
        """The chips on screen now."""
        return [badge.text() for badge in self._badges if not badge.isHidden()]

    def set_chips(self, texts: list[str]) -> None:
        self._texts = list(texts)
        for badge in self._badges:
            badge.deleteLater()
        self._badges = [Badge(text, Tone.NEUTRAL, self) for text in texts]
        self.setToolTip(tooltip_html(clip("\n".join(texts), LONG_CHARS)))
        self._arrange()

    def sizeHint(self) -> QSize:
        return QSize(0, self.height())

    def resizeEvent(self, event: QResizeEvent) -> None:
        super().resizeEvent(event)
        self._arrange()

    def _arrange(self) -> None:
        width = self.width()
        x = 0
        for number, badge in enumerate(self._badges):
            hint = badge.sizeHint()
            left = len(self._badges) - number - 1
            # Room for this chip, and for the "+N more" chip after it when others follow.
            more = badge_size(self.more.fontMetrics(), f"+{left} more").width() + GAP
            needed = hint.width() + (more if left else 0)
            if x + needed > width:
                self.more.setText(f"+{len(self._badges) - number} more")
                self.more.setGeometry(x, 0, self.more.sizeHint().width(), self.height())
                self.more.show()
                for hidden in self._badges[number:]:
                    hidden.hide()
                return
            badge.setGeometry(x, 0, hint.width(), self.height())
            badge.show()
            x += hint.width() + GAP
        self.more.hide()

"""How one search result is drawn: the name first, then its facts as badges.

The name gets the whole width of the list: the author is a muted prefix, the model's name
follows in bold and is cut at its END when it must be (the end of a middle-elided id is
readable, its middle is where the quantization or size usually sits). Task, license,
downloads and likes are badges on a second line; a badge that does not fit is left out
whole, never cut. The full id is in the row's tooltip (the model's `ToolTipRole`).
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlsplit

from PySide6.QtCore import QModelIndex, QPersistentModelIndex, QRect, QSize, Qt
from PySide6.QtGui import QColor, QFont, QFontMetrics, QPainter, QPalette
from PySide6.QtWidgets import QApplication, QStyle, QStyledItemDelegate, QStyleOptionViewItem

from app.hub.models import Gating, ModelSummary
from app.units import format_count
from ui import theme
from ui.badges import GAP, Tone, badge_font, badge_size, paint_badge
from ui.table_model import ItemRole
from ui.widgets import clip

HubRole = Qt.ItemDataRole.UserRole + 40  # the name of the hub a result comes from

H_MARGIN = 8
V_MARGIN = 5
LINE_GAP = 3
# At most this share of the name line goes to the author: the model's own name matters more.
AUTHOR_SHARE = 0.4

# License categories (`app.licenses.LicenseCategory` values) as badge tones.
CATEGORY_TONES: dict[str, Tone] = {
    "permissive": Tone.GOOD,
    "copyleft": Tone.ACCENT,
    "non-commercial": Tone.BAD,
    "use-restricted": Tone.CAUTION,
    "custom": Tone.CAUTION,
    "unknown": Tone.NEUTRAL,
}


def counted(count: int, noun: str, plural: str | None = None) -> str:
    """ "1 like", "2 likes", "1,234 downloads": a number with its noun, in the right number."""
    word = noun if count == 1 else (plural or noun + "s")
    return f"{count:,} {word}"


def compact_counted(count: int, noun: str) -> str:
    """ "1 like", "56 likes", "1.2K downloads": short enough for a badge."""
    word = noun if count == 1 else noun + "s"
    return f"{format_count(count) if count >= 10_000 else f'{count:,}'} {word}"


@dataclass(frozen=True, slots=True)
class ResultBadge:
    text: str
    tone: Tone


def result_badges(summary: ModelSummary, hub: str = "") -> list[ResultBadge]:
    """The badges of one result, most telling first (the ones drawn when space is short);
    `hub` (the hub's name) comes first: every result says which hub it is from."""
    from app.licenses import license_info  # on first paint: the license table stays out of startup

    badges = [ResultBadge(clip(short_hub_name(hub), 30), Tone.NEUTRAL)] if hub else []
    if summary.task:
        badges.append(ResultBadge(clip(summary.task, 40), Tone.ACCENT))
    info = license_info(summary.license_id)
    badges.append(
        ResultBadge(
            clip(summary.license_id or "no license", 30),
            CATEGORY_TONES.get(info.category.value, Tone.NEUTRAL),
        )
    )
    if summary.gating is not Gating.OPEN:
        badges.append(ResultBadge("gated", Tone.CAUTION))
    badges.append(ResultBadge(compact_counted(summary.downloads, "download"), Tone.NEUTRAL))
    badges.append(ResultBadge(compact_counted(summary.likes, "like"), Tone.NEUTRAL))
    return badges


def short_hub_name(name: str) -> str:
    """A hub's name for a badge: "ModelScope" as it is, an endpoint URL as its host."""
    return urlsplit(name).netloc or name if "://" in name else name


def split_repo_id(repo_id: str) -> tuple[str, str]:
    """("author/", "name") of "author/name"; ("", id) for an id without an author."""
    author, slash, name = repo_id.partition("/")
    return (author + slash, name) if slash else ("", repo_id)


def row_height(font: QFont) -> int:
    """The height of a results row drawn in `font`: a bold name line and a badge line."""
    name = QFont(font)
    name.setBold(True)
    badges = badge_size(QFontMetrics(badge_font(font)), "Xg").height()
    return QFontMetrics(name).height() + LINE_GAP + badges + 2 * V_MARGIN


class ResultRowDelegate(QStyledItemDelegate):
    """Paints a results row (column 0 of `SearchResultsModel`) as a name line and a badge line."""

    def _fonts(self, option: QStyleOptionViewItem) -> tuple[QFont, QFont]:
        name = QFont(option.font)
        name.setBold(True)
        return name, badge_font(option.font)

    def sizeHint(
        self, option: QStyleOptionViewItem, index: QModelIndex | QPersistentModelIndex
    ) -> QSize:
        return QSize(200, row_height(option.font))

    def paint(
        self,
        painter: QPainter,
        option: QStyleOptionViewItem,
        index: QModelIndex | QPersistentModelIndex,
    ) -> None:
        summary = index.data(ItemRole)
        if not isinstance(summary, ModelSummary):
            super().paint(painter, option, index)
            return
        opt = QStyleOptionViewItem(option)
        self.initStyleOption(opt, index)
        opt.text = ""  # the panel (selection, hover, alternate row) only; the text is ours
        style = opt.widget.style() if opt.widget is not None else QApplication.style()
        style.drawControl(QStyle.ControlElement.CE_ItemViewItem, opt, painter, opt.widget)

        selected = bool(opt.state & QStyle.StateFlag.State_Selected)
        group = (
            QPalette.ColorGroup.Active
            if opt.state & QStyle.StateFlag.State_Active
            else QPalette.ColorGroup.Inactive
        )
        text_role = QPalette.ColorRole.HighlightedText if selected else QPalette.ColorRole.Text
        ink = opt.palette.color(group, text_role)
        muted = QColor(ink) if selected else QColor(theme.colours().muted)
        if selected:
            muted.setAlphaF(0.75)

        name_font, small = self._fonts(opt)
        rect = opt.rect.adjusted(H_MARGIN, V_MARGIN, -H_MARGIN, -V_MARGIN)
        painter.save()
        name_metrics = QFontMetrics(name_font)
        line = QRect(rect.left(), rect.top(), rect.width(), name_metrics.height())
        author, name = split_repo_id(clip(summary.repo_id))
        together = QFontMetrics(opt.font).horizontalAdvance(author)
        together += name_metrics.horizontalAdvance(name)
        # The author is a muted prefix while both fit; else the name takes the whole line
        # and "by author" starts the badge line.
        second_author = bool(author) and together > line.width()
        paint_repo_name(
            painter,
            line,
            name if second_author else summary.repo_id,
            author_font=opt.font,
            name_font=name_font,
            ink=ink,
            muted=muted,
        )

        painter.setFont(small)
        metrics = QFontMetrics(small)
        x = rect.left()
        top = line.bottom() + 1 + LINE_GAP
        badge_height = badge_size(metrics, "Xg").height()
        if second_author:
            by = metrics.elidedText(
                f"by {author[:-1]}", Qt.TextElideMode.ElideRight, int(rect.width() * AUTHOR_SHARE)
            )
            painter.setPen(muted)
            area = QRect(x, top, metrics.horizontalAdvance(by) + 1, badge_height)
            painter.drawText(area, Qt.AlignmentFlag.AlignVCenter, by)
            x = area.right() + 1 + GAP
        hub = index.data(HubRole)
        for badge in result_badges(summary, hub if isinstance(hub, str) else ""):
            size = badge_size(metrics, badge.text)
            if x + size.width() > rect.right() + 1:
                break  # a badge is shown whole or not at all
            paint_badge(painter, QRect(x, top, size.width(), size.height()), badge.text, badge.tone)
            x += size.width() + GAP
        painter.restore()


def paint_repo_name(
    painter: QPainter,
    line: QRect,
    repo_id: str,
    *,
    author_font: QFont,
    name_font: QFont,
    ink: QColor,
    muted: QColor,
) -> None:
    """Draw "author/" in `author_font` and `muted`, then the name in `name_font` and `ink`, on
    one line; cut at the end (the author first gives up room, down to its share)."""
    author, name = split_repo_id(clip(repo_id))
    author_metrics, name_metrics = QFontMetrics(author_font), QFontMetrics(name_font)
    end = Qt.TextElideMode.ElideRight
    width = line.width()
    author_width = author_metrics.horizontalAdvance(author)
    if author_width + name_metrics.horizontalAdvance(name) > width:
        # Too long for the line: the author gives up room first, down to its share.
        spare = width - name_metrics.horizontalAdvance(name)
        author_width = min(author_width, max(spare, int(width * AUTHOR_SHARE)))
        if author:  # cut the author's name, keep its "/"
            slash = author_metrics.horizontalAdvance("/")
            author = author_metrics.elidedText(author[:-1], end, author_width - slash) + "/"
        author_width = author_metrics.horizontalAdvance(author)
    name = name_metrics.elidedText(name, end, width - author_width)
    align = Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter
    painter.setFont(author_font)
    painter.setPen(muted)
    painter.drawText(line, align, author)
    painter.setFont(name_font)
    painter.setPen(ink)
    painter.drawText(line.adjusted(author_width, 0, 0, 0), align, name)

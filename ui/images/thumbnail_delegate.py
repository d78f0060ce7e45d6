"""How the gallery draws one image: the thumbnail centred in its cell, and the selection as
an accent frame around it. Qt's own icon-mode selection is a translucent tint laid over the
picture, hard to see on a busy image (and it changes the picture's colours)."""

from __future__ import annotations

from PySide6.QtCore import QModelIndex, QPersistentModelIndex, QRect, QRectF, QSize, Qt
from PySide6.QtGui import QPainter, QPalette, QPen, QPixmap
from PySide6.QtWidgets import QStyle, QStyledItemDelegate, QStyleOptionViewItem

from ui.images.gallery_model import ICON_SIDE

FRAME = 3  # the selection frame's width, in device-independent pixels
PAD = FRAME + 2  # room around the thumbnail for the frame and a gap
RADIUS = 4.0


class ThumbnailDelegate(QStyledItemDelegate):
    """Paints a thumbnail, framed in the accent colour when selected (dotted when it only has
    the keyboard focus)."""

    def sizeHint(
        self, option: QStyleOptionViewItem, index: QModelIndex | QPersistentModelIndex
    ) -> QSize:
        return QSize(ICON_SIDE + 2 * PAD, ICON_SIDE + 2 * PAD)

    def paint(
        self,
        painter: QPainter,
        option: QStyleOptionViewItem,
        index: QModelIndex | QPersistentModelIndex,
    ) -> None:
        cell: QRect = option.rect
        state = option.state
        palette: QPalette = option.palette
        pixmap = index.data(Qt.ItemDataRole.DecorationRole)
        picture = cell.adjusted(PAD, PAD, -PAD, -PAD)
        painter.save()
        if isinstance(pixmap, QPixmap) and not pixmap.isNull():
            size = (
                pixmap.deviceIndependentSize()
                .toSize()
                .scaled(picture.size(), Qt.AspectRatioMode.KeepAspectRatio)
            )
            size = size.boundedTo(picture.size())
            target = QRect(0, 0, size.width(), size.height())
            target.moveCenter(picture.center())
            painter.drawPixmap(target, pixmap)
            picture = target
        painter.setRenderHint(QPainter.RenderHint.Antialiasing, True)
        out = FRAME / 2 + 1  # the frame's middle line: a pixel clear of the picture
        frame = QRectF(picture).adjusted(-out, -out, out, out)
        if state & QStyle.StateFlag.State_Selected:
            painter.setPen(QPen(palette.color(QPalette.ColorRole.Highlight), FRAME))
            painter.setBrush(Qt.BrushStyle.NoBrush)
            painter.drawRoundedRect(frame, RADIUS, RADIUS)
        elif state & QStyle.StateFlag.State_HasFocus:
            pen = QPen(palette.color(QPalette.ColorRole.Highlight), 1, Qt.PenStyle.DotLine)
            painter.setPen(pen)
            painter.setBrush(Qt.BrushStyle.NoBrush)
            painter.drawRoundedRect(frame, RADIUS, RADIUS)
        painter.restore()

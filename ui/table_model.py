"""A read-only table model over a list of items, described by its columns."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

from PySide6.QtCore import QAbstractTableModel, QModelIndex, QObject, QPersistentModelIndex, Qt

T = TypeVar("T")
Index = QModelIndex | QPersistentModelIndex
ItemRole = Qt.ItemDataRole.UserRole + 1  # the row's item itself
_RIGHT = int(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)


@dataclass(frozen=True)
class Column(Generic[T]):
    """A column: its title, the text of a cell, and whether the text is a number."""

    title: str
    text: Callable[[T], str]
    align_right: bool = False


class ColumnTableModel(QAbstractTableModel, Generic[T]):
    """Rows of `T`, one column per `Column`. Subclasses add roles in `extra_data`."""

    def __init__(self, columns: Sequence[Column[T]], parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.columns = tuple(columns)
        self._items: list[T] = []

    def item(self, row: int) -> T | None:
        """The item at `row`, if any."""
        return self._items[row] if 0 <= row < len(self._items) else None

    def set_items(self, items: Sequence[T]) -> None:
        """Replace every row."""
        self.beginResetModel()
        self._items = list(items)
        self.endResetModel()

    def append_items(self, items: Sequence[T]) -> None:
        """Add rows at the end."""
        if items:
            first = len(self._items)
            self.beginInsertRows(QModelIndex(), first, first + len(items) - 1)
            self._items.extend(items)
            self.endInsertRows()

    def extra_data(self, item: T, column: int, role: int) -> object:
        """Roles other than display, alignment and `ItemRole`; None by default."""
        return None

    def rowCount(self, parent: Index = QModelIndex()) -> int:  # noqa: B008 (Qt's signature)
        return 0 if parent.isValid() else len(self._items)

    def columnCount(self, parent: Index = QModelIndex()) -> int:  # noqa: B008
        return 0 if parent.isValid() else len(self.columns)

    def data(self, index: Index, role: int = Qt.ItemDataRole.DisplayRole) -> object:
        item = self.item(index.row()) if index.isValid() else None
        if item is None:
            return None
        column = self.columns[index.column()]
        if role == Qt.ItemDataRole.DisplayRole:
            return column.text(item)
        if role == ItemRole:
            return item
        if role == Qt.ItemDataRole.TextAlignmentRole and column.align_right:
            return _RIGHT
        return self.extra_data(item, index.column(), role)

    def headerData(
        self, section: int, orientation: Qt.Orientation, role: int = Qt.ItemDataRole.DisplayRole
    ) -> object:
        if (
            role == Qt.ItemDataRole.DisplayRole
            and orientation == Qt.Orientation.Horizontal
            and 0 <= section < len(self.columns)
        ):
            return self.columns[section].title
        return None

"""The gallery pane: thumbnails in a grid, newest first, with a menu on each image.

The selected image is framed in the accent colour (`ThumbnailDelegate`). Arrows move within
the grid; Tab leaves it (an item view's default moves item by item and changes the
selection); Enter opens the current image and Delete deletes it (after asking)."""

from __future__ import annotations

from collections.abc import Callable

from PySide6.QtCore import QEvent, QModelIndex, QObject, QPoint, QSize, Qt, Signal
from PySide6.QtGui import QKeyEvent
from PySide6.QtWidgets import (
    QAbstractItemView,
    QHBoxLayout,
    QListView,
    QMenu,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from app.images.gallery import GalleryImage
from ui.images.gallery_model import ICON_SIDE, GalleryModel, ImageRole
from ui.images.thumbnail_delegate import PAD, ThumbnailDelegate
from ui.style import set_font
from ui.widgets import PlainLabel

GRID_MARGIN = 4  # between cells, beyond the room the delegate keeps for the frame


class GalleryPane(QWidget):
    """Double-click opens an image; its menu reuses, starts from, or deletes it."""

    openRequested = Signal(object)  # a GalleryImage
    reuseRequested = Signal(object)
    initRequested = Signal(object)
    upscaleRequested = Signal(object)
    deleteRequested = Signal(object)
    openFolderRequested = Signal()

    def __init__(self, model: GalleryModel, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.model = model
        title = PlainLabel("Gallery")
        set_font(title, points_delta=1.5, bold=True)
        self.count = PlainLabel()
        self.folder_button = QPushButton("Open folder")
        self.folder_button.setToolTip("Show the images folder in the file manager")
        self.folder_button.setAccessibleName("Open the images folder")
        header = QHBoxLayout()
        header.setContentsMargins(0, 0, 0, 0)
        header.addWidget(title)
        header.addWidget(self.count, 1)
        header.addWidget(self.folder_button)

        self.view = QListView()
        self.view.setViewMode(QListView.ViewMode.IconMode)
        self.view.setMovement(QListView.Movement.Static)
        self.view.setResizeMode(QListView.ResizeMode.Adjust)
        self.view.setWrapping(True)
        self.view.setUniformItemSizes(True)  # the layout never asks every row for its size
        self.view.setIconSize(QSize(ICON_SIDE, ICON_SIDE))
        self.delegate = ThumbnailDelegate(self.view)
        self.view.setItemDelegate(self.delegate)
        side = ICON_SIDE + 2 * PAD + GRID_MARGIN
        self.view.setGridSize(QSize(side, side))
        self.view.setTabKeyNavigation(False)
        self.view.setAccessibleName("Gallery")
        self.view.setAccessibleDescription(
            "Generated images, newest first. Enter opens one; Delete deletes it."
        )
        self.view.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.view.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.view.setVerticalScrollMode(QAbstractItemView.ScrollMode.ScrollPerPixel)
        self.view.setModel(model)
        self.view.setContextMenuPolicy(Qt.ContextMenuPolicy.CustomContextMenu)
        self.empty = PlainLabel("No images yet: write a prompt and press Generate.")
        self.empty.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.empty.setWordWrap(True)

        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addLayout(header)
        layout.addWidget(self.view, 1)
        layout.addWidget(self.empty)

        self.view.installEventFilter(self)
        self.menu = QMenu(self.view)
        self.open_action = self.menu.addAction("Open")
        self.reuse_action = self.menu.addAction("Reuse these settings")
        self.init_action = self.menu.addAction("Use as init image")
        self.upscale_action = self.menu.addAction("Upscale…")
        self.menu.addSeparator()
        self.delete_action = self.menu.addAction("Delete…")
        self._acting_on: GalleryImage | None = None
        for action, signal in (
            (self.open_action, self.openRequested),
            (self.reuse_action, self.reuseRequested),
            (self.init_action, self.initRequested),
            (self.upscale_action, self.upscaleRequested),
            (self.delete_action, self.deleteRequested),
        ):
            action.triggered.connect(self._emitter(signal.emit))

        self.folder_button.clicked.connect(self.openFolderRequested)
        self.view.doubleClicked.connect(self._double_clicked)
        self.view.customContextMenuRequested.connect(self._context_menu)
        model.rowsInserted.connect(self._update_empty)
        model.rowsRemoved.connect(self._update_empty)
        model.modelReset.connect(self._update_empty)
        model.fetched.connect(lambda _rows: self._update_empty())

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        if watched is self.view and event.type() == QEvent.Type.KeyPress:
            assert isinstance(event, QKeyEvent)
            return self._key(event)
        return super().eventFilter(watched, event)

    def _key(self, event: QKeyEvent) -> bool:
        """Enter opens the current image, Delete deletes it (the page asks first)."""
        row = self.view.currentIndex().row()
        image = self.model.image(row) if self.view.currentIndex().isValid() else None
        if image is None or event.modifiers() not in (
            Qt.KeyboardModifier.NoModifier,
            Qt.KeyboardModifier.KeypadModifier,
        ):
            return False
        if event.key() in (Qt.Key.Key_Return, Qt.Key.Key_Enter):
            self.openRequested.emit(image)
            return True
        if event.key() == Qt.Key.Key_Delete:
            self.deleteRequested.emit(image)
            return True
        return False

    def selected(self) -> GalleryImage | None:
        image = self.view.currentIndex().data(ImageRole)
        return image if isinstance(image, GalleryImage) else None

    def set_count(self, count: int) -> None:
        self.count.setText(f"  {count:,} image{'s' if count != 1 else ''}")

    def menu_for(self, row: int) -> QMenu:
        """Select `row` and get its menu ready (what a right click shows)."""
        index = self.model.index(row)
        self.view.setCurrentIndex(index)
        image = index.data(ImageRole)
        self._acting_on = image if isinstance(image, GalleryImage) else None
        self.reuse_action.setEnabled(
            self._acting_on is not None and self._acting_on.params is not None
        )
        return self.menu

    def _emitter(self, emit: Callable[[object], None]) -> Callable[[], None]:
        def act() -> None:
            if self._acting_on is not None:
                emit(self._acting_on)

        return act

    def _context_menu(self, position: QPoint) -> None:
        index = self.view.indexAt(position)
        if index.isValid():
            self.menu_for(index.row()).popup(self.view.viewport().mapToGlobal(position))

    def _double_clicked(self, index: QModelIndex) -> None:
        image = index.data(ImageRole)
        if isinstance(image, GalleryImage):
            self.openRequested.emit(image)

    def _update_empty(self) -> None:
        self.empty.setVisible(self.model.rowCount() == 0 and self.model.complete)

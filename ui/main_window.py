"""The main window: a sidebar of pages (Discover, Settings) beside the current page."""

from __future__ import annotations

from typing import TYPE_CHECKING

from PySide6.QtCore import QSize, Qt
from PySide6.QtGui import QKeySequence, QShortcut
from PySide6.QtWidgets import (
    QHBoxLayout,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QMainWindow,
    QStackedWidget,
    QWidget,
)

from app.core import Core
from ui.discover.page import DiscoverPage
from ui.style import set_font

if TYPE_CHECKING:
    from ui.settings_page import SettingsPage

_SETTINGS_ROW = 1


class MainWindow(QMainWindow):
    """Owns the pages and the window-wide shortcuts."""

    def __init__(self, core: Core) -> None:
        super().__init__()
        self._core = core
        self.setWindowTitle("ModelDeck")
        self.resize(1280, 800)

        self.discover = DiscoverPage(core)
        self._settings: SettingsPage | None = None
        self.pages = QStackedWidget()
        self.sidebar = QListWidget()
        self.sidebar.setFrameShape(QListWidget.Shape.NoFrame)
        set_font(self.sidebar, points_delta=1.5)
        self.sidebar.setFixedWidth(150)
        self.sidebar.setIconSize(QSize(20, 20))
        # Settings is built when first shown: the first paint waits only for Discover.
        for title, page in (("Discover", self.discover), ("Settings", QWidget())):
            self.pages.addWidget(page)
            item = QListWidgetItem(title, self.sidebar)
            item.setSizeHint(QSize(0, 36))
        self.sidebar.currentRowChanged.connect(self._show_row)
        self.sidebar.setCurrentRow(0)

        central = QWidget()
        layout = QHBoxLayout(central)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(0)
        layout.addWidget(self.sidebar)
        layout.addWidget(self.pages, 1)
        self.setCentralWidget(central)
        self.endpoint_label = QLabel()
        self.statusBar().addPermanentWidget(self.endpoint_label)
        self._show_endpoint()

        for keys in (QKeySequence("Ctrl+K"), QKeySequence(QKeySequence.StandardKey.Find)):
            shortcut = QShortcut(keys, self)
            shortcut.setContext(Qt.ShortcutContext.WindowShortcut)
            shortcut.activated.connect(self.focus_search)

    @property
    def settings(self) -> SettingsPage:
        """The Settings page (built on first use)."""
        if self._settings is None:
            from ui import settings_page

            page = settings_page.SettingsPage(self._core)
            page.hubChanged.connect(self._hub_changed)
            stand_in = self.pages.widget(_SETTINGS_ROW)
            self.pages.insertWidget(_SETTINGS_ROW, page)
            if stand_in is not None:
                self.pages.removeWidget(stand_in)
                stand_in.deleteLater()
            self._settings = page
        return self._settings

    def _show_row(self, row: int) -> None:
        if row == _SETTINGS_ROW:
            self.settings  # noqa: B018 (builds the page on first use)
        self.pages.setCurrentIndex(row)

    def show_page(self, page: QWidget) -> None:
        self.sidebar.setCurrentRow(self.pages.indexOf(page))

    def focus_search(self) -> None:
        """Ctrl+K / Ctrl+F: go to Discover and put the cursor in the search field."""
        self.show_page(self.discover)
        self.discover.focus_search()

    def _hub_changed(self) -> None:
        self._show_endpoint()
        self.discover.details.show_placeholder()
        self.discover.search_now()

    def _show_endpoint(self) -> None:
        self.endpoint_label.setText(f"Hub: {self._core.endpoint}")

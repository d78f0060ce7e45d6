"""The main window: a sidebar of pages beside the current page; files dropped here import."""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

from PySide6.QtCore import QEvent, QSize, Qt
from PySide6.QtGui import (
    QCloseEvent,
    QColor,
    QDragEnterEvent,
    QDropEvent,
    QKeySequence,
    QPalette,
    QShortcut,
)
from PySide6.QtWidgets import (
    QHBoxLayout,
    QListWidget,
    QListWidgetItem,
    QMainWindow,
    QStackedWidget,
    QWidget,
)

from app.core import Core
from app.errors import AppError
from ui import theme
from ui.discover.page import DiscoverPage
from ui.icons import themed_icon
from ui.library_model import LibraryModel
from ui.style import set_font
from ui.tasks import run_blocking, spawn
from ui.widgets import plain_label

if TYPE_CHECKING:
    from app.downloads import DownloadManager, DownloadPlan
    from ui.chat.page import ChatPage
    from ui.documents_page import DocumentsPage
    from ui.downloads_page import DownloadsPage
    from ui.images.page import ImagesPage
    from ui.library_page import LibraryPage
    from ui.settings_page import SettingsPage

PageT = TypeVar("PageT", bound=QWidget)
DISCOVER, LIBRARY, CHAT, DOCUMENTS, IMAGES, DOWNLOADS, SETTINGS = range(7)
TITLES = ("Discover", "Library", "Chat", "Documents", "Images", "Downloads", "Settings")
# resources/icons
ICONS = ("discover", "library", "chat", "folder", "images", "downloads", "settings")
SIDEBAR_WIDTH = 168


def dropped_paths(event: QDragEnterEvent | QDropEvent) -> list[Path]:
    """The local files and folders a drag carries (empty if it carries anything else)."""
    mime = event.mimeData()
    if not mime.hasUrls():
        return []
    urls = mime.urls()
    if not all(url.isLocalFile() for url in urls):
        return []
    return [Path(url.toLocalFile()) for url in urls]


class PageStack(QStackedWidget):
    """A stack as small as the page on show: QStackedWidget takes the largest minimum of all
    its pages, so one wide page would keep every other page from fitting a small window."""

    def __init__(self) -> None:
        super().__init__()
        self.currentChanged.connect(self.updateGeometry)

    def sizeHint(self) -> QSize:
        page = self.currentWidget()
        return page.sizeHint() if page is not None else super().sizeHint()

    def minimumSizeHint(self) -> QSize:
        page = self.currentWidget()
        return page.minimumSizeHint() if page is not None else super().minimumSizeHint()


class MainWindow(QMainWindow):
    """Owns the pages and the window-wide shortcuts; pages other than Discover are built when
    first shown, so the first paint waits only for Discover."""

    def __init__(self, core: Core) -> None:
        super().__init__()
        self._core = core
        self.setWindowTitle("ModelDeck")
        self.resize(1280, 800)
        self.setAcceptDrops(True)

        # The library's models, one list that the Library, Chat and Images pages all show.
        self.library_models = LibraryModel(core.models, self)
        self.discover = DiscoverPage(core)
        self._built: dict[int, QWidget] = {DISCOVER: self.discover}
        self.pages = PageStack()
        self.sidebar = QListWidget()
        self.sidebar.setFrameShape(QListWidget.Shape.NoFrame)
        set_font(self.sidebar, points_delta=theme.LARGE_POINTS)
        self.sidebar.setFixedWidth(SIDEBAR_WIDTH)
        self.sidebar.setIconSize(QSize(20, 20))
        self.sidebar.setSpacing(2)
        self.sidebar.setViewportMargins(theme.SPACING // 2, theme.SPACING, theme.SPACING // 2, 0)
        self._paint_sidebar()
        for row, title in enumerate(TITLES):
            self.pages.addWidget(self.discover if row == DISCOVER else QWidget())
            item = QListWidgetItem(themed_icon(ICONS[row]), title, self.sidebar)
            item.setSizeHint(QSize(0, 38))
        self.sidebar.currentRowChanged.connect(self._show_row)
        self.sidebar.setCurrentRow(DISCOVER)

        central = QWidget()
        layout = QHBoxLayout(central)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(0)
        layout.addWidget(self.sidebar)
        layout.addWidget(self.pages, 1)
        self.setCentralWidget(central)
        self.endpoint_label = plain_label()  # the endpoint a person typed in Settings
        self.statusBar().addPermanentWidget(self.endpoint_label)
        self._show_endpoint()

        self.discover.details.downloadRequested.connect(self.download)
        self.discover.details.chatRequested.connect(self.chat_with)
        # A token saved in Discover's Files tab restarted the queue (as Settings' does).
        self.discover.details.tokenSaved.connect(lambda: spawn(self._resume_downloads()))
        # A lambda, not the bound method: saving settings replaces `core.settings`.
        self.discover.details.cache_dir = lambda: self._core.settings.resolved_cache_dir()  # noqa: PLW0108
        self._build_menus()
        for keys in (QKeySequence("Ctrl+K"), QKeySequence(QKeySequence.StandardKey.Find)):
            shortcut = QShortcut(keys, self)
            shortcut.setContext(Qt.ShortcutContext.WindowShortcut)
            shortcut.activated.connect(self.focus_search)

    def _build_menus(self) -> None:
        file_menu = self.menuBar().addMenu("&File")
        import_action = file_menu.addAction("&Import models…")
        import_action.setShortcut(QKeySequence("Ctrl+I"))
        import_action.triggered.connect(self._import_models)
        folder_action = file_menu.addAction("Add a &folder to the library…")
        folder_action.triggered.connect(self._add_folder)
        self.check_updates_action = file_menu.addAction("Check for &updates")
        self.check_updates_action.triggered.connect(lambda: spawn(self.check_for_updates()))
        file_menu.addSeparator()
        quit_action = file_menu.addAction("&Quit")
        quit_action.setShortcut(QKeySequence(QKeySequence.StandardKey.Quit))
        quit_action.triggered.connect(self.close)

    def _import_models(self) -> None:
        self.show_page(self.library)
        self.library.choose_files()

    def _add_folder(self) -> None:
        self.show_page(self.library)
        self.library.choose_folder()

    # -- pages --------------------------------------------------------------------------

    @property
    def library(self) -> LibraryPage:
        """The Library page (built on first use; it scans when built)."""
        from ui import library_page

        return self._page(LIBRARY, lambda core: library_page.LibraryPage(core, self.library_models))

    @property
    def chat(self) -> ChatPage:
        """The Chat page (built on first use)."""
        from ui.chat import page as chat_page

        return self._page(CHAT, lambda core: chat_page.ChatPage(core, self.library_models))

    def chat_with(self, path: Path) -> None:
        """Go to Chat with the GGUF at `path` picked (Load there loads it)."""
        self.show_page(self.chat)
        self.chat.pick_model(path)

    @property
    def documents(self) -> DocumentsPage:
        """The Documents page (built on first use)."""
        from ui import documents_page

        return self._page(DOCUMENTS, documents_page.DocumentsPage)

    def chat_from_documents(self, name: str) -> None:
        """Go to Chat, answering from the document collection `name`."""
        self.show_page(self.chat)
        self.chat.attach_documents(name)

    @property
    def images(self) -> ImagesPage:
        """The Images page (built on first use)."""
        from ui.images import page as images_page

        return self._page(IMAGES, lambda core: images_page.ImagesPage(core, self.library_models))

    def images_with(self, path: Path) -> None:
        """Go to Images with the diffusion model at `path` picked (Generate loads it)."""
        self.show_page(self.images)
        self.images.pick_model(path)

    @property
    def downloads(self) -> DownloadsPage:
        """The Downloads page (built on first use)."""
        from ui import downloads_page

        return self._page(DOWNLOADS, downloads_page.DownloadsPage)

    @property
    def settings(self) -> SettingsPage:
        """The Settings page (built on first use)."""
        from ui import settings_page

        return self._page(SETTINGS, settings_page.SettingsPage)

    def show_page(self, page: QWidget) -> None:
        self.sidebar.setCurrentRow(self.pages.indexOf(page))

    def focus_search(self) -> None:
        """Ctrl+K / Ctrl+F: go to Discover and put the cursor in the search field."""
        self.show_page(self.discover)
        self.discover.focus_search()

    def search_discover(self, text: str) -> None:
        """Go to Discover and search for `text` (the Documents page's embedding model)."""
        self.show_page(self.discover)
        self.discover.search_field.setText(text)
        self.discover.search_now()

    def _page(self, row: int, build: Callable[[Core], PageT]) -> PageT:
        page = self._built.get(row)
        if page is None:
            page = build(self._core)
            self._connect(row, page)
            stand_in = self.pages.widget(row)
            self.pages.insertWidget(row, page)
            if stand_in is not None:
                self.pages.removeWidget(stand_in)
                stand_in.deleteLater()
            self._built[row] = page
        return page  # type: ignore[return-value]  # built by `build`, so of its type

    def _connect(self, row: int, page: QWidget) -> None:
        if row == SETTINGS:
            page.hubChanged.connect(self._hub_changed)  # type: ignore[attr-defined]
        elif row == DOWNLOADS:
            page.completed.connect(self._download_completed)  # type: ignore[attr-defined]
        elif row == CHAT:  # the first-run welcome's "Find a model"
            page.discoverRequested.connect(self.focus_search)  # type: ignore[attr-defined]
            page.panel.loadFinished.connect(self._chat_loaded)  # type: ignore[attr-defined]
        elif row == IMAGES:
            page.generationFinished.connect(self._images_generated)  # type: ignore[attr-defined]
        elif row == DOCUMENTS:
            page.attachRequested.connect(self.chat_from_documents)  # type: ignore[attr-defined]
            page.discoverRequested.connect(self.search_discover)  # type: ignore[attr-defined]
        elif row == LIBRARY:
            page.chatRequested.connect(self.chat_with)  # type: ignore[attr-defined]
            page.imagesRequested.connect(self.images_with)  # type: ignore[attr-defined]
            page.discoverRequested.connect(self.focus_search)  # type: ignore[attr-defined]
            page.updateQueued.connect(self._update_queued)  # type: ignore[attr-defined]
            page.refresh()  # type: ignore[attr-defined]

    # The Library's "Last used": a model counts as used when Chat loaded it or Images made
    # an image with it (never when a file was merely read, by a download or a hash check).
    def _chat_loaded(self, loaded: bool) -> None:
        picked = self.chat.panel.load_form.picked() if loaded else None
        if picked is not None:
            spawn(self._mark_used(picked.path))

    def _images_generated(self, how: str) -> None:
        model = self.images.picker.model() if how == "done" else None
        if model is not None:
            spawn(self._mark_used(model.path))

    async def _mark_used(self, path: Path) -> None:
        with contextlib.suppress(AppError):  # only a date in a column would be lost
            await run_blocking(self._core.models.mark_used, path)
        self.library_models.catch_up()

    def _show_row(self, row: int) -> None:
        # The page properties build a page on first use.
        if row == LIBRARY:
            self.library  # noqa: B018
        elif row == CHAT:
            self.chat  # noqa: B018
        elif row == DOCUMENTS:
            self.documents  # noqa: B018
        elif row == IMAGES:
            self.images  # noqa: B018
        elif row == DOWNLOADS:
            self.downloads  # noqa: B018
        elif row == SETTINGS:
            self.settings  # noqa: B018
        self.pages.setCurrentIndex(row)

    def start_background_work(self) -> None:
        """After the first paint: the first search, replies and downloads a previous run
        left unfinished."""
        self.discover.search_now()
        spawn(run_blocking(self._core.recover_interrupted_replies))
        spawn(self._resume_downloads())
        spawn(self.check_for_updates(background=True))

    async def check_for_updates(self, *, background: bool = False) -> None:
        """Compare the cached models with the hub and show the answers in the Library.

        In the background (after start): only repos not checked in the last day, and silent
        (offline or failing, the last known answers stay). Asked for: every repo, and the
        outcome in the status bar.
        """
        from app.library.updates import UpdateRecords, check_for_updates

        core = self._core
        try:
            report = await run_blocking(
                lambda: check_for_updates(
                    core.hub,
                    core.database,
                    core.settings.resolved_cache_dir(),
                    force=not background,
                )
            )
            known = await run_blocking(lambda: UpdateRecords(core.database).outdated())
        except AppError as exc:
            if not background:
                self.statusBar().showMessage(f"Could not check for updates: {exc}", 8000)
            return
        self.library_models.set_updates(known)
        if background:
            return
        if report.updates and report.outdated:
            count = len(report.outdated)
            message = f"{count} model{'s have' if count != 1 else ' has'} an update — see Library"
        elif report.unchecked and not report.updates:
            message = "Could not reach the hub to check for updates"
        else:
            message = "Every model is up to date"
        self.statusBar().showMessage(message, 8000)

    async def _resume_downloads(self) -> None:
        manager = await run_blocking(self._core.start_downloads)
        if manager.jobs() or DOWNLOADS in self._built:
            self.downloads.attach(manager)

    def download(self, plan: DownloadPlan) -> None:
        """Queue a download asked for in Discover, and say so in the status bar."""
        self.downloads.enqueue(plan)
        self.statusBar().showMessage(f"Queued {plan.repo_id} · {plan.label} — see Downloads", 8000)

    def closeEvent(self, event: QCloseEvent) -> None:
        if CHAT in self._built:  # a reply still streaming stops, and is stored as stopped
            self.chat.shutdown()
        if IMAGES in self._built:  # a generation still running is cancelled
            self.images.shutdown()
        super().closeEvent(event)

    def changeEvent(self, event: QEvent) -> None:
        # The light/dark scheme changed (ui.theme set a new application palette).
        if event.type() == QEvent.Type.PaletteChange:
            self._paint_sidebar()
        super().changeEvent(event)

    def _paint_sidebar(self) -> None:
        """The sidebar a shade apart from the page, in the scheme on screen."""
        palette = QPalette()  # only the role set here is the sidebar's own
        palette.setColor(QPalette.ColorRole.Base, QColor(theme.colours().sidebar))
        self.sidebar.setPalette(palette)

    # -- drag and drop ------------------------------------------------------------------

    def dragEnterEvent(self, event: QDragEnterEvent) -> None:
        if dropped_paths(event):
            event.acceptProposedAction()
        else:
            event.ignore()

    def dropEvent(self, event: QDropEvent) -> None:
        paths = dropped_paths(event)
        if not paths:
            event.ignore()
            return
        event.acceptProposedAction()
        self.show_page(self.library)
        self.library.import_paths(paths)

    # -- reactions ----------------------------------------------------------------------

    def _hub_changed(self) -> None:
        self._show_endpoint()
        self.discover.details.show_placeholder()
        self.discover.search_now()
        if DOWNLOADS in self._built:  # the queue restarted for the new endpoint or token
            spawn(self._resume_downloads())

    def _update_queued(self, manager: DownloadManager) -> None:
        """The Library queued an update's download: the Downloads page shows it."""
        self.downloads.attach(manager)

    def _download_completed(self) -> None:
        self.library_models.refresh()  # every page that lists models shows the new one
        self.discover.details.downloads_changed()  # its Files tab may offer Chat now

    def _show_endpoint(self) -> None:
        self.endpoint_label.setText(f"Hub: {self._core.endpoint}")

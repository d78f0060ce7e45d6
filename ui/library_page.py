"""Library: every model on this machine in one list — HF cache, imports, other apps' folders."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Sequence
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING

from PySide6.QtCore import (
    QModelIndex,
    QPersistentModelIndex,
    QPoint,
    QRect,
    QSize,
    QSortFilterProxyModel,
    Qt,
    QUrl,
    Signal,
)
from PySide6.QtGui import (
    QAction,
    QDesktopServices,
    QFontMetrics,
    QKeyEvent,
    QPainter,
)
from PySide6.QtWidgets import (
    QAbstractItemView,
    QApplication,
    QFileDialog,
    QHBoxLayout,
    QHeaderView,
    QLineEdit,
    QMenu,
    QMessageBox,
    QPushButton,
    QStackedWidget,
    QStyle,
    QStyledItemDelegate,
    QStyleOptionViewItem,
    QTableView,
    QVBoxLayout,
    QWidget,
)

from app.core import Core
from app.errors import AppError
from app.units import format_bytes
from ui import theme
from ui.badges import GAP, badge_font, badge_size, paint_badge
from ui.confirm import ask, confirmation_box
from ui.icons import themed_icon
from ui.library_model import (
    MODEL_COLUMN,
    PATH_COLUMN,
    BadgesRole,
    LibraryModel,
    RowBadge,
    SortRole,
)
from ui.style import mark_error, set_font
from ui.tasks import run_blocking, spawn
from ui.widgets import LONG_CHARS, clip, heading_label, plain_label

if TYPE_CHECKING:
    from app.library import DeletePlan, ImportResult, LibraryEntry
    from app.library.provenance import Verification, VerifyResult
    from app.library.updates import ModelUpdate

Index = QModelIndex | QPersistentModelIndex
_UPDATE_POLL_S = 0.5  # how long a worker waits on an update's download before looking again

# What an empty Library (a first run) says: where models come from, and the one next step.
WELCOME_TITLE = "Welcome to ModelDeck"
NO_MODELS_YET = (
    "Your library is empty. Find a model on Discover and download it: it shows up here, "
    "ready to chat with or to make images. Already have models? Drop .gguf or .safetensors "
    "files or model folders on this window, or use Import… (Ctrl+I)."
)
DISCOVER_BUTTON = "Find a model on Discover"
NOTHING_SELECTED = (
    "Select a model to chat with it, open it in Images, show its folder or delete it."
)


class RowAction(Enum):
    """What can be done with the selected model: a button and a context-menu entry each."""

    CHAT = ("Chat with this", "chat", "Open the selected GGUF model in Chat")
    IMAGES = ("Open in Images", "images", "Open the selected diffusion model in Images")
    SHOW = ("Show in folder", "folder", "Open the folder that holds the selected model")
    VERIFY = (
        "Verify",
        "verify",
        "Re-hash the selected model's files against what the hub published",
    )
    IDENTIFY = (
        "Identify",
        "discover",
        "Look the selected .safetensors up on Civitai by its sha256 and record what it is "
        "(model, version, base model, trigger words)",
    )
    UPDATE = (
        "Update",
        "downloads",
        "Download the files that changed upstream; the old revision stays until they are in",
    )
    DELETE = ("Delete…", "delete", "Delete the selected model (shows what goes first)")

    def __init__(self, label: str, icon: str, tip: str) -> None:
        self.label = label
        self.icon = icon
        self.tip = tip


def _chat_path(entry: LibraryEntry | None) -> Path | None:
    """Where a GGUF language model can be loaded from, for "Chat with this" (else None)."""
    from app.library.sniff import ModelKind

    if entry is None or entry.kind is not ModelKind.LLM_GGUF or entry.unreadable:
        return None
    location = entry.usable_location
    return location.path if location is not None else None


def _identifiable(entry: LibraryEntry | None) -> bool:
    """A .safetensors file that did not come from the HF cache: Civitai may know it."""
    from app.library.catalog import Source

    location = entry.usable_location if entry is not None else None
    return (
        location is not None
        and location.source is not Source.HF_CACHE
        and location.path.suffix.lower() == ".safetensors"
    )


def _images_path(entry: LibraryEntry | None) -> Path | None:
    """Where a diffusion model that can run is, for "Open in Images" (else None)."""
    from app.images.choice import DIFFUSION_KINDS

    if entry is None or entry.kind not in DIFFUSION_KINDS:
        return None
    if entry.unreadable or entry.incomplete:
        return None
    location = entry.usable_location
    return location.path if location is not None else None


def describe_plan(plan: DeletePlan) -> str:
    """What a delete plan will do, for the confirmation dialog."""
    lines = [f"Delete {plan.name}? This frees {format_bytes(plan.bytes_freed)}.", ""]
    for step in plan.steps:
        lines += [f"{step.source.label}:"] + [f"  {path}" for path in step.paths]
        lines += [f"  forget the import of {path}" for path in step.forget_imports]
        if step.note:
            lines.append(f"  ({step.note})")
    return "\n".join(lines)


def describe_entry(entry: LibraryEntry, verification: Verification | None = None) -> str:
    """The lines under the table for the selected model: every place it is kept, why a
    pipeline cannot run, and where it came from (its provenance; `verification`: a newer
    check than the scan knew of)."""
    count = len(entry.locations)
    where = "in 1 place" if count == 1 else f"kept in {count} places"
    lines = [f"{entry.name} — {format_bytes(entry.size)} — {where}:"]
    lines += [
        f"  {location.source.label}: {location.path}"
        + ("" if location.present else " (not present now)")
        for location in entry.locations
    ]
    if entry.unreadable:
        lines.append(f"Unreadable: {entry.unreadable}")
    elif entry.incomplete:
        lines.append(f"Incomplete pipeline, it cannot run: {entry.incomplete}.")
    provenance = entry.provenance
    if provenance is not None:
        if verification is not None:
            provenance = dataclasses.replace(provenance, verification=verification)
        lines += provenance.lines()
    return "\n".join(lines)


class FilterField(QLineEdit):
    """A filter box that Esc empties (an empty one lets Esc go on to its window)."""

    def keyPressEvent(self, event: QKeyEvent) -> None:
        if event.key() == Qt.Key.Key_Escape and self.text():
            self.clear()
            event.accept()
            return
        super().keyPressEvent(event)


class ModelNameDelegate(QStyledItemDelegate):
    """The Model cell: the name (cut at its end, never in the middle), then its chips.

    Chips are painted (`ui.badges`), never parsed: a name or a reason from a file is text.
    """

    def paint(self, painter: QPainter, option: QStyleOptionViewItem, index: Index) -> None:
        badges = _badges(index)
        if not badges:
            super().paint(painter, option, index)
            return
        rect = QRect(option.rect)
        font = badge_font(option.font)
        metrics = QFontMetrics(font)
        sizes = [badge_size(metrics, badge.text) for badge in badges]
        chips = sum(size.width() + GAP for size in sizes)
        # The name keeps at least half the cell: chips that do not fit are left out.
        room = max(rect.width() // 2, rect.width() - chips - GAP)
        # The row's background (the selection) across the whole cell, then the name in its part.
        whole = QStyleOptionViewItem(option)
        self.initStyleOption(whole, index)
        whole.text = ""
        widget = whole.widget
        style = widget.style() if widget is not None else QApplication.style()
        style.drawControl(QStyle.ControlElement.CE_ItemViewItem, whole, painter, widget)
        name = QStyleOptionViewItem(option)
        name.rect = QRect(rect.left(), rect.top(), room, rect.height())
        super().paint(painter, name, index)
        painter.save()
        painter.setFont(font)
        x = rect.left() + room + GAP
        for badge, size in zip(badges, sizes, strict=True):
            if x + size.width() > rect.right():
                break
            top = rect.top() + (rect.height() - size.height()) // 2
            paint_badge(painter, QRect(QPoint(x, top), size), badge.text, badge.tone)
            x += size.width() + GAP
        painter.restore()

    def sizeHint(self, option: QStyleOptionViewItem, index: Index) -> QSize:
        hint = super().sizeHint(option, index)
        badges = _badges(index)
        if not badges:
            return hint
        metrics = QFontMetrics(badge_font(option.font))
        extra = sum(badge_size(metrics, badge.text).width() + GAP for badge in badges)
        return QSize(hint.width() + extra + GAP, hint.height())


class MiddleElideDelegate(QStyledItemDelegate):
    """A path keeps its start and its file name: "…" goes in the middle."""

    def initStyleOption(self, option: QStyleOptionViewItem, index: Index) -> None:
        super().initStyleOption(option, index)
        option.textElideMode = Qt.TextElideMode.ElideMiddle


def _badges(index: Index) -> tuple[RowBadge, ...]:
    badges = index.data(BadgesRole)
    return badges if isinstance(badges, tuple) else ()


class LibraryPage(QWidget):
    """Scan, filter, import (button or drag and drop), add folders, act on the selected model
    (Chat, Images, its folder, delete with a plan).

    Args:
        core: the core.
        models: the library's models as the window shares them among its pages (default: a
            model of this page's own over `core.models`, which still follows every refresh).
    """

    scanned = Signal(int)  # number of entries, after each refresh of the library's list
    imported = Signal(int, int)  # imported, rejected — after an import
    chatRequested = Signal(object)  # the Path of a GGUF model to open in Chat
    imagesRequested = Signal(object)  # the Path of a diffusion model to open in Images
    discoverRequested = Signal()  # the welcome's button: go and find a model
    deleteFinished = Signal(bool)  # after a delete was asked for: whether anything went
    verifyFinished = Signal(object)  # the VerifyResult of a "Verify", or None if it failed
    identified = Signal(str, bool)  # what "Identify" found (or why not); True for an error
    _verifyProgress = Signal(str, int)  # from the hashing worker: model name, percent
    updateQueued = Signal(object)  # the DownloadManager an update's download was queued on
    updateFinished = Signal(bool)  # after an "Update": whether the model now is the new one

    def __init__(
        self, core: Core, models: LibraryModel | None = None, parent: QWidget | None = None
    ) -> None:
        super().__init__(parent)
        self._core = core
        self.asking: QMessageBox | None = None  # the confirmation on screen, if any
        # Entry key -> its verification done on this page since the last scan.
        self._verifications: dict[str, Verification] = {}
        self._verifying: str | None = None  # the key of the model being re-hashed now
        self._identifying: str | None = None  # the key of the model looked up on Civitai now
        self._updating: set[str] = set()  # repo ids whose update is being taken now
        self.filter = FilterField()
        self.filter.setPlaceholderText("Filter models")
        self.filter.setAccessibleName("Filter models")
        self.filter.setClearButtonEnabled(True)
        self.import_button = QPushButton(themed_icon("import"), "Import…")
        self.folder_button = QPushButton(themed_icon("folder"), "Add folder…")
        self.refresh_button = QPushButton(themed_icon("refresh"), "Refresh")
        for button, name in (
            (self.import_button, "Import models"),
            (self.folder_button, "Add a folder to the library"),
            (self.refresh_button, "Scan the library again"),
        ):
            button.setAccessibleName(name)
            button.setToolTip(name)
        # The row actions, each a button under the table and an entry of the context menu.
        self.row_actions: dict[RowAction, QAction] = {}
        self.row_buttons: dict[RowAction, QPushButton] = {}
        for action in RowAction:
            qaction = QAction(themed_icon(action.icon), action.label, self)
            qaction.setToolTip(action.tip)
            qaction.setEnabled(False)
            qaction.triggered.connect(lambda _checked=False, chosen=action: self.act(chosen))
            self.row_actions[action] = qaction
            button = QPushButton(themed_icon(action.icon), action.label)
            button.setToolTip(action.tip)
            button.setAccessibleName(action.label.rstrip("…"))
            button.setAccessibleDescription(action.tip)
            button.setEnabled(False)
            button.clicked.connect(qaction.trigger)
            self.row_buttons[action] = button
        self.chat_button = self.row_buttons[RowAction.CHAT]
        self.images_button = self.row_buttons[RowAction.IMAGES]
        self.show_button = self.row_buttons[RowAction.SHOW]
        self.delete_button = self.row_buttons[RowAction.DELETE]
        self.verify_button = self.row_buttons[RowAction.VERIFY]
        self.update_button = self.row_buttons[RowAction.UPDATE]
        self.chat_action = self.row_actions[RowAction.CHAT]
        # Says what an import or a scan did, quoting file names and reasons: plain text.
        self.status = plain_label(
            "Drop .gguf or .safetensors files, or model folders, to import them.",
            word_wrap=True,
            shrinkable=True,
        )
        # The selected model: every place it is kept, and why a pipeline cannot run.
        self.selection_details = plain_label(word_wrap=True, shrinkable=True)
        self.selection_details.setAccessibleName("Selected model")

        self.model = models if models is not None else LibraryModel(core.models, self)
        self.proxy = QSortFilterProxyModel(self)
        self.proxy.setSourceModel(self.model)
        self.proxy.setFilterCaseSensitivity(Qt.CaseSensitivity.CaseInsensitive)
        self.proxy.setFilterKeyColumn(-1)
        self.proxy.setSortRole(SortRole)  # sizes as numbers, names without regard to case
        self.view = QTableView()
        self.view.setAccessibleName("Models in the library")
        self.view.setModel(self.proxy)
        self.view.setSortingEnabled(True)
        self.view.sortByColumn(MODEL_COLUMN, Qt.SortOrder.AscendingOrder)  # by name, A→Z
        self.view.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.view.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.view.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.view.setTabKeyNavigation(False)  # Tab leaves the table; arrows move within it
        self.view.setAlternatingRowColors(True)
        self.view.setWordWrap(False)
        self.view.verticalHeader().hide()
        self.view.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.Interactive)
        self.view.horizontalHeader().setStretchLastSection(True)
        self.view.setTextElideMode(Qt.TextElideMode.ElideRight)  # names keep their start
        self.view.setItemDelegateForColumn(MODEL_COLUMN, ModelNameDelegate(self.view))
        self.view.setItemDelegateForColumn(PATH_COLUMN, MiddleElideDelegate(self.view))

        tools = QHBoxLayout()
        tools.addWidget(self.filter, 1)
        for button in (self.import_button, self.folder_button, self.refresh_button):
            tools.addWidget(button)
        action_row = QHBoxLayout()
        for action, button in self.row_buttons.items():
            if action is not RowAction.IDENTIFY:  # the context menu's: the row fits 900 px
                action_row.addWidget(button)
        action_row.addStretch(1)
        self.listing = listing = QWidget()
        listing_layout = QVBoxLayout(listing)
        listing_layout.setContentsMargins(0, 0, 0, 0)
        listing_layout.setSpacing(theme.SPACING)
        listing_layout.addLayout(tools)
        listing_layout.addWidget(self.status)
        listing_layout.addWidget(self.view, 1)
        listing_layout.addWidget(self.selection_details)
        listing_layout.addLayout(action_row)

        self.welcome = self._build_welcome()
        self.stack = QStackedWidget()
        self.stack.addWidget(listing)
        self.stack.addWidget(self.welcome)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(*(theme.PAGE_MARGIN,) * 4)
        layout.setSpacing(theme.SPACING)
        layout.addWidget(heading_label("Library"))
        layout.addWidget(self.stack, 1)

        self.filter.textChanged.connect(self.proxy.setFilterFixedString)
        self.import_button.clicked.connect(self.choose_files)
        self.folder_button.clicked.connect(self.choose_folder)
        self.refresh_button.clicked.connect(self.refresh)
        self.view.setContextMenuPolicy(Qt.ContextMenuPolicy.CustomContextMenu)
        self.view.customContextMenuRequested.connect(self._context_menu)
        self.view.selectionModel().selectionChanged.connect(self._selection_changed)
        self.view.doubleClicked.connect(lambda _index: self._open_selected())
        self.model.refreshed.connect(self._listed)
        self.model.modelReset.connect(self._selection_changed)
        self.model.dataChanged.connect(lambda *_args: self._selection_changed())  # updates
        self.model.refreshFailed.connect(lambda text: self._say(text, error=True))
        self._verifyProgress.connect(self._verify_progress)
        if self.model.models.scanned:
            self._listed(self.model.rowCount())
        self._selection_changed()

    def _build_welcome(self) -> QWidget:
        """The first run's page: what the library is for and the one thing to do next."""
        welcome = QWidget()
        welcome.setAccessibleName(WELCOME_TITLE)
        title = plain_label(WELCOME_TITLE)
        set_font(title, points_delta=theme.HEADING_POINTS, bold=True)
        title.setAlignment(Qt.AlignmentFlag.AlignHCenter)
        text = plain_label(NO_MODELS_YET, word_wrap=True)
        text.setAlignment(Qt.AlignmentFlag.AlignHCenter)
        self.discover_button = QPushButton(themed_icon("discover"), DISCOVER_BUTTON)
        self.discover_button.setAccessibleName(DISCOVER_BUTTON)
        self.discover_button.setDefault(True)
        self.discover_button.clicked.connect(self.discoverRequested)
        # A column of readable width in the middle; the text wraps in it (a label placed with
        # an alignment flag would be given its one-line width and clipped).
        column = QWidget()
        column.setMaximumWidth(560)
        inner = QVBoxLayout(column)
        inner.setSpacing(theme.SPACING * 2)
        inner.addWidget(title)
        inner.addWidget(text)
        inner.addWidget(self.discover_button, 0, Qt.AlignmentFlag.AlignHCenter)
        row = QHBoxLayout()
        row.addStretch(1)
        row.addWidget(column, 3)
        row.addStretch(1)
        outer = QVBoxLayout(welcome)
        outer.addStretch(1)
        outer.addLayout(row)
        outer.addStretch(2)
        return welcome

    def selected_entry(self) -> LibraryEntry | None:
        index = self.proxy.mapToSource(self.view.currentIndex())
        return self.model.item(index.row()) if index.isValid() else None

    def chat_with_selected(self) -> None:
        """Open the selected GGUF model in Chat (nothing for other kinds)."""
        path = _chat_path(self.selected_entry())
        if path is not None:
            self.chatRequested.emit(path)

    def open_selected_in_images(self) -> None:
        """Open the selected diffusion model in Images (nothing for other kinds)."""
        path = _images_path(self.selected_entry())
        if path is not None:
            self.imagesRequested.emit(path)

    def act(self, action: RowAction) -> None:
        """Do `action` to the selected model (buttons and the context menu come here)."""
        entry = self.selected_entry()
        if entry is None:
            return
        if action is RowAction.CHAT:
            self.chat_with_selected()
        elif action is RowAction.IMAGES:
            self.open_selected_in_images()
        elif action is RowAction.SHOW:
            location = entry.usable_location
            if location is not None:
                spawn(self._show_in_folder(location.path))
        elif action is RowAction.VERIFY and self._verifying is None:
            self._verifying = entry.key  # at once: the button is off until the check ends
            self._selection_changed()
            self._say(f"Verifying {entry.name}…")
            spawn(self._verify(entry))
        elif action is RowAction.UPDATE:
            update = self.model.update_for(entry)
            if update is not None and update.repo_id not in self._updating:
                self._updating.add(update.repo_id)  # at once: no second click takes it twice
                self._selection_changed()
                self._say(f"Updating {update.repo_id}…")
                spawn(self._update(update))
        elif action is RowAction.IDENTIFY and self._identifying is None:
            self._identifying = entry.key  # at once: the button is off until it ends
            self._selection_changed()
            self._say(f"Looking {entry.name} up on Civitai…")
            spawn(self._identify(entry))
        elif action is RowAction.DELETE:
            spawn(self._delete(entry))

    def _open_selected(self) -> None:
        """A double click or Enter: the page a model runs in (Chat or Images)."""
        entry = self.selected_entry()
        if _chat_path(entry) is not None:
            self.chat_with_selected()
        elif _images_path(entry) is not None:
            self.open_selected_in_images()

    def _allowed(self, entry: LibraryEntry | None) -> dict[RowAction, bool]:
        return {
            RowAction.CHAT: _chat_path(entry) is not None,
            RowAction.IMAGES: _images_path(entry) is not None,
            RowAction.SHOW: entry is not None and entry.usable_location is not None,
            RowAction.VERIFY: entry is not None
            and entry.usable_location is not None
            and self._verifying is None,
            RowAction.UPDATE: self._updatable(entry),
            RowAction.IDENTIFY: _identifiable(entry) and self._identifying is None,
            RowAction.DELETE: entry is not None,
        }

    def _updatable(self, entry: LibraryEntry | None) -> bool:
        update = self.model.update_for(entry) if entry is not None else None
        return update is not None and update.repo_id not in self._updating

    def _selection_changed(self) -> None:
        entry = self.selected_entry()
        for action, allowed in self._allowed(entry).items():
            self.row_actions[action].setEnabled(allowed)
            self.row_buttons[action].setEnabled(allowed)
        self.selection_details.setText(
            clip(describe_entry(entry, self._verifications.get(entry.key)), LONG_CHARS)
            if entry is not None
            else NOTHING_SELECTED
        )

    def context_menu_for(self, row: int) -> QMenu:
        """The context menu of the table's `row` (selected first): the row actions."""
        self.view.selectRow(row)
        menu = QMenu(self.view)
        menu.setAccessibleName("Model actions")
        for action in RowAction:
            if action is RowAction.DELETE:
                menu.addSeparator()
            menu.addAction(self.row_actions[action])
        return menu

    def _context_menu(self, position: QPoint) -> None:
        index = self.view.indexAt(position)
        if not index.isValid():
            return
        menu = self.context_menu_for(index.row())
        menu.popup(self.view.viewport().mapToGlobal(position))

    def refresh(self) -> None:
        """Scan again (on a worker); every page showing the library follows."""
        self._say("Scanning…")
        self.model.refresh()

    def import_paths(self, paths: Sequence[Path]) -> None:
        """Import files or folders (dropped, chosen, …) and show what happened."""
        spawn(self._import(list(paths)))

    def _listed(self, count: int) -> None:
        """After each refresh of the list (asked for here or anywhere else)."""
        self.view.resizeColumnsToContents()
        header = self.view.horizontalHeader()
        # A long name (or path) must not push every other column out of a small window; a
        # wide window gives it room.
        cap = max(360, self.view.viewport().width() // 3)
        for column in range(self.proxy.columnCount()):
            header.resizeSection(column, min(header.sectionSize(column), cap))
        self._verifications.clear()  # a scan reads every verification recorded
        entries = self.model.entries()
        total = sum(entry.size for entry in entries)
        missing = sum(1 for entry in entries if not entry.present)
        gone = f"; {missing} on drives not present now" if missing else ""
        self.stack.setCurrentWidget(self.listing if entries else self.welcome)
        if entries:
            models = f"{len(entries)} model{'' if len(entries) == 1 else 's'}"
            self._say(f"{models}, {format_bytes(total)}{gone}.")
        else:
            self._say(NO_MODELS_YET)
        self._selection_changed()
        self.scanned.emit(count)

    async def _import(self, paths: list[Path]) -> None:
        items = f"{len(paths)} item{'' if len(paths) == 1 else 's'}"
        self._say(f"Importing {items}…")
        try:
            result: ImportResult = await run_blocking(self._core.models.import_paths, paths)
        except AppError as exc:
            self._say(f"The import failed: {exc}", error=True)
            return
        self.model.catch_up()
        count = len(result.imported)
        models = f"{count} model{'' if count == 1 else 's'}"
        parts = [f"Imported {models}, used in place (nothing copied)."]
        parts += [f"Not imported: {path.name} — {reason}" for path, reason in result.rejected]
        self._say("\n".join(parts), error=bool(result.rejected) and not result.imported)
        self.imported.emit(len(result.imported), len(result.rejected))

    def choose_files(self) -> None:
        files, _ = QFileDialog.getOpenFileNames(
            self, "Import models", "", "Models (*.gguf *.safetensors);;All files (*)"
        )
        if files:
            self.import_paths([Path(file) for file in files])

    def choose_folder(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Add a folder to watch")
        if folder:
            spawn(self._add_folder(Path(folder)))

    async def _add_folder(self, folder: Path) -> None:
        try:
            await run_blocking(self._core.models.add_folder, folder)
        except AppError as exc:
            self._say(str(exc), error=True)
            return
        self.model.catch_up()

    async def _show_in_folder(self, path: Path) -> None:
        # A pipeline is a folder: open it; a file: open the folder that holds it.
        is_folder = await run_blocking(path.is_dir)
        folder = path if is_folder else path.parent
        if not QDesktopServices.openUrl(QUrl.fromLocalFile(str(folder))):
            self._say(f"No file manager opened {folder}.", error=True)

    async def _identify(self, entry: LibraryEntry) -> None:
        """Hash the file (or use the known sha256), ask Civitai, record it, list it again."""
        from app.hub.civitai.identify import identify_file
        from app.hub.civitai.provider import civitai_provider

        location = entry.usable_location
        database = self._core.database
        try:
            if location is None:
                return

            def identify() -> list[str]:
                hub = civitai_provider(database)
                try:
                    return identify_file(location.path, hub.client, sha256=entry.sha256).lines()
                finally:
                    hub.close()

            lines = await run_blocking(identify)
        except (AppError, OSError) as exc:
            self._say(f"Could not identify {entry.name}: {exc}", error=True)
            self.identified.emit(str(exc), True)
            return
        finally:
            self._identifying = None
            self._selection_changed()
        self._say("Identified. " + "; ".join(lines))
        self.identified.emit("; ".join(lines), False)
        self.model.refresh()  # its provenance (under the table) now shows Civitai

    async def _verify(self, entry: LibraryEntry) -> None:
        """Re-hash the model on a worker (progress in the status line), then say the outcome:
        a file that no longer matches what the hub published is named, as an error."""
        from app.library.provenance import Verification

        last = -1

        def progress(done: int, total: int) -> None:  # on the worker thread
            nonlocal last
            percent = done * 100 // total if total else 100
            if percent != last:
                last = percent
                self._verifyProgress.emit(entry.name, percent)

        try:
            result: VerifyResult = await run_blocking(
                self._core.library.verify, entry.key, progress=progress
            )
        except AppError as exc:
            self._say(f"Could not verify {entry.name}: {exc}", error=True)
            self.verifyFinished.emit(None)
            return
        finally:
            self._verifying = None
            self._selection_changed()
        self._verifications[entry.key] = Verification(
            at=result.at, intact=result.intact, summary=result.summary()
        )
        self._say(result.summary(), error=not result.intact)
        self._selection_changed()
        self.verifyFinished.emit(result)

    async def _update(self, update: ModelUpdate) -> None:
        """Take `update`: its changed files through the download queue (shown on Downloads),
        then the branch moves to the new snapshot; until then the old revision is the model."""
        try:
            updated = await self._take_update(update)
        finally:
            self._updating.discard(update.repo_id)
            self._selection_changed()
        self.updateFinished.emit(updated)

    async def _take_update(self, update: ModelUpdate) -> bool:
        from app.downloads.status import JobState
        from app.model_updates import finish_update, prepare_update

        core = self._core
        cache_dir = core.settings.resolved_cache_dir()
        name = update.repo_id
        try:
            prepared = await run_blocking(
                prepare_update, core.hub, core.database, cache_dir, name, ref=update.ref
            )
        except AppError as exc:
            self._say(f"Could not update {name}: {exc}", error=True)
            return False
        if prepared.plan is None:
            await self._show_updates()
            self._say(f"{name} is up to date.")
            return False
        try:
            manager = await run_blocking(core.start_downloads)
            job_id = await run_blocking(manager.enqueue, prepared.plan)
        except AppError as exc:
            self._say(f"Could not update {name}: {exc}", error=True)
            return False
        self.updateQueued.emit(manager)
        self._say(f"Updating {name}: {update.summary} — see Downloads")
        state = JobState.QUEUED
        error = ""
        while True:  # a pause on the Downloads page only holds the update
            try:
                status = await run_blocking(manager.wait, job_id, _UPDATE_POLL_S)
            except KeyError:  # removed from the queue
                break
            state, error = status.state, status.error or ""
            if state.is_final:
                break
            if state is JobState.PAUSED:  # `wait` returns at once for a paused job
                await asyncio.sleep(_UPDATE_POLL_S)
        if state is not JobState.COMPLETED:
            why = f": {error}" if error else f" ({state})"
            self._say(
                f"The update of {name} did not finish{why}. The old revision is untouched.",
                error=True,
            )
            return False
        try:
            await run_blocking(finish_update, core.hub, core.database, cache_dir, prepared)
        except (AppError, OSError) as exc:
            self._say(f"Could not update {name}: {exc}", error=True)
            return False
        await self._show_updates()
        self.model.refresh()
        self._say(
            f"Updated {name} to {update.remote_commit[:12]}: fetched {len(update.changed)} "
            f"file{'s' if len(update.changed) != 1 else ''} "
            f"({format_bytes(update.download_size)}). The old revision is still on disk; "
            "delete it when you no longer need it."
        )
        return True

    async def _show_updates(self) -> None:
        from app.library.updates import UpdateRecords

        database = self._core.database
        known = await run_blocking(lambda: UpdateRecords(database).outdated())
        self.model.set_updates(known)

    def _verify_progress(self, name: str, percent: int) -> None:
        if self._verifying is not None:
            self._say(f"Verifying {name}… {percent}%")

    async def _delete(self, entry: LibraryEntry) -> None:
        try:
            plan = await run_blocking(self._core.library.plan_delete, entry.key)
        except AppError as exc:
            self._say(str(exc), error=True)
            self.deleteFinished.emit(False)
            return
        if not await self.confirm_plan(plan):
            self._say(f"Nothing was deleted; {plan.name} stays.")
            self.deleteFinished.emit(False)
            return
        try:
            freed = await run_blocking(
                self._core.models.delete,
                plan,
                confirm_other_apps=plan.needs_second_confirmation,
            )
        except AppError as exc:
            self.model.catch_up()
            self._say(f"Nothing more was deleted: {exc}", error=True)
            self.deleteFinished.emit(True)
            return
        self.model.catch_up()
        self._say(f"Deleted {plan.name}: {format_bytes(freed)} freed.")
        self.deleteFinished.emit(True)

    async def confirm_plan(self, plan: DeletePlan) -> bool:
        """Ask before deleting (Enter and Esc keep the model); files of other apps need a
        second, explicit yes."""
        if not await self._ask("Delete model", describe_plan(plan), "Delete"):
            return False
        if not plan.needs_second_confirmation:
            return True
        apps = ", ".join(plan.other_apps)
        return await self._ask(
            "Delete another app's files",
            f"These files belong to {apps}. Deleting them removes the model from {apps} too. "
            "Delete them anyway?",
            f"Delete from {apps}",
        )

    async def _ask(self, title: str, text: str, action: str) -> bool:
        self.asking = confirmation_box(self, title, text, action=action)
        try:
            return await ask(self.asking)
        finally:
            self.asking = None

    def _say(self, text: str, *, error: bool = False) -> None:
        self.status.setText(clip(text, LONG_CHARS))
        mark_error(self.status, error)

"""Library: every model on this machine in one list — HF cache, imports, other apps' folders."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from PySide6.QtCore import (
    QPoint,
    QSortFilterProxyModel,
    Qt,
    Signal,
)
from PySide6.QtGui import QAction
from PySide6.QtWidgets import (
    QAbstractItemView,
    QFileDialog,
    QHBoxLayout,
    QHeaderView,
    QLineEdit,
    QMenu,
    QMessageBox,
    QPushButton,
    QTableView,
    QVBoxLayout,
    QWidget,
)

from app.core import Core
from app.errors import AppError
from app.units import format_bytes
from ui import theme
from ui.icons import themed_icon
from ui.library_model import LibraryModel
from ui.style import mark_error
from ui.tasks import run_blocking, spawn
from ui.widgets import LONG_CHARS, clip, heading_label, plain_html, plain_label

if TYPE_CHECKING:
    from app.library import DeletePlan, ImportResult, LibraryEntry

# What an empty Library (a first run) says: where models come from.
NO_MODELS_YET = (
    "No models yet. Find one in Discover and download it, or import a .gguf or .safetensors "
    "file or a model folder you already have: drop it here or use Import… (Ctrl+I)."
)


def _chat_path(entry: LibraryEntry | None) -> Path | None:
    """Where a GGUF language model can be loaded from, for "Chat with this" (else None)."""
    from app.library.sniff import ModelKind

    if entry is None or entry.kind is not ModelKind.LLM_GGUF:
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


class LibraryPage(QWidget):
    """Scan, filter, import (button or drag and drop), add folders, delete with a plan.

    Args:
        core: the core.
        models: the library's models as the window shares them among its pages (default: a
            model of this page's own over `core.models`, which still follows every refresh).
    """

    scanned = Signal(int)  # number of entries, after each refresh of the library's list
    imported = Signal(int, int)  # imported, rejected — after an import
    chatRequested = Signal(object)  # the Path of a GGUF model to open in Chat

    def __init__(
        self, core: Core, models: LibraryModel | None = None, parent: QWidget | None = None
    ) -> None:
        super().__init__(parent)
        self._core = core
        self.filter = QLineEdit()
        self.filter.setPlaceholderText("Filter models")
        self.filter.setClearButtonEnabled(True)
        self.import_button = QPushButton(themed_icon("import"), "Import…")
        self.folder_button = QPushButton(themed_icon("folder"), "Add folder…")
        self.refresh_button = QPushButton(themed_icon("refresh"), "Refresh")
        self.delete_button = QPushButton(themed_icon("delete"), "Delete…")
        self.chat_button = QPushButton(themed_icon("chat"), "Chat with this")
        self.chat_button.setToolTip("Open the selected GGUF model in Chat")
        self.chat_button.setEnabled(False)
        # Says what an import or a scan did, quoting file names and reasons: plain text.
        self.status = plain_label(
            "Drop .gguf or .safetensors files, or model folders, to import them.",
            word_wrap=True,
            shrinkable=True,
        )

        self.model = models if models is not None else LibraryModel(core.models, self)
        self.proxy = QSortFilterProxyModel(self)
        self.proxy.setSourceModel(self.model)
        self.proxy.setFilterCaseSensitivity(Qt.CaseSensitivity.CaseInsensitive)
        self.proxy.setFilterKeyColumn(-1)
        self.view = QTableView()
        self.view.setModel(self.proxy)
        self.view.setSortingEnabled(True)
        self.view.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.view.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.view.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.view.setAlternatingRowColors(True)
        self.view.setWordWrap(False)
        self.view.verticalHeader().hide()
        self.view.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.Interactive)
        self.view.horizontalHeader().setStretchLastSection(True)
        self.view.setTextElideMode(Qt.TextElideMode.ElideMiddle)

        buttons = QHBoxLayout()
        buttons.addWidget(self.filter, 1)
        for button in (
            self.chat_button,
            self.import_button,
            self.folder_button,
            self.refresh_button,
            self.delete_button,
        ):
            buttons.addWidget(button)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(*(theme.PAGE_MARGIN,) * 4)
        layout.setSpacing(theme.SPACING)
        layout.addWidget(heading_label("Library"))
        layout.addLayout(buttons)
        layout.addWidget(self.status)
        layout.addWidget(self.view, 1)

        self.filter.textChanged.connect(self.proxy.setFilterFixedString)
        self.import_button.clicked.connect(self.choose_files)
        self.folder_button.clicked.connect(self.choose_folder)
        self.refresh_button.clicked.connect(self.refresh)
        self.delete_button.clicked.connect(self._delete_clicked)
        self.chat_button.clicked.connect(self.chat_with_selected)
        self.chat_action = QAction("Chat with this", self.view)
        self.chat_action.triggered.connect(self.chat_with_selected)
        self.view.setContextMenuPolicy(Qt.ContextMenuPolicy.CustomContextMenu)
        self.view.customContextMenuRequested.connect(self._context_menu)
        self.view.selectionModel().selectionChanged.connect(self._selection_changed)
        self.view.doubleClicked.connect(lambda _index: self.chat_with_selected())
        self.model.refreshed.connect(self._listed)
        self.model.refreshFailed.connect(lambda text: self._say(text, error=True))
        if self.model.models.scanned:
            self._listed(self.model.rowCount())

    def selected_entry(self) -> LibraryEntry | None:
        index = self.proxy.mapToSource(self.view.currentIndex())
        return self.model.item(index.row()) if index.isValid() else None

    def chat_with_selected(self) -> None:
        """Open the selected GGUF model in Chat (nothing for other kinds)."""
        path = _chat_path(self.selected_entry())
        if path is not None:
            self.chatRequested.emit(path)

    def _selection_changed(self) -> None:
        self.chat_button.setEnabled(_chat_path(self.selected_entry()) is not None)

    def _context_menu(self, position: QPoint) -> None:
        index = self.view.indexAt(position)
        if not index.isValid():
            return
        self.view.selectRow(index.row())
        if _chat_path(self.selected_entry()) is None:
            return
        menu = QMenu(self.view)
        menu.addAction(self.chat_action)
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
        entries = self.model.entries()
        total = sum(entry.size for entry in entries)
        missing = sum(1 for entry in entries if not entry.present)
        gone = f"; {missing} on drives not present now" if missing else ""
        if entries:
            models = f"{len(entries)} model{'' if len(entries) == 1 else 's'}"
            self._say(f"{models}, {format_bytes(total)}{gone}.")
        else:
            self._say(NO_MODELS_YET)
        self.scanned.emit(count)

    async def _import(self, paths: list[Path]) -> None:
        self._say(f"Importing {len(paths)} item(s)…")
        try:
            result: ImportResult = await run_blocking(self._core.models.import_paths, paths)
        except AppError as exc:
            self._say(f"The import failed: {exc}", error=True)
            return
        self.model.catch_up()
        parts = [f"Imported {len(result.imported)} model(s), used in place (nothing copied)."]
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

    def _delete_clicked(self) -> None:
        entry = self.selected_entry()
        if entry is not None:
            spawn(self._delete(entry))

    async def _delete(self, entry: LibraryEntry) -> None:
        try:
            plan = await run_blocking(self._core.library.plan_delete, entry.key)
        except AppError as exc:
            self._say(str(exc), error=True)
            return
        if not self.confirm_plan(plan):
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
            return
        self.model.catch_up()
        self._say(f"Deleted {plan.name}: {format_bytes(freed)} freed.")

    def confirm_plan(self, plan: DeletePlan) -> bool:
        """Ask before deleting; files of other apps need a second, explicit yes."""
        # Message boxes guess rich text: the plan names files and a model name from its metadata.
        answer = QMessageBox.question(self, "Delete model", plain_html(describe_plan(plan)))
        if answer != QMessageBox.StandardButton.Yes:
            return False
        if not plan.needs_second_confirmation:
            return True
        apps = ", ".join(plan.other_apps)
        again = QMessageBox.warning(
            self,
            "Delete another app's files",
            plain_html(
                f"These files belong to {apps}. Deleting them removes the model from {apps} too. "
                "Delete them anyway?"
            ),
            QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No,
            QMessageBox.StandardButton.No,
        )
        return again == QMessageBox.StandardButton.Yes

    def _say(self, text: str, *, error: bool = False) -> None:
        self.status.setText(clip(text, LONG_CHARS))
        mark_error(self.status, error)

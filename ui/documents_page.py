"""Documents: collections of files to chat with; add a folder, watch it index, pause or stop.

Indexing runs on a worker thread (`DocumentCollections.index`); its progress comes back
through a signal, at most every `PROGRESS_MS`, so a folder of 10,000 small files never floods
the event loop. Pause and Stop act between files; what was indexed is kept either way.
"""

from __future__ import annotations

import re
import threading
import time
from pathlib import Path

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QShowEvent
from PySide6.QtWidgets import (
    QAbstractItemView,
    QComboBox,
    QFileDialog,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QMessageBox,
    QProgressBar,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from app.core import Core
from app.docs.collections import PATH_COLLECTION_PREFIX, CollectionSummary
from app.docs.embedders import DEFAULT_EMBEDDER_SEARCH, embedder_choices
from app.docs.indexer import IndexCancelled, IndexControl, IndexPhase, IndexProgress
from app.errors import AppError
from app.units import format_bytes
from ui import theme
from ui.confirm import ask, confirmation_box
from ui.icons import themed_icon
from ui.tasks import run_blocking, spawn
from ui.widgets import heading_label, plain_label

PROGRESS_MS = 100
COLUMNS = ("Collection", "Files", "Size", "Chunks", "Search", "State")


class DocumentsPage(QWidget):
    """The collections, with counts and sizes, and the controls of the one running index."""

    progressed = Signal(object)  # an IndexProgress, from the indexing thread
    indexFinished = Signal(str)  # the run's summary (or why it stopped)
    attachRequested = Signal(str)  # answer in Chat from this collection
    discoverRequested = Signal(str)  # search Discover for this (an embedding model to get)

    def __init__(self, core: Core) -> None:
        super().__init__()
        self._core = core
        self._control: IndexControl | None = None
        self._last_progress = 0.0
        self._progress_lock = threading.Lock()

        self.table = QTableWidget(0, len(COLUMNS))
        self.table.setHorizontalHeaderLabels(COLUMNS)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.verticalHeader().hide()
        header = self.table.horizontalHeader()
        header.setSectionResizeMode(0, QHeaderView.ResizeMode.Stretch)
        for column in range(1, len(COLUMNS)):
            header.setSectionResizeMode(column, QHeaderView.ResizeMode.ResizeToContents)
        self.table.itemSelectionChanged.connect(self._update_buttons)
        self.table.itemSelectionChanged.connect(self._show_embedders)

        self.add_button = QPushButton(themed_icon("folder"), "Add folder…")
        self.update_button = QPushButton(themed_icon("refresh"), "Update index")
        self.pause_button = QPushButton(themed_icon("pause"), "Pause")
        self.stop_button = QPushButton(themed_icon("cancel"), "Stop")
        self.remove_button = QPushButton(themed_icon("delete"), "Remove")
        self.attach_button = QPushButton(themed_icon("chat"), "Chat with it")
        self.attach_button.setToolTip("Answer in Chat from this collection, citing its files")
        self.attach_button.clicked.connect(self._attach_selected)
        self.add_button.clicked.connect(self._choose_folder)
        self.update_button.clicked.connect(self._update_selected)
        self.pause_button.clicked.connect(self._toggle_pause)
        self.stop_button.clicked.connect(self._stop)
        self.remove_button.clicked.connect(self._remove_selected)
        # The selected collection's embedding model, from the library's embedding GGUFs.
        self.embedder_picker = QComboBox()
        self.embedder_picker.setSizeAdjustPolicy(
            QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon
        )
        self.embedder_picker.setMinimumContentsLength(24)
        self.embedder_picker.setToolTip(
            "The model that finds passages by meaning as well as by words. Changing it "
            "embeds the collection again; the same model never does."
        )
        self.embedder_picker.activated.connect(self._embedder_chosen)
        embedder_label = QLabel("Embedding model:")
        embedder_label.setBuddy(self.embedder_picker)
        self.get_embedder_button = QPushButton(themed_icon("discover"), "Get an embedding model…")
        self.get_embedder_button.setToolTip(
            f'No embedding model in the library: search Discover for "{DEFAULT_EMBEDDER_SEARCH}"'
            " (small, Apache-2.0), download a GGUF of it, and pick it here."
        )
        self.get_embedder_button.clicked.connect(
            lambda: self.discoverRequested.emit(DEFAULT_EMBEDDER_SEARCH)
        )
        self._embedders: dict[str, Path | None] = {}  # each collection's, by name
        self.progress = QProgressBar()
        self.progress.setTextVisible(True)
        self.progress.hide()
        # A file name from the folder may be one long word: it must not widen the window.
        self.status = plain_label(word_wrap=True, shrinkable=True)

        buttons = QHBoxLayout()
        for button in (self.add_button, self.update_button, self.pause_button, self.stop_button):
            buttons.addWidget(button)
        buttons.addStretch(1)
        buttons.addWidget(self.attach_button)
        buttons.addWidget(self.remove_button)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(theme.SPACING * 2, theme.SPACING * 2, theme.SPACING * 2, 0)
        layout.addWidget(heading_label("Documents"))
        layout.addWidget(
            plain_label(
                "Folders of your files (PDF, Word, Markdown, HTML, text, code), indexed where "
                'they are; nothing leaves this machine. "Chat with it" answers from one with '
                "numbered sources (or `modeldeck chat MODEL --docs NAME`).",
                word_wrap=True,
            )
        )
        layout.addLayout(buttons)
        embedder_row = QHBoxLayout()
        embedder_row.addWidget(embedder_label)
        embedder_row.addWidget(self.embedder_picker)
        embedder_row.addWidget(self.get_embedder_button)
        embedder_row.addStretch(1)
        layout.addLayout(embedder_row)
        layout.addWidget(self.table, 1)
        layout.addWidget(self.progress)
        layout.addWidget(self.status)
        self.progressed.connect(self._show_progress)
        self._update_buttons()
        self.refresh()

    # -- actions -------------------------------------------------------------------------

    def refresh(self) -> None:
        spawn(self._refresh())

    def showEvent(self, event: QShowEvent) -> None:
        """The library may have gained an embedding model (a download) since: list it."""
        super().showEvent(event)
        self._show_embedders()

    def choose_embedder(self, name: str, embedder: Path | None) -> None:
        """Search collection `name` with `embedder` (None: words only); a new model embeds
        the collection again now."""
        spawn(self._choose_embedder(name, embedder))

    def add_folder(self, folder: Path) -> None:
        """Make a collection of `folder` (named after it) and index it."""
        spawn(self._add(folder))

    def index(self, name: str) -> None:
        spawn(self._index(name))

    @property
    def indexing(self) -> bool:
        return self._control is not None

    def selected_name(self) -> str | None:
        rows = self.table.selectionModel().selectedRows()
        if not rows:
            return None
        item = self.table.item(rows[0].row(), 0)
        return item.data(Qt.ItemDataRole.UserRole) if item is not None else None

    def _choose_folder(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Add a folder of documents")
        if folder:
            self.add_folder(Path(folder))

    def _embedder_chosen(self, index: int) -> None:
        name = self.selected_name()
        data = self.embedder_picker.itemData(index)
        if name is not None:
            self.choose_embedder(name, Path(data) if data else None)

    async def _choose_embedder(self, name: str, embedder: Path | None) -> None:
        if self._embedders.get(name) == embedder:
            return  # the same model: its vectors stand
        try:
            await run_blocking(self._core.documents.set_embedder, name, embedder)
        except AppError as error:
            self.status.setText(str(error))
            return
        self._embedders[name] = embedder
        if embedder is None:
            self.status.setText(f"{name}: searched by words only from now on.")
            await self._refresh()
            return
        await self._index(name)  # embeds every chunk with the new model

    def _show_embedders(self) -> None:
        """The library's embedding models in the picker, the selected collection's chosen."""
        name = self.selected_name()
        current = self._embedders.get(name) if name is not None else None
        choices = embedder_choices(self._core.models.entries)
        picker = self.embedder_picker
        picker.blockSignals(True)  # filling it is not a person's choice
        picker.clear()
        picker.addItem("None: search by words only", None)
        for choice in choices:
            picker.addItem(choice.name, str(choice.path))
            picker.setItemData(picker.count() - 1, str(choice.path), Qt.ItemDataRole.ToolTipRole)
        if current is not None and picker.findData(str(current)) < 0:
            picker.addItem(f"{current.name} (not in the library)", str(current))
        picker.setCurrentIndex(max(0, picker.findData(str(current)) if current else 0))
        picker.blockSignals(False)
        self.get_embedder_button.setVisible(not choices)

    def _update_selected(self) -> None:
        name = self.selected_name()
        if name is not None:
            self.index(name)

    def _attach_selected(self) -> None:
        name = self.selected_name()
        if name is not None:
            self.attachRequested.emit(name)

    def _toggle_pause(self) -> None:
        control = self._control
        if control is None:
            return
        if control.paused:
            control.resume()
            self.pause_button.setText("Pause")
            self.pause_button.setIcon(themed_icon("pause"))
        else:
            control.pause()
            self.pause_button.setText("Resume")
            self.pause_button.setIcon(themed_icon("resume"))
            self.status.setText("Paused: Resume goes on from the same file.")

    def _stop(self) -> None:
        if self._control is not None:
            self._control.cancel()

    def _remove_selected(self) -> None:
        name = self.selected_name()
        if name is None:
            return
        box = confirmation_box(
            self,
            "Remove collection",
            f"Forget the collection {name!r} and its index? The files themselves stay.",
            action="Remove",
        )
        spawn(self._remove(name, box))

    # -- work ----------------------------------------------------------------------------

    async def _refresh(self) -> None:
        documents = self._core.documents
        summaries = await run_blocking(documents.summaries)
        selected = self.selected_name()
        shown = [s for s in summaries if not s.collection.name.startswith(PATH_COLLECTION_PREFIX)]
        self._embedders = {s.collection.name: s.collection.embedder for s in shown}
        self.table.setRowCount(len(shown))
        for row, summary in enumerate(shown):
            for column, text in enumerate(_cells(summary)):
                item = QTableWidgetItem(text)
                if column == 0:
                    item.setData(Qt.ItemDataRole.UserRole, summary.collection.name)
                    item.setToolTip("\n".join(str(root) for root in summary.collection.roots))
                self.table.setItem(row, column, item)
            if summary.collection.name == selected:
                self.table.selectRow(row)
        self._update_buttons()
        self._show_embedders()

    async def _add(self, folder: Path) -> None:
        documents = self._core.documents
        existing = {summary.collection.name for summary in await run_blocking(documents.summaries)}
        name = _free_name(folder, existing)
        try:
            await run_blocking(documents.add, name, [folder], embedder=None)
        except AppError as error:
            self.status.setText(str(error))
            return
        await self._refresh()
        await self._index(name)

    async def _index(self, name: str) -> None:
        if self._control is not None:
            return  # one run at a time
        control = self._control = IndexControl()
        self.progress.setRange(0, 0)
        self.progress.show()
        self.status.setText(f"Indexing {name}…")
        self._update_buttons()
        try:
            report = await run_blocking(
                self._core.documents.index, name, progress=self._relay, control=control
            )
            message = f"{name}: {report.summary()}"
        except IndexCancelled:
            message = f"{name}: stopped; what was indexed is kept (Update index goes on)."
        except AppError as error:
            message = f"{name}: {error}"
        finally:
            self._control = None
            self.progress.hide()
            self.pause_button.setText("Pause")
            self.pause_button.setIcon(themed_icon("pause"))
        self.status.setText(message)
        await self._refresh()
        self.indexFinished.emit(message)

    async def _remove(self, name: str, box: QMessageBox) -> None:
        if not await ask(box):
            return
        try:
            await run_blocking(self._core.documents.remove, name)
        except AppError as error:
            self.status.setText(str(error))
        await self._refresh()

    def _relay(self, progress: IndexProgress) -> None:
        """On the indexing thread: pass progress on, at most every PROGRESS_MS."""
        now = time.monotonic()
        with self._progress_lock:
            if (
                progress.phase is not IndexPhase.DONE
                and now - self._last_progress < PROGRESS_MS / 1000
            ):
                return
            self._last_progress = now
        self.progressed.emit(progress)

    def _show_progress(self, progress: IndexProgress) -> None:
        if progress.total:
            self.progress.setRange(0, progress.total)
            self.progress.setValue(progress.done)
        if progress.phase is IndexPhase.READING and progress.path:
            self.status.setText(f"Reading {Path(progress.path).name}")
        elif progress.phase is IndexPhase.EMBEDDING:
            self.status.setText(f"Embedding chunks: {progress.done:,} of {progress.total:,}")

    def _update_buttons(self) -> None:
        running = self._control is not None
        selected = self.selected_name() is not None
        self.add_button.setEnabled(not running)
        self.update_button.setEnabled(selected and not running)
        self.remove_button.setEnabled(selected and not running)
        self.attach_button.setEnabled(selected)
        self.embedder_picker.setEnabled(selected and not running)
        self.pause_button.setEnabled(running)
        self.stop_button.setEnabled(running)


def _cells(summary: CollectionSummary) -> tuple[str, ...]:
    collection, stats = summary.collection, summary.stats
    skipped = f" ({stats.skipped} skipped)" if stats.skipped else ""
    if collection.offline:
        state = "offline (index kept)"
    elif collection.indexed_at is None:
        state = "not indexed"
    else:
        state = "ready"
    return (
        collection.name,
        f"{stats.files:,}{skipped}",
        format_bytes(stats.bytes),
        f"{stats.chunks:,}",
        "words + meaning" if collection.embedder else "words",
        state,
    )


def _free_name(folder: Path, taken: set[str]) -> str:
    base = re.sub(r"[^\w.\- ]", "_", folder.name or "Documents").strip(" .-") or "Documents"
    name, number = base[:70], 2
    while name in taken:
        name = f"{base[:70]} {number}"
        number += 1
    return name

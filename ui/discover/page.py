"""Discover: search a hub with filters, page through results, read one model's details."""

from __future__ import annotations

from PySide6.QtCore import QEvent, QItemSelection, QModelIndex, QObject, Qt, QTimer
from PySide6.QtGui import QKeyEvent
from PySide6.QtWidgets import (
    QAbstractItemView,
    QComboBox,
    QHBoxLayout,
    QHeaderView,
    QLineEdit,
    QSplitter,
    QTableView,
    QVBoxLayout,
    QWidget,
)

from app.core import Core
from app.hub.models import SearchQuery, SortOrder
from ui import theme
from ui.discover.details_pane import DetailsPane
from ui.discover.hub_plans import HubDownloadPlanner
from ui.discover.hub_selector import HubSelector
from ui.discover.result_row import ResultRowDelegate, row_height
from ui.discover.results_model import SearchResultsModel, SearchState
from ui.style import mark_error, set_font
from ui.widgets import LONG_CHARS, clip, plain_label

SEARCH_DEBOUNCE_MS = 300  # typing never waits on the network; a search starts after a pause
DETAILS_DEBOUNCE_MS = 200  # arrowing through results loads only the row the user stops on

TASKS = (
    "text-generation",
    "image-text-to-text",
    "text-to-image",
    "image-to-image",
    "feature-extraction",
    "sentence-similarity",
    "automatic-speech-recognition",
    "text-to-speech",
    "image-classification",
    "translation",
    "summarization",
)
LIBRARIES = ("gguf", "diffusers", "transformers", "safetensors", "mlx", "onnx")
LICENSES = (
    "apache-2.0",
    "mit",
    "llama3.1",
    "llama3.2",
    "gemma",
    "openrail",
    "creativeml-openrail-m",
    "cc-by-4.0",
    "cc-by-nc-4.0",
    "other",
)
SORTS = (
    (SortOrder.DOWNLOADS, "Most downloads"),
    (SortOrder.LIKES, "Most likes"),
    (SortOrder.UPDATED, "Recently updated"),
)


def _filter_combo(label: str, values: tuple[str, ...]) -> QComboBox:
    combo = QComboBox()
    combo.addItem(f"Any {label}", None)
    for value in values:
        combo.addItem(value, value)
    combo.setEditable(False)
    return combo


class DiscoverPage(QWidget):
    """The search field and filters on top; results on the left; details on the right."""

    def __init__(self, core: Core, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._core = core

        self.search_field = QLineEdit()
        set_font(self.search_field, points_delta=theme.LARGE_POINTS)
        self.search_field.setPlaceholderText("Search models  (Ctrl+K)")
        self.search_field.setClearButtonEnabled(True)
        self.hub_selector = HubSelector(core)
        self.task_filter = _filter_combo("task", TASKS)
        self.library_filter = _filter_combo("library", LIBRARIES)
        self.license_filter = _filter_combo("license", LICENSES)
        self.author_filter = QLineEdit()
        self.author_filter.setPlaceholderText("Author")
        self.author_filter.setMaximumWidth(160)
        self.sort_order = QComboBox()
        for order, label in SORTS:
            self.sort_order.addItem(label, order)
        for widget, name in (
            (self.search_field, "Search models"),
            (self.task_filter, "Task filter"),
            (self.library_filter, "Library filter"),
            (self.license_filter, "License filter"),
            (self.author_filter, "Author filter"),
            (self.sort_order, "Sort results by"),
        ):
            widget.setAccessibleName(name)

        self.results = SearchResultsModel(self.hub_selector.hub, self)
        self.results_view = QTableView()
        self.results_view.setModel(self.results)
        self.results_view.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.results_view.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.results_view.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.results_view.setShowGrid(False)
        self.results_view.setAlternatingRowColors(True)
        self.results_view.setWordWrap(False)
        # One column drawn as a name line and a badge line (`ResultRowDelegate`); the model
        # keeps its columns for the tooltips and for tests, but only the first is shown.
        self.results_view.setItemDelegateForColumn(0, ResultRowDelegate(self.results_view))
        for column in range(1, self.results.columnCount()):
            self.results_view.setColumnHidden(column, True)
        self.results_view.horizontalHeader().hide()
        self.results_view.horizontalHeader().setSectionResizeMode(0, QHeaderView.ResizeMode.Stretch)
        self.results_view.verticalHeader().hide()
        self.results_view.verticalHeader().setDefaultSectionSize(
            row_height(self.results_view.font())
        )
        # Tab leaves the list (it would walk the hidden cells and move the selection);
        # the arrows move within it.
        self.results_view.setTabKeyNavigation(False)
        self.results_view.setAccessibleName("Search results")
        self.status = plain_label(word_wrap=True, shrinkable=True)  # may quote a hub's error

        self.details = DetailsPane(
            self.hub_selector.hub, lambda: self._core.settings.default_context_length
        )
        self.details.save_token = self._core.save_token
        # Civitai's and ModelScope's files are asked for by path; once planned they join the
        # window's one download queue, as a Hugging Face plan does.
        self.hub_plans = HubDownloadPlanner(core, self.hub_selector.modelscope_client, self)
        self.details.filesRequested.connect(self.hub_plans.start)
        self.hub_plans.planned.connect(self.details.downloadRequested)
        self.hub_plans.failed.connect(self._show_download_error)

        # The hub sits before the search field (where the query goes), not among the filters:
        # it chooses what is searched, and the filter row keeps its width.
        search_row = QHBoxLayout()
        search_row.addWidget(self.hub_selector)
        search_row.addWidget(self.search_field, 1)
        filters = QHBoxLayout()
        for widget in (
            self.task_filter,
            self.library_filter,
            self.license_filter,
            self.author_filter,
            self.sort_order,
        ):
            filters.addWidget(widget)
        filters.addStretch(1)
        left = QWidget()
        left_layout = QVBoxLayout(left)
        left_layout.setContentsMargins(0, 0, 0, 0)
        left_layout.addWidget(self.status)
        left_layout.addWidget(self.results_view, 1)
        splitter = QSplitter(Qt.Orientation.Horizontal)
        splitter.addWidget(left)
        splitter.addWidget(self.details)
        # Results are two compact lines a row: the details, with their file table, get more.
        splitter.setStretchFactor(0, 2)
        splitter.setStretchFactor(1, 3)
        splitter.setSizes([500, 750])
        layout = QVBoxLayout(self)
        layout.setContentsMargins(*(theme.PAGE_MARGIN,) * 4)
        layout.setSpacing(theme.SPACING)
        layout.addLayout(search_row)
        layout.addLayout(filters)
        layout.addWidget(splitter, 1)

        self._search_timer = QTimer(self)
        self._search_timer.setSingleShot(True)
        self._search_timer.setInterval(SEARCH_DEBOUNCE_MS)
        self._search_timer.timeout.connect(self.search_now)
        self._details_timer = QTimer(self)
        self._details_timer.setSingleShot(True)
        self._details_timer.setInterval(DETAILS_DEBOUNCE_MS)
        self._details_timer.timeout.connect(self._open_current)

        self.search_field.textChanged.connect(self._search_timer.start)
        self.author_filter.textChanged.connect(self._search_timer.start)
        for combo in (
            self.hub_selector,
            self.task_filter,
            self.library_filter,
            self.license_filter,
            self.sort_order,
        ):
            combo.currentIndexChanged.connect(self.search_now)
        self.search_field.returnPressed.connect(self.search_now)
        self.search_field.installEventFilter(self)
        self.results.stateChanged.connect(self._show_state)
        self.results_view.selectionModel().selectionChanged.connect(self._selection_changed)
        self.results_view.activated.connect(self._open_index)

    # -- actions ------------------------------------------------------------------------

    def query(self) -> SearchQuery:
        """The search the controls describe."""
        return SearchQuery(
            text=self.search_field.text(),
            task=self.task_filter.currentData(),
            library=self.library_filter.currentData(),
            license=self.license_filter.currentData(),
            author=self.author_filter.text().strip() or None,
            sort=self.sort_order.currentData(),
        )

    def search_now(self) -> None:
        """Start the search now (Enter, a filter change, or the end of the typing pause)."""
        self._search_timer.stop()
        # The model on the right belongs to the old results: it would read as one of the new.
        self.details.show_placeholder()
        self.results.search(self.query())

    def focus_search(self) -> None:
        self.search_field.setFocus(Qt.FocusReason.ShortcutFocusReason)
        self.search_field.selectAll()

    # -- reactions ----------------------------------------------------------------------

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        if (
            watched is self.search_field
            and event.type() == QEvent.Type.KeyPress
            and isinstance(event, QKeyEvent)
        ):
            # Down in the search field moves into the results, like a browser's address bar.
            if event.key() == Qt.Key.Key_Down and self.results.rowCount() > 0:
                self.results_view.setFocus()
                self.results_view.selectRow(max(self.results_view.currentIndex().row(), 0))
                return True
            # Esc clears the field (the search for "" follows after the usual pause).
            if event.key() == Qt.Key.Key_Escape and self.search_field.text():
                self.search_field.clear()
                return True
        return super().eventFilter(watched, event)

    def _show_state(self, state: str, message: str) -> None:
        self.status.setText(clip(message, LONG_CHARS))
        self.status.setProperty("state", state)
        mark_error(self.status, state in (SearchState.OFFLINE, SearchState.ERROR))
        if state in (SearchState.EMPTY, SearchState.ERROR) or (
            state == SearchState.OFFLINE and self.results.rowCount() == 0
        ):
            self.details.show_placeholder()

    def _show_download_error(self, message: str) -> None:
        self.status.setText(clip(message, LONG_CHARS))
        mark_error(self.status, True)

    def _selection_changed(self, selected: QItemSelection, _deselected: QItemSelection) -> None:
        if selected.indexes():
            self._details_timer.start()

    def _open_current(self) -> None:
        self._open_index(self.results_view.currentIndex())

    def _open_index(self, index: QModelIndex) -> None:
        self._details_timer.stop()
        summary = self.results.summary(index.row()) if index.isValid() else None
        if summary is not None and summary.repo_id != self.details.requested:
            self.details.load(summary.repo_id)

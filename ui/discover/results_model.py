"""Search results as a Qt table model that pages lazily from the hub as the view scrolls."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from enum import StrEnum
from itertools import islice
from typing import TYPE_CHECKING

from PySide6.QtCore import (
    QModelIndex,
    QObject,
    Qt,
    Signal,
)

from app.errors import AppError, HubUnreachableError
from app.hub.models import ModelSummary, SearchQuery
from ui import theme
from ui.discover.result_row import HubRole, counted
from ui.table_model import Column, ColumnTableModel, Index
from ui.tasks import run_blocking, spawn
from ui.widgets import tooltip_html

if TYPE_CHECKING:
    import asyncio

    from app.hub.offline import OfflineAwareHub

PAGE_SIZE = 50


# Badge colours per license category, readable on light and dark themes.
# Keyed by `LicenseCategory` value; the license table is imported when the first row shows.
CATEGORY_COLOURS: dict[str, str] = {
    "permissive": "#2e7d32",
    "copyleft": "#1565c0",
    "non-commercial": "#c62828",
    "use-restricted": "#ef6c00",
    "custom": "#6a1b9a",
    "unknown": "#616161",
}
# The same categories as text colours that stay readable in both schemes (`ui.theme`).
CATEGORY_KINDS: dict[str, str] = {
    "permissive": "good",
    "copyleft": "info",
    "non-commercial": "bad",
    "use-restricted": "warning",
    "custom": "special",
    "unknown": "neutral",
}


class SearchState(StrEnum):
    """What the results list is showing; the page turns each into a visible message."""

    IDLE = "idle"
    LOADING = "loading"
    RESULTS = "results"
    EMPTY = "empty"
    OFFLINE = "offline"  # hub unreachable; rows (if any) are models seen before
    ERROR = "error"


def _date(item: ModelSummary) -> str:
    return item.last_modified.date().isoformat() if item.last_modified else ""


def _row_tooltip(item: ModelSummary) -> str:
    facts = [item.task or "task not stated", item.license_id or "no license stated"]
    facts += [counted(item.downloads, "download"), counted(item.likes, "like")]
    if item.last_modified:
        facts.append(f"updated {_date(item)}")
    return f"{item.repo_id}\n{' · '.join(facts)}"


COLUMNS: tuple[Column[ModelSummary], ...] = (
    Column("Model", lambda item: item.repo_id),
    Column("Task", lambda item: item.task or ""),
    Column("Downloads", lambda item: f"{item.downloads:,}", align_right=True),
    Column("Likes", lambda item: f"{item.likes:,}", align_right=True),
    Column("License", lambda item: item.license_id or "—"),
    Column("Updated", _date),
)
LICENSE_COLUMN = 4


class SearchResultsModel(ColumnTableModel[ModelSummary]):
    """Rows of `ModelSummary`, fetched PAGE_SIZE at a time through `canFetchMore`/`fetchMore`.

    `search` starts a new query; results of an older query that arrive late are dropped.
    `stateChanged(state, message)` tells the page what to show around the rows.

    Args:
        hub: a getter for the current hub (it changes with the settings; may block).
    """

    stateChanged = Signal(str, str)  # SearchState value, a message for a person

    def __init__(
        self,
        hub: Callable[[], OfflineAwareHub],
        parent: QObject | None = None,
    ) -> None:
        super().__init__(COLUMNS, parent)
        self._hub = hub
        self._results: Iterator[ModelSummary] | None = None
        self._fetching: asyncio.Task[None] | None = None
        self._generation = 0
        self.state = SearchState.IDLE
        self.message = ""
        self.hub_name = ""  # the hub the current results come from (all from one hub)

    # -- Qt model interface ---------------------------------------------------------------

    def extra_data(self, item: ModelSummary, column: int, role: int) -> object:
        if role == HubRole:
            return self.hub_name
        if column == 0 and role == Qt.ItemDataRole.ToolTipRole:
            # The row shows the name cut at its end when narrow: the tooltip has it whole.
            source = f"\nfrom {self.hub_name}" if self.hub_name else ""
            return tooltip_html(_row_tooltip(item) + source)
        if column != LICENSE_COLUMN or role not in (
            Qt.ItemDataRole.ForegroundRole,
            Qt.ItemDataRole.ToolTipRole,
        ):
            return None
        from app.licenses import license_info  # on first use: kept out of startup

        info = license_info(item.license_id)
        if role == Qt.ItemDataRole.ForegroundRole:
            # Read at paint time, so the column follows a light/dark switch.
            return theme.status_colour(CATEGORY_KINDS[info.category])
        # QToolTip guesses rich text, and an unknown license's name is the hub's own string.
        return tooltip_html(
            f"{info.name} — {info.category.value}; commercial use: {info.commercial_use}"
        )

    def canFetchMore(self, parent: Index = QModelIndex()) -> bool:  # noqa: B008
        return not parent.isValid() and self._results is not None and self._fetching is None

    def fetchMore(self, parent: Index = QModelIndex()) -> None:  # noqa: B008
        if self.canFetchMore(parent):
            self._fetching = spawn(self._fetch_page(self._generation))

    # -- searching --------------------------------------------------------------------------

    def summary(self, row: int) -> ModelSummary | None:
        """The result at `row`, if any."""
        return self.item(row)

    def search(self, query: SearchQuery) -> asyncio.Task[None]:
        """Forget the current results and start `query`; returns the task fetching page one."""
        self._generation += 1
        if self._fetching is not None:
            self._fetching.cancel()
        self.set_items([])
        self._results = None
        self._set_state(SearchState.LOADING, "Searching…")
        self._fetching = spawn(self._start(query, self._generation))
        return self._fetching

    async def _start(self, query: SearchQuery, generation: int) -> None:
        def start() -> tuple[str, Iterator[ModelSummary]]:
            hub = self._hub()
            return hub.name, hub.search(query)

        try:
            hub_name, results = await run_blocking(start)
        except HubUnreachableError as exc:
            await self._show_seen_models(query, generation, exc)
            return
        except AppError as exc:
            self._fail(generation, exc)
            return
        if generation != self._generation:
            return
        self.hub_name = hub_name
        self._results = results
        self._fetching = None
        await self._fetch_page(generation)

    async def _fetch_page(self, generation: int) -> None:
        results = self._results
        assert results is not None
        try:
            page = await run_blocking(lambda: list(islice(results, PAGE_SIZE)))
        except AppError as exc:
            self._fail(generation, exc)
            return
        if generation != self._generation:
            return
        self._fetching = None
        if len(page) < PAGE_SIZE:
            self._results = None  # the hub has nothing more
        self.append_items(page)
        if self.rowCount():
            count = self.rowCount()
            more = "" if self._results is None else "+"
            noun = "model" if count == 1 and not more else "models"
            self._set_state(SearchState.RESULTS, f"{count:,}{more} {noun}")
        else:
            self._set_state(SearchState.EMPTY, "No models match this search.")

    async def _show_seen_models(
        self, query: SearchQuery, generation: int, error: HubUnreachableError
    ) -> None:
        def seen_models() -> tuple[str, list[ModelSummary]]:
            hub = self._hub()
            return hub.name, hub.seen_models(query)

        hub_name, seen = await run_blocking(seen_models)
        if generation != self._generation:
            return
        self.hub_name = hub_name
        self._fetching = None
        self.append_items(seen)
        noun = "model" if len(seen) == 1 else "models"
        count = f"Showing {len(seen)} {noun} you looked at before." if seen else ""
        self._set_state(SearchState.OFFLINE, f"Offline — {error} {count}".strip())

    def _fail(self, generation: int, error: AppError) -> None:
        if generation != self._generation:
            return
        self._fetching = None
        self._results = None
        self._set_state(SearchState.ERROR, str(error))

    def _set_state(self, state: SearchState, message: str) -> None:
        self.state = state
        self.message = message
        self.stateChanged.emit(state.value, message)

"""The library's models as one Qt model over the core's `ModelList`, and the filtered views of
it that the pages show: all models (Library), GGUF chat models (Chat), image pipelines
(Images). One list under all of them, so every page agrees as soon as the list changes."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from PySide6.QtCore import (
    QModelIndex,
    QObject,
    QPersistentModelIndex,
    QSortFilterProxyModel,
    Qt,
    Signal,
)
from PySide6.QtGui import QColor

from app.errors import AppError
from app.units import format_bytes, format_count
from ui.badges import Tone
from ui.table_model import Column, ColumnTableModel, ItemRole
from ui.tasks import run_blocking, spawn
from ui.widgets import tooltip_html

if TYPE_CHECKING:
    from collections.abc import Mapping

    from app.library import LibraryEntry
    from app.library.updates import ModelUpdate
    from app.model_list import ModelList

MISSING_COLOUR = QColor("#9e9e9e")
SortRole = Qt.ItemDataRole.UserRole + 2  # what a column sorts by (numbers, folded names)
BadgesRole = Qt.ItemDataRole.UserRole + 3  # the Model cell's chips: a tuple of `RowBadge`
MODEL_COLUMN = 0
PATH_COLUMN = 9
UPDATE_COLUMN = 10  # built per model: its text comes from the last update check


@dataclass(frozen=True, slots=True)
class RowBadge:
    """A chip drawn after a model's name: a short state, its tone, and what it means."""

    text: str
    tone: Tone
    why: str


def row_badges(entry: LibraryEntry) -> tuple[RowBadge, ...]:
    """The chips a library row shows: a pipeline that cannot run, an unreadable file, a copy
    on a drive not present now, a model kept in more than one place."""
    badges: list[RowBadge] = []
    if entry.unreadable:
        badges.append(RowBadge("unreadable", Tone.BAD, entry.unreadable))
    elif entry.incomplete:
        badges.append(
            RowBadge("incomplete", Tone.CAUTION, f"This pipeline cannot run: {entry.incomplete}")
        )
    if not entry.present:
        badges.append(RowBadge("not present", Tone.NEUTRAL, "Its drive or folder is not there now"))
    places = len(entry.locations)
    if places > 1:
        badges.append(
            RowBadge(f"{places} places", Tone.NEUTRAL, "The same file is kept in several places")
        )
    if entry.projector is not None:
        why = f"Loads with its vision projector {entry.projector.name}: attach images in Chat"
        badges.append(RowBadge("sees images", Tone.ACCENT, why))
    return tuple(badges)


def _where(entry: LibraryEntry) -> str:
    labels = dict.fromkeys(location.source.label for location in entry.locations)
    return ", ".join(labels)


def _kind(entry: LibraryEntry) -> str:
    if entry.unreadable:
        return f"{entry.kind.value} (unreadable)"
    if entry.incomplete:
        return f"{entry.kind.value} (incomplete)"
    return entry.kind.value


def _sort_key(entry: LibraryEntry, column: int) -> object:
    """Numbers sort as numbers, names without regard to case, empty dates last."""
    title = COLUMNS[column].title
    if title == "Parameters":
        return entry.parameter_count or 0
    if title == "Size":
        return entry.size
    if title == "Last used":
        return entry.last_used.timestamp() if entry.last_used else 0.0
    return COLUMNS[column].text(entry).casefold()


COLUMNS: tuple[Column[LibraryEntry], ...] = (
    Column("Model", lambda entry: entry.name),
    Column("Kind", _kind),
    Column("Architecture", lambda entry: entry.architecture or ""),
    Column(
        "Parameters",
        lambda entry: format_count(entry.parameter_count) if entry.parameter_count else "",
        align_right=True,
    ),
    Column("Quantization", lambda entry: entry.quantization or ""),
    Column("Size", lambda entry: format_bytes(entry.size), align_right=True),
    Column("Where", _where),
    Column("License", lambda entry: entry.license or ""),
    Column(
        "Last used",
        lambda entry: entry.last_used.date().isoformat() if entry.last_used else "",
    ),
    Column("Path", lambda entry: str(entry.locations[0].path) if entry.locations else ""),
)


class LibraryModel(ColumnTableModel["LibraryEntry"]):
    """`LibraryEntry` rows of the core's `ModelList`; a missing entry (unplugged drive) is
    greyed, never dropped.

    The list reports from whichever thread refreshed it; `_changed` carries that to the GUI
    thread (a queued connection), where the latest list is read, so a late report never
    brings back an older one.
    """

    refreshed = Signal(int)  # the number of entries, after each refresh of the list
    refreshFailed = Signal(str)  # why a refresh asked for here failed
    _changed = Signal()

    def __init__(self, models: ModelList, parent: QObject | None = None) -> None:
        super().__init__((*COLUMNS, Column("Update", self._update_text)), parent)
        self._models = models
        self._updates: dict[tuple[str, str], ModelUpdate] = {}
        self._shown = 0  # the version of the list shown
        self._changed.connect(self.catch_up, Qt.ConnectionType.QueuedConnection)
        unsubscribe = models.subscribe(lambda _entries: self._changed.emit())
        self.destroyed.connect(lambda *_args: unsubscribe())
        if models.scanned:
            self.catch_up()

    @property
    def models(self) -> ModelList:
        """The core's list under this model."""
        return self._models

    def entries(self) -> list[LibraryEntry]:
        """Every row's entry, in order."""
        return [entry for row in range(self.rowCount()) if (entry := self.item(row))]

    def refresh(self) -> None:
        """Scan the library again (on a worker); every view of the list follows."""
        spawn(self._refresh())

    async def _refresh(self) -> None:
        try:
            await run_blocking(self._models.refresh)
        except AppError as exc:
            self.refreshFailed.emit(f"The library scan failed: {exc}")
            return
        self.catch_up()

    def catch_up(self) -> None:
        """Show the list's latest entries now, if not shown yet (after a core call that
        refreshed it, so that the caller sees the result before the queued report)."""
        version, entries = self._models.snapshot()
        if version == self._shown:
            return
        self._shown = version
        if list(entries) != self.entries():  # an equal list keeps the views' selections
            self.set_items(entries)
        self.refreshed.emit(len(entries))

    def set_updates(self, updates: Mapping[tuple[str, str], ModelUpdate]) -> None:
        """Show these updates (by repo id and local commit, as `UpdateRecords.outdated`)."""
        if dict(updates) == self._updates:
            return
        self._updates = dict(updates)
        if self.rowCount():
            self.dataChanged.emit(
                self.index(0, UPDATE_COLUMN), self.index(self.rowCount() - 1, UPDATE_COLUMN)
            )

    def update_for(self, entry: LibraryEntry) -> ModelUpdate | None:
        """The newer commit upstream for one of the entry's HF cache snapshots, if known."""
        for location in entry.locations:
            if location.repo_id is not None and location.revision is not None:
                update = self._updates.get((location.repo_id, location.revision))
                if update is not None:
                    return update
        return None

    def _update_text(self, entry: LibraryEntry) -> str:
        update = self.update_for(entry)
        return update.summary if update is not None else ""

    def extra_data(self, item: LibraryEntry, column: int, role: int) -> object:
        if column == UPDATE_COLUMN:
            update = self.update_for(item)
            if role == SortRole:
                return update.download_size if update is not None else -1
            if role == Qt.ItemDataRole.ToolTipRole and update is not None:
                changed = "\n".join(f"  {file.path}" for file in update.changed)
                return tooltip_html(
                    f"{update.repo_id} ({update.ref}): {update.local_commit[:12]} on disk, "
                    f"{update.remote_commit[:12]} on the hub.\nChanged files:\n{changed}"
                )
            return None
        if role == SortRole:
            return _sort_key(item, column)
        if role == BadgesRole:
            return row_badges(item) if column == MODEL_COLUMN else ()
        if role == Qt.ItemDataRole.AccessibleTextRole and column == MODEL_COLUMN:
            states = ", ".join(badge.text for badge in row_badges(item))
            return f"{item.name} ({states})" if states else item.name
        if role == Qt.ItemDataRole.ForegroundRole and (item.unreadable or not item.present):
            return MISSING_COLOUR
        if role == Qt.ItemDataRole.ToolTipRole:
            # Paths and warnings quote file names and metadata: QToolTip must not read them as
            # HTML. (Cells are drawn plainly by the view.)
            lines = [
                f"{location.source.label}: {location.path}"
                + ("" if location.present else "  (not present now)")
                for location in item.locations
            ]
            if item.unreadable:
                lines.append(f"Unreadable: {item.unreadable}")
            elif item.incomplete:
                lines.append(f"Incomplete pipeline: {item.incomplete}")
            elif item.warning:
                lines.append(item.warning)
            return tooltip_html("\n".join(lines))
        return None


class _EntryFilter(QSortFilterProxyModel):
    """The rows of a `LibraryModel` whose entry `accepts` says yes to."""

    def __init__(self, source: LibraryModel, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.setSourceModel(source)

    def accepts(self, entry: LibraryEntry) -> bool:
        raise NotImplementedError

    def filterAcceptsRow(
        self, source_row: int, source_parent: QModelIndex | QPersistentModelIndex
    ) -> bool:
        index = self.sourceModel().index(source_row, 0, source_parent)
        entry = index.data(ItemRole)
        return entry is not None and self.accepts(entry)

    def entries(self) -> list[LibraryEntry]:
        """The accepted entries, in order."""
        return [self.index(row, 0).data(ItemRole) for row in range(self.rowCount())]


class GgufChatModels(_EntryFilter):
    """Readable GGUF language models with a copy that can be loaded now (the Chat picker)."""

    def accepts(self, entry: LibraryEntry) -> bool:
        from app.library.sniff import ModelKind

        return (
            entry.kind is ModelKind.LLM_GGUF
            and entry.usable_location is not None
            and entry.unreadable is None
        )


class ImagePipelines(_EntryFilter):
    """Readable, complete diffusion models (diffusers folders and single files) present now
    (the Images picker)."""

    def accepts(self, entry: LibraryEntry) -> bool:
        from app.images.choice import DIFFUSION_KINDS

        return (
            entry.kind in DIFFUSION_KINDS
            and entry.present
            and entry.unreadable is None
            and entry.incomplete is None  # it cannot run: the Library says why
        )

"""Downloads: every job with a progress bar, speed, ETA, state and errors; pause, resume, …

The manager runs on its own threads; this page polls its cheap `jobs()` snapshot on a timer
(every 200 ms while something is moving), so a fast download never floods the event loop.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from enum import Enum
from typing import TYPE_CHECKING

from PySide6.QtCore import QObject, Qt, QTimer, Signal
from PySide6.QtGui import QPainter, QShowEvent, QStandardItem, QStandardItemModel
from PySide6.QtWidgets import (
    QAbstractItemView,
    QApplication,
    QHBoxLayout,
    QHeaderView,
    QMessageBox,
    QPushButton,
    QStyle,
    QStyledItemDelegate,
    QStyleOptionProgressBar,
    QStyleOptionViewItem,
    QTableView,
    QVBoxLayout,
    QWidget,
)

from app.core import Core
from app.downloads.sources import Hub
from app.downloads.status import JobState
from app.units import format_bytes, format_duration
from ui import theme
from ui.confirm import ask, confirmation_box
from ui.icons import themed_icon
from ui.style import mark_error
from ui.table_model import Column, Index
from ui.tasks import run_blocking, spawn
from ui.widgets import heading_label, plain_label, tooltip_html

if TYPE_CHECKING:
    from app.downloads import DownloadManager, DownloadPlan, JobStatus

POLL_MS = 200
ACTIVE_STATES = frozenset({JobState.QUEUED, JobState.RUNNING, JobState.WAITING})
FINAL_STATES = frozenset({JobState.COMPLETED, JobState.FAILED, JobState.CANCELLED})


class JobAction(Enum):
    """What a button does to the selected job: its label, and the states it applies to."""

    PAUSE = ("Pause", ACTIVE_STATES, "pause")
    RESUME = ("Resume", frozenset({JobState.PAUSED}), "resume")
    CANCEL = ("Cancel", ACTIVE_STATES | {JobState.PAUSED}, "cancel")
    RETRY = ("Retry", frozenset({JobState.FAILED, JobState.CANCELLED}), "refresh")
    REMOVE = ("Remove", FINAL_STATES, "delete")

    def __init__(self, label: str, applies_to: frozenset[JobState], icon: str) -> None:
        self.label = label
        self.applies_to = applies_to
        self.icon = icon  # in resources/icons

    @property
    def accessible_name(self) -> str:
        return f"{self.label} the selected download"

    def allowed(self, state: JobState | None) -> bool:
        return state in self.applies_to

    def method(self, manager: DownloadManager) -> Callable[[int], bool]:
        """The manager's call for this action (it writes SQLite or deletes files: run it off
        the GUI thread)."""
        return {
            JobAction.PAUSE: manager.pause,
            JobAction.RESUME: manager.resume,
            JobAction.CANCEL: manager.cancel,
            JobAction.RETRY: manager.retry,
            JobAction.REMOVE: manager.remove,
        }[self]


def _state_text(job: JobStatus) -> str:
    return f"{job.state.value}: {job.error}" if job.error else job.state.value


def _model_text(job: JobStatus) -> str:
    """The repository's name first (what a person looks for), then the file, then its owner:
    a narrow column cuts the owner, never the name."""
    owner, _, name = job.repo_id.rpartition("/")
    hub = _OTHER_HUBS.get(job.hub)
    return (
        f"{name}  ·  {job.label}"
        + (f"  ·  {owner}" if owner else "")
        + (f"  ·  {hub}" if hub else "")
    )


_OTHER_HUBS = {Hub.CIVITAI: "Civitai", Hub.MODELSCOPE: "ModelScope"}  # Hugging Face: unnamed


COLUMNS: tuple[Column[JobStatus], ...] = (
    Column("Model", _model_text),
    Column("Progress", lambda job: f"{job.fraction:.0%}"),
    Column("Size", lambda job: f"{format_bytes(job.bytes_done)} / {format_bytes(job.total)}"),
    Column(
        "Speed",
        lambda job: f"{format_bytes(job.speed)}/s" if job.state is JobState.RUNNING else "",
    ),
    Column(
        "ETA",
        lambda job: (
            format_duration(job.eta)
            if job.eta is not None and job.state is JobState.RUNNING
            else ""
        ),
    ),
    Column("State", _state_text),
)
PROGRESS_COLUMN = 1


class DownloadsModel(QStandardItemModel):
    """Rows of `JobStatus`, kept in Qt's own item storage.

    A repaint then reads every cell in C++: answering `data()` from Python costs a GIL hand-off
    per cell and role, which download threads make slow (the table's repaint stalled the
    window 20-40 ms with four downloads running). `update` sets only the texts that changed.
    """

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(0, len(COLUMNS), parent)
        self.setHorizontalHeaderLabels([column.title for column in COLUMNS])
        self._jobs: list[JobStatus] = []

    def update(self, jobs: Sequence[JobStatus]) -> None:
        if [job.id for job in jobs] != [job.id for job in self._jobs]:
            self.setRowCount(0)
            for _job in jobs:
                items = [QStandardItem() for _ in COLUMNS]
                for item in items:
                    item.setEditable(False)
                self.appendRow(items)
            previous: list[JobStatus | None] = [None] * len(jobs)
        else:
            previous = list(self._jobs)
        for row, (job, before) in enumerate(zip(jobs, previous, strict=True)):
            if job != before:
                self._fill(row, job)
        self._jobs = list(jobs)

    def _fill(self, row: int, job: JobStatus) -> None:
        for column_number, column in enumerate(COLUMNS):
            item = self.item(row, column_number)
            text = column.text(job)
            if item.text() != text:
                item.setText(text)
        self.item(row, PROGRESS_COLUMN).setData(job.fraction, Qt.ItemDataRole.UserRole)
        # File names come from the hub; QToolTip guesses rich text (the cells are drawn plainly).
        self.item(row, 0).setToolTip(
            tooltip_html(
                "\n".join(
                    [f"{job.repo_id} · {job.label}"]
                    + [
                        f"{file.path}: {format_bytes(file.bytes_done)} / "
                        f"{format_bytes(file.size)} ({file.state.value})"
                        for file in job.files
                    ]
                )
            )
        )

    def job(self, row: int) -> JobStatus | None:
        return self._jobs[row] if 0 <= row < len(self._jobs) else None


class ProgressDelegate(QStyledItemDelegate):
    """Paints the progress column as a progress bar."""

    def paint(self, painter: QPainter, option: QStyleOptionViewItem, index: Index) -> None:
        fraction = index.data(Qt.ItemDataRole.UserRole)
        if not isinstance(fraction, float):
            super().paint(painter, option, index)
            return
        bar = QStyleOptionProgressBar()
        bar.rect = option.rect.adjusted(2, 3, -2, -3)
        bar.minimum, bar.maximum = 0, 1000
        bar.progress = int(fraction * 1000)
        bar.text = f"{fraction:.0%}"
        bar.textVisible = True
        style = QApplication.style()
        style.drawControl(QStyle.ControlElement.CE_ProgressBar, bar, painter)


class DownloadsPage(QWidget):
    """The queue, with buttons acting on the selected job."""

    jobsChanged = Signal()  # after each poll
    completed = Signal()  # a job finished downloading since the last poll

    def __init__(self, core: Core, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._core = core
        self._manager: DownloadManager | None = None
        self._completed: set[int] = set()
        self.asking: QMessageBox | None = None  # the confirmation on screen, if any
        self.model = DownloadsModel(self)
        self.view = QTableView()
        self.view.setAccessibleName("Downloads")
        self.view.setTabKeyNavigation(False)  # Tab leaves the table; arrows move within it
        self.view.setModel(self.model)
        self.view.setItemDelegateForColumn(PROGRESS_COLUMN, ProgressDelegate(self.view))
        self.view.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.view.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.view.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.view.verticalHeader().hide()
        header = self.view.horizontalHeader()
        header.setSectionResizeMode(0, QHeaderView.ResizeMode.Stretch)
        # Narrow enough to leave the model's name room in a 900-pixel window; the state
        # (which may hold an error) takes what is left.
        for column, width in ((1, 110), (2, 140), (3, 80), (4, 60), (5, 130)):
            header.setSectionResizeMode(column, QHeaderView.ResizeMode.Interactive)
            header.resizeSection(column, width)
        self.view.setTextElideMode(Qt.TextElideMode.ElideRight)
        self.view.setWordWrap(False)  # one line per job; the name keeps its start
        self.status = plain_label(
            "No downloads yet. Choose a file in Discover ▸ Files and press Download.",
            word_wrap=True,
        )
        self.buttons: dict[JobAction, QPushButton] = {}
        row = QHBoxLayout()
        for action in JobAction:
            button = QPushButton(themed_icon(action.icon), action.label)
            button.setEnabled(False)
            button.setAccessibleName(action.accessible_name)
            button.setToolTip(action.accessible_name)
            button.clicked.connect(functools.partial(self.act, action))
            self.buttons[action] = button
            row.addWidget(button)
        row.addStretch(1)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(*(theme.PAGE_MARGIN,) * 4)
        layout.setSpacing(theme.SPACING)
        layout.addWidget(heading_label("Downloads"))
        layout.addWidget(self.status)
        layout.addLayout(row)
        layout.addWidget(self.view, 1)

        self._poll = QTimer(self)
        self._poll.setInterval(POLL_MS)
        self._poll.timeout.connect(self.refresh)
        self.view.selectionModel().selectionChanged.connect(self._update_buttons)

    def attach(self, manager: DownloadManager) -> None:
        """Show `manager`'s jobs from now on."""
        self._manager = manager
        self.refresh()
        self._poll.start()

    def enqueue(self, plan: DownloadPlan) -> None:
        """Queue a download (the manager is started on first use, off the GUI thread)."""
        spawn(self._enqueue(plan))

    async def _enqueue(self, plan: DownloadPlan) -> None:
        manager = await run_blocking(self._core.start_downloads)
        await run_blocking(manager.enqueue, plan)
        self.attach(manager)

    def selected_job(self) -> JobStatus | None:
        index = self.view.currentIndex()
        return self.model.job(index.row()) if index.isValid() else None

    def refresh(self) -> None:
        if self._manager is None:
            return
        jobs = self._manager.jobs()
        self.model.update(jobs)
        done = {job.id for job in jobs if job.state is JobState.COMPLETED}
        if done - self._completed:
            self.completed.emit()
        self._completed = done
        active = [job for job in jobs if job.state in ACTIVE_STATES]
        failed = [job for job in jobs if job.state is JobState.FAILED]
        if jobs:
            speed = sum(job.speed for job in active)
            self.status.setText(
                f"{len(active)} active, {len(failed)} failed, {len(jobs)} in all"
                + (f" — {format_bytes(speed)}/s" if speed else "")
            )
        mark_error(self.status, bool(failed))
        if not active and not self.isVisible():
            self._poll.stop()  # idle and unseen: nothing to redraw
        elif not self._poll.isActive():
            self._poll.start()
        self._update_buttons()
        self.jobsChanged.emit()

    async def _confirm_cancel(self) -> bool:
        """Cancelling deletes what was downloaded so far: ask, with "Keep downloading" as the
        answer Enter and Esc give."""
        job = self.selected_job()
        name = f"{job.repo_id} ({job.label})" if job is not None else "this download"
        done = format_bytes(job.bytes_done) if job is not None else ""
        self.asking = confirmation_box(
            self,
            "Cancel download",
            f"Cancel the download of {name}? The {done} downloaded so far is deleted; "
            "Pause keeps it instead.",
            action="Cancel download",
            keep="Keep downloading",
        )
        try:
            return await ask(self.asking)
        finally:
            self.asking = None

    def showEvent(self, event: QShowEvent) -> None:
        super().showEvent(event)
        if self._manager is not None:
            self._poll.start()

    def _update_buttons(self) -> None:
        job = self.selected_job()
        state = job.state if job else None
        for action, button in self.buttons.items():
            button.setEnabled(action.allowed(state))

    def act(self, action: JobAction) -> None:
        """Apply `action` to the selected job, off the GUI thread (the manager writes SQLite
        and may delete partial files)."""
        job = self.selected_job()
        if self._manager is None or job is None:
            return
        spawn(self._act(action, self._manager, job.id))

    async def _act(self, action: JobAction, manager: DownloadManager, job_id: int) -> None:
        if action is JobAction.CANCEL and not await self._confirm_cancel():
            return
        for button in self.buttons.values():  # no second press while this one runs
            button.setEnabled(False)
        try:
            await run_blocking(action.method(manager), job_id)
        except KeyError:
            pass  # the job is gone already: the refresh shows it
        finally:
            self.refresh()

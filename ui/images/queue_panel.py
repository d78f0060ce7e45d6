"""The image queue on the Images page: the jobs in the order they run, each with its state
(and its step while it runs), the queue's progress, and moving, cancelling and repeating a job
with a new seed.

The queue itself (`app.images.queue.ImageQueue`) saves every change in the app database and
runs jobs on its own thread; this panel reads it on a worker (a SQLite query) at most every
`REFRESH_MS`, and only when it changed or a job is running.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable

from PySide6.QtCore import QTimer, Signal
from PySide6.QtWidgets import (
    QGridLayout,
    QGroupBox,
    QListWidget,
    QListWidgetItem,
    QProgressBar,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from app.images.job import ImageJob, JobSnapshot
from app.images.queue import ImageQueue, QueuedJob, QueueError, QueueState
from ui.tasks import run_blocking, spawn
from ui.widgets import PlainLabel

REFRESH_MS = 250
_ID_ROLE = 0x0100 + 1  # Qt.ItemDataRole.UserRole + 1


def job_line(job: QueuedJob, snapshot: JobSnapshot | None = None) -> str:
    """One job as its row says it: state (or step), prompt, seed, model."""
    state = job.state.value
    if job.state is QueueState.RUNNING and snapshot is not None:
        step = snapshot.step
        state = f"step {step.step}/{step.steps}" if step is not None else snapshot.phase.value
    prompt = " ".join(job.params.prompt.split())
    prompt = prompt if len(prompt) <= 40 else prompt[:39] + "…"
    loras = f" · {len(job.params.loras)} LoRA" if job.params.loras else ""
    hires = f" · hires x{job.params.hires_scale:g}" if job.params.hires_scale else ""
    error = f" — {job.error}" if job.error else ""
    seed = f"seed {job.params.seed}"
    return f"{state} · {prompt or '(no prompt)'} · {seed}{loras}{hires} · {job.model.name}{error}"


class QueuePanel(QGroupBox):
    """The queue's jobs and the buttons that change them."""

    refreshed = Signal(int, int)  # jobs ended, jobs listed

    def __init__(
        self, queue: Callable[[], ImageQueue | None], parent: QWidget | None = None
    ) -> None:
        super().__init__("Queue", parent)
        self._queue = queue
        self._changed = threading.Event()
        self._changed.set()
        self._refreshing = False
        self._running = False
        self.jobs = QListWidget()
        self.jobs.setAccessibleName("Queued image jobs")
        self.jobs.setMinimumHeight(48)
        self.progress = QProgressBar()
        self.progress.setAccessibleName("Queue progress")
        self.progress.setTextVisible(True)
        self.summary = PlainLabel()
        self.up_button = QPushButton("Up")
        self.down_button = QPushButton("Down")
        self.cancel_button = QPushButton("Cancel job")
        self.repeat_button = QPushButton("Repeat")
        self.repeat_button.setToolTip("Queue this job again with a new seed")
        self.clear_button = QPushButton("Clear finished")
        for button, name in (
            (self.up_button, "Move the job up"),
            (self.down_button, "Move the job down"),
            (self.cancel_button, "Cancel the queued job"),
            (self.repeat_button, "Repeat the job with a new seed"),
            (self.clear_button, "Clear finished jobs"),
        ):
            button.setAccessibleName(name)
        # Two rows: the panel shares the window's right side, which is narrow at 900x600.
        buttons = QGridLayout()
        buttons.setContentsMargins(0, 0, 0, 0)
        for place, button in enumerate(
            (
                self.up_button,
                self.down_button,
                self.repeat_button,
                self.cancel_button,
                self.clear_button,
            )
        ):
            buttons.addWidget(button, place // 3, place % 3)
        layout = QVBoxLayout(self)
        layout.addWidget(self.summary)
        layout.addWidget(self.progress)
        layout.addWidget(self.jobs, 1)
        layout.addLayout(buttons)
        self.up_button.clicked.connect(lambda: self._move(-1))
        self.down_button.clicked.connect(lambda: self._move(+1))
        self.cancel_button.clicked.connect(lambda: self._act(lambda queue, job: queue.cancel(job)))
        self.repeat_button.clicked.connect(lambda: self._act(lambda queue, job: queue.repeat(job)))
        self.clear_button.clicked.connect(lambda: self._act_all(ImageQueue.clear_finished))
        self._timer = QTimer(self)
        self._timer.setInterval(REFRESH_MS)
        self._timer.timeout.connect(self._tick)
        self._timer.start()

    def changed(self) -> None:
        """The queue changed (any thread): read it again at the next tick."""
        self._changed.set()

    def selected_id(self) -> int | None:
        item = self.jobs.currentItem()
        value = item.data(_ID_ROLE) if item is not None else None
        return int(value) if isinstance(value, int) else None

    def stop(self) -> None:
        self._timer.stop()

    # -- inside --------------------------------------------------------------------------

    def _tick(self) -> None:
        if self._refreshing or not (self._changed.is_set() or self._running):
            return
        try:
            asyncio.get_running_loop()
        except RuntimeError:  # the window is closing: its loop has ended
            self._timer.stop()
            return
        self._changed.clear()
        self._refreshing = True
        spawn(self._refresh())

    async def _refresh(self) -> None:
        queue = self._queue()
        if queue is None:  # not opened yet
            self._refreshing = False
            self._changed.set()
            return
        try:
            jobs, current = await run_blocking(_read, queue)
        finally:
            self._refreshing = False
        self._running = current is not None
        snapshot = current[1].snapshot() if current is not None else None
        running_id = current[0] if current is not None else None
        selected = self.selected_id()
        self.jobs.clear()
        for job in jobs:
            item = QListWidgetItem(job_line(job, snapshot if job.id == running_id else None))
            item.setData(_ID_ROLE, job.id)
            self.jobs.addItem(item)
            if job.id == selected:
                self.jobs.setCurrentItem(item)
        ended = sum(1 for job in jobs if not job.waiting)
        self.progress.setRange(0, max(1, len(jobs)))
        self.progress.setValue(ended)
        waiting = len(jobs) - ended
        self.summary.setText(
            f"{waiting} job{'s' if waiting != 1 else ''} waiting, {ended} finished"
            if jobs
            else "Nothing queued."
        )
        self.refreshed.emit(ended, len(jobs))

    def _move(self, delta: int) -> None:
        job_id = self.selected_id()
        if job_id is None:
            return
        row = self.jobs.currentRow()

        def move(queue: ImageQueue, job: int) -> None:
            waiting = [item.id for item in queue.jobs() if item.state is QueueState.QUEUED]
            if job in waiting:
                queue.move(job, max(0, waiting.index(job) + delta))

        self._act(move)
        self.jobs.setCurrentRow(max(0, row + delta))

    def _act(self, action: Callable[[ImageQueue, int], object]) -> None:
        job_id = self.selected_id()
        if job_id is not None:
            spawn(self._run(lambda queue: action(queue, job_id)))

    def _act_all(self, action: Callable[[ImageQueue], object]) -> None:
        spawn(self._run(action))

    async def _run(self, action: Callable[[ImageQueue], object]) -> None:
        queue = self._queue()
        if queue is None:
            return
        try:
            await run_blocking(action, queue)
        except QueueError as error:
            self.summary.setText(str(error))
        self.changed()


def _read(queue: ImageQueue) -> tuple[list[QueuedJob], tuple[int, ImageJob] | None]:
    return queue.jobs(), queue.current()

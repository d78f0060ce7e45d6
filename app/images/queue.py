"""The image queue: jobs (a model and every setting) that run one after another, kept in the
app database so a queue filled before quitting — or before a crash — finishes after a start.

`ImageQueue` saves each change before it reports it (as the download manager does): `add`,
`add_variations`, `move`, `cancel` and `repeat` write the `image_queue` table first; the
runner thread takes the first queued job, marks it running, runs it as an `ImageJob` (the
same workflow as `modeldeck image`) and records how it ended. A job found "running" when the
queue opens was cut off by a killed app: it goes back to "queued" at its place and runs again
(its seed was fixed when it was added, so it makes the same images); each image is recorded
as it is made, so a batch cut off after some of its images makes only the rest.

Follow it with `on_change` (called on the changing thread, with nothing: read `jobs()`), and
`current()`, the running `ImageJob`, whose `snapshot()` a screen polls for steps. A job added
with `watch=True` (the page's Generate) is followed by its id: `watched(id)` gives its
`ImageJob` once it starts (or why it could not start), however soon it ends.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Any

from app.errors import AppError
from app.images.engine import ImageEngine
from app.images.gallery import Gallery
from app.images.job import ImageJob, JobPhase, JobUpdate
from app.images.messages import GeneratedImage
from app.images.params import ImageParams, ModelRef
from app.store import Database

__all__ = ["MAX_VARIATIONS", "ImageQueue", "QueueError", "QueueState", "QueuedJob"]

MAX_VARIATIONS = 100  # jobs one "Generate N variations" adds


class QueueState(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"
    CANCELLED = "cancelled"


WAITING = frozenset({QueueState.QUEUED, QueueState.RUNNING})


class QueueError(AppError, LookupError):
    """No such job in the queue, or it cannot be changed that way (it has finished)."""


@dataclass(frozen=True, kw_only=True)
class QueuedJob:
    """One job of the queue, as saved."""

    id: int
    position: int
    state: QueueState
    model: ModelRef
    params: ImageParams  # the seed is fixed
    size_follows_model: bool
    error: str | None
    images: tuple[Path, ...]
    created_at: str
    finished_at: str | None

    @property
    def waiting(self) -> bool:
        """Queued or running: it has not ended."""
        return self.state in WAITING


_COLUMNS = "id, position, state, model, params, follow_size, error, images, created_at, finished_at"


class ImageQueue:
    """The persistent queue of image jobs and the thread that runs them.

    Args:
        database: the app database (migration 10 made `image_queue`).
        engine: the image engine, asked for when a job starts (the core builds it lazily).
        gallery: where images go.
        on_change: called after every saved change (on the thread that made it).
    """

    def __init__(
        self,
        database: Database,
        engine: Callable[[], ImageEngine],
        gallery: Callable[[], Gallery],
        *,
        on_change: Callable[[], None] | None = None,
    ) -> None:
        self._database = database
        self._engine = engine
        self._gallery = gallery
        self._on_change = on_change
        self._lock = threading.Condition()
        self._current: ImageJob | None = None
        self._current_id: int | None = None
        self._stopping = False
        # Jobs added with `watch=True`: None till they start, then their ImageJob (or why
        # they could not start), kept until `unwatch`.
        self._watched: dict[int, ImageJob | AppError | OSError | None] = {}
        self._cancelled: set[int] = set()  # cancelled after being claimed, before they ran
        self._started = False  # `start` was called: jobs added later run too
        self._thread: threading.Thread | None = None
        self._recover()

    # -- reading ---------------------------------------------------------------------------

    def jobs(self) -> list[QueuedJob]:
        """Every job, in the order they run (finished ones keep their place)."""
        rows = self._database.fetch_all(f"SELECT {_COLUMNS} FROM image_queue ORDER BY position, id")
        return [_job(row) for row in rows]

    def job(self, job_id: int) -> QueuedJob:
        """Raises QueueError: no such job."""
        row = self._database.fetch_one(
            f"SELECT {_COLUMNS} FROM image_queue WHERE id = ?", (job_id,)
        )
        if row is None:
            raise QueueError(f"no image job {job_id} in the queue")
        return _job(row)

    def current(self) -> tuple[int, ImageJob] | None:
        """The running job's id and its `ImageJob` (poll its `snapshot`), or None."""
        with self._lock:
            if self._current is None or self._current_id is None:
                return None
            return self._current_id, self._current

    def progress(self) -> tuple[int, int]:
        """(jobs ended, jobs listed): the queue's progress bar."""
        jobs = self.jobs()
        return sum(1 for job in jobs if not job.waiting), len(jobs)

    # -- changing ----------------------------------------------------------------------------

    def watched(self, job_id: int) -> ImageJob | AppError | OSError | None:
        """The `ImageJob` running (or that ran) job `job_id`, added with `watch=True`; the
        error when it could not start (no engine); None while it waits its turn."""
        with self._lock:
            return self._watched.get(job_id)

    def unwatch(self, job_id: int) -> None:
        """Stop keeping job `job_id`'s `ImageJob` for `watched`."""
        with self._lock:
            self._watched.pop(job_id, None)

    def add(
        self,
        model: ModelRef,
        params: ImageParams,
        *,
        size_follows_model: bool = False,
        watch: bool = False,
    ) -> QueuedJob:
        """Queue one job at the end (its seed is fixed now, so it is recorded). With `watch`,
        `watched(job.id)` gives its `ImageJob` once it starts."""
        params = params.with_seed()
        now = _now()
        # Under the lock: the runner (which picks jobs under it) cannot start this one
        # before it is marked as watched.
        with self._lock, self._database.transaction() as connection:
            (last,) = connection.execute(
                "SELECT COALESCE(MAX(position), 0) FROM image_queue"
            ).fetchone()
            cursor = connection.execute(
                "INSERT INTO image_queue (position, state, model, params, follow_size, error,"
                " images, created_at) VALUES (?, ?, ?, ?, ?, NULL, '[]', ?)",
                (
                    int(last) + 1,
                    QueueState.QUEUED.value,
                    json.dumps(model.to_json()),
                    json.dumps(params.to_json()),
                    int(size_follows_model),
                    now,
                ),
            )
            job_id = int(cursor.lastrowid or 0)
            if watch:
                self._watched[job_id] = None
        self._changed(wake=True)
        return self.job(job_id)

    def add_variations(
        self,
        model: ModelRef,
        params: ImageParams,
        count: int,
        *,
        size_follows_model: bool = False,
    ) -> list[QueuedJob]:
        """Queue `count` jobs of `params`, each with a new random seed.

        Raises:
            ValueError: `count` is not between 1 and `MAX_VARIATIONS`.
        """
        if not 1 <= count <= MAX_VARIATIONS:
            raise ValueError(f"variations must be between 1 and {MAX_VARIATIONS}, not {count}")
        return [
            self.add(model, replace(params, seed=None), size_follows_model=size_follows_model)
            for _ in range(count)
        ]

    def repeat(self, job_id: int) -> QueuedJob:
        """Queue the job again, with a new random seed (every other setting the same)."""
        job = self.job(job_id)
        return self.add(
            job.model, replace(job.params, seed=None), size_follows_model=job.size_follows_model
        )

    def move(self, job_id: int, index: int) -> None:
        """Put a waiting job at `index` among the waiting jobs (0: next to run; a running job
        stays where it is).

        Raises:
            QueueError: no such job, or it has ended.
        """
        job = self.job(job_id)
        if job.state is not QueueState.QUEUED:
            raise QueueError(f"image job {job_id} is {job.state.value}: it cannot move")
        with self._database.transaction() as connection:
            queued = [
                int(row[0])
                for row in connection.execute(
                    "SELECT id FROM image_queue WHERE state = ? ORDER BY position, id",
                    (QueueState.QUEUED.value,),
                )
            ]
            positions = [
                int(row[0])
                for row in connection.execute(
                    "SELECT position FROM image_queue WHERE state = ? ORDER BY position, id",
                    (QueueState.QUEUED.value,),
                )
            ]
            queued.remove(job_id)
            queued.insert(max(0, min(index, len(queued))), job_id)
            # The queued jobs take the same positions in their new order: finished and running
            # jobs keep theirs.
            for position, moved in zip(sorted(positions), queued, strict=True):
                connection.execute(
                    "UPDATE image_queue SET position = ? WHERE id = ?", (position, moved)
                )
        self._changed()

    def cancel(self, job_id: int) -> QueueState:
        """Cancel a queued job, or stop the running one after its current step; the state it
        was in (QUEUED: it never ran, and is CANCELLED now).

        Raises:
            QueueError: no such job.
        """
        with self._lock:  # the runner claims jobs under it: the state cannot change meanwhile
            job = self.job(job_id)
            if job.state is QueueState.RUNNING or self._current_id == job_id:
                running = self._current if self._current_id == job_id else None
                if running is not None:
                    running.cancel()  # the runner records CANCELLED when it ends
                else:  # claimed, its ImageJob not made yet: `_run_one` cancels it
                    self._cancelled.add(job_id)
                return QueueState.RUNNING
            if job.state is QueueState.QUEUED:
                self._record_end(job_id, QueueState.CANCELLED)
        if job.state is QueueState.QUEUED:
            self._changed()
        return job.state

    def clear_finished(self) -> None:
        """Forget the jobs that ended (their images stay in the gallery)."""
        self._database.execute(
            "DELETE FROM image_queue WHERE state NOT IN (?, ?)",
            (QueueState.QUEUED.value, QueueState.RUNNING.value),
        )
        self._changed()

    # -- running -----------------------------------------------------------------------------

    def start(self) -> None:
        """Run what is queued, on the runner thread; it ends when nothing is left, and each
        `add` after a `start` starts it again."""
        with self._lock:
            self._started = True
            self._stopping = False
            self._run_thread()

    def _run_thread(self) -> None:
        """Start the runner unless it runs (called holding the lock)."""
        if self._thread is None and self._started and not self._stopping:
            self._thread = threading.Thread(target=self._run, name="image queue", daemon=True)
            self._thread.start()

    def stop(self, *, timeout: float = 5.0) -> None:
        """Stop the runner: the running job is cancelled and queued again, to run at the next
        start."""
        with self._lock:
            self._stopping = True
            self._started = False
            thread, self._thread = self._thread, None
            running = self._current
            self._lock.notify_all()
        if running is not None:
            running.cancel()
        if thread is not None:
            thread.join(timeout)

    def wait_idle(self, timeout: float) -> bool:
        """Block until no job waits (or `timeout` seconds pass); whether it is idle."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not any(job.waiting for job in self.jobs()):
                return True
            time.sleep(0.05)
        return False

    def _run(self) -> None:
        while True:
            with self._lock:
                if self._stopping:
                    return
                job = self._next()
                if job is None:  # nothing left: the next `add` starts a runner again
                    self._thread = None
                    return
                self._current_id = job.id  # claimed: `cancel` sees it at once
            self._run_one(job)

    def _next(self) -> QueuedJob | None:
        row = self._database.fetch_one(
            f"SELECT {_COLUMNS} FROM image_queue WHERE state = ? ORDER BY position, id LIMIT 1",
            (QueueState.QUEUED.value,),
        )
        return _job(row) if row is not None else None

    def _run_one(self, queued: QueuedJob) -> None:
        self._database.execute(
            "UPDATE image_queue SET state = ? WHERE id = ? AND state = ?",
            (QueueState.RUNNING.value, queued.id, QueueState.QUEUED.value),
        )
        # Images a run that a kill or a quit cut off made already: this run makes the rest.
        made = [str(path) for path in queued.images]
        params = _rest_of_batch(queued.params, len(made))
        if params is None:  # all made; only the end was not recorded
            with self._lock:
                self._current_id = None
            self._finish(queued.id, QueueState.DONE, images=made)
            return
        try:
            engine, gallery = self._engine(), self._gallery()
        except (AppError, OSError) as error:
            with self._lock:
                self._current_id = None
                self._cancelled.discard(queued.id)
                if queued.id in self._watched:
                    self._watched[queued.id] = error
            self._finish(queued.id, QueueState.FAILED, error=str(error))
            return

        def record(update: JobUpdate) -> None:
            """Each image, saved as it is made (one small commit): a run cut off by a kill
            resumes after it instead of making it again."""
            if isinstance(update, GeneratedImage):
                made.append(str(update.path))
                self._database.execute(
                    "UPDATE image_queue SET images = ? WHERE id = ?", (json.dumps(made), queued.id)
                )

        job = ImageJob(
            engine,
            gallery,
            queued.model,
            params,
            size_follows_model=queued.size_follows_model,
            on_update=record,
        )
        with self._lock:
            self._current, self._current_id = job, queued.id
            if queued.id in self._watched:
                self._watched[queued.id] = job
            if queued.id in self._cancelled:
                self._cancelled.discard(queued.id)
                job.cancel()  # it ends CANCELLED before asking anything of the engine
        self._changed()
        job.start()
        snapshot = job.wait()
        with self._lock:
            self._current, self._current_id = None, None
            stopping = self._stopping
        images = made
        if snapshot.phase is JobPhase.DONE:
            self._finish(queued.id, QueueState.DONE, images=images)
        elif snapshot.phase is JobPhase.CANCELLED and stopping:
            # The app is quitting: the job runs again at the next start.
            self._database.execute(
                "UPDATE image_queue SET state = ? WHERE id = ?",
                (QueueState.QUEUED.value, queued.id),
            )
            self._changed()
        elif snapshot.phase is JobPhase.CANCELLED:
            self._finish(queued.id, QueueState.CANCELLED, images=images)
        else:
            failure = snapshot.error
            text = getattr(failure, "message", None) or str(failure or "failed")
            self._finish(queued.id, QueueState.FAILED, error=" ".join(text.split()), images=images)

    # -- inside ------------------------------------------------------------------------------

    def _recover(self) -> None:
        """Jobs left running by an app that was killed run again."""
        self._database.execute(
            "UPDATE image_queue SET state = ? WHERE state = ?",
            (QueueState.QUEUED.value, QueueState.RUNNING.value),
        )

    def _finish(
        self,
        job_id: int,
        state: QueueState,
        *,
        error: str | None = None,
        images: list[str] | None = None,
    ) -> None:
        self._record_end(job_id, state, error=error, images=images)
        self._changed()

    def _record_end(
        self,
        job_id: int,
        state: QueueState,
        *,
        error: str | None = None,
        images: list[str] | None = None,
    ) -> None:
        self._database.execute(
            "UPDATE image_queue SET state = ?, error = ?, images = ?, finished_at = ? WHERE id = ?",
            (state.value, error, json.dumps(images or []), _now(), job_id),
        )

    def _changed(self, *, wake: bool = False) -> None:
        if wake:
            with self._lock:
                self._run_thread()
                self._lock.notify_all()
        if self._on_change is not None:
            self._on_change()


def _rest_of_batch(params: ImageParams, made: int) -> ImageParams | None:
    """`params` for the images of its batch after the first `made` (the same seeds they
    would have had); None when none is left."""
    if made <= 0:
        return params
    if made >= params.batch:
        return None
    return replace(params.for_image(made), batch=params.batch - made)


def _job(row: tuple[Any, ...]) -> QueuedJob:
    job_id, position, state, model, params, follow, error, images, created, finished = row
    paths = json.loads(images) if images else []
    return QueuedJob(
        id=int(job_id),
        position=int(position),
        state=QueueState(state),
        model=ModelRef.from_json(json.loads(model)),
        params=ImageParams.from_json(json.loads(params)),
        size_follows_model=bool(follow),
        error=error,
        images=tuple(Path(path) for path in paths if isinstance(path, str)),
        created_at=str(created),
        finished_at=finished,
    )


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="microseconds")

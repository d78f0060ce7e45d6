"""The download queue: jobs persisted in the app database, run by a few worker threads.

Every state change is written to the database before it is reported, so a new process (after
a quit, a crash or a kill -9) finds the queue as it was and continues each file from the bytes
on disk. `jobs()` reads only memory under one short lock: a front end may poll it every
100 ms from any thread. `subscribe` reports state changes (not progress) from worker threads.
"""

from __future__ import annotations

import functools
import logging
import shutil
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Self

from app.downloads.placement import Placement
from app.downloads.plan import DownloadPlan, PlannedFile, check_plan
from app.downloads.speed import SpeedMeter
from app.downloads.status import ErrorKind, FileState, FileStatus, JobState, JobStatus
from app.downloads.store import JobStore, StoredJob, now_iso
from app.downloads.transfer import (
    FileBusyError,
    RetryPolicy,
    StopRequested,
    StopSignal,
    check_free_space,
)
from app.errors import AppError, DiskFullError, HubUnreachableError
from app.hub.untrusted import UnsafeHubDataError
from app.store import Database
from app.subscribers import Subscribers

_log = logging.getLogger(__name__)

_PAUSE, _CANCEL, _SHUTDOWN = "pause", "cancel", "shutdown"
_UNFINISHED = (JobState.QUEUED, JobState.RUNNING, JobState.WAITING, JobState.PAUSED)
_BUSY_WAIT_MIN_S = 0.05  # a blob locked by another download is asked for again this often

JobCallback = Callable[[JobStatus], None]


def _for_display(plan: DownloadPlan) -> DownloadPlan:
    """`plan` with every field made text or a size, for a job that is shown but never run."""

    def text(value: object) -> str:
        return value if isinstance(value, str) else repr(value)

    def size(value: object) -> int:
        if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
            return value
        return 0

    return DownloadPlan(
        repo_id=text(plan.repo_id),
        revision=text(plan.revision),
        label=text(plan.label),
        files=tuple(
            PlannedFile(path=text(f.path), size=size(f.size), sha256=None, etag=text(f.etag))
            for f in plan.files
        ),
        ref=None,
        source=plan.source,
    )


def free_disk_bytes(path: Path) -> int:
    """Free bytes on the disk that holds `path`."""
    return shutil.disk_usage(path).free


@dataclass(eq=False)
class _File:
    planned: PlannedFile
    state: FileState
    bytes_done: int


@dataclass(eq=False)
class _Job:
    id: int
    endpoint: str
    plan: DownloadPlan
    files: list[_File]
    state: JobState
    error: str | None
    error_kind: ErrorKind | None
    created_at: str
    finished_at: str | None
    owned: bool = True  # False: left unfinished by another run, run only if enqueued again
    stop: StopSignal | None = None  # set while a worker runs the job
    not_before: float = 0.0  # a waiting job is tried again from this time.monotonic() on
    meter: SpeedMeter = field(default_factory=SpeedMeter)
    refused: str | None = None  # why a saved plan cannot be run (see `_job_from_store`)

    @property
    def bytes_done(self) -> int:
        return sum(file.bytes_done for file in self.files)

    @property
    def is_running(self) -> bool:
        return self.stop is not None


class DownloadManager:
    """Downloads plans, `concurrency` jobs at a time (a job's files in turn): into the HF
    cache, or where the plan's source says for another hub (`app.downloads.placement`).

    Args:
        database: the app database; the queue lives in it.
        endpoint: the Hugging Face hub new jobs download from (another hub's plan names its
            own in its source).
        token: sent to `endpoint` only (a job queued for another endpoint goes anonymous).
        cache_dir: the HF hub cache.
        concurrency: jobs that run at once.
        free_space: free bytes on the disk of a folder (for the check before a job starts).
        clock: seconds, for speed and ETA.
        retry: retries, backoff and the stall timeout of each file.
        offline_wait: when the hub cannot be reached, a job waits this long and tries again;
            None: it fails instead (what a command line wants).
        resume_unfinished: run the jobs a previous process left unfinished; if False they are
            left alone (and hidden) unless the same plan is enqueued again.
    """

    def __init__(
        self,
        database: Database,
        *,
        endpoint: str,
        token: str | None = None,
        cache_dir: Path,
        concurrency: int = 2,
        free_space: Callable[[Path], int] = free_disk_bytes,
        clock: Callable[[], float] = time.monotonic,
        retry: RetryPolicy | None = None,
        offline_wait: float | None = 30.0,
        resume_unfinished: bool = True,
    ) -> None:
        if concurrency < 1:
            raise ValueError("concurrency must be at least 1")
        self._database = database
        self._store = JobStore(database)
        self._endpoint = endpoint.rstrip("/")
        self._token = token
        self._cache_dir = Path(cache_dir)
        self._concurrency = concurrency
        self._free_space = free_space
        self._clock = clock
        self._retry = retry or RetryPolicy()
        self._offline_wait = offline_wait
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)  # a job became runnable or changed state
        self._jobs: dict[int, _Job] = {}
        self._events: list[JobStatus] = []  # state changes to report once the lock is released
        self._subscribers: Subscribers[JobStatus] = Subscribers("download")
        self._workers: list[threading.Thread] = []
        self._started = self._stopping = False
        for stored in self._store.load():
            self._jobs[stored.id] = self._job_from_store(stored, resume_unfinished)

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> None:
        """Start the workers; queued jobs (and those a previous process left) begin to run."""
        with self._lock:
            if self._started:
                raise RuntimeError("the download manager was started already")
            self._started = True
        for number in range(self._concurrency):
            worker = threading.Thread(target=self._work, name=f"download-{number}", daemon=True)
            self._workers.append(worker)
            worker.start()

    def shutdown(self, *, wait: bool = True, timeout: float | None = None) -> None:
        """Stop the workers. Running jobs stop and stay queued for the next start.

        A worker stops between two chunks or during a wait; one blocked on a stalled
        connection stops when the stall timeout ends it. `timeout` bounds the wait: the
        workers are daemon threads, and every byte they wrote is on disk already.
        """
        with self._lock:
            self._stopping = True
            for job in self._jobs.values():
                if job.stop is not None:
                    job.stop.request(_SHUTDOWN)
            self._changed.notify_all()
        if not wait:
            return
        deadline = None if timeout is None else time.monotonic() + timeout
        for worker in self._workers:
            worker.join(None if deadline is None else max(0.0, deadline - time.monotonic()))

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.shutdown()

    # -- commands ----------------------------------------------------------------------------

    def enqueue(self, plan: DownloadPlan) -> int:
        """Queue `plan`; returns the job id.

        The same plan (repository, commit, files) still unfinished is not queued twice: that
        job's id is returned, and it is resumed if it was paused.

        Raises:
            UnsafeHubDataError: a name or hash in `plan` is refused (`check_plan`); nothing
                is saved.
        """
        check_plan(plan)  # before it is saved: a saved job is run again at every start
        with self._lock:
            same = self._unfinished_like(plan)
            if same is not None:
                same.owned = True
                if same.state is JobState.PAUSED:
                    self._set_state(same, JobState.QUEUED)
                else:
                    self._save_state(same)  # a job adopted from another run is ours now
                self._changed.notify_all()
                job_id = same.id
            else:
                endpoint = self._endpoint_of(plan)
                job_id, created = self._store.create(plan, endpoint=endpoint)
                job = _Job(
                    id=job_id,
                    endpoint=endpoint,
                    plan=plan,
                    files=[
                        self._file(plan, index, FileState.PENDING)
                        for index in range(len(plan.files))
                    ],
                    state=JobState.QUEUED,
                    error=None,
                    error_kind=None,
                    created_at=created,
                    finished_at=None,
                )
                self._jobs[job_id] = job
                self._events.append(self._status(job))
                self._changed.notify_all()
        self._emit()
        return job_id

    def pause(self, job_id: int) -> bool:
        """Pause a queued, waiting or running job (its partial files stay). False if not."""
        with self._lock:
            job = self._get(job_id)
            if job.state not in (JobState.QUEUED, JobState.WAITING, JobState.RUNNING):
                return False
            self._set_state(job, JobState.PAUSED)
            if job.stop is not None:
                job.stop.request(_PAUSE)
        self._emit()
        return True

    def resume(self, job_id: int) -> bool:
        """Queue a paused job again; it continues from the bytes on disk. False if not paused."""
        with self._lock:
            job = self._get(job_id)
            if job.state is not JobState.PAUSED:
                return False
            self._set_state(job, JobState.QUEUED)
            self._changed.notify_all()
        self._emit()
        return True

    def cancel(self, job_id: int) -> bool:
        """Cancel an unfinished job and delete its partial files. False if it was finished."""
        with self._lock:
            job = self._get(job_id)
            if job.state.is_final:
                return False
            self._set_state(job, JobState.CANCELLED, finished_at=now_iso())
            if job.stop is not None:
                job.stop.request(_CANCEL)  # the worker deletes the partial files when it stops
            else:
                self._delete_partials(job)
        self._emit()
        return True

    def retry(self, job_id: int) -> bool:
        """Queue a failed or cancelled job again. False if it is neither."""
        with self._lock:
            job = self._get(job_id)
            if job.state not in (JobState.FAILED, JobState.CANCELLED) or job.is_running:
                return False
            if job.refused is not None:  # its plan cannot run, now or later
                return False
            for file in job.files:
                if file.state is FileState.FAILED:
                    file.state = FileState.PENDING
                    self._store.set_file_state(job.id, file.planned.path, FileState.PENDING)
            self._set_state(job, JobState.QUEUED)
            self._changed.notify_all()
        self._emit()
        return True

    def remove(self, job_id: int) -> bool:
        """Forget a completed, failed or cancelled job (its files stay in the cache)."""
        with self._lock:
            job = self._get(job_id)
            if not job.state.is_final or job.is_running:
                return False
            self._store.delete(job_id)
            del self._jobs[job_id]
        return True

    # -- what a front end reads ----------------------------------------------------------------

    def jobs(self) -> list[JobStatus]:
        """A snapshot of every job, oldest first. Cheap: no disk or database access."""
        with self._lock:
            return [self._status(job) for job in self._jobs.values() if job.owned]

    def job(self, job_id: int) -> JobStatus:
        """A snapshot of one job. Raises `KeyError` for an unknown id."""
        with self._lock:
            return self._status(self._get(job_id))

    def subscribe(self, callback: JobCallback) -> Callable[[], None]:
        """Call `callback(status)` after every state change (from the thread that made it).

        Returns a function that unsubscribes. Exceptions in callbacks are logged and ignored.
        """
        return self._subscribers.add(callback)

    def wait(self, job_id: int, timeout: float | None = None) -> JobStatus:
        """Block until the job is completed, failed, cancelled or paused (or `timeout` passes)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._lock:
            while True:
                job = self._get(job_id)
                settled = job.state.is_final or job.state is JobState.PAUSED
                if settled and not job.is_running:
                    return self._status(job)
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    return self._status(job)
                self._changed.wait(left)

    # -- the workers ---------------------------------------------------------------------------

    def _work(self) -> None:
        while True:
            with self._lock:
                job = self._claim()
                while job is None:
                    if self._stopping:
                        return
                    self._changed.wait(self._next_wakeup())
                    job = self._claim()
            self._emit()
            self._run(job)

    def _claim(self) -> _Job | None:
        if self._stopping:
            return None
        now = time.monotonic()
        for job in self._jobs.values():
            runnable = job.state is JobState.QUEUED or (
                job.state is JobState.WAITING and job.not_before <= now
            )
            if job.owned and runnable and not job.is_running:
                job.stop = StopSignal()
                self._set_state(job, JobState.RUNNING)
                return job
        return None

    def _next_wakeup(self) -> float | None:
        now = time.monotonic()
        waits = [
            job.not_before - now
            for job in self._jobs.values()
            if job.owned and job.state is JobState.WAITING
        ]
        return max(0.01, min(waits)) if waits else None

    def _run(self, job: _Job) -> None:
        stop = job.stop
        assert stop is not None
        outcome: BaseException | None = None
        try:
            self._fetch_all(job, stop)
        except StopRequested:
            pass
        except Exception as exc:  # turned into the job's state below; nothing may kill a worker
            outcome = exc
            if not isinstance(exc, AppError):
                _log.exception("download job %s failed unexpectedly", job.id)
        with self._lock:
            job.stop = None
            self._finish(job, stop, outcome)
            self._changed.notify_all()
        self._emit()

    def _fetch_all(self, job: _Job, stop: StopSignal) -> None:
        placement = self._placement(job)
        hf_token = self._token if job.endpoint == self._endpoint else None
        todo = [file for index, file in enumerate(job.files) if not placement.is_complete(index)]
        folder = placement.folder
        folder.mkdir(parents=True, exist_ok=True)
        needed = sum(max(0, file.planned.size - file.bytes_done) for file in todo)
        check_free_space(folder, needed, self._free_space)
        for index, file in enumerate(job.files):
            stop.check()
            if file.state is FileState.DONE and file not in todo:
                continue
            with self._lock:
                file.state = FileState.RUNNING
            placement.fetch(
                index,
                endpoint=job.endpoint,
                hf_token=hf_token,
                database=self._database,
                policy=self._retry,
                stop=stop,
                on_progress=functools.partial(self._progress, job, file),
            )
            with self._lock:
                file.state = FileState.DONE
                file.bytes_done = file.planned.size
                self._store.set_file_state(job.id, file.planned.path, FileState.DONE)

    def _progress(self, job: _Job, file: _File, done: int) -> None:
        # Called for every chunk: no lock (an int attribute is written atomically under the
        # GIL); the speed meter takes its samples when a snapshot is read, in `_status`.
        file.bytes_done = done

    def _finish(self, job: _Job, stop: StopSignal, error: BaseException | None) -> None:
        """Settle a job after its worker stopped (called under the lock)."""
        # The file a job failed on is marked failed, unless the cause lies outside it.
        file_failed = error is not None and not isinstance(
            error, HubUnreachableError | FileBusyError | DiskFullError
        )
        for file in job.files:
            if file.state is FileState.RUNNING:
                file.state = FileState.FAILED if file_failed else FileState.PENDING
                if file_failed:
                    self._store.set_file_state(job.id, file.planned.path, FileState.FAILED)
        job.meter.reset()
        if all(file.state is FileState.DONE for file in job.files):
            self._set_state(job, JobState.COMPLETED, finished_at=now_iso())
            return
        if job.state is JobState.CANCELLED:
            self._delete_partials(job)
            return
        if job.state is not JobState.RUNNING:  # paused, or paused and resumed meanwhile
            return
        if stop.requested and stop.reason == _SHUTDOWN:
            self._set_state(job, JobState.QUEUED)
        elif isinstance(error, FileBusyError):
            job.not_before = time.monotonic() + max(self._retry.delay(1), _BUSY_WAIT_MIN_S)
            self._set_state(job, JobState.WAITING, error=error.message, kind=None)
        elif isinstance(error, HubUnreachableError) and self._offline_wait is not None:
            job.not_before = time.monotonic() + self._offline_wait
            message = f"{error.message} Trying again every {self._offline_wait:g} s."
            self._set_state(job, JobState.WAITING, error=message, kind=ErrorKind.OFFLINE)
        elif error is not None:
            message = str(error) if isinstance(error, AppError) else f"Unexpected error: {error!r}"
            self._set_state(
                job,
                JobState.FAILED,
                error=" ".join(message.split()),
                kind=ErrorKind.of(error),
                finished_at=now_iso(),
            )
        else:  # stopped without a reason we know of: try again
            self._set_state(job, JobState.QUEUED)

    # -- helpers (all called under the lock) -----------------------------------------------------

    def _set_state(
        self,
        job: _Job,
        state: JobState,
        *,
        error: str | None = None,
        kind: ErrorKind | None = None,
        finished_at: str | None = None,
    ) -> None:
        job.state, job.error, job.error_kind, job.finished_at = state, error, kind, finished_at
        self._save_state(job)
        self._events.append(self._status(job))
        self._changed.notify_all()

    def _save_state(self, job: _Job) -> None:
        self._store.set_state(
            job.id,
            job.state,
            error=job.error,
            error_kind=job.error_kind,
            finished_at=job.finished_at,
        )

    def _emit(self) -> None:
        with self._lock:
            events, self._events = self._events, []
        self._subscribers.notify(*events)

    def _get(self, job_id: int) -> _Job:
        job = self._jobs.get(job_id)
        if job is None:
            raise KeyError(f"no download job {job_id}")
        return job

    def _endpoint_of(self, plan: DownloadPlan) -> str:
        return self._endpoint if plan.source is None else plan.source.endpoint.rstrip("/")

    def _unfinished_like(self, plan: DownloadPlan) -> _Job | None:
        paths = [file.path for file in plan.files]
        for job in self._jobs.values():
            if (
                job.state in _UNFINISHED
                and job.endpoint == self._endpoint_of(plan)
                and job.plan.hub is plan.hub
                and job.plan.repo_id == plan.repo_id
                and job.plan.revision == plan.revision
                and [file.planned.path for file in job.files] == paths
            ):
                return job
        return None

    def _placement(self, job: _Job) -> Placement:
        return Placement(job.plan, self._cache_dir)

    def _file(self, plan: DownloadPlan, index: int, state: FileState) -> _File:
        placement = Placement(plan, self._cache_dir)
        planned = plan.files[index]
        if state is FileState.DONE or placement.is_complete(index):
            return _File(planned, state, planned.size)
        return _File(planned, state, min(placement.partial_size(index), planned.size))

    def _job_from_store(self, stored: StoredJob, resume_unfinished: bool) -> _Job:
        try:
            if stored.unreadable is not None:
                raise stored.unreadable
            check_plan(stored.plan)
        except UnsafeHubDataError as exc:
            return self._refused_job(stored, exc)
        files = [
            self._file(stored.plan, index, state) for index, state in enumerate(stored.file_states)
        ]
        job = _Job(
            id=stored.id,
            endpoint=stored.endpoint,
            plan=stored.plan,
            files=files,
            state=stored.state,
            error=stored.error,
            error_kind=stored.error_kind,
            created_at=stored.created_at,
            finished_at=stored.finished_at,
        )
        if job.state in _UNFINISHED:
            job.owned = resume_unfinished
            if job.state in (JobState.RUNNING, JobState.WAITING):  # left by a crash or a quit
                job.state = JobState.QUEUED
                if job.owned:
                    self._save_state(job)
        for file in files:
            if file.state is FileState.RUNNING:
                file.state = FileState.PENDING
        return job

    def _refused_job(self, stored: StoredJob, error: UnsafeHubDataError) -> _Job:
        """A saved job whose plan is refused (saved by an older version): failed, never run.

        It stays in the list with its reason, so a person sees what happened and can remove
        it; the rest of the queue runs as usual. Nothing of its plan touches the disk.
        """
        message = " ".join(f"Refused: {error}".split())
        plan = _for_display(stored.plan)
        job = _Job(
            id=stored.id,
            endpoint=stored.endpoint,
            plan=plan,
            files=[_File(planned, FileState.FAILED, 0) for planned in plan.files],
            state=JobState.FAILED,
            error=message,
            error_kind=ErrorKind.OTHER,
            created_at=stored.created_at,
            finished_at=stored.finished_at or now_iso(),
            refused=message,
        )
        if (stored.state, stored.error) != (JobState.FAILED, message):
            _log.warning("download job %s cannot be restored: %s", stored.id, message)
            self._save_state(job)
        return job

    def _delete_partials(self, job: _Job) -> None:
        """Delete a cancelled job's partial files, except those another live job still needs."""
        shared = {
            (other.plan.repo_id, file.planned.etag)
            for other in self._jobs.values()
            if other is not job and other.state in _UNFINISHED
            for file in other.files
        }
        placement = self._placement(job)
        for index, file in enumerate(job.files):
            if file.state is FileState.DONE or (job.plan.repo_id, file.planned.etag) in shared:
                continue
            if placement.discard(index):
                file.bytes_done = 0

    def _status(self, job: _Job) -> JobStatus:
        now = self._clock()
        done = job.bytes_done
        total = job.plan.total_size
        if job.is_running:
            job.meter.add(now, done)  # sampled as often as the front end looks
        speed = job.meter.rate(now) if job.is_running else 0.0
        return JobStatus(
            id=job.id,
            repo_id=job.plan.repo_id,
            revision=job.plan.revision,
            label=job.plan.label,
            hub=job.plan.hub,
            state=job.state,
            error=job.error,
            error_kind=job.error_kind,
            bytes_done=done,
            total=total,
            speed=speed,
            eta=(total - done) / speed if speed > 0 else None,
            files=tuple(
                FileStatus(
                    path=file.planned.path,
                    size=file.planned.size,
                    bytes_done=file.bytes_done,
                    state=file.state,
                )
                for file in job.files
            ),
            created_at=job.created_at,
            finished_at=job.finished_at,
        )

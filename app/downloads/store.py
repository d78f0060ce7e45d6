"""The download queue in the app database (tables download_jobs and download_files)."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import UTC, datetime

from app.downloads.plan import DownloadPlan, PlannedFile
from app.downloads.sources import Hub, source_from_json, source_to_json
from app.downloads.status import ErrorKind, FileState, JobState
from app.hub.security import ScanLevel
from app.hub.untrusted import UnsafeHubDataError
from app.store import Database


@dataclass(frozen=True, kw_only=True)
class StoredJob:
    """A job as the database keeps it."""

    id: int
    endpoint: str
    plan: DownloadPlan
    file_states: tuple[FileState, ...]  # one per file of `plan`, in order
    state: JobState
    error: str | None
    error_kind: ErrorKind | None
    created_at: str
    finished_at: str | None
    unreadable: UnsafeHubDataError | None = None  # its saved source cannot be read


def now_iso() -> str:
    """The current time, ISO 8601 in UTC."""
    return datetime.now(UTC).isoformat(timespec="seconds")


class JobStore:
    """Reads and writes download jobs; every method is one short statement or transaction."""

    def __init__(self, database: Database) -> None:
        self._db = database

    def create(self, plan: DownloadPlan, *, endpoint: str) -> tuple[int, str]:
        """Insert a queued job for `plan`; returns its id and creation time."""
        created = now_iso()
        with self._db.transaction() as connection:
            cursor = connection.execute(
                "INSERT INTO download_jobs (endpoint, repo_id, revision, ref, label, state, "
                "created_at, hub, source) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    endpoint,
                    plan.repo_id,
                    plan.revision,
                    plan.ref,
                    plan.label,
                    JobState.QUEUED,
                    created,
                    plan.hub,
                    None if plan.source is None else source_to_json(plan.source),
                ),
            )
            job_id = cursor.lastrowid
            assert job_id is not None
            connection.executemany(
                "INSERT INTO download_files (job_id, path, size, sha256, etag, state, scan) "
                "VALUES (?, ?, ?, ?, ?, ?, ?)",
                [
                    (job_id, f.path, f.size, f.sha256, f.etag, FileState.PENDING, f.scan)
                    for f in plan.files
                ],
            )
        return job_id, created

    def load(self) -> list[StoredJob]:
        """Every job, oldest first."""
        files: dict[int, list[tuple[PlannedFile, FileState]]] = {}
        for job_id, path, size, sha256, etag, state, scan in self._db.fetch_all(
            "SELECT job_id, path, size, sha256, etag, state, scan FROM download_files "
            "ORDER BY job_id, rowid"
        ):
            planned = PlannedFile(
                path=path, size=size or 0, sha256=sha256, etag=etag, scan=ScanLevel.from_hub(scan)
            )
            files.setdefault(job_id, []).append((planned, _file_state(state)))
        jobs = []
        for row in self._db.fetch_all(
            "SELECT id, endpoint, repo_id, revision, ref, label, state, error, error_kind, "
            "created_at, finished_at, hub, source FROM download_jobs ORDER BY id"
        ):
            job_id, endpoint, repo_id, revision, ref, label, state, error, kind, created, done = (
                row[:11]
            )
            entries = files.get(job_id, [])
            plan = DownloadPlan(
                repo_id=repo_id,
                revision=revision,
                label=label,
                files=tuple(planned for planned, _ in entries),
                ref=ref,
            )
            hub, source = row[11:]
            unreadable: UnsafeHubDataError | None = None
            try:
                plan = replace(plan, source=source_from_json(_hub(hub), source, about=repo_id))
            except UnsafeHubDataError as exc:  # the manager shows the job as refused
                unreadable = exc
            jobs.append(
                StoredJob(
                    id=job_id,
                    endpoint=endpoint,
                    plan=plan,
                    file_states=tuple(file_state for _, file_state in entries),
                    state=_job_state(state),
                    error=error,
                    error_kind=_error_kind(kind),
                    created_at=created,
                    finished_at=done,
                    unreadable=unreadable,
                )
            )
        return jobs

    def set_state(
        self,
        job_id: int,
        state: JobState,
        *,
        error: str | None = None,
        error_kind: ErrorKind | None = None,
        finished_at: str | None = None,
    ) -> None:
        self._db.execute(
            "UPDATE download_jobs SET state = ?, error = ?, error_kind = ?, finished_at = ? "
            "WHERE id = ?",
            (state, error, error_kind, finished_at, job_id),
        )

    def set_file_state(self, job_id: int, path: str, state: FileState) -> None:
        self._db.execute(
            "UPDATE download_files SET state = ? WHERE job_id = ? AND path = ?",
            (state, job_id, path),
        )

    def delete(self, job_id: int) -> None:
        with self._db.transaction() as connection:
            connection.execute("DELETE FROM download_files WHERE job_id = ?", (job_id,))
            connection.execute("DELETE FROM download_jobs WHERE id = ?", (job_id,))


def _job_state(text: str) -> JobState:
    try:
        return JobState(text)
    except ValueError:
        return JobState.FAILED


def _file_state(text: str) -> FileState:
    try:
        return FileState(text)
    except ValueError:
        return FileState.PENDING


def _error_kind(text: str | None) -> ErrorKind | None:
    if text is None:
        return None
    try:
        return ErrorKind(text)
    except ValueError:
        return ErrorKind.OTHER


def _hub(text: str | None) -> Hub:
    try:
        return Hub(text or Hub.HF)
    except ValueError:
        raise UnsafeHubDataError(
            f"a download from an unknown hub {text!r}.", repo_id="", field="hub", value=text
        ) from None

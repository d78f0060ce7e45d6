"""What the download queue reports: job and file states, and one snapshot per job."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from app.downloads.sources import Hub
from app.errors import (
    DiskFullError,
    GatedRepoError,
    HubUnreachableError,
    IntegrityError,
    RepoNotFoundError,
)


class JobState(StrEnum):
    """Where a job stands. Completed, failed and cancelled are final; cancelled is no error."""

    QUEUED = "queued"
    RUNNING = "running"
    WAITING = "waiting"  # the hub is unreachable or the file busy: it is tried again by itself
    PAUSED = "paused"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def is_final(self) -> bool:
        return self in (JobState.COMPLETED, JobState.FAILED, JobState.CANCELLED)


class FileState(StrEnum):
    PENDING = "pending"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"


class ErrorKind(StrEnum):
    """What went wrong, so a front end can offer the right way out."""

    OFFLINE = "offline"  # retry later, check the network
    GATED = "gated"  # accept the terms at the repository's page, add a token
    NOT_FOUND = "not-found"
    DISK_FULL = "disk-full"  # free space, then retry (the partial file is kept)
    INTEGRITY = "integrity"  # the bytes did not match the published sha256, twice
    OTHER = "other"

    @classmethod
    def of(cls, error: BaseException) -> ErrorKind:
        """The kind of `error`."""
        kinds: tuple[tuple[type[BaseException], ErrorKind], ...] = (
            (HubUnreachableError, cls.OFFLINE),
            (GatedRepoError, cls.GATED),
            (RepoNotFoundError, cls.NOT_FOUND),
            (DiskFullError, cls.DISK_FULL),
            (IntegrityError, cls.INTEGRITY),
        )
        return next((kind for type_, kind in kinds if isinstance(error, type_)), cls.OTHER)


@dataclass(frozen=True, kw_only=True, slots=True)
class FileStatus:
    path: str
    size: int
    bytes_done: int  # on disk, in the cache or in its partial file
    state: FileState


@dataclass(frozen=True, kw_only=True, slots=True)
class JobStatus:
    """A snapshot of one job, safe to hand to any thread."""

    id: int
    repo_id: str
    revision: str  # commit sha
    label: str
    state: JobState
    error: str | None  # one line for a person (failed, or why it is waiting)
    error_kind: ErrorKind | None
    bytes_done: int
    total: int
    speed: float  # bytes/s over the last few seconds; 0 when idle
    eta: float | None  # seconds left at that speed; None when unknown
    files: tuple[FileStatus, ...]
    created_at: str  # ISO 8601, UTC
    finished_at: str | None
    hub: Hub = Hub.HF  # where it downloads from (its repo_id and revision are that hub's)

    @property
    def fraction(self) -> float:
        """Share of bytes done, 0.0 to 1.0 (1.0 for an empty job)."""
        return min(1.0, self.bytes_done / self.total) if self.total else 1.0

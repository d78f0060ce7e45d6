"""One download run in the foreground of a command (`pull`, `update`): its own queue, one job,
waited for, Ctrl+C pausing it so that the next run continues from the bytes on disk."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from app.core import Core
    from app.downloads import DownloadPlan
    from app.downloads.status import JobStatus
    from app.errors import AppError

_INTERRUPT_GRACE_S = 2.0  # after Ctrl+C, what arrived is on disk: do not wait out a stall


@dataclass(frozen=True)
class ForegroundDownload:
    """How a foreground download ended: exactly one of the three says why."""

    status: JobStatus | None  # the job's last status (None: it never started)
    interrupted: bool = False  # Ctrl+C: the job is paused, and saved
    refused: AppError | None = None  # the queue refused the plan (nothing was saved)


def download_in_foreground(
    core: Core,
    plan: DownloadPlan,
    *,
    poll_s: float,
    on_progress: Callable[[JobStatus], None] = lambda _status: None,
) -> ForegroundDownload:
    """Download `plan` with a queue of this process's own and wait for it (blocking).

    The window's queue is left alone: unfinished jobs of other runs are not resumed here,
    and an offline hub fails at once rather than waiting for the network.
    """
    from app.downloads.manager import DownloadManager
    from app.downloads.status import JobState
    from app.downloads.transfer import RetryPolicy
    from app.errors import AppError

    manager = DownloadManager(
        core.database,
        endpoint=core.endpoint,
        token=core.token.value,
        cache_dir=core.settings.resolved_cache_dir(),
        concurrency=1,
        retry=RetryPolicy(),
        offline_wait=None,
        resume_unfinished=False,
    )
    job_id: int | None = None
    status: JobStatus | None = None
    interrupted = False
    refused: AppError | None = None
    try:
        manager.start()
        job_id = manager.enqueue(plan)
        while True:
            status = manager.wait(job_id, timeout=poll_s)
            on_progress(status)
            if status.state.is_final or status.state is JobState.PAUSED:
                break
    except KeyboardInterrupt:
        interrupted = True
        if job_id is not None:
            manager.pause(job_id)  # written to the database at once: the next run adopts it
            status = manager.job(job_id)
    except AppError as exc:
        refused = exc
    finally:
        manager.shutdown(timeout=_INTERRUPT_GRACE_S if interrupted else None)
    return ForegroundDownload(status, interrupted=interrupted, refused=refused)

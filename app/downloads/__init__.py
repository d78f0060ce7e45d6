"""Downloads into the standard Hugging Face cache that survive drops, stalls, crashes and restarts.

- `plan_files`, `plan_gguf`, `plan_diffusers`: what to fetch (`DownloadPlan`); `check_plan`
  refuses any hub-provided name or hash that could leave the cache.
- `DownloadManager`: the persistent queue; `jobs()` gives `JobStatus` snapshots to poll.
- `fetch_file`: one file, resumed, retried and verified (what the manager runs).
"""

from app.downloads.manager import DownloadManager, free_disk_bytes
from app.downloads.plan import (
    DownloadPlan,
    PlannedFile,
    check_plan,
    plan_diffusers,
    plan_files,
    plan_gguf,
)
from app.downloads.status import ErrorKind, FileState, FileStatus, JobState, JobStatus
from app.downloads.transfer import RetryPolicy, fetch_file

__all__ = [
    "DownloadManager",
    "DownloadPlan",
    "ErrorKind",
    "FileState",
    "FileStatus",
    "JobState",
    "JobStatus",
    "PlannedFile",
    "RetryPolicy",
    "check_plan",
    "fetch_file",
    "free_disk_bytes",
    "plan_diffusers",
    "plan_files",
    "plan_gguf",
]

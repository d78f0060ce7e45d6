"""Downloads that survive drops, stalls, crashes and restarts, from every hub, in one queue.

- `plan_files`, `plan_gguf`, `plan_diffusers`: what to fetch (`DownloadPlan`); `check_plan`
  refuses any hub-provided name or hash that could leave the cache.
- Other hubs' plans (`civitai.CivitaiDownload.job_plan`, `modelscope.plan_modelscope`) carry
  a source (`sources`): where their files go; `placement` picks the target per hub.
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

"""Taking a model's update: the one workflow behind `modeldeck update` and the Library's Update.

    prepared = prepare_update(hub, database, cache_dir, "org/model")   # check, plan
    job_id = manager.enqueue(prepared.plan)                            # only the changed files
    ... the job completes ...
    finish_update(hub, database, cache_dir, prepared)                   # the ref moves now
    old_revision_delete_plan(library, prepared.local)                   # what the old one frees

The plan downloads into the new commit's snapshot without touching any ref, so until
`finish_update` the branch still names the old snapshot, which stays a usable model; an
interrupted or failed download leaves it so (run the update again to continue).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING

from app.errors import AppError

if TYPE_CHECKING:
    from app.downloads.plan import DownloadPlan
    from app.library import DeletePlan, Library
    from app.library.updates import HubWithDetails, ModelUpdate, TrackedRevision
    from app.store import Database


class UpdateFailure(StrEnum):
    """Why an update could not start (the CLI's exit status follows it)."""

    NOT_FOUND = "not found"  # no such model in the cache at a branch
    OFFLINE = "offline"  # the hub could not be reached
    ERROR = "error"


class UpdateError(AppError):
    """An update that could not be prepared, and why."""

    def __init__(self, message: str, failure: UpdateFailure) -> None:
        super().__init__(message)
        self.failure = failure


@dataclass(frozen=True, kw_only=True)
class PreparedUpdate:
    """A checked update: the revision on disk, how it compares, and what to download."""

    local: TrackedRevision
    update: ModelUpdate
    plan: DownloadPlan | None  # None: up to date, nothing to fetch

    @property
    def up_to_date(self) -> bool:
        return self.plan is None


def prepare_update(
    hub: HubWithDetails,
    database: Database,
    cache_dir: Path,
    repo_id: str,
    *,
    ref: str | None = None,
) -> PreparedUpdate:
    """Check `repo_id` (at `ref`, else `main`, else its first tracked branch) against the hub
    and plan its changed files (blocking: use a worker). An up-to-date answer is saved in the
    update records at once; an outdated one is saved by `finish_update`.

    Raises:
        UpdateError: not in the cache at a branch, the hub unreachable or refusing, or none
            of its files left upstream.
    """
    from app.downloads.plan import plan_files
    from app.library.updates import UpdateRecords, check_updates, tracked_revisions

    wanted = repo_id.strip().lower()
    revisions = [r for r in tracked_revisions(cache_dir) if r.repo_id.lower() == wanted]
    if not revisions:
        raise UpdateError(
            f"{repo_id} is not in the Hugging Face cache at a branch (pinned revisions "
            "are never updated).",
            UpdateFailure.NOT_FOUND,
        )
    local = next(
        (r for r in revisions if r.ref == (ref or "main")),
        revisions[0] if ref is None else None,
    )
    if local is None:
        raise UpdateError(f"{repo_id} is not in the cache at {ref}.", UpdateFailure.NOT_FOUND)
    report = check_updates(hub, [local])
    if report.unchecked:
        unchecked = report.unchecked[0]
        failure = UpdateFailure.OFFLINE if unchecked.offline else UpdateFailure.ERROR
        raise UpdateError(f"{local.repo_id}: {unchecked.reason}", failure)
    update = report.updates[0]
    if not update.available:
        UpdateRecords(database).save(report)
        return PreparedUpdate(local=local, update=update, plan=None)
    if not update.wanted_paths:
        raise UpdateError(
            f"{local.repo_id}: none of its files exist upstream any more.", UpdateFailure.ERROR
        )
    try:
        details = hub.model_details(local.repo_id, revision=update.remote_commit)
        # ref=None: the download moves no ref; `finish_update` does, once it is complete.
        plan = plan_files(details, update.wanted_paths, ref=None)
    except (AppError, ValueError) as exc:
        raise UpdateError(str(exc), UpdateFailure.ERROR) from exc
    return PreparedUpdate(local=local, update=update, plan=plan)


def finish_update(
    hub: HubWithDetails, database: Database, cache_dir: Path, prepared: PreparedUpdate
) -> Path:
    """After the plan's download completed: point the branch at the new snapshot, check the
    repo again so the update records say it is current, and return the new snapshot folder
    (blocking: use a worker). A recheck that fails leaves the records as they were.

    Raises:
        UnsafeHubDataError / OSError: the ref could not be written (the old revision stays).
    """
    from app.downloads.cache import snapshot_folder, write_ref
    from app.library.updates import UpdateRecords, check_updates, tracked_revisions

    local, update = prepared.local, prepared.update
    write_ref(cache_dir, local.repo_id, local.ref, update.remote_commit)
    now_tracked = [r for r in tracked_revisions(cache_dir) if r.repo_id == local.repo_id]
    UpdateRecords(database).save(check_updates(hub, now_tracked))
    return snapshot_folder(cache_dir, local.repo_id, update.remote_commit)


def old_revision_delete_plan(library: Library, old: TrackedRevision) -> DeletePlan | None:
    """What deleting the revision an update replaced would remove (files shared with the new
    snapshot stay); None when nothing of it is left (blocking: it scans the library).

    Raises:
        LibraryError: the plan could not be made.
    """
    from app.library import Source

    keys: list[str] = []
    locations = []
    for entry in library.scan():
        for location in entry.locations:
            if (
                location.source is Source.HF_CACHE
                and location.repo_id == old.repo_id
                and location.revision == old.commit
            ):
                keys.append(entry.key)
                locations.append(location)
    if not keys:
        return None
    return library.plan_delete_all(list(dict.fromkeys(keys)), locations)

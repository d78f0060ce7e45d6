"""Which models in the HF cache were replaced upstream, and which of their files changed.

A cache revision that a ref (`refs/main`, a branch or tag it was pulled from) points at is
*tracked*: the hub is asked which commit that ref names now, and the files this machine holds
are compared with that commit's by blob name (the sha256 of an LFS file, the git blob id of
any other; the HF cache names its blobs the same way). A revision no ref points at was pulled
at a pinned commit and is never outdated; a tag does not move upstream, so it never is either.

The last result for each repository is kept in the app database (settings key
`updates.checks`), so the window can show it at start and check at most once a day per repo.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Protocol

from app.errors import AppError, HubUnreachableError
from app.hub.models import ModelDetails
from app.store import Database
from app.units import format_bytes

_CHECKS_KEY = "updates.checks"
_COMMIT = re.compile(r"[0-9a-f]{40}")
CHECK_INTERVAL = timedelta(days=1)


class HubWithDetails(Protocol):
    """The part of a hub an update check needs."""

    def model_details(self, repo_id: str, *, revision: str | None = None) -> ModelDetails: ...


@dataclass(frozen=True, kw_only=True)
class LocalFile:
    path: str  # in the repository
    etag: str  # the blob's name: sha256 of an LFS file, else its git blob id
    size: int


@dataclass(frozen=True, kw_only=True)
class TrackedRevision:
    """A cache revision that a ref points at: what `refs/<ref>` names, and its files."""

    repo_id: str
    ref: str
    commit: str
    snapshot: Path
    files: tuple[LocalFile, ...]


@dataclass(frozen=True, kw_only=True)
class ChangedFile:
    path: str
    size: int  # the new file's size
    etag: str  # the new file's blob name (sha256 or git blob id)
    old_size: int


@dataclass(frozen=True, kw_only=True)
class ModelUpdate:
    """How one tracked revision compares with the commit its ref names on the hub now."""

    repo_id: str
    ref: str
    local_commit: str
    remote_commit: str
    changed: tuple[ChangedFile, ...] = ()
    kept: tuple[str, ...] = ()  # files the same on both commits (reused, never downloaded)
    removed: tuple[str, ...] = ()  # files this machine has that the new commit does not

    @property
    def available(self) -> bool:
        return self.remote_commit != self.local_commit

    @property
    def download_size(self) -> int:
        """Bytes an update fetches: the changed files only."""
        return sum(file.size for file in self.changed)

    @property
    def summary(self) -> str:
        """One line for a person: "update available: 2 files, +1.2 GB" ("" when current)."""
        if not self.available:
            return ""
        count = len(self.changed)
        return (
            f"update available: {count} file{'s' if count != 1 else ''}, "
            f"+{format_bytes(self.download_size)}"
        )

    @property
    def wanted_paths(self) -> tuple[str, ...]:
        """The files of the new snapshot: the ones this machine has that still exist."""
        return tuple(sorted({*self.kept, *(file.path for file in self.changed)}))

    def to_json(self) -> dict[str, Any]:
        return {
            "repo_id": self.repo_id,
            "ref": self.ref,
            "local_commit": self.local_commit,
            "remote_commit": self.remote_commit,
            "update_available": self.available,
            "changed_files": [
                {"path": f.path, "size": f.size, "old_size": f.old_size, "etag": f.etag}
                for f in self.changed
            ],
            "unchanged_files": list(self.kept),
            "removed_files": list(self.removed),
            "download_bytes": self.download_size,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ModelUpdate:
        return cls(
            repo_id=str(data["repo_id"]),
            ref=str(data["ref"]),
            local_commit=str(data["local_commit"]),
            remote_commit=str(data["remote_commit"]),
            changed=tuple(
                ChangedFile(
                    path=str(f["path"]),
                    size=int(f["size"]),
                    etag=str(f["etag"]),
                    old_size=int(f["old_size"]),
                )
                for f in data.get("changed_files", ())
            ),
            kept=tuple(str(p) for p in data.get("unchanged_files", ())),
            removed=tuple(str(p) for p in data.get("removed_files", ())),
        )


@dataclass(frozen=True, kw_only=True)
class Unchecked:
    """A repository the hub did not answer for, and why (one line)."""

    repo_id: str
    reason: str
    offline: bool = False  # the hub could not be reached at all


@dataclass(frozen=True, kw_only=True)
class UpdateReport:
    """One check: each tracked revision's comparison, and the repos that could not be asked."""

    updates: tuple[ModelUpdate, ...] = ()
    unchecked: tuple[Unchecked, ...] = ()

    @property
    def outdated(self) -> tuple[ModelUpdate, ...]:
        return tuple(update for update in self.updates if update.available)


def tracked_revisions(cache_dir: Path) -> list[TrackedRevision]:
    """Every model revision in the cache that a branch or tag points at (PR refs left out)."""
    from huggingface_hub import scan_cache_dir
    from huggingface_hub.errors import CacheNotFound

    try:
        info = scan_cache_dir(cache_dir)
    except (CacheNotFound, OSError):
        return []
    tracked: list[TrackedRevision] = []
    for repo in sorted(info.repos, key=lambda r: r.repo_id):
        if repo.repo_type != "model":
            continue
        for revision in repo.revisions:
            start = len(str(revision.snapshot_path)) + 1
            files = tuple(
                sorted(
                    (
                        LocalFile(
                            path=str(f.file_path)[start:].replace("\\", "/"),
                            etag=f.blob_path.name,
                            size=f.size_on_disk,
                        )
                        for f in revision.files
                    ),
                    key=lambda f: f.path,
                )
            )
            for ref in sorted(revision.refs):
                if ref.startswith("refs/pr/"):
                    continue
                tracked.append(
                    TrackedRevision(
                        repo_id=repo.repo_id,
                        ref=ref,
                        commit=revision.commit_hash,
                        snapshot=revision.snapshot_path,
                        files=files,
                    )
                )
    return tracked


def compare(local: TrackedRevision, details: ModelDetails) -> ModelUpdate:
    """`local` against the commit the hub describes in `details` (fetched for `local.ref`).

    Raises:
        ValueError: the details name no commit.
    """
    if not details.sha:
        raise ValueError(f"the hub named no commit for {local.repo_id}")
    remote = details.sha.lower()
    if remote == local.commit:
        return ModelUpdate(
            repo_id=local.repo_id,
            ref=local.ref,
            local_commit=local.commit,
            remote_commit=remote,
            kept=tuple(f.path for f in local.files),
        )
    upstream = {file.path: file for file in details.files}
    changed: list[ChangedFile] = []
    kept: list[str] = []
    removed: list[str] = []
    for mine in local.files:
        theirs = upstream.get(mine.path)
        if theirs is None:
            removed.append(mine.path)
            continue
        etag = (theirs.sha256 or theirs.blob_id or "").lower()
        if etag and etag == mine.etag:
            kept.append(mine.path)
        else:
            size = theirs.size if theirs.size is not None else 0
            changed.append(ChangedFile(path=mine.path, size=size, etag=etag, old_size=mine.size))
    return ModelUpdate(
        repo_id=local.repo_id,
        ref=local.ref,
        local_commit=local.commit,
        remote_commit=remote,
        changed=tuple(changed),
        kept=tuple(kept),
        removed=tuple(removed),
    )


def check_updates(hub: HubWithDetails, revisions: Iterable[TrackedRevision]) -> UpdateReport:
    """Ask the hub about each tracked revision (one request per repo and ref).

    A repo the hub does not answer for (offline, gone, gated now) is listed in `unchecked`;
    a saved offline copy of its details is never taken for an answer.
    """
    updates: list[ModelUpdate] = []
    unchecked: list[Unchecked] = []
    for local in revisions:
        try:
            details = hub.model_details(local.repo_id, revision=local.ref)
        except AppError as exc:
            offline = isinstance(exc, HubUnreachableError)
            reason = " ".join(str(exc).split())
            unchecked.append(Unchecked(repo_id=local.repo_id, reason=reason, offline=offline))
            continue
        if details.saved_at is not None:
            reason = "the hub cannot be reached"
            unchecked.append(Unchecked(repo_id=local.repo_id, reason=reason, offline=True))
            continue
        try:
            updates.append(compare(local, details))
        except ValueError as exc:
            unchecked.append(Unchecked(repo_id=local.repo_id, reason=str(exc)))
    return UpdateReport(updates=tuple(updates), unchecked=tuple(unchecked))


@dataclass(frozen=True, kw_only=True)
class CheckRecord:
    """The last answer for one repository and when it came."""

    checked_at: datetime
    updates: tuple[ModelUpdate, ...] = field(default=())


class UpdateRecords:
    """The last check of each repository, in the app database (one settings value)."""

    def __init__(self, database: Database) -> None:
        self._database = database

    def all(self) -> dict[str, CheckRecord]:
        raw = self._database.get_setting(_CHECKS_KEY)
        records: dict[str, CheckRecord] = {}
        if not isinstance(raw, dict):
            return records
        for repo_id, value in raw.items():
            try:
                records[str(repo_id)] = CheckRecord(
                    checked_at=datetime.fromisoformat(value["checked_at"]),
                    updates=tuple(ModelUpdate.from_json(u) for u in value.get("updates", ())),
                )
            except (KeyError, TypeError, ValueError):
                continue  # a damaged memo only costs a check
        return records

    def due(
        self, revisions: Sequence[TrackedRevision], *, now: datetime | None = None
    ) -> list[TrackedRevision]:
        """The revisions whose repository was not checked in the last day."""
        moment = now or datetime.now(UTC)
        records = self.all()
        return [
            local
            for local in revisions
            if local.repo_id not in records
            or moment - records[local.repo_id].checked_at >= CHECK_INTERVAL
        ]

    def save(self, report: UpdateReport, *, now: datetime | None = None) -> None:
        """Remember each answered repository's comparisons (unanswered ones stay as they were)."""
        moment = (now or datetime.now(UTC)).isoformat()
        raw = self._database.get_setting(_CHECKS_KEY)
        stored: dict[str, Any] = dict(raw) if isinstance(raw, dict) else {}
        by_repo: dict[str, list[dict[str, Any]]] = {}
        for update in report.updates:
            by_repo.setdefault(update.repo_id, []).append(update.to_json())
        for repo_id, updates in by_repo.items():
            stored[repo_id] = {"checked_at": moment, "updates": updates}
        self._database.set_setting(_CHECKS_KEY, stored)

    def outdated(self) -> dict[tuple[str, str], ModelUpdate]:
        """The last known updates, by (repo_id, local commit)."""
        return {
            (update.repo_id, update.local_commit): update
            for record in self.all().values()
            for update in record.updates
            if update.available
        }


def check_for_updates(
    hub: HubWithDetails, database: Database, cache_dir: Path, *, force: bool = False
) -> UpdateReport:
    """Check the tracked revisions not checked in the last day (every one with `force`), and
    remember the answers. Blocking: disk and network; the window calls it on a worker."""
    records = UpdateRecords(database)
    revisions = tracked_revisions(cache_dir)
    report = check_updates(hub, revisions if force else records.due(revisions))
    records.save(report)
    return report


def older_main_revision(cache_dir: Path, repo_id: str, current_commit: str) -> str | None:
    """The commit `refs/main` names in the cache when it is not `current_commit` (the hub's
    `main` now) and its snapshot is there; else None. Reads two small paths, no scan."""
    from huggingface_hub.file_download import repo_folder_name

    folder = cache_dir / repo_folder_name(repo_id=repo_id, repo_type="model")
    try:
        local = (folder / "refs" / "main").read_text(encoding="ascii").strip().lower()
    except (OSError, UnicodeDecodeError):
        return None
    if not _COMMIT.fullmatch(local) or local == current_commit.lower():
        return None
    return local if (folder / "snapshots" / local).is_dir() else None

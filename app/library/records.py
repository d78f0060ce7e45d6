"""The library's own records in the app database: imports, extra folders, sha256 memos, and
what was last seen in the places the user named (so an unplugged drive's models stay listed).

Tables `library_imports`, `library_folders` and `file_hashes` come from the schema (migration
3). What was seen is kept as one JSON value under the settings key `library.seen`: it is a
memo, rewritten only when it changes, and losing it only loses the "missing" rows.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from app.hub.security import ScanLevel
from app.library.found import Details
from app.library.provenance import Verification
from app.library.sniff import CheckpointFormat, ModelKind
from app.store import Database

_SEEN_KEY = "library.seen"
_USED_KEY = "library.used"
_VERIFIED_KEY = "library.verified"
_MAX_USED = 2_000  # the most recently used models kept; an older use only loses its date


@dataclass(frozen=True, kw_only=True)
class ImportRecord:
    path: Path
    sha256: str | None
    kind: str | None


@dataclass(frozen=True, kw_only=True)
class Seen:
    """What an imported or folder checkpoint looked like the last time it was there."""

    name: str
    parts: tuple[Path, ...]
    size: int
    first_size: int
    sha256: str | None
    is_folder: bool
    details: Details | None

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "parts": [str(part) for part in self.parts],
            "size": self.size,
            "first_size": self.first_size,
            "sha256": self.sha256,
            "is_folder": self.is_folder,
            "details": dataclasses.asdict(self.details) if self.details else None,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Seen:
        details = data.get("details")
        return cls(
            name=str(data["name"]),
            parts=tuple(Path(part) for part in data["parts"]),
            size=int(data["size"]),
            first_size=int(data["first_size"]),
            sha256=data.get("sha256"),
            is_folder=bool(data.get("is_folder")),
            details=_details_from_json(details) if isinstance(details, dict) else None,
        )


def _details_from_json(data: dict[str, Any]) -> Details:
    format_ = data.get("format")
    return Details(
        kind=ModelKind(data["kind"]),
        format=CheckpointFormat(format_) if format_ else None,
        architecture=data.get("architecture"),
        parameter_count=data.get("parameter_count"),
        quantization=data.get("quantization"),
        context_length=data.get("context_length"),
        warning=data.get("warning"),
        incomplete=data.get("incomplete"),
    )


@dataclass(frozen=True, kw_only=True)
class DownloadRecord:
    """A download ModelDeck finished (table download_jobs): where from, at which ref, when."""

    endpoint: str
    repo_id: str
    commit: str
    ref: str | None  # the branch or tag asked for; None: a commit was asked (pinned)
    finished_at: datetime | None
    files: dict[str, str | None]  # path in the repository -> the sha256 the hub listed
    # path -> the hub's scan verdict when the download was planned (absent: not recorded,
    # a download made before ModelDeck kept them)
    scans: dict[str, ScanLevel] = field(default_factory=dict)


class LibraryRecords:
    """Reads and writes the library's rows; every method is one short statement or two."""

    def __init__(self, database: Database) -> None:
        self._database = database

    # -- imports --------------------------------------------------------------------------

    def imports(self) -> list[ImportRecord]:
        rows = self._database.fetch_all(
            "SELECT path, sha256, kind FROM library_imports ORDER BY path"
        )
        return [ImportRecord(path=Path(path), sha256=sha, kind=kind) for path, sha, kind in rows]

    def add_import(self, path: Path, *, sha256: str | None, kind: str, when: datetime) -> None:
        """Record an import; importing the same path again keeps its first date."""
        self._database.execute(
            "INSERT INTO library_imports (path, sha256, kind, imported_at) VALUES (?, ?, ?, ?) "
            "ON CONFLICT(path) DO UPDATE SET kind = excluded.kind, "
            "sha256 = COALESCE(excluded.sha256, library_imports.sha256)",
            (str(path), sha256, kind, when.isoformat()),
        )

    def set_import_sha256(self, path: Path, sha256: str) -> None:
        self._database.execute(
            "UPDATE library_imports SET sha256 = ? WHERE path = ?", (sha256, str(path))
        )

    def forget_import(self, path: Path) -> None:
        self._database.execute("DELETE FROM library_imports WHERE path = ?", (str(path),))

    # -- extra folders --------------------------------------------------------------------

    def folders(self) -> list[Path]:
        rows = self._database.fetch_all("SELECT path FROM library_folders ORDER BY path")
        return [Path(path) for (path,) in rows]

    def add_folder(self, path: Path, *, when: datetime) -> None:
        self._database.execute(
            "INSERT INTO library_folders (path, added_at) VALUES (?, ?) "
            "ON CONFLICT(path) DO NOTHING",
            (str(path), when.isoformat()),
        )

    def remove_folder(self, path: Path) -> None:
        self._database.execute("DELETE FROM library_folders WHERE path = ?", (str(path),))

    # -- sha256 memo ----------------------------------------------------------------------

    def hashes(self) -> dict[Path, tuple[int, int, str]]:
        """path -> (size, mtime_ns, sha256) of every file hashed before."""
        rows = self._database.fetch_all("SELECT path, size, mtime_ns, sha256 FROM file_hashes")
        return {Path(path): (size, mtime, sha) for path, size, mtime, sha in rows}

    def save_hash(self, path: Path, *, size: int, mtime_ns: int, sha256: str) -> None:
        self._database.execute(
            "INSERT INTO file_hashes (path, size, mtime_ns, sha256) VALUES (?, ?, ?, ?) "
            "ON CONFLICT(path) DO UPDATE SET size = excluded.size, "
            "mtime_ns = excluded.mtime_ns, sha256 = excluded.sha256",
            (str(path), size, mtime_ns, sha256),
        )

    # -- when models were used -----------------------------------------------------------

    def used(self) -> dict[str, float]:
        """Real path of a model's (first) file or folder -> when ModelDeck last loaded it."""
        stored = self._database.get_setting(_USED_KEY)
        if not isinstance(stored, dict):
            return {}
        return {
            str(path): float(when)
            for path, when in stored.items()
            if isinstance(when, int | float) and not isinstance(when, bool)
        }

    def mark_used(self, real_path: str, when: datetime) -> None:
        used = self.used()
        used[real_path] = when.timestamp()
        newest = sorted(used.items(), key=lambda item: item[1], reverse=True)[:_MAX_USED]
        self._database.set_setting(_USED_KEY, dict(newest))

    # -- provenance: downloads, verifications, cards ----------------------------------------

    def downloads(self) -> list[DownloadRecord]:
        """Every completed download, oldest first (read from the download queue's tables)."""
        files: dict[int, dict[str, str | None]] = {}
        scans: dict[int, dict[str, ScanLevel]] = {}
        for job_id, path, sha256, scan in self._database.fetch_all(
            "SELECT f.job_id, f.path, f.sha256, f.scan FROM download_files f "
            "JOIN download_jobs j ON j.id = f.job_id WHERE j.state = 'completed'"
        ):
            files.setdefault(job_id, {})[str(path)] = sha256
            if scan is not None:
                scans.setdefault(job_id, {})[str(path)] = ScanLevel.from_hub(scan)
        records = []
        for job_id, endpoint, repo_id, revision, ref, finished in self._database.fetch_all(
            "SELECT id, endpoint, repo_id, revision, ref, finished_at FROM download_jobs "
            "WHERE state = 'completed' ORDER BY id"
        ):
            records.append(
                DownloadRecord(
                    endpoint=str(endpoint),
                    repo_id=str(repo_id),
                    commit=str(revision),
                    ref=ref,
                    finished_at=_parse_time(finished),
                    files=files.get(job_id, {}),
                    scans=scans.get(job_id, {}),
                )
            )
        return records

    def snapshots_being_filled(self) -> set[tuple[str, str]]:
        """(repo id, commit) of downloads not ended yet (queued, running, waiting, paused, or
        failed and offered a retry) for a commit no finished download fetched: snapshots a
        download is still filling, e.g. the new revision of an update in progress."""
        rows = self._database.fetch_all("SELECT repo_id, revision, state FROM download_jobs")
        finished = {(str(r), str(c)) for r, c, state in rows if state == "completed"}
        return {
            (str(r), str(c))
            for r, c, state in rows
            if state not in ("completed", "cancelled") and (str(r), str(c)) not in finished
        }

    def verifications(self) -> dict[str, Verification]:
        """Path of a model's (first) file or folder -> its last verification."""
        stored = self._database.get_setting(_VERIFIED_KEY)
        if not isinstance(stored, dict):
            return {}
        result = {}
        for path, data in stored.items():
            try:
                result[str(path)] = Verification.from_json(data)
            except (KeyError, TypeError, ValueError):
                continue
        return result

    def save_verification(self, path: str, verification: Verification) -> None:
        stored = self._database.get_setting(_VERIFIED_KEY)
        current = dict(stored) if isinstance(stored, dict) else {}
        current[path] = verification.to_json()
        self._database.set_setting(_VERIFIED_KEY, current)

    def card_licenses(self) -> dict[str, str]:
        """repo id -> the license of its card as last fetched from the hub (any endpoint)."""
        result: dict[str, str] = {}
        for repo_id, payload in self._database.fetch_all(
            "SELECT repo_id, payload FROM hub_snapshots WHERE kind = 'card' ORDER BY fetched_at"
        ):
            try:
                metadata = json.loads(payload).get("metadata") or {}
            except (ValueError, AttributeError):
                continue
            value = metadata.get("license") if isinstance(metadata, dict) else None
            if isinstance(value, list) and value:
                value = value[0]
            if isinstance(value, str) and value.strip():
                result[str(repo_id)] = value.strip()
        return result

    # -- what was seen --------------------------------------------------------------------

    def seen(self) -> dict[Path, Seen]:
        stored = self._database.get_setting(_SEEN_KEY)
        if not isinstance(stored, dict):
            return {}
        result: dict[Path, Seen] = {}
        for path, data in stored.items():
            try:
                result[Path(path)] = Seen.from_json(data)
            except (KeyError, TypeError, ValueError):
                continue  # written by another version: only a "missing" row is lost
        return result

    def save_seen(self, seen: dict[Path, Seen]) -> None:
        self._database.set_setting(
            _SEEN_KEY, {str(path): item.to_json() for path, item in sorted(seen.items())} or None
        )

    def forget_seen(self, paths: Iterable[Path]) -> None:
        seen = self.seen()
        removed = [seen.pop(path) for path in paths if path in seen]
        if removed:
            self.save_seen(seen)


def _parse_time(text: object) -> datetime | None:
    if not isinstance(text, str):
        return None
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        return None

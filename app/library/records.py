"""The library's own records in the app database: imports, extra folders, sha256 memos, and
what was last seen in the places the user named (so an unplugged drive's models stay listed).

Tables `library_imports`, `library_folders` and `file_hashes` come from the schema (migration
3). What was seen is kept as one JSON value under the settings key `library.seen`: it is a
memo, rewritten only when it changes, and losing it only loses the "missing" rows.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from app.library.found import Details
from app.library.sniff import CheckpointFormat, ModelKind
from app.store import Database

_SEEN_KEY = "library.seen"
_USED_KEY = "library.used"
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

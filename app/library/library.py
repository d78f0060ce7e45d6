"""`Library`: every model on this machine in one list, found in place, never copied.

Sources: the HF cache (`hf_cache`), the user's imports and extra folders (recorded in the app
database), and other apps' folders (`other_apps`). Headers are read with `sniff` once per
(path, size, mtime) and kept in memory; a file is hashed only when another copy of the same
size exists, and the hash is remembered in `file_hashes`.

All methods block (disk I/O); the UI calls them on a worker thread. One lock serialises them.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import os
import re
import threading
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from app.errors import CheckpointError
from app.hub.civitai.provenance import read_sidecar, sidecar_path
from app.hub.repo_files import parse_quantization
from app.hub.security import ScanLevel
from app.library.catalog import ImportResult, LibraryEntry, Location, Source
from app.library.deletion import DeletePlan, PlanContext, carry_out, plan_delete
from app.library.errors import EntryNotFoundError, FolderNotFoundError
from app.library.found import Details, Found, stat_or_none
from app.library.hf_cache import LicenseCache, find_in_hf_cache
from app.library.merging import build_entries, identity_path
from app.library.modelscope_cache import find_in_modelscope
from app.library.other_apps import (
    AppFolders,
    find_in_gpt4all,
    find_in_lm_studio,
    find_in_ollama,
)
from app.library.projectors import with_projectors
from app.library.provenance import (
    FileToVerify,
    LicenseSource,
    Progress,
    Provenance,
    Verification,
    VerifyResult,
    reference_of_blob,
    verify_files,
)
from app.library.records import DownloadRecord, LibraryRecords, Seen
from app.library.sniff import (
    Checkpoint,
    CheckpointFormat,
    ModelKind,
    find_checkpoints,
    sniff,
)
from app.store import Database
from app.text import one_line

if TYPE_CHECKING:
    from huggingface_hub import HFCacheInfo

PICKLE_REASON = "pickle — can run code when loaded; not supported"

_log = logging.getLogger(__name__)
_SPLIT_SUFFIX = re.compile(r"-\d{5}-of-\d{5}$")
_BLOB_NAME = re.compile(r"^(?:sha256[-:])?([0-9a-f]{64})$")
_SniffKey = tuple[Path, int, int]


def _utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class _Scan:
    """The last scan: its entries with their records, and what a delete plan needs."""

    entries: list[LibraryEntry]
    members: dict[str, list[Found]]  # entry key -> its records, best copy first
    context: PlanContext


class Library:
    """The models on this machine: scan, import, watch folders, delete (planned first).

    Args:
        database: the app database (imports, folders, sha256 memos).
        hf_cache_dir: the HF hub cache (`Settings.resolved_cache_dir()`); may not exist yet.
        app_folders: where LM Studio, Ollama and GPT4All keep models (default: this
            platform's folders; `AppFolders()` looks nowhere).
        clock: the time recorded for imports and folders.
    """

    def __init__(
        self,
        database: Database,
        *,
        hf_cache_dir: Path,
        app_folders: AppFolders | None = None,
        clock: Callable[[], datetime] = _utc_now,
    ) -> None:
        self._records = LibraryRecords(database)
        self._database = database
        self._hf_cache_dir = Path(os.path.abspath(hf_cache_dir.expanduser()))
        self._app_folders = AppFolders.for_this_platform() if app_folders is None else app_folders
        self._clock = clock
        self._lock = threading.RLock()
        self._headers: dict[_SniffKey, Checkpoint | CheckpointError] = {}
        self._licenses: LicenseCache = {}
        self._last: _Scan | None = None

    # -- listing --------------------------------------------------------------------------

    def scan(self) -> list[LibraryEntry]:
        """Look everywhere and return every model, sorted by name (blocking).

        Never raises for a missing or unreadable place: a missing extra folder or import
        shows its last known models with `present=False`; unreadable files get a `warning`.
        """
        with self._lock:
            used: dict[_SniffKey, Checkpoint | CheckpointError] = {}
            hf_info = self._scan_hf_cache()
            found: list[Found] = []
            if hf_info is not None:
                found += _without_snapshots_being_filled(
                    find_in_hf_cache(hf_info, licenses=self._licenses),
                    hf_info,
                    self._records.snapshots_being_filled(),
                )
            seen = self._records.seen()
            user_found = self._imported(seen, used) + self._in_folders(seen, used)
            found += user_found
            apps = self._app_folders
            found += find_in_lm_studio(apps.lm_studio)
            found += find_in_ollama(apps.ollama)
            found += find_in_gpt4all(apps.gpt4all)
            found += find_in_modelscope(apps.modelscope)
            found += self._in_civitai_folders(used)
            found = [self._with_details(item, used) for item in found]
            found = self._with_hashes(found)
            self._headers = used  # forget headers of files that are gone or changed
            self._remember(seen, found)
            found = self._with_last_use(found)
            pairs = build_entries(found)
            revisions: dict[tuple[str, str], list[Found]] = {}
            for item in found:
                if item.location.source is Source.HF_CACHE:
                    key = (item.location.repo_id or "", item.location.revision or "")
                    revisions.setdefault(key, []).append(item)
            context = PlanContext(
                hf_info=hf_info, hf_cache_dir=self._hf_cache_dir, revision_models=revisions
            )
            pairs = self._with_provenance(pairs, hf_info)
            entries = with_projectors([entry for entry, _members in pairs])
            self._last = _Scan(entries, {e.key: m for e, m in pairs}, context)
            return entries

    def find(self, query: str) -> list[LibraryEntry]:
        """Entries matching an entry key (or a unique start of one, or of its sha256), a repo
        id, a name (any copy's: "llama3:8b" finds the Ollama copy of an HF model) or a path.

        Uses the last scan (scans first if there was none). An exact key wins; a prefix of
        six characters or more counts only when it matches a single entry.
        """
        with self._lock:
            state = self._scan_state()
        entries = state.entries
        by_key = [entry for entry in entries if entry.key == query]
        if by_key:
            return by_key
        if len(query) >= 6:
            prefixed = [
                entry
                for entry in entries
                if entry.key.startswith(query) or (entry.sha256 or "").startswith(query)
            ]
            if len(prefixed) == 1:
                return prefixed
        path = os.path.abspath(Path(query).expanduser())
        real = os.path.realpath(path)

        def matches(member: Found) -> bool:
            if query in (member.name, member.location.repo_id):
                return True
            if str(member.path) in (path, real):
                return True
            return member.real_path is None and os.path.realpath(member.path) == real

        return [entry for entry in entries if any(matches(m) for m in state.members[entry.key])]

    # -- provenance -----------------------------------------------------------------------

    def verify(self, entry_key: str, *, progress: Progress | None = None) -> VerifyResult:
        """Re-hash the model's files (its first copy on disk, the one a runtime loads) against
        what the hub published (blocking; `progress` is called on this thread).

        HF cache files are compared with their blob's name (an LFS file's sha256, a small
        file's git object id) or the sha256 the download record kept; an import with the
        sha256 recorded when it was hashed before. The outcome is remembered, with its time,
        as the entry's last verification. The lock is not held while hashing.

        Raises:
            EntryNotFoundError: no such entry, or no copy of it is on disk now.
        """
        with self._lock:
            state = self._scan_state()
            members = state.members.get(entry_key)
            if members is None:
                raise EntryNotFoundError(f"No model {entry_key!r} in the library.", query=entry_key)
            member = next((m for m in members if m.location.present), None)
            if member is None:
                raise EntryNotFoundError(
                    f"No copy of {members[0].name} is on disk now.", query=entry_key
                )
            files = self._files_to_verify(member)
        result = verify_files(member.name, files, at=self._clock(), progress=progress)
        verification = Verification(at=result.at, intact=result.intact, summary=result.summary())
        with self._lock:
            self._records.save_verification(str(member.location.path), verification)
            last = self._last
            if last is not None:
                self._last = dataclasses.replace(
                    last, entries=[_verified(e, entry_key, verification) for e in last.entries]
                )
        return result

    def _files_to_verify(self, member: Found) -> list[FileToVerify]:
        if member.cache_files:
            snapshot = _snapshot_of(member)
            recorded = self._recorded_sha256(member)
            files = []
            for file in sorted(member.cache_files, key=lambda f: str(f.file_path)):
                name = _relative(file.file_path, snapshot)
                sha256, oid = reference_of_blob(file.blob_path.name)
                sha256 = sha256 or recorded.get(name)
                files.append(
                    FileToVerify(path=file.blob_path, name=name, sha256=sha256, git_oid=oid)
                )
            return files
        recorded_import = {
            record.path: record.sha256 for record in self._records.imports() if record.sha256
        }
        parts = member.parts if not member.is_folder else ()
        if member.is_folder:
            parts = tuple(
                sorted(p for p in member.path.rglob("*") if p.is_file() and not p.is_symlink())
            )
        result = []
        for index, part in enumerate(parts):
            expected = _sha256_from_name(part)
            if expected is None and index == 0:
                expected = recorded_import.get(part)
            name = _relative(part, member.path) if member.is_folder else part.name
            result.append(FileToVerify(path=part, name=name, sha256=expected))
        return result

    def _recorded_sha256(self, member: Found) -> dict[str, str]:
        """Path in the repository -> sha256 the download records of this commit kept."""
        result: dict[str, str] = {}
        for record in self._records.downloads():
            if (record.repo_id, record.commit) == (member.location.repo_id, _commit(member)):
                result.update({path: sha for path, sha in record.files.items() if sha})
        return result

    def _with_provenance(
        self, pairs: list[tuple[LibraryEntry, list[Found]]], hf_info: HFCacheInfo | None
    ) -> list[tuple[LibraryEntry, list[Found]]]:
        refs: dict[tuple[str, str], list[str]] = {}
        for repo in hf_info.repos if hf_info is not None else ():
            for revision in repo.revisions:
                refs[(repo.repo_id, revision.commit_hash)] = sorted(revision.refs)
        downloads = self._records.downloads()
        verifications = self._records.verifications()
        cards: dict[str, str] | None = None
        result = []
        for entry, members in pairs:
            hub_member = next((m for m in members if m.location.source is Source.HF_CACHE), None)
            license_, license_source = entry.license, None
            if license_:
                license_source = LicenseSource.AT_DOWNLOAD if hub_member else None
            elif hub_member is not None and hub_member.location.repo_id:
                if cards is None:
                    cards = self._records.card_licenses()
                license_ = cards.get(hub_member.location.repo_id)
                license_source = LicenseSource.CURRENT_CARD if license_ else None
            location = entry.usable_location or entry.locations[0]
            verification = verifications.get(str(location.path))
            if hub_member is None:
                civitai = read_sidecar(location.path) if location.path.is_file() else None
                if civitai is not None and license_ is None:
                    license_, license_source = civitai.license_id, LicenseSource.AT_DOWNLOAD
                provenance = Provenance(
                    civitai=civitai,
                    hub=None,
                    repo_id=None,
                    revision=None,
                    commit=None,
                    downloaded_at=None,
                    downloaded_by_modeldeck=False,
                    sha256=entry.sha256,
                    verification=verification,
                    license=license_,
                    license_source=license_source,
                )
            else:
                repo_id = hub_member.location.repo_id or ""
                commit = _commit(hub_member)
                record = _download_of(downloads, hub_member, repo_id, commit)
                ref_names = refs.get((repo_id, commit or ""), [])
                if record is not None:
                    ref = record.ref
                elif "main" in ref_names:
                    ref = "main"
                else:
                    ref = ref_names[0] if ref_names else None
                provenance = Provenance(
                    scans=_scans_of(downloads, members, repo_id, commit),
                    hub=record.endpoint if record else None,
                    repo_id=repo_id,
                    revision=ref,
                    commit=commit,
                    downloaded_at=record.finished_at if record else None,
                    downloaded_by_modeldeck=record is not None,
                    sha256=entry.sha256,
                    verification=verification,
                    license=license_,
                    license_source=license_source,
                )
            result.append((dataclasses.replace(entry, provenance=provenance), members))
        return result

    # -- imports and folders --------------------------------------------------------------

    def import_paths(self, paths: Sequence[Path]) -> ImportResult:
        """Record checkpoints to use in place (nothing is copied), then scan.

        Each path may be a .gguf or .safetensors file, a diffusers folder (an HF cache
        snapshot included), or a folder holding any of these (walked with
        `find_checkpoints`; an HF cache repo folder is read through its snapshots). Pickle
        checkpoints are turned down (loading one can run code); so is anything `sniff`
        cannot read, with its reason in one line.
        """
        rejected: list[tuple[Path, str]] = []
        recorded: list[Path] = []
        with self._lock:
            for raw in paths:
                path = Path(os.path.abspath(Path(raw).expanduser()))
                accepted, turned_down = _checkpoints_at(path)
                rejected += turned_down
                for item, checkpoint in accepted:
                    self._records.add_import(
                        item,
                        sha256=_sha256_from_name(item),
                        kind=checkpoint.kind.value,
                        when=self._clock(),
                    )
                    recorded.append(item)
            entries = self.scan()
        wanted = set(recorded)
        imported = [
            entry
            for entry in entries
            if any(loc.source is Source.IMPORT and loc.path in wanted for loc in entry.locations)
        ]
        return ImportResult(imported=imported, rejected=rejected)

    def folders(self) -> list[Path]:
        """The extra folders the library looks in."""
        return self._records.folders()

    def add_folder(self, path: Path) -> None:
        """Look in `path` (and below) from the next scan on; read-only folders are fine.

        Raises:
            FolderNotFoundError: `path` is not an existing folder.
        """
        folder = Path(os.path.abspath(path.expanduser()))
        if not folder.is_dir():
            raise FolderNotFoundError(
                f"{folder} is not a folder.", hint="Choose a folder that holds model files."
            )
        self._records.add_folder(folder, when=self._clock())

    def remove_folder(self, path: Path) -> None:
        """Stop looking in `path`; nothing on disk changes."""
        folder = Path(os.path.abspath(path.expanduser()))
        with self._lock:
            self._records.remove_folder(folder)
            imports = {record.path for record in self._records.imports()}
            self._records.forget_seen(
                item
                for item in self._records.seen()
                if _is_inside(item, folder) and item not in imports
            )

    # -- use ----------------------------------------------------------------------------------

    def mark_used(self, path: Path, *, when: datetime | None = None) -> None:
        """Remember that ModelDeck loaded the model at `path` (its file, first part or folder)
        now, for the next scan's `last_used` (every copy of the same file shares it)."""
        real = os.path.realpath(Path(path).expanduser())
        with self._lock:
            self._records.mark_used(real, when or self._clock())

    def _with_last_use(self, found: list[Found]) -> list[Found]:
        used = self._records.used()
        if not used:
            return found
        result = []
        for item in found:
            when = used.get(identity_path(item)) or used.get(str(item.path))
            result.append(dataclasses.replace(item, last_used=when) if when else item)
        return result

    # -- deleting -------------------------------------------------------------------------

    def plan_delete(
        self,
        entry_key: str,
        locations: Sequence[Location] | None = None,
        *,
        delete_imported_files: bool = False,
    ) -> DeletePlan:
        """What deleting a model would do: paths, bytes freed, which apps need a second yes.

        Args:
            entry_key: the entry's `key` (from the last scan).
            locations: the copies to delete (default: all of them).
            delete_imported_files: also delete imported files, not just forget them.

        Raises:
            EntryNotFoundError: no such entry, or a location that is not one of its copies.
        """
        return self.plan_delete_all(
            [entry_key], locations, delete_imported_files=delete_imported_files
        )

    def plan_delete_all(
        self,
        entry_keys: Sequence[str],
        locations: Sequence[Location] | None = None,
        *,
        delete_imported_files: bool = False,
    ) -> DeletePlan:
        """`plan_delete` for several entries at once (e.g. every model of one repository), so
        that a cache revision whose models all go is deleted whole."""
        with self._lock:
            state = self._scan_state()
            chosen: list[Found] = []
            names: list[str] = []
            known: set[Location] = set()
            for key in entry_keys:
                members = state.members.get(key)
                if members is None:
                    raise EntryNotFoundError(f"No model {key!r} in the library.", query=key)
                names.append(members[0].name)
                known.update(member.location for member in members)
                wanted = None if locations is None else set(locations)
                chosen += [m for m in members if wanted is None or m.location in wanted]
            for location in locations or ():
                if location not in known:
                    raise EntryNotFoundError(
                        f"{location.path} is not a copy of {', '.join(names)}.",
                        query=str(location.path),
                    )
            name = names[0] if len(names) == 1 else f"{len(names)} models"
            return plan_delete(
                tuple(entry_keys),
                name,
                chosen,
                state.context,
                delete_imported_files=delete_imported_files,
            )

    def execute(self, plan: DeletePlan, *, confirm_other_apps: bool = False) -> int:
        """Carry out a plan from `plan_delete`; returns the bytes freed.

        Nothing on a drive that is not there is touched.

        Raises:
            DeleteRefusedError: the plan deletes another app's files and `confirm_other_apps`
                is False (nothing was deleted).
            DeleteFailedError: the system refused a deletion.
        """
        with self._lock:
            try:
                return carry_out(plan, self._records, confirm_other_apps=confirm_other_apps)
            finally:
                self._last = None  # the next plan starts from a fresh scan

    # -- scanning, in parts ---------------------------------------------------------------

    def _scan_state(self) -> _Scan:
        if self._last is None:
            self.scan()
        assert self._last is not None
        return self._last

    def _scan_hf_cache(self) -> HFCacheInfo | None:
        from huggingface_hub import scan_cache_dir
        from huggingface_hub.errors import CacheNotFound

        if not self._hf_cache_dir.is_dir():
            return None
        try:
            return scan_cache_dir(self._hf_cache_dir)
        except (CacheNotFound, ValueError, OSError) as exc:
            _log.warning("could not read the HF cache at %s: %s", self._hf_cache_dir, exc)
            return None

    def _imported(
        self, seen: dict[Path, Seen], used: dict[_SniffKey, Checkpoint | CheckpointError]
    ) -> list[Found]:
        result = []
        for record in self._records.imports():
            path = record.path
            if os.path.exists(path):
                found = self._found_at(path, Source.IMPORT, used)
                if found is None:
                    found = _unreadable(path, Source.IMPORT, record.kind, self._header(path, used))
                # The record's sha256 is not trusted here: the file may have changed since.
                # The memo in file_hashes, checked against size and mtime, serves instead.
                result.append(found)
            else:
                result.append(
                    _remembered(path, Source.IMPORT, seen.get(path), record.sha256, record.kind)
                )
        return result

    def _in_folders(
        self, seen: dict[Path, Seen], used: dict[_SniffKey, Checkpoint | CheckpointError]
    ) -> list[Found]:
        result: list[Found] = []
        for folder in self._records.folders():
            if not folder.is_dir():
                result += [
                    _remembered(path, Source.FOLDER, item, item.sha256, None)
                    for path, item in seen.items()
                    if _is_inside(path, folder)
                ]
                continue
            covered: set[Path] = set()
            for path in find_checkpoints(folder):
                if path in covered:
                    continue
                found = self._found_at(path, Source.FOLDER, used)
                if found is None:
                    continue
                covered.update(found.parts)
                result.append(found)
        return result

    def _in_civitai_folders(
        self, used: dict[_SniffKey, Checkpoint | CheckpointError]
    ) -> list[Found]:
        """The models in the Civitai models folder (and its kinds' folders outside it, like
        A1111's embeddings), as the Civitai settings name them."""
        from app.hub.civitai.settings import FolderKind, load_civitai_settings

        settings = load_civitai_settings(self._database)
        root = settings.resolved_models_dir()
        roots = [root] + [
            folder
            for folder in map(settings.folder_for, FolderKind)
            if not _is_inside(folder, root)
        ]
        result: list[Found] = []
        for folder in roots:
            if not folder.is_dir():
                continue
            for path in find_checkpoints(folder):
                found = self._found_at(path, Source.CIVITAI, used)
                if found is None:
                    continue
                sidecar = sidecar_path(path)
                if sidecar.is_file():  # deleting the model deletes what it says of it
                    found = dataclasses.replace(
                        found, managed_paths=(*found.managed_paths, sidecar)
                    )
                result.append(found)
        return result

    def _found_at(
        self, path: Path, source: Source, used: dict[_SniffKey, Checkpoint | CheckpointError]
    ) -> Found | None:
        """A user file or folder as a `Found`, from its header; None if it cannot be read or is
        a pickle (those are never listed as usable)."""
        stat = stat_or_none(path)
        if stat is None:
            return None
        key = (path, stat.st_size, stat.st_mtime_ns)
        checkpoint = self._sniff(key, used)
        if isinstance(checkpoint, CheckpointError) or checkpoint.format is CheckpointFormat.PICKLE:
            return None
        is_folder = checkpoint.format is CheckpointFormat.DIFFUSERS
        parts = checkpoint.split_parts or (path,)
        stem = path.name if is_folder else _SPLIT_SUFFIX.sub("", path.stem)
        return Found(
            location=Location(
                path=path, source=source, owned_by_other_app=self._belongs_to_other_app(path)
            ),
            parts=parts,
            size=checkpoint.size,
            first_size=0 if is_folder else stat.st_size,
            mtime_ns=stat.st_mtime_ns,
            sha256=None if is_folder else _sha256_from_name(path),
            name=checkpoint.name if is_folder and checkpoint.name else stem,
            kind=checkpoint.kind,
            quantization=None if is_folder else parse_quantization(path.name),
            details=Details.of(checkpoint),
            is_folder=is_folder,
        )

    def _header(
        self, path: Path, used: dict[_SniffKey, Checkpoint | CheckpointError]
    ) -> Checkpoint | CheckpointError:
        stat = stat_or_none(path)
        if stat is None:
            return CheckpointError(f"{path} cannot be read", path=str(path))
        return self._sniff((path, stat.st_size, stat.st_mtime_ns), used)

    def _sniff(
        self, key: _SniffKey, used: dict[_SniffKey, Checkpoint | CheckpointError]
    ) -> Checkpoint | CheckpointError:
        result = self._headers.get(key) or used.get(key)
        if result is None:
            result = sniff_or_error(key[0])
        used[key] = result
        return result

    def _with_details(
        self, found: Found, used: dict[_SniffKey, Checkpoint | CheckpointError]
    ) -> Found:
        """Read the header of an app's or the HF cache's model (imports and folders have it)."""
        if found.details is not None or not found.location.present:
            return found
        if found.is_folder and found.kind is not ModelKind.DIFFUSERS_PIPELINE:
            return found  # a whole revision of something else: nothing to read
        key = (found.path, found.first_size, found.mtime_ns)
        checkpoint = self._sniff(key, used)
        if isinstance(checkpoint, CheckpointError):
            return dataclasses.replace(
                found,
                kind=found.kind or ModelKind.OTHER,
                warning=checkpoint.message,
                unreadable=one_line(checkpoint.message),
            )
        return dataclasses.replace(found, details=Details.of(checkpoint))

    def _with_hashes(self, found: list[Found]) -> list[Found]:
        """Hash the files that may be copies of one another: same size, different files."""
        by_size: dict[int, list[int]] = {}
        for index, item in enumerate(found):
            if not item.is_folder and item.first_size > 0:
                by_size.setdefault(item.first_size, []).append(index)
        memo: dict[Path, tuple[int, int, str]] | None = None
        result = list(found)
        for indexes in by_size.values():
            if len(indexes) < 2 or len({identity_path(found[i]) for i in indexes}) < 2:
                continue
            for index in indexes:
                item = result[index]
                if item.sha256 is not None or not item.location.present:
                    continue
                if memo is None:
                    memo = self._records.hashes()
                sha256 = self._sha256(item, memo)
                if sha256 is None:
                    continue
                result[index] = dataclasses.replace(item, sha256=sha256)
                if item.location.source is Source.IMPORT:
                    self._records.set_import_sha256(item.path, sha256)
        return result

    def _sha256(self, item: Found, memo: dict[Path, tuple[int, int, str]]) -> str | None:
        path = item.parts[0]
        known = memo.get(path)
        if known is not None and known[:2] == (item.first_size, item.mtime_ns):
            return known[2]
        try:
            with path.open("rb") as handle:
                sha256 = hashlib.file_digest(handle, "sha256").hexdigest()
        except OSError as exc:
            _log.warning("could not hash %s: %s", path, exc)
            return None
        self._records.save_hash(path, size=item.first_size, mtime_ns=item.mtime_ns, sha256=sha256)
        return sha256

    def _remember(self, seen: dict[Path, Seen], found: Iterable[Found]) -> None:
        """Keep what the user's own places hold, for when their drive is not there."""
        current: dict[Path, Seen] = {}
        folders = self._records.folders()
        imports = {record.path for record in self._records.imports()}
        present_folders = [folder for folder in folders if folder.is_dir()]
        for path, item in seen.items():
            keep_import = path in imports and not os.path.exists(path)
            keep_folder = any(_is_inside(path, f) for f in folders) and not any(
                _is_inside(path, f) for f in present_folders
            )
            if keep_import or keep_folder:
                current[path] = item
        for record in found:
            source = record.location.source
            if record.location.present and source in (Source.IMPORT, Source.FOLDER):
                current[record.path] = Seen(
                    name=record.name,
                    parts=record.parts,
                    size=record.size,
                    first_size=record.first_size,
                    sha256=record.sha256,
                    is_folder=record.is_folder,
                    details=record.details,
                )
        if current != seen:
            self._records.save_seen(current)

    def _belongs_to_other_app(self, path: Path) -> bool:
        apps = self._app_folders
        return any(
            _is_inside(path, root)
            for root in (*apps.lm_studio, *apps.ollama, *apps.gpt4all, *apps.modelscope)
        )


def _checkpoints_at(path: Path) -> tuple[list[tuple[Path, Checkpoint]], list[tuple[Path, str]]]:
    """What an import of `path` takes: checkpoints to record, and what is turned down (why)."""
    if not os.path.exists(path):
        return [], [(path, "no such file or folder")]
    if path.is_dir():
        pipeline = sniff_or_error(path)
        if not isinstance(pipeline, CheckpointError):
            return [(path, pipeline)], []  # a diffusers pipeline (or a cache snapshot)
        root = (
            path / "snapshots"
            if (path / "snapshots").is_dir() and (path / "blobs").is_dir()
            else path
        )
        accepted: list[tuple[Path, Checkpoint]] = []
        rejected: list[tuple[Path, str]] = []
        for candidate in find_checkpoints(root):
            taken, turned_down = _checkpoint_file(candidate)
            accepted += taken
            rejected += turned_down
        if not accepted and not rejected:
            rejected.append(
                (path, "no model files in this folder (.gguf, .safetensors or a diffusers folder)")
            )
        return accepted, rejected
    return _checkpoint_file(path)


def sniff_or_error(path: Path) -> Checkpoint | CheckpointError:
    """`sniff`, with any failure as a `CheckpointError` value: one bad file never ends a scan.

    `sniff` bounds every claim of a header and raises only `CheckpointError`; an exception of
    another kind is a bug in that bounding, met on a file a stranger may have written. It is
    logged with its traceback (to be fixed) and the file is listed as unreadable, instead of
    failing the whole scan or import for every other model.
    """
    try:
        return sniff(path)
    except CheckpointError as exc:
        return exc
    except Exception as exc:  # see the docstring: logged with its traceback
        _log.exception("reading the header of %s failed unexpectedly", path)
        return CheckpointError(
            f"{path.name}: its header could not be read ({type(exc).__name__})",
            path=str(path),
            hint="The file may be damaged; download it again.",
        )


def _checkpoint_file(path: Path) -> tuple[list[tuple[Path, Checkpoint]], list[tuple[Path, str]]]:
    checkpoint = sniff_or_error(path)
    if isinstance(checkpoint, CheckpointError):
        return [], [(path, one_line(checkpoint.message))]
    if checkpoint.format is CheckpointFormat.PICKLE:
        return [], [(path, PICKLE_REASON)]
    return [(path, checkpoint)], []


def _remembered(
    path: Path, source: Source, seen: Seen | None, sha256: str | None, kind: str | None
) -> Found:
    """A user's model whose drive or folder is not there: what was last seen of it."""
    try:
        fallback_kind = ModelKind(kind) if kind else ModelKind.OTHER
    except ValueError:
        fallback_kind = ModelKind.OTHER
    return Found(
        location=Location(path=path, source=source, present=False),
        parts=seen.parts if seen else (path,),
        size=seen.size if seen else 0,
        first_size=seen.first_size if seen else 0,
        mtime_ns=0,
        sha256=(seen.sha256 if seen else None) or sha256,
        name=seen.name if seen else _SPLIT_SUFFIX.sub("", path.stem) if path.suffix else path.name,
        kind=seen.details.kind if seen and seen.details else fallback_kind,
        details=seen.details if seen else None,
        is_folder=seen.is_folder if seen else False,
    )


def _unreadable(
    path: Path, source: Source, kind: str | None, header: Checkpoint | CheckpointError
) -> Found:
    """An import that is there but cannot be used any more (damaged, now a pickle, …)."""
    stat = stat_or_none(path)
    unreadable = None
    if isinstance(header, CheckpointError):
        warning = unreadable = header.message
    else:
        warning = header.warning or PICKLE_REASON
    found = _remembered(path, source, None, None, kind)
    return dataclasses.replace(
        found,
        location=dataclasses.replace(found.location, present=True),
        size=stat.st_size if stat else 0,
        first_size=stat.st_size if stat else 0,
        mtime_ns=stat.st_mtime_ns if stat else 0,
        warning=warning,
        unreadable=one_line(unreadable) if unreadable else None,
        is_folder=path.is_dir(),
    )


def _sha256_from_name(path: Path) -> str | None:
    """The sha256 a content-addressed store names the file by (HF cache, Ollama), if any."""
    real = Path(os.path.realpath(path))
    match = _BLOB_NAME.match(real.name)
    return match.group(1) if match and real.parent.name == "blobs" else None


def _commit(member: Found) -> str | None:
    return member.location.revision


def _snapshot_of(member: Found) -> Path:
    """The snapshot folder an HF cache record's files are in."""
    path = member.path
    while path.parent.name != "snapshots" and path.parent != path:
        path = path.parent
    return path


def _relative(path: Path, folder: Path) -> str:
    try:
        return path.relative_to(folder).as_posix()
    except ValueError:
        return path.name


def _download_of(
    downloads: Sequence[DownloadRecord], member: Found, repo_id: str, commit: str | None
) -> DownloadRecord | None:
    """The latest ModelDeck download of this commit, one that fetched this file first."""
    mine = [d for d in downloads if (d.repo_id, d.commit) == (repo_id, commit)]
    if not mine:
        return None
    name = _relative(member.path, _snapshot_of(member))
    with_file = [d for d in mine if name in d.files]
    return (with_file or mine)[-1]


def _without_snapshots_being_filled(
    found: list[Found], hf_info: HFCacheInfo, being_filled: set[tuple[str, str]]
) -> list[Found]:
    """`found` less the files of revisions a download is still filling that no ref names:
    an update's new snapshot is shown (in Downloads) only until the ref moves to it, so a
    half-filled or failed one is never taken for a second copy of the model."""
    if not being_filled:
        return found
    with_refs = {
        (repo.repo_id, revision.commit_hash)
        for repo in hf_info.repos
        for revision in repo.revisions
        if revision.refs
    }
    hidden = being_filled - with_refs
    return [
        item
        for item in found
        if (item.location.repo_id or "", item.location.revision or "") not in hidden
    ]


def _scans_of(
    downloads: Sequence[DownloadRecord], members: Sequence[Found], repo_id: str, commit: str | None
) -> tuple[tuple[str, ScanLevel], ...]:
    """The hub's verdicts recorded when this commit's files of the entry were downloaded (the
    latest download of each file wins)."""
    names = {
        _relative(m.path, _snapshot_of(m)) for m in members if m.location.source is Source.HF_CACHE
    }
    scans: dict[str, ScanLevel] = {}
    for record in downloads:
        if (record.repo_id, record.commit) == (repo_id, commit):
            scans.update({p: level for p, level in record.scans.items() if p in names})
    return tuple(sorted(scans.items()))


def _verified(entry: LibraryEntry, key: str, verification: Verification) -> LibraryEntry:
    if entry.key != key or entry.provenance is None:
        return entry
    provenance = dataclasses.replace(entry.provenance, verification=verification)
    return dataclasses.replace(entry, provenance=provenance)


def _is_inside(path: Path, folder: Path) -> bool:
    return path == folder or folder in path.parents

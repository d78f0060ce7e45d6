"""Where a library model came from, and whether its files are still what the hub published.

`Provenance` is read from what is already stored: the HF cache (the repository, the commit a
snapshot holds, the refs pointing at it, blobs named by their sha256), ModelDeck's download
records (the hub endpoint, the ref asked for, when the download finished, the sha256 the hub
listed), the card cached from the hub, and the library's own memo of verifications.

`verify_files` re-hashes files against those references: an LFS blob is named by its sha256,
a small file's blob by its git object id (sha1 of "blob <size>\\0" + content), and a download
record or an import keeps the sha256 seen before.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from pathlib import Path
from typing import Any

from app.hub.civitai.provenance import CivitaiProvenance
from app.hub.security import ScanLevel

_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_GIT_OID = re.compile(r"^[0-9a-f]{40}$")
_CHUNK = 1 << 20

Progress = Callable[[int, int], None]  # (bytes hashed so far, bytes in all)


class LicenseSource(StrEnum):
    """Where the license shown comes from."""

    # The card (README.md) of the commit on disk: the license as it was when downloaded.
    AT_DOWNLOAD = "at-download"
    # The card as last fetched from the hub: today's license, not necessarily the one then.
    CURRENT_CARD = "current-card"

    @property
    def label(self) -> str:
        return _LICENSE_LABELS[self]


_LICENSE_LABELS = {
    LicenseSource.AT_DOWNLOAD: "as at download (the card of the downloaded commit)",
    LicenseSource.CURRENT_CARD: "the card's current license (not recorded at download)",
}


@dataclass(frozen=True, kw_only=True)
class Verification:
    """The last time a model's files were re-hashed, and what came out."""

    at: datetime
    intact: bool
    summary: str  # one line for a person

    def to_json(self) -> dict[str, Any]:
        return {"at": self.at.isoformat(), "intact": self.intact, "summary": self.summary}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Verification:
        return cls(
            at=datetime.fromisoformat(str(data["at"])),
            intact=bool(data["intact"]),
            summary=str(data.get("summary") or ""),
        )


@dataclass(frozen=True, kw_only=True)
class Provenance:
    """Where one library entry came from.

    `hub` is the endpoint ModelDeck downloaded it from, or "huggingface" for an HF cache copy
    whose download ModelDeck did not record (another tool fetched it); None when it did not
    come from a hub (an import, a folder, another app's copy). `revision` is the ref it was
    pulled at ("main", a tag) when known; None with a `commit` means a pinned commit or an
    unknown ref. `downloaded_at` is set only for downloads ModelDeck made.
    """

    hub: str | None
    repo_id: str | None
    revision: str | None
    commit: str | None
    downloaded_at: datetime | None
    downloaded_by_modeldeck: bool
    sha256: str | None
    verification: Verification | None
    license: str | None
    license_source: LicenseSource | None
    # The hub's security scan of each file when ModelDeck planned its download, by path in
    # the repository; empty when not recorded (not downloaded by ModelDeck, or before it
    # kept them).
    scans: tuple[tuple[str, ScanLevel], ...] = ()
    # The Civitai model version the file is (downloaded from Civitai, or found by Identify):
    # read from the `<name>.civitai.info` beside it.
    civitai: CivitaiProvenance | None = None

    @property
    def worst_scan(self) -> ScanLevel | None:
        """The worst recorded verdict; None when none was recorded."""
        return max((level for _, level in self.scans), key=lambda level: level.rank, default=None)

    def to_json(self) -> dict[str, Any]:
        """JSON-ready (`modeldeck list --json`)."""
        return {
            "hub": self.hub,
            "repo_id": self.repo_id,
            "revision": self.revision,
            "commit": self.commit,
            "downloaded_at": self.downloaded_at.isoformat() if self.downloaded_at else None,
            "downloaded_by_modeldeck": self.downloaded_by_modeldeck,
            "sha256": self.sha256,
            "verified_at": self.verification.at.isoformat() if self.verification else None,
            "verified_intact": self.verification.intact if self.verification else None,
            "license": self.license,
            "license_source": self.license_source.value if self.license_source else None,
            "scans_at_download": {path: level.value for path, level in self.scans} or None,
            "civitai": self.civitai.to_json() if self.civitai else None,
        }

    def lines(self) -> list[str]:
        """For a person: one fact a line (plain text; hub strings are quoted, never markup)."""
        lines: list[str] = []
        if self.repo_id:
            where = f"on {self.hub}" if self.hub else "(hub not recorded: another tool got it)"
            lines.append(f"From {self.repo_id} {where}")
            ref = self.revision or "a pinned commit"
            lines.append(f"Revision: {ref}, commit {self.commit or 'unknown'}")
        elif self.civitai is not None:
            lines += self.civitai.lines()
        else:
            lines.append("Not from a hub (imported, a folder or another app's copy)")
        if self.downloaded_at is not None:
            lines.append(f"Downloaded by ModelDeck: {_when(self.downloaded_at)}")
        else:
            lines.append("Downloaded: unknown (not downloaded by ModelDeck)")
        lines.append(f"sha256: {self.sha256 or 'not computed'}")
        if self.verification is None:
            lines.append("Verified: never")
        else:
            state = "intact" if self.verification.intact else "DAMAGED"
            lines.append(f"Verified: {_when(self.verification.at)}, {state}")
        lines.append(self._scan_line())
        if self.license:
            source = f" ({self.license_source.label})" if self.license_source else ""
            lines.append(f"License: {self.license}{source}")
        else:
            lines.append("License: unknown")
        return lines

    def _scan_line(self) -> str:
        worst = self.worst_scan
        if worst is None:
            return "Hub scan at download: not recorded"
        flagged = [path for path, level in self.scans if level is worst]
        if worst in (ScanLevel.SAFE, ScanLevel.NOT_SCANNED):
            return f"Hub scan at download: {worst.value}"
        more = f" and {len(flagged) - 1} more" if len(flagged) > 1 else ""
        return f"Hub scan at download: {worst.value} ({flagged[0]}{more})"


def _when(moment: datetime) -> str:
    return moment.isoformat(sep=" ", timespec="seconds")


class FileOutcome(StrEnum):
    INTACT = "intact"  # matches what the hub published (or what was recorded)
    DAMAGED = "damaged"  # does not match: changed since it was downloaded
    UNCHECKED = "unchecked"  # nothing to compare with: hashed, nothing more
    MISSING = "missing"  # not there, or unreadable


@dataclass(frozen=True, kw_only=True)
class FileToVerify:
    path: Path  # what is read (a snapshot link is followed)
    name: str  # how a person knows it ("model.Q4_K_M.gguf", "unet/model.safetensors")
    sha256: str | None = None  # what the hub published (or what was recorded)
    git_oid: str | None = None  # a small file's git blob id, when no sha256 is known


@dataclass(frozen=True, kw_only=True)
class FileCheck:
    name: str
    path: Path
    outcome: FileOutcome
    expected: str | None
    actual: str | None  # the sha256 (or git oid, for a small file) computed now
    error: str | None = None


@dataclass(frozen=True, kw_only=True)
class VerifyResult:
    """What `Library.verify` found; `intact` only when every file matched a reference."""

    name: str
    files: tuple[FileCheck, ...]
    at: datetime

    @property
    def intact(self) -> bool:
        return all(check.outcome is not FileOutcome.DAMAGED for check in self.files) and not any(
            check.outcome is FileOutcome.MISSING for check in self.files
        )

    @property
    def damaged(self) -> tuple[FileCheck, ...]:
        return tuple(check for check in self.files if check.outcome is FileOutcome.DAMAGED)

    def summary(self) -> str:
        """One line for a person."""
        bad = [c for c in self.files if c.outcome in (FileOutcome.DAMAGED, FileOutcome.MISSING)]
        if bad:
            first = bad[0]
            if first.outcome is FileOutcome.MISSING:
                why = f"{first.name} cannot be read ({first.error or 'missing'})"
            else:
                why = (
                    f"{first.name} is damaged: its sha256 is {first.actual}, "
                    f"the hub published {first.expected}"
                )
            more = f" (and {len(bad) - 1} more)" if len(bad) > 1 else ""
            return f"{self.name}: {why}{more}. Download it again."
        checked = sum(1 for c in self.files if c.outcome is FileOutcome.INTACT)
        unchecked = len(self.files) - checked
        if checked == 0:
            return (
                f"{self.name}: {unchecked} file{'' if unchecked == 1 else 's'} hashed; nothing "
                "was recorded to compare with (it did not come from a hub)."
            )
        files = f"{checked} file{'' if checked == 1 else 's'}"
        rest = f"; {unchecked} with nothing to compare with (hashed only)" if unchecked else ""
        return f"{self.name}: intact — {files} match what the hub published{rest}."

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "intact": self.intact,
            "at": self.at.isoformat(),
            "summary": self.summary(),
            "files": [
                {
                    "name": c.name,
                    "path": str(c.path),
                    "outcome": c.outcome.value,
                    "expected": c.expected,
                    "actual": c.actual,
                    "error": c.error,
                }
                for c in self.files
            ],
        }


def reference_of_blob(blob_name: str) -> tuple[str | None, str | None]:
    """(sha256, git oid) that an HF cache blob's name states."""
    if _SHA256.match(blob_name):
        return blob_name, None
    if _GIT_OID.match(blob_name):
        return None, blob_name
    return None, None


def verify_files(
    name: str,
    files: Sequence[FileToVerify],
    *,
    at: datetime,
    progress: Progress | None = None,
) -> VerifyResult:
    """Re-hash `files` (blocking, 1 MiB reads) and compare each with its reference."""
    sizes: list[int] = []
    for item in files:
        try:
            sizes.append(item.path.stat().st_size)
        except OSError:
            sizes.append(0)
    total = sum(sizes)
    done = 0
    checks: list[FileCheck] = []
    for item, size in zip(files, sizes, strict=True):
        sha = hashlib.sha256()
        oid = hashlib.sha1(usedforsecurity=False) if item.git_oid else None
        if oid is not None:
            oid.update(f"blob {size}\0".encode())
        try:
            with item.path.open("rb") as handle:
                while chunk := handle.read(_CHUNK):
                    sha.update(chunk)
                    if oid is not None:
                        oid.update(chunk)
                    done += len(chunk)
                    if progress is not None:
                        progress(done, total)
        except OSError as exc:
            checks.append(
                FileCheck(
                    name=item.name,
                    path=item.path,
                    outcome=FileOutcome.MISSING,
                    expected=item.sha256 or item.git_oid,
                    actual=None,
                    error=exc.strerror or str(exc),
                )
            )
            continue
        expected: str | None
        if item.sha256:
            actual, expected = sha.hexdigest(), item.sha256
        elif oid is not None:
            actual, expected = oid.hexdigest(), item.git_oid
        else:
            actual, expected = sha.hexdigest(), None
        if expected is None:
            outcome = FileOutcome.UNCHECKED
        else:
            outcome = FileOutcome.INTACT if actual == expected else FileOutcome.DAMAGED
        checks.append(
            FileCheck(
                name=item.name, path=item.path, outcome=outcome, expected=expected, actual=actual
            )
        )
    return VerifyResult(name=name, files=tuple(checks), at=at)

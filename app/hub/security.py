"""What a hub's malware and pickle scanners said about a repository's files.

The Hugging Face Hub scans every file it stores: an antivirus scan and, for pickles, the list
of Python imports the pickle would run. It reports a repository's files with issues (and at
which level) in `model_info(securityStatus=True)`, and each file's scans in expanded tree
listings. This module turns those answers into one `ScanLevel` per file, with the finding
behind it, and never says "safe" for what the hub did not say so about.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum

# A finding is shown in a tooltip and one CLI line: a hostile hub's text is cut here.
MAX_FINDING_CHARS = 300
MAX_NAMES = 5  # virus names and pickle imports quoted in a finding


class ScanLevel(StrEnum):
    """A file's verdict, from best to worst (`rank`). The values are what `--json` prints."""

    SAFE = "safe"
    NOT_SCANNED = "not scanned"
    CAUTION = "caution"
    SUSPICIOUS = "suspicious"
    UNSAFE = "unsafe"

    @property
    def rank(self) -> int:
        return _RANKS[self]

    @property
    def flagged(self) -> bool:
        """Whether a download needs the user's second confirmation (or `--allow-unsafe`)."""
        return self in (ScanLevel.SUSPICIOUS, ScanLevel.UNSAFE)

    @classmethod
    def from_hub(cls, value: object) -> ScanLevel:
        """The hub's status or level word ("safe", "unscanned", "queued", "caution", ...)."""
        if not isinstance(value, str):
            return cls.NOT_SCANNED
        word = value.strip().lower()
        if word == "safe":
            return cls.SAFE
        if word in ("caution", "suspicious", "unsafe"):
            return cls(word)
        if word in ("dangerous", "malicious", "infected"):
            return cls.UNSAFE
        return cls.NOT_SCANNED


_RANKS = {level: rank for rank, level in enumerate(ScanLevel)}


@dataclass(frozen=True, kw_only=True)
class FileScan:
    """One file's verdict and what the scanner found ("" when it found nothing to say)."""

    level: ScanLevel
    finding: str = ""


NOT_SCANNED = FileScan(level=ScanLevel.NOT_SCANNED, finding="The hub reported no scan.")


@dataclass(frozen=True, kw_only=True)
class RepoSecurity:
    """What the hub reported about a repository's scans.

    `scans_done`: the hub says every file was scanned; a file it lists no issue for is then
    safe. `files`: per-file verdicts (those with issues, and any from an expanded listing).
    """

    scans_done: bool = False
    files: Mapping[str, FileScan] = field(default_factory=dict)

    def scan_of(self, path: str) -> FileScan:
        known = self.files.get(path)
        if known is not None:
            return known
        if self.scans_done:
            return FileScan(level=ScanLevel.SAFE, finding="The hub's scans found no issue.")
        return NOT_SCANNED


def scan_of(security: RepoSecurity | None, path: str) -> FileScan:
    """`path`'s verdict; "not scanned" when the hub reported nothing about scans."""
    return NOT_SCANNED if security is None else security.scan_of(path)


def flagged_files(
    security: RepoSecurity | None, paths: Iterable[str]
) -> list[tuple[str, FileScan]]:
    """The files of `paths` flagged suspicious or unsafe, worst first: a download of these
    needs a second confirmation (`pull`: `--allow-unsafe`)."""
    scans = [(path, scan_of(security, path)) for path in paths]
    flagged = [(path, scan) for path, scan in scans if scan.level.flagged]
    return sorted(flagged, key=lambda item: -item[1].level.rank)


def worst(scans: list[FileScan]) -> FileScan:
    """The worst of `scans` (not scanned when there are none)."""
    return max(scans, key=lambda scan: scan.level.rank, default=NOT_SCANNED)


def repo_security_from_hub(value: object) -> RepoSecurity | None:
    """`securityRepoStatus` ({"scansDone": bool, "filesWithIssues": [{"path", "level"}]})."""
    if not isinstance(value, Mapping):
        return None
    files: dict[str, FileScan] = {}
    issues = value.get("filesWithIssues")
    for issue in issues if isinstance(issues, list) else ():
        if not isinstance(issue, Mapping) or not isinstance(issue.get("path"), str):
            continue
        level = ScanLevel.from_hub(issue.get("level"))
        if level is ScanLevel.SAFE:  # a file "with issues" is never safe
            level = ScanLevel.CAUTION
        files[issue["path"]] = FileScan(
            level=level, finding=_cut(f"The hub's scanners flagged it ({level.value}).")
        )
    return RepoSecurity(scans_done=value.get("scansDone") is True, files=files)


def file_scan_from_hub(status: object, av_scan: object, pickle_scan: object) -> FileScan:
    """A file's `securityFileStatus` (as huggingface_hub's `BlobSecurityInfo` holds it)."""
    level = ScanLevel.from_hub(status)
    notes: list[str] = []
    if isinstance(av_scan, Mapping) and av_scan.get("virusFound") is True:
        names = _names(av_scan.get("virusNames"))
        notes.append("antivirus: " + (", ".join(names) if names else "a virus was found"))
        level = ScanLevel.UNSAFE
    if isinstance(pickle_scan, Mapping):
        highest = pickle_scan.get("highestSafetyLevel")
        imports = pickle_scan.get("imports")
        risky = [
            f"{item.get('module')}.{item.get('name')}"
            for item in (imports if isinstance(imports, list) else ())
            if isinstance(item, Mapping) and item.get("safety") in ("suspicious", "dangerous")
        ]
        if highest in ("suspicious", "dangerous") or risky:
            quoted = ", ".join(risky[:MAX_NAMES]) + (" …" if len(risky) > MAX_NAMES else "")
            said = f"pickle imports {highest or 'suspicious'}"
            notes.append(f"{said}: {quoted}" if risky else said)
            floor = ScanLevel.UNSAFE if highest == "dangerous" else ScanLevel.SUSPICIOUS
            level = max(level, floor, key=lambda item: item.rank)
        elif highest == "innocuous":
            notes.append("pickle imports: innocuous only")
    if not notes:
        notes.append(
            "The hub's scans found no issue."
            if level is ScanLevel.SAFE
            else f"The hub's scan status: {level.value}."
        )
    return FileScan(level=level, finding=_cut("; ".join(notes)))


def merge(repo: RepoSecurity | None, files: Mapping[str, FileScan]) -> RepoSecurity | None:
    """Repo-level results with per-file ones laid over (the worse of the two per file)."""
    if repo is None and not files:
        return None
    base = repo or RepoSecurity()
    merged = dict(base.files)
    for path, scan in files.items():
        known = merged.get(path)
        merged[path] = scan if known is None or scan.level.rank >= known.level.rank else known
    return RepoSecurity(scans_done=base.scans_done, files=merged)


def _names(value: object) -> list[str]:
    return (
        [str(item) for item in value if isinstance(item, str)][:MAX_NAMES]
        if isinstance(value, list)
        else []
    )


def _cut(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= MAX_FINDING_CHARS else text[: MAX_FINDING_CHARS - 1] + "…"

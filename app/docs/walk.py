"""Which files a collection holds now: its roots walked, links followed once, limits kept.

A folder reached twice (a symlink loop, or two links to one place) is entered once; hidden
folders and tool caches (`.git`, `node_modules`, `__pycache__`) are not entered; a file too
big to index is listed with the reason, so a person sees it was skipped, not lost. A root
that is not there (an unplugged drive) is reported as missing, and its files are left alone
in the index.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from app.docs.extract import DocumentKind, kind_of
from app.units import format_bytes

MAX_FILE_BYTES = 64 * 1024 * 1024  # text past this (a 500 MB log) is skipped, with the reason
MAX_PDF_BYTES = 256 * 1024 * 1024  # a PDF's bytes are mostly images and fonts
MAX_FILES = 100_000
_NOT_ENTERED = frozenset({"node_modules", "__pycache__", "venv", ".venv"})


@dataclass(frozen=True)
class FoundFile:
    path: Path
    kind: DocumentKind
    size: int
    mtime_ns: int


@dataclass(frozen=True)
class SkippedFile:
    path: Path
    size: int
    mtime_ns: int
    reason: str


@dataclass
class Walk:
    """What a walk of a collection's roots found."""

    files: list[FoundFile] = field(default_factory=list)
    skipped: list[SkippedFile] = field(default_factory=list)
    missing_roots: list[Path] = field(default_factory=list)
    truncated: bool = False  # stopped at MAX_FILES


def size_limit(kind: DocumentKind) -> int:
    return MAX_PDF_BYTES if kind is DocumentKind.PDF else MAX_FILE_BYTES


def walk_roots(roots: Sequence[Path], *, max_files: int = MAX_FILES) -> Walk:
    """The documents under `roots` (files or folders)."""
    walk = Walk()
    seen_folders: set[tuple[int, int]] = set()
    seen_files: set[tuple[int, int]] = set()
    for root in roots:
        try:
            info = os.stat(root)
        except OSError:
            walk.missing_roots.append(root)
            continue
        entries = (
            _walk_folder(root, seen_folders) if stat.S_ISDIR(info.st_mode) else iter([(root, info)])
        )
        for path, file_info in entries:
            if (file_info.st_dev, file_info.st_ino) in seen_files:
                continue
            seen_files.add((file_info.st_dev, file_info.st_ino))
            _add(walk, path, file_info)
            if len(walk.files) + len(walk.skipped) >= max_files:
                walk.truncated = True
                return walk
    return walk


def _add(walk: Walk, path: Path, info: os.stat_result) -> None:
    kind = kind_of(path)
    if kind is None or not stat.S_ISREG(info.st_mode):
        return
    limit = size_limit(kind)
    if info.st_size > limit:
        reason = f"{format_bytes(info.st_size)}, over the {format_bytes(limit)} limit"
        walk.skipped.append(SkippedFile(path, info.st_size, info.st_mtime_ns, reason))
    else:
        walk.files.append(FoundFile(path, kind, info.st_size, info.st_mtime_ns))


def _walk_folder(root: Path, seen: set[tuple[int, int]]) -> Iterator[tuple[Path, os.stat_result]]:
    """Files under `root`, depth first, each folder (by device and inode) entered once."""
    pending = [root]
    while pending:
        folder = pending.pop()
        try:
            identity = os.stat(folder)
        except OSError:
            continue  # vanished, or a dangling link
        key = (identity.st_dev, identity.st_ino)
        if key in seen:
            continue  # a loop, or a second link to the same folder
        seen.add(key)
        try:
            with os.scandir(folder) as listing:
                entries = sorted(listing, key=lambda entry: entry.name)
        except OSError:
            continue  # unreadable: nothing of it is indexed
        folders: list[Path] = []
        for entry in entries:
            try:
                info = entry.stat()  # follows links
            except OSError:
                continue
            if stat.S_ISDIR(info.st_mode):
                if not entry.name.startswith(".") and entry.name not in _NOT_ENTERED:
                    folders.append(Path(entry.path))
            elif not entry.name.startswith("."):
                yield Path(entry.path), info
        pending.extend(reversed(folders))

"""Copies of one model become one entry: `Found` records joined by sha256 or by the real file."""

from __future__ import annotations

import os
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

from app.library.catalog import LibraryEntry, Location, Source
from app.library.found import Details, Found
from app.library.sniff import CheckpointFormat, ModelKind

# Which copy names the entry and gives its details: the HF cache knows the repository, an
# import or folder the user's own file name; Ollama's blobs are named by hash only.
_PRIORITY = {
    Source.HF_CACHE: 0,
    Source.IMPORT: 1,
    Source.FOLDER: 2,
    Source.CIVITAI: 2,
    Source.LM_STUDIO: 3,
    Source.MODELSCOPE: 3,
    Source.GPT4ALL: 4,
    Source.OLLAMA: 5,
}


def identity_path(found: Found) -> str:
    """The file (or folder) behind the location, links resolved: two paths, one file."""
    if found.real_path is not None:
        return str(found.real_path)
    return os.path.realpath(found.path)


def build_entries(found: Sequence[Found]) -> list[tuple[LibraryEntry, list[Found]]]:
    """Join the records that are one model (same sha256, or same real path) into entries.

    Returns each entry with its records (best copy first), entries sorted by name.
    """
    parent = list(range(len(found)))

    def root(index: int) -> int:
        while parent[index] != index:
            parent[index] = parent[parent[index]]
            index = parent[index]
        return index

    owner: dict[str, int] = {}
    for index, item in enumerate(found):
        keys = [f"real:{identity_path(item)}"]
        if item.sha256 is not None:
            keys.append(f"sha:{item.sha256}")
        for key in keys:
            if key in owner:
                parent[root(index)] = root(owner[key])
            else:
                owner[key] = index

    groups: dict[int, list[Found]] = {}
    for index, item in enumerate(found):
        groups.setdefault(root(index), []).append(item)
    result = []
    for members in groups.values():
        members.sort(key=_copy_order)
        result.append((_entry(members), members))
    result.sort(key=lambda pair: (pair[0].name.lower(), pair[0].key))
    return result


def entry_key(found: Found, sha256: str | None) -> str:
    """A key that stays the same while the files do (see `LibraryEntry.key`)."""
    if sha256 is not None:
        return f"sha256:{sha256}"
    location = found.location
    if location.source is Source.HF_CACHE:
        base = f"hf:{location.repo_id}@{location.revision}"
        return base if found.is_folder else f"{base}:{_relative_to_snapshot(found.path)}"
    return f"path:{location.path}"


def _relative_to_snapshot(path: Path) -> str:
    parts = path.parts
    if "snapshots" in parts:
        at = len(parts) - 1 - parts[::-1].index("snapshots")
        return "/".join(parts[at + 2 :])
    return path.name


def _copy_order(found: Found) -> tuple[bool, int, str]:
    return (not found.location.present, _PRIORITY[found.location.source], str(found.path))


def _entry(members: list[Found]) -> LibraryEntry:
    primary = members[0]
    details: Details | None = next((m.details for m in members if m.details), None)
    sha256 = next((m.sha256 for m in members if m.sha256), None)
    kind = details.kind if details else (primary.kind or ModelKind.OTHER)
    present_sizes = [m.size for m in members if m.location.present and m.size]
    locations: dict[Location, None] = dict.fromkeys(m.location for m in members)
    return LibraryEntry(
        key=entry_key(primary, sha256),
        name=primary.name,
        kind=kind,
        format=details.format if details else _format_of(kind),
        architecture=details.architecture if details else None,
        parameter_count=details.parameter_count if details else None,
        quantization=next((m.quantization for m in members if m.quantization), None)
        or (details.quantization if details else None),
        context_length=details.context_length if details else None,
        size=max(present_sizes) if present_sizes else max(m.size for m in members),
        license=next((m.license for m in members if m.license), None),
        sha256=sha256,
        locations=tuple(locations),
        warning=next((m.warning for m in members if m.warning), None)
        or (details.warning if details else None),
        last_used=_last_used(members),
        unreadable=next((m.unreadable for m in members if m.unreadable), None),
        incomplete=_incomplete(members),
    )


def _incomplete(members: list[Found]) -> str | None:
    """Why the best present copy of a pipeline cannot run (another copy may be whole)."""
    present = [m for m in members if m.location.present and m.details is not None]
    for member in present or members:
        if member.details is not None:
            return member.details.incomplete
    return None


def _last_used(members: list[Found]) -> datetime | None:
    times = [m.last_used for m in members if m.last_used is not None]
    return datetime.fromtimestamp(max(times), UTC) if times else None


def _format_of(kind: ModelKind) -> CheckpointFormat | None:
    if kind is ModelKind.LLM_GGUF:
        return CheckpointFormat.GGUF
    if kind is ModelKind.DIFFUSERS_PIPELINE:
        return CheckpointFormat.DIFFUSERS
    return None

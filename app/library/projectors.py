"""The vision projector on disk that goes with a GGUF model: the mmproj file beside it.

Every layout ModelDeck reads keeps a vision model's files side by side: a Hugging Face cache
snapshot (the repository's tree), LM Studio's `publisher/repo/` folders, a folder a person
imported. So the model's projector is the one in its folder that `matching_projector` picks
by name (the model's precision first, else F16…), confirmed by its header: a file only named
"mmproj" that is not a vision projector is passed over.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace
from pathlib import Path

from app.errors import CheckpointError
from app.hub.models import RepoFile
from app.hub.projector_files import matching_projector
from app.hub.repo_files import group_gguf_models
from app.library.catalog import LibraryEntry
from app.library.sniff import ModelKind, sniff_projector

_MAX_FOLDER_ENTRIES = 2_000  # a model's folder holds a few files; a drive's root is not one


def projector_beside(model_path: Path) -> Path | None:
    """The vision projector for the GGUF at `model_path`, from its folder; None for a text
    model (no projector there) or when the folder cannot be read."""
    return _projector_among(model_path, _gguf_names(model_path.parent))


def with_projectors(entries: Iterable[LibraryEntry]) -> list[LibraryEntry]:
    """`entries` with each GGUF model's projector filled in (each folder listed once)."""
    listings: dict[Path, list[str]] = {}
    linked: list[LibraryEntry] = []
    for entry in entries:
        location = entry.usable_location if entry.kind is ModelKind.LLM_GGUF else None
        if location is None:
            linked.append(entry)
            continue
        folder = location.path.parent
        if folder not in listings:
            listings[folder] = _gguf_names(folder)
        projector = _projector_among(location.path, listings[folder])
        linked.append(replace(entry, projector=projector) if projector else entry)
    return linked


def _gguf_names(folder: Path) -> list[str]:
    names: list[str] = []
    try:
        for index, entry in enumerate(folder.iterdir()):
            if index >= _MAX_FOLDER_ENTRIES:
                break
            if entry.name.lower().endswith(".gguf"):
                names.append(entry.name)
    except OSError:
        return []
    return names


def _projector_among(model_path: Path, names: list[str]) -> Path | None:
    """The projector for `model_path` among the .gguf `names` of its folder."""
    if not any("mmproj" in name.lower() for name in names):
        return None  # a text model's folder: nothing to group or read
    folder = model_path.parent
    models = group_gguf_models(RepoFile(path=name) for name in names)
    own = next((m for m in models if model_path.name in {p.path for p in m.parts}), None)
    if own is None:
        return None
    while (projector := matching_projector(own, models)) is not None:
        path = folder / projector.path
        try:
            sniff_projector(path)
        except CheckpointError:
            models = tuple(m for m in models if m is not projector)
            continue
        return path
    return None

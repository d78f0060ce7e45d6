"""`Found`: one checkpoint at one place, as a source reports it, before copies are merged."""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from app.hub.models import RepoFile
from app.hub.repo_files import group_gguf_models
from app.library.catalog import Location
from app.library.sniff import Checkpoint, CheckpointFormat, ModelKind

if TYPE_CHECKING:
    from huggingface_hub import CachedFileInfo


@dataclass(frozen=True, kw_only=True)
class Details:
    """What a checkpoint's header says, as far as the library lists it."""

    kind: ModelKind
    format: CheckpointFormat | None = None
    architecture: str | None = None
    parameter_count: int | None = None
    quantization: str | None = None
    context_length: int | None = None
    warning: str | None = None
    incomplete: str | None = None  # a diffusers pipeline's missing or pickle-only components

    @classmethod
    def of(cls, checkpoint: Checkpoint) -> Details:
        return cls(
            kind=checkpoint.kind,
            format=checkpoint.format,
            architecture=checkpoint.architecture,
            parameter_count=checkpoint.parameter_count,
            quantization=checkpoint.quantization,
            context_length=checkpoint.context_length,
            warning=checkpoint.warning,
            incomplete=checkpoint.incomplete,
        )


@dataclass(frozen=True, kw_only=True)
class Found:
    """A checkpoint at one location, with what its source knows about it for free."""

    location: Location
    parts: tuple[Path, ...]  # the files that make it up (first: the one to load), or one folder
    size: int  # bytes of all parts; 0 when not known (not present)
    first_size: int  # bytes of the first part: the cheap test before any hashing
    mtime_ns: int
    sha256: str | None  # the first part's sha256, when known without hashing
    name: str
    kind: ModelKind | None  # None: the header decides
    quantization: str | None = None  # as the file name states it
    license: str | None = None
    details: Details | None = None  # from the header, once read (or remembered)
    warning: str | None = None
    unreadable: str | None = None  # why its header could not be read (it is still listed)
    is_folder: bool = False  # a diffusers folder or a whole HF cache revision
    real_path: Path | None = None  # the file behind the location, when known without a lookup
    managed_paths: tuple[Path, ...] = ()  # removed together with the files (Ollama manifests)
    cache_files: frozenset[CachedFileInfo] = frozenset()  # HF cache: what a deletion removes
    # Seconds since the epoch when ModelDeck last loaded it (`Library.mark_used`). Never a
    # file's access time: a download or a hash check reads the file too.
    last_used: float | None = None

    @property
    def path(self) -> Path:
        return self.location.path


@dataclass(frozen=True, kw_only=True)
class GgufFiles:
    """The files of one GGUF model in a folder (split parts grouped, in part order)."""

    name: str
    quantization: str | None
    parts: tuple[str, ...]  # as given to `group_gguf_files`
    size: int


def group_gguf_files(files: Iterable[tuple[str, int]]) -> Iterator[GgufFiles]:
    """Group (relative path, size) pairs of .gguf files into models, as the hub view does.

    Vision projectors (mmproj) are left out: they load beside a model, never alone.
    """
    repo_files = [RepoFile(path=path, size=size) for path, size in files]
    for model in group_gguf_models(repo_files):
        if model.is_projector:
            continue
        yield GgufFiles(
            name=model.name,
            quantization=model.quantization,
            parts=tuple(part.path for part in model.parts),
            size=model.size or 0,
        )


def stat_or_none(path: Path) -> os.stat_result | None:
    """`os.stat` following links, or None when the file is not there (or not readable)."""
    try:
        return os.stat(path)
    except OSError:
        return None

"""What the library lists: one entry per model, with every place on disk it was found.

The same file in two places (the HF cache and Ollama's blob store, say) is one entry with two
locations: files are matched by sha256, which the HF cache and Ollama name their blobs by and
which is computed (and remembered) for other files only when it can matter.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from pathlib import Path

from app.library.provenance import Provenance
from app.library.sniff import CheckpointFormat, ModelKind


class Source(StrEnum):
    """Where a model file was found."""

    HF_CACHE = "hf-cache"  # the Hugging Face cache, shared with transformers, diffusers, `hf`
    IMPORT = "import"  # a file or folder the user imported; used in place
    LM_STUDIO = "lm-studio"
    OLLAMA = "ollama"
    GPT4ALL = "gpt4all"
    MODELSCOPE = "modelscope"  # ModelScope's cache, shared with the `modelscope` SDK
    FOLDER = "folder"  # an extra folder the user asked the library to watch
    CIVITAI = "civitai"  # the models folder Civitai downloads go to (`CivitaiSettings`)

    @property
    def label(self) -> str:
        """The name a person reads, e.g. "Hugging Face cache"."""
        return _LABELS[self]

    @property
    def is_other_app(self) -> bool:
        """Whether another application manages these files (deleting them breaks that app)."""
        return self in (Source.LM_STUDIO, Source.OLLAMA, Source.GPT4ALL, Source.MODELSCOPE)


_LABELS = {
    Source.HF_CACHE: "Hugging Face cache",
    Source.IMPORT: "imported",
    Source.LM_STUDIO: "LM Studio",
    Source.OLLAMA: "Ollama",
    Source.GPT4ALL: "GPT4All",
    Source.MODELSCOPE: "ModelScope cache",
    Source.FOLDER: "folder",
    Source.CIVITAI: "Civitai models folder",
}


@dataclass(frozen=True, kw_only=True)
class Location:
    """One place a model is stored.

    `path` is what a runtime loads: the (first part of a) file, or a diffusers folder; for a
    whole HF cache revision, its snapshot folder. `present` is False when the drive or folder
    holding it is not there now (the record is kept).
    """

    path: Path
    source: Source
    present: bool = True
    owned_by_other_app: bool = False
    repo_id: str | None = None  # HF cache: the repository; LM Studio: publisher/repo
    revision: str | None = None  # HF cache: the commit hash of the snapshot


@dataclass(frozen=True, kw_only=True)
class LibraryEntry:
    """One model on this machine.

    `key` is stable while the files stay the same: "sha256:<hex>" when the (first) file's
    sha256 is known, else derived from where it lives ("hf:<repo>@<commit>:<file>",
    "path:<path>"). `size` counts one copy, all parts of a split model included.
    """

    key: str
    name: str
    kind: ModelKind
    format: CheckpointFormat | None
    architecture: str | None
    parameter_count: int | None
    quantization: str | None
    context_length: int | None
    size: int
    license: str | None
    sha256: str | None
    locations: tuple[Location, ...]
    warning: str | None = None
    last_used: datetime | None = None  # when ModelDeck last loaded it; None: never
    # A diffusers pipeline that cannot run as it is, and why ("text_encoder: missing").
    incomplete: str | None = None
    # Why its header could not be read (damaged, or not a checkpoint): listed because it
    # takes space and can be deleted, but no runtime is offered it.
    unreadable: str | None = None
    # Where it came from (hub, repo, commit, download, license) and its last verification;
    # None only before a scan has filled it in.
    provenance: Provenance | None = None
    # A GGUF model's vision projector (the mmproj file beside it): it can see images.
    projector: Path | None = None

    @property
    def present(self) -> bool:
        """Whether at least one copy can be used now."""
        return self.usable_location is not None

    @property
    def usable_location(self) -> Location | None:
        """The first copy on disk now (the one a runtime loads), or None."""
        return next((location for location in self.locations if location.present), None)

    @property
    def repo_ids(self) -> tuple[str, ...]:
        """The HF repositories (and LM Studio publisher/repo names) this model comes from."""
        seen = dict.fromkeys(loc.repo_id for loc in self.locations if loc.repo_id is not None)
        return tuple(seen)


@dataclass(frozen=True, kw_only=True)
class ImportResult:
    """What `Library.import_paths` did: entries now in the library, and what it turned down."""

    imported: list[LibraryEntry]
    rejected: list[tuple[Path, str]]  # (path, one-line reason)

"""Which GGUF file a person means: a path, a library name, or a repo id with an optional quant.

`modeldeck chat Qwen/Qwen2.5-0.5B-Instruct-GGUF:Q4_K_M`, `modeldeck chat ~/models/x.gguf` and
the Library page's "Chat with this" all end here, so they pick the same file the same way.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from app.errors import AppError
from app.library.catalog import LibraryEntry
from app.library.choice import ChoiceMiss, choose_entry, list_options
from app.library.library import Library
from app.library.sniff import CheckpointFormat, ModelKind, sniff


class ModelChoiceError(AppError, LookupError):
    """No usable GGUF matches what was asked for (or several do)."""


@dataclass(frozen=True, kw_only=True)
class ChosenModel:
    """A GGUF file to load, and what the library knows of it."""

    path: Path
    name: str
    sha256: str | None
    entry: LibraryEntry | None  # None for a path outside the library


def choose_gguf(query: str, library: Library) -> ChosenModel:
    """Resolve `query` to one GGUF file.

    `query` is a path to a .gguf file, a library entry key or name, or a repo id with an
    optional `:QUANT` suffix (`Org/Model-GGUF:Q4_K_M`, case-insensitive).

    Raises:
        ModelChoiceError: nothing matches, the match is not a GGUF, or the choice is ambiguous
            (the message lists the options).
    """
    path = Path(query).expanduser()
    if path.is_file():
        checkpoint = sniff(path)  # raises CheckpointError for a damaged or foreign file
        if checkpoint.format is not CheckpointFormat.GGUF:
            raise ModelChoiceError(
                f"{path.name} is a {checkpoint.kind.value}, not a GGUF language model.",
                hint="Chat needs a .gguf file.",
            )
        if checkpoint.kind is ModelKind.VISION_PROJECTOR:
            raise ModelChoiceError(
                f"{path.name} is a vision projector, not a language model.",
                hint="Give the model it belongs to; its projector loads beside it (--mmproj).",
            )
        return ChosenModel(path=path, name=checkpoint.name or path.stem, sha256=None, entry=None)

    name, quant = query, None
    if ":" in query and not library.find(query):
        name, _, quant = query.rpartition(":")

    def none_left(miss: ChoiceMiss) -> ModelChoiceError:
        missing = " (its drive or folder is not there now)" if miss.absent else ""
        return ModelChoiceError(
            f"No GGUF model matches {query!r} on this machine{missing}.",
            hint="See `modeldeck list`, or download one with `modeldeck pull`.",
        )

    def several_left(present: Sequence[LibraryEntry]) -> ModelChoiceError:
        options = list_options(present, lambda e: f"{e.name} [{e.quantization or '?'}]")
        return ModelChoiceError(
            f"{query!r} matches {len(present)} models: {options}.",
            hint="Add the quantization, e.g. REPO:Q4_K_M, or give the entry key or path.",
        )

    entry = choose_entry(
        library,
        name,
        kinds=(ModelKind.LLM_GGUF,),
        keep=(lambda e: (e.quantization or "").lower() == quant.lower()) if quant else None,
        none_left=none_left,
        several_left=several_left,
    )
    location = entry.usable_location
    assert location is not None  # `choose_entry` returns an entry with a copy on disk
    return ChosenModel(path=location.path, name=entry.name, sha256=entry.sha256, entry=entry)

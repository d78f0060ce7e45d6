"""Which library models the local API offers, under which ids, and what a request's name means.

Every chat-capable GGUF in the library with a copy on disk is offered. Its id is its library
name ("Qwen/Qwen2.5-0.5B-Instruct-GGUF", "my-model"); when several entries share a name, the
quantization is added ("…-GGUF:Q4_K_M", the form `modeldeck chat` takes), and when even that is
shared, the entry key. A request may also name a model the way `modeldeck chat MODEL` does (a
library name or key, `REPO[:QUANT]`, a path to a .gguf file): `choose_gguf` resolves those, so
the two pick the same file the same way.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from app.chat.model_choice import choose_gguf
from app.library.catalog import LibraryEntry
from app.library.library import Library
from app.library.sniff import ModelKind

# GGUF architectures that hold no chat model: encoders (embeddings) and vision projectors.
NOT_CHAT_ARCHITECTURES = frozenset({"bert", "nomic-bert", "jina-bert-v2", "t5encoder", "clip"})


@dataclass(frozen=True, kw_only=True)
class ServableModel:
    """One model the API offers: the id clients use and the file a load reads."""

    model_id: str
    path: Path
    name: str  # the library's name (or the file's, for a path outside the library)
    size: int  # bytes on disk
    created: int  # the file's modification time, in Unix seconds (OpenAI's `created`)


def chat_capable(entry: LibraryEntry) -> bool:
    """Whether the API can chat with `entry`: a readable GGUF language model on disk now."""
    return (
        entry.kind is ModelKind.LLM_GGUF
        and entry.unreadable is None
        and entry.present
        and (entry.architecture or "").lower() not in NOT_CHAT_ARCHITECTURES
    )


def servable_models(entries: Sequence[LibraryEntry]) -> list[ServableModel]:
    """The chat-capable `entries` with unique ids, in the library's order (by name)."""
    chat = [entry for entry in entries if chat_capable(entry)]
    names = Counter(entry.name for entry in chat)
    named_quants = Counter(_with_quant(entry) for entry in chat)
    models = []
    for entry in chat:
        location = entry.usable_location
        assert location is not None  # `chat_capable` keeps entries with a copy on disk
        if names[entry.name] == 1:
            model_id = entry.name
        elif entry.quantization and named_quants[_with_quant(entry)] == 1:
            model_id = _with_quant(entry)
        else:
            model_id = entry.key
        models.append(
            ServableModel(
                model_id=model_id,
                path=location.path,
                name=entry.name,
                size=entry.size,
                created=_modified(location.path),
            )
        )
    return models


def _with_quant(entry: LibraryEntry) -> str:
    return f"{entry.name}:{entry.quantization}" if entry.quantization else entry.name


class LibraryModels:
    """The library's chat models as the API offers them, and the resolver of requested names.

    Args:
        entries: the library's entries now (the shared model list, kept fresh by the app).
        library: the library `choose_gguf` searches for names that are not listed ids.
    """

    def __init__(
        self, entries: Callable[[], Sequence[LibraryEntry]], library: Callable[[], Library]
    ) -> None:
        self._entries = entries
        self._library = library

    def models(self) -> list[ServableModel]:
        """Every model offered, loaded or not."""
        return servable_models(self._entries())

    def resolve(self, requested: str) -> ServableModel:
        """The model `requested` names: a listed id, or whatever `modeldeck chat` accepts.

        Blocking (a name that is not a listed id may scan the library, a path is sniffed).

        Raises:
            ModelChoiceError: nothing matches, or several models do (the message says which).
            CheckpointError: `requested` is a path to a file that is not a readable GGUF.
        """
        models = self.models()
        for model in models:
            if model.model_id == requested:
                return model
        chosen = choose_gguf(requested, self._library())
        for model in models:
            if model.path == chosen.path:
                return model
        return ServableModel(
            model_id=requested,
            path=chosen.path,
            name=chosen.name,
            size=_size(chosen.path),
            created=_modified(chosen.path),
        )


def _modified(path: Path) -> int:
    try:
        return int(path.stat().st_mtime)
    except OSError:
        return int(time.time())


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0

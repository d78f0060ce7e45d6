"""Which models in the library can embed a collection, and the one to suggest when none can.

A GGUF header does not say "embedding model" in one key: families built only for it (BERT and
its kin) say so by their architecture; others (a Qwen3 or llama made into an embedder) by
their name, which by custom says "embed" (nomic-embed-text, Qwen3-Embedding, bge, e5, gte).
A chat model picked here would still embed (llama.cpp pools any model), only badly: the
list shows the likely ones and a person may add any GGUF by its path in the CLI.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from app.library import CheckpointFormat, LibraryEntry

# The search Discover opens when the library has no embedding model: a small, widely used
# one (nomic-embed-text v1.5, 137M parameters, Apache-2.0) that ships as GGUF.
DEFAULT_EMBEDDER_SEARCH = "nomic-embed-text"

_EMBEDDING_ARCHITECTURES = frozenset(
    [
        "bert",
        "nomic-bert",
        "nomic-bert-moe",
        "jina-bert-v2",
        "jina-bert-v3",
        "modern-bert",
        "neo-bert",
        "t5encoder",
        "gemma-embedding",
    ]
)
_EMBEDDING_NAME = re.compile(r"embed|(?<![a-z])(bge|e5|gte|minilm)(?![a-z])", re.IGNORECASE)


@dataclass(frozen=True)
class EmbedderChoice:
    """An embedding model a collection can use."""

    name: str
    path: Path  # the GGUF the engine loads


def is_embedding_model(entry: LibraryEntry) -> bool:
    """Whether `entry` is a GGUF made for embeddings (by its architecture or its name)."""
    if entry.format is not CheckpointFormat.GGUF or entry.projector is not None:
        return False
    if entry.architecture is not None and entry.architecture.lower() in _EMBEDDING_ARCHITECTURES:
        return True
    names = [entry.name, *entry.repo_ids]
    location = entry.usable_location
    if location is not None:
        names.append(location.path.name)
    return any(_EMBEDDING_NAME.search(name) for name in names)


def embedder_choices(entries: Iterable[LibraryEntry]) -> list[EmbedderChoice]:
    """The library's embedding models on disk now, by name."""
    choices = [
        EmbedderChoice(entry.name, location.path)
        for entry in entries
        if is_embedding_model(entry) and (location := entry.usable_location) is not None
    ]
    return sorted(choices, key=lambda choice: choice.name.lower())

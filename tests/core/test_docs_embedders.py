"""Choosing a collection's embedding model: which library models can, and re-embedding only
when the choice changes (a real embedding GGUF in the engine's child)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from app.docs.collections import DocumentCollections
from app.docs.embedders import embedder_choices, is_embedding_model
from app.library import CheckpointFormat, LibraryEntry, ModelKind
from app.library.catalog import Location, Source
from app.store import Database
from tests.support.gguf_builder import ScriptedGgufs


def _entry(
    name: str,
    architecture: str,
    *,
    path: str = "/m/x.gguf",
    present: bool = True,
    format: CheckpointFormat = CheckpointFormat.GGUF,
) -> LibraryEntry:
    return LibraryEntry(
        key=f"path:{path}",
        name=name,
        kind=ModelKind.LLM_GGUF,
        format=format,
        architecture=architecture,
        parameter_count=None,
        quantization=None,
        context_length=None,
        size=1,
        license=None,
        sha256=None,
        locations=(Location(path=Path(path), source=Source.IMPORT, present=present),),
    )


def test_embedding_models_are_known_by_architecture_or_name() -> None:
    assert is_embedding_model(_entry("nomic-embed-text-v1.5 Q8_0", "nomic-bert"))
    assert is_embedding_model(_entry("All MiniLM L6", "bert"))
    assert is_embedding_model(_entry("Qwen3 Embedding 0.6B", "qwen3"))
    assert is_embedding_model(_entry("bge small en", "llama"))
    assert is_embedding_model(_entry("Tiny", "llama", path="/m/Tiny-Embedder-F16.gguf"))
    assert not is_embedding_model(_entry("Llama 3 8B Instruct", "llama"))
    assert not is_embedding_model(_entry("Gemma 2 9B", "gemma2"))
    assert not is_embedding_model(_entry("Bert", "bert", format=CheckpointFormat.SAFETENSORS))
    assert not is_embedding_model(_entry("Vega 7B", "llama"))  # "vega" is not "e5"/"gte"


def test_choices_are_the_embedding_models_on_disk_by_name() -> None:
    entries = [
        _entry("nomic embed", "nomic-bert", path="/m/nomic.gguf"),
        _entry("All MiniLM", "bert", path="/m/minilm.gguf"),
        _entry("Gone embed", "bert", path="/gone/e.gguf", present=False),
        _entry("Chat", "llama", path="/m/chat.gguf"),
    ]
    choices = embedder_choices(entries)
    assert [(c.name, c.path) for c in choices] == [
        ("All MiniLM", Path("/m/minilm.gguf")),
        ("nomic embed", Path("/m/nomic.gguf")),
    ]


@pytest.fixture
def documents(database: Database, tmp_path: Path) -> Iterator[DocumentCollections]:
    collections = DocumentCollections(database, tmp_path / "vectors")
    yield collections
    collections.close()


def test_a_collection_is_embedded_again_only_when_its_model_changes(
    documents: DocumentCollections, ggufs: ScriptedGgufs, tmp_path: Path
) -> None:
    folder = tmp_path / "notes"
    folder.mkdir()
    for index in range(3):
        (folder / f"n{index}.md").write_text(f"# Note {index}\n\nQuartz number {index}.\n")
    documents.add("notes", [folder], embedder=None)
    assert documents.index("notes").chunks_embedded == 0  # words only

    chosen = documents.set_embedder("notes", ggufs.embedder)
    assert chosen.embedder == ggufs.embedder and chosen.vectors_of is None
    assert documents.index("notes").chunks_embedded == 3
    assert documents.index("notes").chunks_embedded == 0  # nothing changed
    documents.set_embedder("notes", ggufs.embedder)  # the same model chosen again
    assert documents.index("notes").chunks_embedded == 0
    vectors_of = documents.store.get("notes").vectors_of
    assert vectors_of is not None and vectors_of.startswith(ggufs.embedder.name)

    documents.set_embedder("notes", ggufs.embedder_unpooled)  # another model: all again
    assert documents.index("notes").chunks_embedded == 3
    assert documents.store.get("notes").vectors_of.startswith(ggufs.embedder_unpooled.name)  # type: ignore[union-attr]

    documents.set_embedder("notes", None)  # words only: still found
    collection = documents.store.get("notes")
    assert collection.embedder is None
    (passage, *_) = documents.search([collection], "quartz number 2")
    assert Path(passage.chunk.path).name == "n2.md"

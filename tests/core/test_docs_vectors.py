"""Document search by meaning: a real embedding GGUF in the engine's child, vectors mapped."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from app.docs.embedder import EngineEmbedder
from app.docs.indexer import embedding_text, index_collection
from app.docs.retrieval import retrieve
from app.docs.store import DocumentStore
from app.docs.vectors import VectorIndex
from app.store import Database
from tests.support.gguf_builder import ScriptedGgufs

TEXTS = {
    "a.md": "# Alpha\n\nQuartz crystals resonate at a precise frequency.\n",
    "b.txt": "Sourdough starter needs flour and water every day.\n",
    "c.txt": "Penguins huddle together to keep warm in winter.\n",
}


@pytest.fixture(scope="module")
def embedder(ggufs: ScriptedGgufs) -> Iterator[EngineEmbedder]:
    embedder = EngineEmbedder(ggufs.embedder)
    yield embedder
    embedder.close()


def test_chunks_are_embedded_and_found_by_meaning(
    database: Database, embedder: EngineEmbedder, tmp_path: Path
) -> None:
    root = tmp_path / "docs"
    root.mkdir()
    for name, text in TEXTS.items():
        (root / name).write_text(text)
    store = DocumentStore(database)
    collection = store.create("mixed", [root], embedder=embedder.path)
    vectors = tmp_path / "vectors"
    report = index_collection(store, collection, embedder=embedder, vectors_folder=vectors)
    assert report.chunks_embedded == report.chunks_added == 3
    collection = store.get("mixed")
    assert collection.vectors_of == embedder.model_id
    stats = store.stats(collection)
    assert stats.embedded == stats.chunks == 3
    ids, matrix = store.vectors(collection)
    assert matrix.shape == (3, 64) and np.allclose(np.linalg.norm(matrix, axis=1), 1.0, atol=1e-4)
    assert (vectors / f"collection-{collection.id}.npy").is_file()
    # The exact text of a chunk as the question: its vector is the nearest (similarity 1)
    # and its words match best, so both lists put it first.
    chunk = store.chunks([int(ids[1])])[int(ids[1])]
    question = embedding_text(chunk.heading, chunk.text)
    best = retrieve(store, [collection], question, embedder=embedder, vectors_folder=vectors)[0]
    assert best.chunk.id == chunk.id and best.vector_rank == 1 and best.words_rank == 1
    assert best.similarity is not None and best.similarity == pytest.approx(1.0, abs=1e-4)
    # A question with no word in any document is still answered by the vectors.
    unmatched = retrieve(store, [collection], "zzz qqq", embedder=embedder, vectors_folder=vectors)
    assert len(unmatched) == 3 and all(p.words_rank is None for p in unmatched)
    assert all(p.vector_rank is not None for p in unmatched)


def test_a_new_model_re_embeds_and_the_matrix_follows(
    database: Database, embedder: EngineEmbedder, ggufs: ScriptedGgufs, tmp_path: Path
) -> None:
    root = tmp_path / "docs"
    root.mkdir()
    (root / "b.txt").write_text(TEXTS["b.txt"])
    store = DocumentStore(database)
    collection = store.create("one", [root], embedder=embedder.path)
    vectors = tmp_path / "vectors"
    index_collection(store, collection, embedder=embedder, vectors_folder=vectors)
    again = index_collection(store, store.get("one"), embedder=embedder, vectors_folder=vectors)
    assert again.chunks_embedded == 0  # the same model: nothing made again
    other = EngineEmbedder(ggufs.embedder_unpooled)
    try:
        moved = index_collection(store, store.get("one"), embedder=other, vectors_folder=vectors)
        assert moved.chunks_embedded == 1 and store.get("one").vectors_of == other.model_id
    finally:
        other.close()
    # A chunk added behind the matrix's back: the next search rebuilds it from the database.
    (root / "c.txt").write_text(TEXTS["c.txt"])
    index = VectorIndex(store, store.get("one"), vectors)
    index_collection(store, store.get("one"), embedder=None, vectors_folder=tmp_path / "elsewhere")
    query = np.zeros(64, dtype=np.float32)
    query[0] = 1.0
    assert len(index.search(query, limit=10).chunk_ids) == 1  # c.txt has no vector yet

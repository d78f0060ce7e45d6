"""Find the passages that answer a question: words (BM25) and meaning (vectors), fused.

Each list ranks chunks its own way; reciprocal-rank fusion adds 1 / (60 + rank) from each
list a chunk appears in, so a chunk both find rises, and neither list's raw scores (BM25's
unbounded, cosine's in [-1, 1]) need to be put on one scale. Without an embedding model the
words alone rank.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from app.docs.embedder import Embedder
from app.docs.store import Collection, DocumentStore, StoredChunk
from app.docs.vectors import VectorIndex

RRF_K = 60  # the constant of Cormack et al. (2009); it damps the weight of the very top
CANDIDATES = 50  # from each list
MAX_QUERY_TERMS = 32
_STOPWORDS = frozenset(
    [
        "a",
        "an",
        "and",
        "are",
        "as",
        "at",
        "be",
        "by",
        "do",
        "does",
        "for",
        "from",
        "has",
        "have",
        "how",
        "i",
        "in",
        "is",
        "it",
        "of",
        "on",
        "or",
        "that",
        "the",
        "this",
        "to",
        "was",
        "what",
        "when",
        "where",
        "which",
        "who",
        "why",
        "will",
        "with",
        "you",
        "your",
    ]
)


@dataclass(frozen=True)
class Passage:
    """A chunk a search found, and why."""

    chunk: StoredChunk
    score: float  # fused: higher is better
    words_rank: int | None  # 1-based place in the BM25 list; None: not in it
    vector_rank: int | None
    similarity: float | None  # cosine similarity to the question


def words_query(question: str) -> str | None:
    """An FTS5 query matching any of the question's words (each quoted: a person's text is
    never FTS5 syntax); None when it has no words to match."""
    words = [word for word in re.findall(r"\w+", question.lower()) if word not in _STOPWORDS]
    words = list(dict.fromkeys(words))[:MAX_QUERY_TERMS]
    if not words:
        return None
    return " OR ".join(f'"{word}"' for word in words)


def retrieve(
    store: DocumentStore,
    collections: Sequence[Collection],
    question: str,
    *,
    embedder: Embedder | None,
    vectors_folder: Path,
    limit: int = 8,
) -> list[Passage]:
    """The `limit` best passages of `collections` for `question`, best first."""
    if not collections:
        return []
    words: list[int] = []
    match = words_query(question)
    if match is not None:
        words = [
            chunk_id for chunk_id, _ in store.search_words(collections, match, limit=CANDIDATES)
        ]
    nearest: list[int] = []
    similarity: dict[int, float] = {}
    searchable = [
        collection
        for collection in collections
        if embedder is not None and collection.vectors_of == embedder.model_id
    ]
    if searchable and embedder is not None:
        query = embedder.embed([question])[0]
        hits: list[tuple[float, int]] = []
        for collection in searchable:
            found = VectorIndex(store, collection, vectors_folder).search(query, limit=CANDIDATES)
            hits += zip(found.similarities, found.chunk_ids, strict=True)
        hits.sort(reverse=True)
        nearest = [chunk_id for _, chunk_id in hits[:CANDIDATES]]
        similarity = {chunk_id: score for score, chunk_id in hits}
    return fuse(store, words, nearest, similarity, limit=limit)


def fuse(
    store: DocumentStore,
    words: Sequence[int],
    nearest: Sequence[int],
    similarity: dict[int, float],
    *,
    limit: int,
) -> list[Passage]:
    """Reciprocal-rank fusion of two ranked lists of chunk ids."""
    scores: dict[int, float] = {}
    for ranked in (words, nearest):
        for rank, chunk_id in enumerate(ranked, start=1):
            scores[chunk_id] = scores.get(chunk_id, 0.0) + 1.0 / (RRF_K + rank)
    best = sorted(scores, key=lambda chunk_id: (-scores[chunk_id], chunk_id))[:limit]
    chunks = store.chunks(best)
    words_rank = {chunk_id: rank for rank, chunk_id in enumerate(words, start=1)}
    vector_rank = {chunk_id: rank for rank, chunk_id in enumerate(nearest, start=1)}
    return [
        Passage(
            chunks[chunk_id],
            scores[chunk_id],
            words_rank.get(chunk_id),
            vector_rank.get(chunk_id),
            similarity.get(chunk_id),
        )
        for chunk_id in best
        if chunk_id in chunks
    ]

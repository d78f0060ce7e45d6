"""The documents feature as one service: add, index, search and remove collections.

The CLI and the GUI both use `DocumentCollections` (the core builds one): it keeps the
vectors folder beside the database and one embedding engine per embedding model, started on
first use and closed with the service.
"""

from __future__ import annotations

import hashlib
import re
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from app.docs.embedder import Embedder, EngineEmbedder
from app.docs.indexer import IndexControl, IndexReport, ProgressCallback, index_collection
from app.docs.prompt import DocumentPrompt, compose_prompt
from app.docs.retrieval import Passage, retrieve
from app.docs.store import Collection, CollectionError, CollectionStats, DocumentStore
from app.docs.vectors import VectorIndex
from app.store import Database

PATH_COLLECTION_PREFIX = "path "  # `chat --docs PATH` keeps its index under this name


@dataclass(frozen=True)
class CollectionSummary:
    collection: Collection
    stats: CollectionStats


class DocumentCollections:
    """Collections of documents kept in `database`, vectors mapped from `folder`."""

    def __init__(self, database: Database, folder: Path) -> None:
        self.store = DocumentStore(database)
        self.vectors_folder = folder
        self._embedders: dict[Path, EngineEmbedder] = {}
        self._lock = threading.Lock()

    def add(self, name: str, paths: Sequence[Path], *, embedder: Path | None) -> Collection:
        """A new collection of files and folders (made absolute; they need not exist yet).

        Raises:
            CollectionError: the name is taken or unusable, or no path was given.
        """
        if not paths:
            raise CollectionError("A collection needs at least one file or folder")
        roots = [path.expanduser().absolute() for path in paths]
        return self.store.create(name, roots, embedder=embedder)

    def set_embedder(self, name: str, embedder: Path | None) -> Collection:
        """Choose the embedding model of the collection `name` (None: search by words only).

        Nothing is embedded here: the next `index` embeds every chunk with a new model, and
        none with the model the vectors already came from.
        Raises:
            CollectionError: there is no such collection.
        """
        self.store.set_embedder(self.store.get(name), embedder)
        return self.store.get(name)

    def summaries(self) -> list[CollectionSummary]:
        return [CollectionSummary(c, self.store.stats(c)) for c in self.store.all()]

    def index(
        self,
        name: str,
        *,
        progress: ProgressCallback | None = None,
        control: IndexControl | None = None,
    ) -> IndexReport:
        """Bring a collection up to date (see `index_collection`)."""
        collection = self.store.get(name)
        return index_collection(
            self.store,
            collection,
            embedder=self.embedder_for(collection),
            vectors_folder=self.vectors_folder,
            progress=progress,
            control=control,
        )

    def remove(self, name: str) -> None:
        """Forget a collection and its index; its files are untouched."""
        collection = self.store.get(name)
        self.store.remove(name)
        VectorIndex(self.store, collection, self.vectors_folder).remove()

    def for_path(self, path: Path, *, embedder: Path | None) -> Collection:
        """The collection that `chat --docs PATH` keeps for a file or folder (made once)."""
        root = path.expanduser().absolute()
        if not root.exists():
            raise CollectionError(f"No collection or file named {str(path)!r}")
        digest = hashlib.sha256(str(root).encode("utf-8", "surrogateescape")).hexdigest()[:8]
        readable = re.sub(r"[^\w.\- ]", "_", root.name)
        name = f"{PATH_COLLECTION_PREFIX}{digest} {readable}".strip()[:80]
        found = self.store.find(name)
        return found if found is not None else self.store.create(name, [root], embedder=embedder)

    def search(
        self, collections: Sequence[Collection], question: str, *, limit: int = 8
    ) -> list[Passage]:
        """The best passages for `question` across `collections`, best first.

        Collections embedded with different models are searched by words, and by vectors
        where the model matches that of the first collection with one.
        """
        fresh = [self.store.get(collection.name) for collection in collections]
        embedder = next(
            (self.embedder_for(c) for c in fresh if c.embedder is not None and c.vectors_of), None
        )
        return retrieve(
            self.store,
            fresh,
            question,
            embedder=embedder,
            vectors_folder=self.vectors_folder,
            limit=limit,
        )

    def compose(
        self,
        names: Sequence[str],
        question: str,
        *,
        budget_tokens: int,
        count_tokens: Callable[[str], int],
        limit: int = 8,
    ) -> DocumentPrompt:
        """`question` with the best passages of the collections `names`, numbered, within
        `budget_tokens` (blocks: it searches and counts tokens; call on a worker).

        Raises:
            CollectionError: a collection is not there (any more).
            EngineError: the embedding model failed.
        """
        collections = [self.store.get(name) for name in names]
        passages = self.search(collections, question, limit=limit)
        return compose_prompt(
            question, passages, budget_tokens=budget_tokens, count_tokens=count_tokens
        )

    def embedder_for(self, collection: Collection) -> Embedder | None:
        if collection.embedder is None:
            return None
        with self._lock:
            embedder = self._embedders.get(collection.embedder)
            if embedder is None:
                embedder = self._embedders[collection.embedder] = EngineEmbedder(
                    collection.embedder
                )
            return embedder

    def close(self) -> None:
        with self._lock:
            for embedder in self._embedders.values():
                embedder.close()
            self._embedders.clear()

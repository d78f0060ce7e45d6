"""Collections, their files and chunks in the app's SQLite file (schema: migration 9).

A chunk's words are in an FTS5 index kept in step by triggers; its vector is a float32 BLOB
beside it (the source of truth the memory-mapped matrix of `app.docs.vectors` is built from).
"""

from __future__ import annotations

import datetime
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from app.docs.chunking import Chunk
from app.errors import AppError
from app.store import Database

MAX_NAME = 80
_NAME = re.compile(r"[\w][\w .\-]*")


class CollectionError(AppError, LookupError):
    """No such collection, or a name that cannot be one."""


@dataclass(frozen=True)
class Collection:
    id: int
    name: str
    roots: tuple[Path, ...]
    embedder: Path | None  # the embedding GGUF; None: full-text search only
    vectors_of: str | None  # the model the stored vectors came from
    offline: bool  # a root was missing at the last index (its files' chunks are kept)
    indexed_at: str | None


@dataclass(frozen=True)
class CollectionStats:
    files: int  # indexed
    skipped: int
    bytes: int  # of the indexed files
    chunks: int
    embedded: int  # chunks with a vector


@dataclass(frozen=True)
class FileRecord:
    id: int
    path: str
    size: int
    mtime_ns: int
    sha256: str | None
    skipped: str | None


@dataclass(frozen=True)
class StoredChunk:
    """A chunk as stored, with its file: what a search returns and a citation shows."""

    id: int
    path: str
    text: str
    heading: str
    page: int | None
    line_start: int
    line_end: int


def _now() -> str:
    # Microseconds: a search's matrix is rebuilt when `indexed_at` moves, even within a second.
    return datetime.datetime.now(datetime.UTC).isoformat(timespec="microseconds")


class DocumentStore:
    """The collections in one database; every method is one short statement or transaction."""

    def __init__(self, database: Database) -> None:
        self.database = database

    # -- collections ---------------------------------------------------------------------

    def create(self, name: str, roots: Sequence[Path], *, embedder: Path | None) -> Collection:
        """A new collection of `roots` (absolute paths, kept as given).

        Raises:
            CollectionError: the name is taken or not a usable name.
        """
        name = name.strip()
        if not _NAME.fullmatch(name) or len(name) > MAX_NAME:
            raise CollectionError(
                f"{name!r} is not a collection name",
                hint="Use letters, digits, spaces, dots and dashes (at most 80).",
            )
        if self.find(name) is not None:
            raise CollectionError(f"There is already a collection named {name!r}")
        with self.database.transaction() as connection:
            cursor = connection.execute(
                "INSERT INTO doc_collections (name, embedder, created_at) VALUES (?, ?, ?)",
                (name, str(embedder) if embedder else None, _now()),
            )
            collection_id = int(cursor.lastrowid or 0)
            connection.executemany(
                "INSERT OR IGNORE INTO doc_roots (collection_id, path) VALUES (?, ?)",
                [(collection_id, str(root)) for root in roots],
            )
        return self.get(name)

    def find(self, name: str) -> Collection | None:
        row = self.database.fetch_one(
            "SELECT id, name, embedder, vectors_of, offline, indexed_at FROM doc_collections "
            "WHERE name = ?",
            (name,),
        )
        return self._collection(row) if row else None

    def get(self, name: str) -> Collection:
        """The collection named `name`; `CollectionError` when there is none."""
        found = self.find(name)
        if found is None:
            raise CollectionError(
                f"No collection named {name!r}", hint="See `modeldeck docs list`."
            )
        return found

    def all(self) -> list[Collection]:
        rows = self.database.fetch_all(
            "SELECT id, name, embedder, vectors_of, offline, indexed_at FROM doc_collections "
            "ORDER BY name"
        )
        return [self._collection(row) for row in rows]

    def remove(self, name: str) -> None:
        """Forget a collection and its index (the files themselves are never touched)."""
        collection = self.get(name)
        with self.database.transaction() as connection:
            # Chunks first, one statement: the FTS delete trigger runs per chunk row.
            connection.execute(
                "DELETE FROM doc_chunks WHERE file_id IN "
                "(SELECT id FROM doc_files WHERE collection_id = ?)",
                (collection.id,),
            )
            connection.execute("DELETE FROM doc_collections WHERE id = ?", (collection.id,))

    def set_embedder(self, collection: Collection, embedder: Path | None) -> None:
        """Record the embedding model `collection` is searched with (None: words only). Its
        vectors stay until the next index, which makes them again with a new model."""
        self.database.execute(
            "UPDATE doc_collections SET embedder = ? WHERE id = ?",
            (str(embedder) if embedder else None, collection.id),
        )

    def add_roots(self, collection: Collection, roots: Iterable[Path]) -> None:
        with self.database.transaction() as connection:
            connection.executemany(
                "INSERT OR IGNORE INTO doc_roots (collection_id, path) VALUES (?, ?)",
                [(collection.id, str(root)) for root in roots],
            )

    def mark_indexed(
        self, collection: Collection, *, offline: bool, vectors_of: str | None
    ) -> None:
        self.database.execute(
            "UPDATE doc_collections SET offline = ?, indexed_at = ?, vectors_of = ? WHERE id = ?",
            (int(offline), _now(), vectors_of, collection.id),
        )

    def stats(self, collection: Collection) -> CollectionStats:
        files = self.database.fetch_one(
            "SELECT COUNT(*) FILTER (WHERE skipped IS NULL), COUNT(*) FILTER (WHERE skipped IS "
            "NOT NULL), COALESCE(SUM(size) FILTER (WHERE skipped IS NULL), 0) FROM doc_files "
            "WHERE collection_id = ?",
            (collection.id,),
        )
        chunks = self.database.fetch_one(
            "SELECT COUNT(*), COUNT(c.vector) FROM doc_chunks c JOIN doc_files f "
            "ON f.id = c.file_id WHERE f.collection_id = ?",
            (collection.id,),
        )
        assert files is not None and chunks is not None
        return CollectionStats(files[0], files[1], files[2], chunks[0], chunks[1])

    # -- files and chunks ----------------------------------------------------------------

    def files(self, collection: Collection) -> dict[str, FileRecord]:
        rows = self.database.fetch_all(
            "SELECT id, path, size, mtime_ns, sha256, skipped FROM doc_files "
            "WHERE collection_id = ?",
            (collection.id,),
        )
        return {row[1]: FileRecord(*row) for row in rows}

    def skipped(self, collection: Collection) -> list[tuple[str, str]]:
        """(path, why) of the files not indexed."""
        rows = self.database.fetch_all(
            "SELECT path, skipped FROM doc_files WHERE collection_id = ? AND skipped IS NOT "
            "NULL ORDER BY path",
            (collection.id,),
        )
        return [(row[0], row[1]) for row in rows]

    def touch(self, record: FileRecord, *, size: int, mtime_ns: int) -> None:
        """The file's content is unchanged (same hash): only its stat moved."""
        self.database.execute(
            "UPDATE doc_files SET size = ?, mtime_ns = ? WHERE id = ?", (size, mtime_ns, record.id)
        )

    def replace_file(
        self,
        collection: Collection,
        path: str,
        *,
        size: int,
        mtime_ns: int,
        sha256: str | None,
        chunks: Sequence[Chunk] = (),
        skipped: str | None = None,
    ) -> list[int]:
        """Record a file's new content (its old chunks go); returns the new chunks' ids."""
        with self.database.transaction() as connection:
            row = connection.execute(
                "SELECT id FROM doc_files WHERE collection_id = ? AND path = ?",
                (collection.id, path),
            ).fetchone()
            if row is not None:
                connection.execute("DELETE FROM doc_chunks WHERE file_id = ?", (row[0],))
                connection.execute(
                    "UPDATE doc_files SET size = ?, mtime_ns = ?, sha256 = ?, skipped = ? "
                    "WHERE id = ?",
                    (size, mtime_ns, sha256, skipped, row[0]),
                )
                file_id = int(row[0])
            else:
                cursor = connection.execute(
                    "INSERT INTO doc_files (collection_id, path, size, mtime_ns, sha256, skipped) "
                    "VALUES (?, ?, ?, ?, ?, ?)",
                    (collection.id, path, size, mtime_ns, sha256, skipped),
                )
                file_id = int(cursor.lastrowid or 0)
            ids: list[int] = []
            for chunk in chunks:
                cursor = connection.execute(
                    "INSERT INTO doc_chunks (file_id, text, heading, page, line_start, line_end) "
                    "VALUES (?, ?, ?, ?, ?, ?)",
                    (
                        file_id,
                        chunk.text,
                        chunk.heading,
                        chunk.page,
                        chunk.line_start,
                        chunk.line_end,
                    ),
                )
                ids.append(int(cursor.lastrowid or 0))
            return ids

    def forget_files(self, collection: Collection, paths: Iterable[str]) -> None:
        with self.database.transaction() as connection:
            for path in paths:
                connection.execute(
                    "DELETE FROM doc_chunks WHERE file_id IN (SELECT id FROM doc_files WHERE "
                    "collection_id = ? AND path = ?)",
                    (collection.id, path),
                )
                connection.execute(
                    "DELETE FROM doc_files WHERE collection_id = ? AND path = ?",
                    (collection.id, path),
                )

    def unembedded(self, collection: Collection, *, limit: int) -> list[tuple[int, str, str]]:
        """(id, heading, text) of up to `limit` chunks without a vector."""
        rows = self.database.fetch_all(
            "SELECT c.id, c.heading, c.text FROM doc_chunks c JOIN doc_files f ON f.id = "
            "c.file_id WHERE f.collection_id = ? AND c.vector IS NULL ORDER BY c.id LIMIT ?",
            (collection.id, limit),
        )
        return [(row[0], row[1], row[2]) for row in rows]

    def set_vectors(self, ids: Sequence[int], vectors: np.ndarray) -> None:
        rows = np.ascontiguousarray(vectors, dtype="<f4")
        with self.database.transaction() as connection:
            connection.executemany(
                "UPDATE doc_chunks SET vector = ? WHERE id = ?",
                [(rows[index].tobytes(), chunk_id) for index, chunk_id in enumerate(ids)],
            )

    def clear_vectors(self, collection: Collection) -> None:
        """Drop every vector (the embedding model changed: they are all re-made)."""
        self.database.execute(
            "UPDATE doc_chunks SET vector = NULL WHERE file_id IN "
            "(SELECT id FROM doc_files WHERE collection_id = ?)",
            (collection.id,),
        )

    def vectors(self, collection: Collection) -> tuple[np.ndarray, np.ndarray]:
        """(chunk ids, float32 matrix) of the collection's embedded chunks, by id."""
        rows = self.database.fetch_all(
            "SELECT c.id, c.vector FROM doc_chunks c JOIN doc_files f ON f.id = c.file_id "
            "WHERE f.collection_id = ? AND c.vector IS NOT NULL ORDER BY c.id",
            (collection.id,),
        )
        ids = np.array([row[0] for row in rows], dtype=np.int64)
        if not rows:
            return ids, np.zeros((0, 0), dtype=np.float32)
        matrix = np.frombuffer(b"".join(row[1] for row in rows), dtype="<f4")
        return ids, matrix.reshape(len(rows), -1)

    # -- search --------------------------------------------------------------------------

    def search_words(
        self, collections: Sequence[Collection], match: str, *, limit: int
    ) -> list[tuple[int, float]]:
        """(chunk id, BM25 score: lower is better) of chunks matching an FTS5 `match`.

        FTS5 ranks a bare `MATCH ... ORDER BY rank LIMIT n` without sorting every match; a
        join to filter by collection would make it rank them all. So the bare query runs
        first, over all collections, and its best rows are filtered here; only when other
        collections crowd out this one's does the joined query run.
        """
        wanted = {collection.id for collection in collections}
        widened = limit * 4
        rows = self.database.fetch_all(
            "SELECT rowid, rank FROM doc_chunks_fts WHERE doc_chunks_fts MATCH ? "
            "ORDER BY rank LIMIT ?",
            (match, widened),
        )
        owners = self._collections_of([row[0] for row in rows])
        found = [(row[0], row[1]) for row in rows if owners.get(row[0]) in wanted]
        if len(found) >= limit or len(rows) < widened:
            return found[:limit]
        ids = [collection.id for collection in collections]
        marks = ",".join("?" * len(ids))
        joined = self.database.fetch_all(
            "SELECT fts.rowid, bm25(doc_chunks_fts) AS score FROM doc_chunks_fts fts "
            "JOIN doc_chunks c ON c.id = fts.rowid JOIN doc_files f ON f.id = c.file_id "
            f"WHERE doc_chunks_fts MATCH ? AND f.collection_id IN ({marks}) "
            "ORDER BY score LIMIT ?",
            (match, *ids, limit),
        )
        return [(row[0], row[1]) for row in joined]

    def _collections_of(self, chunk_ids: Sequence[int]) -> dict[int, int]:
        return {row[0]: row[1] for row in self._chunk_rows("f.collection_id", chunk_ids)}

    def chunks(self, ids: Sequence[int]) -> dict[int, StoredChunk]:
        rows = self._chunk_rows("f.path, c.text, c.heading, c.page, c.line_start, c.line_end", ids)
        return {row[0]: StoredChunk(*row) for row in rows}

    def _chunk_rows(self, columns: str, ids: Sequence[int]) -> list[tuple[Any, ...]]:
        """The id and `columns` (`c.` of the chunk, `f.` of its file) of each chunk in `ids`."""
        if not ids:
            return []
        marks = ",".join("?" * len(ids))
        return self.database.fetch_all(
            f"SELECT c.id, {columns} FROM doc_chunks c JOIN doc_files f ON f.id = c.file_id "
            f"WHERE c.id IN ({marks})",
            tuple(ids),
        )

    def _collection(self, row: tuple[object, ...]) -> Collection:
        collection_id = int(str(row[0]))
        roots = self.database.fetch_all(
            "SELECT path FROM doc_roots WHERE collection_id = ? ORDER BY path", (collection_id,)
        )
        return Collection(
            id=collection_id,
            name=str(row[1]),
            roots=tuple(Path(root[0]) for root in roots),
            embedder=Path(str(row[2])) if row[2] else None,
            vectors_of=str(row[3]) if row[3] else None,
            offline=bool(row[4]),
            indexed_at=str(row[5]) if row[5] else None,
        )

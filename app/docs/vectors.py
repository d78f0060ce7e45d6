"""A collection's vectors as one float32 matrix in a memory-mapped `.npy` file.

The vectors' source of truth is the database (one BLOB per chunk); this file is a cache for
search, rebuilt at the end of every index run (finished or stopped) and whenever its
fingerprint (the collection's last index time and model) no longer matches the database's,
and written under a temporary name then renamed, so a reader never maps half a file. A
search is one matrix-vector product over the mapped rows.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from app.docs.store import Collection, DocumentStore


@dataclass(frozen=True)
class VectorHits:
    chunk_ids: tuple[int, ...]  # best first
    similarities: tuple[float, ...]  # cosine similarity (the rows are unit length)


class VectorIndex:
    """The vectors of one collection, mapped from `<folder>/collection-<id>.npy`."""

    def __init__(self, store: DocumentStore, collection: Collection, folder: Path) -> None:
        self._store = store
        self._collection = collection
        stem = folder / f"collection-{collection.id}"
        self._matrix_path = stem.with_suffix(".npy")
        self._ids_path = stem.with_suffix(".ids.npy")
        self._fingerprint_path = stem.with_suffix(".json")
        self._folder = folder

    def fingerprint(self) -> dict[str, object]:
        """What the matrix was built from: the collection's last index and its model. One
        row read, so every search can afford it (counting the vectors was 10,000 rows)."""
        row = self._store.database.fetch_one(
            "SELECT indexed_at, vectors_of FROM doc_collections WHERE id = ?",
            (self._collection.id,),
        )
        indexed_at, model = row if row is not None else (None, None)
        return {"indexed_at": indexed_at, "model": model}

    def rebuild(self) -> int:
        """Write the matrix from the database; returns how many rows it has."""
        ids, matrix = self._store.vectors(self._collection)
        self._folder.mkdir(parents=True, exist_ok=True)
        for path, array in ((self._ids_path, ids), (self._matrix_path, matrix)):
            temporary = path.with_name(path.name + ".tmp")
            with open(temporary, "wb") as file:
                np.save(file, array)
            os.replace(temporary, path)
        temporary = self._fingerprint_path.with_name(self._fingerprint_path.name + ".tmp")
        temporary.write_text(json.dumps(self.fingerprint()))
        os.replace(temporary, self._fingerprint_path)
        return len(ids)

    def search(self, query: np.ndarray, *, limit: int) -> VectorHits:
        """The `limit` chunks whose vectors are nearest `query` (a unit vector)."""
        ids, matrix = self._open()
        if len(ids) == 0 or matrix.shape[1] != query.shape[-1]:
            return VectorHits((), ())
        similarities = matrix @ query.astype(np.float32)
        count = min(limit, len(ids))
        best = np.argpartition(-similarities, count - 1)[:count]
        best = best[np.argsort(-similarities[best])]
        return VectorHits(
            tuple(int(i) for i in ids[best]), tuple(float(s) for s in similarities[best])
        )

    def _open(self) -> tuple[np.ndarray, np.ndarray]:
        try:
            current = json.loads(self._fingerprint_path.read_text())
        except (OSError, ValueError):
            current = None
        if current != self.fingerprint():
            self.rebuild()
        ids = np.load(self._ids_path)
        if len(ids) == 0:  # an empty file cannot be mapped
            return ids, np.zeros((0, 0), dtype=np.float32)
        matrix = np.load(self._matrix_path, mmap_mode="r")
        return ids, matrix

    def remove(self) -> None:
        for path in (self._matrix_path, self._ids_path, self._fingerprint_path):
            path.unlink(missing_ok=True)

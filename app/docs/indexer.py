"""Bring a collection's index up to date with its files: new, changed and deleted, only those.

A file whose size and mtime are as recorded is not read. One whose stat moved is read and
hashed: the same sha256 only updates the stat (a `touch`, a copy), a new one is extracted,
chunked and stored in one transaction, so a crash or a cancel leaves each file either old or
new, and the next run goes on from there. Files gone from a present root are forgotten;
files under a missing root (an unplugged drive) are kept and the collection is marked
offline. Then chunks without a vector are embedded in batches, and the memory-mapped matrix
is rebuilt. Runs on a worker thread; `IndexControl` pauses or cancels it between files and
between batches.
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path

from app.docs.chunking import chunk_blocks
from app.docs.embedder import EMBED_BATCH, Embedder
from app.docs.extract import DocumentError, DocumentKind, extract_blocks
from app.docs.store import Collection, DocumentStore, FileRecord
from app.docs.vectors import VectorIndex
from app.docs.walk import FoundFile, Walk, walk_roots
from app.errors import AppError


class IndexCancelled(AppError):
    """Indexing was stopped on request (what was done is kept)."""


class IndexPhase(StrEnum):
    SCANNING = "scanning"
    READING = "reading"
    EMBEDDING = "embedding"
    DONE = "done"


@dataclass(frozen=True)
class IndexProgress:
    phase: IndexPhase
    done: int
    total: int
    path: str | None = None  # the file being read


@dataclass(frozen=True)
class IndexReport:
    """What a run changed."""

    added: int
    changed: int
    removed: int
    unchanged: int
    skipped: tuple[tuple[str, str], ...]  # (path, why) of files not indexed, new this run
    missing_roots: tuple[Path, ...]
    chunks_added: int
    chunks_embedded: int
    bytes_read: int
    seconds: float

    @property
    def offline(self) -> bool:
        return bool(self.missing_roots)

    def summary(self) -> str:
        parts = [f"{self.added} new", f"{self.changed} changed", f"{self.removed} removed"]
        parts.append(f"{self.unchanged} unchanged")
        if self.skipped:
            parts.append(f"{len(self.skipped)} skipped")
        text = ", ".join(parts) + f"; {self.chunks_added} chunks, {self.chunks_embedded} embedded"
        if self.missing_roots:
            text += " (offline: " + ", ".join(map(str, self.missing_roots)) + " not found)"
        return text


@dataclass
class IndexControl:
    """Pause, resume or cancel a run from another thread."""

    _running: threading.Event = field(default_factory=threading.Event)
    _cancelled: threading.Event = field(default_factory=threading.Event)

    def __post_init__(self) -> None:
        self._running.set()

    def pause(self) -> None:
        self._running.clear()

    def resume(self) -> None:
        self._running.set()

    def cancel(self) -> None:
        self._cancelled.set()
        self._running.set()

    @property
    def paused(self) -> bool:
        return not self._running.is_set()

    def checkpoint(self) -> None:
        """Wait while paused; `IndexCancelled` once cancelled."""
        self._running.wait()
        if self._cancelled.is_set():
            raise IndexCancelled("Indexing was stopped; what was indexed is kept.")


ProgressCallback = Callable[[IndexProgress], None]


def index_collection(
    store: DocumentStore,
    collection: Collection,
    *,
    embedder: Embedder | None,
    vectors_folder: Path,
    progress: ProgressCallback | None = None,
    control: IndexControl | None = None,
) -> IndexReport:
    """Update `collection`'s index from its files (and embed what is new with `embedder`).

    Raises:
        IndexCancelled: `control` cancelled it (each file done so far is kept).
        EngineError: the embedding model failed (the words index is kept; vectors resume
            on the next run).
    """
    started = time.perf_counter()
    control = control or IndexControl()
    report = progress or (lambda _progress: None)
    report(IndexProgress(IndexPhase.SCANNING, 0, 0))
    walk = walk_roots(collection.roots)
    try:
        return _update(
            store,
            collection,
            walk=walk,
            embedder=embedder,
            report=report,
            control=control,
            started=started,
        )
    finally:
        # Finished or stopped: the matrix that searches map holds the vectors stored now.
        VectorIndex(store, collection, vectors_folder).rebuild()


def _update(
    store: DocumentStore,
    collection: Collection,
    *,
    walk: Walk,
    embedder: Embedder | None,
    report: ProgressCallback,
    control: IndexControl,
    started: float,
) -> IndexReport:
    known = store.files(collection)
    counts = _Counts()
    total = len(walk.files) + len(walk.skipped)
    for done, found in enumerate(walk.files):
        control.checkpoint()
        report(IndexProgress(IndexPhase.READING, done, total, str(found.path)))
        _index_file(store, collection, found, known.pop(str(found.path), None), counts)
    for skipped in walk.skipped:
        record = known.pop(str(skipped.path), None)
        if record is None or record.skipped != skipped.reason:
            store.replace_file(
                collection,
                str(skipped.path),
                size=skipped.size,
                mtime_ns=skipped.mtime_ns,
                sha256=None,
                skipped=skipped.reason,
            )
            counts.skipped.append((str(skipped.path), skipped.reason))
    # What is left of `known` was not found: gone, unless it sits under a missing root.
    gone = [path for path in known if not _under_any(path, walk.missing_roots)]
    store.forget_files(collection, gone)
    counts.removed += len(gone)
    embedded = 0
    vectors_of = collection.vectors_of
    if embedder is not None:
        embedded = _embed_new_chunks(store, collection, embedder, report, control)
        vectors_of = embedder.model_id
    store.mark_indexed(collection, offline=bool(walk.missing_roots), vectors_of=vectors_of)
    report(IndexProgress(IndexPhase.DONE, total, total))
    return IndexReport(
        added=counts.added,
        changed=counts.changed,
        removed=counts.removed,
        unchanged=counts.unchanged,
        skipped=tuple(counts.skipped),
        missing_roots=tuple(walk.missing_roots),
        chunks_added=counts.chunks,
        chunks_embedded=embedded,
        bytes_read=counts.bytes_read,
        seconds=time.perf_counter() - started,
    )


@dataclass
class _Counts:
    added: int = 0
    changed: int = 0
    removed: int = 0
    unchanged: int = 0
    chunks: int = 0
    bytes_read: int = 0
    skipped: list[tuple[str, str]] = field(default_factory=list)


def _index_file(
    store: DocumentStore,
    collection: Collection,
    found: FoundFile,
    record: FileRecord | None,
    counts: _Counts,
) -> None:
    path = str(found.path)
    if record is not None and (record.size, record.mtime_ns) == (found.size, found.mtime_ns):
        counts.unchanged += 1
        return
    try:
        data = found.path.read_bytes()
    except OSError:
        # Vanished (or became unreadable) since the walk: as if the walk had not seen it.
        if record is not None:
            store.forget_files(collection, [path])
            counts.removed += 1
        return
    counts.bytes_read += len(data)
    sha256 = hashlib.sha256(data).hexdigest()
    if record is not None and record.sha256 == sha256 and record.skipped is None:
        store.touch(record, size=found.size, mtime_ns=found.mtime_ns)
        counts.unchanged += 1
        return
    try:
        chunks = list(chunk_blocks(extract_blocks(found.kind, data, name=found.path.name)))
        skipped = None if chunks else "no text in it"
    except DocumentError as error:
        chunks, skipped = [], error.message
    except RecursionError:  # a parser's deep nesting: the file is hostile or broken
        chunks, skipped = [], "too deeply nested to read"
    store.replace_file(
        collection,
        path,
        size=found.size,
        mtime_ns=found.mtime_ns,
        sha256=sha256,
        chunks=chunks,
        skipped=skipped,
    )
    if skipped is not None:  # counted as skipped, not as new or changed
        counts.skipped.append((path, skipped))
        return
    counts.chunks += len(chunks)
    if record is None:
        counts.added += 1
    else:
        counts.changed += 1


def _embed_new_chunks(
    store: DocumentStore,
    collection: Collection,
    embedder: Embedder,
    report: ProgressCallback,
    control: IndexControl,
) -> int:
    if collection.vectors_of is not None and collection.vectors_of != embedder.model_id:
        store.clear_vectors(collection)  # another model: every vector is made again
    stats = store.stats(collection)
    total = stats.chunks - stats.embedded
    done = 0
    while True:
        control.checkpoint()
        pending = store.unembedded(collection, limit=EMBED_BATCH * 4)
        if not pending:
            return done
        report(IndexProgress(IndexPhase.EMBEDDING, done, total))
        vectors = embedder.embed([embedding_text(heading, text) for _, heading, text in pending])
        store.set_vectors([chunk_id for chunk_id, _, _ in pending], vectors)
        done += len(pending)


def embedding_text(heading: str, text: str) -> str:
    """What is embedded for a chunk: its section's heading gives a short passage its topic."""
    return f"{heading}\n{text}" if heading and not text.startswith("#") else text


def _under_any(path: str, roots: list[Path]) -> bool:
    candidate = Path(path)
    return any(candidate == root or candidate.is_relative_to(root) for root in roots)


__all__ = [
    "DocumentKind",
    "IndexCancelled",
    "IndexControl",
    "IndexPhase",
    "IndexProgress",
    "IndexReport",
    "index_collection",
]

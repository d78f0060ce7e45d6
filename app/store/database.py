"""The app's one SQLite file: a thread-safe connection and its schema migrations.

Opening is where a file on disk meets this build, so it is careful: the file must be a
private plain file of this user (`app.store.files`); a damaged one is moved aside and a fresh
one started (`recovery` says where the old one went); one written by a newer ModelDeck is
refused before anything is written; and the migrations run in one `BEGIN IMMEDIATE`
transaction that re-reads the schema version, so two processes starting on an empty folder
migrate once, the second waiting for the first (SQLite's busy timeout), then retrying.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Any

from app.store.errors import (
    DatabaseBusyError,
    DatabaseCorruptError,
    DatabaseTooNewError,
    DatabaseUnusableError,
)
from app.store.files import FileIdentity, ensure_folder, move_aside, prepare_database_file
from app.store.openers import OpenersLock

BUSY_TIMEOUT_S = 10.0
"""How long one statement waits for another process's lock (SQLite's busy handler)."""

START_TIMEOUT_S = 30.0
"""How long opening keeps retrying while other processes hold the database locked."""

RECOVERY_WAIT_S = 5.0
"""How long a damaged database waits for other openers to let go before it is moved aside."""

_MIGRATIONS: tuple[str, ...] = (
    """
    CREATE TABLE settings (
        key   TEXT PRIMARY KEY,
        value TEXT NOT NULL            -- JSON
    );
    CREATE TABLE hub_snapshots (
        endpoint   TEXT NOT NULL,
        repo_id    TEXT NOT NULL,
        kind       TEXT NOT NULL,      -- 'details' | 'card'
        payload    TEXT NOT NULL,      -- JSON
        fetched_at TEXT NOT NULL,      -- ISO 8601, UTC
        PRIMARY KEY (endpoint, repo_id, kind)
    );
    """,
    # 2: the download queue. A job is one repo revision and a set of its files.
    """
    CREATE TABLE download_jobs (
        id          INTEGER PRIMARY KEY,
        endpoint    TEXT NOT NULL,
        repo_id     TEXT NOT NULL,
        revision    TEXT NOT NULL,     -- the commit sha the files come from
        label       TEXT NOT NULL,     -- what the user picked, e.g. "Q4_K_M" or "fp16"
        state       TEXT NOT NULL,     -- queued | running | paused | completed | failed | cancelled
        error       TEXT,              -- one line for a person, when failed
        created_at  TEXT NOT NULL,
        finished_at TEXT
    );
    CREATE TABLE download_files (
        job_id      INTEGER NOT NULL REFERENCES download_jobs(id) ON DELETE CASCADE,
        path        TEXT NOT NULL,     -- path in the repository
        size        INTEGER,
        sha256      TEXT,              -- LFS sha256 from the hub, when the file is in LFS
        etag        TEXT NOT NULL,     -- blob name in the HF cache (sha256, or git blob id)
        state       TEXT NOT NULL,     -- pending | done | failed
        PRIMARY KEY (job_id, path)
    );
    """,
    # 3: the library's own records: imported checkpoints and extra folders to scan.
    """
    CREATE TABLE library_imports (
        path        TEXT PRIMARY KEY,  -- absolute, used in place
        sha256      TEXT,              -- when known (computed off the GUI thread)
        kind        TEXT,
        imported_at TEXT NOT NULL
    );
    CREATE TABLE library_folders (
        path        TEXT PRIMARY KEY,  -- an extra folder the user asked to scan
        added_at    TEXT NOT NULL
    );
    CREATE TABLE file_hashes (
        path        TEXT PRIMARY KEY,  -- sha256 memo: recomputed only when size or mtime change
        size        INTEGER NOT NULL,
        mtime_ns    INTEGER NOT NULL,
        sha256      TEXT NOT NULL
    );
    """,
    # 4: the download queue remembers which branch or tag to point at the commit (refs/<ref>),
    # and what kind of error a failed job hit (so a restarted app still offers the right fix).
    """
    ALTER TABLE download_jobs ADD COLUMN ref TEXT;         -- e.g. 'main'; NULL: a sha was asked
    ALTER TABLE download_jobs ADD COLUMN error_kind TEXT;  -- offline | gated | not-found | …
    """,
    # 5: conversations and their messages, and load/sampling presets saved per model.
    # A reply is written while it streams (state 'streaming'); a 'marker' message records that
    # older turns were left out of the prompt from there on, to fit the context.
    """
    CREATE TABLE conversations (
        id            INTEGER PRIMARY KEY,
        title         TEXT NOT NULL,
        system_prompt TEXT NOT NULL DEFAULT '',
        model         TEXT,              -- JSON: {kind: local, path, sha256, name, repo_id}
                                         --    or {kind: remote, url, name}; NULL: none picked
        settings      TEXT NOT NULL,     -- JSON: sampling and load settings
        created_at    TEXT NOT NULL,     -- ISO 8601, UTC
        updated_at    TEXT NOT NULL      -- last change of the conversation or its messages
    );
    CREATE INDEX conversations_by_update ON conversations (updated_at);
    CREATE TABLE messages (
        id              INTEGER PRIMARY KEY,
        conversation_id INTEGER NOT NULL REFERENCES conversations(id) ON DELETE CASCADE,
        position        INTEGER NOT NULL,  -- 0, 1, 2, … in reading order
        role            TEXT NOT NULL,     -- user | assistant | marker
        content         TEXT NOT NULL,
        state           TEXT NOT NULL,     -- complete | streaming | interrupted | error | cancelled
        error           TEXT,              -- one line for a person, when state is 'error'
        stats           TEXT,              -- JSON: tokens, timings, model, settings of a reply
        dropped         INTEGER,           -- markers: how many older messages were left out
        created_at      TEXT NOT NULL,
        updated_at      TEXT NOT NULL,
        UNIQUE (conversation_id, position)
    );
    CREATE INDEX messages_streaming ON messages (state) WHERE state = 'streaming';
    CREATE TABLE model_presets (
        model_key  TEXT PRIMARY KEY,       -- ModelRef.preset_key: sha256, path or url#name
        settings   TEXT NOT NULL,          -- JSON
        updated_at TEXT NOT NULL
    );
    """,
    # 6: the image gallery. The PNG files hold their parameters; this indexes them so a page of
    # thousands is one query and no file is opened.
    """
    CREATE TABLE images (
        id         INTEGER PRIMARY KEY,
        path       TEXT NOT NULL UNIQUE,   -- absolute path of the PNG
        thumbnail  TEXT,                   -- a small JPEG, when made
        params     TEXT NOT NULL,          -- JSON: ImageParams, seed resolved
        model      TEXT,                   -- the model's name, for a person
        width      INTEGER NOT NULL,
        height     INTEGER NOT NULL,
        seed       INTEGER,
        seconds    REAL,                   -- generation time
        created_at TEXT NOT NULL           -- ISO 8601, UTC, microseconds (sorts as text)
    );
    CREATE INDEX images_by_creation ON images (created_at DESC, id DESC);
    """,
    # 7: regenerated replies are kept as versions. The messages row holds the version shown
    # (the one a model sees); the others wait here, numbered in the order they were written.
    """
    ALTER TABLE messages ADD COLUMN version INTEGER NOT NULL DEFAULT 1;
    CREATE TABLE reply_versions (
        message_id INTEGER NOT NULL REFERENCES messages(id) ON DELETE CASCADE,
        number     INTEGER NOT NULL,       -- 1, 2, 3, … (the shown one is messages.version)
        content    TEXT NOT NULL,
        state      TEXT NOT NULL,          -- as messages.state (never 'streaming')
        error      TEXT,
        stats      TEXT,                   -- JSON, as messages.stats
        created_at TEXT NOT NULL,
        PRIMARY KEY (message_id, number)
    );
    """,
    # 8: the hub's security scan of each planned file, kept as the download's provenance
    # (a ScanLevel value; NULL in rows written before: not recorded).
    """
    ALTER TABLE download_files ADD COLUMN scan TEXT;
    """,
    # 9: document collections (app.docs): files indexed in place, their chunks, the chunks'
    # full-text index (FTS5, kept in step by triggers) and their embedding vectors.
    """
    CREATE TABLE doc_collections (
        id          INTEGER PRIMARY KEY,
        name        TEXT NOT NULL UNIQUE,
        embedder    TEXT,              -- the embedding GGUF's path; NULL: words only
        vectors_of  TEXT,              -- the model the stored vectors came from (name + size)
        offline     INTEGER NOT NULL DEFAULT 0,  -- a root was missing at the last index
        created_at  TEXT NOT NULL,
        indexed_at  TEXT
    );
    CREATE TABLE doc_roots (
        collection_id INTEGER NOT NULL REFERENCES doc_collections(id) ON DELETE CASCADE,
        path          TEXT NOT NULL,   -- a file or folder, absolute
        PRIMARY KEY (collection_id, path)
    );
    CREATE TABLE doc_files (
        id            INTEGER PRIMARY KEY,
        collection_id INTEGER NOT NULL REFERENCES doc_collections(id) ON DELETE CASCADE,
        path          TEXT NOT NULL,
        size          INTEGER NOT NULL,
        mtime_ns      INTEGER NOT NULL,
        sha256        TEXT,
        skipped       TEXT,            -- why it is not indexed; NULL: indexed
        UNIQUE (collection_id, path)
    );
    CREATE TABLE doc_chunks (
        id         INTEGER PRIMARY KEY,
        file_id    INTEGER NOT NULL REFERENCES doc_files(id) ON DELETE CASCADE,
        text       TEXT NOT NULL,
        heading    TEXT NOT NULL,
        page       INTEGER,
        line_start INTEGER NOT NULL,
        line_end   INTEGER NOT NULL,
        vector     BLOB                -- float32 little-endian; NULL: not embedded
    );
    CREATE INDEX doc_chunks_by_file ON doc_chunks (file_id);
    CREATE VIRTUAL TABLE doc_chunks_fts USING fts5 (
        text, heading, content='doc_chunks', content_rowid='id', tokenize='porter unicode61'
    );
    CREATE TRIGGER doc_chunks_fts_insert AFTER INSERT ON doc_chunks BEGIN
        INSERT INTO doc_chunks_fts (rowid, text, heading) VALUES (new.id, new.text, new.heading);
    END;
    CREATE TRIGGER doc_chunks_fts_delete AFTER DELETE ON doc_chunks BEGIN
        INSERT INTO doc_chunks_fts (doc_chunks_fts, rowid, text, heading)
        VALUES ('delete', old.id, old.text, old.heading);
    END;
    """,
    # 10: the image queue (app.images.queue): each job with every setting it runs with; a job
    # left "running" by a killed app runs again at the next start.
    """
    CREATE TABLE image_queue (
        id          INTEGER PRIMARY KEY,
        position    INTEGER NOT NULL,  -- the order jobs run in (smallest first)
        state       TEXT NOT NULL,     -- queued | running | done | failed | cancelled
        model       TEXT NOT NULL,     -- JSON: ModelRef
        params      TEXT NOT NULL,     -- JSON: ImageParams, seed resolved
        follow_size INTEGER NOT NULL,  -- 1: the model's own size when it loads
        error       TEXT,              -- one line for a person, when failed
        images      TEXT NOT NULL,     -- JSON: the paths made
        created_at  TEXT NOT NULL,
        finished_at TEXT
    );
    CREATE INDEX image_queue_by_position ON image_queue (state, position);
    """,
    # 11: images attached to chat messages (app.chat.image_store): the files are kept
    # content-addressed beside the database; a message lists them by sha256.
    """
    ALTER TABLE messages ADD COLUMN images TEXT;  -- JSON: [{sha256, name, suffix}]; NULL: none
    """,
    # 12: download jobs from every hub (app.downloads.sources): the hub, and for one other
    # than Hugging Face, where its files go and how they are fetched.
    """
    ALTER TABLE download_jobs ADD COLUMN hub TEXT NOT NULL DEFAULT 'hf';
    ALTER TABLE download_jobs ADD COLUMN source TEXT;  -- JSON: CivitaiSource | ModelScopeSource
    """,
    # 13: the sources a reply from documents was given (app.docs.citation), so its [n] open.
    """
    ALTER TABLE messages ADD COLUMN sources TEXT;  -- JSON: [Citation]; NULL: none
    """,
)


SCHEMA_VERSION = len(_MIGRATIONS)
"""The schema version this build writes; a database with a higher one is refused."""


@dataclass(frozen=True, slots=True)
class DatabaseRecovery:
    """A damaged database was moved aside at start-up and a fresh one started in its place."""

    path: Path  # where the database is (now fresh)
    moved_to: Path  # where the damaged one went, with its -wal and -shm
    reason: str  # what SQLite said about it

    @property
    def message(self) -> str:
        """One line for a person: what happened and where the old file is."""
        return (
            f"The database {self.path} was damaged ({self.reason}); it was moved to "
            f"{self.moved_to} and ModelDeck started with a fresh one (settings, conversations "
            "and the download queue start empty; downloaded models are untouched)."
        )


class Database:
    """A SQLite database in WAL mode, shared by all threads of the app.

    One connection guarded by a lock: the app's writes are small and rare, and this keeps
    ordering simple. Long reads belong off the GUI thread like any other I/O.

    Args:
        path: the database file; it and its folder are created (owner-only) when missing.

    Raises:
        DatabaseUnusableError: the path holds a folder, a link, another user's or an
            unreadable file, or the folder cannot be written.
        DatabaseTooNewError: a newer ModelDeck wrote it (nothing is written to it).
        DatabaseCorruptError: it is damaged and could not be moved aside.
        DatabaseBusyError: other processes kept it locked for `START_TIMEOUT_S`.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.RLock()
        self.recovery: DatabaseRecovery | None = None
        """Set when a damaged database was moved aside while opening this one."""
        self._openers: OpenersLock
        self._connection = self._open()

    def close(self) -> None:
        with self._lock:
            self._connection.close()
            self._openers.close()

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """Run several statements atomically."""
        with self._lock:
            self._connection.execute("BEGIN IMMEDIATE")
            try:
                yield self._connection
            except BaseException:
                self._connection.execute("ROLLBACK")
                raise
            self._connection.execute("COMMIT")

    def execute(self, sql: str, parameters: Sequence[Any] = ()) -> None:
        with self._lock:
            self._connection.execute(sql, parameters)

    def fetch_all(self, sql: str, parameters: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        with self._lock:
            return self._connection.execute(sql, parameters).fetchall()

    def fetch_one(self, sql: str, parameters: Sequence[Any] = ()) -> tuple[Any, ...] | None:
        with self._lock:
            row: tuple[Any, ...] | None = self._connection.execute(sql, parameters).fetchone()
            return row

    # -- settings, as JSON values -----------------------------------------------------

    def get_setting(self, key: str) -> Any:
        """The stored value of `key`, or None."""
        row = self.fetch_one("SELECT value FROM settings WHERE key = ?", (key,))
        return json.loads(row[0]) if row else None

    def set_setting(self, key: str, value: Any) -> None:
        """Store `value` (JSON-serialisable) under `key`; None deletes it."""
        if value is None:
            self.execute("DELETE FROM settings WHERE key = ?", (key,))
        else:
            self.execute(
                "INSERT INTO settings (key, value) VALUES (?, ?) "
                "ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                (key, json.dumps(value)),
            )

    # -- opening -----------------------------------------------------------------------

    def _open(self) -> sqlite3.Connection:
        """Check the file, connect, and bring the schema up to date; retry while busy.

        The openers' lock is held shared from here until `close`, so that a damaged file is
        moved aside only when no other `Database` has it open (see `app.store.openers`).
        """
        deadline = time.monotonic() + START_TIMEOUT_S
        ensure_folder(self.path)  # for the lock file; the rest is checked under the lock
        self._openers = OpenersLock(self.path)
        try:
            self._openers.share(deadline=deadline)
            return self._connect(deadline)
        except BaseException:
            self._openers.close()
            raise

    def _connect(self, deadline: float) -> sqlite3.Connection:
        delay = 0.01
        while True:
            identity = prepare_database_file(self.path)
            connection = sqlite3.connect(
                self.path, timeout=BUSY_TIMEOUT_S, check_same_thread=False, isolation_level=None
            )
            try:
                _start(connection, self.path)
                return connection
            except sqlite3.Error as exc:
                connection.close()
                problem = _Problem.of(exc)
                if problem is _Problem.BUSY and time.monotonic() < deadline:
                    time.sleep(delay)  # another process is migrating or switching to WAL
                    delay = min(delay * 2, 0.5)
                    continue
                if problem is _Problem.CORRUPT and self.recovery is None:
                    self._recover(identity, reason=_reason(exc), deadline=deadline)
                    continue  # on the fresh file, or on what another process put there
                raise self._error(problem, exc) from exc
            except BaseException:
                connection.close()
                raise

    def _recover(self, identity: FileIdentity, *, reason: str, deadline: float) -> None:
        """Move the damaged file aside once no one else has it open, or wait until another
        process has (it found the damage too).

        Raises:
            DatabaseCorruptError: another ModelDeck keeps it open, or the rename failed.
        """
        # Let go first: two processes that both found the damage would otherwise each wait
        # for the other's shared lock forever.
        self._openers.unlock()
        give_up = min(deadline, time.monotonic() + RECOVERY_WAIT_S)
        while FileIdentity.of(self.path) == identity:
            if self._openers.try_exclusive():
                try:
                    if FileIdentity.of(self.path) == identity:
                        self._move_aside(identity, reason=reason)
                finally:
                    self._openers.share(deadline=deadline)  # a downgrade: never waits
                return
            if time.monotonic() > give_up:
                self._openers.share(deadline=deadline)  # held again until the caller closes
                raise DatabaseCorruptError(
                    f"The database {self.path} is damaged ({reason}), and another ModelDeck "
                    "has it open.",
                    path=self.path,
                    hint="Close the other ModelDeck windows or commands, then start again: "
                    "the damaged file is then moved aside.",
                )
            time.sleep(0.02)
        self._openers.share(deadline=deadline)  # replaced by another process: open that one

    def _move_aside(self, identity: FileIdentity, *, reason: str) -> None:
        """Move the damaged file away (recording where), unless it was replaced already."""
        try:
            moved_to = move_aside(self.path, identity)
        except OSError as exc:
            raise DatabaseCorruptError(
                f"The database {self.path} is damaged ({reason}) and could not be moved "
                f"aside: {exc.strerror or exc}.",
                path=self.path,
                hint="Move it away by hand; ModelDeck then starts with a fresh one.",
            ) from exc
        if moved_to is not None:
            self.recovery = DatabaseRecovery(self.path, moved_to, reason)

    def _error(self, problem: _Problem, exc: sqlite3.Error) -> Exception:
        if isinstance(exc, _TooNew):
            return DatabaseTooNewError(
                f"The database {self.path} is from a newer ModelDeck (schema {exc.version}; "
                f"this one knows up to {SCHEMA_VERSION}) and was left untouched.",
                path=self.path,
                version=exc.version,
                known=SCHEMA_VERSION,
            )
        if problem is _Problem.BUSY:
            return DatabaseBusyError(
                f"The database {self.path} stayed locked by another program for "
                f"{START_TIMEOUT_S:.0f} s.",
                path=self.path,
                hint="Close other ModelDeck windows or commands, then start again.",
            )
        if problem is _Problem.CORRUPT:  # damaged again, right after starting afresh
            return DatabaseCorruptError(
                f"The database {self.path} is damaged ({_reason(exc)}), even after starting "
                "a fresh one.",
                path=self.path,
                hint="Check the disk, or set MODELDECK_DATA_DIR to a folder on another one.",
            )
        return DatabaseUnusableError(
            f"Cannot use the database {self.path}: {_reason(exc)}.",
            path=self.path,
            hint="Check that the folder is yours and writable, or set MODELDECK_DATA_DIR "
            "to another folder.",
        )


class _Problem(Enum):
    """What an SQLite error at start-up means for the opening loop."""

    BUSY = "busy"  # another process holds a lock: wait and retry
    CORRUPT = "corrupt"  # the file is not (or no longer) a database: move it aside
    OTHER = "other"  # permissions, a read-only disk, …: stop with one line

    @classmethod
    def of(cls, exc: sqlite3.Error) -> _Problem:
        if isinstance(exc, _TooNew):
            return cls.OTHER
        if isinstance(exc, _Damaged):
            return cls.CORRUPT
        code = getattr(exc, "sqlite_errorcode", None)
        primary = code & 0xFF if isinstance(code, int) else None
        if primary in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED):
            return cls.BUSY
        if primary in (sqlite3.SQLITE_CORRUPT, sqlite3.SQLITE_NOTADB):
            return cls.CORRUPT
        return cls.OTHER


class _TooNew(sqlite3.DatabaseError):
    """The schema version is above what this build knows (raised before any write)."""

    def __init__(self, version: int) -> None:
        super().__init__(f"schema version {version}")
        self.version = version


class _Damaged(sqlite3.DatabaseError):
    """SQLite's own check found damage that opening alone did not trip over."""


def _reason(exc: sqlite3.Error) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__


def _start(connection: sqlite3.Connection, path: Path) -> None:
    """Check the version and the pages before anything is written, then set up and migrate."""
    version = _schema_version(connection)  # reads the header: "not a database" shows here
    if version > SCHEMA_VERSION:
        raise _TooNew(version)
    # A damaged page would otherwise surface later, as a traceback in whatever reads it.
    # The check reads every page once: ~70 ms for a 50 MB database, nothing for a new one.
    if path.stat().st_size:
        problems = [row[0] for row in connection.execute("PRAGMA quick_check").fetchall()]
        if problems != ["ok"]:
            raise _Damaged(problems[0])
    connection.execute("PRAGMA journal_mode=WAL")
    connection.execute("PRAGMA synchronous=NORMAL")
    connection.execute("PRAGMA foreign_keys=ON")
    if version < SCHEMA_VERSION:
        _migrate(connection)


def _schema_version(connection: sqlite3.Connection) -> int:
    (version,) = connection.execute("PRAGMA user_version").fetchone()
    return int(version)


def _migrate(connection: sqlite3.Connection) -> None:
    """Run the missing migrations in one write transaction.

    The version is read again inside it: a process that waited here for another one's
    migration finds the schema current and does nothing.
    """
    connection.execute("BEGIN IMMEDIATE")
    try:
        version = _schema_version(connection)
        if version > SCHEMA_VERSION:
            raise _TooNew(version)
        for number, script in enumerate(_MIGRATIONS[version:], start=version + 1):
            for statement in _statements(script):
                connection.execute(statement)
            connection.execute(f"PRAGMA user_version = {number}")
    except BaseException:
        if connection.in_transaction:
            connection.execute("ROLLBACK")
        raise
    connection.execute("COMMIT")


def _statements(script: str) -> Iterator[str]:
    """The statements of a migration script, one by one.

    `executescript` would commit the surrounding transaction first, so the script is split
    where SQLite's own tokenizer says a statement ends (a `;` inside a comment or a string
    does not end one).
    """
    pending = ""
    for piece in script.split(";"):
        pending += piece + ";"
        if sqlite3.complete_statement(pending):
            if _has_code(pending):
                yield pending
            pending = ""
    if _has_code(pending):
        yield pending  # unfinished: SQLite will say what is wrong with it


def _has_code(statement: str) -> bool:
    """Whether `statement` is more than whitespace, comments and semicolons."""
    lines = (line.split("--", 1)[0] for line in statement.splitlines())
    return any(line.strip(" \t;") for line in lines)

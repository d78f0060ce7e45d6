"""The app's one SQLite file: a thread-safe connection and its schema migrations."""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

# Each entry upgrades the schema by one version; never edit a released entry, append a new one.
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
)


class Database:
    """A SQLite database in WAL mode, shared by all threads of the app.

    One connection guarded by a lock: the app's writes are small and rare, and this keeps
    ordering simple. Long reads belong off the GUI thread like any other I/O.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.RLock()
        self._connection = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._connection.execute("PRAGMA journal_mode=WAL")
        self._connection.execute("PRAGMA synchronous=NORMAL")
        self._connection.execute("PRAGMA foreign_keys=ON")
        self._migrate()

    def close(self) -> None:
        with self._lock:
            self._connection.close()

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

    def _migrate(self) -> None:
        with self._lock:
            (version,) = self._connection.execute("PRAGMA user_version").fetchone()
            for number, script in enumerate(_MIGRATIONS[version:], start=version + 1):
                self._connection.executescript(
                    f"BEGIN; {script}; PRAGMA user_version = {number}; COMMIT;"
                )

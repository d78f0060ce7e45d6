"""The app database at start-up: damaged, newer, foreign, planted or raced-for files.

Every case ends in a working database or in one line a person can act on, never in a
traceback, and a file this build should not touch is left exactly as it was.
"""

from __future__ import annotations

import hashlib
import multiprocessing
import os
import shutil
import sqlite3
import stat
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from multiprocessing.queues import Queue
from multiprocessing.synchronize import Barrier
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from app.store import (
    SCHEMA_VERSION,
    Database,
    DatabaseBusyError,
    DatabaseError,
    DatabaseTooNewError,
    DatabaseUnusableError,
)
from app.store import database as database_module
from app.store.database import _MIGRATIONS
from app.store.files import prepare_database_file
from tests.hostile.bounds import within_bounds

REPO_ROOT = Path(__file__).resolve().parents[2]
SQLITE_HEADER = b"SQLite format 3\x00"
RACE_ROUNDS = 12
RACE_PROCESSES = 6


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    """Where the database goes: in a data folder that does not exist yet."""
    return tmp_path / "data" / "modeldeck.sqlite3"


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def mode_of(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def make_database(path: Path, *, user_version: int, rows: int = 0, wal: bool = False) -> None:
    """A database written by plain sqlite3 (another ModelDeck, or an older one)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    connection = sqlite3.connect(path, isolation_level=None)
    if wal:
        connection.execute("PRAGMA journal_mode=WAL")
    connection.execute("CREATE TABLE settings (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
    connection.execute("CREATE TABLE filler (id INTEGER PRIMARY KEY, text TEXT)")
    connection.executemany(
        "INSERT INTO filler (text) VALUES (?)", [(f"row {n} " * 40,) for n in range(rows)]
    )
    connection.execute(f"PRAGMA user_version = {user_version}")
    connection.close()


def assert_fresh_and_usable(database: Database) -> None:
    assert database.fetch_one("PRAGMA user_version") == (SCHEMA_VERSION,)
    database.set_setting("after", 1)
    assert database.get_setting("after") == 1


# --- two processes, one empty folder ------------------------------------------------------


def _open_at_once(path: str, barrier: Barrier, results: Queue[str]) -> None:
    """A child: wait for the others, then open the database and write to it."""
    try:
        barrier.wait(timeout=30)
        database = Database(Path(path))
        database.set_setting(f"pid-{os.getpid()}", True)
        database.close()
        results.put("ok")
    except BaseException as exc:  # reported to the parent, which fails the test
        results.put(f"{type(exc).__name__}: {exc}")


def run_at_once(path: Path, processes: int) -> list[str]:
    """Start `processes` real processes that open `path` at the same moment; their outcomes."""
    context = multiprocessing.get_context("fork")  # the same start, minus the interpreter's
    barrier = context.Barrier(processes)
    results: Queue[str] = context.Queue()
    children = [
        context.Process(target=_open_at_once, args=(str(path), barrier, results))
        for _ in range(processes)
    ]
    for child in children:
        child.start()
    outcomes = [results.get(timeout=60) for _ in children]
    for child in children:
        child.join(timeout=30)
    return outcomes


def test_processes_starting_together_on_an_empty_folder_migrate_once(tmp_path: Path) -> None:
    # Before the fix, 19 of 20 rounds of 6 failed ("table settings already exists").
    failures: list[str] = []
    for round_ in range(RACE_ROUNDS):
        path = tmp_path / f"round-{round_}" / "modeldeck.sqlite3"
        failures += [o for o in run_at_once(path, RACE_PROCESSES) if o != "ok"]
        database = Database(path)
        assert database.fetch_one("PRAGMA user_version") == (SCHEMA_VERSION,)
        (written,) = database.fetch_one("SELECT count(*) FROM settings") or (0,)
        assert written == RACE_PROCESSES
        database.close()

    assert failures == []


def test_processes_starting_together_on_a_damaged_file_move_it_aside_once(
    tmp_path: Path,
) -> None:
    for round_ in range(4):
        path = tmp_path / f"round-{round_}" / "modeldeck.sqlite3"
        path.parent.mkdir()
        path.write_bytes(os.urandom(8192))

        assert run_at_once(path, RACE_PROCESSES) == ["ok"] * RACE_PROCESSES

        assert len(list(path.parent.glob("modeldeck.sqlite3.corrupt-*"))) == 1
        database = Database(path)
        assert_fresh_and_usable(database)
        database.close()


def test_migrations_run_statement_by_statement_build_the_same_schema(db_path: Path) -> None:
    # The migrations run in one transaction, split into statements; compare with the scripts.
    scripted = sqlite3.connect(":memory:", isolation_level=None)
    for number, script in enumerate(_MIGRATIONS, start=1):
        scripted.executescript(f"BEGIN; {script}; PRAGMA user_version = {number}; COMMIT;")
    schema = "SELECT type, name, tbl_name, sql FROM sqlite_master ORDER BY name"

    database = Database(db_path)

    assert database.fetch_all(schema) == scripted.execute(schema).fetchall()
    assert database.fetch_one("PRAGMA user_version") == (len(_MIGRATIONS),)
    database.close()


# --- damaged files --------------------------------------------------------------------------


def damaged_pages(path: Path) -> None:
    """A database whose header is intact and whose table pages are overwritten."""
    make_database(path, user_version=1, rows=400)
    data = bytearray(path.read_bytes())
    page = 4096
    data[page * 2 : page * 6] = os.urandom(page * 4)
    path.write_bytes(bytes(data))


@pytest.mark.parametrize(
    "damage",
    [
        pytest.param(lambda p: p.write_bytes(os.urandom(20_000)), id="random-bytes"),
        pytest.param(lambda p: p.write_bytes(SQLITE_HEADER + b"\xff" * 84), id="bad-header"),
        pytest.param(damaged_pages, id="damaged-pages"),
    ],
)
def test_a_damaged_database_is_moved_aside_and_a_fresh_one_started(
    db_path: Path, damage: Callable[[Path], None]
) -> None:
    db_path.parent.mkdir(parents=True)
    damage(db_path)
    original = digest(db_path)
    wal = db_path.with_name(db_path.name + "-wal")
    wal.write_bytes(b"leftover log of the damaged file")

    database = Database(db_path)

    recovery = database.recovery
    assert recovery is not None
    assert recovery.moved_to.name.startswith("modeldeck.sqlite3.corrupt-")
    assert digest(recovery.moved_to) == original  # kept, byte for byte, for a rescue
    # Its log is gone from beside the fresh file (replayed there, it would corrupt it):
    # SQLite took it in on closing the damaged one, or it moved along.
    moved_wal = recovery.moved_to.with_name(recovery.moved_to.name + "-wal")
    assert not moved_wal.exists() or moved_wal.read_bytes() == b"leftover log of the damaged file"
    assert str(recovery.moved_to) in recovery.message
    assert "\n" not in recovery.message
    assert_fresh_and_usable(database)
    database.close()


@hypothesis_settings(max_examples=60)
@given(
    content=st.one_of(
        st.binary(max_size=4096),
        st.binary(min_size=84, max_size=4096).map(lambda tail: SQLITE_HEADER + tail),
    )
)
def test_any_bytes_at_the_path_open_or_fail_in_one_line(content: bytes) -> None:
    folder = Path(tempfile.mkdtemp())
    try:
        path = folder / "modeldeck.sqlite3"
        path.write_bytes(content)

        outcome = within_bounds(
            "database file",
            lambda: Database(path),
            errors=(DatabaseError,),
            seconds=2.0,
            pure=False,
        )

        if outcome.error is not None:
            assert "\n" not in str(outcome.error)
            assert isinstance(outcome.error, DatabaseTooNewError), outcome.error
        else:
            assert outcome.value is not None
            assert_fresh_and_usable(outcome.value)
            outcome.value.close()
    finally:
        shutil.rmtree(folder)


# --- a database from a newer ModelDeck ---------------------------------------------------


@pytest.mark.parametrize("wal", [False, True], ids=["rollback-journal", "wal"])
def test_a_newer_database_is_refused_in_one_line_and_left_untouched(
    db_path: Path, wal: bool
) -> None:
    make_database(db_path, user_version=SCHEMA_VERSION + 3, rows=10, wal=wal)
    before = digest(db_path)

    with pytest.raises(DatabaseTooNewError) as caught:
        Database(db_path)

    error = caught.value
    assert error.version == SCHEMA_VERSION + 3
    assert error.known == SCHEMA_VERSION
    assert "newer ModelDeck" in str(error)
    assert "\n" not in str(error)
    assert digest(db_path) == before  # not migrated down, not written
    left = sorted(p.name for p in db_path.parent.iterdir())
    assert left == ["modeldeck.sqlite3", "modeldeck.sqlite3.lock"]  # the lock file is ours


# --- what sits at the path ----------------------------------------------------------------


def test_the_database_and_its_siblings_are_private_from_creation(db_path: Path) -> None:
    previous = os.umask(0o022)  # the common default, which would give 644
    try:
        database = Database(db_path)
        database.set_setting("k", "v")  # the -wal and -shm exist while the database is open

        files = {p.name: mode_of(p) for p in db_path.parent.iterdir()}
        assert files == {
            "modeldeck.sqlite3": 0o600,
            "modeldeck.sqlite3-wal": 0o600,
            "modeldeck.sqlite3-shm": 0o600,
            "modeldeck.sqlite3.lock": 0o600,
        }
        assert mode_of(db_path.parent) == 0o700
        database.close()
    finally:
        os.umask(previous)


def test_files_an_older_version_left_readable_are_made_private(db_path: Path) -> None:
    make_database(db_path, user_version=1)
    db_path.chmod(0o644)
    journal = db_path.with_name(db_path.name + "-journal")
    journal.write_bytes(b"")
    journal.chmod(0o666)

    prepare_database_file(db_path)

    assert mode_of(db_path) == 0o600
    assert mode_of(journal) == 0o600
    database = Database(db_path)
    assert database.get_setting("missing") is None
    database.close()


@pytest.mark.parametrize("suffix", ["", "-wal", "-shm"])
def test_a_planted_symlink_is_refused_and_its_target_untouched(
    db_path: Path, tmp_path: Path, suffix: str
) -> None:
    target = tmp_path / "someone-elses-file"
    target.write_bytes(b"not yours to write")
    db_path.parent.mkdir(parents=True)
    (db_path.parent / f"{db_path.name}{suffix}").symlink_to(target)

    with pytest.raises(DatabaseUnusableError) as caught:
        Database(db_path)

    assert "symbolic link" in str(caught.value)
    assert "\n" not in str(caught.value)
    assert target.read_bytes() == b"not yours to write"


def test_a_folder_at_the_database_path_is_one_line(db_path: Path) -> None:
    db_path.mkdir(parents=True)

    with pytest.raises(DatabaseUnusableError) as caught:
        Database(db_path)

    assert "is a folder" in str(caught.value)
    assert isinstance(caught.value, OSError)


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() != 0, reason="needs root")
def test_a_file_of_another_user_is_refused(db_path: Path) -> None:
    make_database(db_path, user_version=1)
    os.chown(db_path, 65534, 65534)  # nobody: as if another user put it there
    before = digest(db_path)

    with pytest.raises(DatabaseUnusableError) as caught:
        Database(db_path)

    assert "belongs to another user" in str(caught.value)
    assert digest(db_path) == before


@pytest.fixture
def shared_folder() -> Iterator[Path]:
    """A folder an unprivileged child can write to (pytest's tmp_path is private to root)."""
    folder = Path(tempfile.mkdtemp())
    folder.chmod(0o777)
    yield folder
    shutil.rmtree(folder)


def _open_unreadable(folder: str, results: Queue[str]) -> None:
    """A child, unprivileged: its own database, made unreadable, opened."""
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        os.setgid(65534)
        os.setuid(65534)  # root reads every file: drop to nobody
    path = Path(folder) / "data" / "modeldeck.sqlite3"
    Database(path).close()
    path.chmod(0o000)
    try:
        Database(path)
    except DatabaseError as exc:
        results.put(f"{type(exc).__name__}: {exc}")
    except BaseException as exc:
        results.put(f"unexpected {type(exc).__name__}: {exc}")
    else:
        results.put("opened")


def test_an_unreadable_database_is_one_line(shared_folder: Path) -> None:
    context = multiprocessing.get_context("fork")
    results: Queue[str] = context.Queue()
    child = context.Process(target=_open_unreadable, args=(str(shared_folder), results))
    child.start()
    outcome = results.get(timeout=30)
    child.join(timeout=10)

    assert outcome.startswith("DatabaseUnusableError: Cannot read and write"), outcome
    assert "permission denied" in outcome


def test_a_database_locked_past_the_start_timeout_is_one_line(
    db_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(database_module, "BUSY_TIMEOUT_S", 0.05)
    monkeypatch.setattr(database_module, "START_TIMEOUT_S", 0.5)
    make_database(db_path, user_version=1)  # rollback journal: a writer blocks readers
    holder = sqlite3.connect(db_path, isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")
    try:
        with pytest.raises(DatabaseBusyError) as caught:
            Database(db_path)
    finally:
        holder.execute("ROLLBACK")
        holder.close()

    assert "locked" in str(caught.value)
    assert isinstance(caught.value, TimeoutError)
    Database(db_path).close()  # once the lock is gone, it opens (and migrates)


# --- what a person sees: the command line --------------------------------------------------


def run_modeldeck(
    data_dir: Path, *args: str, extra_env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in ("HF_TOKEN", "HF_ENDPOINT", "HF_TOKEN_PATH")
    }
    env |= {
        "MODELDECK_DATA_DIR": str(data_dir),
        "HF_HOME": str(data_dir.parent / "hf_home"),
        "HF_HUB_DISABLE_TELEMETRY": "1",
        "PYTHON_KEYRING_BACKEND": "keyring.backends.fail.Keyring",
        "PYTHONPATH": str(REPO_ROOT),
        "HOME": str(data_dir.parent / "home"),  # `list` also looks in other apps' folders
    }
    env |= extra_env or {}
    return subprocess.run(
        [sys.executable, "-m", "ui.launcher", *args],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_the_command_line_refuses_a_newer_database_in_one_line(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    make_database(data_dir / "modeldeck.sqlite3", user_version=SCHEMA_VERSION + 1)

    result = run_modeldeck(data_dir, "list")

    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("modeldeck: The database ")
    assert "newer ModelDeck" in lines[0]
    assert "Traceback" not in result.stderr


def test_the_command_line_says_where_a_damaged_database_went_and_runs(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    (data_dir / "modeldeck.sqlite3").write_bytes(os.urandom(10_000))

    result = run_modeldeck(data_dir, "list")

    assert result.returncode == 0, result.stderr
    (moved,) = data_dir.glob("modeldeck.sqlite3.corrupt-*")
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert str(moved) in lines[0]
    assert "Traceback" not in result.stderr


def test_the_window_refuses_a_newer_database_in_one_line_and_exits_1(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    make_database(data_dir / "modeldeck.sqlite3", user_version=SCHEMA_VERSION + 1)

    result = run_modeldeck(data_dir, extra_env={"QT_QPA_PLATFORM": "offscreen"})

    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "newer ModelDeck" in lines[0]

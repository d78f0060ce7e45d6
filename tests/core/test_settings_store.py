"""Settings validation and storage, and the SQLite file's migrations."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

import pytest

from app.errors import SettingsError
from app.settings import Settings, load_settings, save_settings, validate_endpoint
from app.store import Database

# --- validate_endpoint ------------------------------------------------------------------------


@pytest.mark.parametrize("value", [None, "", "   ", "\n"])
def test_empty_endpoint_means_default(value: str | None) -> None:
    assert validate_endpoint(value) is None


@pytest.mark.parametrize(
    ("value", "cleaned"),
    [
        ("https://huggingface.co", "https://huggingface.co"),
        ("  https://hf-mirror.com/  ", "https://hf-mirror.com"),
        ("http://127.0.0.1:8765///", "http://127.0.0.1:8765"),
        ("https://hub.example/prefix/", "https://hub.example/prefix"),
    ],
)
def test_endpoint_is_cleaned(value: str, cleaned: str) -> None:
    assert validate_endpoint(value) == cleaned


@pytest.mark.parametrize(
    "value", ["huggingface.co", "ftp://hub.example", "file:///tmp/hub", "http://", "https:///x"]
)
def test_bad_endpoint_is_refused(value: str) -> None:
    with pytest.raises(SettingsError) as caught:
        validate_endpoint(value)

    assert isinstance(caught.value, ValueError)
    assert "http" in str(caught.value)


# --- save and load ----------------------------------------------------------------------------


def test_defaults_on_a_new_database(database: Database) -> None:
    assert load_settings(database) == Settings()


def test_settings_round_trip(database: Database) -> None:
    wanted = Settings(
        hub_endpoint="https://mirror.example/",
        hf_cache_dir="~/models",
        default_context_length=8192,
    )

    save_settings(database, wanted)

    loaded = load_settings(database)
    assert loaded == Settings(
        hub_endpoint="https://mirror.example",  # cleaned on save
        hf_cache_dir="~/models",
        default_context_length=8192,
    )
    assert loaded.resolved_cache_dir() == Path("~/models").expanduser()


def test_saving_defaults_removes_stored_values(database: Database) -> None:
    save_settings(database, Settings(hub_endpoint="https://mirror.example"))
    save_settings(database, Settings())

    assert database.get_setting("hub_endpoint") is None
    assert load_settings(database) == Settings()


def test_invalid_settings_are_refused_and_nothing_is_stored(database: Database) -> None:
    with pytest.raises(SettingsError):
        save_settings(database, Settings(hub_endpoint="mirror.example", hf_cache_dir="/x"))
    with pytest.raises(SettingsError):
        save_settings(database, Settings(default_context_length=100))

    assert load_settings(database) == Settings()


def test_a_bad_stored_value_falls_back_alone(database: Database) -> None:
    database.set_setting("hf_cache_dir", "/models")
    database.set_setting("default_context_length", 2048)
    database.set_setting("hub_endpoint", "ftp://not-a-hub")  # e.g. edited by hand

    assert load_settings(database) == Settings(
        hub_endpoint=None, hf_cache_dir="/models", default_context_length=2048
    )


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("default_context_length", "4096"),
        ("default_context_length", 12),
        ("default_context_length", True),
        ("hf_cache_dir", ["not", "a", "path"]),
        ("hub_endpoint", 42),
    ],
)
def test_wrongly_typed_stored_values_fall_back(database: Database, key: str, value: object) -> None:
    database.set_setting(key, value)

    assert load_settings(database) == Settings()


def test_unknown_stored_keys_are_ignored(database: Database) -> None:
    database.set_setting("from_a_future_version", {"x": 1})

    assert load_settings(database) == Settings()


def test_resolved_cache_dir_defaults_to_the_shared_hf_cache(hf_home: Path) -> None:
    assert Settings().resolved_cache_dir() == hf_home / "hub"


# --- the database -----------------------------------------------------------------------------


def schema_version(path: Path) -> int:
    with sqlite3.connect(path) as connection:
        (version,) = connection.execute("PRAGMA user_version").fetchone()
    return int(version)


def test_migrations_run_once_and_reopening_keeps_data(tmp_path: Path) -> None:
    path = tmp_path / "nested" / "app.sqlite3"
    first = Database(path)
    first.set_setting("answer", {"value": 42})
    first.execute(
        "INSERT INTO hub_snapshots VALUES (?, ?, ?, ?, ?)",
        ("https://hub", "org/m", "details", "{}", "2024-01-01T00:00:00+00:00"),
    )
    first.close()
    version = schema_version(path)
    assert version >= 1

    for _ in range(2):  # reopening must not re-run (and fail on) CREATE TABLE
        again = Database(path)
        assert again.get_setting("answer") == {"value": 42}
        assert again.fetch_one("SELECT repo_id FROM hub_snapshots") == ("org/m",)
        again.close()
    assert schema_version(path) == version


def test_database_uses_wal(tmp_path: Path) -> None:
    database = Database(tmp_path / "app.sqlite3")
    try:
        assert database.fetch_one("PRAGMA journal_mode") == ("wal",)
    finally:
        database.close()


def test_setting_values_are_json(database: Database) -> None:
    database.set_setting("k", {"nested": [1, 2.5, None, "ü"]})
    assert database.get_setting("k") == {"nested": [1, 2.5, None, "ü"]}

    database.set_setting("k", None)
    assert database.get_setting("k") is None
    assert database.get_setting("never-set") is None


def test_transaction_rolls_back_on_error(database: Database) -> None:
    database.set_setting("kept", 1)

    with pytest.raises(RuntimeError), database.transaction():
        database.set_setting("kept", 2)
        database.set_setting("lost", 3)
        raise RuntimeError("boom")

    assert database.get_setting("kept") == 1
    assert database.get_setting("lost") is None
    with database.transaction():  # the connection is usable again
        database.set_setting("after", True)
    assert database.get_setting("after") is True


def test_database_is_shared_between_threads(database: Database) -> None:
    errors: list[BaseException] = []

    def write(worker: int) -> None:
        try:
            for n in range(50):
                with database.transaction():
                    database.set_setting(f"w{worker}-{n}", n)
        except BaseException as exc:  # reported below, in the test's thread
            errors.append(exc)

    threads = [threading.Thread(target=write, args=(w,)) for w in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)

    assert errors == []
    (count,) = database.fetch_one("SELECT count(*) FROM settings") or (0,)
    assert count == 200

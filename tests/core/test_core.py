"""Core: opening the data folder, endpoint precedence, settings and token changes."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from app.core import Core
from app.errors import SettingsError
from app.hub.credentials import TokenSource
from app.hub.endpoint import DEFAULT_ENDPOINT
from app.hub.models import AccessStatus, SearchQuery
from app.settings import Settings
from tests.core.conftest import SECRET_TOKEN
from tests.support.hub_server import HubServer


@pytest.fixture
def core(data_dir: Path) -> Iterator[Core]:
    opened = Core.open(data_dir=data_dir)
    yield opened
    opened.close()


def test_open_creates_the_data_folder_and_database(tmp_path: Path) -> None:
    folder = tmp_path / "fresh" / "data"

    core = Core.open(data_dir=folder)
    core.close()

    assert (folder / "modeldeck.sqlite3").is_file()


def test_open_without_a_folder_uses_modeldeck_data_dir(data_dir: Path) -> None:
    core = Core.open()
    core.close()

    assert core.database.path == data_dir / "modeldeck.sqlite3"
    assert core.tokens.fallback_file.parent == data_dir


def test_endpoint_default(core: Core) -> None:
    assert core.endpoint == DEFAULT_ENDPOINT


def test_endpoint_precedence(data_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_ENDPOINT", "https://from-env.example/")
    first = Core.open(data_dir=data_dir)
    assert first.endpoint == "https://from-env.example"

    first.update_settings(hub_endpoint="https://from-setting.example")
    assert first.endpoint == "https://from-setting.example"
    first.close()

    overridden = Core.open(data_dir=data_dir, endpoint_override="https://override.example/")
    assert overridden.endpoint == "https://override.example"
    assert overridden.settings.hub_endpoint == "https://from-setting.example"  # untouched
    overridden.close()

    plain = Core.open(data_dir=data_dir)
    assert plain.endpoint == "https://from-setting.example"
    plain.update_settings(hub_endpoint=None)
    assert plain.endpoint == "https://from-env.example"
    monkeypatch.delenv("HF_ENDPOINT")
    assert plain.endpoint == DEFAULT_ENDPOINT
    plain.close()


def test_update_settings_persists_and_rebuilds_the_hub(
    core: Core, data_dir: Path, hub_server: HubServer, tmp_path: Path
) -> None:
    hub_server.add_repo("org/model", card="# Card\n")
    before = core.hub
    assert before.endpoint == DEFAULT_ENDPOINT
    assert core.hub is before  # built once

    cache = tmp_path / "my-cache"
    settings = core.update_settings(
        hub_endpoint=hub_server.url, hf_cache_dir=str(cache), default_context_length=1024
    )

    assert settings == core.settings
    assert core.hub is not before
    assert core.hub.endpoint == hub_server.url
    assert [m.repo_id for m in core.hub.search(SearchQuery())] == ["org/model"]
    assert core.hub.model_card("org/model").body == "# Card\n"
    assert any(cache.rglob("README.md"))  # the cache setting reached hf_hub_download
    reopened = Core.open(data_dir=data_dir)
    assert reopened.settings == Settings(
        hub_endpoint=hub_server.url, hf_cache_dir=str(cache), default_context_length=1024
    )
    reopened.close()


def test_invalid_settings_change_nothing(core: Core) -> None:
    hub = core.hub

    with pytest.raises(SettingsError):
        core.update_settings(hub_endpoint="not a url")
    with pytest.raises(SettingsError):
        core.update_settings(default_context_length=1)

    assert core.settings == Settings()
    assert core.hub is hub


def test_token_from_the_environment(core: Core, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_TOKEN", "hf_fromEnv1234567890")

    assert core.token.value == "hf_fromEnv1234567890"
    assert core.token.source is TokenSource.ENVIRONMENT


def token_source(core: Core) -> TokenSource:
    return core.token.source


def test_save_token_is_used_from_now_on(core: Core, hub_server: HubServer) -> None:
    hub_server.add_repo("meta/gated", {"LICENSE": b"terms"}, gated="manual")
    hub_server.grant("meta/gated", SECRET_TOKEN)
    core.update_settings(hub_endpoint=hub_server.url)
    assert token_source(core) is TokenSource.NONE
    assert core.hub.check_access("meta/gated") is AccessStatus.NO_TOKEN

    assert core.save_token(SECRET_TOKEN) is TokenSource.APP_FILE

    assert core.token.value == SECRET_TOKEN
    assert token_source(core) is TokenSource.APP_FILE
    assert core.hub.check_access("meta/gated") is AccessStatus.GRANTED
    assert core.hub.read_text_file("meta/gated", "LICENSE") == "terms"

    core.save_token("")
    assert token_source(core) is TokenSource.NONE
    assert core.hub.check_access("meta/gated") is AccessStatus.NO_TOKEN


def test_saved_token_survives_reopening(data_dir: Path) -> None:
    first = Core.open(data_dir=data_dir)
    first.save_token(SECRET_TOKEN)
    first.close()

    second = Core.open(data_dir=data_dir)
    assert second.token.value == SECRET_TOKEN
    second.close()


class _StoppedEngine:
    """Stands in for a started image engine: records that it was stopped."""

    def __init__(self) -> None:
        self.stopped = False

    def stop(self, *, timeout: float = 5.0) -> None:
        self.stopped = True


def test_moving_the_cache_folder_rebuilds_the_image_engine_for_it(
    core: Core, tmp_path: Path
) -> None:
    first = core.images
    assert first.hf_cache_dir == core.settings.resolved_cache_dir()
    assert core.images is first  # built once

    core.update_settings(hf_cache_dir=str(tmp_path / "moved"))

    moved = core.images
    assert moved is not first
    assert moved.hf_cache_dir == tmp_path / "moved"  # what each load sends the child
    assert moved.config_cache_dir == first.config_cache_dir

    core.update_settings(default_context_length=1024)  # the cache stays: so does the engine
    assert core.images is moved


def test_the_old_image_engine_is_stopped_when_the_cache_folder_moves(
    core: Core, tmp_path: Path
) -> None:
    running = _StoppedEngine()
    core._images = running  # type: ignore[assignment]  # a started child, without torch

    core.update_settings(hf_cache_dir=str(tmp_path / "moved"))

    assert running.stopped
    assert core.images is not running  # type: ignore[comparison-overlap]


def test_the_model_list_follows_the_cache_folder_once_listed(core: Core, tmp_path: Path) -> None:
    from tests.core.test_library_layouts import gguf_bytes, write_hf_repo

    heard: list[int] = []
    core.models.subscribe(lambda entries: heard.append(len(entries)))
    core.update_settings(hf_cache_dir=str(tmp_path / "first"))
    assert heard == []  # nobody listed the library yet: no scan

    assert core.models.refresh() == ()
    moved = tmp_path / "moved"
    write_hf_repo(moved, "org/Tiny-GGUF", {"tiny-Q4_K_M.gguf": gguf_bytes()})
    core.update_settings(hf_cache_dir=str(moved))

    assert heard == [0, 1]
    assert [entry.repo_ids for entry in core.models.entries] == [("org/Tiny-GGUF",)]


def test_reading_conversations_changes_nothing_until_recovery_is_asked(data_dir: Path) -> None:
    from app.chat.conversations import MessageState, Role

    first = Core.open(data_dir=data_dir)
    conversation = first.conversations.create("A reply cut by a crash")
    reply = first.conversations.append_message(
        conversation.id, Role.ASSISTANT, "half", state=MessageState.STREAMING
    )
    first.close()

    again = Core.open(data_dir=data_dir)
    try:
        # A CLI command beside an open window reads conversations: a reply the window is
        # still streaming must stay streaming.
        assert again.conversations.messages(conversation.id)[-1].state is MessageState.STREAMING
        assert again.endpoint_keys is again.endpoint_keys  # one store, not one per access
        assert again.recover_interrupted_replies() == 1
        recovered = again.conversations.messages(conversation.id)[-1]
        assert (recovered.id, recovered.state) == (reply.id, MessageState.INTERRUPTED)
    finally:
        again.close()


def test_the_download_queue_starts_only_when_asked(core: Core) -> None:
    assert core._downloads is None  # opening the core starts no threads
    manager = core.start_downloads()
    assert core.start_downloads() is manager
    core.update_settings(hub_endpoint="http://127.0.0.1:9/")  # the endpoint moved
    assert core._downloads is None
    assert core.start_downloads() is not manager


def test_a_refresh_after_close_reads_no_closed_database(data_dir: Path) -> None:
    opened = Core.open(data_dir=data_dir)
    opened.models.refresh()
    opened.close()
    # A page's refresh that was queued just before the window quit arrives now.
    assert opened.models.refresh() == opened.models.entries

"""The hub token goes only where it belongs: the endpoint it was saved for, never plain http to
another machine, never to the CDN a download is redirected to, never into text.

Real client, real test hub on 127.0.0.1 (it records the Authorization header of every
request), a test keyring; nothing of huggingface_hub is mocked.
"""

from __future__ import annotations

import logging
import traceback
from collections.abc import Iterator
from pathlib import Path

import keyring
import pytest
from keyring.backends import fail

from app.core import Core
from app.downloads import DownloadManager, JobState, plan_files
from app.downloads.transfer import RetryPolicy
from app.errors import AppError
from app.hub.credentials import (
    KEYRING_ENDPOINT_USERNAME,
    KEYRING_SERVICE,
    KEYRING_USERNAME,
    TokenSource,
    TokenStore,
    WithheldReason,
)
from app.hub.endpoint import DEFAULT_ENDPOINT, may_carry_token, same_endpoint
from tests.core.conftest import MemoryKeyring
from tests.support.hub_server import Fault, HubServer, Status

TOKEN = "hf_BoundTokenSecret1234567890"
GATED = "meta/gated"
MODEL = b"GGUF" + bytes(range(256)) * 64  # an LFS file: its download is redirected to the CDN


@pytest.fixture(autouse=True)
def no_token_of_this_machine(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No HF_TOKEN, HF_ENDPOINT or keyring of this machine; ModelDeck's data in tmp_path."""
    for name in ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN", "HF_TOKEN_PATH", "HF_ENDPOINT"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("MODELDECK_DATA_DIR", str(tmp_path / "modeldeck-data"))
    monkeypatch.setattr(keyring.core, "_keyring_backend", fail.Keyring())  # type: ignore[no-untyped-call]


@pytest.fixture
def memory_keyring(monkeypatch: pytest.MonkeyPatch) -> MemoryKeyring:
    backend = MemoryKeyring()
    monkeypatch.setattr(keyring.core, "_keyring_backend", backend)
    return backend


@pytest.fixture
def hub(hub_server: HubServer) -> HubServer:
    """The test hub with a gated repo that `TOKEN` may read."""
    hub_server.add_repo(GATED, {"model.gguf": MODEL, "config.json": b"{}"}, gated="manual")
    hub_server.grant(GATED, TOKEN)
    return hub_server


@pytest.fixture
def other_hub(tmp_path: Path, hf_home: Path) -> Iterator[HubServer]:
    """A second hub (another port: another endpoint) serving the same gated repo."""
    with HubServer(tmp_path / "other-hub") as server:
        server.add_repo(GATED, {"model.gguf": MODEL, "config.json": b"{}"}, gated="manual")
        server.grant(GATED, TOKEN)
        yield server


@pytest.fixture
def core(tmp_path: Path, hf_home: Path) -> Iterator[Core]:
    opened = Core.open(data_dir=tmp_path / "modeldeck-data")
    yield opened
    opened.close()


def bearers(server: HubServer) -> set[str | None]:
    """The Authorization headers the server saw (None: a request without one)."""
    return {request.authorization for request in server.requests}


# --- bound to the endpoint it was saved for ----------------------------------------------


def test_a_saved_token_goes_only_to_the_endpoint_it_was_saved_for(
    core: Core, hub: HubServer, other_hub: HubServer
) -> None:
    core.update_settings(hub_endpoint=hub.url)
    core.save_token(TOKEN)
    assert core.hub.check_access(GATED).value == "granted"
    assert bearers(hub) == {f"Bearer {TOKEN}"}

    core.update_settings(hub_endpoint=other_hub.url)

    assert core.token.value is None
    withheld = core.token.withheld
    assert withheld is not None
    assert withheld.reason is WithheldReason.OTHER_ENDPOINT
    assert withheld.saved_for == hub.url
    assert core.hub.check_access(GATED).value == "no-token"
    assert other_hub.requests, "the other hub was asked"
    assert bearers(other_hub) == {None}


def test_keeping_the_token_for_the_new_endpoint_sends_it_there_only(
    core: Core, hub: HubServer, other_hub: HubServer
) -> None:
    core.update_settings(hub_endpoint=hub.url)
    core.save_token(TOKEN)
    core.update_settings(hub_endpoint=other_hub.url)

    core.keep_token_for_endpoint()

    assert core.hub.check_access(GATED).value == "granted"
    assert bearers(other_hub) == {f"Bearer {TOKEN}"}
    hub.clear_requests()
    core.update_settings(hub_endpoint=hub.url)  # moved, not copied: the first hub lost it
    assert core.token.value is None
    core.hub.check_access(GATED)
    assert bearers(hub) == {None}


def test_the_download_queue_inherits_the_binding(
    core: Core, hub: HubServer, other_hub: HubServer
) -> None:
    core.update_settings(hub_endpoint=hub.url)
    core.save_token(TOKEN)
    core.update_settings(hub_endpoint=other_hub.url)
    plan = plan_files(core.hub.model_details(GATED), ["model.gguf"])

    manager = core.start_downloads()
    status = manager.wait(manager.enqueue(plan), timeout=30)

    assert status.state is JobState.FAILED  # gated, and its token belongs to the other hub
    assert bearers(other_hub) == {None}
    assert not hub.requests


def test_a_token_saved_before_bindings_belongs_to_huggingface_co(
    tmp_path: Path, hf_home: Path
) -> None:
    store = TokenStore(tmp_path / "hf-token")
    store.fallback_file.write_text(TOKEN, encoding="utf-8")  # as an older ModelDeck left it

    assert store.resolve(DEFAULT_ENDPOINT).value == TOKEN
    elsewhere = store.resolve("https://hf-mirror.example")
    assert elsewhere.value is None
    assert elsewhere.withheld is not None
    assert elsewhere.withheld.saved_for == DEFAULT_ENDPOINT


def test_the_binding_is_kept_beside_the_token_and_forgotten_with_it(
    tmp_path: Path, hf_home: Path, memory_keyring: MemoryKeyring
) -> None:
    store = TokenStore(tmp_path / "hf-token")

    assert store.save(TOKEN, endpoint="HTTPS://Mirror.Example:443/") is TokenSource.KEYRING

    assert memory_keyring.passwords == {
        (KEYRING_SERVICE, KEYRING_USERNAME): TOKEN,
        (KEYRING_SERVICE, KEYRING_ENDPOINT_USERNAME): "https://mirror.example",
    }
    assert store.resolve("https://mirror.example/").value == TOKEN  # one hub, two spellings
    store.save("")
    assert memory_keyring.passwords == {}


# --- never over plain http to another machine ---------------------------------------------


@pytest.mark.parametrize("source", ["saved", "environment", "hf-cli"])
@pytest.mark.parametrize(
    ("endpoint", "sent"),
    [
        ("http://mirror.example", False),
        ("http://10.0.0.5:8080", False),
        ("http://127.0.0.1:8080", True),
        ("http://[::1]:8080", True),
        ("http://localhost:8080", True),
        ("https://mirror.example", True),
    ],
)
def test_no_token_from_any_source_goes_over_plain_http_to_another_machine(
    *,
    tmp_path: Path,
    hf_home: Path,
    monkeypatch: pytest.MonkeyPatch,
    source: str,
    endpoint: str,
    sent: bool,
) -> None:
    store = TokenStore(tmp_path / "hf-token")
    if source == "saved":
        store.save(TOKEN, endpoint=endpoint)
    elif source == "environment":
        monkeypatch.setenv("HF_TOKEN", TOKEN)
    else:
        (hf_home / "token").write_text(TOKEN, encoding="utf-8")

    resolved = store.resolve(endpoint)

    assert may_carry_token(endpoint) is sent
    assert resolved.value == (TOKEN if sent else None)
    if not sent:
        assert resolved.withheld is not None
        assert resolved.withheld.reason is WithheldReason.PLAIN_HTTP


def test_environment_and_cli_tokens_follow_the_endpoint_in_use(
    core: Core, hub: HubServer, other_hub: HubServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    # They are the user's own choice for the hub this environment talks to, as in the hf CLI.
    monkeypatch.setenv("HF_TOKEN", TOKEN)
    for server in (hub, other_hub):
        core.update_settings(hub_endpoint=server.url)
        assert core.hub.check_access(GATED).value == "granted"
        assert bearers(server) == {f"Bearer {TOKEN}"}
    assert core.token.source is TokenSource.ENVIRONMENT


# --- never to the CDN, never into text ----------------------------------------------------


def test_redirects_to_the_cdn_never_carry_the_token(
    core: Core, hub: HubServer, hf_home: Path
) -> None:
    core.update_settings(hub_endpoint=hub.url)
    core.save_token(TOKEN)
    # The app's own transfer (httpx following the redirect) ...
    plan = plan_files(core.hub.model_details(GATED), ["model.gguf"])
    manager = DownloadManager(
        core.database,
        endpoint=core.endpoint,
        token=core.token.value,
        cache_dir=hf_home / "hub",
        retry=RetryPolicy(attempts=1),
    )
    manager.start()
    try:
        status = manager.wait(manager.enqueue(plan), timeout=30)
    finally:
        manager.shutdown(timeout=5)
    assert status.state is JobState.COMPLETED, status
    # ... and huggingface_hub's hf_hub_download (through the provider).
    assert core.hub.read_text_file(GATED, "model.gguf", max_bytes=4) == "GGUF"

    resolves = hub.requests_to(r"/resolve/")
    cdn = [r for r in hub.requests if r.origin == "cdn"]
    assert resolves and cdn
    assert {r.authorization for r in resolves} == {f"Bearer {TOKEN}"}
    assert {r.authorization for r in cdn} == {None}


def test_the_token_stays_out_of_errors_logs_and_reprs(
    core: Core, hub: HubServer, caplog: pytest.LogCaptureFixture
) -> None:
    core.update_settings(hub_endpoint=hub.url)
    core.save_token(TOKEN)
    hub.inject(Fault(Status(500, body=f"invalid credentials: Bearer {TOKEN}"), path=r"^/api/"))
    caplog.set_level(logging.DEBUG)  # httpx and huggingface_hub log requests at DEBUG

    with pytest.raises(AppError) as caught:
        core.hub.model_details(GATED)

    error = caught.value
    texts = {
        "message": str(error),
        "repr": repr(error),
        "logs": caplog.text,
        "token repr": repr(core.token),
        "saved repr": repr(core.tokens.saved()),
        "settings repr": repr(core.settings),
        "core repr": repr(core),
    }
    assert hub.requests_to("/api/")[0].authorization == f"Bearer {TOKEN}"  # it was sent
    assert {name for name, text in texts.items() if TOKEN in text} == set()
    shown = "".join(traceback.format_exception_only(type(error), error))
    assert TOKEN not in shown
    # A traceback logged with its chain: the cause quotes the server's echo of the token.
    caplog.clear()
    logging.getLogger("modeldeck.test").exception("failed", exc_info=error)
    (record,) = caplog.records
    assert record.exc_text is not None and "HfHubHTTPError" in record.exc_text
    assert TOKEN not in caplog.text


def test_same_endpoint_ignores_spelling_only() -> None:
    assert same_endpoint("HTTPS://Hub.Example:443/", "https://hub.example")
    assert same_endpoint("http://127.0.0.1:80/", "http://127.0.0.1")
    assert not same_endpoint("http://hub.example", "https://hub.example")
    assert not same_endpoint("https://hub.example:8443", "https://hub.example")
    assert not same_endpoint("https://hub.example/a", "https://hub.example/b")

"""Failures of the hub become the app's error tree; gated access; the token stays secret."""

from __future__ import annotations

import pytest

from app.errors import (
    GatedRepoError,
    HubError,
    HubResponseError,
    HubUnreachableError,
    RateLimitedError,
    RepoNotFoundError,
)
from app.hub.credentials import redact
from app.hub.huggingface import HuggingFaceHub
from app.hub.models import AccessStatus, SearchQuery
from tests.core.conftest import SECRET_TOKEN
from tests.support.hub_server import Fault, HubServer, MalformedJson, Refuse, Status

MODEL_INFO = r"^/api/models/org/model$"


@pytest.fixture
def repo(hub_server: HubServer) -> str:
    hub_server.add_repo("org/model", {"model.gguf": b"GGUF"}, card="---\nlicense: mit\n---\n")
    return "org/model"


# --- unreachable -----------------------------------------------------------------------------


def test_stopped_hub_is_unreachable_for_every_call(
    hub_server: HubServer, hub: HuggingFaceHub, repo: str
) -> None:
    url = hub_server.url
    hub_server.stop()
    # Each of these returns in milliseconds here: search probes the endpoint with one HEAD
    # instead of letting list_models retry a refused connection for ~23 s, and text files
    # are read from the cache (or fail) without hf_hub_download's retries.

    with pytest.raises(HubUnreachableError) as searching:
        next(iter(hub.search(SearchQuery())))
    with pytest.raises(HubUnreachableError):
        hub.model_details(repo)
    with pytest.raises(HubUnreachableError) as carding:
        hub.model_card(repo)
    with pytest.raises(HubUnreachableError):
        hub.read_text_file(repo, "LICENSE")

    assert isinstance(searching.value, ConnectionError)
    assert url in str(searching.value)
    assert searching.value.hint  # says what to check
    assert "not cached" in str(carding.value)
    assert hub.check_access(repo) is AccessStatus.UNKNOWN


def test_a_hub_that_drops_connections_is_not_retried_for_text_files(
    hub_server: HubServer, hub: HuggingFaceHub, repo: str
) -> None:
    # hf_hub_download alone retries an uncached file's HEAD five times (~23 s); the provider
    # probes the endpoint once and then reads only the cache.
    hub_server.inject(Fault(Refuse(), times=None))

    with pytest.raises(HubUnreachableError):
        hub.model_card(repo)
    with pytest.raises(HubUnreachableError):
        hub.read_text_file(repo, "LICENSE")

    assert hub_server.requests_to(r"/resolve/") == []
    assert [(r.method, r.path) for r in hub_server.requests] == [("HEAD", "/"), ("HEAD", "/")]


def test_a_cached_card_is_read_without_the_hub(
    hub_server: HubServer, hub: HuggingFaceHub, repo: str
) -> None:
    online = hub.model_card(repo)
    hub_server.clear_requests()
    hub_server.inject(Fault(Refuse(), times=None))

    assert hub.model_card(repo) == online
    assert hub_server.requests_to(r"/resolve/") == []


# --- error statuses --------------------------------------------------------------------------


def test_server_error_on_model_info(hub_server: HubServer, hub: HuggingFaceHub, repo: str) -> None:
    hub_server.inject(Fault(Status(500), path=MODEL_INFO))

    with pytest.raises(HubResponseError) as caught:
        hub.model_details(repo)

    assert caught.value.status == 500
    assert isinstance(caught.value, ValueError)
    assert not isinstance(caught.value, RateLimitedError)
    assert "500" in str(caught.value)
    # model_info does not retry: the next call succeeds because the fault was used up.
    assert len(hub_server.requests_to(MODEL_INFO)) == 1
    assert hub.model_details(repo).repo_id == repo


def test_rate_limit_on_model_info_carries_retry_after(
    hub_server: HubServer, hub: HuggingFaceHub, repo: str
) -> None:
    hub_server.inject(Fault(Status(429, retry_after=42), path=MODEL_INFO))

    with pytest.raises(RateLimitedError) as caught:
        hub.model_details(repo)

    assert caught.value.retry_after == 42.0
    assert caught.value.status == 429
    assert isinstance(caught.value, HubResponseError)
    assert "42" in str(caught.value)


def test_rate_limit_without_retry_after(
    hub_server: HubServer, hub: HuggingFaceHub, repo: str
) -> None:
    hub_server.inject(Fault(Status(429), path=MODEL_INFO))

    with pytest.raises(RateLimitedError) as caught:
        hub.model_details(repo)

    assert caught.value.retry_after is None


def test_listings_retry_a_rate_limit_themselves(
    hub_server: HubServer, hub: HuggingFaceHub, repo: str
) -> None:
    hub_server.inject(Fault(Status(429, retry_after=1), path=r"^/api/models$"))

    results = list(hub.search(SearchQuery()))

    assert [r.repo_id for r in results] == [repo]
    statuses = [r.status for r in hub_server.requests_to(r"^/api/models$")]
    assert statuses == [429, 200]


def test_malformed_json_is_a_response_error(
    hub_server: HubServer, hub: HuggingFaceHub, repo: str
) -> None:
    hub_server.inject(Fault(MalformedJson(), path=MODEL_INFO))

    with pytest.raises(HubResponseError) as caught:
        hub.model_details(repo)

    assert "JSON" in str(caught.value)


def test_malformed_json_in_a_listing_is_a_response_error(
    hub_server: HubServer, hub: HuggingFaceHub, repo: str
) -> None:
    hub_server.inject(Fault(MalformedJson(), path=r"^/api/models$"))

    with pytest.raises(HubResponseError):
        list(hub.search(SearchQuery()))


def test_unknown_repo_is_not_found(hub_server: HubServer, hub: HuggingFaceHub) -> None:
    with pytest.raises(RepoNotFoundError) as caught:
        hub.model_details("org/nowhere")

    assert isinstance(caught.value, LookupError)
    assert caught.value.repo_id == "org/nowhere"
    assert "org/nowhere" in str(caught.value)
    with pytest.raises(RepoNotFoundError):
        hub.model_card("org/nowhere")
    with pytest.raises(RepoNotFoundError):
        hub.read_text_file("org/nowhere", "LICENSE")


# --- gated repositories ----------------------------------------------------------------------


@pytest.fixture
def gated_repo(hub_server: HubServer) -> str:
    hub_server.add_repo(
        "meta/gated", {"model.gguf": b"GGUF", "LICENSE": b"terms"}, card="# Gated\n", gated="auto"
    )
    return "meta/gated"


def test_gated_without_a_token(hub_server: HubServer, hub: HuggingFaceHub, gated_repo: str) -> None:
    assert hub.check_access(gated_repo) is AccessStatus.NO_TOKEN

    with pytest.raises(GatedRepoError) as caught:
        hub.read_text_file(gated_repo, "LICENSE")

    error = caught.value
    assert isinstance(error, PermissionError)
    assert error.repo_id == gated_repo
    assert error.url == f"{hub_server.url}/meta/gated"
    assert error.url in str(error)
    assert "token" in str(error)  # the hint says to add one
    # Metadata stays public, as on the real hub.
    assert hub.model_details(gated_repo).repo_id == gated_repo


def test_gated_with_a_granted_token(hub_server: HubServer, gated_repo: str) -> None:
    hub_server.grant(gated_repo, SECRET_TOKEN)
    hub = HuggingFaceHub(endpoint=hub_server.url, token=SECRET_TOKEN)

    assert hub.check_access(gated_repo) is AccessStatus.GRANTED
    assert hub.read_text_file(gated_repo, "LICENSE") == "terms"
    assert hub.model_card(gated_repo).body == "# Gated\n"
    sent = {r.authorization for r in hub_server.requests_to(r"auth-check|/resolve/")}
    assert sent == {f"Bearer {SECRET_TOKEN}"}


def test_gated_with_a_token_without_access(hub_server: HubServer, gated_repo: str) -> None:
    hub_server.grant(gated_repo, "hf_someoneElse1234567890")
    hub = HuggingFaceHub(endpoint=hub_server.url, token=SECRET_TOKEN)

    assert hub.check_access(gated_repo) is AccessStatus.DENIED
    with pytest.raises(GatedRepoError) as caught:
        hub.read_text_file(gated_repo, "LICENSE")
    assert "add your token" not in str(caught.value)  # there is one; it lacks access


def test_open_repo_access_is_granted_and_anonymous_requests_carry_no_token(
    hub_server: HubServer, hub: HuggingFaceHub, repo: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Even with a token in the environment, an anonymous provider sends none.
    monkeypatch.setenv("HF_TOKEN", SECRET_TOKEN)

    assert hub.check_access(repo) is AccessStatus.GRANTED
    hub.model_details(repo)
    hub.model_card(repo)

    assert all(r.authorization is None for r in hub_server.requests)


# --- the token never shows ---------------------------------------------------------------


def test_token_echoed_by_the_hub_is_not_in_the_error(hub_server: HubServer, repo: str) -> None:
    hub = HuggingFaceHub(endpoint=hub_server.url, token=SECRET_TOKEN)
    echo = f"invalid credentials: Bearer {SECRET_TOKEN}"
    hub_server.inject(Fault(Status(500, body=echo), path=MODEL_INFO))
    hub_server.inject(Fault(Status(400, body=echo), path=r"/resolve/", times=None))
    hub_server.inject(Fault(Status(400, body=echo), path=r"^/api/models$", times=None))

    errors: list[HubError] = []
    for call in (
        lambda: hub.model_details(repo),
        lambda: hub.model_card(repo),
        lambda: list(hub.search(SearchQuery())),
    ):
        with pytest.raises(HubError) as caught:
            call()
        errors.append(caught.value)

    for error in errors:
        shown = f"{error} {error.message} {error.hint} {error!r}"
        assert SECRET_TOKEN not in shown
        assert "SECRETsecret" not in shown


def test_token_in_a_failing_url_is_redacted(hub_server: HubServer) -> None:
    # A repo id that happens to contain the token puts it in the first line of the HTTP error.
    hub = HuggingFaceHub(endpoint=hub_server.url, token=SECRET_TOKEN)
    hub_server.add_repo(f"org/{SECRET_TOKEN}")
    hub_server.inject(Fault(Status(500), path=r"^/api/models/org/"))

    with pytest.raises(HubResponseError) as caught:
        hub.model_details(f"org/{SECRET_TOKEN}")

    assert "for url" in caught.value.message  # the detail was kept ...
    assert SECRET_TOKEN not in caught.value.message  # ... and scrubbed


def test_redact_scrubs_given_secrets_and_token_shaped_text() -> None:
    text = f"token={SECRET_TOKEN}; other=hf_AbCdEf123456; custom=opensesame; hf_short"

    redacted = redact(text, "opensesame", None, "")

    assert redacted == "token=hf_***; other=hf_***; custom=***; hf_short"

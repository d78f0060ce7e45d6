"""A small typed client of Civitai's public REST API (no maintained Python client exists).

It speaks httpx2, the HTTP library huggingface_hub (and so the rest of ModelDeck) already
uses. Each call returns the frozen dataclasses of `app.hub.civitai.models`, parsed from the
untrusted JSON by `app.hub.civitai.parse`, and every failure is one of the app's `HubError`s:
`HubUnreachableError` (no connection), `RepoNotFoundError` (404), `RateLimitedError` (429,
with Retry-After), `GatedRepoError` (401/403: the creator requires a signed-in download),
`HubResponseError` (any other error status or a body that makes no sense).

A token (from ModelDeck's keyring entry, see `credentials`) goes as a Bearer header to the
endpoint it was given for, never over plain http to another machine.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator, Mapping
from types import TracebackType
from typing import Self
from urllib.parse import quote

import httpx2

from app import __version__
from app.errors import (
    GatedRepoError,
    HubError,
    HubResponseError,
    HubUnreachableError,
    RateLimitedError,
    RepoNotFoundError,
)
from app.hub.civitai import parse
from app.hub.civitai.models import (
    CivitaiModel,
    CivitaiVersion,
    ModelFilter,
    ModelsPage,
)
from app.hub.credentials import redact
from app.hub.endpoint import may_carry_token
from app.text import first_line

DEFAULT_ENDPOINT = "https://civitai.com"
MAX_PAGE_SIZE = 100  # the API's own limit
MAX_PAGES = 1000  # a cursor that never ends is a broken or hostile server
_ERROR_BODY_BYTES = 64 << 10


def civitai_endpoint(setting: str | None = None) -> str:
    """The endpoint to use: the given one, else `CIVITAI_ENDPOINT`, else civitai.com."""
    chosen = setting or os.environ.get("CIVITAI_ENDPOINT") or DEFAULT_ENDPOINT
    return chosen.strip().rstrip("/")


def civitai_id(model_id: int, version_id: int | None = None) -> str:
    """The id ModelDeck shows and accepts: `civitai:ID` or `civitai:ID@VERSION`."""
    return f"civitai:{model_id}" + (f"@{version_id}" if version_id is not None else "")


class CivitaiClient:
    """Blocking calls to one Civitai endpoint; use it off the GUI thread.

    Args:
        endpoint: the site's base URL (the API lives under `/api/v1`).
        token: a Civitai API key, or None for anonymous access.
        timeout: seconds without an answer before a request fails.
    """

    def __init__(
        self, *, endpoint: str = DEFAULT_ENDPOINT, token: str | None = None, timeout: float = 20.0
    ) -> None:
        self.endpoint = endpoint.rstrip("/")
        self._token = token if token and may_carry_token(self.endpoint) else None
        self._timeout = httpx2.Timeout(timeout)

    @property
    def has_token(self) -> bool:
        return self._token is not None

    @property
    def token(self) -> str | None:
        """The token this client sends (None: anonymous); the downloader sends the same."""
        return self._token

    @property
    def http(self) -> httpx2.Client:
        """The HTTP client all Civitai traffic shares (one connection pool per process)."""
        return shared_http()

    def headers(self, extra: Mapping[str, str] | None = None) -> dict[str, str]:
        """The headers of a request to this endpoint: the token, if any, and `extra`."""
        headers = {"Accept": "application/json"}
        if self._token:
            headers["Authorization"] = f"Bearer {self._token}"
        return headers | dict(extra or {})

    def close(self) -> None:
        """Nothing to release: connections belong to the shared pool (`shared_http`)."""

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # -- calls ----------------------------------------------------------------------------------

    def list_models(self, query: ModelFilter) -> Iterator[CivitaiModel]:
        """Every model matching `query`, a page at a time as the iterator is consumed.

        Pages follow `metadata.nextCursor`. NSFW models are left out when `query.nsfw` is
        False, also if the server sends them anyway.
        """
        cursor: str | None = None
        for _ in range(MAX_PAGES):
            page = self.models_page(query, cursor=cursor)
            for item in page.items:
                if query.nsfw or not item.nsfw:
                    yield item
            if page.next_cursor is None or page.next_cursor == cursor:
                return
            cursor = page.next_cursor

    def models_page(self, query: ModelFilter, *, cursor: str | None = None) -> ModelsPage:
        """One page of `GET /api/v1/models`."""
        data = self._get_json("/api/v1/models", _params(query, cursor), what="the list of models")
        return parse.models_page(data)

    def get_model(self, model_id: int) -> CivitaiModel:
        """`GET /api/v1/models/{id}`. Raises `RepoNotFoundError` when there is none."""
        data = self._get_json(
            f"/api/v1/models/{model_id}", {}, what=f"model {model_id}", about=civitai_id(model_id)
        )
        return parse.model(data)

    def get_version(self, version_id: int) -> CivitaiVersion:
        """`GET /api/v1/model-versions/{id}`."""
        data = self._get_json(
            f"/api/v1/model-versions/{version_id}",
            {},
            what=f"model version {version_id}",
            about=f"civitai:@{version_id}",
        )
        return parse.version(data)

    def version_by_hash(self, file_hash: str) -> CivitaiVersion:
        """`GET /api/v1/model-versions/by-hash/{hash}`: the version holding a file with this
        sha256, AutoV2 (its first 10 hex digits), AutoV1, CRC32 or BLAKE3.

        Raises:
            RepoNotFoundError: Civitai knows no file with this hash.
        """
        cleaned = file_hash.strip()
        if not cleaned or len(cleaned) > 128 or not cleaned.isalnum():
            raise RepoNotFoundError(f"{cleaned[:40]!r} is not a file hash.", repo_id=cleaned[:40])
        data = self._get_json(
            f"/api/v1/model-versions/by-hash/{quote(cleaned, safe='')}",
            {},
            what=f"the version with hash {cleaned[:12]}",
            about=f"hash {cleaned[:12]}",
        )
        return parse.version(data)

    def download_url(self, version_id: int) -> str:
        """`/api/download/models/{versionId}`: the version's primary file."""
        return f"{self.endpoint}/api/download/models/{version_id}"

    # -- internals ------------------------------------------------------------------------------

    def _get_json(
        self, path: str, params: Mapping[str, str | list[str]], *, what: str, about: str = ""
    ) -> object:
        url = self.endpoint + path
        try:
            with self.http.stream(
                "GET", url, params=params, headers=self.headers(), timeout=self._timeout
            ) as response:
                if response.status_code >= 400:
                    body = _read_at_most(response, _ERROR_BODY_BYTES, what=what, strict=False)
                    raise error_for_status(
                        response.status_code,
                        response.headers,
                        body,
                        endpoint=self.endpoint,
                        about=about or what,
                        has_token=self.has_token,
                    )
                body = _read_at_most(response, parse.MAX_BODY_BYTES, what=what, strict=True)
        except HubError:
            raise
        except httpx2.TransportError as exc:
            raise HubUnreachableError(
                f"Cannot reach {self.endpoint} ({redact(first_line(exc), self._token)}).",
                hint="Check the network, or the Civitai endpoint.",
            ) from exc
        except httpx2.HTTPError as exc:
            raise HubResponseError(
                f"Civitai's answer about {what} cannot be read "
                f"({redact(first_line(exc), self._token)})."
            ) from exc
        return parse.parse_json(body, what=f"Civitai's answer about {what}")


_SHARED: list[httpx2.Client] = []  # at most one, made on first use
_SHARED_LOCK = threading.Lock()


def shared_http() -> httpx2.Client:
    """One httpx client for every Civitai request of this process, made on first use.

    Providers come and go (a new one when a setting or the key changes) while a search may
    still run on the old one; a shared pool, like huggingface_hub's `get_session`, never
    has to be closed under them, and reuses connections across them.
    """
    with _SHARED_LOCK:
        if not _SHARED:
            _SHARED.append(
                httpx2.Client(
                    headers={"User-Agent": f"modeldeck/{__version__}"}, follow_redirects=False
                )
            )
        return _SHARED[0]


def error_for_status(
    status: int,
    headers: Mapping[str, str],
    body: bytes,
    *,
    endpoint: str,
    about: str,
    has_token: bool,
) -> HubError:
    """The `HubError` for an error answer of Civitai's (shared by the API and downloads)."""
    message = _error_message(body)
    detail = f": {message}" if message else ""
    if status == 404:
        return RepoNotFoundError(f"Civitai has no {about}{detail}.", repo_id=about)
    if status == 429:
        retry_after = retry_after_seconds(headers)
        wait = f" Try again in {retry_after:.0f} s." if retry_after else ""
        return RateLimitedError(
            f"Civitai is rate-limiting requests.{wait}", retry_after=retry_after
        )
    if status in (401, 403):
        return GatedRepoError(
            f"Civitai refused {about} without sign-in{detail}.",
            repo_id=about,
            url=endpoint,
            hint="The creator requires a Civitai account for it: add your Civitai API key "
            "in Settings (or CIVITAI_TOKEN)."
            if not has_token
            else "Your Civitai API key was refused for it; check it in Settings.",
        )
    return HubResponseError(f"Civitai answered {status} for {about}{detail}", status=status)


def retry_after_seconds(headers: Mapping[str, str]) -> float | None:
    try:
        value = float(headers.get("Retry-After", ""))
    except ValueError:
        return None
    return value if 0 <= value < 1e6 else None


def _error_message(body: bytes) -> str:
    """The `error` / `message` of an error body, on one line, cut short."""
    try:
        data = parse.parse_json(body, what="an error")
    except HubResponseError:
        return ""
    if not isinstance(data, dict):
        return ""
    parts = [data.get("message"), data.get("error")]
    text = next((part for part in parts if isinstance(part, str) and part.strip()), "")
    return " ".join(text.split())[:200]


def _read_at_most(response: httpx2.Response, limit: int, *, what: str, strict: bool) -> bytes:
    """The streamed body, at most `limit` bytes: beyond it an error (`strict`) or cut."""
    chunks: list[bytes] = []
    size = 0
    for chunk in response.iter_bytes():
        size += len(chunk)
        if size > limit:
            if not strict:
                break
            raise HubResponseError(
                f"Civitai's answer about {what} is larger than {limit >> 20} MiB; "
                "ModelDeck does not read it.",
                hint="Civitai, or what answers for it, is broken or hostile.",
            )
        chunks.append(chunk)
    return b"".join(chunks)[:limit]


def _params(query: ModelFilter, cursor: str | None) -> dict[str, str | list[str]]:
    params: dict[str, str | list[str]] = {
        "limit": str(max(1, min(query.page_size, MAX_PAGE_SIZE))),
        "sort": query.sort.value,
        "period": query.period.value,
        "nsfw": "true" if query.nsfw else "false",
    }
    if query.query.strip():
        params["query"] = query.query.strip()
    if query.types:
        params["types"] = [kind.value for kind in query.types]
    if query.base_models:
        params["baseModels"] = list(query.base_models)
    if query.tag:
        params["tag"] = query.tag
    if query.username:
        params["username"] = query.username
    if query.allow_commercial_use:
        params["allowCommercialUse"] = [use.value for use in query.allow_commercial_use]
    for name, flag in (
        ("allowDerivatives", query.allow_derivatives),
        ("allowNoCredit", query.allow_no_credit),
        ("allowDifferentLicense", query.allow_different_license),
    ):
        if flag is not None:
            params[name] = "true" if flag else "false"
    if cursor is not None:
        params["cursor"] = cursor
    return params

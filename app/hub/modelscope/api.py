"""A small typed client of ModelScope's HTTP API (the official `modelscope` package is not used).

The `modelscope` SDK pulls in its whole model zoo's dependencies and speaks `requests`; the
four routes ModelDeck needs are simple enough to call directly on the HTTP library the app
already ships (httpx2, huggingface_hub's client):

- `GET /openapi/v1/models?search=&sort=&page_number=&page_size=&owner=&filter.task=...`
  answers `{"success": true, "data": {"models": [...], "total_count": N}}`;
- `GET /openapi/v1/models/{owner}/{name}` answers `{"success": true, "data": {...}}`;
- `GET /api/v1/models/{owner}/{name}/repo/files?Revision=master&Recursive=True[&Root=dir]`
  answers `{"Code": 200, "Data": {"Files": [{"Path", "Name", "Size", "Sha256", "Type",
  "IsLFS", "Revision"}]}, "Message": ..., "Success": true}`; a listing holds at most
  `LISTING_CAP` entries, so a larger repository is walked one folder at a time;
- `GET /api/v1/models/{owner}/{name}/repo?Revision=master&FilePath=...` sends the file.

Every answer is untrusted: bodies are read up to a bound and parsed with
`parse_untrusted_json`, every field is typed here (a field of the wrong type becomes "absent"
or a `HubResponseError`), and names and hashes are checked where they are used
(`app.hub.untrusted`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from urllib.parse import quote

import httpx2
from huggingface_hub import get_session

from app import __version__
from app.errors import (
    GatedRepoError,
    HubError,
    HubResponseError,
    HubUnreachableError,
    RateLimitedError,
    RepoFileNotFoundError,
    RepoNotFoundError,
)
from app.hub.bounded_body import read_at_most
from app.hub.credentials import redact
from app.hub.untrusted import check_repo_id, shown
from app.text import first_line, one_line
from app.untrusted_json import UntrustedJsonError, parse_untrusted_json

DEFAULT_MODELSCOPE_ENDPOINT = "https://modelscope.cn"
DEFAULT_REVISION = "master"
"""ModelScope's default branch (where Hugging Face says "main")."""

LISTING_CAP = 3000
"""The most entries ModelScope returns in one file listing; a full one may be truncated."""

MAX_JSON_BYTES = 32 << 20
"""The largest JSON answer read (a 3,000-entry listing is ~1 MB)."""

MAX_WALKED_FOLDERS = 2000
"""Folders listed one by one when a repository's listing is capped; past this it is refused."""


class ModelScopeSort(StrEnum):
    """The search orders ModelScope's OpenAPI knows."""

    DOWNLOADS = "downloads"
    LIKES = "likes"
    UPDATED = "last_modified"


@dataclass(frozen=True, kw_only=True)
class ModelScopeModel:
    """A model as the OpenAPI describes it (a search result or the details of one)."""

    model_id: str
    downloads: int = 0
    likes: int = 0
    license: str | None = None
    tasks: tuple[str, ...] = ()
    tags: tuple[str, ...] = ()
    libraries: tuple[str, ...] = ()
    last_modified: datetime | None = None
    description: str | None = None


@dataclass(frozen=True, kw_only=True)
class ModelScopeSearchPage:
    """One page of search results and how many match in all."""

    models: tuple[ModelScopeModel, ...]
    total_count: int


@dataclass(frozen=True, kw_only=True)
class ModelScopeFile:
    """One entry of a repository listing: a file (`is_folder` False) or a folder."""

    path: str
    size: int | None
    sha256: str | None
    is_folder: bool
    revision: str | None  # the commit that last changed the entry, as ModelScope reports it


class ModelScopeClient:
    """Blocking calls to one ModelScope endpoint. Call them off the GUI thread.

    Args:
        endpoint: the site, e.g. "https://modelscope.cn" (or a test server).
        token: an SDK access token, sent to this endpoint only; None: anonymous.
        timeout: seconds without an answer before the hub counts as unreachable.
    """

    def __init__(self, *, endpoint: str, token: str | None = None, timeout: float = 15.0) -> None:
        self.endpoint = endpoint.rstrip("/")
        self._token = token
        headers = {"User-Agent": f"modeldeck/{__version__}"}
        if token:
            # The SDK authenticates with the `m_session_id` cookie; the OpenAPI with a bearer.
            headers["Authorization"] = f"Bearer {token}"
            headers["Cookie"] = f"m_session_id={token}"
        self._headers = headers
        self._timeout = httpx2.Timeout(timeout)
        # The process's one HTTP client (huggingface_hub's), as every other hub request uses:
        # its connections are pooled and it lives as long as the app.
        self._http = get_session()

    @property
    def token(self) -> str | None:
        return self._token

    # -- search and details ------------------------------------------------------------

    def search_page(
        self,
        *,
        text: str = "",
        page_number: int = 1,
        page_size: int = 20,
        sort: ModelScopeSort = ModelScopeSort.DOWNLOADS,
        owner: str | None = None,
        task: str | None = None,
        license: str | None = None,
        library: str | None = None,
    ) -> ModelScopeSearchPage:
        """One page of `/openapi/v1/models` (pages count from 1).

        Raises:
            HubUnreachableError, RateLimitedError, HubResponseError: see `HubProvider`.
        """
        params: dict[str, str | int] = {
            "page_number": page_number,
            "page_size": page_size,
            "sort": sort.value,
        }
        optional = {
            "search": text.strip(),
            "owner": (owner or "").strip(),
            "filter.task": task or "",
            "filter.license": license or "",
            "filter.library": library or "",
        }
        params.update({key: value for key, value in optional.items() if value})
        data = self._openapi_data("/openapi/v1/models", params, what="search results")
        raw_models = data.get("models")
        if not isinstance(raw_models, list):
            raise HubResponseError("ModelScope's search results have no list of models.")
        models = tuple(model for item in raw_models if (model := _model_from(item)) is not None)
        return ModelScopeSearchPage(models=models, total_count=_count(data.get("total_count")))

    def model(self, model_id: str) -> ModelScopeModel:
        """The details of `model_id` ("owner/name").

        Raises:
            RepoNotFoundError: no such model (or it is private and no token allows it).
        """
        check_repo_id(model_id)
        data = self._openapi_data(
            f"/openapi/v1/models/{_quoted_id(model_id)}",
            {},
            what=f"description of {model_id}",
            repo_id=model_id,
        )
        model = _model_from(data)
        if model is None:
            raise HubResponseError(f"ModelScope's description of {model_id} has no model id.")
        return model

    # -- files -------------------------------------------------------------------------

    def list_files(
        self,
        model_id: str,
        *,
        revision: str = DEFAULT_REVISION,
        root: str | None = None,
        recursive: bool = True,
    ) -> list[ModelScopeFile]:
        """One listing of `/repo/files` (at most `LISTING_CAP` entries, folders included)."""
        params: dict[str, str | int] = {
            "Revision": revision,
            "Recursive": "True" if recursive else "False",
        }
        if root:
            params["Root"] = root
        data = self._legacy_data(
            f"/api/v1/models/{_quoted_id(model_id)}/repo/files",
            params,
            what=f"file list of {model_id}",
            repo_id=model_id,
        )
        files = data.get("Files")
        if files is None:
            return []
        if not isinstance(files, list):
            raise HubResponseError(f"ModelScope's file list of {model_id} is not a list.")
        return [entry for item in files if (entry := _file_from(item)) is not None]

    def walk_files(
        self, model_id: str, *, revision: str = DEFAULT_REVISION
    ) -> list[ModelScopeFile]:
        """Every file of `model_id` (no folders), walking folder by folder when capped.

        Raises:
            HubResponseError: a single folder holds `LISTING_CAP` entries or more, or the
                walk passes `MAX_WALKED_FOLDERS` folders (its listing cannot be complete).
        """
        listing = self.list_files(model_id, revision=revision, recursive=True)
        if len(listing) < LISTING_CAP:
            return [entry for entry in listing if not entry.is_folder]
        # Capped: the recursive listing may miss files. List each folder on its own.
        files: list[ModelScopeFile] = []
        pending: list[str | None] = [None]
        walked = 0
        while pending:
            folder = pending.pop()
            walked += 1
            if walked > MAX_WALKED_FOLDERS:
                raise HubResponseError(
                    f"{model_id} has more than {MAX_WALKED_FOLDERS} folders; ModelDeck does "
                    "not list it."
                )
            entries = self.list_files(model_id, revision=revision, root=folder, recursive=False)
            if len(entries) >= LISTING_CAP:
                raise HubResponseError(
                    f"The folder {folder or '/'} of {model_id} holds {LISTING_CAP} entries or "
                    "more; ModelScope lists no more than that, so its file list is incomplete."
                )
            for entry in entries:
                if entry.is_folder:
                    if entry.path.strip("/") and entry.path != folder:
                        pending.append(entry.path)
                else:
                    files.append(entry)
        return files

    def file_url(self, model_id: str, path: str, *, revision: str = DEFAULT_REVISION) -> str:
        """The download URL of one file (`/repo?Revision=&FilePath=`)."""
        query = httpx2.QueryParams({"Revision": revision, "FilePath": path})
        return f"{self.endpoint}/api/v1/models/{_quoted_id(model_id)}/repo?{query}"

    def read_file(
        self, model_id: str, path: str, *, revision: str = DEFAULT_REVISION, max_bytes: int
    ) -> bytes:
        """The first `max_bytes` of a (small) file of the repository.

        Raises:
            RepoFileNotFoundError: the repository has no such file.
        """
        url = self.file_url(model_id, path, revision=revision)
        try:
            with self._http.stream(
                "GET", url, headers=self._headers, timeout=self._timeout, follow_redirects=False
            ) as response:
                if response.status_code >= 400:
                    response.read()
                    raise self._status_error(response, repo_id=model_id, path=path)
                chunks: list[bytes] = []
                size = 0
                for chunk in response.iter_bytes():
                    chunks.append(chunk)
                    size += len(chunk)
                    if size >= max_bytes:
                        break
        except HubError:
            raise
        except httpx2.HTTPError as exc:
            raise self._unreachable(exc) from exc
        return b"".join(chunks)[:max_bytes]

    def page_url(self, model_id: str) -> str:
        """The model's page on the site."""
        return f"{self.endpoint}/models/{quote(model_id, safe='/')}"

    # -- internals ---------------------------------------------------------------------

    def _openapi_data(
        self, path: str, params: Mapping[str, str | int], *, what: str, repo_id: str = ""
    ) -> dict[str, object]:
        """The `data` object of an OpenAPI answer (`{"success": ..., "data": ...}`)."""
        body = self._get_json(path, params, what=what, repo_id=repo_id)
        if body.get("success") is False:
            raise self._refusal(body.get("message") or body.get("Message"), what, repo_id)
        data = body.get("data")
        if not isinstance(data, dict):
            raise HubResponseError(f"ModelScope's {what} has no data object.")
        return data

    def _legacy_data(
        self, path: str, params: Mapping[str, str | int], *, what: str, repo_id: str
    ) -> dict[str, object]:
        """The `Data` object of an `/api/v1` answer (`{"Code": 200, "Data": ...}`)."""
        body = self._get_json(path, params, what=what, repo_id=repo_id)
        code = body.get("Code")
        if body.get("Success") is False or (isinstance(code, int) and code not in (0, 200)):
            raise self._refusal(body.get("Message"), what, repo_id)
        data = body.get("Data")
        if not isinstance(data, dict):
            raise HubResponseError(f"ModelScope's {what} has no Data object.")
        return data

    def _get_json(
        self, path: str, params: Mapping[str, str | int], *, what: str, repo_id: str
    ) -> dict[str, object]:
        try:
            with self._http.stream(
                "GET",
                self.endpoint + path,
                params=params,
                headers=self._headers,
                timeout=self._timeout,
                follow_redirects=False,
            ) as response:
                body = read_at_most(
                    response,
                    MAX_JSON_BYTES,
                    too_large=f"ModelScope's {what} is larger than {MAX_JSON_BYTES >> 20} MB; "
                    "ModelDeck does not read it.",
                )
                if response.status_code >= 400:
                    raise self._status_error(response, repo_id=repo_id, body=body)
        except HubError:
            raise
        except httpx2.HTTPError as exc:
            raise self._unreachable(exc) from exc
        try:
            value = parse_untrusted_json(
                body, max_bytes=MAX_JSON_BYTES, what=f"ModelScope's {what}"
            )
        except UntrustedJsonError as exc:
            raise HubResponseError(first_line(exc), hint="The hub is broken or hostile.") from exc
        if not isinstance(value, dict):
            raise HubResponseError(f"ModelScope's {what} is not a JSON object.")
        return value

    def _status_error(
        self,
        response: httpx2.Response,
        *,
        repo_id: str = "",
        path: str | None = None,
        body: bytes = b"",
    ) -> HubError:
        status = response.status_code
        message = _message_of(body)
        if status == 429:
            retry_after = _retry_after(response.headers.get("Retry-After", ""))
            wait = f" Try again in {retry_after:.0f} s." if retry_after else ""
            return RateLimitedError(
                f"ModelScope is rate-limiting requests.{wait}", retry_after=retry_after
            )
        if status in (401, 403) and repo_id:
            url = self.page_url(repo_id)
            return GatedRepoError(
                f"{repo_id} on ModelScope needs an access token that may read it.",
                repo_id=repo_id,
                url=url,
                hint="Add a ModelScope token with `modeldeck --hub modelscope` settings, "
                f"or ask for access at {url}.",
            )
        if status == 404 and repo_id and path is not None:
            return RepoFileNotFoundError(
                f"{repo_id} on ModelScope has no file {path}.", repo_id=repo_id, path=path
            )
        if status == 404 and repo_id:
            return RepoNotFoundError(
                f"No model {repo_id} on {self.endpoint}.",
                repo_id=repo_id,
                hint=None if self._token else "If it is private, add a ModelScope token.",
            )
        detail = f": {message}" if message else ""
        return HubResponseError(
            f"ModelScope answered with an error ({status}){detail}", status=status
        )

    def _refusal(self, message: object, what: str, repo_id: str) -> HubError:
        text = redact(one_line(str(message), limit=200), self._token) if message else ""
        if repo_id and "not exist" in text.lower():
            return RepoNotFoundError(f"No model {repo_id} on {self.endpoint}.", repo_id=repo_id)
        return HubResponseError(f"ModelScope refused the request for its {what}: {shown(text)}")

    def _unreachable(self, exc: BaseException) -> HubUnreachableError:
        detail = redact(first_line(exc), self._token)
        return HubUnreachableError(
            f"Cannot reach {self.endpoint} ({detail}).",
            hint="Check the network, or the ModelScope endpoint.",
        )


def _quoted_id(model_id: str) -> str:
    owner, _, name = check_repo_id(model_id).partition("/")
    return f"{quote(owner, safe='')}/{quote(name, safe='')}"


def _message_of(body: bytes) -> str:
    """The `Message` / `message` of an error body, if it is small JSON with one."""
    if not body or len(body) > 64 << 10:
        return ""
    try:
        value = parse_untrusted_json(body, max_bytes=64 << 10, what="an error")
    except UntrustedJsonError:
        return ""
    if isinstance(value, dict):
        message = value.get("Message") or value.get("message")
        if isinstance(message, str):
            return one_line(message, limit=200)
    return ""


def _model_from(item: object) -> ModelScopeModel | None:
    """A typed model from one JSON object; None when it has no usable id."""
    if not isinstance(item, dict):
        return None
    model_id = item.get("id") or item.get("Id") or item.get("model_id")
    if not isinstance(model_id, str) or model_id.count("/") != 1:
        return None
    return ModelScopeModel(
        model_id=model_id,
        downloads=_count(item.get("downloads")),
        likes=_count(item.get("likes") if "likes" in item else item.get("stars")),
        license=_text(item.get("license")),
        tasks=_names(item.get("tasks")),
        tags=_names(item.get("tags")),
        libraries=_names(item.get("libraries") or item.get("frameworks")),
        last_modified=_when(item.get("last_modified") or item.get("last_updated_time")),
        description=_text(item.get("description")),
    )


def _file_from(item: object) -> ModelScopeFile | None:
    """A typed listing entry; None for an entry without a path (skipped, like the SDK does)."""
    if not isinstance(item, dict):
        return None
    path = item.get("Path")
    if not isinstance(path, str) or not path:
        return None
    if path.rsplit("/", 1)[-1] in (".gitignore", ".gitattributes"):
        return None
    sha256 = item.get("Sha256")
    revision = item.get("Revision")
    return ModelScopeFile(
        path=path,
        size=_whole(item.get("Size")),
        sha256=sha256 if isinstance(sha256, str) and sha256 else None,
        is_folder=item.get("Type") == "tree",
        revision=revision if isinstance(revision, str) and revision else None,
    )


def _whole(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else None


def _count(value: object) -> int:
    return _whole(value) or 0


def _text(value: object) -> str | None:
    return value.strip()[:200] if isinstance(value, str) and value.strip() else None


def _names(value: object) -> tuple[str, ...]:
    """Names from a list of strings or of `{"name": ...}` objects (both shapes are seen)."""
    if not isinstance(value, list):
        return ()
    names: list[str] = []
    for item in value[:100]:
        name = item.get("name") if isinstance(item, dict) else item
        if isinstance(name, str) and name.strip():
            names.append(name.strip()[:100])
    return tuple(names)


def _when(value: object) -> datetime | None:
    """An ISO 8601 text or seconds since the epoch (the older API's `LastUpdatedTime`)."""
    if isinstance(value, int) and not isinstance(value, bool):
        try:
            return datetime.fromtimestamp(value, UTC)
        except (OverflowError, OSError, ValueError):
            return None
    if isinstance(value, str) and len(value) <= 64:
        try:
            parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return None
        return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
    return None


def _retry_after(value: str) -> float | None:
    try:
        seconds = float(value)
    except ValueError:
        return None
    return seconds if 0 <= seconds < 86400 else None

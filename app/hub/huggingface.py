"""The Hugging Face Hub (or any HF-compatible mirror or private hub), through `huggingface_hub`."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Iterator, Mapping
from datetime import datetime
from pathlib import Path
from typing import Any, Literal, TypeVar
from urllib.parse import quote

import httpx2
from huggingface_hub import HfApi, get_session, hf_hub_download, hf_raise_for_status
from huggingface_hub import errors as hf_errors
from huggingface_hub.hf_api import ModelInfo, RepoSibling

# The documented home of these; its lazy __init__ hides the names from mypy.
from huggingface_hub.utils import build_hf_headers, validate_repo_id  # type: ignore[attr-defined]

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
from app.hub.card import parse_card
from app.hub.credentials import redact
from app.hub.endpoint import DEFAULT_ENDPOINT
from app.hub.models import (
    AccessStatus,
    Gating,
    ModelCard,
    ModelDetails,
    ModelSummary,
    RepoFile,
    SearchQuery,
    SortOrder,
)
from app.hub.security import (
    FileScan,
    RepoSecurity,
    file_scan_from_hub,
    merge,
    repo_security_from_hub,
)
from app.hub.untrusted import check_repo_id
from app.text import first_line
from app.units import format_bytes
from app.untrusted_json import parse_untrusted_json

# The fields a search result shows; asking for these and no more keeps pages small.
_SEARCH_FIELDS: list[Any] = [
    "downloads",
    "likes",
    "pipeline_tag",
    "library_name",
    "lastModified",
    "tags",
    "gated",
    "cardData",
]
_SORT_KEYS: dict[SortOrder, Literal["downloads", "likes", "last_modified"]] = {
    SortOrder.DOWNLOADS: "downloads",
    SortOrder.LIKES: "likes",
    SortOrder.UPDATED: "last_modified",
}

T = TypeVar("T")

MAX_MODEL_INFO_BYTES = 32 << 20
"""The largest model description read from a hub. A repository of 100,000 files is ~20 MB of
JSON with file hashes; a larger answer is a broken or hostile hub, and reading it whole could
exhaust memory."""

MAX_SCANNED_ENTRIES = 2000
"""Entries of an expanded listing read for files' scan findings (the hub pages it at 50); past
this, the repository-level scan status (which names every file with issues) stands alone."""


class HuggingFaceHub:
    """A `HubProvider` for the Hugging Face Hub protocol.

    Args:
        endpoint: base URL of the hub, a mirror or a private hub.
        token: a user access token, or None for anonymous access.
        cache_dir: the HF hub cache (None: `HF_HUB_CACHE` / the standard location).
        probe_timeout: seconds to wait for the hub to answer the reachability check.
    """

    def __init__(
        self,
        *,
        endpoint: str,
        token: str | None = None,
        cache_dir: Path | None = None,
        probe_timeout: float = 5.0,
    ) -> None:
        self._endpoint = endpoint.rstrip("/")
        self._token = token
        self._cache_dir = cache_dir
        self._probe_timeout = probe_timeout
        # token=False, not None: None would make huggingface_hub look for a token on its own.
        self._api = HfApi(
            endpoint=self._endpoint,
            token=token or False,
            library_name="modeldeck",
            library_version=__version__,
        )

    @property
    def name(self) -> str:
        return "Hugging Face" if self._endpoint == DEFAULT_ENDPOINT else self._endpoint

    @property
    def endpoint(self) -> str:
        return self._endpoint

    def repo_url(self, repo_id: str) -> str:
        """The repository's page on the hub."""
        return f"{self._endpoint}/{quote(repo_id, safe='/')}"

    # -- search -------------------------------------------------------------------------

    def search(self, query: SearchQuery) -> Iterator[ModelSummary]:
        """Yield matching models; each page is requested only when the iterator reaches it."""
        self._ensure_reachable()
        filters = [tag for tag in (query.library, _license_filter(query.license)) if tag]
        pages = self._api.list_models(
            search=query.text.strip() or None,
            author=(query.author or "").strip() or None,
            filter=filters or None,
            pipeline_tag=query.task or None,
            sort=_SORT_KEYS[query.sort],
            expand=_SEARCH_FIELDS,
        )
        return self._translated_iterator(pages, _summary_from_info)

    def _translated_iterator(
        self, infos: Iterator[ModelInfo] | Any, convert: Callable[[ModelInfo], T]
    ) -> Iterator[T]:
        iterator = iter(infos)
        while True:
            try:
                info = next(iterator)
            except StopIteration:
                return
            except Exception as exc:
                raise self._translate(exc) from exc
            yield convert(info)

    # -- one repository -------------------------------------------------------------------

    def model_details(self, repo_id: str, *, revision: str | None = None) -> ModelDetails:
        """Metadata and files (with sizes and LFS sha256) of `repo_id`.

        File names and hashes are kept as the hub sent them (a download checks them, see
        `app.hub.untrusted`); the repository id the hub answers with must be a valid one.
        """
        try:
            details = self._details_from_info(self._model_info(repo_id, revision=revision))
        except Exception as exc:
            raise self._translate(exc, repo_id=repo_id, revision=revision) from exc
        if details.security is not None and details.sha:
            # The hub scans: each file's findings (virus names, pickle imports) are in the
            # expanded listing. Without them the repository-level status still stands.
            files = self._file_scans(details.repo_id, details.sha)
            details = dataclasses.replace(details, security=merge(details.security, files))
        return details

    def _file_scans(self, repo_id: str, revision: str) -> dict[str, FileScan]:
        """Each file's `securityFileStatus` from the expanded tree listing; {} when it fails."""
        scans: dict[str, FileScan] = {}
        try:
            entries = self._api.list_repo_tree(
                repo_id, revision=revision, recursive=True, expand=True
            )
            for count, entry in enumerate(entries):
                if count >= MAX_SCANNED_ENTRIES:
                    break
                security = getattr(entry, "security", None)
                path = getattr(entry, "path", None)
                if security is None or not isinstance(path, str):
                    continue
                scans[path] = file_scan_from_hub(
                    security.status, security.av_scan, security.pickle_import_scan
                )
        except Exception:  # the findings are extra: the repository's status stands alone
            return scans
        return scans

    def _model_info(self, repo_id: str, *, revision: str | None) -> ModelInfo:
        """`HfApi.model_info(files_metadata=True)`, reading at most `MAX_MODEL_INFO_BYTES`.

        The same request and parser as huggingface_hub's; only the body is read in chunks and
        refused once it is too large, where `model_info` would read any size into memory.
        """
        validate_repo_id(repo_id)
        url = f"{self._endpoint}/api/models/{repo_id}"
        if revision is not None:
            url += f"/revision/{quote(revision, safe='')}"
        headers = build_hf_headers(
            token=self._token or False, library_name="modeldeck", library_version=__version__
        )
        with get_session().stream(
            "GET", url, headers=headers, params={"blobs": True, "securityStatus": True}
        ) as answer:
            body = read_at_most(
                answer,
                MAX_MODEL_INFO_BYTES,
                too_large=f"The hub's description of {repo_id} is larger than "
                f"{format_bytes(MAX_MODEL_INFO_BYTES)}; ModelDeck does not read it.",
            )
        response = httpx2.Response(
            answer.status_code, headers=answer.headers, content=body, request=answer.request
        )
        hf_raise_for_status(response)
        data = parse_untrusted_json(
            body, max_bytes=MAX_MODEL_INFO_BYTES, what=f"The hub's description of {repo_id}"
        )
        if not isinstance(data, dict):
            raise HubResponseError(f"The hub's description of {repo_id} is not a JSON object.")
        try:
            return ModelInfo(**data)  # type: ignore[no-untyped-call]
        except (AttributeError, KeyError, TypeError, ValueError) as exc:
            # huggingface_hub's parser meets a field of the wrong shape.
            raise HubResponseError(
                f"The hub's description of {repo_id} cannot be read ({first_line(exc)})."
            ) from exc

    def model_card(self, repo_id: str, *, revision: str | None = None) -> ModelCard:
        """The README of `repo_id`, from the HF cache when the hub is unreachable."""
        try:
            text = self._download_text(repo_id, "README.md", revision=revision, max_bytes=None)
        except RepoFileNotFoundError:
            return ModelCard(body="")
        return parse_card(text)

    def read_text_file(
        self, repo_id: str, path: str, *, revision: str | None = None, max_bytes: int = 1 << 20
    ) -> str:
        """A small text file of `repo_id` (e.g. LICENSE), at most `max_bytes` of it."""
        return self._download_text(repo_id, path, revision=revision, max_bytes=max_bytes)

    def check_access(self, repo_id: str) -> AccessStatus:
        """Whether the current token may download `repo_id`'s files."""
        try:
            self._api.auth_check(repo_id)
        except hf_errors.GatedRepoError:
            return AccessStatus.DENIED if self._token else AccessStatus.NO_TOKEN
        except Exception:
            return AccessStatus.UNKNOWN
        return AccessStatus.GRANTED

    # -- internals ---------------------------------------------------------------------

    def _download_text(
        self, repo_id: str, path: str, *, revision: str | None, max_bytes: int | None
    ) -> str:
        # hf_hub_download retries a refused connection for ~23 s when the file is not cached;
        # probe first so that offline means the cached copy (or an error) in seconds.
        try:
            self._ensure_reachable()
        except HubUnreachableError:
            offline = True
        else:
            offline = False
        try:
            local = hf_hub_download(
                repo_id,
                path,
                revision=revision,
                endpoint=self._endpoint,
                token=self._token or False,
                cache_dir=self._cache_dir,
                local_files_only=offline,
                library_name="modeldeck",
                library_version=__version__,
            )
        except hf_errors.RemoteEntryNotFoundError as exc:
            raise RepoFileNotFoundError(
                f"{repo_id} has no file {path}.", repo_id=repo_id, path=path
            ) from exc
        except hf_errors.LocalEntryNotFoundError as exc:
            # Raised when the hub is unreachable and the file is not in the cache either.
            raise HubUnreachableError(
                f"Cannot reach {self._endpoint}, and {path} of {repo_id} is not cached."
            ) from exc
        except Exception as exc:
            raise self._translate(exc, repo_id=repo_id, revision=revision) from exc
        with open(local, "rb") as handle:
            raw = handle.read() if max_bytes is None else handle.read(max_bytes)
        return raw.decode("utf-8", errors="replace")

    def _ensure_reachable(self) -> None:
        """Fail fast when the hub is down.

        huggingface_hub retries listings five times over ~23 s on a refused connection;
        a person waiting on a search should hear "offline" in seconds, not half a minute.
        One HEAD per search (not per page) is cheap next to the listing itself.
        """
        try:
            get_session().head(self._endpoint, timeout=self._probe_timeout)
        except Exception as exc:
            raise self._translate(exc) from exc

    def _translate(
        self, exc: BaseException, *, repo_id: str | None = None, revision: str | None = None
    ) -> HubError:
        """Turn any exception from huggingface_hub into a `HubError` a person can act on."""
        detail = redact(first_line(exc), self._token)
        if isinstance(exc, HubError):
            return exc
        if isinstance(exc, hf_errors.GatedRepoError) and repo_id:
            url = self.repo_url(repo_id)
            return GatedRepoError(
                f"{repo_id} is gated: its terms must be accepted on the hub.",
                repo_id=repo_id,
                url=url,
                hint=f"Accept them at {url}"
                + ("" if self._token else ", then add your token in Settings."),
            )
        if (
            isinstance(exc, hf_errors.RepositoryNotFoundError | hf_errors.RevisionNotFoundError)
            and repo_id
        ):
            what = (
                f"revision {revision or 'main'} of {repo_id}"
                if isinstance(exc, hf_errors.RevisionNotFoundError)
                else f"repository {repo_id}"
            )
            return RepoNotFoundError(
                f"No {what} on {self._endpoint}.",
                repo_id=repo_id,
                hint=None if self._token else "If it is private, add a token in Settings.",
            )
        if isinstance(exc, hf_errors.HFValidationError) and repo_id:
            # Raised before any request: the id itself is malformed (e.g. spaces, "..").
            return RepoNotFoundError(
                f"{repo_id!r} is not a valid repository id ({detail}).", repo_id=repo_id
            )
        if isinstance(exc, hf_errors.HfHubHTTPError):
            status = exc.response.status_code if exc.response is not None else None
            if status == 429:
                retry_after = _retry_after(exc.response.headers if exc.response else {})
                wait = f" Try again in {retry_after:.0f} s." if retry_after else ""
                return RateLimitedError(
                    f"The hub is rate-limiting requests.{wait}", retry_after=retry_after
                )
            return HubResponseError(
                f"The hub answered with an error ({status}): {detail}", status=status
            )
        if isinstance(exc, json.JSONDecodeError | UnicodeDecodeError):
            return HubResponseError(f"The hub sent a response that is not valid JSON ({detail}).")
        if isinstance(exc, httpx2.TransportError | OSError):
            return HubUnreachableError(
                f"Cannot reach {self._endpoint} ({detail}).",
                hint="Check the network, or the hub endpoint in Settings.",
            )
        if isinstance(exc, KeyError | TypeError | ValueError):
            return HubResponseError(f"The hub sent a response ModelDeck cannot read ({detail}).")
        return HubError(f"Unexpected error talking to the hub: {detail}")

    def _details_from_info(self, info: ModelInfo) -> ModelDetails:
        # The hub's own id names the cache folder of every download from it: checked here.
        repo_id = check_repo_id(info.id)
        card_data = _card_data(info)
        license_id = _license_id(info, card_data)
        return ModelDetails(
            repo_id=repo_id,
            sha=info.sha,
            last_modified=_as_datetime(info.last_modified),
            gating=Gating.from_hub(info.gated),
            tags=tuple(info.tags or ()),
            task=info.pipeline_tag,
            library=info.library_name,
            base_models=_base_models(card_data),
            downloads=info.downloads or 0,
            likes=info.likes or 0,
            license_id=license_id,
            license_name=_optional_str(card_data.get("license_name")),
            license_link=_optional_str(card_data.get("license_link")),
            files=tuple(_repo_file(sibling) for sibling in info.siblings or ()),
            card_data=card_data,
            url=self.repo_url(repo_id),
            security=_repo_security(info),
        )


def _summary_from_info(info: ModelInfo) -> ModelSummary:
    return ModelSummary(
        repo_id=info.id,
        task=info.pipeline_tag,
        library=info.library_name,
        downloads=info.downloads or 0,
        likes=info.likes or 0,
        license_id=_license_id(info, _card_data(info)),
        last_modified=_as_datetime(info.last_modified),
        gating=Gating.from_hub(info.gated),
    )


def _repo_file(sibling: RepoSibling) -> RepoFile:
    """One listed file, its fields typed: a size that is no number, or a hash that is no text,
    becomes None. The name and hashes are kept as sent; a download checks them."""
    path: object = sibling.rfilename
    if not isinstance(path, str):
        raise HubResponseError(f"The hub listed a file whose name is not text ({path!r:.40}).")
    lfs = sibling.lfs
    size = _whole_number(sibling.size)
    if size is None and lfs:
        size = _whole_number(lfs.size)
    sha256: object = lfs.sha256 if lfs else None
    blob_id: object = sibling.blob_id
    return RepoFile(
        path=path,
        size=size,
        sha256=sha256 if isinstance(sha256, str) else None,
        blob_id=blob_id if isinstance(blob_id, str) else None,
    )


def _repo_security(info: ModelInfo) -> RepoSecurity | None:
    """The hub's `securityRepoStatus`; None when it sent none (a hub that does not scan)."""
    return repo_security_from_hub(getattr(info, "security_repo_status", None))


def _whole_number(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _card_data(info: ModelInfo) -> dict[str, Any]:
    data = info.card_data
    if data is None:
        return {}
    if isinstance(data, Mapping):
        return dict(data)
    return dict(data.to_dict())  # type: ignore[no-untyped-call]


def _license_id(info: ModelInfo, card_data: Mapping[str, Any]) -> str | None:
    value = card_data.get("license")
    if isinstance(value, list):  # some cards list several licenses; the first is the main one
        value = value[0] if value else None
    if isinstance(value, str) and value.strip():
        return value.strip().lower()
    for tag in info.tags or ():
        if tag.startswith("license:"):
            return tag.removeprefix("license:").lower()
    return None


def _license_filter(license_id: str | None) -> str | None:
    return f"license:{license_id.strip().lower()}" if license_id and license_id.strip() else None


def _base_models(card_data: Mapping[str, Any]) -> tuple[str, ...]:
    value = card_data.get("base_model")
    if isinstance(value, str):
        return (value,)
    if isinstance(value, list):
        return tuple(str(item) for item in value if item)
    return ()


def _optional_str(value: object) -> str | None:
    return value.strip() if isinstance(value, str) and value.strip() else None


def _as_datetime(value: object) -> datetime | None:
    return value if isinstance(value, datetime) else None


def _retry_after(headers: Mapping[str, str]) -> float | None:
    try:
        return float(headers.get("Retry-After", ""))
    except ValueError:
        return None

"""ModelScope as a `HubProvider`: its answers turned into the app's hub-neutral dataclasses."""

from __future__ import annotations

import os
from collections.abc import Iterator

from app.errors import GatedRepoError, HubError, RepoFileNotFoundError
from app.hub.card import parse_card
from app.hub.models import (
    AccessStatus,
    ModelCard,
    ModelDetails,
    ModelSummary,
    RepoFile,
    SearchQuery,
    SortOrder,
)
from app.hub.modelscope.api import (
    DEFAULT_MODELSCOPE_ENDPOINT,
    DEFAULT_REVISION,
    ModelScopeClient,
    ModelScopeModel,
    ModelScopeSearchPage,
    ModelScopeSort,
)
from app.hub.modelscope.licenses import modelscope_license_id
from app.hub.untrusted import check_repo_id

MODELSCOPE_NAME = "ModelScope"
SEARCH_PAGE_SIZE = 50
MAX_CARD_BYTES = 4 << 20

_SORTS = {
    SortOrder.DOWNLOADS: ModelScopeSort.DOWNLOADS,
    SortOrder.LIKES: ModelScopeSort.LIKES,
    SortOrder.UPDATED: ModelScopeSort.UPDATED,
}


def modelscope_endpoint(setting: str | None = None) -> str:
    """The endpoint to use: the given one, else `MODELSCOPE_ENDPOINT`, else modelscope.cn."""
    chosen = setting or os.environ.get("MODELSCOPE_ENDPOINT") or DEFAULT_MODELSCOPE_ENDPOINT
    return chosen.strip().rstrip("/")


class ModelScopeHub:
    """A `HubProvider` for ModelScope (modelscope.cn, or a server that speaks its API).

    Args:
        endpoint: the site (None: `modelscope_endpoint()`).
        token: a ModelScope SDK token (None: `MODELSCOPE_API_TOKEN`, else anonymous).
        timeout: seconds to wait for an answer.
    """

    def __init__(
        self, *, endpoint: str | None = None, token: str | None = None, timeout: float = 15.0
    ) -> None:
        token = token or os.environ.get("MODELSCOPE_API_TOKEN") or None
        self.client = ModelScopeClient(
            endpoint=modelscope_endpoint(endpoint), token=token, timeout=timeout
        )

    @property
    def name(self) -> str:
        return MODELSCOPE_NAME

    @property
    def endpoint(self) -> str:
        return self.client.endpoint

    def repo_url(self, repo_id: str) -> str:
        """The model's page on the site."""
        return self.client.page_url(repo_id)

    def search(self, query: SearchQuery) -> Iterator[ModelSummary]:
        """Matching models; the first page is fetched now (so an unreachable hub says so
        at once, as Hugging Face's does), each next one when the iterator reaches it."""
        first = self._page(query, 1)
        return self._pages(query, first)

    def _pages(self, query: SearchQuery, first: ModelScopeSearchPage) -> Iterator[ModelSummary]:
        page, number, seen = first, 1, 0
        while True:
            yield from (_summary(model) for model in page.models)
            seen += len(page.models)
            if len(page.models) < SEARCH_PAGE_SIZE or seen >= page.total_count:
                return
            number += 1
            page = self._page(query, number)

    def _page(self, query: SearchQuery, number: int) -> ModelScopeSearchPage:
        return self.client.search_page(
            text=query.text,
            page_number=number,
            page_size=SEARCH_PAGE_SIZE,
            sort=_SORTS[query.sort],
            owner=query.author,
            task=query.task,
            license=query.license,
            library=query.library,
        )

    def model_details(self, repo_id: str, *, revision: str | None = None) -> ModelDetails:
        """The model's metadata and every file (with size and sha256) at `revision`."""
        revision = revision or DEFAULT_REVISION
        model = self.client.model(repo_id)
        model_id = check_repo_id(model.model_id)
        files = self.client.walk_files(model_id, revision=revision)
        return ModelDetails(
            repo_id=model_id,
            sha=None,  # ModelScope names branches, not commits, in its file listing
            last_modified=model.last_modified,
            tags=model.tags,
            task=model.tasks[0] if model.tasks else None,
            library=model.libraries[0] if model.libraries else None,
            downloads=model.downloads,
            likes=model.likes,
            license_id=modelscope_license_id(model.license),
            files=tuple(
                RepoFile(path=file.path, size=file.size, sha256=file.sha256) for file in files
            ),
            url=self.repo_url(model_id),
        )

    def model_card(self, repo_id: str, *, revision: str | None = None) -> ModelCard:
        """The README; an absent one is an empty card."""
        try:
            text = self.read_text_file(
                repo_id, "README.md", revision=revision, max_bytes=MAX_CARD_BYTES
            )
        except RepoFileNotFoundError:
            return ModelCard(body="")
        return parse_card(text)

    def read_text_file(
        self, repo_id: str, path: str, *, revision: str | None = None, max_bytes: int = 1 << 20
    ) -> str:
        raw = self.client.read_file(
            repo_id, path, revision=revision or DEFAULT_REVISION, max_bytes=max_bytes
        )
        return raw.decode("utf-8", errors="replace")

    def check_access(self, repo_id: str) -> AccessStatus:
        """Whether the file listing (and so the downloads) is open to the current token."""
        try:
            self.client.list_files(repo_id, recursive=False)
        except GatedRepoError:
            return AccessStatus.DENIED if self.client.token else AccessStatus.NO_TOKEN
        except HubError:
            return AccessStatus.UNKNOWN
        return AccessStatus.GRANTED


def _summary(model: ModelScopeModel) -> ModelSummary:
    return ModelSummary(
        repo_id=model.model_id,
        task=model.tasks[0] if model.tasks else None,
        library=model.libraries[0] if model.libraries else None,
        downloads=model.downloads,
        likes=model.likes,
        license_id=modelscope_license_id(model.license),
        last_modified=model.last_modified,
    )

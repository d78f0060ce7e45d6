"""The interface every hub implements, so a second hub can sit beside Hugging Face."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Protocol

from app.hub.models import AccessStatus, ModelCard, ModelDetails, ModelSummary, SearchQuery


class HubProvider(Protocol):
    """A model hub. All methods block (they do network I/O): call them off the GUI thread.

    Errors are `app.errors.HubError` subclasses: `HubUnreachableError` when offline,
    `RepoNotFoundError`, `GatedRepoError`, `RateLimitedError`, `HubResponseError`.
    """

    @property
    def name(self) -> str:
        """A short display name, e.g. "Hugging Face"."""
        ...

    @property
    def endpoint(self) -> str:
        """The base URL this provider talks to."""
        ...

    def search(self, query: SearchQuery) -> Iterator[ModelSummary]:
        """Yield results lazily; pages are fetched only as the iterator is consumed."""
        ...

    def model_details(self, repo_id: str, *, revision: str | None = None) -> ModelDetails:
        """Metadata and the file list (with sizes and sha256) of one repository."""
        ...

    def model_card(self, repo_id: str, *, revision: str | None = None) -> ModelCard:
        """The repository's README, split into body and metadata. An absent README is empty."""
        ...

    def read_text_file(
        self, repo_id: str, path: str, *, revision: str | None = None, max_bytes: int = 1 << 20
    ) -> str:
        """A small text file of the repository (e.g. LICENSE), decoded as UTF-8."""
        ...

    def check_access(self, repo_id: str) -> AccessStatus:
        """Whether the current token may download the repository's files."""
        ...

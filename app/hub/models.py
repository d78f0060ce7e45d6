"""What a hub tells us about models, as frozen dataclasses that do not depend on any one hub."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

from app.hub.security import FileScan, RepoSecurity, scan_of


class SortOrder(StrEnum):
    """How search results are ordered (always descending)."""

    DOWNLOADS = "downloads"
    LIKES = "likes"
    UPDATED = "updated"


class Gating(StrEnum):
    """Whether a repository's files are behind an accept-the-terms gate."""

    OPEN = "open"
    AUTO = "auto"  # access is granted as soon as the terms are accepted
    MANUAL = "manual"  # the authors review each request

    @classmethod
    def from_hub(cls, value: object) -> Gating:
        """Map the hub's `gated` field (False, "auto", "manual", True) to a `Gating`."""
        if value in (None, False, "false", ""):
            return cls.OPEN
        if value == "manual":
            return cls.MANUAL
        return cls.AUTO


class AccessStatus(StrEnum):
    """Whether the current token may download a repository's files."""

    GRANTED = "granted"
    NO_TOKEN = "no-token"  # gated, and no token was given
    DENIED = "denied"  # gated, and this token has not been granted access (yet)
    UNKNOWN = "unknown"  # could not be checked (offline, …)


@dataclass(frozen=True, kw_only=True)
class SearchQuery:
    """A search: free text plus filters. Empty strings and None mean "any"."""

    text: str = ""
    task: str | None = None  # pipeline tag, e.g. "text-generation"
    library: str | None = None  # library or format tag, e.g. "gguf", "diffusers"
    license: str | None = None  # license id, e.g. "apache-2.0"
    author: str | None = None
    sort: SortOrder = SortOrder.DOWNLOADS


@dataclass(frozen=True, kw_only=True)
class ModelSummary:
    """One search result."""

    repo_id: str
    task: str | None = None
    library: str | None = None
    downloads: int = 0
    likes: int = 0
    license_id: str | None = None
    last_modified: datetime | None = None
    gating: Gating = Gating.OPEN


@dataclass(frozen=True, kw_only=True)
class RepoFile:
    """A file in a repository at one revision."""

    path: str
    size: int | None = None
    sha256: str | None = None  # the LFS sha256, known for LFS files only
    blob_id: str | None = None  # the git blob id

    @property
    def name(self) -> str:
        """The file name without its folder."""
        return self.path.rsplit("/", 1)[-1]


@dataclass(frozen=True, kw_only=True)
class ModelCard:
    """A repository's README: its Markdown body and its YAML front matter."""

    body: str
    metadata: Mapping[str, Any] = field(default_factory=dict)
    metadata_error: str | None = None  # why the front matter could not be read, if it could not
    saved_at: datetime | None = (
        None  # None: fresh from the hub; else when this offline copy was fetched
    )


@dataclass(frozen=True, kw_only=True)
class ModelDetails:
    """Everything the details pane and `modeldeck info` show about a repository."""

    repo_id: str
    sha: str | None = None  # the commit the details describe
    last_modified: datetime | None = None
    gating: Gating = Gating.OPEN
    tags: tuple[str, ...] = ()
    task: str | None = None
    library: str | None = None
    base_models: tuple[str, ...] = ()
    downloads: int = 0
    likes: int = 0
    license_id: str | None = None
    license_name: str | None = None  # for license "other": the card's license_name
    license_link: str | None = None  # for license "other": the card's license_link
    files: tuple[RepoFile, ...] = ()
    card_data: Mapping[str, Any] = field(default_factory=dict)
    url: str = ""  # the repository's page on the hub
    saved_at: datetime | None = (
        None  # None: fresh from the hub; else when this offline copy was fetched
    )
    # What the hub's malware and pickle scanners said; None: the hub reported no scans.
    security: RepoSecurity | None = None

    def scan_of(self, path: str) -> FileScan:
        """The hub's verdict on `path` ("not scanned" when it reported none)."""
        return scan_of(self.security, path)

    @property
    def license_file(self) -> RepoFile | None:
        """The repository's LICENSE file, if it has one at the top level."""
        for candidate in self.files:
            if "/" not in candidate.path and candidate.path.upper().startswith(
                ("LICENSE", "LICENCE")
            ):
                return candidate
        return None

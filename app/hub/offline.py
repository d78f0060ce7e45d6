"""Offline copies: what the hub said about models seen before, kept in the app database.

`OfflineAwareHub` wraps any `HubProvider`: every details and card it fetches is saved, and when
the hub cannot be reached the saved copy is returned instead, marked with `saved_at`, so
Discover and `modeldeck info` still show models seen before.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

from app.errors import HubUnreachableError
from app.hub.models import (
    AccessStatus,
    Gating,
    ModelCard,
    ModelDetails,
    ModelSummary,
    RepoFile,
    SearchQuery,
)
from app.hub.provider import HubProvider
from app.hub.security import MAX_FINDING_CHARS, FileScan, RepoSecurity, ScanLevel
from app.store import Database


def _details_to_json(details: ModelDetails) -> str:
    data = dataclasses.asdict(details)
    data["last_modified"] = details.last_modified.isoformat() if details.last_modified else None
    data["saved_at"] = None
    return json.dumps(data, default=str)


def _details_from_json(payload: str, saved_at: datetime) -> ModelDetails:
    data: dict[str, Any] = json.loads(payload)
    last_modified = data.get("last_modified")
    return ModelDetails(
        repo_id=data["repo_id"],
        sha=data.get("sha"),
        last_modified=datetime.fromisoformat(last_modified) if last_modified else None,
        gating=Gating(data.get("gating", Gating.OPEN)),
        tags=tuple(data.get("tags", ())),
        task=data.get("task"),
        library=data.get("library"),
        base_models=tuple(data.get("base_models", ())),
        downloads=data.get("downloads", 0),
        likes=data.get("likes", 0),
        license_id=data.get("license_id"),
        license_name=data.get("license_name"),
        license_link=data.get("license_link"),
        files=tuple(RepoFile(**item) for item in data.get("files", ())),
        card_data=data.get("card_data", {}),
        url=data.get("url", ""),
        saved_at=saved_at,
        security=_security_from_json(data.get("security")),
    )


def _security_from_json(value: object) -> RepoSecurity | None:
    """The scans a saved copy carried (`dataclasses.asdict` of a `RepoSecurity`); None for a
    copy saved before scans were kept, or one that says nothing readable about them."""
    if not isinstance(value, dict):
        return None
    files: dict[str, FileScan] = {}
    saved_files = value.get("files")
    for path, scan in saved_files.items() if isinstance(saved_files, dict) else ():
        if not isinstance(path, str) or not isinstance(scan, dict):
            continue
        level = scan.get("level")
        finding = scan.get("finding")
        files[path] = FileScan(
            level=ScanLevel(level) if level in set(ScanLevel) else ScanLevel.NOT_SCANNED,
            finding=finding[:MAX_FINDING_CHARS] if isinstance(finding, str) else "",
        )
    return RepoSecurity(scans_done=value.get("scans_done") is True, files=files)


def _summary_of(details: ModelDetails) -> ModelSummary:
    return ModelSummary(
        repo_id=details.repo_id,
        task=details.task,
        library=details.library,
        downloads=details.downloads,
        likes=details.likes,
        license_id=details.license_id,
        last_modified=details.last_modified,
        gating=details.gating,
    )


class OfflineAwareHub:
    """A `HubProvider` that remembers what it fetched and falls back to it when offline."""

    def __init__(self, provider: HubProvider, database: Database) -> None:
        self._provider = provider
        self._database = database

    @property
    def name(self) -> str:
        return self._provider.name

    @property
    def endpoint(self) -> str:
        return self._provider.endpoint

    def search(self, query: SearchQuery) -> Iterator[ModelSummary]:
        """The live search. When offline it raises; `seen_models` then offers saved copies."""
        return self._provider.search(query)

    def model_details(self, repo_id: str, *, revision: str | None = None) -> ModelDetails:
        try:
            details = self._provider.model_details(repo_id, revision=revision)
        except HubUnreachableError:
            saved = self._load(repo_id, "details")
            if saved is None or revision not in (None, "main"):
                raise
            payload, saved_at = saved
            return _details_from_json(payload, saved_at)
        if revision in (None, "main"):
            self._save(repo_id, "details", _details_to_json(details))
        return details

    def model_card(self, repo_id: str, *, revision: str | None = None) -> ModelCard:
        try:
            card = self._provider.model_card(repo_id, revision=revision)
        except HubUnreachableError:
            saved = self._load(repo_id, "card")
            if saved is None or revision not in (None, "main"):
                raise
            payload, saved_at = saved
            data = json.loads(payload)
            return ModelCard(
                body=data["body"],
                metadata=data["metadata"],
                metadata_error=data.get("metadata_error"),
                saved_at=saved_at,
            )
        if revision in (None, "main"):
            fields = {
                "body": card.body,
                "metadata": dict(card.metadata),
                "metadata_error": card.metadata_error,
            }
            self._save(repo_id, "card", json.dumps(fields, default=str))
        return card

    def read_text_file(
        self, repo_id: str, path: str, *, revision: str | None = None, max_bytes: int = 1 << 20
    ) -> str:
        return self._provider.read_text_file(repo_id, path, revision=revision, max_bytes=max_bytes)

    def check_access(self, repo_id: str) -> AccessStatus:
        return self._provider.check_access(repo_id)

    def seen_models(self, query: SearchQuery, *, limit: int = 500) -> list[ModelSummary]:
        """Models seen before on this endpoint whose id contains the query text, newest first."""
        # Matched here, not in SQL: SQLite's lower() folds ASCII only, and the limit must count
        # models that pass every filter.
        rows = self._database.fetch_all(
            "SELECT repo_id, payload, fetched_at FROM hub_snapshots "
            "WHERE endpoint = ? AND kind = 'details' ORDER BY fetched_at DESC",
            (self.endpoint,),
        )
        text = query.text.strip().casefold()
        found: list[ModelSummary] = []
        for repo_id, payload, fetched_at in rows:
            if len(found) >= limit:
                break
            if text not in str(repo_id).casefold():
                continue
            details = _details_from_json(payload, datetime.fromisoformat(fetched_at))
            if _matches_filters(details, query):
                found.append(_summary_of(details))
        return found

    def _save(self, repo_id: str, kind: str, payload: str) -> None:
        self._database.execute(
            "INSERT INTO hub_snapshots (endpoint, repo_id, kind, payload, fetched_at) "
            "VALUES (?, ?, ?, ?, ?) ON CONFLICT(endpoint, repo_id, kind) DO UPDATE SET "
            "payload = excluded.payload, fetched_at = excluded.fetched_at",
            (self.endpoint, repo_id, kind, payload, datetime.now(UTC).isoformat()),
        )

    def _load(self, repo_id: str, kind: str) -> tuple[str, datetime] | None:
        row = self._database.fetch_one(
            "SELECT payload, fetched_at FROM hub_snapshots "
            "WHERE endpoint = ? AND repo_id = ? AND kind = ?",
            (self.endpoint, repo_id, kind),
        )
        return (row[0], datetime.fromisoformat(row[1])) if row else None


def _matches_filters(details: ModelDetails, query: SearchQuery) -> bool:
    if query.task and details.task != query.task:
        return False
    # Like the hub's filter: a library or format matches the library name or any tag ("gguf").
    if query.library and query.library not in (details.library, *details.tags):
        return False
    if query.license and details.license_id != query.license.strip().lower():
        return False
    return not (query.author and not details.repo_id.startswith(f"{query.author.strip()}/"))

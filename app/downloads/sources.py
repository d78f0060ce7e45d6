"""Which hub a queued download comes from, and what its files' place there needs.

A Hugging Face job needs nothing beyond its plan (the HF cache is the manager's). A job from
another hub carries a source: where its files go and how they are fetched. The queue saves a
source as JSON beside the job (`download_jobs.hub`, `.source`) and reads it back through
`source_from_json`, which treats the saved text as untrusted: a database edited by hand or
written by another version is refused with a clear error, never followed.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

from app.hub.civitai.provenance import CivitaiProvenance, provenance_from_json
from app.hub.untrusted import UnsafeHubDataError


class Hub(StrEnum):
    """The hub a download job fetches from."""

    HF = "hf"
    CIVITAI = "civitai"
    MODELSCOPE = "modelscope"


@dataclass(frozen=True, kw_only=True)
class CivitaiSource:
    """One Civitai file into the models folder of its kind.

    The plan holds the file as Civitai lists it (name, approximate size, sha256); `url` is the
    version's download route, and `provenance` what is written beside the file.
    """

    endpoint: str
    folder: Path
    url: str
    provenance: CivitaiProvenance

    @property
    def hub(self) -> Hub:
        return Hub.CIVITAI


@dataclass(frozen=True, kw_only=True)
class ModelScopeSource:
    """Files of one ModelScope model into the `modelscope` SDK's cache under `root`.

    `file_revisions` is the commit ModelScope lists for each file of the plan, in order (the
    SDK's `.msc` index records it); `revision` is the branch the download URLs name.
    """

    endpoint: str
    root: Path
    revision: str
    file_revisions: tuple[str, ...]

    @property
    def hub(self) -> Hub:
        return Hub.MODELSCOPE


HubSource = CivitaiSource | ModelScopeSource


def source_to_json(source: HubSource) -> str:
    """The JSON text the queue saves for `source`."""
    if isinstance(source, CivitaiSource):
        return json.dumps(
            {
                "endpoint": source.endpoint,
                "folder": str(source.folder),
                "url": source.url,
                "provenance": source.provenance.to_json(),
            }
        )
    return json.dumps(
        {
            "endpoint": source.endpoint,
            "root": str(source.root),
            "revision": source.revision,
            "file_revisions": list(source.file_revisions),
        }
    )


def source_from_json(hub: Hub, text: str | None, *, about: str) -> HubSource | None:
    """The source saved for a job of `hub` (None for Hugging Face).

    Raises:
        UnsafeHubDataError: the saved text is missing or not a source of `hub`.
    """
    if hub is Hub.HF:
        return None
    try:
        data = json.loads(text or "")
        if not isinstance(data, dict):
            raise ValueError("not an object")
        if hub is Hub.CIVITAI:
            return CivitaiSource(
                endpoint=_text(data, "endpoint"),
                folder=_folder(data, "folder"),
                url=_text(data, "url"),
                provenance=provenance_from_json(data.get("provenance")),
            )
        revisions = data.get("file_revisions")
        if not isinstance(revisions, list) or not all(isinstance(r, str) for r in revisions):
            raise ValueError("file_revisions is not a list of text")
        return ModelScopeSource(
            endpoint=_text(data, "endpoint"),
            root=_folder(data, "root"),
            revision=_text(data, "revision"),
            file_revisions=tuple(revisions),
        )
    except (ValueError, TypeError, RecursionError) as exc:
        raise UnsafeHubDataError(
            f"{about}: the saved {hub.value} download cannot be read ({exc}).",
            repo_id=about,
            field="source",
            value=text,
        ) from exc


def _text(data: dict[str, object], key: str) -> str:
    value = data.get(key)
    if not isinstance(value, str) or not value:
        raise ValueError(f"{key} is not text")
    return value


def _folder(data: dict[str, object], key: str) -> Path:
    folder = Path(_text(data, key))
    if not folder.is_absolute():
        raise ValueError(f"{key} is not an absolute folder")
    return folder

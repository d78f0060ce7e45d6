""" "Identify": find which Civitai model version a local file is, by its sha256.

Civitai indexes every file by its hashes (`/model-versions/by-hash/{hash}` takes the sha256
or its AutoV2, the first 10 hex digits). The full sha256 is asked, so a file is never
mistaken for another one that shares its first 10 digits; the answer's own file list must
hold that sha256 too. The provenance is written beside the file (`<name>.civitai.info`).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path

from app.errors import HubError, RepoNotFoundError
from app.hub.civitai.client import CivitaiClient
from app.hub.civitai.licenses import license_id_of
from app.hub.civitai.provenance import CivitaiProvenance, write_sidecar

_CHUNK = 1 << 20


def file_sha256(path: Path, progress: Callable[[int], None] | None = None) -> str:
    """The sha256 of `path`, read in 1 MiB blocks (`progress` gets the bytes read so far)."""
    digest = hashlib.sha256()
    done = 0
    with open(path, "rb") as handle:
        while block := handle.read(_CHUNK):
            digest.update(block)
            done += len(block)
            if progress is not None:
                progress(done)
    return digest.hexdigest()


def autov2(sha256: str) -> str:
    """Civitai's AutoV2 of a file: the first 10 hex digits of its sha256 (upper case)."""
    return sha256[:10].upper()


def identify_file(
    path: Path,
    client: CivitaiClient,
    *,
    sha256: str | None = None,
    write: bool = True,
) -> CivitaiProvenance:
    """Look `path` up on Civitai by its sha256 and (with `write`) record the provenance.

    Args:
        path: a local model file (usually a .safetensors).
        client: the Civitai client.
        sha256: the file's sha256 when already known (the library keeps them).
        write: write `<name>.civitai.info` beside the file.

    Raises:
        RepoNotFoundError: Civitai knows no file with this hash (or answered with a version
            none of whose files has it).
        OSError: the file cannot be read.
        HubError: as the client raises.
    """
    digest = sha256 or file_sha256(path)
    version = client.version_by_hash(digest)
    if version.files and not any(file.sha256 == digest for file in version.files):
        raise RepoNotFoundError(
            f"Civitai answered for {path.name} with a version none of whose files has its sha256.",
            repo_id=f"hash {digest[:12]}",
        )
    provenance = CivitaiProvenance.of(
        version, sha256=digest, license_id=_license_of(client, version.model_id)
    )
    if write:
        write_sidecar(path, provenance)
    return provenance


def _license_of(client: CivitaiClient, model_id: int | None) -> str | None:
    """The model's permissions (the by-hash answer has none); None when it cannot be asked."""
    if model_id is None:
        return None
    try:
        return license_id_of(client.get_model(model_id).permissions)
    except HubError:  # the provenance stands without it
        return None

"""Where a downloaded file lives in the standard Hugging Face cache, and how it gets there.

    <cache>/models--{org}--{name}/
        blobs/{etag}                      the content, named by its sha256 (LFS) or git blob id
        blobs/{etag}.incomplete           a partial download: a stable name, found again after
                                          a crash and continued with an HTTP Range request
        snapshots/{sha}/{path}            -> ../../blobs/{etag} (a copy where symlinks fail)
        refs/{branch}                     the commit sha that branch pointed at
    <cache>/.locks/models--{org}--{name}/{etag}.lock

The layout and the lock path are huggingface_hub's own, so `hf_hub_download`, transformers,
diffusers and `scan_cache_dir` see these files as if they had fetched them, and a download
here and one by huggingface_hub in another process never write the same blob at once.
"""

from __future__ import annotations

import os
import uuid
from dataclasses import dataclass
from pathlib import Path

from huggingface_hub.file_download import _create_symlink, repo_folder_name

INCOMPLETE_SUFFIX = ".incomplete"


def repo_folder(cache_dir: Path, repo_id: str) -> Path:
    """`<cache>/models--{org}--{name}`."""
    return cache_dir / repo_folder_name(repo_id=repo_id, repo_type="model")


def snapshot_folder(cache_dir: Path, repo_id: str, revision: str) -> Path:
    """The folder that holds `repo_id`'s files at commit `revision`."""
    return repo_folder(cache_dir, repo_id) / "snapshots" / revision


@dataclass(frozen=True, slots=True)
class CachedFile:
    """The cache paths of one file of one repository at one commit."""

    cache_dir: Path
    repo_id: str
    revision: str  # commit sha
    path: str  # in the repository
    etag: str

    @property
    def blob(self) -> Path:
        return repo_folder(self.cache_dir, self.repo_id) / "blobs" / self.etag

    @property
    def partial(self) -> Path:
        return self.blob.with_name(self.etag + INCOMPLETE_SUFFIX)

    @property
    def pointer(self) -> Path:
        return snapshot_folder(self.cache_dir, self.repo_id, self.revision) / self.path

    @property
    def lock(self) -> Path:
        folder = repo_folder_name(repo_id=self.repo_id, repo_type="model")
        return self.cache_dir / ".locks" / folder / f"{self.etag}.lock"

    def is_complete(self) -> bool:
        """Whether the file is in the cache already (its snapshot entry, or at least its blob)."""
        return self.pointer.exists() or self.blob.exists()

    def partial_size(self) -> int:
        """Bytes of the partial download on disk (0 when there is none)."""
        try:
            return self.partial.stat().st_size
        except OSError:
            return 0

    def link(self, *, new_blob: bool) -> None:
        """Make the snapshot entry point at the blob (huggingface_hub's own way to do it).

        With `new_blob`, a platform without symlinks gets the blob moved into the snapshot
        (what huggingface_hub does for a file it just downloaded); otherwise it is copied.
        """
        if self.pointer.exists():
            return
        self.pointer.parent.mkdir(parents=True, exist_ok=True)
        _create_symlink(str(self.blob), str(self.pointer), new_blob=new_blob)


def write_ref(cache_dir: Path, repo_id: str, ref: str, revision: str) -> None:
    """Record that branch or tag `ref` points at commit `revision` (atomically)."""
    path = repo_folder(cache_dir, repo_id) / "refs" / ref
    try:
        if path.read_text() == revision:
            return
    except OSError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f"{path.name}.{uuid.uuid4().hex[:8]}.tmp")
    temporary.write_text(revision)
    os.replace(temporary, path)

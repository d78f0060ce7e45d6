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
import stat
import uuid
from dataclasses import dataclass
from pathlib import Path

from huggingface_hub.file_download import _create_symlink, repo_folder_name

from app.errors import DownloadError
from app.hub.untrusted import (
    UnsafeHubDataError,
    check_commit,
    check_file_path,
    check_git_oid,
    check_ref,
    check_repo_id,
    check_sha256,
)

INCOMPLETE_SUFFIX = ".incomplete"


class UnsafeCacheError(DownloadError, PermissionError):
    """A cache path a download would write leads elsewhere: a planted link, or not a file.

    The cache may be shared between users, so nothing is written through such a path.
    """


def repo_folder(cache_dir: Path, repo_id: str) -> Path:
    """`<cache>/models--{org}--{name}`.

    Raises:
        UnsafeHubDataError: `repo_id` is not an `org/name` that names one folder.
    """
    return cache_dir / repo_folder_name(repo_id=check_repo_id(repo_id), repo_type="model")


def snapshot_folder(cache_dir: Path, repo_id: str, revision: str) -> Path:
    """The folder that holds `repo_id`'s files at commit `revision`.

    Raises:
        UnsafeHubDataError: `repo_id` or `revision` (40 hex digits) is malformed.
    """
    return repo_folder(cache_dir, repo_id) / "snapshots" / check_commit(revision, repo_id=repo_id)


def check_etag(etag: object, *, repo_id: str = "") -> str:
    """A blob name: a sha256 (LFS files) or a git blob id, in lower case.

    Raises:
        UnsafeHubDataError: for anything else.
    """
    if isinstance(etag, str) and len(etag) == 64:
        return check_sha256(etag, repo_id=repo_id)
    return check_git_oid(etag, repo_id=repo_id)


@dataclass(frozen=True, slots=True)
class CachedFile:
    """The cache paths of one file of one repository at one commit.

    Every part is checked when it is made (`UnsafeHubDataError` for a name that could leave
    the repository's folder, or a hash that is not hex of its length), and every path is
    checked again before anything is written to it (`ensure_inside`).
    """

    cache_dir: Path
    repo_id: str
    revision: str  # commit sha
    path: str  # in the repository
    etag: str

    def __post_init__(self) -> None:
        repo_id = check_repo_id(self.repo_id)
        canonical = (
            check_commit(self.revision, repo_id=repo_id),
            check_file_path(self.path, repo_id=repo_id),
            check_etag(self.etag, repo_id=repo_id),
        )
        if canonical != (self.revision, self.path, self.etag):  # upper-case hex
            raise UnsafeHubDataError(
                f"{repo_id}: a commit id or blob name in upper case; plans use lower case.",
                repo_id=repo_id,
                field="hash",
                value=(self.revision, self.etag),
            )

    @property
    def folder(self) -> Path:
        """The repository's folder in the cache."""
        return repo_folder(self.cache_dir, self.repo_id)

    @property
    def blob(self) -> Path:
        return self.folder / "blobs" / self.etag

    @property
    def partial(self) -> Path:
        return self.blob.with_name(self.etag + INCOMPLETE_SUFFIX)

    @property
    def pointer(self) -> Path:
        return self.folder / "snapshots" / self.revision / self.path

    @property
    def lock(self) -> Path:
        folder = repo_folder_name(repo_id=self.repo_id, repo_type="model")
        return self.cache_dir / ".locks" / folder / f"{self.etag}.lock"

    def is_complete(self) -> bool:
        """Whether the file is in the cache already (its snapshot entry, or at least its blob).

        Only what huggingface_hub itself would have written counts: a blob that is a regular
        file, and a snapshot entry that is a link to that blob (or a copy, where links fail).
        A link planted elsewhere does not make a file complete; the download replaces it.
        """
        return self._pointer_is_ours() or _is_regular_file(self.blob)

    def partial_size(self) -> int:
        """Bytes of the partial download on disk (0 when there is none, or it is no file)."""
        try:
            info = os.lstat(self.partial)
        except OSError:
            return 0
        return info.st_size if stat.S_ISREG(info.st_mode) else 0

    def ensure_inside(self, path: Path) -> None:
        """Check that writing `path` stays inside the repository's folder.

        Both as written (no `..` can leave it) and as resolved on disk (no planted link on the
        way out of it: a folder of the repository, like `blobs/` or `snapshots/{sha}`, that is
        a link elsewhere). The repository folder itself may be a link (a cache spread over
        disks); what is below it must not leave it.

        Raises:
            UnsafeCacheError: when it would not.
        """
        ensure_inside(self.folder, path)

    def link(self, *, new_blob: bool) -> None:
        """Make the snapshot entry point at the blob (huggingface_hub's own way to do it).

        With `new_blob`, a platform without symlinks gets the blob moved into the snapshot
        (what huggingface_hub does for a file it just downloaded); otherwise it is copied.

        Raises:
            UnsafeCacheError: the snapshot entry would be written outside the repository folder.
        """
        if self._pointer_is_ours():
            return
        self.ensure_inside(self.pointer)
        self.pointer.parent.mkdir(parents=True, exist_ok=True)
        self.ensure_inside(self.pointer)  # a link planted while the folders were made
        _create_symlink(str(self.blob), str(self.pointer), new_blob=new_blob)

    def _pointer_is_ours(self) -> bool:
        try:
            info = os.lstat(self.pointer)
        except OSError:
            return False
        if stat.S_ISLNK(info.st_mode):
            target = os.path.realpath(self.pointer)
            return target == os.path.realpath(self.blob) and _is_regular_file(Path(target))
        return stat.S_ISREG(info.st_mode)


def ensure_inside(folder: Path, path: Path) -> None:
    """Raise `UnsafeCacheError` unless `path` lies below `folder`, as written and on disk."""
    base = os.path.abspath(folder)
    written = os.path.abspath(path)
    resolved_base = os.path.realpath(folder)
    resolved = os.path.join(os.path.realpath(os.path.dirname(written)), os.path.basename(written))
    if not (_below(base, written) and _below(resolved_base, resolved)):
        raise UnsafeCacheError(
            f"Refusing to write {path}: it leads outside {folder} (a link planted in the cache?).",
            hint="Remove that link or folder from the cache, then retry.",
        )


def write_ref(cache_dir: Path, repo_id: str, ref: str, revision: str) -> None:
    """Record that branch or tag `ref` points at commit `revision` (atomically).

    Raises:
        UnsafeHubDataError: `repo_id`, `ref` or `revision` is malformed.
        UnsafeCacheError: the ref file would be written outside the repository folder.
    """
    folder = repo_folder(cache_dir, repo_id)
    path = folder / "refs" / check_ref(ref, repo_id=repo_id)
    revision = check_commit(revision, repo_id=repo_id)
    ensure_inside(folder, path)
    try:
        if _is_regular_file(path) and path.read_text() == revision:
            return
    except OSError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True)
    ensure_inside(folder, path)
    temporary = path.with_name(f"{path.name}.{uuid.uuid4().hex[:8]}.tmp")
    # O_EXCL: a fresh file, never one planted under this name (the name is random anyway).
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)
    fd = os.open(temporary, flags, 0o666)  # the umask applies, as for any new file
    with os.fdopen(fd, "w") as handle:
        handle.write(revision)
    os.replace(temporary, path)  # replaces a link planted at `path`, never writes through it


def _below(base: str, path: str) -> bool:
    try:
        return os.path.commonpath([base, path]) == base and path != base
    except ValueError:  # on Windows, another drive
        return False


def _is_regular_file(path: Path) -> bool:
    try:
        return stat.S_ISREG(os.lstat(path).st_mode)
    except OSError:
        return False

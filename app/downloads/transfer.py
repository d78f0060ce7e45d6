"""Fetch one file into the HF cache: resume from the bytes on disk, retry, verify, publish.

The bytes go to `blobs/{etag}.incomplete`, a name that does not change between runs, so a
new process (after a crash, a kill -9, a reboot) continues with `Range: bytes=<size>-`.
The hash is computed while the bytes arrive (after re-reading the partial once on resume), so
a finished file is never read twice. Only a file whose sha256 (LFS) or git blob id matches is
moved into `blobs/` and linked from `snapshots/`.

HTTP goes through huggingface_hub's shared client (`get_session`, `hf_hub_url`,
`build_hf_headers`, `hf_raise_for_status`), but the streaming loop is ours rather than
`file_download.http_get`: http_get reads 10 MiB at a time (progress, pause and kill -9 would
lose up to 10 MiB), takes its stall timeout from a process-wide constant, and sleeps between
its own retries where a pause cannot interrupt it.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import io
import os
import queue
import re
import stat
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol
from urllib.parse import urlsplit

import httpcore2
import httpx2
from filelock import FileLock, Timeout
from huggingface_hub import errors as hf_errors
from huggingface_hub import get_session, hf_hub_url, hf_raise_for_status

# The documented home of build_hf_headers; its lazy __init__ hides the name from mypy.
from huggingface_hub.utils import build_hf_headers  # type: ignore[attr-defined]

from app import __version__
from app.downloads.cache import UnsafeCacheError, ensure_inside
from app.downloads.plan import PlannedFile
from app.errors import (
    AppError,
    DiskFullError,
    DownloadError,
    GatedRepoError,
    HubResponseError,
    HubUnreachableError,
    IntegrityError,
    RateLimitedError,
    RepoFileNotFoundError,
    RepoNotFoundError,
)
from app.hub.credentials import redact
from app.hub.untrusted import UnsafeHubDataError, shown
from app.text import first_line
from app.units import format_bytes

FREE_SPACE_RESERVE = 32 << 20
"""Bytes left free on the disk after a download, so that the system and other apps can breathe."""

_HASH_BLOCK = 1 << 20
_SOCKET_READ = 1 << 20  # bytes asked of the socket at a time; see _widen_socket_reads
_MAX_REDIRECTS = 5  # the hub to its CDN is one; httpx's own default is 20
_GIT_SHA1 = re.compile(r"[0-9a-f]{40}")
_CONTENT_RANGE = re.compile(r"bytes\s+(\d+)-\d+/(\d+|\*)")
# Opening a partial file: never through a link (O_NOFOLLOW), never blocking on a FIFO planted
# in its place (O_NONBLOCK), binary on Windows. Flags a platform lacks are 0.
_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_OPEN_FLAGS = _NOFOLLOW | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0)
_OPEN_FLAGS |= getattr(os, "O_CLOEXEC", 0)
# errno of an open refused because of what the path is: a link (ELOOP; EMLINK on BSDs),
# a FIFO without a reader (ENXIO), a folder (EISDIR).
_NOT_A_FILE = {errno.ELOOP, errno.EMLINK, errno.ENXIO, errno.EISDIR}


def _widen_socket_reads() -> None:
    """Let HTTP/1.1 answers be read from the socket 1 MiB at a time rather than 64 KiB.

    httpcore (under huggingface_hub's shared httpx client) asks the socket for at most
    `HTTP11Connection.READ_NUM_BYTES` per read, and every read then passes h11's parser, a
    generator per layer, a copy and a queue hand-off to the hashing thread. At 64 KiB that
    per-read cost held a 1 GiB loopback download to ~0.5-0.77x curl; at 1 MiB, with
    `iter_raw`, to ~0.9x (README, Benchmarks). The value is process-wide, for the one
    client all hub traffic shares: a read still returns as soon as any bytes are there (so
    stall timeouts and small answers are unchanged), it only allows bigger ones.
    """
    connection = getattr(httpcore2, "HTTP11Connection", None)
    current = getattr(connection, "READ_NUM_BYTES", None)
    if connection is not None and isinstance(current, int) and current < _SOCKET_READ:
        connection.READ_NUM_BYTES = _SOCKET_READ


_widen_socket_reads()


@dataclass(frozen=True, kw_only=True)
class RetryPolicy:
    """How hard a transfer tries before it gives up.

    A failed attempt (dropped connection, stall, 5xx, 429) is followed by a wait of
    `delays[n]` seconds (the last one repeats); a 429's Retry-After is honoured instead, up to
    `max_retry_after`. Any new byte resets the count, so a connection that keeps dropping but
    makes progress is followed to the end; `attempts` failures in a row without a byte end it.
    No byte for `stall_seconds` counts as a failure (the connection is dropped and reopened).
    """

    delays: tuple[float, ...] = (1.0, 2.0, 4.0, 8.0)
    attempts: int = 6
    stall_seconds: float = 30.0
    max_retry_after: float = 300.0

    def delay(self, failures: int) -> float:
        """Seconds to wait after the `failures`-th failure in a row (1-based)."""
        return self.delays[min(failures, len(self.delays)) - 1] if self.delays else 0.0


class StopRequested(Exception):
    """A transfer was asked to stop (pause, cancel, shutdown); its partial file is kept."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class StopSignal:
    """Tells a running transfer to stop, and interrupts its waits between retries."""

    def __init__(self) -> None:
        self._event = threading.Event()
        self.reason = ""

    def request(self, reason: str) -> None:
        """Ask the transfer to stop at its next chunk or wait; the first reason wins."""
        if not self._event.is_set():
            self.reason = reason
            self._event.set()

    @property
    def requested(self) -> bool:
        return self._event.is_set()

    def check(self) -> None:
        """Raise `StopRequested` if a stop was asked for."""
        if self._event.is_set():
            raise StopRequested(self.reason)

    def wait(self, seconds: float) -> None:
        """Sleep `seconds`, or raise `StopRequested` as soon as a stop is asked for."""
        if self._event.wait(max(0.0, seconds)):
            raise StopRequested(self.reason)


class FileBusyError(DownloadError):
    """Another process (or job) is downloading the same blob right now; try again later."""


class OversizeError(IntegrityError):
    """The hub sent more bytes than the file's declared size; the partial file is deleted."""


class TransferTarget(Protocol):
    """Where a download's bytes go: `CachedFile` (the HF cache) or another hub's own layout.

    The partial file has a stable name (so a new process resumes it), `blob` is the verified
    file, and `link` puts it where the hub's tools look for it.
    """

    @property
    def cache_dir(self) -> Path: ...
    @property
    def repo_id(self) -> str: ...
    @property
    def revision(self) -> str: ...
    @property
    def blob(self) -> Path: ...
    @property
    def partial(self) -> Path: ...
    @property
    def lock(self) -> Path: ...
    def is_complete(self) -> bool: ...
    def partial_size(self) -> int: ...
    def ensure_inside(self, path: Path) -> None: ...
    def link(self, *, new_blob: bool) -> None: ...


def fetch_file(
    target: TransferTarget,
    file: PlannedFile,
    *,
    endpoint: str,
    token: str | None,
    policy: RetryPolicy,
    stop: StopSignal,
    on_progress: Callable[[int], None],
    url: str | None = None,
) -> None:
    """Put `file` into the cache at `target`, downloading only the bytes that are missing.

    Args:
        target: where the file goes (repository, commit, blob name).
        file: its size and hashes.
        endpoint: the hub to download from.
        url: the file's download URL, for a hub whose URLs are not Hugging Face's
            (None: `hf_hub_url` on `endpoint`).
        token: sent to the hub only (never to the CDN it redirects to); None: anonymous.
        policy: retries and the stall timeout.
        stop: checked between chunks and during waits.
        on_progress: called with the bytes of this file on disk, after every chunk.

    Raises:
        StopRequested: the stop signal was raised; the partial file is kept.
        FileBusyError: another download (this process or another) holds the blob's lock.
        DiskFullError: the disk filled up while writing; the partial file is kept.
        IntegrityError: the bytes did not match the published hash twice in a row.
        GatedRepoError, RepoNotFoundError, RepoFileNotFoundError: the hub refused the file.
        OversizeError: the hub sent more than `file.size` bytes; nothing was kept.
        UnsafeCacheError: a link or a non-file is planted where the file would be written.
        UnsafeHubDataError: the hub answered with another commit or LFS sha256 than planned.
        HubUnreachableError: the hub could not be reached, `policy.attempts` times in a row.
        HubResponseError: the hub kept answering with an error.
    """
    if target.is_complete():
        target.link(new_blob=False)
        on_progress(file.size)
        return
    target.ensure_inside(target.partial)
    target.blob.parent.mkdir(parents=True, exist_ok=True)
    target.ensure_inside(target.partial)  # a link planted while the folders were made
    lock = _lock_blob(target)
    if lock is None:
        raise FileBusyError(
            f"{file.path} of {target.repo_id} is being downloaded by another job or program.",
            hint="This one continues when that download ends.",
        )
    try:
        if target.is_complete():  # the other process finished it while we waited
            target.link(new_blob=False)
            on_progress(file.size)
            return
        session = _Transfer(
            target,
            file,
            endpoint=endpoint,
            token=token,
            policy=policy,
            stop=stop,
            on_progress=on_progress,
            url=url,
        )
        if not _download_verified(session):
            target.partial.unlink(missing_ok=True)
            on_progress(0)
            if not _download_verified(session):  # once more, from zero
                target.partial.unlink(missing_ok=True)
                on_progress(0)
                raise IntegrityError(
                    f"{file.path} of {target.repo_id}: sha256 mismatch twice; "
                    "the file on the hub or the connection is corrupt.",
                    hint="Nothing was kept. Try again later or from another network.",
                )
        os.replace(target.partial, target.blob)
        target.link(new_blob=True)
    finally:
        lock.release()


def _download_verified(session: _Transfer) -> bool:
    """`session.download_verified()`; bytes beyond the declared size leave no partial file."""
    try:
        return session.download_verified()
    except OversizeError:
        session.target.partial.unlink(missing_ok=True)
        session.on_progress(0)
        raise


def discard_partial(target: TransferTarget) -> bool:
    """Delete the partial file of `target`, unless a download is writing it right now."""
    lock = _lock_blob(target)
    if lock is None:
        return False
    try:
        target.partial.unlink(missing_ok=True)
    finally:
        lock.release()
    return True


class _NoLock:
    def release(self) -> None:
        pass


def _lock_blob(target: TransferTarget) -> FileLock | _NoLock | None:
    """Take the blob's lock (huggingface_hub's own lock file) without waiting; None if taken.

    Raises:
        UnsafeCacheError: the lock's folder is a link that leads out of the cache's `.locks`.
    """
    locks = target.cache_dir / ".locks"
    ensure_inside(locks, target.lock)
    target.lock.parent.mkdir(parents=True, exist_ok=True)
    ensure_inside(locks, target.lock)
    lock = FileLock(target.lock, timeout=0, mode=0o664)
    try:
        lock.acquire()
    except Timeout:
        return None
    except NotImplementedError:  # no flock on this file system (some network mounts)
        return _NoLock()  # a clash then costs a failed hash check and a second download
    return lock


def check_free_space(directory: Path, needed: int, free_space: Callable[[Path], int]) -> None:
    """Raise `DiskFullError` unless `directory`'s disk has `needed` bytes (and a reserve) free."""
    if needed <= 0:
        return
    free = free_space(directory)
    if free < needed + FREE_SPACE_RESERVE:
        raise DiskFullError(
            f"Not enough free space in {directory}: the download needs {format_bytes(needed)} "
            f"more, and {format_bytes(free)} is free.",
            hint="Free some space or choose another cache folder in Settings, then retry.",
        )


def _open_partial(path: Path) -> io.FileIO:
    """Open (or create) a partial file to append to, refusing anything but a file of its own.

    Raises:
        UnsafeCacheError: `path` is a link, a folder, a FIFO or a device, or a hard link to a
            file elsewhere: the cache may be shared, and its bytes must not land there.
    """
    # Unbuffered: what arrived is on disk at once, so a kill -9 loses nothing that was received.
    return io.FileIO(_open_regular(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND), "ab")


def _read_partial(path: Path) -> io.FileIO | None:
    """Open an existing partial file to read it, on the same terms; None if there is none."""
    try:
        return io.FileIO(_open_regular(path, os.O_RDONLY), "rb")
    except FileNotFoundError:
        return None


def _open_regular(path: Path, flags: int) -> int:
    """A descriptor for `path`, opened without following a link, if it is a regular file."""
    if not _NOFOLLOW:  # Windows: no O_NOFOLLOW, so look at the name itself first
        try:
            if not stat.S_ISREG(os.lstat(path).st_mode):
                raise _not_a_file(path)
        except FileNotFoundError:
            pass
    try:
        fd = os.open(path, flags | _OPEN_FLAGS, 0o644)
    except OSError as exc:
        if exc.errno in _NOT_A_FILE:
            raise _not_a_file(path) from exc
        raise
    info = os.fstat(fd)
    # More than one name: a hard link to a file outside the download (st_nlink is 0 or 1 on
    # file systems that do not count links).
    if not stat.S_ISREG(info.st_mode) or info.st_nlink > 1:
        os.close(fd)
        raise _not_a_file(path)
    return fd


def _not_a_file(path: Path) -> UnsafeCacheError:
    return UnsafeCacheError(
        f"Refusing to write {path}: it is a link or not a plain file (planted in the cache?).",
        hint="Remove it, then retry; nothing was written through it.",
    )


class _Retry(Exception):
    """A failed attempt worth repeating; `error` is what to raise when attempts run out."""

    def __init__(self, error: AppError, wait: float | None = None) -> None:
        super().__init__(str(error))
        self.error = error
        self.wait = wait


class _Digest:
    """The hash that names the file: sha256 for LFS files, git's blob sha1 for others.

    The hashing runs on a helper thread fed through a queue. hashlib releases the GIL for
    large buffers, so it overlaps the download; hashing in line on the download thread held
    throughput to ~0.57x curl on loopback (benchmarks/downloads.py). The download waits only
    when more than `_MAX_PENDING` chunks are still unhashed, which bounds the memory used.
    Call `close()` when done with it, whatever happened.
    """

    _MAX_PENDING = 32  # chunks of at most 1 MiB (_SOCKET_READ, _HASH_BLOCK): <= 32 MiB

    def __init__(self, file: PlannedFile) -> None:
        self._file = file
        self._queue: queue.SimpleQueue[bytes | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self.reset()

    def reset(self) -> None:
        """Start over from zero bytes."""
        self.close()
        file = self._file
        self.expected: str | None
        if file.sha256:
            self._hash = hashlib.sha256()
            self.expected = file.sha256.lower()
        else:
            self._hash = hashlib.sha1(usedforsecurity=False)
            self._hash.update(b"blob %d\0" % file.size)
            self.expected = file.etag.lower() if _GIT_SHA1.fullmatch(file.etag.lower()) else None
        self._thread = threading.Thread(
            target=self._hash_queued, name="modeldeck-hash", daemon=True
        )
        self._thread.start()

    def update(self, data: bytes) -> None:
        self._queue.put(data)
        if self._queue.qsize() > self._MAX_PENDING:  # hashing is behind: let it catch up
            while self._queue.qsize() > self._MAX_PENDING // 2:
                time.sleep(0.001)

    def matches(self) -> bool:
        """Whether the bytes given so far have the expected hash (waits for the hashing)."""
        self.close()
        return self.expected is None or self._hash.hexdigest() == self.expected

    def close(self) -> None:
        """Finish hashing what was queued and end the helper thread."""
        if self._thread is not None:
            self._queue.put(None)
            self._thread.join()
            self._thread = None

    def _hash_queued(self) -> None:
        while (chunk := self._queue.get()) is not None:
            self._hash.update(chunk)


class _Transfer:
    """One file's bytes: resume, stream with retries, and report whether the hash matched."""

    def __init__(
        self,
        target: TransferTarget,
        file: PlannedFile,
        *,
        endpoint: str,
        token: str | None,
        policy: RetryPolicy,
        stop: StopSignal,
        on_progress: Callable[[int], None],
        url: str | None = None,
    ) -> None:
        self.target = target
        self.file = file
        self.endpoint = endpoint.rstrip("/")
        self.token = token
        self.policy = policy
        self.stop = stop
        self.on_progress = on_progress
        self.url = url or hf_hub_url(
            target.repo_id, file.path, revision=target.revision, endpoint=endpoint
        )
        self.headers = build_hf_headers(
            token=token or False, library_name="modeldeck", library_version=__version__
        )
        # Raw bytes: a compressed body would make Range offsets and sizes meaningless.
        self.headers["Accept-Encoding"] = "identity"
        self.timeout = httpx2.Timeout(policy.stall_seconds)
        self.offset = 0  # bytes of the file on disk, all of them hashed

    def download_verified(self) -> bool:
        """Complete the partial file; True if its size and hash are right."""
        digest = _Digest(self.file)
        try:
            self.offset = self._resume(digest)
            failures = 0
            with _open_partial(self.target.partial) as handle:
                while self.offset < self.file.size:
                    self.stop.check()
                    before = self.offset
                    try:
                        self._stream(handle, digest)
                    except _Retry as retry:
                        failures = 0 if self.offset > before else failures
                        failures += 1
                        if failures >= self.policy.attempts:
                            raise retry.error from retry.__cause__
                        delay = self.policy.delay(failures)
                        self.stop.wait(retry.wait if retry.wait is not None else delay)
            return self.offset == self.file.size and digest.matches()
        finally:
            digest.close()

    def _resume(self, digest: _Digest) -> int:
        """Hash the bytes already on disk; returns how many there are.

        Raises:
            UnsafeCacheError: the partial file is a link or not a plain file.
        """
        partial = self.target.partial
        size = 0
        handle = _read_partial(partial)
        if handle is not None:
            with handle:
                on_disk = os.fstat(handle.fileno()).st_size
                # Larger than the file: not a prefix of it, start again (deleted below).
                while on_disk <= self.file.size and (block := handle.read(_HASH_BLOCK)):
                    digest.update(block)
                    size += len(block)
                    self.stop.check()
            if on_disk > self.file.size:
                partial.unlink(missing_ok=True)
                size = 0
        self.on_progress(size)
        return size

    def _stream(self, handle: io.FileIO, digest: _Digest) -> None:
        """One GET from `self.offset` to the end. Raises `_Retry` or a final error."""
        headers = dict(self.headers)
        if self.offset:
            headers["Range"] = f"bytes={self.offset}-"
        try:
            with self._answer(headers) as response:
                status = response.status_code
                if status >= 400 and status != 416:
                    response.read()
                    hf_raise_for_status(response)
                if self.offset and not self._range_honoured(response):
                    # The server does not continue where we are: start the file again.
                    self._restart(handle, digest)
                    if status != 200:  # a 200 carries the whole file: take it
                        raise _Retry(self._response_error(status), wait=0)
                self._check_length(response)
                for chunk in _body(response):
                    if self.offset + len(chunk) > self.file.size:
                        # Never past the declared size: the free-space check counted on it.
                        raise self._oversize()
                    self._write(handle, chunk)
                    digest.update(chunk)
                    self.offset += len(chunk)
                    self.on_progress(self.offset)  # cheap: see DownloadManager._progress
                    self.stop.check()
        except (_Retry, StopRequested, AppError):
            raise
        except Exception as exc:
            raise self._classify(exc) from exc
        if self.offset < self.file.size:
            raise _Retry(self._unreachable("the connection ended early"))

    @contextlib.contextmanager
    def _answer(self, headers: dict[str, str]) -> Iterator[httpx2.Response]:
        """The streamed answer to a GET of the file, its redirects followed one by one.

        Each answer is checked before the next request (`_check_answer`), so a hub that
        answers about another commit or file is refused before any byte is fetched. httpx
        builds each next request, and drops the token when it leaves the hub's origin.
        """
        session = get_session()
        with contextlib.ExitStack() as responses:
            response = responses.enter_context(
                session.stream(
                    "GET", self.url, headers=headers, timeout=self.timeout, follow_redirects=False
                )
            )
            for _ in range(_MAX_REDIRECTS):
                self._check_answer(response)
                following = response.next_request
                if following is None:
                    yield response
                    return
                response.close()
                response = session.send(following, stream=True, follow_redirects=False)
                responses.callback(response.close)
            raise HubResponseError(
                f"The hub redirected {self.file.path} of {self.target.repo_id} more than "
                f"{_MAX_REDIRECTS} times.",
                status=response.status_code,
            )

    def _check_answer(self, response: httpx2.Response) -> None:
        """Refuse an answer about another commit or another LFS file than the plan's.

        The hub (not the CDN it redirects to) says which commit it resolved
        (`X-Repo-Commit`) and which LFS object it sends (`X-Linked-Etag`); both were fixed when
        the download was planned.
        """
        commit = response.headers.get("X-Repo-Commit")
        if commit is not None and commit.strip().lower() != self.target.revision:
            raise self._mismatch("commit", commit.strip())
        linked = response.headers.get("X-Linked-Etag")
        sha256 = self.file.sha256
        if linked is not None and sha256 is not None and _normalize_etag(linked) != sha256:
            raise self._mismatch("LFS sha256", _normalize_etag(linked))

    def _check_length(self, response: httpx2.Response) -> None:
        """Refuse a body longer than the bytes still missing, before reading any of it."""
        length = response.headers.get("Content-Length", "")
        if length.strip().isdigit() and int(length) > self.file.size - self.offset:
            raise self._oversize(int(length) + self.offset)

    def _mismatch(self, what: str, value: str) -> UnsafeHubDataError:
        repo_id, path = self.target.repo_id, self.file.path
        planned = self.target.revision if what == "commit" else self.file.sha256
        return UnsafeHubDataError(
            f"{repo_id}: the hub answered for {path} with {what} {shown(value)}, "
            f"not the planned {str(planned)[:12]}.",
            repo_id=repo_id,
            field=what,
            value=value,
        )

    def _oversize(self, sent: int | None = None) -> OversizeError:
        size = format_bytes(self.file.size)
        sent_text = (
            f"{format_bytes(sent)} for a file of {size}"
            if sent is not None
            else f"more than the {size} of the file"
        )
        return OversizeError(
            f"{self.file.path} of {self.target.repo_id}: the hub sent {sent_text}; "
            "the download stopped there.",
            hint="Nothing was kept. The repository or the hub is broken or hostile.",
        )

    def _range_honoured(self, response: httpx2.Response) -> bool:
        if response.status_code != 206:
            return False  # a full 200 answer to a Range request, or 416
        match = _CONTENT_RANGE.match(response.headers.get("Content-Range", ""))
        return match is not None and int(match.group(1)) == self.offset

    def _restart(self, handle: io.FileIO, digest: _Digest) -> None:
        handle.truncate(0)
        digest.reset()
        self.offset = 0
        self.on_progress(0)

    def _write(self, handle: io.FileIO, data: bytes) -> None:
        view = memoryview(data)
        while view:
            try:
                written = handle.write(view)
            except OSError as exc:
                if exc.errno == errno.ENOSPC:
                    raise DiskFullError(
                        f"The disk is full: {self.file.path} of {self.target.repo_id} stopped "
                        f"at {format_bytes(self.target.partial_size())} of "
                        f"{format_bytes(self.file.size)}.",
                        hint="Free some space, then retry: the download continues from there.",
                    ) from exc
                raise DownloadError(
                    f"Cannot write {self.target.partial}: {exc.strerror or exc}."
                ) from exc
            view = view[written or 0 :]

    def _classify(self, exc: Exception) -> Exception:
        """Turn what the HTTP client raised into `_Retry` or a final `AppError`."""
        detail = redact(first_line(exc), self.token)
        repo_id, path = self.target.repo_id, self.file.path
        if isinstance(exc, hf_errors.OfflineModeIsEnabled):
            return HubUnreachableError(f"Offline mode is on (HF_HUB_OFFLINE); cannot fetch {path}.")
        if isinstance(exc, httpx2.TimeoutException):
            stalled = f"no data for {self.policy.stall_seconds:g} s"
            return _Retry(self._unreachable(stalled))
        if isinstance(exc, httpx2.TransportError):
            return _Retry(self._unreachable(detail))
        if isinstance(exc, hf_errors.GatedRepoError):
            url = f"{self.endpoint}/{repo_id}"
            return GatedRepoError(
                f"{repo_id} is gated: its terms must be accepted on the hub.",
                repo_id=repo_id,
                url=url,
                hint=f"Accept them at {url}"
                + ("" if self.token else ", then add your token in Settings."),
            )
        if isinstance(exc, hf_errors.RemoteEntryNotFoundError):
            return RepoFileNotFoundError(
                f"{repo_id} has no file {path} at {self.target.revision[:12]}.",
                repo_id=repo_id,
                path=path,
            )
        if isinstance(exc, hf_errors.RepositoryNotFoundError | hf_errors.RevisionNotFoundError):
            return RepoNotFoundError(
                f"No repository {repo_id} (at {self.target.revision[:12]}) on {self.endpoint}.",
                repo_id=repo_id,
                hint=None if self.token else "If it is private, add a token in Settings.",
            )
        if isinstance(exc, hf_errors.HfHubHTTPError) and exc.response is not None:
            status = exc.response.status_code
            if status == 429:
                retry_after = _retry_after(exc.response)
                wait = (
                    None if retry_after is None else min(retry_after, self.policy.max_retry_after)
                )
                limited = RateLimitedError(
                    "The hub is rate-limiting downloads.", retry_after=retry_after
                )
                return _Retry(limited, wait=wait)
            error = self._response_error(status, detail)
            return _Retry(error) if status >= 500 or status == 408 else error
        if isinstance(exc, OSError):
            return DownloadError(f"Cannot download {path} of {repo_id}: {detail}")
        return DownloadError(f"Unexpected error downloading {path} of {repo_id}: {detail}")

    def _unreachable(self, detail: str) -> HubUnreachableError:
        host = urlsplit(self.endpoint).netloc or self.endpoint
        return HubUnreachableError(
            f"Cannot reach {host} to download {self.file.path} ({detail}).",
            hint="Check the network; the download continues from where it stopped.",
        )

    def _response_error(self, status: int, detail: str = "") -> HubResponseError:
        text = f": {detail}" if detail else ""
        return HubResponseError(
            f"The hub answered {status} for {self.file.path} of {self.target.repo_id}{text}",
            status=status,
        )


def _body(response: httpx2.Response) -> Iterator[bytes]:
    """The body as it arrives: raw, without httpx's decoding layer, unless it is encoded.

    The request asks for `identity`; a server that compresses anyway is decoded as before.
    """
    encoding = response.headers.get("Content-Encoding", "").strip().lower()
    return response.iter_raw() if encoding in ("", "identity") else response.iter_bytes()


def _normalize_etag(value: str) -> str:
    """An ETag without its weak marker and quotes, in lower case (as huggingface_hub reads it)."""
    return value.strip().removeprefix("W/").strip('"').lower()


def _retry_after(response: httpx2.Response) -> float | None:
    try:
        return max(0.0, float(response.headers.get("Retry-After", "")))
    except ValueError:
        return None

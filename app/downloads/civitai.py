"""Civitai files into the models folder: resumed, retried, verified by sha256, never twice.

A Civitai file has no place in the HF cache (no repository, no commit), so it goes to the
models folder of its kind (`CivitaiSettings.folder_for`). The transfer keeps the queue's
guarantees (`app.downloads.transfer`): the bytes go to a partial file whose name does not
change between runs (`.<sha256>.incomplete` in the target folder), so a new process after a
crash or kill -9 continues it with a Range request; the partial is opened without following
links (`_open_partial`); progress is reported per chunk and a `StopSignal` pauses it; only a
file whose sha256 is the one Civitai lists is moved into place, under the name Civitai gives
in `Content-Disposition` (checked like any hub file name), with its provenance beside it
(`<name>.civitai.info`). A download runs as a job of the app's queue: `plan_civitai_download`
chooses the file, `CivitaiDownload.job_plan` makes the queue's plan, and the queue fetches it
through `CivitaiTarget` (`app.downloads.placement`).

Refused before any byte: a pickle (`PickleTensor`: loading it can run code; ModelDeck loads
safetensors only), a file without a sha256 (it could not be verified), and a file the scans
flag as dangerous unless the caller allows it.
"""

from __future__ import annotations

import glob
import hashlib
import os
import re
import stat
from collections.abc import Callable
from dataclasses import dataclass
from email.message import Message
from io import FileIO
from pathlib import Path
from urllib.parse import unquote, urlencode, urlsplit

import httpx2
from filelock import FileLock, Timeout

from app.downloads.cache import ensure_inside
from app.downloads.plan import DownloadPlan, PlannedFile
from app.downloads.sources import CivitaiSource
from app.downloads.transfer import (
    FileBusyError,
    RetryPolicy,
    StopRequested,
    StopSignal,
    _Digest,  # the threaded sha256 of the HF transfer
    _open_partial,  # the hardened opener of partial files, shared with the HF transfer
    check_free_space,
)
from app.errors import (
    AppError,
    DownloadError,
    HubResponseError,
    HubUnreachableError,
    IntegrityError,
    RateLimitedError,
)
from app.hub.civitai.client import CivitaiClient, civitai_id, error_for_status
from app.hub.civitai.licenses import license_id_of
from app.hub.civitai.models import CivitaiFile, CivitaiModel, CivitaiVersion, FileFormat
from app.hub.civitai.provenance import (
    SIDECAR_SUFFIX,
    CivitaiProvenance,
    read_sidecar,
    write_sidecar,
)
from app.hub.civitai.provider import file_scan
from app.hub.civitai.settings import CivitaiSettings, FolderKind
from app.hub.credentials import redact
from app.hub.untrusted import UnsafeHubDataError, check_file_path
from app.text import first_line
from app.units import format_bytes

_CHUNK = 1 << 20
_MAX_REDIRECTS = 5
_ERROR_BODY = 64 << 10
_SIZE_SLACK = 1 << 20  # sizeKB is rounded: allow this much (or 1%) beyond it


class PickleRefusedError(DownloadError, PermissionError):
    """The file is a pickle (PickleTensor); ModelDeck does not download or load pickles."""


class FlaggedFileError(DownloadError, PermissionError):
    """Civitai's scans flagged the file as dangerous; `allow_flagged` overrides."""


@dataclass(frozen=True, kw_only=True)
class CivitaiDownload:
    """One Civitai file to fetch, and where it goes."""

    model: CivitaiModel
    version: CivitaiVersion
    file: CivitaiFile
    sha256: str
    folder: Path
    url: str

    @property
    def label(self) -> str:
        return f"{civitai_id(self.model.id, self.version.id)} {self.file.name}"

    @property
    def provenance(self) -> CivitaiProvenance:
        return CivitaiProvenance(
            model_id=self.model.id,
            version_id=self.version.id,
            model_name=self.model.name,
            version_name=self.version.name,
            model_type=self.model.type,
            base_model=self.version.base_model,
            trained_words=self.version.trained_words,
            sha256=self.sha256,
            nsfw=self.model.nsfw,
            license_id=license_id_of(self.model.permissions),
        )

    @property
    def partial(self) -> Path:
        return self.target.partial

    @property
    def target(self) -> CivitaiTarget:
        return CivitaiTarget(
            label=self.label,
            file_name=self.file.name,
            size=self.file.size_bytes,
            sha256=self.sha256,
            folder=self.folder,
            url=self.url,
            provenance=self.provenance,
        )

    def job_plan(self, *, endpoint: str) -> DownloadPlan:
        """The download queue's plan of this file (`endpoint`: Civitai's)."""
        sha256 = self.sha256
        return DownloadPlan(
            repo_id=civitai_id(self.model.id, self.version.id),
            revision=str(self.version.id),
            label=self.file.name,
            files=(
                PlannedFile(
                    path=self.file.name,
                    size=self.file.size_bytes or 0,
                    sha256=sha256,
                    etag=sha256,
                    scan=file_scan(self.file).level,
                ),
            ),
            ref=None,
            source=CivitaiSource(
                endpoint=endpoint, folder=self.folder, url=self.url, provenance=self.provenance
            ),
        )


@dataclass(frozen=True, kw_only=True)
class CivitaiTarget:
    """Where one Civitai file's bytes go: `.<sha256>.incomplete` in its folder (a name that
    does not change between runs), then the name Civitai gives, with `.civitai.info` beside."""

    label: str
    file_name: str  # as Civitai lists it; the final name comes from Content-Disposition
    size: int | None  # approximate (Civitai lists kilobytes)
    sha256: str
    folder: Path
    url: str
    provenance: CivitaiProvenance

    @classmethod
    def of_job(cls, label: str, source: CivitaiSource, file: PlannedFile) -> CivitaiTarget:
        """The target of a queued Civitai job (`file`: its one planned file)."""
        assert file.sha256 is not None  # check_plan refuses a Civitai file without one
        return cls(
            label=label,
            file_name=file.path,
            size=file.size or None,
            sha256=file.sha256,
            folder=source.folder,
            url=source.url,
            provenance=source.provenance,
        )

    @property
    def partial(self) -> Path:
        return self.folder / f".{self.sha256}.incomplete"

    @property
    def lock(self) -> Path:
        return Path(str(self.partial) + ".lock")

    def partial_size(self) -> int:
        return _size_of(self.partial)

    def is_complete(self) -> bool:
        """Whether the file Civitai lists is in the folder with its sha256 (reads it all)."""
        return _has_sha256(self.folder / self.file_name, self.sha256)


def landed_file(target: CivitaiTarget) -> Path:
    """Where a finished download of `target` is: the file beside a `.civitai.info` with its
    sha256 (Civitai may name it otherwise than it lists it), else the listed name."""
    for sidecar in sorted(target.folder.glob("*" + SIDECAR_SUFFIX)):
        stem = sidecar.name.removesuffix(SIDECAR_SUFFIX)
        for candidate in sorted(target.folder.glob(glob.escape(stem) + ".*")):
            if candidate.name.endswith(SIDECAR_SUFFIX) or not candidate.is_file():
                continue
            provenance = read_sidecar(candidate)
            if provenance is not None and (provenance.sha256 or "").lower() == target.sha256:
                return candidate
    return target.folder / target.file_name


def discard_civitai_partial(target: CivitaiTarget) -> bool:
    """Delete the partial file of `target`, unless a download is writing it right now."""
    lock = FileLock(str(target.lock), timeout=0)
    try:
        lock.acquire()
    except Timeout:
        return False
    try:
        target.partial.unlink(missing_ok=True)
    finally:
        lock.release()
        target.lock.unlink(missing_ok=True)
    return True


def plan_civitai_download(
    model: CivitaiModel,
    version: CivitaiVersion,
    *,
    endpoint: str,
    settings: CivitaiSettings,
    file_name: str | None = None,
    allow_flagged: bool = False,
) -> CivitaiDownload:
    """Choose the file (`file_name`, else the primary one) and its folder.

    Raises:
        RepoFileNotFoundError-like `DownloadError`: no such file, or the version has none.
        PickleRefusedError: the file is a pickle.
        FlaggedFileError: Civitai's scans call it dangerous (and `allow_flagged` is False).
        IntegrityError: Civitai lists no sha256 for it, so it could not be verified.
        UnsafeHubDataError: its name could leave the folder.
    """
    label = civitai_id(model.id, version.id)
    if file_name is None:
        chosen = version.primary_file
    else:
        chosen = next((f for f in version.files if f.name == file_name), None)
    if chosen is None:
        names = ", ".join(f.name for f in version.files[:10]) or "none"
        raise DownloadError(
            f"{label} has no file {file_name or ''}".rstrip() + ".", hint=f"Its files: {names}."
        )
    check_file_path(chosen.name, repo_id=label)
    if "/" in chosen.name:
        raise UnsafeHubDataError(
            f"{label}: the file name {chosen.name!r} has a folder in it.",
            repo_id=label,
            field="file name",
            value=chosen.name,
        )
    if chosen.format is FileFormat.PICKLE_TENSOR or chosen.name.lower().endswith(
        (".ckpt", ".pt", ".pth", ".bin")
    ):
        raise PickleRefusedError(
            f"{chosen.name} of {label} is a pickle (PickleTensor): loading one can run code, "
            "so ModelDeck does not download it.",
            hint="Choose a SafeTensor file of this model, if it has one.",
        )
    scan = file_scan(chosen)
    if scan.level.flagged and not allow_flagged:
        raise FlaggedFileError(
            f"Civitai's scans flag {chosen.name} of {label}: {scan.finding}",
            hint="Nothing was downloaded. Allow flagged files to download it anyway.",
        )
    if chosen.sha256 is None:
        raise IntegrityError(
            f"Civitai lists no sha256 for {chosen.name} of {label}, so it could not be verified.",
            hint="Nothing was downloaded.",
        )
    base = f"{endpoint.rstrip('/')}/api/download/models/{version.id}"
    url = base if chosen.primary or file_name is None else _file_url(chosen, base)
    return CivitaiDownload(
        model=model,
        version=version,
        file=chosen,
        sha256=chosen.sha256,
        folder=settings.folder_for(FolderKind.of(model.type)),
        url=url,
    )


def _file_url(file: CivitaiFile, base: str) -> str:
    """A non-primary file: Civitai addresses it by type and format on the same route."""
    query = {"type": file.kind, "format": file.format.value}
    return f"{base}?{urlencode(query)}"


def fetch_civitai_file(
    download: CivitaiDownload | CivitaiTarget,
    *,
    client: CivitaiClient,
    policy: RetryPolicy | None = None,
    stop: StopSignal | None = None,
    on_progress: Callable[[int], None] = lambda _: None,
    free_space: Callable[[Path], int] | None = None,
) -> Path:
    """Download `download` into its folder and return the file's path.

    A file with the same sha256 already in the folder (by the name Civitai lists) is not
    fetched again: its provenance is written and its path returned.

    Raises:
        StopRequested: `stop` was raised; the partial file is kept for the next run.
        FileBusyError: another process is downloading the same file.
        GatedRepoError: the creator requires sign-in (no or a refused API key).
        RepoNotFoundError, RateLimitedError, HubResponseError, HubUnreachableError: as the
            client raises them, once retries are spent.
        IntegrityError: the sha256 did not match twice (nothing is kept).
        DiskFullError: not enough free space.
        UnsafeHubDataError: Civitai named the file with a name that could leave the folder.
    """
    policy = policy or RetryPolicy()
    stop = stop or StopSignal()
    if isinstance(download, CivitaiDownload):
        download = download.target
    folder = download.folder
    existing = folder / download.file_name
    if _has_sha256(existing, download.sha256):
        write_sidecar(existing, download.provenance)
        on_progress(existing.stat().st_size)
        return existing
    folder.mkdir(parents=True, exist_ok=True)
    ensure_inside(folder, download.partial)
    size = download.size
    if size is not None and free_space is not None:
        on_disk = _size_of(download.partial)
        check_free_space(folder, max(0, size - on_disk), free_space)
    lock = FileLock(str(download.lock), timeout=0)
    try:
        lock.acquire()
    except Timeout:
        raise FileBusyError(
            f"{download.label} is being downloaded by another job or program.",
            hint="This one continues when that download ends.",
        ) from None
    try:
        transfer = _Transfer(download, client, policy, stop, on_progress)
        name = transfer.run()
        if name is None:  # wrong sha256: once more from zero
            download.partial.unlink(missing_ok=True)
            on_progress(0)
            name = transfer.run()
        if name is None:
            download.partial.unlink(missing_ok=True)
            on_progress(0)
            raise IntegrityError(
                f"{download.label}: sha256 mismatch twice; the file on Civitai or the "
                "connection is corrupt.",
                hint="Nothing was kept. Try again later or from another network.",
            )
        final = folder / name
        ensure_inside(folder, final)
        os.replace(download.partial, final)
        write_sidecar(final, download.provenance)
        return final
    finally:
        lock.release()
        download.lock.unlink(missing_ok=True)


class _Retry(Exception):
    def __init__(self, error: AppError, wait: float | None = None) -> None:
        super().__init__(str(error))
        self.error = error
        self.wait = wait


class _Transfer:
    """The bytes of one file: resume from the partial, stream with retries, hash.

    `offset` bytes are on disk and all of them are in `digest` (each chunk is hashed as it
    is written), so a retry continues with both as they are.
    """

    def __init__(
        self,
        download: CivitaiTarget,
        client: CivitaiClient,
        policy: RetryPolicy,
        stop: StopSignal,
        on_progress: Callable[[int], None],
    ) -> None:
        self.download = download
        self.client = client
        self.policy = policy
        self.stop = stop
        self.on_progress = on_progress
        size = download.size
        self.limit = None if size is None else size + max(_SIZE_SLACK, size // 100)
        self.name = download.file_name
        # The HF transfer's hasher: sha256 on a helper thread, overlapping the download.
        self.planned = PlannedFile(
            path=download.file_name,
            size=size or 0,
            sha256=download.sha256,
            etag=download.sha256,
        )
        self.digest = _Digest(self.planned)
        self.digest.close()
        self.offset = 0

    def run(self) -> str | None:
        """Complete the partial file; its final name if the sha256 matches, else None."""
        self.digest = _Digest(self.planned)
        try:
            self.offset = self._resume()
            failures = 0
            with _open_partial(self.download.partial) as handle:
                while True:
                    self.stop.check()
                    before = self.offset
                    try:
                        self._stream(handle)
                        break
                    except _Retry as retry:
                        failures = 0 if self.offset > before else failures
                        failures += 1
                        if failures >= self.policy.attempts:
                            raise retry.error from retry.__cause__
                        wait = retry.wait if retry.wait is not None else self.policy.delay(failures)
                        self.stop.wait(min(wait, self.policy.max_retry_after))
            return self.name if self.digest.matches() else None
        finally:
            self.digest.close()

    def _resume(self) -> int:
        """Hash the bytes already on disk; returns how many there are."""
        size = 0
        try:
            with open(self.download.partial, "rb") as handle:
                if not stat.S_ISREG(os.fstat(handle.fileno()).st_mode):
                    return 0  # _open_partial refuses it with a clear error
                while block := handle.read(_CHUNK):
                    self.digest.update(block)
                    size += len(block)
                    self.stop.check()
        except FileNotFoundError:
            return 0
        self.on_progress(size)
        return size

    def _stream(self, handle: FileIO) -> None:
        """One GET from `offset` to the end. Raises `_Retry` or a final error."""
        headers = {"Accept-Encoding": "identity"}
        if self.offset:
            headers["Range"] = f"bytes={self.offset}-"
        try:
            with self._answer(headers) as response:
                self._check_status(response)
                if self.offset and response.status_code != 206:  # it starts over: so do we
                    handle.truncate(0)
                    self.digest.reset()
                    self.offset = 0
                    self.on_progress(0)
                self.name = self._name_from(response)
                for (
                    chunk
                ) in response.iter_raw():  # as it arrives: a chunk size would hold bytes back
                    if self.limit is not None and self.offset + len(chunk) > self.limit:
                        raise IntegrityError(
                            f"{self.download.label}: Civitai sent more than the "
                            f"{format_bytes(self.download.size or 0)} it listed.",
                            hint="Nothing was kept.",
                        )
                    handle.write(chunk)
                    self.digest.update(chunk)
                    self.offset += len(chunk)
                    self.on_progress(self.offset)
                    self.stop.check()
        except (_Retry, AppError, StopRequested):
            raise
        except httpx2.TimeoutException as exc:
            stalled = f"no data for {self.policy.stall_seconds:g} s"
            raise _Retry(self._unreachable(stalled)) from exc
        except httpx2.TransportError as exc:  # refused, dropped, ended early
            detail = redact(first_line(exc), self.client.token)
            raise _Retry(self._unreachable(detail)) from exc
        except OSError as exc:
            raise DownloadError(f"Cannot write {self.download.partial}: {exc}") from exc

    def _check_status(self, response: httpx2.Response) -> None:
        status = response.status_code
        if status < 400:
            return
        body = response.read()[:_ERROR_BODY]
        error = error_for_status(
            status,
            response.headers,
            body,
            endpoint=self.client.endpoint,
            about=self.download.label,
            has_token=self.client.has_token,
        )
        if isinstance(error, RateLimitedError):
            raise _Retry(error, wait=error.retry_after)
        if status >= 500 or status in (408, 416):
            raise _Retry(error)
        raise error

    def _answer(self, headers: dict[str, str]) -> _Answer:
        return _Answer(self.client, self.download.url, headers, self.policy.stall_seconds)

    def _name_from(self, response: httpx2.Response) -> str:
        """The file name from `Content-Disposition`, checked; else the name Civitai listed."""
        name = content_disposition_filename(response.headers.get("Content-Disposition", ""))
        if name is None:
            return self.download.file_name
        check_file_path(name, repo_id=self.download.label)
        if "/" in name:
            raise UnsafeHubDataError(
                f"{self.download.label}: Civitai named the file {name!r}.",
                repo_id=self.download.label,
                field="file name",
                value=name,
            )
        return name

    def _unreachable(self, detail: str) -> HubUnreachableError:
        host = urlsplit(self.download.url).netloc
        return HubUnreachableError(
            f"Cannot reach {host} to download {self.download.file_name} ({detail}).",
            hint="Check the network; the download continues from where it stopped.",
        )


class _Answer:
    """The streamed answer to a GET, redirects followed one by one (the token stays with
    Civitai's own origin: httpx drops Authorization on a redirect to another one)."""

    def __init__(
        self, client: CivitaiClient, url: str, headers: dict[str, str], stall: float
    ) -> None:
        self._client = client
        self._url = url
        self._headers = headers
        self._timeout = httpx2.Timeout(stall)
        self._response: httpx2.Response | None = None

    def __enter__(self) -> httpx2.Response:
        http = self._client.http
        request = http.build_request(
            "GET", self._url, headers=self._client.headers(self._headers), timeout=self._timeout
        )
        response = http.send(request, stream=True, follow_redirects=False)
        for _ in range(_MAX_REDIRECTS):
            following = response.next_request
            if following is None:
                self._response = response
                return response
            response.close()
            response = http.send(following, stream=True, follow_redirects=False)
        response.close()
        raise HubResponseError(f"Civitai redirected {self._url} more than {_MAX_REDIRECTS} times.")

    def __exit__(self, *exc: object) -> None:
        if self._response is not None:
            self._response.close()


_FILENAME_STAR = re.compile(r"utf-8''(.+)", re.IGNORECASE)


def content_disposition_filename(header: str) -> str | None:
    """The `filename*` (RFC 5987) or `filename` of a Content-Disposition header; None if none."""
    if not header or len(header) > 4096:
        return None
    message = Message()
    message["Content-Disposition"] = header
    star = message.get_param("filename*", header="Content-Disposition")
    if isinstance(star, str) and (match := _FILENAME_STAR.fullmatch(star)):
        return unquote(match.group(1)) or None
    plain = message.get_filename()
    return plain or None


def _has_sha256(path: Path, sha256: str) -> bool:
    try:
        if not stat.S_ISREG(os.lstat(path).st_mode):
            return False
        digest = hashlib.sha256()
        with open(path, "rb") as handle:
            while block := handle.read(_CHUNK):
                digest.update(block)
    except OSError:
        return False
    return digest.hexdigest() == sha256


def _size_of(path: Path) -> int:
    try:
        info = os.lstat(path)
    except OSError:
        return 0
    return info.st_size if stat.S_ISREG(info.st_mode) else 0

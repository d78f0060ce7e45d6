"""A fake Hugging Face Hub on 127.0.0.1 that the real `huggingface_hub` client can talk to.

Tests and benchmarks cannot reach the real Hub, so `HubServer` speaks the part of its HTTP
protocol that ModelDeck uses (see `/work/shared/guide/TESTING.md`): model search with `Link`
paging, model info with file hashes, file trees, `auth-check`, and `/resolve` downloads where
LFS files are redirected to a second origin, like the real CDN (the client drops the token there).

Three things make it more than a fixture: faults (`inject`) so tests can prove that the app
survives refused connections, 5xx, rate limits, truncated bodies, stalls and corrupted bytes;
lies (`lie`), a hostile hub's answers about a repo: file names it would never store
(`../../x`, `C:\\x`, NUL), malformed commit ids, blob ids and hashes in its JSON and headers,
bodies longer than declared, redirects anywhere, oversized JSON; security scans
(`set_scans`: the repo's `securityRepoStatus` and each file's `securityFileStatus`); and a
request log (`requests`, `requests_to`) so tests can assert what was actually sent.

Only the standard library is used for serving; PyYAML parses the card's front matter, as the
Hub does server-side.

Example::

    with HubServer(tmp_path) as hub:
        hub.add_repo("org/tiny", {"model.gguf": b"GGUF"}, card="---\\nlicense: mit\\n---\\n")
        path = hf_hub_download("org/tiny", "model.gguf", endpoint=hub.url)
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import hashlib
import json
import posixpath
import re
import socket
import sys
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import MappingProxyType, TracebackType
from typing import Any, Literal, Self, TypeAlias
from urllib.parse import parse_qsl, quote, unquote, urlencode, urlsplit

import yaml

__all__ = [
    "LFS_MIN_SIZE",
    "LFS_SUFFIXES",
    "Answer",
    "DropAfter",
    "Fault",
    "FaultKind",
    "FileScanStatus",
    "FlipByte",
    "Gated",
    "HubServer",
    "Lies",
    "MalformedJson",
    "Oversize",
    "RecordedRequest",
    "Refuse",
    "Stall",
    "Status",
    "StoredFile",
    "format_hub_datetime",
    "git_blob_sha1",
    "is_lfs_file",
    "lfs_pointer",
    "parse_card_metadata",
]

LFS_SUFFIXES: tuple[str, ...] = (".gguf", ".safetensors", ".bin", ".ckpt", ".pt", ".pth", ".onnx")
"""Files with these suffixes are stored in LFS, whatever their size (like the Hub's default
`.gitattributes`)."""

LFS_MIN_SIZE = 1 << 20
"""Files at least this large are stored in LFS, whatever their name."""

MAX_STALL_SECONDS = 30.0
"""A stall fault never holds a request longer than this, so a wrong test cannot hang forever."""

_CHUNK_SIZE = 1 << 16
_MAX_PAGE_SIZE = 1000  # the Hub caps `limit` at 1000 per page
_DEFAULT_TIME = datetime(
    2024, 1, 1, tzinfo=UTC
)  # first default `lastModified`; later adds are newer
_HANDLER_IDLE_TIMEOUT_S = 60.0  # an idle keep-alive connection is closed after this long
_POLL_INTERVAL_S = 0.05  # how quickly `stop()` returns

Gated: TypeAlias = Literal[False, "auto", "manual"]
Origin: TypeAlias = Literal["hub", "cdn"]
FileData: TypeAlias = bytes | Path
"""A file's content: bytes are written under the server's root; a `Path` is served in place
(handy for large benchmark files that should not be copied or held in memory)."""


# --------------------------------------------------------------------------------------------
# Hashes and formats the Hub uses


def git_blob_sha1(data: bytes) -> str:
    """The git blob id of `data`: sha1 of `b"blob {len}\\0" + data` (the ETag of a git file)."""
    return hashlib.sha1(b"blob %d\0" % len(data) + data, usedforsecurity=False).hexdigest()


def lfs_pointer(sha256: str, size: int) -> bytes:
    """The git-lfs pointer file that git stores in place of an LFS file."""
    return (
        f"version https://git-lfs.github.com/spec/v1\noid sha256:{sha256}\nsize {size}\n".encode()
    )


def is_lfs_file(path: str, size: int) -> bool:
    """Whether the Hub would store this file in LFS (by suffix, or because it is large)."""
    return path.lower().endswith(LFS_SUFFIXES) or size >= LFS_MIN_SIZE


def format_hub_datetime(when: datetime) -> str:
    """Format like the Hub: `2024-05-01T12:00:00.000Z` (UTC, milliseconds). Naive means UTC."""
    utc = _as_utc(when)
    return utc.strftime("%Y-%m-%dT%H:%M:%S.") + f"{utc.microsecond // 1000:03d}Z"


_FRONT_MATTER = re.compile(r"\A\s*---[ \t]*\r?\n(.*?)\r?\n---[ \t]*(?:\r?\n|\Z)", re.DOTALL)


def parse_card_metadata(card: str) -> dict[str, Any] | None:
    """The YAML front matter of a model card as JSON-ready data, or None.

    None when there is no front matter, when it is not valid YAML, or when it is not a mapping:
    the Hub then simply omits `cardData`, it does not fail.
    """
    match = _FRONT_MATTER.match(card)
    return _parse_yaml_mapping(match.group(1)) if match else None


@functools.lru_cache(maxsize=8192)
def _parse_yaml_mapping(text: str) -> dict[str, Any] | None:
    # Cached because bulk-seeded repos often share a card; libyaml keeps a cold parse fast.
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    try:
        data = yaml.load(text, Loader=loader)  # a safe loader, as yaml.safe_load
    except yaml.YAMLError:
        return None
    if not isinstance(data, dict):
        return None
    # Dates and other YAML-only types become strings, as they would in the Hub's JSON.
    normalized: dict[str, Any] = json.loads(json.dumps(data, default=str))
    return normalized


def _as_utc(when: datetime) -> datetime:
    return when.replace(tzinfo=UTC) if when.tzinfo is None else when.astimezone(UTC)


# --------------------------------------------------------------------------------------------
# Repositories


@dataclass(frozen=True, slots=True)
class StoredFile:
    """One file of one commit: where its bytes are, and the hashes the Hub reports for it."""

    path: str
    size: int
    sha256: str
    git_oid: str  # blob id of the content, or of the LFS pointer for LFS files (as git stores)
    is_lfs: bool
    blob: Path

    @property
    def etag(self) -> str:
        """The ETag `/resolve` sends: the sha256 for LFS files, the git blob id otherwise."""
        return self.sha256 if self.is_lfs else self.git_oid

    @property
    def pointer_size(self) -> int:
        """Size of the LFS pointer file, as the Hub's `pointerSize`."""
        return len(lfs_pointer(self.sha256, self.size))

    def lfs_json(self, *, sha_key: Literal["sha256", "oid"]) -> dict[str, Any]:
        """The `lfs` object: `sha256` in model info siblings, `oid` in tree entries."""
        return {sha_key: self.sha256, "size": self.size, "pointerSize": self.pointer_size}


@dataclass(frozen=True, slots=True)
class _Commit:
    sha: str
    files: Mapping[str, StoredFile]  # by path, sorted
    last_modified: datetime


@dataclass(frozen=True, slots=True)
class _Repo:
    repo_id: str
    head: _Commit
    commits: Mapping[str, _Commit]  # every commit added so far, by sha
    created_at: datetime
    card_data: Mapping[str, Any] | None
    gated: Gated
    pipeline_tag: str | None
    library_name: str | None
    tags: tuple[str, ...]
    downloads: int
    likes: int

    @property
    def author(self) -> str | None:
        namespace, _, name = self.repo_id.rpartition("/")
        return namespace if name and namespace else None

    def commit(self, revision: str) -> _Commit | None:
        """The commit for `main` or for a full commit sha; None for anything else."""
        return self.head if revision == "main" else self.commits.get(revision)

    def tag_set(self) -> frozenset[str]:
        return frozenset(self.tags)


def _derive_tags(
    explicit: Iterable[str],
    card_data: Mapping[str, Any] | None,
    library_name: str | None,
    pipeline_tag: str | None,
    paths: Iterable[str],
) -> tuple[str, ...]:
    """Tags the way the Hub computes them: the card's tags and the explicit ones, the library,
    the pipeline, file formats found in the repo, languages, `dataset:<id>`, `base_model:<id>`
    and `license:<id>`."""
    card = card_data or {}
    found: list[str] = [*_str_list(card.get("tags")), *explicit]
    found += [t for t in (library_name, pipeline_tag) if t]
    suffixes = {Path(p).suffix.lower() for p in paths}
    found += [fmt for fmt in ("gguf", "safetensors", "onnx") if f".{fmt}" in suffixes]
    found += _str_list(card.get("language"))
    found += [f"dataset:{d}" for d in _str_list(card.get("datasets"))]
    found += [f"base_model:{m}" for m in _str_list(card.get("base_model"))]
    found += [f"license:{lic}" for lic in _str_list(card.get("license"))]
    return tuple(dict.fromkeys(found))  # de-duplicated, first occurrence wins


def _str_list(value: object) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, list):
        return [str(v) for v in value if isinstance(v, str | int | float)]
    return []


def _card_str(card_data: Mapping[str, Any] | None, key: str) -> str | None:
    value = (card_data or {}).get(key)
    return value if isinstance(value, str) else None


def _commit_sha(repo_id: str, parent: str | None, files: Mapping[str, StoredFile]) -> str:
    """A deterministic commit id: the same repo, parent and files always give the same sha."""
    digest = hashlib.sha1(f"{repo_id}\0{parent or ''}\0".encode(), usedforsecurity=False)
    for path, stored in files.items():
        digest.update(f"{path}\0{stored.git_oid}\n".encode())
    return digest.hexdigest()


# --------------------------------------------------------------------------------------------
# Faults


@dataclass(frozen=True, slots=True)
class Refuse:
    """Close the connection without sending any response."""


@dataclass(frozen=True, slots=True)
class Status:
    """Answer with this status instead (e.g. 500, or 429 with `Retry-After`)."""

    code: int
    retry_after: int | None = None
    body: str = "Injected failure"


@dataclass(frozen=True, slots=True)
class MalformedJson:
    """Answer 200 with a JSON content type and a body that is not JSON."""


@dataclass(frozen=True, slots=True)
class DropAfter:
    """Send the headers with the full Content-Length, then `n_bytes` of the body, then close."""

    n_bytes: int


@dataclass(frozen=True, slots=True)
class Stall:
    """Wait before answering normally (at most `MAX_STALL_SECONDS`; `stop()` cuts it short)."""

    seconds: float

    def __post_init__(self) -> None:
        if not 0 <= self.seconds <= MAX_STALL_SECONDS:
            raise ValueError(f"a stall lasts 0 to {MAX_STALL_SECONDS} s, not {self.seconds}")


@dataclass(frozen=True, slots=True)
class FlipByte:
    """Serve the content with the byte at `offset` inverted (offset within the whole file, so a
    Range response is corrupted only if it covers that byte)."""

    offset: int


@dataclass(frozen=True, slots=True)
class Answer:
    """Answer with this body instead: any JSON value (serialized here), or raw bytes as sent."""

    body: object
    status: int = 200
    content_type: str = "application/json; charset=utf-8"


FaultKind: TypeAlias = Refuse | Status | MalformedJson | DropAfter | Stall | FlipByte | Answer
_BODY_FAULTS = (MalformedJson, DropAfter, FlipByte)  # a HEAD has no body: these skip HEADs


@dataclass(frozen=True, slots=True)
class Fault:
    """A fault for requests whose decoded path matches `path` (`re.search`).

    `method` limits it to one method; `times` is how many requests it hits (None: all).
    Paths on the CDN origin look like `/lfs/<sha256>/<path in repo>`. Body faults
    (`MalformedJson`, `DropAfter`, `FlipByte`) never match a HEAD request.
    """

    kind: FaultKind
    path: str = ""
    method: str | None = None
    times: int | None = 1

    def matches(self, method: str, path: str) -> bool:
        """Whether a request with this method and decoded path is hit by the fault."""
        if self.method is not None and self.method.upper() != method:
            return False
        if method == "HEAD" and isinstance(self.kind, _BODY_FAULTS):
            return False
        return re.search(self.path, path) is not None


@dataclass(slots=True)
class _ArmedFault:
    fault: Fault
    remaining: int | None


# --------------------------------------------------------------------------------------------
# A hostile hub


@dataclass(frozen=True, slots=True)
class Oversize:
    """Send `extra_bytes` of filler after a file's real content (beyond its declared size).

    With `content_length`, the `Content-Length` header counts them (an honest header for a
    dishonest listing); without, there is none and the body ends when the connection closes.
    """

    extra_bytes: int
    content_length: bool = True


@dataclass(frozen=True, kw_only=True, slots=True)
class Lies:
    """What a hostile hub says about one repo in place of the truth (see `HubServer.lie`).

    Every field left at its default tells the truth. Files are named by their stored path.

    Attributes:
        repo_id: the `id` and `modelId` that model info and listings answer with.
        sha: the commit `sha` that model info answers with.
        repo_commit: the `X-Repo-Commit` header of `/resolve` answers.
        etag: the `ETag` (and `X-Linked-Etag` for LFS files) of `/resolve` answers.
        names: stored path -> the name listed for it in model info and the tree, any text at
            all (`../../x`, `/etc/x`, `C:\\x`, `a\0b`); `/resolve` serves the file under it.
        fields: stored path -> JSON fields that replace its listed ones, in model-info terms
            (`size`, `blobId`, `lfs`: {`sha256`, `size`, `pointerSize`}, `rfilename`); the tree
            gets them translated (`oid`, `lfs.oid`, `path`).
        extra: raw sibling objects appended to model info (and, translated, to the root
            tree listing): a file listed twice, an entry of the wrong shape.
        oversize: stored path -> bytes sent beyond its size, on the hub and on the CDN.
        redirects: stored path -> a `Location` that `/resolve` redirects to (302).
        json_padding: bytes of whitespace after model info and tree answers (oversize JSON).
    """

    repo_id: str | None = None
    sha: str | None = None
    repo_commit: str | None = None
    etag: str | None = None
    names: Mapping[str, str] = field(default_factory=dict)
    fields: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    extra: tuple[Mapping[str, Any], ...] = ()
    oversize: Mapping[str, Oversize] = field(default_factory=dict)
    redirects: Mapping[str, str] = field(default_factory=dict)
    json_padding: int = 0

    def stored_path(self, listed: str) -> str | None:
        """The stored path that is listed as `listed`, if a name was made up for it."""
        return next((path for path, name in self.names.items() if name == listed), None)

    def paths(self) -> set[str]:
        """Stored paths these lies are about."""
        return {*self.names, *self.fields, *self.oversize, *self.redirects}


_TRUTH = Lies()
_TREE_KEYS = {"rfilename": "path", "blobId": "oid"}


def _tree_fields(fields: Mapping[str, Any]) -> dict[str, Any]:
    """Sibling fields of model info as a tree entry names them."""
    entry: dict[str, Any] = {}
    for key, value in fields.items():
        if key == "lfs" and isinstance(value, Mapping):
            lfs = dict(value)
            if "sha256" in lfs:
                lfs["oid"] = lfs.pop("sha256")
            entry["lfs"] = lfs
        else:
            entry[_TREE_KEYS.get(key, key)] = value
    return entry


# --------------------------------------------------------------------------------------------
# Requests and responses


# --------------------------------------------------------------------------------------------
# Security scans: what the Hub's antivirus and pickle scanners say about files


_ISSUE_LEVELS = ("caution", "suspicious", "unsafe")
EXPANDED_TREE_PAGE_SIZE = 50
"""The Hub pages expanded tree listings (`expand=True`) at 50 entries."""


@dataclass(frozen=True, slots=True)
class FileScanStatus:
    """One file's `securityFileStatus`, as the Hub sends it in expanded tree listings.

    `status`: "safe", "unscanned", "queued", "caution", "suspicious" or "unsafe".
    `virus_names`: the antivirus found these (its `avScan`). `pickle_imports`: (module, name,
    safety) per import a pickle runs, safety "innocuous", "suspicious" or "dangerous".
    """

    status: str = "safe"
    virus_names: tuple[str, ...] = ()
    pickle_imports: tuple[tuple[str, str, str], ...] = ()

    def json(self) -> dict[str, Any]:
        scanned = self.status not in ("unscanned", "queued")
        pickle_scan: dict[str, Any] | None = None
        if self.pickle_imports:
            order = ("innocuous", "suspicious", "dangerous")
            highest = max((safety for *_, safety in self.pickle_imports), key=order.index)
            pickle_scan = {
                "highestSafetyLevel": highest,
                "imports": [
                    {"module": module, "name": name, "safety": safety}
                    for module, name, safety in self.pickle_imports
                ],
            }
        return {
            "status": self.status,
            "avScan": (
                {"virusFound": bool(self.virus_names), "virusNames": list(self.virus_names) or None}
                if scanned
                else None
            ),
            "pickleImportScan": pickle_scan,
        }


@dataclass(frozen=True, slots=True)
class _RepoScans:
    scans_done: bool
    files: Mapping[str, FileScanStatus]

    def of(self, path: str) -> FileScanStatus:
        default = FileScanStatus("safe" if self.scans_done else "unscanned")
        return self.files.get(path, default)

    def repo_status(self, commit: _Commit) -> dict[str, Any]:
        """`securityRepoStatus` of `model_info(securityStatus=True)`."""
        issues = [
            {"path": path, "level": self.of(path).status}
            for path in commit.files
            if self.of(path).status in _ISSUE_LEVELS
        ]
        return {"scansDone": self.scans_done, "filesWithIssues": issues}


def _with_file_scans(
    entries: list[dict[str, Any]], scans: _RepoScans | None
) -> list[dict[str, Any]]:
    """Expanded tree entries: each file with its `securityFileStatus` when the hub scans."""
    if scans is None:
        return entries
    return [
        {**entry, "securityFileStatus": scans.of(str(entry["path"])).json()}
        if entry.get("type") == "file"
        else entry
        for entry in entries
    ]


@dataclass(frozen=True, slots=True)
class RecordedRequest:
    """One request as the server saw it, and how it was answered."""

    origin: Origin
    method: str
    path: str  # percent-decoded, without the query
    query: Mapping[str, list[str]]
    headers: Mapping[str, str]  # names in lower case
    status: int | None  # None when the connection was refused
    fault: FaultKind | None

    @property
    def authorization(self) -> str | None:
        """The `Authorization` header, e.g. `Bearer hf_xxx`."""
        return self.headers.get("authorization")

    @property
    def range(self) -> str | None:
        """The `Range` header, e.g. `bytes=100-`."""
        return self.headers.get("range")


@dataclass(frozen=True, slots=True)
class _Request:
    origin: Origin
    method: str
    raw_path: str  # as sent, still percent-encoded
    segments: tuple[str, ...]  # split on "/" before decoding, so "%2F" stays inside a segment
    query: tuple[tuple[str, str], ...]
    headers: Mapping[str, str]

    @property
    def path(self) -> str:
        return unquote(self.raw_path)

    def param(self, name: str) -> str | None:
        return next((v for k, v in self.query if k == name), None)

    def params(self, name: str) -> list[str]:
        return [v for k, v in self.query if k == name]

    def flag(self, name: str) -> bool:
        return (self.param(name) or "").lower() in ("1", "true", "yes")

    def bearer_token(self) -> str | None:
        scheme, _, token = self.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer":
            return None
        return token.strip() or None


@dataclass(frozen=True, slots=True)
class _FileSlice:
    path: Path
    start: int
    length: int


@dataclass(frozen=True, slots=True)
class _Response:
    status: int
    headers: Mapping[str, str]
    body: bytes | _FileSlice = b""
    filler: int = 0  # zero bytes sent after the body (a hostile hub's oversized file)
    content_length: bool = True  # False: no Content-Length; the connection closes at the end

    @property
    def length(self) -> int:
        size = self.body.length if isinstance(self.body, _FileSlice) else len(self.body)
        return size + self.filler


def _json_response(
    obj: object, status: int = 200, headers: Mapping[str, str] | None = None, padding: int = 0
) -> _Response:
    # surrogatepass: a hostile hub's names may hold lone surrogates, which JSON can carry.
    body = json.dumps(obj, ensure_ascii=False).encode("utf-8", "surrogatepass")
    content_type = {"Content-Type": "application/json; charset=utf-8"}
    return _Response(status, {**content_type, **(headers or {})}, body + b" " * padding)


def _cdn_query(oversize: Oversize | None) -> str:
    """The query that tells the CDN origin to oversize a file (a signed URL has one anyway)."""
    if oversize is None:
        return ""
    query = {"oversize": oversize.extra_bytes, "length": int(oversize.content_length)}
    return "?" + urlencode(query)


def _oversized(response: _Response, oversize: Oversize | None) -> _Response:
    """`response` with filler after its body, if it has one (a HEAD still says the truth)."""
    if oversize is None or response.status not in (200, 206):
        return response
    return _Response(
        response.status,
        response.headers,
        response.body,
        filler=oversize.extra_bytes,
        content_length=oversize.content_length,
    )


def _error(status: int, code: str | None, message: str, **headers: str) -> _Response:
    """An error the way the Hub sends it: typed by `X-Error-Code`, text in `X-Error-Message`."""
    extra = {"X-Error-Message": message, **({"X-Error-Code": code} if code else {}), **headers}
    return _json_response({"error": message}, status, extra)


class _Unsatisfiable(Exception):
    """The Range header asks for bytes the file does not have."""


_RANGE = re.compile(r"\s*bytes\s*=\s*(\d*)\s*-\s*(\d*)\s*")


def _parse_range(header: str | None, size: int) -> tuple[int, int] | None:
    """(first, last) byte of a single `bytes=` range; None to ignore the header (send all)."""
    match = _RANGE.fullmatch(header or "")
    if match is None:
        return None  # absent, multi-range or another unit: a full 200 answer is allowed
    first, last = match.groups()
    if not first and not last:
        return None
    if not first:  # suffix range: the last N bytes
        if int(last) == 0 or size == 0:
            raise _Unsatisfiable
        return max(0, size - int(last)), size - 1
    start = int(first)
    end = size - 1 if not last else min(int(last), size - 1)
    if last and int(last) < start:
        return None  # syntactically invalid: ignore
    if start >= size:
        raise _Unsatisfiable
    return start, end


# --------------------------------------------------------------------------------------------
# The server


class HubServer:
    """A fake Hugging Face Hub (plus its CDN) for tests and benchmarks.

    Args:
        root: folder for file contents (e.g. pytest's `tmp_path`); created if missing.
        page_size: models per `/api/models` page when the request has no `limit`.
        tree_page_size: entries per `/tree` page.
        port: port of the Hub origin (0: a free one). The CDN always takes a free port.

    `page_size` and `tree_page_size` are plain attributes: a test may change them at any time.
    Repos, grants and faults may be added while the server runs.
    """

    def __init__(
        self, root: Path, *, page_size: int = 50, tree_page_size: int = 1000, port: int = 0
    ) -> None:
        self.root = Path(root)
        self.page_size = page_size
        self.tree_page_size = tree_page_size
        self._port = port
        self._lock = threading.RLock()
        self._repos: dict[str, _Repo] = {}
        self._blobs: dict[str, Path] = {}  # sha256 -> content, for the CDN
        self._grants: set[tuple[str, str]] = set()
        self._faults: list[_ArmedFault] = []
        self._lies: dict[str, Lies] = {}  # by the true repo id
        self._scans: dict[str, _RepoScans] = {}  # by repo id; absent: the hub reports no scans
        self._log: list[RecordedRequest] = []
        self._errors: list[BaseException] = []
        self._adds = 0
        self._stopping = threading.Event()
        self._servers: dict[Origin, _HttpServer] = {}
        self._threads: list[threading.Thread] = []

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> Self:
        """Start listening on 127.0.0.1 (Hub and CDN origins), each served by daemon threads."""
        if self._servers:
            raise RuntimeError("HubServer is already started")
        (self.root / "blobs").mkdir(parents=True, exist_ok=True)
        self._stopping.clear()
        origins: tuple[tuple[Origin, int], ...] = (("hub", self._port), ("cdn", 0))
        for origin, port in origins:
            server = _HttpServer(("127.0.0.1", port), self, origin)
            thread = threading.Thread(
                target=server.serve_forever,
                kwargs={"poll_interval": _POLL_INTERVAL_S},
                name=f"HubServer-{origin}",
                daemon=True,
            )
            self._servers[origin] = server
            self._threads.append(thread)
            thread.start()
        return self

    def stop(self) -> None:
        """Stop both origins and close open connections. Safe to call twice."""
        self._stopping.set()  # cuts stalls short
        servers, self._servers = self._servers, {}
        for server in servers.values():
            server.shutdown()
            server.close_all_connections()
            server.server_close()
        for thread in self._threads:
            thread.join(timeout=5)
        self._threads.clear()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def url(self) -> str:
        """The Hub endpoint, e.g. `http://127.0.0.1:41234` (pass it as `endpoint=`)."""
        return self._origin_url("hub")

    @property
    def cdn_url(self) -> str:
        """The CDN origin that LFS downloads are redirected to."""
        return self._origin_url("cdn")

    def _origin_url(self, origin: Origin) -> str:
        server = self._servers.get(origin)
        if server is None:
            raise RuntimeError("HubServer is not started")
        return f"http://127.0.0.1:{server.server_address[1]}"

    # -- content -----------------------------------------------------------------------------

    def add_repo(
        self,
        repo_id: str,
        files: Mapping[str, FileData] = MappingProxyType({}),
        *,
        card: str | None = None,
        gated: Gated = False,
        pipeline_tag: str | None = None,
        library_name: str | None = None,
        tags: Iterable[str] = (),
        downloads: int = 0,
        likes: int = 0,
        last_modified: datetime | None = None,
    ) -> str:
        """Add a model repo, or a new commit on top of an existing one (older shas stay valid).

        Args:
            repo_id: `namespace/name` (or a bare name); any unicode.
            files: path in repo -> content (bytes, or a `Path` served in place).
            card: README.md text (or pass files["README.md"]). Its YAML front matter becomes
                `cardData`; its `pipeline_tag`, `library_name`, `license`, `tags`, `language`,
                `datasets` and `base_model` feed the fields and tags like on the Hub
                (explicit arguments win). Broken YAML just leaves `cardData` out.
            gated: False, "auto" or "manual": `/resolve` then needs a `grant`ed token.
            last_modified: commit time (default: a fixed clock that advances per add).

        Returns:
            The commit sha (40 hex digits, deterministic).

        Raises:
            ValueError: for an empty repo id, a file path git would not store (an empty,
                `.` or `..` part, a backslash, NUL; `lie` lists such names), or a card given
                twice.
        """
        _check_repo_id(repo_id)
        contents: dict[str, FileData] = dict(files)
        if card is not None:
            if "README.md" in contents:
                raise ValueError("give the card either as `card` or as files['README.md']")
            contents["README.md"] = card.encode()
        with self._lock:
            stored = {path: self._store(path, contents[path]) for path in sorted(contents)}
            card_data = _card_data(contents.get("README.md"))
            library = library_name or _card_str(card_data, "library_name")
            pipeline = pipeline_tag or _card_str(card_data, "pipeline_tag")
            previous = self._repos.get(repo_id)
            sha = _commit_sha(repo_id, previous.head.sha if previous else None, stored)
            commit = _Commit(sha, MappingProxyType(stored), self._commit_time(last_modified))
            self._repos[repo_id] = _Repo(
                repo_id=repo_id,
                head=commit,
                commits=MappingProxyType({**(previous.commits if previous else {}), sha: commit}),
                created_at=previous.created_at if previous else commit.last_modified,
                card_data=MappingProxyType(card_data) if card_data is not None else None,
                gated=gated,
                pipeline_tag=pipeline,
                library_name=library,
                tags=_derive_tags(tags, card_data, library, pipeline, stored),
                downloads=downloads,
                likes=likes,
            )
        return sha

    def commit_changes(
        self,
        repo_id: str,
        changes: Mapping[str, FileData],
        *,
        delete: Iterable[str] = (),
        last_modified: datetime | None = None,
    ) -> str:
        """A new commit on an existing repo: `changes` added or replaced, `delete` removed, every
        other file kept as it was (the same blob: same sha256 and git blob id). Its card, tags
        and counts stay; `main` moves to it and older shas stay valid.

        Returns:
            The new commit's sha.

        Raises:
            KeyError: no such repo, or a deleted path it does not have.
        """
        with self._lock:
            previous = self._repos[repo_id]
            files = dict(previous.head.files)
            for path in delete:
                del files[path]
            for path, data in changes.items():
                files[path] = self._store(path, data)
            stored = {path: files[path] for path in sorted(files)}
            sha = _commit_sha(repo_id, previous.head.sha, stored)
            commit = _Commit(sha, MappingProxyType(stored), self._commit_time(last_modified))
            card_data = previous.card_data
            if "README.md" in changes:
                parsed = _card_data(changes["README.md"])
                card_data = MappingProxyType(parsed) if parsed is not None else None
            self._repos[repo_id] = dataclasses.replace(
                previous,
                head=commit,
                commits=MappingProxyType({**previous.commits, sha: commit}),
                card_data=card_data,
            )
        return sha

    def grant(self, repo_id: str, token: str) -> None:
        """Let `token` download the files of a gated repo (its owner accepted the terms)."""
        with self._lock:
            self._grants.add((repo_id, token))

    def lie(self, repo_id: str, lies: Lies | None) -> None:
        """Make the hub answer `lies` about `repo_id` from now on (None: the truth again).

        Raises:
            KeyError: no such repo, or a lie about a path its latest commit does not have.
        """
        with self._lock:
            repo = self._repos[repo_id]
            if lies is None:
                self._lies.pop(repo_id, None)
                return
            unknown = lies.paths() - set(repo.head.files)
            if unknown:
                raise KeyError(f"{repo_id} has no files {sorted(unknown)}")
            self._lies[repo_id] = lies

    def set_scans(
        self,
        repo_id: str,
        files: Mapping[str, FileScanStatus | str] | None,
        *,
        scans_done: bool = True,
    ) -> None:
        """Make the hub report security scans for `repo_id` (None: report none again).

        `files`: path -> its status (or just the status word: "caution", "unsafe", ...); a
        file not named is "safe" when `scans_done`, else "unscanned". Model info then answers
        `securityStatus=true` with `securityRepoStatus`, and expanded tree listings carry
        each file's `securityFileStatus` (paged at 50, like the Hub).
        """
        with self._lock:
            if files is None:
                self._scans.pop(repo_id, None)
                return
            statuses = {
                path: FileScanStatus(value) if isinstance(value, str) else value
                for path, value in files.items()
            }
            self._scans[repo_id] = _RepoScans(scans_done, MappingProxyType(statuses))

    def _scans_of(self, repo: _Repo) -> _RepoScans | None:
        with self._lock:
            return self._scans.get(repo.repo_id)

    def _lies_about(self, repo: _Repo) -> Lies:
        with self._lock:
            return self._lies.get(repo.repo_id, _TRUTH)

    def repo_ids(self) -> list[str]:
        """Ids of all repos, in the order they were first added."""
        with self._lock:
            return list(self._repos)

    def _store(self, path: str, data: FileData) -> StoredFile:
        # Like git and the Hub: a relative path of plain names. A hostile hub lists other
        # names through `lie`, for files stored under valid ones.
        parts = path.split("/")
        if not path or {"", ".", ".."} & set(parts) or "\\" in path or "\0" in path:
            raise ValueError(f"not a valid path in a repo: {path!r}")
        if isinstance(data, Path):
            size, sha256, content_oid = _hash_file(data)
            blob = data
        else:
            size, sha256 = len(data), hashlib.sha256(data).hexdigest()
            content_oid = git_blob_sha1(data)
            blob = self._write_blob(sha256, data)
        lfs = is_lfs_file(path, size)
        git_oid = git_blob_sha1(lfs_pointer(sha256, size)) if lfs else content_oid
        self._blobs.setdefault(sha256, blob)
        return StoredFile(path, size, sha256, git_oid, lfs, blob)

    def _write_blob(self, sha256: str, data: bytes) -> Path:
        """Content-addressed: identical files are written once."""
        known = self._blobs.get(sha256)
        if known is not None:
            return known
        blob = self.root / "blobs" / sha256
        blob.parent.mkdir(parents=True, exist_ok=True)
        blob.write_bytes(data)
        return blob

    def _commit_time(self, explicit: datetime | None) -> datetime:
        self._adds += 1
        if explicit is not None:
            return _as_utc(explicit)
        return _DEFAULT_TIME + timedelta(minutes=self._adds)

    # -- faults and the request log -----------------------------------------------------------

    def inject(self, fault: Fault) -> Fault:
        """Arm a fault; requests are checked against armed faults in the order they were added."""
        if fault.times is not None and fault.times < 1:
            raise ValueError("times must be at least 1 (or None for every request)")
        re.compile(fault.path)  # fail here, not inside a request thread
        with self._lock:
            self._faults.append(_ArmedFault(fault, fault.times))
        return fault

    def clear_faults(self) -> None:
        """Disarm all faults."""
        with self._lock:
            self._faults.clear()

    @property
    def requests(self) -> list[RecordedRequest]:
        """A snapshot of every request answered so far (both origins), oldest first."""
        with self._lock:
            return list(self._log)

    def requests_to(self, path_regex: str, method: str | None = None) -> list[RecordedRequest]:
        """Recorded requests whose decoded path matches `path_regex` (`re.search`)."""
        pattern = re.compile(path_regex)
        return [
            r
            for r in self.requests
            if pattern.search(r.path) and (method is None or r.method == method.upper())
        ]

    def clear_requests(self) -> None:
        """Forget the recorded requests."""
        with self._lock:
            self._log.clear()

    @property
    def errors(self) -> list[BaseException]:
        """Exceptions raised inside the server while answering (each answered with a 500).
        Empty unless the server has a bug: fixtures assert it stays empty."""
        with self._lock:
            return list(self._errors)

    def _take_fault(self, request: _Request) -> FaultKind | None:
        path = request.path
        with self._lock:
            for armed in self._faults:
                if armed.fault.matches(request.method, path):
                    if armed.remaining is not None:
                        armed.remaining -= 1
                        if armed.remaining == 0:
                            self._faults.remove(armed)
                    return armed.fault.kind
        return None

    def _record(self, request: _Request, status: int | None, fault: FaultKind | None) -> None:
        query: dict[str, list[str]] = {}
        for key, value in request.query:
            query.setdefault(key, []).append(value)
        entry = RecordedRequest(
            request.origin, request.method, request.path, query, request.headers, status, fault
        )
        with self._lock:
            self._log.append(entry)

    def _stall(self, seconds: float) -> None:
        self._stopping.wait(seconds)

    # -- routing -----------------------------------------------------------------------------

    def _respond(self, request: _Request) -> _Response:
        """Route a request; a bug in here becomes a 500 and is kept in `errors`."""
        try:
            if request.method not in ("GET", "HEAD"):
                return _error(405, None, f"{request.method} is not supported by this fake Hub")
            if request.origin == "cdn":
                return self._cdn(request)
            return self._hub(request)
        except Exception as exc:
            self._note_error(exc)
            return _error(500, None, f"HubServer bug: {exc!r}")

    def _note_error(self, error: BaseException) -> None:
        with self._lock:
            self._errors.append(error)

    def _hub(self, request: _Request) -> _Response:
        segments = request.segments
        if segments[:2] == ("api", "models"):
            rest = segments[2:]
            return self._list_models(request) if not rest else self._model_api(request, rest)
        lied = self._lied_download(request.path)
        if lied is not None:
            repo, revision, name = lied
            return self._resolve(request, repo, repo.repo_id, revision, name)
        # "ns/name/resolve/rev/path" or "name/resolve/rev/path"; a known repo wins.
        splits = [i for i in (2, 1) if len(segments) > i + 2 and segments[i] == "resolve"]
        if not splits:
            return _error(404, None, f"Not found: {request.path}")
        index = next((i for i in splits if self._find_repo(segments[:i])), splits[0])
        repo_id, revision = "/".join(segments[:index]), segments[index + 1]
        path = "/".join(segments[index + 2 :])
        return self._resolve(request, self._find_repo(segments[:index]), repo_id, revision, path)

    def _lied_download(self, path: str) -> tuple[_Repo, str, str] | None:
        """(repo, revision, listed name) when `path` is the URL of a made-up name, as a client
        sends it: `/../` segments are resolved by URL normalization (`../../x` is the URL `/x`),
        and a hostile hub answers there too."""
        with self._lock:
            lying = [(self._repos[repo_id], lies) for repo_id, lies in self._lies.items()]
        for repo, lies in lying:
            for name in lies.names.values():
                for revision in ("main", *repo.commits):
                    url = f"/{repo.repo_id}/resolve/{revision}/{name}"
                    if posixpath.normpath(url).replace("//", "/") == path and url != path:
                        return repo, revision, name
        return None

    def _find_repo(self, segments: tuple[str, ...]) -> _Repo | None:
        with self._lock:
            return self._repos.get("/".join(segments))

    def _split_repo(self, rest: tuple[str, ...]) -> tuple[str, _Repo | None, tuple[str, ...]]:
        """Split `ns/name/...` or `name/...` into (repo id, repo or None, what follows)."""
        for count in (2, 1):
            repo = self._find_repo(rest[:count]) if len(rest) >= count else None
            if repo is not None:
                return repo.repo_id, repo, rest[count:]
        endpoints = ("revision", "tree", "auth-check", "resolve")
        count = 2 if len(rest) >= 2 and rest[1] not in endpoints else 1
        return "/".join(rest[:count]), None, rest[count:]

    def _model_api(self, request: _Request, rest: tuple[str, ...]) -> _Response:
        repo_id, repo, tail = self._split_repo(rest)
        if repo is None:
            return _repo_not_found(repo_id)
        match tail:
            case ():
                return self._model_info(request, repo, "main")
            case ("revision", revision):
                return self._model_info(request, repo, revision)
            case ("tree", revision, *path):
                return self._tree(request, repo, revision, "/".join(path))
            case ("auth-check",):
                denied = self._gate(request, repo)
                return denied or _json_response({})
        return _error(404, None, f"Not found: {request.path}")

    # -- /api/models ---------------------------------------------------------------------------

    def _list_models(self, request: _Request) -> _Response:
        with self._lock:
            repos = list(self._repos.values())
        try:
            matching = _sort_repos(_filter_repos(repos, request), request.param("sort"))
            offset = _cursor(request)
        except ValueError as exc:
            return _error(400, None, str(exc))
        limit = request.param("limit")
        size = int(limit) if limit and limit.isdigit() else self.page_size
        size = min(max(size, 1), _MAX_PAGE_SIZE)
        page = matching[offset : offset + size]
        expand = bool(request.params("expand"))
        items = [
            _model_json(
                repo,
                repo.head,
                card=expand or request.flag("cardData"),
                siblings="names" if expand or request.flag("full") else None,
                lies=self._lies_about(repo),
            )
            for repo in page
        ]
        return _json_response(items, headers=self._next_link(request, offset + size, matching))

    def _next_link(self, request: _Request, offset: int, items: list[Any]) -> dict[str, str]:
        """The `Link: <url>; rel="next"` header while items remain (absolute URL, like the Hub)."""
        if offset >= len(items):
            return {}
        params = [(k, v) for k, v in request.query if k != "cursor"] + [("cursor", str(offset))]
        return {"Link": f'<{self.url}{request.raw_path}?{urlencode(params)}>; rel="next"'}

    def _model_info(self, request: _Request, repo: _Repo, revision: str) -> _Response:
        commit = repo.commit(revision)
        if commit is None:
            return _revision_not_found(repo.repo_id, revision)
        siblings: Literal["names", "blobs"] = "blobs" if request.flag("blobs") else "names"
        lies = self._lies_about(repo)
        item = _model_json(repo, commit, card=True, siblings=siblings, full=True, lies=lies)
        scans = self._scans_of(repo)
        if scans is not None and request.flag("securityStatus"):
            item["securityRepoStatus"] = scans.repo_status(commit)
        return _json_response(item, padding=lies.json_padding)

    # -- tree ------------------------------------------------------------------------------------

    def _tree(self, request: _Request, repo: _Repo, revision: str, path: str) -> _Response:
        commit = repo.commit(revision)
        if commit is None:
            return _revision_not_found(repo.repo_id, revision)
        entries = _tree_entries(commit, path.strip("/"), recursive=request.flag("recursive"))
        if entries is None:
            return _error(404, "EntryNotFound", f"{path} does not exist on {revision!r}")
        try:
            offset = _cursor(request)
        except ValueError as exc:
            return _error(400, None, str(exc))
        lies = self._lies_about(repo)
        if lies is not _TRUTH:
            entries = _lied_tree(entries, commit, lies, root=not path.strip("/"))
        size = self.tree_page_size
        if request.flag("expand"):
            size = min(size, EXPANDED_TREE_PAGE_SIZE)
            entries = _with_file_scans(entries, self._scans_of(repo))
        page = entries[offset : offset + size]
        link = self._next_link(request, offset + size, entries)
        return _json_response(page, headers=link, padding=lies.json_padding)

    # -- gating ------------------------------------------------------------------------------

    def _gate(self, request: _Request, repo: _Repo) -> _Response | None:
        """None if the request may read the repo's files, else the Hub's GatedRepo error."""
        if not repo.gated:
            return None
        token = request.bearer_token()
        with self._lock:
            granted = token is not None and (repo.repo_id, token) in self._grants
        if granted:
            return None
        if token is None:
            message = (
                f"Access to model {repo.repo_id} is restricted. You must have access to it "
                "and be authenticated to access it. Please log in."
            )
            return _error(401, "GatedRepo", message)
        message = (
            f"Access to model {repo.repo_id} is restricted and you are not in the authorized "
            "list. Visit the model page to ask for access."
        )
        return _error(403, "GatedRepo", message)

    # -- files -----------------------------------------------------------------------------------

    def _resolve(
        self, request: _Request, repo: _Repo | None, repo_id: str, revision: str, path: str
    ) -> _Response:
        if repo is None:
            return _repo_not_found(repo_id)
        denied = self._gate(request, repo)
        if denied is not None:
            return denied
        commit = repo.commit(revision)
        if commit is None:
            return _revision_not_found(repo.repo_id, revision)
        lies = self._lies_about(repo)
        stored = commit.files.get(lies.stored_path(path) or path)
        if stored is None:
            return _error(404, "EntryNotFound", f"{path} does not exist on {revision!r}")
        etag = lies.etag or stored.etag
        headers = {"X-Repo-Commit": lies.repo_commit or commit.sha, "ETag": f'"{etag}"'}
        elsewhere = lies.redirects.get(stored.path)
        if elsewhere is not None:
            return _Response(302, {**headers, "Location": elsewhere})
        # A HEAD tells the truth: the lie is in the body, beyond the size the listing declares.
        oversize = lies.oversize.get(stored.path) if request.method == "GET" else None
        if stored.is_lfs:
            cdn_path = f"/lfs/{stored.sha256}/{quote(stored.path)}"
            location = f"{self.cdn_url}{cdn_path}{_cdn_query(oversize)}"
            redirect = {
                **headers,
                "Location": location,
                "X-Linked-Etag": f'"{lies.etag or stored.sha256}"',
                "X-Linked-Size": str(stored.size),
            }
            return _Response(302, redirect)
        response = _file_response(
            request, stored.blob, stored.size, headers, _content_type(stored.path)
        )
        return _oversized(response, oversize)

    def _cdn(self, request: _Request) -> _Response:
        """`/lfs/<sha256>/<path>`: like a signed CDN URL, it needs no token."""
        if len(request.segments) < 3 or request.segments[0] != "lfs":
            return _error(404, None, f"Not found: {request.path}")
        sha256, name = request.segments[1], request.segments[-1]
        with self._lock:
            blob = self._blobs.get(sha256)
        if blob is None:
            return _error(404, None, f"No such object: {sha256}")
        headers = {
            "ETag": f'"{sha256}"',
            "Content-Disposition": f"inline; filename*=UTF-8''{quote(name)}",
        }
        size = blob.stat().st_size
        response = _file_response(request, blob, size, headers, "application/octet-stream")
        extra = request.param("oversize")
        if extra is None or not extra.isdigit() or request.method != "GET":
            return response
        return _oversized(response, Oversize(int(extra), content_length=request.flag("length")))


# --------------------------------------------------------------------------------------------
# Pure helpers for the routes


def _check_repo_id(repo_id: str) -> None:
    parts = repo_id.split("/")
    if len(parts) > 2 or not all(parts):
        raise ValueError(f"a repo id is 'name' or 'namespace/name', not {repo_id!r}")


def _card_data(readme: FileData | None) -> dict[str, Any] | None:
    if readme is None:
        return None
    raw = readme.read_bytes() if isinstance(readme, Path) else readme
    return parse_card_metadata(raw.decode("utf-8", errors="replace"))


def _hash_file(path: Path) -> tuple[int, str, str]:
    """(size, sha256, git blob sha1) of a file, read in chunks."""
    size = path.stat().st_size
    sha256 = hashlib.sha256()
    sha1 = hashlib.sha1(b"blob %d\0" % size, usedforsecurity=False)
    with path.open("rb") as handle:
        while chunk := handle.read(1 << 20):
            sha256.update(chunk)
            sha1.update(chunk)
    return size, sha256.hexdigest(), sha1.hexdigest()


def _cursor(request: _Request) -> int:
    """The offset that a `Link` URL carries (opaque to clients, a plain number here)."""
    text = request.param("cursor") or "0"
    if not text.isdigit():
        raise ValueError(f"invalid cursor {text!r}")
    return int(text)


def _repo_not_found(repo_id: str) -> _Response:
    return _error(404, "RepoNotFound", f"Repository not found: {repo_id}")


def _revision_not_found(repo_id: str, revision: str) -> _Response:
    return _error(404, "RevisionNotFound", f"Invalid rev id: {revision} in {repo_id}")


_SORT_KEYS: dict[str, Callable[[_Repo], Any]] = {
    "downloads": lambda r: r.downloads,
    "likes": lambda r: r.likes,
    "lastModified": lambda r: r.head.last_modified,
    "createdAt": lambda r: r.created_at,
    "trendingScore": lambda r: r.downloads,  # no trend data here: downloads stand in
}


def _sort_repos(repos: list[_Repo], sort: str | None) -> list[_Repo]:
    """Descending like the Hub's default direction; ties keep insertion order."""
    if not sort:
        return repos
    key = _SORT_KEYS.get(sort)
    if key is None:
        raise ValueError(f"invalid sort {sort!r}; expected one of {sorted(_SORT_KEYS)}")
    return sorted(repos, key=key, reverse=True)


def _filter_repos(repos: list[_Repo], request: _Request) -> list[_Repo]:
    """Apply `search`, `author`, `filter` (all must match), `pipeline_tag` and `gated`."""
    search = (request.param("search") or "").lower()
    author = (request.param("author") or "").lower()
    wanted = {tag for value in request.params("filter") for tag in value.split(",") if tag}
    pipeline = request.param("pipeline_tag")
    gated = request.param("gated")

    def keep(repo: _Repo) -> bool:
        if search and search not in repo.repo_id.lower():
            return False
        if author and (repo.author or "").lower() != author:
            return False
        if wanted and not wanted <= repo.tag_set():
            return False
        if pipeline and repo.pipeline_tag != pipeline:
            return False
        return gated is None or bool(repo.gated) == (gated.lower() == "true")

    return [repo for repo in repos if keep(repo)]


def _model_json(
    repo: _Repo,
    commit: _Commit,
    *,
    card: bool,
    siblings: Literal["names", "blobs"] | None,
    full: bool = False,
    lies: Lies = _TRUTH,
) -> dict[str, Any]:
    """A model as `/api/models` (full=False) or `/api/models/{id}` (full=True) return it."""
    item: dict[str, Any] = {
        "_id": commit.sha[:24],
        "id": lies.repo_id if lies.repo_id is not None else repo.repo_id,
        "modelId": lies.repo_id if lies.repo_id is not None else repo.repo_id,
        "author": repo.author,
        "sha": lies.sha if lies.sha is not None else commit.sha,
        "lastModified": format_hub_datetime(commit.last_modified),
        "createdAt": format_hub_datetime(repo.created_at),
        "private": False,
        "gated": repo.gated,
        "disabled": False,
        "downloads": repo.downloads,
        "likes": repo.likes,
        "tags": list(repo.tags),
    }
    if repo.pipeline_tag:
        item["pipeline_tag"] = repo.pipeline_tag
    if repo.library_name:
        item["library_name"] = repo.library_name
    if card and repo.card_data is not None:
        item["cardData"] = dict(repo.card_data)
    if siblings is not None:
        item["siblings"] = [
            _lied_sibling(_sibling_json(f, blobs=siblings == "blobs"), f.path, lies)
            for f in commit.files.values()
        ] + [dict(entry) for entry in lies.extra]
    if full:
        item["spaces"] = []
        item["usedStorage"] = sum(f.size for f in commit.files.values())
    return item


def _sibling_json(stored: StoredFile, *, blobs: bool) -> dict[str, Any]:
    sibling: dict[str, Any] = {"rfilename": stored.path}
    if blobs:
        sibling["blobId"] = stored.git_oid
        sibling["size"] = stored.size
        if stored.is_lfs:
            sibling["lfs"] = stored.lfs_json(sha_key="sha256")
    return sibling


def _lied_sibling(sibling: dict[str, Any], path: str, lies: Lies) -> dict[str, Any]:
    if path in lies.names:
        sibling["rfilename"] = lies.names[path]
    return {**sibling, **lies.fields.get(path, {})}


def _lied_tree(
    entries: list[dict[str, Any]], commit: _Commit, lies: Lies, *, root: bool
) -> list[dict[str, Any]]:
    """Tree entries with the lies about their files told (and the extra entries, at the root)."""
    told = []
    for entry in entries:
        path = entry["path"]
        lied = dict(entry)
        if entry["type"] == "file" and path in commit.files:
            lied.update(_tree_fields(lies.fields.get(path, {})))
            if path in lies.names:
                lied["path"] = lies.names[path]
        told.append(lied)
    if root:
        told += [{"type": "file", **_tree_fields(extra)} for extra in lies.extra]
    return told


def _tree_entries(commit: _Commit, base: str, *, recursive: bool) -> list[dict[str, Any]] | None:
    """Entries under `base` (the root when empty), sorted by path; None if it is no folder."""
    prefix = f"{base}/" if base else ""
    folders: set[str] = set()
    files: list[StoredFile] = []
    for path, stored in commit.files.items():
        if not path.startswith(prefix):
            continue
        parts = path[len(prefix) :].split("/")
        if recursive:
            folders.update(prefix + "/".join(parts[:i]) for i in range(1, len(parts)))
            files.append(stored)
        elif len(parts) == 1:
            files.append(stored)
        else:
            folders.add(prefix + parts[0])
    if base and not folders and not files:
        return None
    entries = [_folder_json(commit, folder) for folder in folders]
    entries += [_file_json(stored) for stored in files]
    return sorted(entries, key=lambda entry: str(entry["path"]))


def _folder_json(commit: _Commit, folder: str) -> dict[str, Any]:
    # A stand-in for git's tree id: stable, and changes whenever a file below changes.
    digest = hashlib.sha1(usedforsecurity=False)
    for path, stored in commit.files.items():
        if path.startswith(f"{folder}/"):
            digest.update(f"{path}\0{stored.git_oid}\n".encode())
    return {"type": "directory", "oid": digest.hexdigest(), "size": 0, "path": folder}


def _file_json(stored: StoredFile) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "type": "file",
        "oid": stored.git_oid,
        "size": stored.size,
        "path": stored.path,
    }
    if stored.is_lfs:
        entry["lfs"] = stored.lfs_json(sha_key="oid")
    return entry


def _content_type(path: str) -> str:
    suffix = Path(path).suffix.lower()
    if suffix == ".json":
        return "application/json; charset=utf-8"
    if suffix in (".md", ".txt", ".py", ".yaml", ".yml", "") or path.endswith(".gitattributes"):
        return "text/plain; charset=utf-8"
    return "application/octet-stream"


def _file_response(
    request: _Request, blob: Path, size: int, headers: Mapping[str, str], content_type: str
) -> _Response:
    """200 with the whole file, 206 for a satisfiable `Range`, 416 otherwise."""
    base = {**headers, "Content-Type": content_type, "Accept-Ranges": "bytes"}
    try:
        byte_range = _parse_range(request.headers.get("range"), size)
    except _Unsatisfiable:
        return _Response(416, {**base, "Content-Range": f"bytes */{size}"})
    if byte_range is None:
        return _Response(200, base, _FileSlice(blob, 0, size))
    first, last = byte_range
    partial = {**base, "Content-Range": f"bytes {first}-{last}/{size}"}
    return _Response(206, partial, _FileSlice(blob, first, last - first + 1))


# --------------------------------------------------------------------------------------------
# HTTP plumbing


class _HttpServer(ThreadingHTTPServer):
    """One origin (Hub or CDN) of a `HubServer`; remembers open connections to close on stop."""

    daemon_threads = True
    block_on_close = False

    def __init__(self, address: tuple[str, int], hub: HubServer, origin: Origin) -> None:
        self.hub = hub
        self.origin: Origin = origin
        self._connections: set[socket.socket] = set()
        self._connections_lock = threading.Lock()
        super().__init__(address, _Handler)

    def track(self, connection: socket.socket, *, open_: bool) -> None:
        with self._connections_lock:
            if open_:
                self._connections.add(connection)
            else:
                self._connections.discard(connection)

    def close_all_connections(self) -> None:
        """Wake handler threads blocked on idle keep-alive connections so they end."""
        with self._connections_lock:
            connections = list(self._connections)
        for connection in connections:
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client that goes away mid-response is normal here (faults, cancelled downloads);
        # anything else is a bug in the fake Hub and must fail the test that hit it.
        error = sys.exc_info()[1]
        if error is not None and not isinstance(error, OSError):
            self.hub._note_error(error)


class _Handler(BaseHTTPRequestHandler):
    """Parses a request, applies a fault if one is armed, and writes the routed response."""

    protocol_version = "HTTP/1.1"  # keep-alive: every response carries Content-Length
    timeout = _HANDLER_IDLE_TIMEOUT_S
    server: _HttpServer

    def setup(self) -> None:
        super().setup()
        # Headers and body go out in separate writes: without this, Nagle's algorithm and the
        # client's delayed ACK add ~40 ms to every keep-alive response.
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.server.track(self.connection, open_=True)

    def finish(self) -> None:
        self.server.track(self.connection, open_=False)
        with contextlib.suppress(OSError):
            super().finish()

    def do_GET(self) -> None:
        self._handle()

    def do_HEAD(self) -> None:
        self._handle()

    def do_POST(self) -> None:
        self._handle()

    def do_PUT(self) -> None:
        self._handle()

    def do_DELETE(self) -> None:
        self._handle()

    def do_PATCH(self) -> None:
        self._handle()

    def log_message(self, format: str, *args: Any) -> None:
        pass  # the request log replaces stderr noise

    def _handle(self) -> None:
        request = self._parse()
        hub = self.server.hub
        fault = hub._take_fault(request)
        if isinstance(fault, Refuse):
            hub._record(request, None, fault)
            self.close_connection = True
            return
        if isinstance(fault, Stall):
            hub._stall(fault.seconds)
        response = _injected_response(fault) or hub._respond(request)
        # Recorded before answering: once the client has the answer, the log already shows it.
        hub._record(request, response.status, fault)
        try:
            self._write(request, response, fault)
        except OSError:  # the client went away
            self.close_connection = True

    def _parse(self) -> _Request:
        self._discard_request_body()
        split = urlsplit(self.path)
        segments = tuple(unquote(s) for s in split.path.split("/")[1:])
        if segments and segments[-1] == "":
            segments = segments[:-1]
        return _Request(
            origin=self.server.origin,
            method=self.command,
            raw_path=split.path,
            segments=segments,
            query=tuple(parse_qsl(split.query, keep_blank_values=True)),
            headers={name.lower(): value for name, value in self.headers.items()},
        )

    def _discard_request_body(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            self.rfile.read(length)

    def _write(self, request: _Request, response: _Response, fault: FaultKind | None) -> None:
        self.send_response(response.status)
        for name, value in response.headers.items():
            self.send_header(name, _latin1(value))
        if response.content_length:
            self.send_header("Content-Length", str(response.length))
        else:  # the body ends when the connection does (HTTP/1.0 style)
            self.send_header("Connection", "close")
            self.close_connection = True
        self.end_headers()
        if request.method == "HEAD":
            return
        limit = fault.n_bytes if isinstance(fault, DropAfter) else None
        flip = fault.offset if isinstance(fault, FlipByte) else None
        sent = 0
        for start, chunk in _body_chunks(response.body, response.filler):
            data = _flip(chunk, flip - start) if flip is not None else chunk
            if limit is not None:
                data = data[: max(0, limit - sent)]
            self.wfile.write(data)
            sent += len(data)
            if limit is not None and sent >= limit:
                break
        self.wfile.flush()
        if limit is not None:
            self.close_connection = True  # the body is short: the connection cannot be reused


def _injected_response(fault: FaultKind | None) -> _Response | None:
    if isinstance(fault, Answer):
        if isinstance(fault.body, bytes):
            return _Response(fault.status, {"Content-Type": fault.content_type}, fault.body)
        answer = _json_response(fault.body, fault.status)
        return _Response(fault.status, {"Content-Type": fault.content_type}, answer.body)
    if isinstance(fault, Status):
        headers = {} if fault.retry_after is None else {"Retry-After": str(fault.retry_after)}
        return _error(fault.code, None, fault.body, **headers)
    if isinstance(fault, MalformedJson):
        return _Response(200, {"Content-Type": "application/json"}, b'{"id": "truncated, <html>')
    return None


def _body_chunks(body: bytes | _FileSlice, filler: int = 0) -> Iterator[tuple[int, bytes]]:
    """(offset of the chunk in the whole resource, chunk) pairs; then `filler` zero bytes."""
    yield from _content_chunks(body)
    end = (body.start + body.length) if isinstance(body, _FileSlice) else len(body)
    while filler > 0:
        chunk = bytes(min(_CHUNK_SIZE, filler))
        yield end, chunk
        end += len(chunk)
        filler -= len(chunk)


def _content_chunks(body: bytes | _FileSlice) -> Iterator[tuple[int, bytes]]:
    if isinstance(body, bytes):
        yield 0, body
        return
    with body.path.open("rb") as handle:
        handle.seek(body.start)
        position, remaining = body.start, body.length
        while remaining > 0:
            chunk = handle.read(min(_CHUNK_SIZE, remaining))
            if not chunk:
                break
            yield position, chunk
            position += len(chunk)
            remaining -= len(chunk)


def _flip(chunk: bytes, index: int) -> bytes:
    if not 0 <= index < len(chunk):
        return chunk
    return chunk[:index] + bytes([chunk[index] ^ 0xFF]) + chunk[index + 1 :]


def _latin1(value: str) -> str:
    """http.server writes headers as latin-1; send UTF-8 bytes instead, as the Hub does."""
    return value.encode("utf-8").decode("latin-1")

"""A fake Civitai on 127.0.0.1 that ModelDeck's real Civitai client talks to over HTTP.

It speaks the documented shapes of Civitai's public REST API (developer.civitai.com):
`GET /api/v1/models` with `query`, `types`, `baseModels`, `nsfw`, `sort`, `period`,
`allowCommercialUse` / `allowDerivatives` / `allowNoCredit` / `allowDifferentLicense` and
cursor paging (`metadata.nextCursor`, `nextPage`); `/api/v1/models/{id}`;
`/api/v1/model-versions/{id}`; `/api/v1/model-versions/by-hash/{hash}` (SHA256, AutoV2, any
case); and downloads from `/api/download/models/{versionId}`, which redirect (307) to a
"CDN" path whose answer names the file in `Content-Disposition` and honours `Range`.

Errors as Civitai sends them: 404 `{"error": "No model with id 1"}`; 401 for a file whose
creator requires sign-in, unless a Bearer token (or `?token=`) is sent; 429 with
`Retry-After` (`rate_limit`). Faults: `drop_after` (close after N bytes of a file, once),
`flip_byte` (corrupt one byte of a file as served), `answer` (a raw body for one path).
`requests` records what was asked, Authorization included.
"""

from __future__ import annotations

import hashlib
import json
import re
import threading
import zlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import parse_qs, quote, unquote, urlsplit

from tests.support.fake_hub_http import FakeHubHttp

__all__ = ["CivitaiServer", "ServedFile", "autov2"]


def autov2(data: bytes) -> str:
    """Civitai's AutoV2 of a file: the first 10 hex digits of its sha256, upper case."""
    return hashlib.sha256(data).hexdigest()[:10].upper()


@dataclass
class ServedFile:
    """A file of a version: its bytes and how Civitai describes it."""

    id: int
    name: str
    data: bytes
    kind: str = "Model"
    format: str = "SafeTensor"
    fp: str | None = "fp16"
    size: str | None = "pruned"
    pickle_scan: str = "Success"
    virus_scan: str = "Success"
    pickle_message: str = "No Pickle imports"
    primary: bool = True
    requires_login: bool = False
    disposition: str | None = None  # the download's Content-Disposition (default: the name)

    def json(self, base: str, version_id: int) -> dict[str, Any]:
        sha = hashlib.sha256(self.data).hexdigest().upper()
        return {
            "id": self.id,
            "sizeKB": len(self.data) / 1024,
            "name": self.name,
            "type": self.kind,
            "pickleScanResult": self.pickle_scan,
            "pickleScanMessage": self.pickle_message,
            "virusScanResult": self.virus_scan,
            "virusScanMessage": None,
            "scannedAt": "2026-11-01T10:00:00.000Z",
            "metadata": {"format": self.format, "size": self.size, "fp": self.fp},
            "hashes": {
                "AutoV1": "0" * 8,
                "AutoV2": sha[:10],
                "SHA256": sha,
                "CRC32": f"{zlib.crc32(self.data):08X}",
                "BLAKE3": "0" * 64,
            },
            "primary": self.primary,
            "downloadUrl": f"{base}/api/download/models/{version_id}"
            f"?type={quote(self.kind)}&format={quote(self.format)}",
        }


@dataclass
class _Version:
    id: int
    name: str
    base_model: str
    trained_words: list[str]
    files: list[ServedFile]
    description: str = "<p>Version notes.</p>"


@dataclass
class _Model:
    id: int
    name: str
    type: str
    nsfw: bool
    versions: list[_Version]
    description: str
    tags: list[str]
    creator: str
    downloads: int
    likes: int
    allow_commercial_use: Any  # a list (today) or a string (older answers)
    allow_derivatives: bool
    allow_no_credit: bool
    allow_different_license: bool


@dataclass(frozen=True)
class RecordedRequest:
    method: str
    path: str
    query: Mapping[str, list[str]]
    authorization: str | None
    range: str | None


@dataclass
class _Faults:
    rate_limited: int = 0
    retry_after: str = "7"
    rate_limited_prefix: str = "/"
    drop_after: dict[int, int] = field(default_factory=dict)  # file id -> bytes, once
    flipped: dict[int, int] = field(default_factory=dict)  # file id -> offset
    stalled: dict[int, int] = field(default_factory=dict)  # file id -> bytes, once
    answers: dict[str, tuple[int, bytes]] = field(default_factory=dict)


class CivitaiServer(FakeHubHttp):
    """Start with `with CivitaiServer() as civitai:`; `civitai.url` is its endpoint."""

    def __init__(self, *, token: str = "civitai-test-token") -> None:
        self.token = token
        self._models: dict[int, _Model] = {}
        self._lock = threading.Lock()
        self._faults = _Faults()
        self.requests: list[RecordedRequest] = []
        super().__init__(_handler(self))

    # -- content --------------------------------------------------------------------------------

    def add_model(
        self,
        model_id: int,
        name: str,
        *,
        type: str = "Checkpoint",
        files: list[ServedFile] | None = None,
        version_id: int | None = None,
        base_model: str = "SD 1.5",
        trained_words: tuple[str, ...] = (),
        nsfw: bool = False,
        description: str = "<p>A model.</p>",
        tags: tuple[str, ...] = (),
        creator: str = "someone",
        downloads: int = 0,
        likes: int = 0,
        allow_commercial_use: Any = ("Image", "RentCivit"),
        allow_derivatives: bool = True,
        allow_no_credit: bool = True,
        allow_different_license: bool = True,
        extra_versions: tuple[tuple[int, str, list[ServedFile]], ...] = (),
    ) -> None:
        """Add a model with one version (`version_id`, default model id * 10) and files."""
        version = _Version(
            id=version_id or model_id * 10,
            name="v1.0",
            base_model=base_model,
            trained_words=list(trained_words),
            files=files or [],
        )
        versions = [
            _Version(id=vid, name=vname, base_model=base_model, trained_words=[], files=vfiles)
            for vid, vname, vfiles in extra_versions
        ]
        commercial = (
            list(allow_commercial_use)
            if isinstance(allow_commercial_use, tuple | list)
            else allow_commercial_use
        )
        with self._lock:
            self._models[model_id] = _Model(
                id=model_id, name=name, type=type, nsfw=nsfw, versions=[*versions, version],
                description=description, tags=list(tags), creator=creator, downloads=downloads,
                likes=likes, allow_commercial_use=commercial, allow_derivatives=allow_derivatives,
                allow_no_credit=allow_no_credit, allow_different_license=allow_different_license,
            )  # fmt: skip

    # -- faults ---------------------------------------------------------------------------------

    def rate_limit(self, times: int = 1, *, retry_after: str = "7", prefix: str = "/") -> None:
        """Answer the next `times` requests (to paths starting with `prefix`) with 429 and
        `Retry-After`."""
        with self._lock:
            self._faults.rate_limited = times
            self._faults.retry_after = retry_after
            self._faults.rate_limited_prefix = prefix

    def drop_after(self, file_id: int, size: int) -> None:
        """Close the connection after `size` bytes of the file's next download."""
        with self._lock:
            self._faults.drop_after[file_id] = size

    def stall_after(self, file_id: int, size: int) -> None:
        """Send `size` bytes of the file's next download, then nothing until the server stops."""
        with self._lock:
            self._faults.stalled[file_id] = size

    def clear_faults(self) -> None:
        with self._lock:
            self._faults = _Faults()

    def flip_byte(self, file_id: int, offset: int = 0) -> None:
        """Serve the file with the byte at `offset` flipped (its sha256 no longer matches)."""
        with self._lock:
            self._faults.flipped[file_id] = offset

    def answer(self, path: str, body: bytes, status: int = 200) -> None:
        """Answer GET `path` with these raw bytes, whatever it asks for."""
        with self._lock:
            self._faults.answers[path] = (status, body)

    def requests_to(self, prefix: str) -> list[RecordedRequest]:
        with self._lock:
            return [request for request in self.requests if request.path.startswith(prefix)]

    # -- answers --------------------------------------------------------------------------------

    def model_json(self, model: _Model) -> dict[str, Any]:
        return {
            "id": model.id,
            "name": model.name,
            "description": model.description,
            "type": model.type,
            "poi": False,
            "nsfw": model.nsfw,
            "nsfwLevel": 4 if model.nsfw else 1,
            "allowNoCredit": model.allow_no_credit,
            "allowCommercialUse": model.allow_commercial_use,
            "allowDerivatives": model.allow_derivatives,
            "allowDifferentLicense": model.allow_different_license,
            "stats": {
                "downloadCount": model.downloads,
                "favoriteCount": 0,
                "thumbsUpCount": model.likes,
                "thumbsDownCount": 0,
                "commentCount": 0,
                "ratingCount": 0,
                "rating": 0,
            },
            "creator": {"username": model.creator, "image": None},
            "tags": model.tags,
            "modelVersions": [
                self._version_json(model, version) for version in reversed(model.versions)
            ],
        }

    def _version_json(self, model: _Model, version: _Version, *, standalone: bool = False) -> Any:
        data: dict[str, Any] = {
            "id": version.id,
            "modelId": model.id,
            "name": version.name,
            "createdAt": "2026-10-01T12:00:00.000Z",
            "updatedAt": "2026-10-02T12:00:00.000Z",
            "publishedAt": "2026-10-02T12:00:00.000Z",
            "trainedWords": version.trained_words,
            "baseModel": version.base_model,
            "baseModelType": "Standard",
            "earlyAccessTimeFrame": 0,
            "description": version.description,
            "stats": {"downloadCount": model.downloads, "ratingCount": 0, "rating": 0},
            "files": [file.json(self.url, version.id) for file in version.files],
            "images": [],
            "downloadUrl": f"{self.url}/api/download/models/{version.id}",
        }
        if standalone:
            data["model"] = {"name": model.name, "type": model.type, "nsfw": model.nsfw,
                             "poi": False}  # fmt: skip
        return data

    def _find_version(self, version_id: int) -> tuple[_Model, _Version] | None:
        for model in self._models.values():
            for version in model.versions:
                if version.id == version_id:
                    return model, version
        return None

    def _by_hash(self, text: str) -> tuple[_Model, _Version] | None:
        wanted = text.lower()
        for model in self._models.values():
            for version in model.versions:
                for file in version.files:
                    sha = hashlib.sha256(file.data).hexdigest()
                    if wanted in (sha, sha[:10]):
                        return model, version
        return None

    def _list(self, query: Mapping[str, list[str]]) -> dict[str, Any]:
        def values(name: str) -> list[str]:
            return [part for value in query.get(name, []) for part in value.split(",") if part]

        def flag(name: str) -> bool | None:
            value = query.get(name, [None])[0]
            return None if value is None else value == "true"

        text = query.get("query", [""])[0].lower()
        types = values("types")
        bases = values("baseModels")
        commercial = values("allowCommercialUse")
        nsfw = flag("nsfw")
        limit = int(query.get("limit", ["100"])[0])
        cursor = query.get("cursor", [None])[0]
        start = int(cursor.removeprefix("c")) if cursor else 0
        matching = []
        for model in sorted(self._models.values(), key=lambda m: -m.downloads):
            granted = model.allow_commercial_use
            granted = granted if isinstance(granted, list) else [granted]
            if text and text not in model.name.lower() and text not in model.tags:
                continue
            if types and model.type not in types:
                continue
            if bases and not any(v.base_model in bases for v in model.versions):
                continue
            if nsfw is False and model.nsfw:
                continue
            if commercial and not set(commercial) <= set(granted):
                continue
            if any(
                flag(name) is True and not getattr(model, attr)
                for name, attr in (
                    ("allowDerivatives", "allow_derivatives"),
                    ("allowNoCredit", "allow_no_credit"),
                    ("allowDifferentLicense", "allow_different_license"),
                )
            ):
                continue
            matching.append(model)
        page = matching[start : start + limit]
        metadata: dict[str, Any] = {}
        if start + limit < len(matching):
            metadata["nextCursor"] = f"c{start + limit}"
            metadata["nextPage"] = f"{self.url}/api/v1/models?cursor=c{start + limit}"
        return {"items": [self.model_json(m) for m in page], "metadata": metadata}


_DOWNLOAD = re.compile(r"/api/download/models/(\d+)")
_CDN = re.compile(r"/cdn/(\d+)/(\d+)")
_RANGE = re.compile(r"bytes=(\d+)-")


def _handler(server: CivitaiServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:
            pass

        def do_GET(self) -> None:
            if server.stopped:  # gone: the connection closes without an answer
                self.close_connection = True
                return
            parts = urlsplit(self.path)
            path = unquote(parts.path)
            query = parse_qs(parts.query)
            with server._lock:
                server.requests.append(
                    RecordedRequest(
                        "GET",
                        path,
                        query,
                        self.headers.get("Authorization"),
                        self.headers.get("Range"),
                    )
                )
                faults = server._faults
                if faults.rate_limited > 0 and path.startswith(faults.rate_limited_prefix):
                    server._faults.rate_limited -= 1
                    retry = server._faults.retry_after
                    self._json({"error": "Too many requests"}, 429, {"Retry-After": retry})
                    return
                canned = server._faults.answers.get(path)
            if canned is not None:
                self._send(canned[0], {"Content-Type": "application/json"}, canned[1])
                return
            # Not under the lock: a stalled download must not hold up other requests.
            self._route(path, query)

        def _route(self, path: str, query: Mapping[str, list[str]]) -> None:
            if path == "/api/v1/models":
                self._json(server._list(query))
                return
            if match := re.fullmatch(r"/api/v1/models/(\d+)", path):
                model = server._models.get(int(match.group(1)))
                if model is None:
                    self._json({"error": f"No model with id {match.group(1)}"}, 404)
                else:
                    self._json(server.model_json(model))
                return
            if match := re.fullmatch(r"/api/v1/model-versions/(\d+)", path):
                found = server._find_version(int(match.group(1)))
                self._version(found, f"No version with id {match.group(1)}")
                return
            if match := re.fullmatch(r"/api/v1/model-versions/by-hash/(\w+)", path):
                found = server._by_hash(match.group(1))
                self._version(found, "Model not found")
                return
            if match := _DOWNLOAD.fullmatch(path):
                self._download(int(match.group(1)), query)
                return
            if match := _CDN.fullmatch(path):
                self._cdn(int(match.group(1)), int(match.group(2)))
                return
            self._json({"error": "Not found"}, 404)

        def _version(self, found: tuple[_Model, _Version] | None, missing: str) -> None:
            if found is None:
                self._json({"error": missing}, 404)
            else:
                self._json(server._version_json(*found, standalone=True))

        def _download(self, version_id: int, query: Mapping[str, list[str]]) -> None:
            found = server._find_version(version_id)
            if found is None:
                self._json({"error": "Model not found"}, 404)
                return
            _, version = found
            kind = query.get("type", [None])[0]
            fmt = query.get("format", [None])[0]
            candidates = [
                f for f in version.files
                if (kind is None or f.kind == kind) and (fmt is None or f.format == fmt)
            ]  # fmt: skip
            if kind is None and fmt is None:
                candidates = [f for f in candidates if f.primary] or candidates
            if not candidates:
                self._json({"error": "File not found"}, 404)
                return
            chosen = candidates[0]
            bearer = (self.headers.get("Authorization") or "").removeprefix("Bearer ").strip()
            token = bearer or query.get("token", [""])[0]
            if chosen.requires_login and token != server.token:
                self._json(
                    {"error": "Unauthorized", "message": "The creator of this asset requires "
                     "you to be logged in to download it"}, 401)  # fmt: skip
                return
            location = f"{server.url}/cdn/{version_id}/{chosen.id}"
            self._send(307, {"Location": location}, b"")

        def _cdn(self, version_id: int, file_id: int) -> None:
            found = server._find_version(version_id)
            files = [f for f in found[1].files if f.id == file_id] if found else []
            if not files:
                self._send(404, {"Content-Type": "text/plain"}, b"no such object")
                return
            served = files[0]
            data = served.data
            with server._lock:
                flip = server._faults.flipped.get(file_id)
            if flip is not None and flip < len(data):
                data = data[:flip] + bytes([data[flip] ^ 0xFF]) + data[flip + 1 :]
            start = 0
            status = 200
            headers = {
                "Content-Type": "application/octet-stream",
                "Content-Disposition": served.disposition
                or f'attachment; filename="{served.name}"',
                "Accept-Ranges": "bytes",
            }
            match = _RANGE.fullmatch(self.headers.get("Range") or "")
            if match and int(match.group(1)) < len(data):
                start = int(match.group(1))
                status = 206
                headers["Content-Range"] = f"bytes {start}-{len(data) - 1}/{len(data)}"
            body = data[start:]
            with server._lock:
                drop = server._faults.drop_after.pop(file_id, None)
                stall = server._faults.stalled.pop(file_id, None)
            if drop is not None and drop < len(body):
                self._send(status, headers, body[:drop], length=len(body))
                self.close_connection = True
                return
            if stall is not None and stall < len(body):
                self._send(status, headers, body[:stall], length=len(body))
                server._released.wait(60)
                self.close_connection = True
                return
            self._send(status, headers, body)

        def _json(
            self, data: object, status: int = 200, headers: Mapping[str, str] | None = None
        ) -> None:
            body = json.dumps(data).encode()
            self._send(status, {"Content-Type": "application/json", **(headers or {})}, body)

        def _send(
            self, status: int, headers: Mapping[str, str], body: bytes, *, length: int | None = None
        ) -> None:
            self.send_response(status)
            for name, value in headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(body) if length is None else length))
            self.end_headers()
            try:
                self.wfile.write(body)
                self.wfile.flush()
            except (BrokenPipeError, ConnectionResetError):
                self.close_connection = True

    return Handler

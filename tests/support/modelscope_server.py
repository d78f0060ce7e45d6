"""A fake ModelScope on 127.0.0.1 that ModelDeck's ModelScope client talks to over real HTTP.

It speaks the documented shapes of the four routes the app uses:

- `GET /openapi/v1/models?search=&sort=&page_number=&page_size=&owner=&filter.task=&filter.license=`
  → `{"success": true, "data": {"models": [...], "total_count": N}}`, paged by number/size;
- `GET /openapi/v1/models/{owner}/{name}` → `{"success": true, "data": {...}}`;
  an unknown model → 404 `{"success": false, "message": "..."}`;
- `GET /api/v1/models/{owner}/{name}/repo/files?Revision=master&Recursive=True[&Root=dir]`
  → `{"Code": 200, "Data": {"Files": [{"Name", "Path", "Size", "Sha256", "Type", "IsLFS",
  "Revision"}]}, "Message": "success", "Success": true}`, at most `listing_cap` (3,000)
  entries, folders included, like the real hub; an unknown revision → 404 with `Code`;
- `GET /api/v1/models/{owner}/{name}/repo?Revision=master&FilePath=...` → the bytes, with
  `Range` answered by 206.

Private models need the token (`Authorization: Bearer` or the SDK's `m_session_id` cookie),
else 401. Faults: `rate_limit(n, retry_after)` answers the next n requests with 429;
`flip_byte(model, path)` corrupts one byte of a download; `drop_after(model, path, n)` cuts
the next download of a file after n bytes. `requests` logs what was asked.
"""

from __future__ import annotations

import hashlib
import json
import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from tests.support.fake_hub_http import FakeHubHttp

__all__ = ["ModelScopeServer", "MsRequest"]

_LFS_SUFFIXES = (".gguf", ".safetensors", ".bin", ".pt", ".onnx")


@dataclass
class _Model:
    model_id: str
    files: dict[str, bytes]
    license: str
    tasks: tuple[str, ...]
    downloads: int
    likes: int
    private: bool
    commit: str
    flipped: set[str] = field(default_factory=set)
    drops: dict[str, int] = field(default_factory=dict)
    stalls: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class MsRequest:
    """One request the server received."""

    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]


class ModelScopeServer(FakeHubHttp):
    """A ModelScope test server. Use as a context manager; `url` is its endpoint."""

    def __init__(self, *, token: str | None = None, listing_cap: int = 3000) -> None:
        self.token = token
        self.listing_cap = listing_cap
        self.requests: list[MsRequest] = []
        self._models: dict[str, _Model] = {}
        self._rate_limited = 0
        self._retry_after = "1"
        self._lock = threading.Lock()
        self._raw: tuple[str, bytes, int] | None = None
        super().__init__(_handler_for(self))

    # -- content and faults -----------------------------------------------------------------

    def add_model(
        self,
        model_id: str,
        files: dict[str, bytes],
        *,
        license: str = "Apache License 2.0",
        tasks: tuple[str, ...] = ("text-generation",),
        downloads: int = 0,
        likes: int = 0,
        private: bool = False,
    ) -> None:
        digest = hashlib.sha1(model_id.encode(), usedforsecurity=False)
        for path in sorted(files):
            digest.update(path.encode() + hashlib.sha256(files[path]).digest())
        self._models[model_id] = _Model(
            model_id, dict(files), license, tasks, downloads, likes, private, digest.hexdigest()
        )

    def rate_limit(self, count: int, retry_after: str = "1") -> None:
        """Answer the next `count` requests with 429 and `Retry-After`."""
        with self._lock:
            self._rate_limited = count
            self._retry_after = retry_after

    def flip_byte(self, model_id: str, path: str) -> None:
        """Corrupt the middle byte of `path` in every download from now on."""
        self._models[model_id].flipped.add(path)

    def heal(self, model_id: str, path: str) -> None:
        self._models[model_id].flipped.discard(path)

    def drop_after(self, model_id: str, path: str, count: int) -> None:
        """Cut the next download of `path` after `count` bytes of its body."""
        self._models[model_id].drops[path] = count

    def answer_raw(self, prefix: str | None, body: bytes = b"", status: int = 200) -> None:
        """Answer every request whose path starts with `prefix` with `body` (None: stop)."""
        self._raw = None if prefix is None else (prefix, body, status)

    def stall_after(self, model_id: str, path: str, count: int) -> None:
        """Send `count` bytes of every download of `path`, then nothing until the server stops
        (or `release()`): a download that a test can kill in the middle."""
        self._models[model_id].stalls[path] = count

    def stop_stalling(self, model_id: str, path: str) -> None:
        self._models[model_id].stalls.pop(path, None)

    def release(self) -> None:
        """End every stalled download (their connections close)."""
        self._released.set()

    def requests_to(self, prefix: str) -> list[MsRequest]:
        return [request for request in self.requests if request.path.startswith(prefix)]

    # -- answers ----------------------------------------------------------------------------

    def _take_rate_limit(self) -> str | None:
        with self._lock:
            if self._rate_limited > 0:
                self._rate_limited -= 1
                return self._retry_after
        return None

    def _authorized(self, headers: dict[str, str]) -> bool:
        if self.token is None:
            return False
        bearer = headers.get("authorization", "")
        cookie = headers.get("cookie", "")
        return bearer == f"Bearer {self.token}" or f"m_session_id={self.token}" in cookie

    def _visible(self, model: _Model, headers: dict[str, str]) -> bool:
        return not model.private or self._authorized(headers)

    def model_json(self, model: _Model) -> dict[str, Any]:
        return {
            "id": model.model_id,
            "display_name": model.model_id.split("/")[1],
            "downloads": model.downloads,
            "likes": model.likes,
            "license": model.license,
            "tasks": list(model.tasks),
            "tags": ["modelscope-test"],
            "libraries": ["gguf"] if any(p.endswith(".gguf") for p in model.files) else [],
            "last_modified": datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC).isoformat(),
            "file_size": sum(len(data) for data in model.files.values()),
        }

    def search(self, query: dict[str, str], headers: dict[str, str]) -> dict[str, Any]:
        text = query.get("search", "").casefold()
        found = [
            model
            for model in self._models.values()
            if self._visible(model, headers)
            and text in model.model_id.casefold()
            and model.model_id.startswith(query.get("owner", "") and query["owner"] + "/")
            and (not query.get("filter.task") or query["filter.task"] in model.tasks)
        ]
        sort = query.get("sort", "downloads")
        key = "likes" if sort == "likes" else "downloads"
        found.sort(key=lambda model: (-getattr(model, key), model.model_id))
        number = max(1, int(query.get("page_number", "1")))
        size = max(1, min(100, int(query.get("page_size", "20"))))
        page = found[(number - 1) * size : number * size]
        return {
            "success": True,
            "request_id": "test",
            "data": {"models": [self.model_json(m) for m in page], "total_count": len(found)},
        }

    def entries(self, model: _Model, root: str | None, recursive: bool) -> list[dict[str, Any]]:
        folders: set[str] = set()
        for path in model.files:
            parts = path.split("/")[:-1]
            folders.update("/".join(parts[: n + 1]) for n in range(len(parts)))
        prefix = (root.strip("/") + "/") if root and root.strip("/") else ""
        rows: list[dict[str, Any]] = []
        for folder in sorted(folders):
            if folder.startswith(prefix) and (recursive or "/" not in folder[len(prefix) :]):
                rows.append(
                    {"Name": folder.rsplit("/", 1)[-1], "Path": folder, "Type": "tree",
                     "Size": 0, "Sha256": "", "IsLFS": False, "Revision": model.commit}
                )  # fmt: skip
        for path in sorted(model.files):
            if path.startswith(prefix) and (recursive or "/" not in path[len(prefix) :]):
                data = model.files[path]
                rows.append(
                    {"Name": path.rsplit("/", 1)[-1], "Path": path, "Type": "blob",
                     "Size": len(data), "Sha256": hashlib.sha256(data).hexdigest(),
                     "IsLFS": path.endswith(_LFS_SUFFIXES), "Revision": model.commit}
                )  # fmt: skip
        return rows[: self.listing_cap]

    def body_of(self, model: _Model, path: str) -> bytes:
        data = model.files[path]
        if path in model.flipped and data:
            middle = len(data) // 2
            data = data[:middle] + bytes([data[middle] ^ 0xFF]) + data[middle + 1 :]
        return data


def _handler_for(server: ModelScopeServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: object) -> None:  # quiet
            return

        def do_GET(self) -> None:
            if server.stopped:
                self.close_connection = True
                return
            parts = urlsplit(self.path)
            query = {key: values[-1] for key, values in parse_qs(parts.query).items()}
            headers = {key.lower(): value for key, value in self.headers.items()}
            path = unquote(parts.path)
            server.requests.append(MsRequest("GET", path, query, headers))
            retry_after = server._take_rate_limit()
            if retry_after is not None:
                self._json(429, {"Code": 429, "Message": "too many requests"}, retry_after)
                return
            raw = server._raw
            if raw is not None and path.startswith(raw[0]):
                self.send_response(raw[2])
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(raw[1])))
                self.end_headers()
                self.wfile.write(raw[1])
                return
            self._route(path, query, headers)

        def _route(self, path: str, query: dict[str, str], headers: dict[str, str]) -> None:
            if path == "/openapi/v1/models":
                self._json(200, server.search(query, headers))
                return
            if path.startswith("/openapi/v1/models/"):
                model = self._model(path.removeprefix("/openapi/v1/models/"), headers, True)
                if model is not None:
                    self._json(200, {"success": True, "data": server.model_json(model)})
                return
            if path.startswith("/api/v1/models/") and path.endswith("/repo/files"):
                model_id = path.removeprefix("/api/v1/models/").removesuffix("/repo/files")
                model = self._model(model_id, headers, False)
                if model is None:
                    return
                if query.get("Revision", "master") not in ("master", model.commit):
                    self._json(404, {"Code": 10010205, "Message": "revision not exist",
                                     "Success": False})  # fmt: skip
                    return
                recursive = query.get("Recursive", "False").lower() == "true"
                files = server.entries(model, query.get("Root"), recursive)
                self._json(200, {"Code": 200, "Data": {"Files": files}, "Message": "success",
                                 "Success": True})  # fmt: skip
                return
            if path.startswith("/api/v1/models/") and path.endswith("/repo"):
                model = self._model(
                    path.removeprefix("/api/v1/models/").removesuffix("/repo"), headers, False
                )
                if model is not None:
                    self._file(model, query, headers)
                return
            self._json(404, {"Code": 404, "Message": "not found", "Success": False})

        def _model(self, model_id: str, headers: dict[str, str], openapi: bool) -> _Model | None:
            model = server._models.get(model_id)
            if model is not None and server._visible(model, headers):
                return model
            if model is not None and model.private:
                self._json(401, {"Code": 10010401, "Message": "unauthorized", "Success": False})
            elif openapi:
                self._json(404, {"success": False, "message": f"model {model_id} not exist"})
            else:
                self._json(404, {"Code": 10010101, "Message": "model not exist",
                                 "Success": False})  # fmt: skip
            return None

        def _file(self, model: _Model, query: dict[str, str], headers: dict[str, str]) -> None:
            path = query.get("FilePath", "")
            if query.get("Revision", "master") not in ("master", model.commit) or (
                path not in model.files
            ):
                self._json(404, {"Code": 10010103, "Message": "file not exist", "Success": False})
                return
            body = server.body_of(model, path)
            start = 0
            status = 200
            extra: dict[str, str] = {}
            range_header = headers.get("range", "")
            if range_header.startswith("bytes=") and range_header.endswith("-"):
                start = int(range_header[6:-1])
                if start >= len(body) and body:
                    self.send_response(416)
                    self.send_header("Content-Range", f"bytes */{len(body)}")
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                status = 206
                extra["Content-Range"] = f"bytes {start}-{len(body) - 1}/{len(body)}"
            payload = body[start:]
            drop = model.drops.pop(path, None)
            stall = model.stalls.get(path)
            self.send_response(status)
            self.send_header("Content-Type", "application/octet-stream")
            self.send_header("Content-Length", str(len(payload)))
            for key, value in extra.items():
                self.send_header(key, value)
            self.end_headers()
            if stall is not None:
                self.wfile.write(payload[:stall])
                self.wfile.flush()
                server._released.wait(60)
                self.close_connection = True
                return
            if drop is not None:
                self.wfile.write(payload[:drop])
                self.wfile.flush()
                self.close_connection = True
                return
            self.wfile.write(payload)

        def _json(self, status: int, value: object, retry_after: str | None = None) -> None:
            raw = json.dumps(value).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(raw)))
            if retry_after is not None:
                self.send_header("Retry-After", retry_after)
            self.end_headers()
            self.wfile.write(raw)

    return Handler

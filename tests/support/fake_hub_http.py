"""The HTTP plumbing the fake hubs (tests/support/civitai_server.py, modelscope_server.py)
share: a threaded server on a free port of 127.0.0.1, run for the length of a `with` block.

On exit every stalled answer is released (`_released`) and `stopped` is set, so a handler
closes kept-alive connections without an answer, like a hub that went away.
"""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Self

__all__ = ["FakeHubHttp"]


class FakeHubHttp:
    """A fake hub's server; a subclass sets up its state, then calls `super().__init__` with
    its request handler. Start with `with Subclass() as hub:`; `hub.url` is its endpoint."""

    def __init__(self, handler: type[BaseHTTPRequestHandler]) -> None:
        self._released = threading.Event()  # ends every stall (set when the server stops)
        self.stopped = False
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._released.set()
        self.stopped = True  # kept-alive connections get no answer either
        self._server.shutdown()
        self._server.server_close()

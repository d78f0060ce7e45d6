"""`ModelServer`: the OpenAI-compatible API, run by uvicorn on a thread of the app process.

The server answers from the app's own `LocalChatEngine` (the same child process the Chat page
uses), so nothing is loaded twice — or, after `serve_library(pool)`, from a `ModelPool` that
loads any library model a request names, each in an engine process of its own. It listens
on 127.0.0.1 unless told otherwise, and it refuses to listen anywhere else without an API
key. Web pages may use it only from the origins it is given (none by default;
`browser_guard`).
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import ipaddress
import socket
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from types import TracebackType
from typing import TYPE_CHECKING

from app.chat.local import LocalChatEngine
from app.llm.engine import LoadedModel
from app.llm.messages import LoadSettings
from app.serving.errors import (
    ServerStartError,
    ServingError,
    ServingUnavailableError,
    UnprotectedBindError,
)
from app.serving.request_log import RequestLog
from app.serving.served_engine import ServedEngine
from app.settings import validate_origins

if TYPE_CHECKING:
    import uvicorn

    from app.serving.model_pool import ModelPool
    from app.serving.request_documents import DocumentSource
    from app.serving.served_models import ModelSource


@dataclass(frozen=True)
class ApiUrls:
    """The base URLs clients are given: OpenAI's ends in /v1; Ollama's and Anthropic's
    clients add /api/... and /v1/messages to the bare root."""

    openai: str
    ollama: str
    anthropic: str

    def lines(self) -> list[str]:
        """ "OpenAI    http://127.0.0.1:8080/v1" …, for a terminal or a tooltip."""
        return [
            f"OpenAI     {self.openai}",
            f"Ollama     {self.ollama}",
            f"Anthropic  {self.anthropic}",
        ]


DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8080
START_TIMEOUT_S = 10.0
# How long open streams get to end after `stop` cancelled their generations.
GRACEFUL_SHUTDOWN_S = 3


class ModelServer:
    """Serves the model loaded in `engine` on an OpenAI-compatible HTTP API.

    `start` and `stop` block briefly (binding, and up to a few seconds for open streams to
    end): call them from a worker thread in a GUI. Request-log listeners are called on the
    server's thread.

    Args:
        engine: the app's LLM engine (shared: the Chat page may use it at the same time;
            the engine answers one request at a time).
        log_size: how many requests the log keeps.
    """

    def __init__(
        self,
        engine: LocalChatEngine,
        *,
        log_size: int = 500,
        documents: Callable[[], DocumentSource] | None = None,
    ) -> None:
        self.served = ServedEngine(engine)
        self.documents = documents  # the collections requests may name (`request_documents`)
        self.log = RequestLog(log_size)
        self._lock = threading.Lock()
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._source: ModelSource | None = None  # what the running server answers from
        self._pool: ModelPool | None = None
        self._host = DEFAULT_HOST
        self._port = 0
        self._api_key: str | None = None
        self._allowed_origins: tuple[str, ...] = ()

    # -- state ---------------------------------------------------------------------------

    @property
    def running(self) -> bool:
        thread = self._thread
        return thread is not None and thread.is_alive()

    @property
    def url(self) -> str | None:
        """The API root clients use ("http://127.0.0.1:8080/v1"); None when stopped."""
        if not self.running:
            return None
        host = f"[{self._host}]" if ":" in self._host else self._host
        return f"http://{host}:{self._port}/v1"

    def api_urls(self) -> ApiUrls | None:
        """The base URL each kind of client takes; None when stopped."""
        url = self.url
        if url is None:
            return None
        root = url.removesuffix("/v1")
        return ApiUrls(openai=url, ollama=root, anthropic=root)

    @property
    def host(self) -> str:
        return self._host

    @property
    def port(self) -> int:
        """The port listened on (the one chosen when 0 was asked for); 0 when stopped."""
        return self._port if self.running else 0

    @property
    def requires_key(self) -> bool:
        return self._api_key is not None

    @property
    def allowed_origins(self) -> tuple[str, ...]:
        """The web origins whose pages may use the running server (none: no web page)."""
        return self._allowed_origins if self.running else ()

    @property
    def queue_length(self) -> int:
        """Requests waiting for an engine, not counting those being answered."""
        source = self._source
        return source.waiting if source is not None and self.running else 0

    @property
    def busy(self) -> bool:
        """True while an engine is answering one of the server's requests."""
        source = self._source
        return source is not None and self.running and source.busy

    @property
    def loading(self) -> bool:
        """True while `load` runs (requests are answered 503 with Retry-After meanwhile), or
        while the library pool loads a model."""
        source = self._source
        return self.served.loading or (source is not None and self.running and source.loading)

    @property
    def models(self) -> ModelSource | None:
        """What the running server answers from (routers call its `acquire`); None when
        stopped."""
        return self._source if self.running else None

    @property
    def pool(self) -> ModelPool | None:
        """The library pool the server serves (or will serve at its next start); None when
        it serves the engine's one model."""
        return self._pool

    def serve_library(self, pool: ModelPool | None) -> None:
        """From the next `start`, serve every model of `pool` (None: the engine's model).

        Raises:
            ServingError: the server is running (stop it first).
        """
        with self._lock:
            if self.running:
                raise ServingError("Stop the server before changing what it serves.")
            self._pool = pool

    @property
    def model_id(self) -> str | None:
        """The id clients see for the loaded model (its file name); None if none is loaded."""
        return self.served.model_id

    def load(self, settings: LoadSettings) -> LoadedModel:
        """Load a model into the engine while the server says "loading" (blocks).

        Raises:
            EngineError: the model could not be loaded.
        """
        return self.served.load(settings)

    # -- start and stop ------------------------------------------------------------------

    def start(
        self,
        host: str = DEFAULT_HOST,
        port: int = DEFAULT_PORT,
        api_key: str | None = None,
        *,
        allowed_origins: Iterable[str] = (),
    ) -> str:
        """Listen on `host:port` (port 0: any free one) and return the API's URL.

        Args:
            api_key: when set, every request needs `Authorization: Bearer <api_key>`;
                required for any address but this machine's loopback.
            allowed_origins: web origins ("https://app.example") whose pages may call the
                API from a browser; requests from any other page are refused.

        Raises:
            UnprotectedBindError: `host` is reachable from other machines and no key is set.
            ServerStartError: the address could not be bound (port in use, unknown host).
            SettingsError: an allowed origin is not an http(s) origin.
            ServingUnavailableError: FastAPI / uvicorn / sse-starlette are not installed.
            ServingError: the server is already running.
        """
        api_key = api_key or None
        origins = validate_origins(allowed_origins)
        with self._lock:
            if self.running:
                raise ServingError(f"The server is already running at {self.url}.")
            addresses = check_bind_address(host, port, api_key=api_key)
            try:
                import uvicorn

                from app.serving.api import create_api
                from app.serving.served_models import SingleModelSource
            except ImportError as exc:
                raise ServingUnavailableError(
                    f"The API server's libraries are not installed ({exc.name}).",
                    hint="Install them with `pip install 'modeldeck[serve]'`.",
                ) from exc
            listener = _bind(host, port, addresses[0])
            bound_port: int = listener.getsockname()[1]
            source: ModelSource = (
                self._pool if self._pool is not None else SingleModelSource(self.served)
            )
            try:
                app = create_api(
                    source,
                    api_key=api_key,
                    log=self.log,
                    allowed_origins=origins,
                    loopback_only=_is_loopback(addresses[0][1]),  # the address it binds
                    documents=self.documents,
                )
                server = uvicorn.Server(
                    uvicorn.Config(
                        app,
                        log_config=None,  # leave the app's logging alone
                        log_level="warning",
                        access_log=False,  # the request log is ours
                        lifespan="off",
                        ws="none",
                        server_header=False,
                        timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_S,
                    )
                )
            except BaseException:
                listener.close()
                raise
            ended = threading.Event()
            thread = threading.Thread(
                target=self._run,
                args=(server, source, listener, ended),
                name="ModelDeck API server",
                daemon=True,
            )
            self._server, self._source, self._thread = server, source, thread
            self._host, self._port = host, bound_port
            self._api_key = api_key
            self._allowed_origins = origins
            thread.start()
            deadline = time.monotonic() + START_TIMEOUT_S
            while not server.started and thread.is_alive() and time.monotonic() < deadline:
                ended.wait(0.01)
            if not server.started:
                self._stop_locked(timeout=1.0)
                listener.close()
                raise ServerStartError(f"The API server did not start on {host}:{bound_port}.")
            url = self.url
            assert url is not None
            return url

    def stop(self, timeout: float = GRACEFUL_SHUTDOWN_S + 2.0) -> None:
        """Stop listening; running generations are cancelled, queued requests answered 503."""
        with self._lock:
            self._stop_locked(timeout=timeout)

    def __enter__(self) -> ModelServer:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    # -- internals -----------------------------------------------------------------------

    def _run(
        self,
        server: uvicorn.Server,
        source: ModelSource,
        listener: socket.socket,
        ended: threading.Event,
    ) -> None:
        async def serve() -> None:
            self._loop = asyncio.get_running_loop()
            await source.open()
            await server.serve(sockets=[listener])

        try:
            asyncio.run(serve())
        finally:
            listener.close()
            ended.set()

    def _stop_locked(self, *, timeout: float) -> None:
        server, thread, loop, source = self._server, self._thread, self._loop, self._source
        if server is None or thread is None:
            return
        if loop is not None and source is not None:
            with contextlib.suppress(RuntimeError):  # the loop has already ended
                loop.call_soon_threadsafe(source.close)
        server.should_exit = True
        if thread.ident is not None:  # it was started
            thread.join(timeout)
            if thread.is_alive():
                server.force_exit = True
                thread.join(timeout)
        if source is not None:
            source.shutdown()  # a pool's engine processes end with the server
        self._server = self._thread = self._loop = self._source = None
        self._api_key = None
        self._allowed_origins = ()
        self._port = 0


def check_bind_address(
    host: str, port: int, *, api_key: str | None
) -> list[tuple[socket.AddressFamily, tuple[str, int]]]:
    """Check that serving on `host:port` is allowed; returns the addresses `host` stands for.

    Raises:
        UnprotectedBindError: `host` is not loopback-only and `api_key` is empty.
        ServerStartError: `host` names no address, or `port` is not a port number.
    """
    addresses = _resolve(host, port)
    if not api_key and not all(_is_loopback(address) for _, address in addresses):
        raise UnprotectedBindError(host)
    return addresses


def _resolve(host: str, port: int) -> list[tuple[socket.AddressFamily, tuple[str, int]]]:
    """The addresses `host` stands for (raises ServerStartError if it names none)."""
    if not 0 <= port <= 65535:
        raise ServerStartError(f"{port} is not a port number (0 to 65535).")
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        raise ServerStartError(f"Cannot listen on {host!r}: {exc.strerror}.") from None
    return [(family, (str(address[0]), int(address[1]))) for family, *_, address in infos]


def _is_loopback(address: tuple[str, int]) -> bool:
    try:
        return ipaddress.ip_address(address[0].split("%")[0]).is_loopback
    except ValueError:
        return False


def _bind(
    host: str, port: int, resolved: tuple[socket.AddressFamily, tuple[str, int]]
) -> socket.socket:
    family, address = resolved
    # IPPROTO_TCP, not the default 0: asyncio turns Nagle's algorithm off (TCP_NODELAY) only
    # on sockets that say they are TCP, and the accepted ones inherit this. With Nagle on, a
    # reused connection waits ~40 ms for a delayed ACK on every response.
    listener = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    try:
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(address)
    except OSError as exc:
        listener.close()
        if exc.errno == errno.EADDRINUSE:
            raise ServerStartError(
                f"Port {port} on {host} is already in use.",
                hint="Choose another port, or stop the program using it.",
            ) from None
        raise ServerStartError(f"Cannot listen on {host}:{port}: {exc.strerror}.") from None
    return listener

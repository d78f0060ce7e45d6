"""What every API router asks of the models it answers from: `ModelSource.acquire`.

A router (OpenAI, Ollama, Anthropic…) is given the server's `ModelSource` (`create_api`
passes it; `ModelServer.models` while running) and turns the model a request names into a
`ModelLease`:

    async with models.acquire(body.model) as lease:       # may load it first
        submit = lambda: lease.engine.generate(messages, sampling)
        generation = await lease.queue.start(submit)      # its turn on that model's engine
        first = await generation.next_event()
        ...                                               # answer, or return a stream

`models.listing()` (blocking: call it with `asyncio.to_thread`) lists every model a request
may name, loaded or not, for `/v1/models`, Ollama's `/api/tags` and `/api/ps`.

`acquire` loads the model first when it has to (a `ModelPool`), or checks that the name is
the one loaded (`SingleModelSource`, `modeldeck serve MODEL` and the Chat page's model).
While a lease is held, and while the lease's queue has a generation running or waiting, the
model is not unloaded; a response streamed after the `async with` has ended is therefore safe
as long as its generation was started through `lease.queue` inside the block.

Refusals are `ServedModelError`s that carry what an HTTP answer needs (status, an error code,
`Retry-After` seconds); each router words them in its own API's error shape.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from app.chat.local import LocalChatEngine
from app.llm.engine import LoadedModel
from app.serving.engine_queue import EngineQueue
from app.serving.errors import ServingError
from app.serving.served_engine import ServedEngine

RETRY_AFTER_LOADING_S = 5


@dataclass(frozen=True)
class ModelLease:
    """A model ready to answer, for as long as the lease is held.

    Attributes:
        model_id: the id to answer with (the `model` field of OpenAI's responses).
        engine: the model's engine; make requests through `queue`, never around it.
        queue: admits one generation at a time to `engine`, in arrival order.
        loaded: what the engine reported at load (context length, template…).
    """

    model_id: str
    engine: LocalChatEngine
    queue: EngineQueue
    loaded: LoadedModel


@dataclass(frozen=True, kw_only=True)
class ListedModel:
    """One model as `/v1/models` (or Ollama's `/api/tags`) lists it."""

    model_id: str
    path: Path
    created: int  # Unix seconds (the file's modification time)
    size: int  # bytes on disk
    loaded: bool
    context_length: int | None  # when loaded


class ServedModelError(ServingError):
    """A request's model cannot answer now. `status`, `code` and `retry_after_s` say how to
    answer in HTTP; `param` is the request field at fault, if any."""

    status = 500
    code = "server_error"
    param: str | None = None

    def __init__(
        self, message: str, *, hint: str | None = None, retry_after_s: int | None = None
    ) -> None:
        super().__init__(message, hint=hint)
        self.retry_after_s = retry_after_s

    @property
    def client_error(self) -> bool:
        """The request is at fault (OpenAI's "invalid_request_error"), not the server."""
        return self.status < 500


class ModelNotServedError(ServedModelError, LookupError):
    """The request names no model this server offers (404)."""

    status = 404
    code = "model_not_found"
    param = "model"


class ModelRequiredError(ServedModelError, ValueError):
    """The request names no model, and the server cannot choose one (400)."""

    status = 400
    code = "model_required"
    param = "model"


class ModelLoadingError(ServedModelError):
    """The model is being loaded by someone else (503 with Retry-After)."""

    status = 503
    code = "model_loading"


class NoModelLoadedError(ServedModelError):
    """Nothing is loaded to answer with (503)."""

    status = 503
    code = "model_not_loaded"


class ModelsBusyError(ServedModelError):
    """No room to load the model: every loaded model is generating (503 with Retry-After).
    A model is never unloaded mid-generation."""

    status = 503
    code = "models_busy"


class ModelLoadError(ServedModelError):
    """The model could not be loaded (damaged file, too large for this machine…)."""

    status = 500
    code = "model_load_failed"


class ServerStoppingError(ServedModelError):
    """The server is stopping: nothing new starts (503)."""

    status = 503
    code = "server_stopping"


class ModelSource(Protocol):
    """The models a server answers from: one loaded model, or the whole library on demand."""

    def acquire(
        self, requested: str | None, *, embedding: bool = False
    ) -> AbstractAsyncContextManager[ModelLease]:
        """The model `requested` names (None: the server's choice), ready to answer; call on
        the server's event loop. May wait for a load.

        `embedding`: the model is wanted for `lease.engine.embed` (a pool loads it with
        `LoadSettings.embedding`; a single served model is used as it was loaded).

        Raises (on entering):
            ServedModelError: a subclass saying why not (not served, busy, loading…).
        """
        ...

    def listing(self) -> list[ListedModel]:
        """Every model a request may name, loaded or not (may scan the library: blocking)."""
        ...

    def keep_alive(self, model_id: str, seconds: float | None) -> None:
        """How long `model_id` stays loaded once idle (Ollama's `keep_alive`), on the loop:
        seconds (0: unload once idle; negative or `math.inf`: never); None: the server's
        default. Does nothing where models are not loaded on demand."""
        ...

    @property
    def loading(self) -> bool:
        """True while a model is being loaded."""
        ...

    @property
    def busy(self) -> bool:
        """True while any model answers one of the server's requests."""
        ...

    @property
    def waiting(self) -> int:
        """Requests waiting for an engine (not counting those being answered)."""
        ...

    async def open(self) -> None:
        """Start background work on the server's loop (the idle timer)."""
        ...

    def close(self) -> None:
        """On the server's loop, as it stops: refuse new requests, cancel running ones."""
        ...

    def shutdown(self) -> None:
        """After the server's loop ended: end what the source started (blocking)."""
        ...


class SingleModelSource:
    """The one model loaded in a shared engine (`ServedEngine`): the Chat page's model, or
    `modeldeck serve MODEL`'s. A request may name it by file name, stem or metadata name, or
    leave `model` out; other names are 404. While it loads, requests are 503 (Retry-After)."""

    def __init__(self, served: ServedEngine) -> None:
        self.served = served
        self.queue = EngineQueue()

    @property
    def loading(self) -> bool:
        return self.served.loading

    @property
    def busy(self) -> bool:
        return self.queue.busy

    @property
    def waiting(self) -> int:
        return self.queue.waiting

    def check_not_loading(self) -> None:
        if self.served.loading:
            raise ModelLoadingError(
                "The model is loading; try again in a few seconds.",
                retry_after_s=RETRY_AFTER_LOADING_S,
            )

    @contextlib.asynccontextmanager
    async def acquire(
        self, requested: str | None, *, embedding: bool = False
    ) -> AsyncIterator[ModelLease]:
        self.check_not_loading()
        loaded, model_id = self.served.loaded, self.served.model_id
        if loaded is None or model_id is None:
            raise NoModelLoadedError("No model is loaded. Load one in ModelDeck, then try again.")
        if requested is not None and requested not in self.served.names():
            raise ModelNotServedError(
                f"The model {requested!r} does not exist here; this server serves {model_id!r}."
            )
        yield ModelLease(model_id, self.served.engine, self.queue, loaded)

    def listing(self) -> list[ListedModel]:
        self.check_not_loading()
        loaded, model_id = self.served.loaded, self.served.model_id
        if loaded is None or model_id is None:
            return []
        path = loaded.settings.path
        try:
            stat = path.stat()
            created, size = int(stat.st_mtime), stat.st_size
        except OSError:
            created, size = 0, 0
        return [
            ListedModel(
                model_id=model_id,
                path=path,
                created=created,
                size=size,
                loaded=True,
                context_length=loaded.context_length,
            )
        ]

    def keep_alive(self, model_id: str, seconds: float | None) -> None:
        return None  # the app's model stays until the person unloads it

    async def open(self) -> None:
        return None

    def close(self) -> None:
        self.queue.close()

    def shutdown(self) -> None:
        return None  # the engine is the app's: it stays

"""The messages between the app and an engine child process, and the child's side of the pipe.

Requests carry an id; the child answers each with zero or more streamed events (`CHUNK`,
`PROGRESS`) and exactly one terminal event (`RESULT`, `ERROR` or `CANCELLED`). Messages are
frozen dataclasses pickled by `multiprocessing.connection` — both ends are our own code.
An event's `payload` is a `Payload`: `TextChunk` (CHUNK), `Failure` (ERROR, STOPPED),
`Ready` (READY), `Empty` (CANCELLED, an empty RESULT), or an engine's own result and
progress messages (`app/llm/messages.py`, `app/images/messages.py`); readers narrow it with
`Event.expect`, `Event.text` or `Event.failure`.

A handler in the child gets a `RequestContext`: `emit` streams an event, `cancelled()` says
whether the app asked to stop this request. `cancelled()` polls the pipe without blocking,
so a generation loop calls it between tokens or steps (cheaply: see `FLUSH_INTERVAL_S`).
"""

from __future__ import annotations

import collections
import signal
import sys
import traceback
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from multiprocessing.connection import Connection
from typing import Any, TypeVar

from app.engines.errors import EngineErrorKind


class Op(StrEnum):
    """What the app asks of an engine."""

    LOAD = "load"
    GENERATE = "generate"
    TOKENIZE = "tokenize"
    EMBED = "embed"  # texts -> vectors (an LLM engine loaded in embedding mode)
    UPSCALE = "upscale"  # an image -> a larger one (the image engine's upscaler models)
    UNLOAD = "unload"
    CANCEL = "cancel"  # carries the id of the request to stop
    SHUTDOWN = "shutdown"


class EventKind(StrEnum):
    """What an engine sends back."""

    READY = "ready"  # the child started; data: what it can do (capabilities)
    CHUNK = "chunk"  # streamed output (tokens)
    PROGRESS = "progress"  # streamed progress (steps)
    RESULT = "result"  # terminal: the request finished
    ERROR = "error"  # terminal: it failed; data: kind + message
    CANCELLED = "cancelled"  # terminal: stopped on request
    STOPPED = "stopped"  # terminal, made by the supervisor: the child died


TERMINAL = frozenset({EventKind.RESULT, EventKind.ERROR, EventKind.CANCELLED, EventKind.STOPPED})

# The id of events not tied to a request (READY).
NO_REQUEST = 0

# Streamed chunks are coalesced in the child: at most one message per this interval (the first
# one goes at once, so time to first token is not delayed). Per-token pipe writes would cost
# more than a tiny model's token, and every wake-up of the app's threads preempts one of
# llama.cpp's (which wait on each other at every step): at 20 ms a 270 MB model lost 3% of
# its speed, at 50 ms under 1% (benchmarks.llm). The window repaints every 50 ms anyway.
FLUSH_INTERVAL_S = 0.05


@dataclass(frozen=True)
class Payload:
    """What a request or an event carries; each message kind is a frozen subclass."""


PayloadT = TypeVar("PayloadT", bound=Payload)


@dataclass(frozen=True)
class Empty(Payload):
    """Nothing (CANCELLED, and a RESULT with nothing to say)."""


@dataclass(frozen=True)
class Request:
    id: int
    op: Op
    body: Payload = field(default_factory=Empty)

    def expect(self, type_: type[PayloadT]) -> PayloadT:
        """The body as `type_`; `TypeError` when it is something else (the ends disagree)."""
        if not isinstance(self.body, type_):
            raise TypeError(f"a {self.op} request carries {self.body!r}, not a {type_.__name__}")
        return self.body


@dataclass(frozen=True)
class Cancel(Payload):
    """CANCEL: stop the request with this id."""

    request_id: int


@dataclass(frozen=True)
class Ready(Payload):
    """READY: what the child can do (engine-specific, for a person and for checks)."""

    capabilities: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class TextChunk(Payload):
    """CHUNK: streamed text."""

    text: str


@dataclass(frozen=True)
class Failure(Payload):
    """ERROR or STOPPED: why, for the app (`kind`) and for a person (`message`)."""

    kind: EngineErrorKind
    message: str
    log: tuple[str, ...] = ()  # the engine's own log lines around the failure, for a details view


@dataclass(frozen=True)
class Event:
    request_id: int
    kind: EventKind
    payload: Payload = field(default_factory=Empty)

    @property
    def terminal(self) -> bool:
        return self.kind in TERMINAL

    def expect(self, type_: type[PayloadT]) -> PayloadT:
        """The payload as `type_`; `TypeError` when it is something else."""
        if not isinstance(self.payload, type_):
            raise TypeError(f"a {self.kind} event carries {self.payload!r}, not a {type_.__name__}")
        return self.payload

    @property
    def text(self) -> str:
        """A CHUNK's text; "" for any other event."""
        return self.payload.text if isinstance(self.payload, TextChunk) else ""

    @property
    def failure(self) -> Failure:
        """Why an ERROR, STOPPED or CANCELLED event ended its request (any other: INTERNAL)."""
        if isinstance(self.payload, Failure):
            return self.payload
        if self.kind is EventKind.CANCELLED:
            return Failure(EngineErrorKind.CANCELLED, "cancelled")
        return Failure(EngineErrorKind.INTERNAL, self.kind.value)


class EngineFailure(Exception):
    """Raised by a handler for a failure a person should read (kind: why, for the app)."""

    def __init__(
        self, kind: EngineErrorKind | str, message: str, *, log: tuple[str, ...] = ()
    ) -> None:
        super().__init__(message)
        self.kind = kind if isinstance(kind, EngineErrorKind) else EngineErrorKind.of(kind)
        self.message = message
        self.log = log


class RequestCancelled(Exception):
    """Raised by a handler that noticed `cancelled()`; becomes a CANCELLED event."""


class RequestContext:
    """The child's view of one request: stream events, and notice a cancel."""

    def __init__(self, request: Request, channel: ChildChannel) -> None:
        self.request = request
        self._channel = channel

    def emit(self, kind: EventKind, payload: Payload) -> None:
        self._channel.send(Event(self.request.id, kind, payload))

    def cancelled(self) -> bool:
        """True once the app has asked to cancel this request (polls the pipe; no blocking)."""
        return self._channel.cancel_requested(self.request.id)


Handler = Callable[[RequestContext], Payload | None]


class ChildChannel:
    """The child's end of the pipe: requests in, events out, cancels noticed while busy."""

    def __init__(self, connection: Connection) -> None:
        self._connection = connection
        self._pending: collections.deque[Request] = collections.deque()
        self._cancelled: set[int] = set()

    def send(self, event: Event) -> None:
        self._connection.send(event)

    def receive(self) -> Request:
        if self._pending:
            return self._pending.popleft()
        request: Request = self._connection.recv()
        return request

    def cancel_requested(self, request_id: int) -> bool:
        while self._connection.poll():
            request: Request = self._connection.recv()
            if request.op is Op.CANCEL:
                self._cancelled.add(request.expect(Cancel).request_id)
            else:
                self._pending.append(request)
        return request_id in self._cancelled

    def forget(self, request_id: int) -> None:
        self._cancelled.discard(request_id)


def serve(
    connection: Connection,
    handlers: Mapping[Op, Handler],
    *,
    ready: Mapping[str, Any] | None = None,
) -> None:
    """Run the child's request loop until SHUTDOWN or the app goes away.

    Each request's handler runs to completion; its return value is the RESULT's payload.
    An `EngineFailure` becomes an ERROR with its kind; any other exception an ERROR of kind
    "internal" with the traceback's last line, so a bug in a handler never kills the engine.
    """
    # Ctrl+C in a terminal reaches the whole process group; the app decides what stops.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    channel = ChildChannel(connection)
    channel.send(Event(NO_REQUEST, EventKind.READY, Ready(dict(ready or {}))))
    while True:
        try:
            request = channel.receive()
        except (EOFError, OSError):
            return  # the app closed the pipe (or died): nothing left to serve
        if request.op is Op.SHUTDOWN:
            return
        if request.op is Op.CANCEL:
            continue  # for a request that already finished
        handler = handlers.get(request.op)
        context = RequestContext(request, channel)
        if handler is None:
            context.emit(EventKind.ERROR, Failure(EngineErrorKind.UNSUPPORTED, request.op))
            continue
        try:
            result = handler(context)
        except RequestCancelled:
            context.emit(EventKind.CANCELLED, Empty())
        except EngineFailure as failure:
            context.emit(EventKind.ERROR, Failure(failure.kind, failure.message, failure.log))
        except Exception as error:
            traceback.print_exc(file=sys.stderr)
            message = f"{type(error).__name__}: {error}"
            context.emit(EventKind.ERROR, Failure(EngineErrorKind.INTERNAL, message))
        else:
            context.emit(EventKind.RESULT, result if result is not None else Empty())
        finally:
            channel.forget(request.id)

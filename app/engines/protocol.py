"""The messages between the app and an engine child process, and the child's side of the pipe.

Requests carry an id; the child answers each with zero or more streamed events (`CHUNK`,
`PROGRESS`) and exactly one terminal event (`RESULT`, `ERROR` or `CANCELLED`). Messages are
small dicts pickled by `multiprocessing.connection` — both ends are our own code.

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
from typing import Any


class Op(StrEnum):
    """What the app asks of an engine."""

    LOAD = "load"
    GENERATE = "generate"
    TOKENIZE = "tokenize"
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
class Request:
    id: int
    op: Op
    args: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Event:
    request_id: int
    kind: EventKind
    data: Mapping[str, Any] = field(default_factory=dict)

    @property
    def terminal(self) -> bool:
        return self.kind in TERMINAL


class EngineFailure(Exception):
    """Raised by a handler for a failure a person should read (kind: a short machine tag)."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind
        self.message = message


class RequestCancelled(Exception):
    """Raised by a handler that noticed `cancelled()`; becomes a CANCELLED event."""


class RequestContext:
    """The child's view of one request: stream events, and notice a cancel."""

    def __init__(self, request: Request, channel: ChildChannel) -> None:
        self.request = request
        self._channel = channel

    def emit(self, kind: EventKind, data: Mapping[str, Any]) -> None:
        self._channel.send(Event(self.request.id, kind, data))

    def cancelled(self) -> bool:
        """True once the app has asked to cancel this request (polls the pipe; no blocking)."""
        return self._channel.cancel_requested(self.request.id)


Handler = Callable[[RequestContext], Mapping[str, Any] | None]


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
                self._cancelled.add(int(request.args["request_id"]))
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

    Each request's handler runs to completion; its return value is the RESULT event's data.
    An `EngineFailure` becomes an ERROR with its kind; any other exception an ERROR of kind
    "internal" with the traceback's last line, so a bug in a handler never kills the engine.
    """
    # Ctrl+C in a terminal reaches the whole process group; the app decides what stops.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    channel = ChildChannel(connection)
    channel.send(Event(NO_REQUEST, EventKind.READY, dict(ready or {})))
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
            context.emit(EventKind.ERROR, {"kind": "unsupported", "message": request.op})
            continue
        try:
            result = handler(context)
        except RequestCancelled:
            context.emit(EventKind.CANCELLED, {})
        except EngineFailure as failure:
            context.emit(EventKind.ERROR, {"kind": failure.kind, "message": failure.message})
        except Exception as error:
            traceback.print_exc(file=sys.stderr)
            message = f"{type(error).__name__}: {error}"
            context.emit(EventKind.ERROR, {"kind": "internal", "message": message})
        else:
            context.emit(EventKind.RESULT, dict(result or {}))
        finally:
            channel.forget(request.id)

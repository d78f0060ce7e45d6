"""What the server answered, for a log panel: a bounded list of entries and listeners.

Entries are added on the server's thread; a listener is called there too, so a window must
hand the entry to its own thread (a queued signal) before touching a widget.
"""

from __future__ import annotations

import collections
import contextlib
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass

logger = logging.getLogger(__name__)

LogListener = Callable[["RequestLogEntry"], None]


@dataclass(frozen=True, kw_only=True)
class RequestLogEntry:
    """One answered request.

    Attributes:
        time: when it arrived (seconds since the epoch).
        method, path: "POST", "/v1/chat/completions".
        status: the HTTP status sent (0 if the client left before any was sent).
        duration_s: from arrival to the last byte sent (or the client leaving).
        tokens: tokens generated for it; None for a request that generates nothing.
        client: "host:port" of the caller ("" when unknown).
        outcome: "" or a word on how a generation ended: "stop", "length", "cancelled"
            (the client left), "error".
    """

    time: float
    method: str
    path: str
    status: int
    duration_s: float
    tokens: int | None
    client: str
    outcome: str = ""


class RequestLog:
    """The last `size` requests, oldest first; listeners hear of each new one."""

    def __init__(self, size: int = 500) -> None:
        self._entries: collections.deque[RequestLogEntry] = collections.deque(maxlen=size)
        self._listeners: list[LogListener] = []
        self._lock = threading.Lock()

    def entries(self) -> list[RequestLogEntry]:
        """A copy of the kept entries, oldest first."""
        with self._lock:
            return list(self._entries)

    def add_listener(self, listener: LogListener) -> Callable[[], None]:
        """Call `listener(entry)` for every new entry (on the server's thread).

        Returns a function that removes the listener.
        """
        with self._lock:
            self._listeners.append(listener)

        def remove() -> None:
            with self._lock, contextlib.suppress(ValueError):
                self._listeners.remove(listener)

        return remove

    def add(self, entry: RequestLogEntry) -> None:
        """Keep `entry` and tell the listeners; a failing listener never breaks the server."""
        with self._lock:
            self._entries.append(entry)
            listeners = list(self._listeners)
        for listener in listeners:
            try:
                listener(entry)
            except Exception:
                logger.exception("A request-log listener failed")

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()

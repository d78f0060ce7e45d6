"""Callbacks that the core calls when something changed: its one way to report, without Qt.

The download queue and the model list each keep a `Subscribers`; the UI adapts a callback to
a Qt signal, the CLI prints from it.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Generic, TypeVar

T = TypeVar("T")

__all__ = ["Subscribers"]

_log = logging.getLogger(__name__)


class Subscribers(Generic[T]):
    """A thread-safe list of callbacks, each called with every event.

    Args:
        what: names the owner in the log line when a callback fails.
    """

    def __init__(self, what: str) -> None:
        self._what = what
        self._lock = threading.Lock()
        self._callbacks: list[Callable[[T], None]] = []

    def add(self, callback: Callable[[T], None]) -> Callable[[], None]:
        """Call `callback(event)` for every later event; returns a function that unsubscribes."""
        with self._lock:
            self._callbacks.append(callback)

        def unsubscribe() -> None:
            with self._lock:
                if callback in self._callbacks:
                    self._callbacks.remove(callback)

        return unsubscribe

    def notify(self, *events: T) -> None:
        """Call every callback with each event in order, on this thread.

        A callback that raises is logged and skipped: one broken view never stops the core
        or the other subscribers.
        """
        with self._lock:
            callbacks = list(self._callbacks)
        for event in events:
            for callback in callbacks:
                try:
                    callback(event)
                except Exception:
                    _log.exception("a %s subscriber failed", self._what)

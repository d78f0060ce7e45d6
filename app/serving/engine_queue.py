"""Generations for the one engine, one at a time in arrival order, bridged to asyncio.

The engine's calls block (rendering the prompt, restarting a crashed engine) and its
`RequestHandle` is read by a blocking call, so each generation has a thread that makes the
request and then pumps its events to the event loop (`call_soon_threadsafe`); the loop never
blocks on the engine. The next request in line is made when the previous one's terminal
event has arrived — whether or not its client is still reading.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import threading
from collections.abc import Callable

from app.engines.protocol import Event
from app.engines.supervisor import RequestHandle


class ServerClosingError(Exception):
    """The server is stopping: no new generation starts."""


class Generation:
    """One engine request, made on its own thread, with its events delivered on the loop.

    Args:
        submit: makes the request (blocking); its exception is raised by `next_event`.
        on_done: called on the loop once the request is over (its terminal event arrived,
            or `submit` failed).
    """

    def __init__(
        self,
        submit: Callable[[], RequestHandle],
        loop: asyncio.AbstractEventLoop,
        on_done: Callable[[], None],
    ) -> None:
        self.outcome: Event | None = None  # the terminal event, once it reached the loop
        self._submit = submit
        self._loop = loop
        self._on_done = on_done
        self._events: asyncio.Queue[Event | BaseException] = asyncio.Queue()
        self._lock = threading.Lock()
        self._handle: RequestHandle | None = None
        self._cancelled = False
        self._thread = threading.Thread(target=self._run, name="serve request", daemon=True)

    def start(self) -> None:
        self._thread.start()

    async def next_event(self) -> Event:
        """The next event (the terminal one last).

        Raises:
            Exception: what making the request raised (EngineError, ChatTemplateError…).
        """
        item = await self._events.get()
        if isinstance(item, BaseException):
            raise item
        return item

    def cancel(self) -> None:
        """Ask the engine to stop (at once, or as soon as the request is made); the terminal
        event (CANCELLED, or RESULT if it had just finished) still comes."""
        with self._lock:
            self._cancelled = True
            handle = self._handle
        if handle is not None:
            handle.cancel()

    async def finish(self, timeout: float) -> Event | None:
        """Skip to the terminal event; None if it did not come within `timeout` seconds (or
        the request could not be made)."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout):
                while self.outcome is None:
                    if isinstance(await self._events.get(), BaseException):
                        break
        return self.outcome

    # -- the request's thread ------------------------------------------------------------

    def _run(self) -> None:
        try:
            handle = self._submit()
        except Exception as error:
            self._to_loop(functools.partial(self._fail, error))
            return
        with self._lock:
            self._handle = handle
            cancelled = self._cancelled
        if cancelled:
            handle.cancel()
        for event in handle.events():
            self._to_loop(functools.partial(self._arrive, event))

    def _to_loop(self, callback: Callable[[], None]) -> None:
        try:
            self._loop.call_soon_threadsafe(callback)
        except RuntimeError:  # the loop is closed: the server stopped
            self.cancel()

    def _arrive(self, event: Event) -> None:
        self._events.put_nowait(event)
        if event.terminal:
            self.outcome = event
            self._on_done()

    def _fail(self, error: Exception) -> None:
        self._events.put_nowait(error)
        self._on_done()


class EngineQueue:
    """Admits one generation at a time to the engine, first come first served.

    Lives on the server's event loop; `waiting` and `busy` may be read from any thread.
    """

    def __init__(self, *, on_done: Callable[[], None] | None = None) -> None:
        """`on_done` is called on the loop after each generation ends (the model pool uses
        it to time how long a model has been idle)."""
        self._on_done = on_done
        self._lock = asyncio.Lock()
        self._waiting = 0
        self._busy = False
        self._closing = False
        self._live: set[Generation] = set()

    @property
    def waiting(self) -> int:
        """Requests waiting for the engine (not counting the one it is answering)."""
        return self._waiting

    @property
    def busy(self) -> bool:
        """True while a generation of the server's is in the engine."""
        return self._busy

    async def start(self, submit: Callable[[], RequestHandle]) -> Generation:
        """Wait for the engine's turn, then start a generation that calls `submit` on its own
        thread. Cancelling the caller while it waits takes it out of the line.

        Raises:
            ServerClosingError: `close` was called.
        """
        if self._closing:
            raise ServerClosingError
        self._waiting += 1
        try:
            await self._lock.acquire()
        finally:
            self._waiting -= 1
        if self._closing:
            self._lock.release()
            raise ServerClosingError
        self._busy = True
        generation: Generation

        def done() -> None:
            self._live.discard(generation)
            self._busy = False
            self._lock.release()
            if self._on_done is not None:
                self._on_done()

        generation = Generation(submit, asyncio.get_running_loop(), done)
        self._live.add(generation)
        generation.start()
        return generation

    def close(self) -> None:
        """Refuse new generations and cancel the running one (call on the loop)."""
        self._closing = True
        for generation in list(self._live):
            generation.cancel()

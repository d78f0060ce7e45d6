"""Generations for the one engine, one at a time in arrival order, bridged to asyncio.

The engine's `RequestHandle` is read by a blocking call, so each generation has a pump thread
that reads its events and hands them to the event loop (`call_soon_threadsafe`); the loop
never blocks on the engine. The next request in line is sent to the engine when the previous
one's terminal event has arrived — whether or not its client is still reading.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Callable

from app.engines.protocol import Event
from app.engines.supervisor import RequestHandle


class ServerClosingError(Exception):
    """The server is stopping: no new generation starts."""


class Generation:
    """One engine request's events, delivered on the event loop."""

    def __init__(
        self,
        handle: RequestHandle,
        loop: asyncio.AbstractEventLoop,
        on_done: Callable[[], None],
    ) -> None:
        self.handle = handle
        self.outcome: Event | None = None  # the terminal event, once it reached the loop
        self._loop = loop
        self._on_done = on_done
        self._events: asyncio.Queue[Event] = asyncio.Queue()
        self._thread = threading.Thread(
            target=self._pump, name=f"serve request {handle.request.id}", daemon=True
        )

    def start(self) -> None:
        self._thread.start()

    async def next_event(self) -> Event:
        """The next event (the terminal one last)."""
        return await self._events.get()

    def cancel(self) -> None:
        """Ask the engine to stop; the terminal event (CANCELLED, or RESULT if it had just
        finished) still comes."""
        self.handle.cancel()

    async def finish(self, timeout: float) -> Event | None:
        """Skip to the terminal event; None if it did not come within `timeout` seconds."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout):
                while self.outcome is None:
                    await self._events.get()
        return self.outcome

    # -- the pump thread -----------------------------------------------------------------

    def _pump(self) -> None:
        for event in self.handle.events():
            try:
                self._loop.call_soon_threadsafe(self._arrive, event)
            except RuntimeError:  # the loop is closed: the server stopped
                self.handle.cancel()

    def _arrive(self, event: Event) -> None:
        self._events.put_nowait(event)
        if event.terminal:
            self.outcome = event
            self._on_done()


class EngineQueue:
    """Admits one generation at a time to the engine, first come first served.

    Lives on the server's event loop; `waiting` and `busy` may be read from any thread.
    """

    def __init__(self) -> None:
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
        """Wait for the engine's turn, then call `submit` (in a worker thread: it renders the
        prompt and may restart a crashed engine) and return its generation.

        Cancelling the caller while it waits takes it out of the line; cancelling it during
        `submit` cancels the request once it is made. Exceptions of `submit` propagate.

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
        loop = asyncio.get_running_loop()
        submitted = loop.run_in_executor(None, submit)
        try:
            handle = await asyncio.shield(submitted)
        except asyncio.CancelledError:
            submitted.add_done_callback(self._abandon)
            raise
        except BaseException:
            self._release()
            raise
        return self._track(handle)

    def close(self) -> None:
        """Refuse new generations and cancel the running one (call on the loop)."""
        self._closing = True
        for generation in list(self._live):
            generation.cancel()

    def _abandon(self, submitted: asyncio.Future[RequestHandle]) -> None:
        """A request submitted for a caller that is gone: cancel it, and keep the line
        closed until the engine has answered it."""
        if submitted.cancelled() or submitted.exception() is not None:
            self._release()
            return
        self._track(submitted.result()).cancel()

    def _track(self, handle: RequestHandle) -> Generation:
        generation: Generation

        def done() -> None:
            self._live.discard(generation)
            self._release()

        generation = Generation(handle, asyncio.get_running_loop(), done)
        self._live.add(generation)
        generation.start()
        if self._closing:
            generation.cancel()
        return generation

    def _release(self) -> None:
        self._busy = False
        self._lock.release()

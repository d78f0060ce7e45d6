"""The app's side of an engine child process: start it, talk to it, notice when it dies.

The child is started with the "spawn" method (a fresh interpreter that imports only the
engine's module — never fork a process that runs Qt threads). A reader thread routes the
child's events to the `RequestHandle` of the request they answer. When the pipe breaks, the
reader collects the exit status and ends every open request with a STOPPED event that says
what happened ("the engine stopped: signal 9 (SIGKILL) while generating"); the next request
starts a fresh child.
"""

from __future__ import annotations

import contextlib
import itertools
import multiprocessing
import queue
import signal
import threading
from collections.abc import Callable, Iterator, Mapping
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from typing import Any

from app.engines.errors import EngineErrorKind
from app.engines.protocol import (
    NO_REQUEST,
    Cancel,
    Empty,
    Event,
    EventKind,
    Failure,
    Op,
    Payload,
    Ready,
    Request,
)

# How each operation reads in "…while generating".
_DOING = {
    Op.LOAD: "while loading the model",
    Op.GENERATE: "while generating",
    Op.TOKENIZE: "while counting tokens",
    Op.UNLOAD: "while unloading",
}


class RequestHandle:
    """The events of one request, in order, ending with exactly one terminal event.

    Args:
        request_id: the id its events carry (unique per engine).
        cancel: asks the engine to stop this request.
        op: what was asked (None for requests that are not on a pipe), for messages.
    """

    def __init__(
        self,
        request_id: int,
        cancel: Callable[[RequestHandle], None],
        *,
        op: Op | None = None,
    ) -> None:
        self.id = request_id
        self.op = op
        self._events: queue.SimpleQueue[Event] = queue.SimpleQueue()
        self._cancel = cancel
        self.outcome: Event | None = None  # the terminal event, once it came

    @property
    def done(self) -> bool:
        return self.outcome is not None

    def cancel(self) -> None:
        """Ask the engine to stop this request; its terminal event says how it ended."""
        if self.outcome is None:
            self._cancel(self)

    def next_event(self, timeout: float | None = None) -> Event:
        """The next event; blocks up to `timeout` seconds (raises `queue.Empty` after)."""
        event = self._events.get(timeout=timeout)
        if event.terminal:
            self.outcome = event
        return event

    def drain(self) -> list[Event]:
        """The events that came so far, without waiting (for a GUI poll)."""
        events: list[Event] = []
        while True:
            try:
                events.append(self.next_event(timeout=0))
            except queue.Empty:
                return events

    def events(self, timeout: float | None = None) -> Iterator[Event]:
        """Every event until the terminal one (inclusive)."""
        while self.outcome is None:
            yield self.next_event(timeout)

    def wait(self, timeout: float | None = None) -> Event:
        """Skip streamed events and return the terminal one."""
        for event in self.events(timeout):
            if event.terminal:
                return event
        assert self.outcome is not None
        return self.outcome

    def put(self, event: Event) -> None:
        """Deliver an event (the supervisor's reader thread, or another engine's feeder)."""
        self._events.put(event)


class EngineProcess:
    """One engine child process, started on first use and again after it died.

    Args:
        entry: the child's main function, `entry(connection)`; must be importable by name
            (spawn pickles it by reference).
        name: what the engine is called in messages ("the LLM engine").
    """

    def __init__(self, entry: Callable[[Connection], None], *, name: str) -> None:
        self._entry = entry
        self.name = name
        self._lock = threading.Lock()
        self._ids = itertools.count(1)
        self._process: BaseProcess | None = None
        self._connection: Connection | None = None
        self._open: dict[int, RequestHandle] = {}
        self._reader: threading.Thread | None = None
        self._ready = threading.Event()
        self.capabilities: Mapping[str, Any] = {}
        self.last_exit: str | None = None  # how the previous child ended, for a person

    @property
    def alive(self) -> bool:
        process = self._process
        return process is not None and process.is_alive()

    @property
    def pid(self) -> int | None:
        process = self._process
        return process.pid if process is not None else None

    def start(self, *, timeout: float = 60.0) -> Mapping[str, Any]:
        """Start the child if it is not running; wait for READY; return its capabilities."""
        with self._lock:
            process, reader = self._process, self._reader
        if process is not None and not process.is_alive() and reader is not None:
            reader.join(timeout)  # the child ended: let the reader finish its requests first
        with self._lock:
            if self._process is None:
                self._spawn()
        if not self._ready.wait(timeout):
            raise TimeoutError(f"{self.name} did not start within {timeout:.0f} s")
        if not self.alive:
            raise RuntimeError(f"{self.name} could not start: {self.last_exit or 'no reason'}")
        return self.capabilities

    def submit(self, op: Op, body: Payload | None = None) -> RequestHandle:
        """Send a request (starting the child first if needed) and return its handle."""
        self.start()
        with self._lock:
            request = Request(next(self._ids), op, body if body is not None else Empty())
            handle = RequestHandle(request.id, self._cancel, op=request.op)
            connection = self._connection
            if connection is None:  # it died between start() and here
                handle.put(self._stopped_event(request.id, request.op))
                return handle
            self._open[request.id] = handle
            # On a broken pipe the reader thread sees EOF and ends the request as STOPPED.
            with contextlib.suppress(OSError, ValueError):
                connection.send(request)
        return handle

    def stop(self, *, timeout: float = 2.0) -> None:
        """Ask the child to exit; kill it if it does not within `timeout` seconds."""
        with self._lock:
            process, connection = self._process, self._connection
        if process is None:
            return
        if connection is not None:
            with contextlib.suppress(OSError, ValueError):
                connection.send(Request(0, Op.SHUTDOWN))
        process.join(timeout)
        if process.is_alive():
            process.kill()
            process.join(timeout)
        reader = self._reader
        if reader is not None and reader is not threading.current_thread():
            reader.join(timeout)  # so a start() right after this spawns a fresh child

    def kill(self) -> None:
        """End the child at once (SIGKILL); open requests end as STOPPED."""
        process = self._process
        if process is not None and process.is_alive():
            process.kill()

    # -- internals -----------------------------------------------------------------------

    def _spawn(self) -> None:
        context = multiprocessing.get_context("spawn")
        parent_end, child_end = context.Pipe(duplex=True)
        process = context.Process(
            target=self._entry, args=(child_end,), name=self.name, daemon=True
        )
        self._ready.clear()
        process.start()
        child_end.close()  # so a dead child shows as EOF on our end
        self._process, self._connection = process, parent_end
        self._reader = threading.Thread(
            target=self._read, args=(process, parent_end), name=f"{self.name} reader", daemon=True
        )
        self._reader.start()

    def _read(self, process: BaseProcess, connection: Connection) -> None:
        while True:
            try:
                event: Event = connection.recv()
            except (EOFError, OSError):
                break
            if event.request_id == NO_REQUEST and event.kind is EventKind.READY:
                self.capabilities = event.expect(Ready).capabilities
                self._ready.set()
                continue
            with self._lock:
                handle = (
                    self._open.pop(event.request_id, None)
                    if event.terminal
                    else self._open.get(event.request_id)
                )
            if handle is not None:
                handle.put(event)
        process.join(5.0)
        with self._lock:
            self.last_exit = describe_exit(process.exitcode)
            open_handles = list(self._open.values())
            self._open.clear()
            if self._process is process:
                self._process, self._connection = None, None
        connection.close()
        self._ready.set()  # wake a start() waiting on a child that died at birth
        for handle in open_handles:
            handle.put(self._stopped_event(handle.id, handle.op))

    def _stopped_event(self, request_id: int, op: Op | None) -> Event:
        doing = _DOING.get(op, "") if op is not None else ""
        exit_text = self.last_exit or "it is not running"
        message = f"{self.name} stopped: {exit_text}" + (f" {doing}" if doing else "")
        return Event(request_id, EventKind.STOPPED, Failure(EngineErrorKind.STOPPED, message))

    def _cancel(self, handle: RequestHandle) -> None:
        with self._lock:
            connection = self._connection
            if connection is None or handle.id not in self._open:
                return
            with contextlib.suppress(OSError, ValueError):
                connection.send(Request(0, Op.CANCEL, Cancel(handle.id)))


def describe_exit(exitcode: int | None) -> str:
    """A child's exit status for a person: "signal 9 (SIGKILL — often out of memory)"."""
    if exitcode is None:
        return "it did not exit"
    if exitcode < 0:
        try:
            name = signal.Signals(-exitcode).name
        except ValueError:
            name = "unknown signal"
        detail = {
            "SIGKILL": "killed — often out of memory",
            "SIGSEGV": "a crash in native code",
            "SIGABRT": "aborted by native code",
            "SIGBUS": "a crash in native code",
        }.get(name)
        return f"signal {-exitcode} ({name}{', ' + detail if detail else ''})"
    if exitcode == 0:
        return "it exited"
    return f"exit code {exitcode}"

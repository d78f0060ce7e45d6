"""The one way the UI runs slow work: a blocking call on a worker thread, awaited on the Qt loop.

`run_blocking` hands a function to the asyncio loop's executor (qasync runs asyncio on the
Qt main thread), so the result comes back on the GUI thread by construction. `spawn` starts a
coroutine from plain Qt code (a virtual method, a timer) and keeps a strong reference to it,
the way `qasync.asyncSlot` does; failures go to `sys.excepthook`, cancellation is quiet.

asyncio is imported inside these functions, not at the top: the window paints before the
asyncio loop exists (importing asyncio and qasync costs ~25 ms of startup), and every
coroutine of the UI runs only once the loop does.
"""

from __future__ import annotations

import functools
import gc
import sys
import threading
from collections.abc import Callable, Coroutine, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, ParamSpec, TypeVar

if TYPE_CHECKING:
    import asyncio

P = ParamSpec("P")
T = TypeVar("T")

_running: set[asyncio.Task[Any]] = set()


async def run_blocking(function: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
    """Run `function(*args, **kwargs)` on a worker thread and await its result."""
    import asyncio

    loop = asyncio.get_running_loop()
    return await loop.run_in_executor(None, functools.partial(function, *args, **kwargs))


class _CollectorPause:
    """Pauses Python's cyclic garbage collector while any worker asks it to (counted)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._holders = 0

    @contextmanager
    def __call__(self) -> Iterator[None]:
        with self._lock:
            self._holders += 1
            gc.disable()
        try:
            yield
        finally:
            with self._lock:
                self._holders -= 1
                if self._holders == 0:
                    gc.enable()


cyclic_gc_paused = _CollectorPause()
"""Use as `with cyclic_gc_paused():` around work that makes many short-lived objects.

Parsing a 1 MB card creates about a million acyclic objects (freed by reference counting
anyway); left on, the collector scans them again and again, and each scan holds the GIL long
enough (20-50 ms) to stall the window.
"""


def spawn(coroutine: Coroutine[Any, Any, Any]) -> asyncio.Task[Any]:
    """Start `coroutine` on the running loop; errors reach `sys.excepthook`."""
    import asyncio

    task = asyncio.get_running_loop().create_task(coroutine)
    _running.add(task)
    task.add_done_callback(_finished)
    return task


def _finished(task: asyncio.Task[Any]) -> None:
    _running.discard(task)
    if task.cancelled():
        return
    error = task.exception()
    if error is not None:
        sys.excepthook(type(error), error, error.__traceback__)


async def yield_to_loop() -> None:
    """Let the event loop paint and handle input before the caller goes on."""
    import asyncio

    await asyncio.sleep(0)


async def gather(*coroutines: Coroutine[Any, Any, Any]) -> None:
    """Run coroutines concurrently and wait for all of them."""
    import asyncio

    await asyncio.gather(*coroutines)

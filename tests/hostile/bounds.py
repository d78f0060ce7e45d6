"""Bounded time and memory: the property every parser of untrusted bytes must keep.

`within_bounds` parses one hostile input (twice: once timed, once watched by tracemalloc) and
checks three things: it ends in a
result or in one of the clear errors the caller names (never another exception), it took at
most `seconds` of this thread's CPU time, and it allocated at most `megabytes` at its peak
(tracemalloc, Python allocations; a C extension's own buffers are not seen).

Every call also records its cost under its label, so the session summary (tests/hostile's
conftest) prints the worst time and memory any hostile input took: the figures the closing
note of the hostile-input issue reports.
"""

from __future__ import annotations

import time
import tracemalloc
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from typing import Generic, TypeVar

T = TypeVar("T")

__all__ = ["WORST", "Cost", "Outcome", "within_bounds"]


@dataclass(frozen=True, slots=True)
class Cost:
    """What one input cost: CPU seconds of the calling thread and the peak of Python memory."""

    seconds: float
    peak_bytes: int


@dataclass(frozen=True, slots=True)
class Outcome(Generic[T]):
    """A parse's end: its value, or the clear error it raised (exactly one is set)."""

    value: T | None
    error: BaseException | None
    cost: Cost


WORST: dict[str, Cost] = {}
"""The worst cost seen per label in this test session (seconds and memory kept separately)."""


def within_bounds(
    label: str,
    parse: Callable[[], T],
    *,
    errors: tuple[type[BaseException], ...],
    seconds: float = 1.0,
    megabytes: float = 64.0,
    pure: bool = True,
) -> Outcome[T]:
    """Run `parse` once and assert it ends cleanly within `seconds` CPU and `megabytes` memory.

    Args:
        label: what is parsed (e.g. "gguf header"); the session summary groups by it.
        parse: the call under test, on one input.
        errors: the clear errors it may raise; any other exception propagates and fails the test.
        seconds: the CPU time bound (thread time of the untraced run).
        megabytes: the bound on peak Python allocations during the call.
        pure: whether `parse` may run twice (no side effects). A call that changes state
            (opens a database, starts a queue) runs once, timed and traced together, so its
            time includes tracemalloc's overhead: a stricter bound, never a looser one.
    """
    # Two runs of the same input: the first is timed with nothing watching (tracemalloc
    # slows allocation-heavy code two to three times), the second measures memory.
    value: T | None = None
    error: BaseException | None = None
    with _traced(enabled=not pure) as traced_once:
        start = time.thread_time()
        try:
            value = parse()
        except errors as caught:
            error = caught
        elapsed = time.thread_time() - start
    peak = traced_once.peak if not pure else _peak_bytes(parse, errors)
    cost = Cost(seconds=elapsed, peak_bytes=peak)
    _record(label, cost)
    assert cost.seconds <= seconds, f"{label}: {cost.seconds:.3f} s of CPU (bound {seconds} s)"
    assert cost.peak_bytes <= megabytes * 2**20, (
        f"{label}: peak {cost.peak_bytes / 2**20:.1f} MiB (bound {megabytes} MiB)"
    )
    if error is not None:
        assert str(error).strip(), f"{label}: {type(error).__name__} without a message"
    return Outcome(value=value, error=error, cost=cost)


def _peak_bytes(parse: Callable[[], object], errors: tuple[type[BaseException], ...]) -> int:
    """The peak of Python allocations during one more run of `parse`."""
    with _traced(enabled=True) as traced, suppress(errors):
        parse()
    return traced.peak


@dataclass(slots=True)
class _Peak:
    peak: int = 0


@contextmanager
def _traced(*, enabled: bool) -> Iterator[_Peak]:
    """Measure the peak of Python allocations inside the block (tracemalloc), if enabled."""
    result = _Peak()
    if not enabled:
        yield result
        return
    started_tracing = not tracemalloc.is_tracing()
    if started_tracing:
        tracemalloc.start()
    tracemalloc.reset_peak()
    baseline, _ = tracemalloc.get_traced_memory()
    try:
        yield result
    finally:
        _, peak = tracemalloc.get_traced_memory()
        if started_tracing:
            tracemalloc.stop()
        result.peak = max(0, peak - baseline)


def _record(label: str, cost: Cost) -> None:
    worst = WORST.get(label)
    if worst is None:
        WORST[label] = cost
        return
    WORST[label] = Cost(
        seconds=max(worst.seconds, cost.seconds), peak_bytes=max(worst.peak_bytes, cost.peak_bytes)
    )

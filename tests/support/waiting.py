"""One way for tests without a Qt loop to wait for something another thread or process does.

GUI tests use `qtbot.wait_until` (it keeps the event loop running); everything else uses
`wait_until`, which polls a condition until it holds and fails with a message otherwise.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")

__all__ = ["wait_until"]


def wait_until(
    condition: Callable[[], T],
    *,
    timeout: float = 10.0,
    interval: float = 0.01,
    message: str | Callable[[], str] = "the condition was not met",
) -> T:
    """Poll `condition` until it returns a truthy value, and return that value.

    Args:
        condition: called every `interval` seconds; an exception it raises propagates.
        timeout: seconds before giving up.
        interval: seconds between polls.
        message: what the failure says (a callable is asked only on failure, e.g. for the
            last state seen).

    Raises:
        AssertionError: `condition` stayed falsy for `timeout` seconds.
    """
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            text = message() if callable(message) else message
            raise AssertionError(f"timed out after {timeout:g} s: {text}")
        time.sleep(interval)

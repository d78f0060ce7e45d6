"""Stop strings over a stream of text: emit what is certain, hold back what may start one.

llama-cpp-python's streaming loop detokenizes the whole reply again for every token to look
for stop strings — quadratic, so a 6,000-token reply runs at a tenth of the model's speed.
This does the same job in time proportional to the new text.
"""

from __future__ import annotations

from collections.abc import Iterable


class StopStrings:
    """Feed text as it is generated; `feed` returns the text that can be shown now and
    whether a stop string ended the reply (the stop string itself is never shown)."""

    def __init__(self, stops: Iterable[str]) -> None:
        self._stops = tuple(stop for stop in stops if stop)
        self._longest = max((len(stop) for stop in self._stops), default=0)
        self._held = ""
        self.matched: str | None = None  # the stop string that ended the reply, once one has

    def feed(self, text: str) -> tuple[str, bool]:
        if not self._stops:
            return text, False
        buffer = self._held + text
        found = [(index, stop) for stop in self._stops if (index := buffer.find(stop)) >= 0]
        if found:
            self._held = ""
            index, self.matched = min(found)
            return buffer[:index], True
        keep = self._partial_stop_length(buffer)
        self._held = buffer[len(buffer) - keep :] if keep else ""
        return buffer[: len(buffer) - keep], False

    def flush(self) -> str:
        """The text held back at the end of the reply (it was not a stop string after all)."""
        held, self._held = self._held, ""
        return held

    def _partial_stop_length(self, buffer: str) -> int:
        """The length of the longest end of `buffer` that begins some stop string."""
        for length in range(min(len(buffer), self._longest - 1), 0, -1):
            tail = buffer[-length:]
            if any(stop.startswith(tail) for stop in self._stops):
                return length
        return 0

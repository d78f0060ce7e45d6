"""A transfer rate that reads steadily and falls to zero when the bytes stop coming."""

from __future__ import annotations

from collections import deque

_MIN_SPAN_S = 0.5  # below this a rate is noise
_SAMPLE_EVERY_S = 0.1


class SpeedMeter:
    """Bytes per second over a sliding window of `window` seconds (not thread-safe)."""

    def __init__(self, window: float = 5.0) -> None:
        self._window = window
        self._samples: deque[tuple[float, int]] = deque()

    def add(self, now: float, total: int) -> None:
        """Record that `total` bytes were done at time `now`; a smaller total restarts."""
        samples = self._samples
        if samples and total < samples[-1][1]:
            samples.clear()
        if len(samples) >= 2 and now - samples[-2][0] < _SAMPLE_EVERY_S:
            samples[-1] = (now, total)  # keep the newest figure without piling up samples
        else:
            samples.append((now, total))
        self._trim(now)

    def reset(self) -> None:
        self._samples.clear()

    def rate(self, now: float) -> float:
        """Bytes per second from the oldest sample in the window up to `now`."""
        self._trim(now)
        if len(self._samples) < 2:
            return 0.0
        (start, first), (_, last) = self._samples[0], self._samples[-1]
        span = now - start
        return (last - first) / span if span >= _MIN_SPAN_S else 0.0

    def _trim(self, now: float) -> None:
        samples = self._samples
        while len(samples) > 1 and samples[1][0] <= now - self._window:
            samples.popleft()

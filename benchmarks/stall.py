"""Longest GUI main-thread stall while a search returns 1,000 results and while a 1 MB card renders.

A 5 ms QTimer "heartbeat" runs on the main thread; a stall is the longest gap between two
beats minus the 5 ms period. The window is the real MainWindow on the real qasync loop; the
hub is a fake one in another process (so it never takes the app's GIL). Prints the median and
the worst of N runs for each phase.

    .venv/bin/python -m benchmarks.stall [--runs 3]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
os.environ.setdefault("PYTHON_KEYRING_BACKEND", "keyring.backends.fail.Keyring")

import qasync
from PySide6.QtCore import QTimer, QUrl

from app.core import Core
from benchmarks.bench_hub import BIG_CARD_REPO, BenchHub
from ui.application import create_application, open_main_window
from ui.discover.card_view import MORE_LINK
from ui.discover.results_model import SearchState
from ui.main_window import MainWindow

HEARTBEAT_MS = 5
TARGET_RESULTS = 1000


class Heartbeat:
    """Records the longest gap between beats of a 5 ms timer on the main thread."""

    def __init__(self) -> None:
        self._timer = QTimer()
        self._timer.setInterval(HEARTBEAT_MS)
        self._timer.timeout.connect(self._beat)
        self._last = time.perf_counter()
        self.longest = 0.0

    def start(self) -> None:
        self._last = time.perf_counter()
        self.longest = 0.0
        self._timer.start()

    def stop(self) -> float:
        """Stops and returns the longest stall in milliseconds (gap minus the period)."""
        self._beat()
        self._timer.stop()
        return max(0.0, self.longest * 1000 - HEARTBEAT_MS)

    def _beat(self) -> None:
        now = time.perf_counter()
        self.longest = max(self.longest, now - self._last)
        self._last = now


async def wait_until(condition: Callable[[], object], timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError("the window did not get there in time")
        await asyncio.sleep(0.005)


async def one_run(window: MainWindow) -> tuple[float, float, float]:
    page, heartbeat = window.discover, Heartbeat()
    results = page.results

    heartbeat.start()
    page.search_field.setText("")
    page.search_now()
    await wait_until(lambda: results.state == SearchState.RESULTS)
    while results.rowCount() < TARGET_RESULTS:  # what scrolling to the end does, page by page
        page.results_view.scrollToBottom()
        rows = results.rowCount()
        await wait_until(lambda rows=rows: results.rowCount() > rows)
    search_stall = heartbeat.stop()

    page.search_field.setText(BIG_CARD_REPO)
    page.search_now()
    await wait_until(lambda: results.state == SearchState.RESULTS)
    shown: asyncio.Future[str] = asyncio.get_running_loop().create_future()

    def card_shown(repo_id: str) -> None:
        if not shown.done():
            shown.set_result(repo_id)

    page.details.cardShown.connect(card_shown)
    heartbeat.start()
    page.results_view.selectRow(0)
    await asyncio.wait_for(shown, 120)
    card_stall = heartbeat.stop()
    page.details.cardShown.disconnect(card_shown)
    card_view = page.details.view.card
    assert card_view.has_more, "the big card should wait behind 'show the rest'"

    rest_shown: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def on_rest_shown() -> None:
        if not rest_shown.done():
            rest_shown.set_result(None)

    card_view.restShown.connect(on_rest_shown)
    heartbeat.start()
    card_view.anchorClicked.emit(QUrl(MORE_LINK))  # what clicking "show the rest" does
    await asyncio.wait_for(rest_shown, 120)
    rest_stall = heartbeat.stop()
    card_view.restShown.disconnect(on_rest_shown)
    assert len(card_view.toPlainText()) > 400_000, "the whole card did not render"
    page.details.show_placeholder()  # so the next run loads the card again
    return search_stall, card_stall, rest_stall


async def main_async(window: MainWindow, runs: int) -> list[tuple[float, float, float]]:
    return [await one_run(window) for _ in range(runs)]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    app = create_application(sys.argv)
    with BenchHub(repos=TARGET_RESULTS) as hub, tempfile.TemporaryDirectory() as data:
        core = Core.open(data_dir=Path(data), endpoint_override=hub.url)
        window = open_main_window(core)
        loop = qasync.QEventLoop(app)
        asyncio.set_event_loop(loop)
        with loop:
            measured = loop.run_until_complete(main_async(window, args.runs))
        core.close()
    search = [run[0] for run in measured]
    card = [run[1] for run in measured]
    rest = [run[2] for run in measured]
    print(f"runs: {args.runs}, heartbeat: {HEARTBEAT_MS} ms, platform: {app.platformName()}")
    print(
        f"search paging to {TARGET_RESULTS:,} results: longest stall median "
        f"{statistics.median(search):.0f} ms, worst {max(search):.0f} ms  (target <= 50 ms)"
    )
    print(
        f"1 MB card render (first 256 kB):   longest stall median "
        f"{statistics.median(card):.0f} ms, worst {max(card):.0f} ms  (target <= 50 ms)"
    )
    print(
        f"...then 'show the rest' (~0.8 MB): longest stall median "
        f"{statistics.median(rest):.0f} ms, worst {max(rest):.0f} ms"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Longest GUI main-thread stall while the image queue runs "Queue 10 variations" on the
Images page (the queue panel refreshing, the gallery filling), against the idle noise floor.

A 5 ms QTimer heartbeat runs on the main thread (as in `benchmarks.stall`); a stall is the
longest gap between two beats minus the period. The window is the real MainWindow on the real
qasync loop; the model is the tests' tiny pipeline at 64x64 (built in a separate process, so
torch never loads here); the engine is warmed by one generation first.

    .venv/bin/python -m benchmarks.images_queue_stall [--runs 2] [--steps 8] [--threads 1]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
os.environ.setdefault("PYTHON_KEYRING_BACKEND", "keyring.backends.fail.Keyring")

import qasync

from app.core import Core
from benchmarks.images_stall import build_tiny_pipeline, generate, idle_stall
from benchmarks.stall import HEARTBEAT_MS, Heartbeat
from ui.application import create_application, open_main_window
from ui.images.page import VARIATIONS, ImagesPage


async def run_variations(page: ImagesPage) -> tuple[float, float]:
    """Press "Queue 10 variations"; (longest stall in ms, seconds until all ended)."""
    loop = asyncio.get_running_loop()
    done: asyncio.Future[None] = loop.create_future()
    before = page.queue_panel.progress.value()

    def on_refreshed(ended: int, _listed: int) -> None:
        if ended >= before + VARIATIONS and not done.done():
            done.set_result(None)

    page.queue_panel.refreshed.connect(on_refreshed)
    heartbeat = Heartbeat()
    heartbeat.start()
    started = time.perf_counter()
    page.variations_button.click()
    await asyncio.wait_for(done, 1200)
    seconds = time.perf_counter() - started
    stall = heartbeat.stop()
    page.queue_panel.refreshed.disconnect(on_refreshed)
    return stall, seconds


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=2)
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--threads", type=int, default=1, help="torch threads in the engine")
    args = parser.parse_args()

    app = create_application(sys.argv)
    with tempfile.TemporaryDirectory() as temporary:
        root = Path(temporary)
        build_tiny_pipeline(root / "tiny-pipeline")
        os.environ["HOME"] = str(root / "home")  # an empty library: only the tiny model
        core = Core.open(data_dir=root / "data", endpoint_override="http://127.0.0.1:9")
        core.images.threads = args.threads
        window = open_main_window(core)
        loop = qasync.QEventLoop(app)
        asyncio.set_event_loop(loop)

        async def run() -> tuple[list[float], list[tuple[float, float]]]:
            window.images_with(root / "tiny-pipeline")
            page = window.images
            page.form.width_box.setValue(64)
            page.form.height_box.setValue(64)
            page.form.prompt.setPlainText("a lighthouse at dusk")
            await generate(page, args.steps)  # the engine started and the model loaded
            page.lower_tabs.setCurrentWidget(page.queue_panel)  # the panel on screen
            idle, queued = [], []
            for _ in range(args.runs):
                idle.append(await idle_stall(1.0))
                queued.append(await run_variations(page))
            return idle, queued

        with loop:
            idle, queued = loop.run_until_complete(run())
        window.close()
        core.close()

    stalls = [stall for stall, _seconds in queued]
    each = statistics.median(seconds for _stall, seconds in queued) / VARIATIONS
    print(
        f"runs: {args.runs}, heartbeat: {HEARTBEAT_MS} ms, platform: {app.platformName()}, "
        f"tiny pipeline 64x64, {args.steps} steps, {args.threads} torch thread(s)"
    )
    print(f"idle (nothing running):        longest stall median {statistics.median(idle):.0f} ms")
    print(
        f"{VARIATIONS} queued variations:         longest stall median "
        f"{statistics.median(stalls):.0f} ms, worst {max(stalls):.0f} ms (target <= 50 ms); "
        f"{each:.2f} s per job"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""The Documents page while a folder indexes: the GUI's longest main-thread stall.

The real MainWindow on the real qasync loop; a generated mixed folder (Markdown, text, HTML,
code, PDFs and Word files, `--mb` of them) added through the page and indexed words-only on
its worker thread, with progress relayed to the page. A 5 ms QTimer heartbeat measures the
stall (longest gap minus the period).

    .venv/bin/python -m benchmarks.docs_stall [--runs 3] [--mb 5]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
os.environ.setdefault("PYTHON_KEYRING_BACKEND", "keyring.backends.fail.Keyring")

import qasync

from app.core import Core
from benchmarks.docs_index import write_mixed_corpus
from benchmarks.stall import Heartbeat, wait_until
from ui.application import create_application, open_main_window
from ui.main_window import MainWindow


async def run(window: MainWindow, folder: Path, runs: int, megabytes: float) -> None:
    page = window.documents
    window.show_page(page)
    await asyncio.sleep(0.5)
    stalls, seconds = [], []
    for run_number in range(runs):
        corpus = folder / f"corpus{run_number}"
        size = write_mixed_corpus(corpus, megabytes, random.Random(run_number))
        finished: list[str] = []
        page.indexFinished.connect(finished.append)
        done = finished  # bound for the lambda below
        heartbeat = Heartbeat()
        started = time.perf_counter()
        heartbeat.start()
        page.add_folder(corpus)
        await wait_until(lambda done=done: bool(done), timeout=600)
        stalls.append(heartbeat.stop())
        seconds.append(time.perf_counter() - started)
        page.indexFinished.disconnect(finished.append)
        print(f"  run {run_number + 1}: {finished[0]}")
    took = statistics.median(seconds)
    print(f"== indexing {size / 1e6:.1f} MB through the Documents page ({took:.1f} s)")
    print(
        f"  longest GUI stall      median {statistics.median(stalls):.1f} ms, "
        f"worst {max(stalls):.1f} ms"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--mb", type=float, default=5.0)
    args = parser.parse_args()
    app = create_application(sys.argv)
    with tempfile.TemporaryDirectory() as folder:
        core = Core.open(data_dir=Path(folder) / "data", endpoint_override="http://127.0.0.1:9")
        window = open_main_window(core)
        loop = qasync.QEventLoop(app)
        asyncio.set_event_loop(loop)
        with loop:
            loop.run_until_complete(run(window, Path(folder), args.runs, args.mb))
        window.close()
        core.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Resident memory of the idle app after start: the window open, a first search shown.

Builds the window exactly as `modeldeck` does (create_application, Core.open,
open_main_window, the qasync loop, the first search), against a fake hub in another process,
waits until the search has rendered and the app has been idle for a few seconds, then reads
this process's RSS. Prints the median of N fresh processes.

    .venv/bin/python -m benchmarks.memory [--runs 3]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

IDLE_SECONDS = 3.0


def measure_once(endpoint: str) -> float:
    """In this process: start the app, search, idle, and return RSS in MB."""
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    os.environ.setdefault("PYTHON_KEYRING_BACKEND", "keyring.backends.fail.Keyring")
    import psutil
    import qasync

    from app.core import Core
    from ui.application import create_application, open_main_window
    from ui.discover.results_model import SearchState

    app = create_application(sys.argv)
    with tempfile.TemporaryDirectory() as data:
        core = Core.open(data_dir=Path(data), endpoint_override=endpoint)
        window = open_main_window(core)
        loop = qasync.QEventLoop(app)
        asyncio.set_event_loop(loop)

        async def settle() -> None:
            window.discover.search_now()
            deadline = time.monotonic() + 30
            while window.discover.results.state != SearchState.RESULTS:
                if time.monotonic() > deadline:
                    raise TimeoutError("the first search did not finish")
                await asyncio.sleep(0.05)
            await asyncio.sleep(IDLE_SECONDS)

        with loop:
            loop.run_until_complete(settle())
        rss = psutil.Process().memory_info().rss / 1e6
        heavy = [
            name
            for name in ("torch", "diffusers", "transformers", "llama_cpp")
            if name in sys.modules
        ]
        core.close()
    print(f"rss-mb {rss:.1f} heavy {','.join(heavy) or '-'}", flush=True)
    return rss


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--endpoint", help=argparse.SUPPRESS)  # set for the child processes
    args = parser.parse_args()
    if args.endpoint:
        measure_once(args.endpoint)
        return 0
    from benchmarks.bench_hub import BenchHub

    readings: list[float] = []
    heavy = "?"
    with BenchHub(repos=200) as hub:
        for _ in range(args.runs):
            output = subprocess.run(
                [sys.executable, "-m", "benchmarks.memory", "--endpoint", hub.url],
                capture_output=True,
                text=True,
                timeout=120,
                check=True,
            ).stdout
            line = next(line for line in output.splitlines() if line.startswith("rss-mb "))
            readings.append(float(line.split()[1]))
            heavy = line.split()[3]
    print(f"runs: {args.runs}, idle {IDLE_SECONDS:.0f} s after the first search")
    print(
        f"resident memory (RSS), median: {statistics.median(readings):.0f} MB  "
        f"(all: {', '.join(f'{value:.0f}' for value in readings)}; target <= 250 MB)"
    )
    print(f"heavy runtimes loaded: {heavy}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

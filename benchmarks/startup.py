"""Cold start to the first painted main window, against a bare PySide6 window started the same way.

Each run is a fresh `python` process; the clock starts just before the process is spawned and
stops at the window's first Paint event (both read CLOCK_MONOTONIC). Prints the median of N
runs for each, their ratio, and whether torch/diffusers/transformers/llama_cpp were imported.

    .venv/bin/python -m benchmarks.startup [--runs 5]
"""

from __future__ import annotations

import argparse
import compileall
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BARE_WINDOW = """
import sys, time
from PySide6.QtCore import QEvent, QObject
from PySide6.QtWidgets import QApplication, QMainWindow
class Probe(QObject):
    def eventFilter(self, watched, event):
        if event.type() == QEvent.Type.Paint:
            print(f"first-paint {time.monotonic():.6f}", flush=True)
            QApplication.quit()
        return False
app = QApplication(sys.argv)
window = QMainWindow(); window.setWindowTitle("bare"); window.resize(1280, 800)
probe = Probe(); window.installEventFilter(probe); window.show()
app.exec()
"""


def _first_paint_seconds(command: list[str], env: dict[str, str]) -> tuple[float, str]:
    started = time.monotonic()
    result = subprocess.run(
        command, env=env, capture_output=True, text=True, timeout=60, check=True
    )
    stamps = [line for line in result.stdout.splitlines() if line.startswith("first-paint ")]
    if not stamps:
        raise RuntimeError(f"no first paint reported: {result.stdout}\n{result.stderr}")
    heavy = next((line for line in result.stdout.splitlines() if line.startswith("heavy-")), "")
    return float(stamps[0].split()[1]) - started, heavy


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    env = dict(os.environ, QT_QPA_PLATFORM=os.environ.get("QT_QPA_PLATFORM", "offscreen"))
    # A user's second start finds its byte code cached; this machine sets
    # PYTHONDONTWRITEBYTECODE, so compile once here or every run would compile the sources.
    root = Path(__file__).resolve().parent.parent
    for package in ("app", "ui"):
        compileall.compile_dir(root / package, quiet=1)
    with tempfile.TemporaryDirectory() as data_dir:
        # An unreachable endpoint: startup must not wait on the network either way.
        app_env = dict(
            env,
            MODELDECK_DATA_DIR=data_dir,
            MODELDECK_STARTUP_PROBE="1",
            HF_ENDPOINT="http://127.0.0.1:9",
            PYTHON_KEYRING_BACKEND="keyring.backends.fail.Keyring",
        )
        app_command = [sys.executable, "-m", "ui.launcher"]
        bare_command = [sys.executable, "-c", BARE_WINDOW]
        _first_paint_seconds(app_command, app_env)  # warm the OS file cache once for both
        _first_paint_seconds(bare_command, env)
        app_times, bare_times, heavy = [], [], ""
        for _ in range(args.runs):  # interleaved, so machine noise hits both alike
            seconds, heavy = _first_paint_seconds(app_command, app_env)
            app_times.append(seconds)
            bare_times.append(_first_paint_seconds(bare_command, env)[0])
    app_median, bare_median = statistics.median(app_times), statistics.median(bare_times)
    print(f"platform: {env['QT_QPA_PLATFORM']}, runs: {args.runs}")
    print(
        f"ModelDeck first paint, median: {app_median * 1000:7.0f} ms  "
        f"(all: {', '.join(f'{t * 1000:.0f}' for t in app_times)})"
    )
    print(
        f"bare PySide6 window, median:   {bare_median * 1000:7.0f} ms  "
        f"(all: {', '.join(f'{t * 1000:.0f}' for t in bare_times)})"
    )
    print(
        f"ratio ModelDeck / bare: {app_median / bare_median:.2f}  (target <= 2.0; "
        f"absolute target <= 1000 ms)"
    )
    print(f"heavy runtimes imported at first paint: {heavy.split(' ', 1)[1] if heavy else '?'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

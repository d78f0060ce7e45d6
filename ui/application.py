"""Start the window: QApplication, the asyncio loop on Qt (qasync), the core, the main window."""

from __future__ import annotations

import gc
import os
import sys
import time
from pathlib import Path

from PySide6.QtCore import QEvent, QObject, QTimer
from PySide6.QtGui import QIcon
from PySide6.QtWidgets import QApplication

from app import __version__
from app.core import Core
from ui.main_window import MainWindow

RESOURCES = Path(__file__).resolve().parent.parent / "resources"
# Set by benchmarks/startup.py: print the monotonic clock at the first paint, then quit.
STARTUP_PROBE_ENV = "MODELDECK_STARTUP_PROBE"


def display_problem() -> str | None:
    """Why no window can open here, or None. Catches the common headless case early."""
    if sys.platform.startswith("linux") and not (
        os.environ.get("DISPLAY")
        or os.environ.get("WAYLAND_DISPLAY")
        or os.environ.get("QT_QPA_PLATFORM")
    ):
        return (
            "no display found (DISPLAY and WAYLAND_DISPLAY are unset). Start ModelDeck from a "
            "desktop session, or use the command line: modeldeck --help"
        )
    return None


def create_application(argv: list[str]) -> QApplication:
    """The QApplication with ModelDeck's name and icon."""
    app = QApplication.instance() or QApplication(argv)
    assert isinstance(app, QApplication)
    app.setApplicationName("ModelDeck")
    app.setApplicationDisplayName("ModelDeck")
    app.setApplicationVersion(__version__)
    app.setOrganizationName("ModelDeck")
    app.setDesktopFileName("modeldeck")
    icon = RESOURCES / "icons" / "modeldeck.svg"
    if icon.exists():
        app.setWindowIcon(QIcon(str(icon)))
    return app


class _FirstPaintProbe(QObject):
    """Prints when the window first paints and quits: the startup benchmark's stopwatch."""

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        if event.type() == QEvent.Type.Paint:
            print(f"first-paint {time.monotonic():.6f}", flush=True)
            heavy = [
                name
                for name in ("torch", "diffusers", "transformers", "llama_cpp")
                if name in sys.modules
            ]
            print(f"heavy-modules {','.join(heavy) or '-'}", flush=True)
            watched.removeEventFilter(self)
            # Quit once the event loop runs (the first paint may come before it starts).
            QTimer.singleShot(0, QApplication.quit)
        return False


def open_main_window(core: Core) -> MainWindow:
    """Build and show the main window, then freeze the startup heap for the garbage collector.

    Everything alive now (modules, Qt wrappers, widgets) lives as long as the app. Freezing it
    keeps full collections from walking it again and again: a 1 MB card makes a million short
    lived objects, and without this each full collection stalled the window for ~45 ms.
    """
    window = MainWindow(core)
    if os.environ.get(STARTUP_PROBE_ENV):
        window.installEventFilter(_FirstPaintProbe(window))
    window.show()
    gc.freeze()
    return window


def run_gui(*, endpoint_override: str | None = None) -> int:
    """Open the main window and run until it closes; returns the exit status."""
    problem = display_problem()
    if problem:
        sys.stderr.write(f"modeldeck: {problem}\n")
        return 1
    app = create_application(sys.argv)
    core = Core.open(endpoint_override=endpoint_override)
    window = open_main_window(core)
    app.processEvents()  # paint the window now; the asyncio loop is not needed for that
    import asyncio

    import qasync

    loop = qasync.QEventLoop(app)
    asyncio.set_event_loop(loop)
    loop.call_soon(window.start_background_work)
    app.aboutToQuit.connect(core.close)
    with loop:
        loop.run_forever()
    return 0

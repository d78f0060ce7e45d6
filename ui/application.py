"""Start the window: QApplication, the asyncio loop on Qt (qasync), the core, the main window."""

from __future__ import annotations

import gc
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from PySide6.QtCore import (
    QEvent,
    QMessageLogContext,
    QObject,
    Qt,
    QTimer,
    QtMsgType,
    qInstallMessageHandler,
)
from PySide6.QtGui import QIcon
from PySide6.QtWidgets import QApplication, QMessageBox

from app import __version__
from app.core import Core
from app.store import DatabaseError
from ui import theme
from ui.main_window import MainWindow

RESOURCES = Path(__file__).resolve().parent.parent / "resources"
# Set by benchmarks/startup.py: print the monotonic clock at the first paint, then quit.
STARTUP_PROBE_ENV = "MODELDECK_STARTUP_PROBE"


# Platform plugins that draw without a window system, so they need no DISPLAY.
_HEADLESS_PLATFORMS = frozenset(
    ("offscreen", "minimal", "minimalegl", "vnc", "eglfs", "linuxfb", "vkkhrdisplay")
)


def display_problem() -> str | None:
    """Why no window can open here, or None. Catches the common headless case early: without
    this, Qt aborts with a plugin error and a core dump that tell a person nothing."""
    if not sys.platform.startswith("linux"):
        return None
    if os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"):
        return None
    # "offscreen", "vnc:size=800x600", "wayland;xcb": the first plugin Qt would try.
    platform = os.environ.get("QT_QPA_PLATFORM", "").split(";")[0].split(":")[0].strip()
    if platform in _HEADLESS_PLATFORMS:
        return None
    return (
        "no display found (DISPLAY and WAYLAND_DISPLAY are unset). ModelDeck needs a display: "
        "start it from a desktop session or set DISPLAY. Without one, `modeldeck --self-test` "
        "checks this install and `modeldeck --help` lists the command-line commands."
    )


def create_application(argv: list[str]) -> QApplication:
    """The QApplication with ModelDeck's name, icon and theme (Fusion, light or dark)."""
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
    theme.install(app)
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


def run_gui(*, endpoint_override: str | None = None, open_paths: Sequence[Path] = ()) -> int:
    """Open the main window and run until it closes; returns the exit status.

    `open_paths` (files the desktop asked ModelDeck to open) are imported into the Library,
    as if dropped on the window.
    """
    problem = display_problem()
    if problem:
        sys.stderr.write(f"modeldeck: {problem}\n")
        return 1
    app = create_application(sys.argv)
    try:
        core = Core.open(endpoint_override=endpoint_override)
    except DatabaseError as exc:  # a damaged, foreign or newer database: start nothing
        sys.stderr.write(f"modeldeck: {exc}\n")
        if app.platformName() not in _HEADLESS_PLATFORMS:  # nobody could close the box there
            QMessageBox.critical(None, "ModelDeck cannot start", str(exc))
        return 1
    window = open_main_window(core)
    if core.database.recovery is not None:
        _tell_about_recovery(window, core.database.recovery.message)
    app.processEvents()  # paint the window now; the asyncio loop is not needed for that
    import asyncio

    import qasync

    loop = qasync.QEventLoop(app)
    asyncio.set_event_loop(loop)
    loop.call_soon(window.start_background_work)
    if open_paths:
        loop.call_soon(_import_paths, window, list(open_paths))
    app.aboutToQuit.connect(core.close)
    with loop:
        loop.run_forever()
    return 0


def _tell_about_recovery(window: MainWindow, message: str) -> None:
    """Say, without blocking start-up, that a damaged database was moved aside."""
    sys.stderr.write(f"modeldeck: {message}\n")
    box = QMessageBox(QMessageBox.Icon.Warning, "ModelDeck", message, parent=window)
    box.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
    box.open()


def _import_paths(window: MainWindow, paths: list[Path]) -> None:
    window.show_page(window.library)
    window.library.import_paths(paths)


# -- modeldeck --self-test ------------------------------------------------------------------


def run_self_test() -> int:
    """`modeldeck --self-test`: the core's checks plus the main window, offscreen.

    Runs without a display (it sets QT_QPA_PLATFORM=offscreen itself) and in a throwaway
    data folder; see `app.selftest`.
    """
    os.environ["QT_QPA_PLATFORM"] = "offscreen"
    qInstallMessageHandler(_quiet_offscreen_messages)
    from app import selftest

    return selftest.run_self_test(ui_checks=[selftest.Check("main window", _check_main_window)])


def _quiet_offscreen_messages(kind: QtMsgType, context: QMessageLogContext, message: str) -> None:
    # The offscreen plugin says this about every top-level window; anything else is news.
    if "propagateSizeHints" not in message:
        sys.stderr.write(f"{message}\n")


class _PaintCounter(QObject):
    def __init__(self) -> None:
        super().__init__()
        self.paints = 0

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        if event.type() == QEvent.Type.Paint:
            self.paints += 1
        return False


def _check_main_window(folder: Path) -> str:
    """A first run's window: it paints, and its Library scans (empty) and says what to do."""
    import asyncio

    import qasync

    app = create_application([sys.argv[0]])
    core = Core.open()
    loop = qasync.QEventLoop(app)
    asyncio.set_event_loop(loop)
    try:
        window = MainWindow(core)
        counter = _PaintCounter()
        window.installEventFilter(counter)
        window.show()
        models, status = loop.run_until_complete(
            asyncio.wait_for(_first_library_scan(window), 30.0)
        )
        if not counter.paints:
            raise RuntimeError("the main window never painted")
        if models == 0 and "Discover" not in status:
            raise RuntimeError(f"the empty Library does not say how to get a model: {status!r}")
        window.close()
        window.deleteLater()
        app.processEvents()
    finally:
        loop.close()
        asyncio.set_event_loop(None)
        core.close()
    found = "no models and says how to get one" if models == 0 else f"{models} models"
    return f"painted offscreen; the Library found {found}"


async def _first_library_scan(window: MainWindow) -> tuple[int, str]:
    """Show the Library (built, and scanning, on first use); its model count and message."""
    import asyncio

    scanned: asyncio.Future[int] = asyncio.get_running_loop().create_future()
    library = window.library

    def finished(count: int) -> None:
        if not scanned.done():
            scanned.set_result(count)

    library.scanned.connect(finished)
    window.show_page(library)
    return await scanned, library.status.text()

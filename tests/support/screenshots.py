"""Screenshots of every page, in each window size and colour scheme, against the demo hub.

Starts the demo hub on a free port, opens the main window on it in a temporary data folder,
drives the pages through their public widgets (a search, a model opened on each of its
tabs, a download queued from its Files tab) and saves `window.grab()` of each page as
`<page>-<width>x<height>-<scheme>.png`. Run it through `scripts/screenshots`, which provides
a display (Xvfb when there is none, else Qt's offscreen platform)::

    scripts/screenshots [FOLDER] [--sizes 900x600,1280x800] [--schemes light,dark]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from PySide6.QtWidgets import QWidget

    from ui.main_window import MainWindow

DEFAULT_FOLDER = Path("build/screenshots")
DEFAULT_SIZES = ((900, 600), (1280, 800), (1920, 1080))
SCHEMES = ("light", "dark")
SEARCH = "Pocket-Llama"  # the demo hub's GGUF repo: a card, a license and files that fit
DOWNLOAD_FILE = "Pocket-Llama-3B-Instruct-Q4_K_M.gguf"
SETTLE_S = 0.15  # for layouts and deferred paints after a resize or a page switch


@dataclass(frozen=True, slots=True)
class Shot:
    """One picture: its name, and how to bring the window to it."""

    name: str
    show: Callable[[MainWindow], QWidget]


def _discover_tab(index: int) -> Callable[[MainWindow], QWidget]:
    def show(window: MainWindow) -> QWidget:
        window.show_page(window.discover)
        window.discover.details.view.tabs.setCurrentIndex(index)
        return window.discover

    return show


def _page(name: str) -> Callable[[MainWindow], QWidget]:
    def show(window: MainWindow) -> QWidget:
        page: QWidget = getattr(window, name)  # the property builds the page on first use
        window.show_page(page)
        return page

    return show


SHOTS = (
    Shot("discover-card", _discover_tab(0)),
    Shot("discover-license", _discover_tab(1)),
    Shot("discover-files", _discover_tab(2)),
    *(Shot(name, _page(name)) for name in ("library", "downloads", "chat", "images", "settings")),
)


def parse_size(text: str) -> tuple[int, int]:
    width, _, height = text.lower().partition("x")
    return int(width), int(height)


async def until(condition: Callable[[], object], what: str, timeout: float = 30.0) -> None:
    """Wait (on the Qt loop) until `condition()` is true; say what never happened."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(f"screenshots: timed out waiting for {what}")
        await asyncio.sleep(0.05)


async def prepare(window: MainWindow) -> None:
    """A search with a model opened, and one download finished in the Downloads list."""
    page = window.discover
    window.start_background_work()
    page.search_field.setText(SEARCH)
    page.search_now()

    def found() -> int | None:
        return next(
            (
                row
                for row in range(page.results.rowCount())
                if (summary := page.results.summary(row)) and SEARCH in summary.repo_id
            ),
            None,
        )

    await until(lambda: found() is not None, "the search result")
    shown: list[str] = []
    page.details.cardShown.connect(shown.append)
    page.results_view.selectRow(found() or 0)
    await until(lambda: shown, "the model card")

    files = page.details.view.files
    await until(lambda: files.model is not None, "the file list")
    model = files.model
    assert model is not None
    rows = [row for row in range(model.rowCount()) if model.item(row, 0).text() == DOWNLOAD_FILE]
    if rows:
        files.tree.setCurrentIndex(model.index(rows[0], 0))
        files.download_button.click()
        downloads = window.downloads
        await until(lambda: downloads.model.rowCount() > 0, "the download in the list")


async def take_all(
    window: MainWindow,
    folder: Path,
    sizes: Sequence[tuple[int, int]],
    schemes: Sequence[str],
) -> list[Path]:
    from PySide6.QtWidgets import QApplication

    from ui import theme

    written: list[Path] = []
    await prepare(window)
    for scheme in schemes:
        theme.set_scheme(theme.Scheme(scheme))
        for width, height in sizes:
            for shot in SHOTS:
                shot.show(window)
                window.resize(width, height)  # again: a wider page before may have grown it
                await asyncio.sleep(SETTLE_S)
                QApplication.processEvents()
                path = folder / f"{shot.name}-{width}x{height}-{scheme}.png"
                picture = window.grab()
                if (picture.width(), picture.height()) != (width, height):
                    # A page whose minimum size is larger than the window grows the window.
                    minimum = window.minimumSizeHint()
                    print(
                        f"warning: {path.name} is {picture.width()}x{picture.height()}; "
                        f"the window's minimum is {minimum.width()}x{minimum.height()}",
                        file=sys.stderr,
                    )
                if not picture.save(str(path)):
                    raise OSError(f"screenshots: could not write {path}")
                written.append(path)
    return written


def _isolate(temporary: Path) -> None:
    """Keep the user's data, models, hub cache and keychain out (before huggingface_hub and
    the core are imported: they read these once)."""
    os.environ["MODELDECK_DATA_DIR"] = str(temporary / "data")
    os.environ["HF_HOME"] = str(temporary / "hf")
    os.environ["HOME"] = str(temporary / "home")  # the library looks into other apps' folders
    os.environ["PYTHON_KEYRING_BACKEND"] = "keyring.backends.fail.Keyring"
    os.environ["HF_HUB_DISABLE_TELEMETRY"] = "1"
    os.environ["HF_HUB_DISABLE_XET"] = "1"
    os.environ.pop("OLLAMA_MODELS", None)


def run(folder: Path, sizes: Sequence[tuple[int, int]], schemes: Sequence[str]) -> list[Path]:
    """Take the screenshots into `folder`; returns the files written."""
    folder.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="modeldeck-screenshots-") as name:
        temporary = Path(name)
        _isolate(temporary)
        import qasync

        from app.core import Core
        from tests.support.demo_hub import seed_demo_hub
        from tests.support.hub_server import HubServer
        from ui.application import create_application
        from ui.main_window import MainWindow

        with HubServer(temporary / "hub") as server:
            seed_demo_hub(server, filler_repos=30)
            app = create_application([sys.argv[0]])
            core = Core.open(data_dir=temporary / "data", endpoint_override=server.url)
            loop = qasync.QEventLoop(app)
            asyncio.set_event_loop(loop)
            window = MainWindow(core)
            try:
                window.show()
                return loop.run_until_complete(
                    asyncio.wait_for(take_all(window, folder, sizes, schemes), 300)
                )
            finally:
                window.close()
                core.close()
                loop.close()
                asyncio.set_event_loop(None)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="scripts/screenshots", description=__doc__)
    parser.add_argument("folder", nargs="?", type=Path, default=DEFAULT_FOLDER)
    parser.add_argument(
        "--sizes",
        default=",".join(f"{w}x{h}" for w, h in DEFAULT_SIZES),
        help="window sizes, e.g. 900x600,1920x1080",
    )
    parser.add_argument("--schemes", default=",".join(SCHEMES), help="light, dark or both")
    args = parser.parse_args(argv)
    sizes = [parse_size(size) for size in args.sizes.split(",") if size]
    schemes = [scheme.strip() for scheme in args.schemes.split(",") if scheme.strip()]
    unknown = set(schemes) - set(SCHEMES)
    if unknown:
        parser.error(f"unknown scheme(s): {', '.join(sorted(unknown))}")
    written = run(args.folder, sizes, schemes)
    print(f"{len(written)} screenshots in {args.folder}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Screenshots of every page, in each window size and colour scheme, against the demo hub.

Starts the demo hub on a free port, opens the main window on it in a temporary data folder,
drives the pages through their public widgets (a search, a model opened on each of its
tabs, a download queued from its Files tab, a chat with the demo hub's tiny GGUF until it
replies, an image made with its tiny diffusers pipeline) and saves `window.grab()` of each
page as `<page>-<width>x<height>-<scheme>.png`. Run it through `scripts/screenshots`, which
provides a display (Xvfb when there is none, else Qt's offscreen platform)::

    scripts/screenshots [FOLDER] [--sizes 900x600 1280x800] [--schemes light dark] [--quick]

`--quick` leaves out the models that run (no torch, no engines): Chat without a reply and
Images without a result, in seconds instead of a minute or two.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import os
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from PySide6.QtWidgets import QWidget

    from app.core import Core
    from tests.support.demo_hub import RunnableRepos
    from ui.main_window import MainWindow

DEFAULT_FOLDER = Path("build/screenshots")
DEFAULT_SIZES = ((900, 600), (1280, 800), (1920, 1080))
SCHEMES = ("light", "dark")
SEARCH = "Pocket-Llama"  # the demo hub's GGUF repo: a card, a license and files that fit
DOWNLOAD_FILE = "Pocket-Llama-3B-Instruct-Q4_K_M.gguf"
SETTLE_S = 0.15  # for layouts and deferred paints after a resize or a page switch
CHAT_MESSAGE = "Hello! What can you do?"
IMAGE_PROMPT = "a lighthouse on a cliff at dusk, oil painting"
IMAGE_SIDE = 64  # the tiny pipeline's own size: 2 steps take well under a second on a CPU
IMAGE_STEPS = 2
ENGINE_TIMEOUT_S = 180.0  # a first engine start imports torch or llama.cpp: slow on 2 cores


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
    *(
        Shot(name, _page(name))
        for name in ("library", "downloads", "chat", "documents", "images", "settings")
    ),
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


class WalkError(RuntimeError):
    """A step of the walk did not happen (the screenshots are still taken)."""


def _attribute(root: object, *paths: str) -> Any:
    """The first of the dotted `paths` that exists under `root` (pages change; the walk
    uses their most stable public parts and says which one it could not find)."""
    for path in paths:
        found: object = root
        for name in path.split("."):
            found = getattr(found, name, None)
            if found is None:
                break
        if found is not None:
            return found
    raise WalkError(f"screenshots: none of {', '.join(paths)} on {type(root).__name__}")


async def chat_with_a_reply(window: MainWindow, model: Path) -> None:
    """Pick the tiny GGUF in Chat, load it, send a message, and wait for the reply."""
    window.chat_with(model)
    chat = window.chat
    loaded: list[bool] = []
    finished: list[str] = []
    panel = _attribute(chat, "panel", "model_panel")
    panel.loadFinished.connect(loaded.append)
    chat.replyFinished.connect(finished.append)
    load = _attribute(panel, "load")
    load()
    await until(lambda: loaded, "the chat model to load", ENGINE_TIMEOUT_S)
    if not loaded[-1]:
        raise WalkError("screenshots: the tiny GGUF did not load (see the Chat page)")
    editor = _attribute(chat, "composer.editor")
    send = _attribute(chat, "composer.send_button")
    editor.setPlainText(CHAT_MESSAGE)
    await until(send.isEnabled, "Send to be enabled")
    send.click()
    await until(lambda: finished, "the chat reply", ENGINE_TIMEOUT_S)
    if finished[-1] != "complete":
        raise WalkError(f"screenshots: the chat reply ended {finished[-1]!r}")


async def images_with_a_result(window: MainWindow, pipeline: Path) -> None:
    """Pick the tiny pipeline in Images and make one 64x64 image in 2 steps."""
    window.images_with(pipeline)
    page = window.images
    form = page.form
    form.prompt.setPlainText(IMAGE_PROMPT)
    form.steps.setValue(IMAGE_STEPS)
    # The size is left to the model: the tiny pipeline's own 64x64 replaces the form's SD 1.x
    # default when it loads, and the note beside the size fields says so (in the pictures).
    form.random_seed.setChecked(False)
    form.seed.setText("1234")  # the same picture every run
    finished: list[str] = []
    page.generationFinished.connect(finished.append)
    page.generate_button.click()
    await until(lambda: finished, "the image", ENGINE_TIMEOUT_S)
    if finished[-1] != "done":
        raise WalkError(f"screenshots: the image ended {finished[-1]!r}: {page.status.text()}")
    made = page.gallery_model.image(0)
    if made is None or (made.width, made.height) != (IMAGE_SIDE, IMAGE_SIDE):
        raise WalkError("screenshots: the image is not the tiny pipeline's own 64x64")
    # Select it, so the gallery's selection frame is in the picture.
    page.gallery.view.setCurrentIndex(page.gallery_model.index(0))


@dataclass(frozen=True, slots=True)
class Pulled:
    """The runnable models as a person gets them: downloaded into the HF cache (so the
    Library lists them, with the license their card names)."""

    chat_model: Path  # the GGUF file
    pipeline: Path  # the diffusers folder


def pull_runnable(core: Core, runnable: RunnableRepos) -> Pulled:
    """Download both runnable repos as `modeldeck pull` does (blocking; before the window)."""
    from app.commands import pull

    folders = []
    for repo_id in (runnable.chat, runnable.pipeline):
        args = argparse.Namespace(repo_id=repo_id, patterns=[], revision=None, json=True)
        output = io.StringIO()
        if pull.run(core, args, out=output) != 0:
            raise WalkError(f"screenshots: pulling {repo_id} failed: {output.getvalue()[-500:]}")
        last = json.loads(output.getvalue().strip().splitlines()[-1])  # {"event": "done", …}
        folders.append(Path(last["path"]))
    return Pulled(chat_model=folders[0] / runnable.chat_file, pipeline=folders[1])


async def documents_with_a_collection(window: MainWindow) -> None:
    """A small folder of notes added on the Documents page and indexed."""
    folder = Path(tempfile.mkdtemp(prefix="modeldeck-shots-")) / "Household notes"
    folder.mkdir()
    for index, topic in enumerate(("Boiler", "Garden", "Bikes", "Recipes")):
        (folder / f"{topic.lower()}.md").write_text(
            f"# {topic}\n\nNote {index}: what to remember about the {topic.lower()}.\n"
        )
    page = window.documents
    finished: list[str] = []
    page.indexFinished.connect(finished.append)
    page.add_folder(folder)
    await until(lambda: finished, "the documents index")


async def prepare(window: MainWindow, runnable: Pulled | None = None) -> list[str]:
    """A search with a model opened, one download in the Downloads list and, with the
    `runnable` models, a chat reply and an image; returns the steps that failed."""
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
    await documents_with_a_collection(window)
    if runnable is None:
        return []
    failed: list[str] = []
    # Each walk may fail alone (a page being reworked): the rest is still worth a picture.
    for step in (
        chat_with_a_reply(window, runnable.chat_model),
        images_with_a_result(window, runnable.pipeline),
    ):
        try:
            await step
        except (WalkError, TimeoutError, AttributeError, TypeError) as exc:
            failed.append(str(exc))
            print(f"warning: {exc}", file=sys.stderr)
    return failed


@dataclass(frozen=True, slots=True)
class Taken:
    """What a run wrote, and the walk's steps that failed."""

    written: list[Path]
    failed: list[str]


async def take_all(
    window: MainWindow,
    folder: Path,
    sizes: Sequence[tuple[int, int]],
    schemes: Sequence[str],
    runnable: Pulled | None = None,
) -> Taken:
    from PySide6.QtWidgets import QApplication

    from ui import theme

    written: list[Path] = []
    failed = await prepare(window, runnable)
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
    return Taken(written, failed)


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


def run(
    folder: Path,
    sizes: Sequence[tuple[int, int]],
    schemes: Sequence[str],
    *,
    quick: bool = False,
) -> Taken:
    """Take the screenshots into `folder` (`quick`: without the models that run)."""
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
            models = None if quick else temporary / "demo-models"
            demo = seed_demo_hub(server, filler_repos=30, runnable=models)
            app = create_application([sys.argv[0]])
            core = Core.open(data_dir=temporary / "data", endpoint_override=server.url)
            pulled = pull_runnable(core, demo.runnable) if demo.runnable is not None else None
            loop = qasync.QEventLoop(app)
            asyncio.set_event_loop(loop)
            window = MainWindow(core)
            try:
                window.show()
                walk = take_all(window, folder, sizes, schemes, pulled)
                taken: Taken = loop.run_until_complete(asyncio.wait_for(walk, 600))
                return taken
            finally:
                window.close()
                core.close()
                loop.close()
                asyncio.set_event_loop(None)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="scripts/screenshots", description=__doc__)
    parser.add_argument("folder", nargs="?", type=Path, default=DEFAULT_FOLDER)
    # Both "900x600 1920x1080" and "900x600,1920x1080" are accepted.
    parser.add_argument(
        "--sizes",
        nargs="+",
        default=[f"{w}x{h}" for w, h in DEFAULT_SIZES],
        help="window sizes, e.g. 900x600 1920x1080",
    )
    parser.add_argument("--schemes", nargs="+", default=list(SCHEMES), help="light, dark or both")
    parser.add_argument(
        "--quick",
        action="store_true",
        help="leave out the models that run: no chat reply, no image (seconds, not minutes)",
    )
    args = parser.parse_args(argv)
    sizes = [parse_size(size) for size in split_list(args.sizes)]
    schemes = split_list(args.schemes)
    unknown = set(schemes) - set(SCHEMES)
    if unknown:
        parser.error(f"unknown scheme(s): {', '.join(sorted(unknown))}")
    taken = run(args.folder, sizes, schemes, quick=args.quick)
    print(f"{len(taken.written)} screenshots in {args.folder}")
    if taken.failed:
        print(f"{len(taken.failed)} step(s) of the walk failed:", file=sys.stderr)
        for text in taken.failed:
            print(f"  {text}", file=sys.stderr)
        return 1
    return 0


def split_list(values: Sequence[str]) -> list[str]:
    return [part.strip() for value in values for part in value.split(",") if part.strip()]


if __name__ == "__main__":
    sys.exit(main())

"""Images: pick a diffusion model, describe the image, Generate; watch it form; keep every
image in a gallery that can make any of them again.

The engine (`core.images`) runs diffusers in a child process. Starting it, loading a model
and submitting a request may block for seconds, so they run on workers; the request's events
are then polled every `POLL_MS` (`RequestHandle.drain`) and only the latest step reaches the
screen. Images are indexed in the gallery (`core.gallery`) as the engine writes them.
"""

from __future__ import annotations

import contextlib
import queue
import time
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import Qt, QTimer, QUrl, Signal
from PySide6.QtGui import QDesktopServices, QDragEnterEvent, QDropEvent, QKeySequence, QShortcut
from PySide6.QtWidgets import (
    QFileDialog,
    QGroupBox,
    QHBoxLayout,
    QMessageBox,
    QPushButton,
    QScrollArea,
    QSplitter,
    QVBoxLayout,
    QWidget,
)

from app.core import Core
from app.errors import AppError
from app.images.engine import ERROR_KINDS, ImageEngineError, generation_seconds, load_info
from app.images.params import ImageParamsError
from ui.images.form import ImageForm
from ui.images.gallery_model import GalleryModel
from ui.images.gallery_view import GalleryPane
from ui.images.model_picker import ImageModel, ModelPicker
from ui.images.pictures import read_scaled
from ui.images.preview import PreviewPane
from ui.images.viewer import ImageViewer
from ui.library_model import ImagePipelines, LibraryModel
from ui.style import mark_error
from ui.tasks import run_blocking, spawn
from ui.widgets import PlainLabel, plain_html

if TYPE_CHECKING:
    import asyncio

    from app.engines.protocol import Event
    from app.engines.supervisor import RequestHandle
    from app.images.engine import GeneratedImage, ImageEngine
    from app.images.gallery import Gallery, GalleryImage
    from app.images.params import ImageParams

POLL_MS = 50  # how often a running generation reaches the screen
CLOSE_WAIT_S = 3.0  # closing waits this long for a cancelled generation to end
FORM_WIDTH = 380
MODEL_SUFFIXES = frozenset({".safetensors", ".ckpt", ".pt", ".pth", ".bin"})
IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".webp", ".bmp"})


def describe_error(error: ImageEngineError) -> str:
    """An engine failure for a person: what kind of failure, then the engine's details."""
    sentence = ERROR_KINDS.get(error.kind)
    details = error.message
    first_word = details.split(" ", 1)[0]
    if "." not in first_word and "/" not in first_word:  # a file name keeps its case
        details = details[:1].upper() + details[1:]
    text = f"{sentence[:1].upper()}{sentence[1:]}. {details}" if sentence else details
    if not text.endswith("."):
        text += "."
    if error.kind == "stopped":
        text += " Press Generate to start it again."
    return text


def _seeds(params: ImageParams) -> str:
    first = params.seed or 0
    return f"seed {first}" if params.batch == 1 else f"seeds {first} to {first + params.batch - 1}"


@dataclass(eq=False)
class _Job:
    """One press of Generate: from starting the engine to the last image indexed."""

    model: ImageModel
    handle: RequestHandle | None = None
    params: ImageParams | None = None
    cancelled: bool = False
    images: list[GeneratedImage] = field(default_factory=list)
    indexing: list[asyncio.Task[None]] = field(default_factory=list)
    started: float = field(default_factory=time.monotonic)


class ImagesPage(QWidget):
    """Text to image and image to image with local diffusion models, and the gallery."""

    modelsListed = Signal(int)  # diffusion models listed, after each refresh of the library
    generationStarted = Signal()
    stepShown = Signal(int, int)  # the step and the steps that reached the screen
    imagesAdded = Signal(int)  # images indexed in the gallery
    generationFinished = Signal(str)  # "done", "cancelled" or "error"
    settingsRestored = Signal()  # the form shows an image's parameters
    counted = Signal(int)  # the gallery's size, after each count
    said = Signal(str)  # each line shown in the status line

    def __init__(
        self, core: Core, models: LibraryModel | None = None, parent: QWidget | None = None
    ) -> None:
        super().__init__(parent)
        self._core = core
        # The library's models as the window shares them; the picker lists the pipelines.
        self.library = models if models is not None else LibraryModel(core.models, self)
        self.pipelines = ImagePipelines(self.library, self)
        self._job: _Job | None = None
        self._offer: Path | None = None  # an image offered as the init image
        self._learned: dict[str, tuple[str | None, tuple[int, int] | None]] = {}
        self.viewer: ImageViewer | None = None
        self.setAcceptDrops(True)

        self.picker = ModelPicker()
        self.form = ImageForm()
        model_box = QGroupBox("Model")
        QVBoxLayout(model_box).addWidget(self.picker)
        form_content = QWidget()
        form_layout = QVBoxLayout(form_content)
        form_layout.setContentsMargins(0, 0, 4, 0)
        form_layout.addWidget(model_box)
        form_layout.addWidget(self.form)
        form_layout.addStretch(1)
        scroll = QScrollArea()
        scroll.setWidget(form_content)
        scroll.setWidgetResizable(True)
        scroll.setFrameShape(QScrollArea.Shape.NoFrame)
        scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.generate_button = QPushButton("Generate")
        self.generate_button.setDefault(True)
        self.generate_button.setToolTip("Generate (Ctrl+Enter)")
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setEnabled(False)
        buttons = QHBoxLayout()
        buttons.addWidget(self.generate_button, 1)
        buttons.addWidget(self.cancel_button)
        left = QWidget()
        left_layout = QVBoxLayout(left)
        left_layout.setContentsMargins(0, 0, 0, 0)
        left_layout.addWidget(scroll, 1)
        left_layout.addLayout(buttons)
        needed = (
            form_content.minimumSizeHint().width() + scroll.verticalScrollBar().sizeHint().width()
        )
        left.setMinimumWidth(max(FORM_WIDTH, needed))
        left.setMaximumWidth(max(FORM_WIDTH, needed) + 160)

        self.preview = PreviewPane()
        self.status = PlainLabel()
        self.status.setWordWrap(True)
        self.status.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.offer_button = QPushButton("Use it as the init image")
        self.offer_button.hide()
        status_row = QHBoxLayout()
        status_row.setContentsMargins(0, 0, 0, 0)
        status_row.addWidget(self.status, 1)
        status_row.addWidget(self.offer_button, 0, Qt.AlignmentFlag.AlignTop)
        top = QWidget()
        top_layout = QVBoxLayout(top)
        top_layout.setContentsMargins(0, 0, 0, 0)
        top_layout.addWidget(self.preview, 1)
        top_layout.addLayout(status_row)

        self.gallery_model = GalleryModel(lambda: self._core.gallery, self)
        self.gallery = GalleryPane(self.gallery_model)
        right = QSplitter(Qt.Orientation.Vertical)
        right.addWidget(top)
        right.addWidget(self.gallery)
        right.setStretchFactor(0, 3)
        right.setStretchFactor(1, 2)
        right.setChildrenCollapsible(False)
        self.splitter = QSplitter(Qt.Orientation.Horizontal)
        self.splitter.addWidget(left)
        self.splitter.addWidget(right)
        self.splitter.setStretchFactor(1, 1)
        self.splitter.setChildrenCollapsible(False)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(6, 6, 6, 6)
        layout.addWidget(self.splitter)

        self._poll = QTimer(self)
        self._poll.setInterval(POLL_MS)
        self._poll.timeout.connect(self._poll_job)

        self.generate_button.clicked.connect(self.generate)
        self.cancel_button.clicked.connect(self.cancel)
        self.offer_button.clicked.connect(self._take_offer)
        shortcut = QShortcut(QKeySequence("Ctrl+Return"), self)
        shortcut.setContext(Qt.ShortcutContext.WidgetWithChildrenShortcut)
        shortcut.activated.connect(self.generate)
        self.picker.picked.connect(self._model_picked)
        self.picker.openFileRequested.connect(self.choose_file)
        self.picker.openFolderRequested.connect(self.choose_folder)
        self.gallery.openRequested.connect(self.open_image)
        self.gallery.reuseRequested.connect(self.reuse)
        self.gallery.initRequested.connect(self.use_as_init)
        self.gallery.deleteRequested.connect(lambda image: spawn(self.delete(image)))
        self.gallery.openFolderRequested.connect(lambda: spawn(self.open_folder()))
        self.gallery_model.failed.connect(lambda text: self._say(text, error=True))
        for editor in (self.form.prompt, self.form.negative, self.form.seed):
            # Text boxes take file drops as text: dropped files go to the page instead.
            editor.setAcceptDrops(False)

        self.library.refreshed.connect(self._list_models)
        self.library.refreshFailed.connect(lambda text: self._say(text, error=True))
        self.refresh_models()
        self.gallery_model.refresh()
        spawn(self._show_count())

    # -- public --------------------------------------------------------------------------

    @property
    def generating(self) -> bool:
        return self._job is not None

    @property
    def request(self) -> RequestHandle | None:
        """The engine request of the running generation (None before it is sent)."""
        return self._job.handle if self._job is not None else None

    def pick_model(self, path: Path) -> None:
        """Pick the diffusers folder or single file at `path` (listed already, or added)."""
        listed = self.picker.find_listed(ImageModel.from_path(path).ref)
        if listed is not None and listed.path == path:
            self.picker.pick(listed)
        else:
            self.picker.pick(ImageModel.from_path(path))
        self._say(f"Picked {path.name}. It loads when you press Generate.")

    def refresh_models(self) -> None:
        """Scan the library again (on a worker); the picker follows, as every page does."""
        self.library.refresh()

    def generate(self) -> None:
        """Generate with the settings shown (the engine starts and loads first if needed)."""
        spawn(self._generate())

    def cancel(self) -> None:
        """Stop the running generation after the current step; it ends quietly."""
        job = self._job
        if job is None:
            return
        job.cancelled = True
        if job.handle is not None:
            job.handle.cancel()
        self.cancel_button.setEnabled(False)
        self.preview.busy("Cancelling…")

    def reuse(self, image: GalleryImage) -> None:
        """Fill the form with the settings that made `image` (its model too, when listed)."""
        if image.params is None:
            self._say(f"The settings of {image.path.name} cannot be read.", error=True)
            return
        self._restore(image.params, image.path.name)

    def use_as_init(self, image: GalleryImage | Path) -> None:
        """Start the next image from `image` (image to image)."""
        path = image if isinstance(image, Path) else image.path
        self.form.set_init_image(path)
        self._say(f"The next image starts from {path.name} (strength sets how much changes).")

    def open_image(self, image: GalleryImage) -> None:
        """Show `image` large, with its parameters."""
        if self.viewer is not None:
            self.viewer.close()
        viewer = ImageViewer(image, self)
        viewer.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        viewer.reuseRequested.connect(self.reuse)
        viewer.initRequested.connect(self.use_as_init)
        viewer.deleteRequested.connect(lambda chosen: spawn(self.delete(chosen)))
        viewer.destroyed.connect(lambda: setattr(self, "viewer", None))
        self.viewer = viewer
        viewer.open()

    async def delete(self, image: GalleryImage) -> bool:
        """Delete `image` (its file, thumbnail and row) after asking; True when deleted."""
        answer = QMessageBox.question(
            self,
            "Delete image",
            # Message boxes guess rich text; a file name can look like HTML.
            plain_html(
                f"Delete {image.path.name}? The file and its thumbnail are removed from disk."
            ),
        )
        if answer != QMessageBox.StandardButton.Yes:
            return False
        try:
            await run_blocking(lambda: self._core.gallery.delete(image.id))
        except (AppError, OSError) as exc:
            self._say(f"{image.path.name} was not deleted: {exc}", error=True)
            return False
        self.gallery_model.remove(image.id)
        if self.viewer is not None and self.viewer.image.id == image.id:
            self.viewer.close()
        self._say(f"Deleted {image.path.name}.")
        await self._show_count()
        return True

    async def open_folder(self) -> None:
        """Show the images folder in the file manager."""
        folder = await run_blocking(self._images_folder)
        QDesktopServices.openUrl(QUrl.fromLocalFile(str(folder)))

    def choose_file(self) -> None:
        file, _ = QFileDialog.getOpenFileName(
            self,
            "Open a diffusion model",
            "",
            "Stable Diffusion checkpoints (*.safetensors);;All files (*)",
        )
        if file:
            self.pick_model(Path(file))

    def choose_folder(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Open a diffusers folder")
        if folder:
            self.pick_model(Path(folder))

    def shutdown(self) -> None:
        """The window closes: cancel a running generation, index what it already wrote."""
        self._poll.stop()
        job, self._job = self._job, None
        if job is None or job.handle is None or job.handle.done:
            return
        job.cancelled = True
        job.handle.cancel()
        events: list[Event] = []
        deadline = time.monotonic() + CLOSE_WAIT_S
        with contextlib.suppress(queue.Empty):
            while not job.handle.done and (left := deadline - time.monotonic()) > 0:
                events.append(job.handle.next_event(timeout=left))
        from app.images.engine import GeneratedImage, read_progress

        written = [item for item in map(read_progress, events) if isinstance(item, GeneratedImage)]
        for image in written:  # quick inserts; the window waits for them
            with contextlib.suppress(AppError, OSError):
                self._core.gallery.add_generated(image)

    # -- models --------------------------------------------------------------------------

    def _list_models(self) -> None:
        models = [
            model
            for entry in self.pipelines.entries()
            if (model := ImageModel.from_entry(entry)) is not None
        ]
        self.picker.set_models(models)
        self.modelsListed.emit(len(models))

    def _model_picked(self, model: ImageModel | None) -> None:
        if model is None:
            return
        family, size = self._learned.get(str(model.path), (model.family, None))
        self.form.set_family(family, default=size)

    # -- generating ----------------------------------------------------------------------

    async def _generate(self) -> None:
        if self._job is not None:
            return
        model = self.picker.model()
        if model is None:
            self._say("Pick a model first (or open a file or folder).", error=True)
            return
        try:
            self.form.params()
        except ImageParamsError as exc:
            self._say(f"Check the settings: {exc}", error=True)
            return
        job = _Job(model)
        self._job = job
        self._set_busy(True)
        self._say("")
        self.preview.set_caption("")
        self.generationStarted.emit()
        try:
            await self._submit(job)
        except ImageEngineError as exc:
            await self._end(job, "error", describe_error(exc))
            return
        except ImageParamsError as exc:
            await self._end(job, "error", f"Check the settings: {exc}")
            return
        except (RuntimeError, TimeoutError) as exc:  # they name the engine and say why
            text = str(exc)
            await self._end(job, "error", f"{text[:1].upper()}{text[1:]}.")
            return
        except (AppError, OSError) as exc:
            await self._end(job, "error", f"The image engine could not be reached: {exc}")
            return
        if job.handle is None:  # cancelled before anything was asked of the engine
            await self._end(job, "cancelled", "Cancelled.")
            return
        self._poll.start()

    async def _submit(self, job: _Job) -> None:
        """Start the engine, load the model if it is not the loaded one, send the request."""
        from app.engines.protocol import EventKind

        engine: ImageEngine = await run_blocking(lambda: self._core.images)
        gallery: Gallery = await run_blocking(lambda: self._core.gallery)
        if not engine.process.alive:
            self.preview.busy("Starting the image engine…")
            await run_blocking(engine.start)
        loaded = engine.model
        if not job.cancelled and (loaded is None or loaded.path != job.model.ref.path):
            self.preview.busy(f"Loading {job.model.ref.name}…")
            job.handle = await run_blocking(engine.load, job.model.ref)
            outcome = await run_blocking(job.handle.wait)
            job.handle = None
            if outcome.kind is not EventKind.RESULT:
                raise ImageEngineError.from_event(outcome)
            self._model_loaded(job.model, load_info(outcome))
        if job.cancelled:
            return
        info = self._learned.get(str(job.model.path))
        family = info[0] if info is not None else job.model.family
        params = self.form.params()  # again: the size may now follow the model's own
        params = replace(params, model=replace(job.model.ref, family=family)).with_seed()
        job.params = params
        self.preview.busy("Starting…")
        job.handle = await run_blocking(
            engine.generate,
            params,
            output_dir=gallery.output_dir(),
            thumbnail_dir=gallery.thumbnail_dir,
        )
        if job.cancelled:
            job.handle.cancel()

    def _model_loaded(self, model: ImageModel, info: Mapping[str, Any]) -> None:
        family = info.get("family")
        family = str(family) if family else None
        size = info.get("default_size")
        default = (int(size[0]), int(size[1])) if size else None
        self._learned[str(model.path)] = (family, default)
        if family != model.family:
            self.picker.learned(model.with_family(family))
        picked = self.picker.model()
        if picked is not None and picked.path == model.path:
            self.form.set_family(family, default=default)

    def _poll_job(self) -> None:
        from app.images.engine import GeneratedImage, ModelLoading, StepProgress, read_progress

        job = self._job
        handle = job.handle if job is not None else None
        if job is None or handle is None:
            self._poll.stop()
            return
        step: StepProgress | None = None
        written: list[GeneratedImage] = []
        for event in handle.drain():
            item = read_progress(event)
            if isinstance(item, StepProgress):
                step = item  # only the latest reaches the screen
            elif isinstance(item, ModelLoading):
                self.preview.busy(f"Loading {job.model.ref.name}…")
            elif isinstance(item, GeneratedImage):
                written.append(item)
        if step is not None and not job.cancelled:
            self.preview.show_step(step)
            self.stepShown.emit(step.step, step.steps)
        if written:
            job.images += written
            job.indexing.append(spawn(self._index(written)))
        if handle.done:
            self._poll.stop()
            spawn(self._finished(job, handle))

    async def _index(self, images: list[GeneratedImage]) -> None:
        def add() -> list[GalleryImage]:
            gallery = self._core.gallery
            return [gallery.add_generated(image) for image in images]

        try:
            added = await run_blocking(add)
        except (AppError, OSError) as exc:
            self._say(f"An image was made but not added to the gallery: {exc}", error=True)
            return
        self.gallery_model.prepend(added)
        self.imagesAdded.emit(len(added))
        await self._show_count()

    async def _finished(self, job: _Job, handle: RequestHandle) -> None:
        from app.engines.protocol import EventKind

        outcome = handle.outcome
        assert outcome is not None
        import asyncio

        await asyncio.gather(*job.indexing)
        if outcome.kind is EventKind.RESULT:
            params = job.params
            count = len(job.images)
            seconds = generation_seconds(outcome) or (time.monotonic() - job.started)
            seeds = _seeds(params) if params is not None else ""
            if params is not None and params.seed is not None:
                self.form.show_seed(params.seed)
            caption = f"{count} image{'s' if count != 1 else ''} in {seconds:.1f} s · {seeds}"
            if job.images:
                last = job.images[-1]
                picture = await run_blocking(read_scaled, last.path)
                self.preview.show_image(picture, caption)
            await self._end(job, "done", "", caption=caption)
        elif outcome.kind is EventKind.CANCELLED or job.cancelled:
            kept = len(job.images)
            note = f" ({kept} finished image{'s' if kept != 1 else ''} kept)" if kept else ""
            await self._end(job, "cancelled", f"Cancelled{note}.")
        else:
            await self._end(job, "error", describe_error(ImageEngineError.from_event(outcome)))

    async def _end(self, job: _Job, how: str, text: str, *, caption: str | None = None) -> None:
        if self._job is not job:
            return
        self._job = None
        self._poll.stop()
        self._set_busy(False)
        self.preview.done("Done" if caption else "")
        if how != "done":
            self.preview.show_last_finished()
        if caption is not None:
            self.preview.set_caption(caption)
        self._say(text, error=how == "error")
        self.generationFinished.emit(how)

    def _set_busy(self, busy: bool) -> None:
        self.generate_button.setEnabled(not busy)
        self.cancel_button.setEnabled(busy)
        self.picker.combo.setEnabled(not busy)  # the license stays readable
        self.picker.open_button.setEnabled(not busy)

    # -- gallery -------------------------------------------------------------------------

    async def _show_count(self) -> None:
        try:
            count = await run_blocking(self._gallery_count)
        except AppError:
            return
        self.gallery.set_count(count)
        self.counted.emit(count)

    def _gallery_count(self) -> int:
        return self._core.gallery.count()

    def _images_folder(self) -> Path:
        folder = self._core.gallery.folder
        folder.mkdir(parents=True, exist_ok=True)
        return folder

    def _restore(self, params: ImageParams, source: str, *, how: str = "") -> None:
        notes = self.form.apply(params)
        if params.model is not None:
            listed = self.picker.find_listed(params.model)
            if listed is not None:
                self.picker.pick(listed)
            elif params.model.path and Path(params.model.path).exists():
                self.picker.pick(ImageModel.from_path(Path(params.model.path)))
            else:
                notes.append(f"it was made with {params.model.name}, which is not listed here")
        text = f"Restored the settings of {source}{how} (seed {params.seed})."
        if notes:
            text += " Note: " + "; ".join(notes) + "."
        self._say(text)
        self.settingsRestored.emit()

    # -- drag and drop -------------------------------------------------------------------

    def dragEnterEvent(self, event: QDragEnterEvent) -> None:
        if _dropped_file(event) is not None:
            event.acceptProposedAction()
        else:
            event.ignore()

    def dropEvent(self, event: QDropEvent) -> None:
        path = _dropped_file(event)
        if path is None:
            event.ignore()
            return
        event.acceptProposedAction()
        if path.is_dir() or path.suffix.lower() in MODEL_SUFFIXES:
            self.pick_model(path)
        else:
            spawn(self._dropped_image(path))

    async def _dropped_image(self, path: Path) -> None:
        from app.images.png_metadata import read_metadata

        try:
            metadata = await run_blocking(read_metadata, path)
        except OSError:
            self._say(
                f"{path.name} is not an image. Drop a PNG to restore the settings it was made "
                "with, an image to start from, or a model to pick it.",
                error=True,
            )
            return
        if metadata is None:
            kind = "PNG" if path.suffix.lower() == ".png" else "image"
            self._say(f"This {kind} has no generation settings.", offer=path)
            return
        how = " (AUTOMATIC1111 parameters)" if metadata.source == "a1111" else ""
        self._restore(metadata.params, path.name, how=how)

    def _take_offer(self) -> None:
        if self._offer is not None:
            self.use_as_init(self._offer)

    def _say(self, text: str, *, error: bool = False, offer: Path | None = None) -> None:
        self.status.setText(text)
        mark_error(self.status, error)
        self._offer = offer
        self.offer_button.setVisible(offer is not None)
        if text:
            self.said.emit(text)


def _dropped_file(event: QDragEnterEvent | QDropEvent) -> Path | None:
    """The one local file or folder a drag carries (None for anything else)."""
    mime = event.mimeData()
    if not mime.hasUrls():
        return None
    urls = mime.urls()
    if len(urls) != 1 or not urls[0].isLocalFile():
        return None
    return Path(urls[0].toLocalFile())

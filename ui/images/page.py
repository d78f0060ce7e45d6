"""Images: pick a diffusion model, describe the image, Generate; watch it form; keep every
image in a gallery that can make any of them again.

The engine (`core.images`) runs diffusers in a child process. Each press of Generate adds a
job to the image queue (`app.images.queue`), which runs it, after any before it, as an
`ImageJob` (`app.images.job`, the same one `modeldeck image` runs): it starts the engine,
loads the model, generates and indexes the images in the gallery (`core.gallery`) on a thread
of its own. The page follows that job by its id (`ImageQueue.watched`), polls its snapshot
every `POLL_MS` (only the latest step reaches the screen) and shows the images it indexed.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING

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
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from app.core import Core
from app.engines.errors import EngineErrorKind
from app.errors import AppError
from app.images.choice import resolve_loras
from app.images.engine import ImageEngineError
from app.images.job import ImageJob, JobPhase, JobSnapshot
from app.images.params import ImageParamsError
from app.images.queue import ImageQueue, QueuedJob, QueueError, QueueState
from app.library.sniff import ModelKind
from ui.confirm import ask, confirmation_box
from ui.images.form import ImageForm
from ui.images.gallery_model import GalleryModel
from ui.images.gallery_view import GalleryPane
from ui.images.lora_list import AvailableLora
from ui.images.model_picker import ImageModel, ModelPicker
from ui.images.pictures import read_scaled
from ui.images.preview import PreviewPane
from ui.images.queue_panel import QueuePanel
from ui.images.viewer import ImageViewer
from ui.library_model import ImagePipelines, LibraryModel
from ui.style import mark_error
from ui.tasks import run_blocking, spawn
from ui.widgets import PlainLabel

if TYPE_CHECKING:
    import asyncio

    from app.engines.protocol import Event
    from app.engines.supervisor import RequestHandle
    from app.images.gallery import GalleryImage
    from app.images.messages import PipelineLoaded
    from app.images.params import ImageParams

POLL_MS = 50  # how often a running generation reaches the screen
VARIATIONS = 10  # jobs "Queue 10 variations" adds
CLOSE_WAIT_S = 3.0  # closing waits this long for a cancelled generation to end
UPSCALE_WAIT_S = 3600.0  # a large image on a CPU, tile by tile
FORM_WIDTH = 380
MODEL_SUFFIXES = frozenset({".safetensors", ".ckpt", ".pt", ".pth", ".bin"})
IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".webp", ".bmp"})


def describe_error(error: ImageEngineError) -> str:
    """An engine failure for a person: what kind of failure, then the engine's details."""
    sentence = error.meaning
    details = error.message
    first_word = details.split(" ", 1)[0]
    if "." not in first_word and "/" not in first_word:  # a file name keeps its case
        details = details[:1].upper() + details[1:]
    text = f"{sentence[:1].upper()}{sentence[1:]}. {details}" if sentence else details
    if not text.endswith("."):
        text += "."
    if error.kind is EngineErrorKind.STOPPED:
        text += " Press Generate to start it again."
    return text


def _seeds(params: ImageParams) -> str:
    first = params.seed or 0
    return f"seed {first}" if params.batch == 1 else f"seeds {first} to {first + params.batch - 1}"


def error_text(error: Exception | None) -> str:
    """Why a generation failed, for the status line."""
    if isinstance(error, ImageEngineError):
        return describe_error(error)
    if isinstance(error, ImageParamsError):
        return f"Check the settings: {error}"
    if isinstance(error, RuntimeError | TimeoutError):  # they name the engine and say why
        text = str(error)
        return f"{text[:1].upper()}{text[1:]}."
    if isinstance(error, AppError | OSError):
        return f"The image engine could not be reached: {error}"
    return f"The image was not made: {error}."


@dataclass(eq=False)
class _Shown:
    """One press of Generate as the page follows it: its job, and what reached the screen."""

    model: ImageModel
    queued: int | None = None  # its id in the queue, once added
    job: ImageJob | None = None  # None until the queue starts it
    engine_was_running: bool = True
    cancelled: bool = False
    phase: JobPhase | None = None
    steps_seen: int = 0
    indexed: int = 0
    loaded: bool = False
    index_error: bool = False
    counting: list[asyncio.Task[None]] = field(default_factory=list)  # the gallery's size


class ImagesPage(QWidget):
    """Text to image and image to image with local diffusion models, and the gallery."""

    modelsListed = Signal(int)  # diffusion models listed, after each refresh of the library
    generationStarted = Signal()
    stepShown = Signal(int, int)  # the step and the steps that reached the screen
    imagesAdded = Signal(int)  # images indexed in the gallery
    generationFinished = Signal(str)  # how it ended: "done", "cancelled" or "error" (JobPhase)
    settingsRestored = Signal()  # the form shows an image's parameters
    upscaled = Signal(object)  # the Path of an upscaled copy, indexed in the gallery
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
        self._job: _Shown | None = None
        self._offer: Path | None = None  # an image offered as the init image
        self._learned: dict[str, tuple[str | None, tuple[int, int] | None]] = {}
        self.viewer: ImageViewer | None = None
        self.asking: QMessageBox | None = None  # the delete confirmation on screen, if any
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
        self.generate_button.setAccessibleName("Generate images")
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setAccessibleName("Cancel the generation")
        self.cancel_button.setEnabled(False)
        buttons = QHBoxLayout()
        buttons.addWidget(self.generate_button, 1)
        buttons.addWidget(self.cancel_button)
        self.queue_button = QPushButton("Add to queue")
        self.queue_button.setToolTip("Queue a job with these settings; jobs run one by one")
        self.variations_button = QPushButton(f"Queue {VARIATIONS} variations")
        self.queue_button.setAccessibleName("Add a job to the queue")
        self.variations_button.setAccessibleName(f"Queue {VARIATIONS} variations")
        self.variations_button.setToolTip(
            f"Queue {VARIATIONS} jobs with these settings, each with a new seed"
        )
        queue_buttons = QHBoxLayout()
        queue_buttons.addWidget(self.queue_button, 1)
        queue_buttons.addWidget(self.variations_button, 1)
        left = QWidget()
        left_layout = QVBoxLayout(left)
        left_layout.setContentsMargins(0, 0, 0, 0)
        left_layout.addWidget(scroll, 1)
        left_layout.addLayout(buttons)
        left_layout.addLayout(queue_buttons)
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
        self.offer_button.setAccessibleName("Use the dropped image as the init image")
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
        self.queue: ImageQueue | None = None  # opened on a worker (it reads the database)
        self._queue_ended = 0
        self.queue_panel = QueuePanel(lambda: self.queue)
        # The gallery and the queue share the lower half (one at a time: 900x600 must fit).
        self.lower_tabs = QTabWidget()
        self.lower_tabs.addTab(self.gallery, "Gallery")
        self.lower_tabs.addTab(self.queue_panel, "Queue")
        right.addWidget(self.lower_tabs)
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
        self.queue_panel.refreshed.connect(self._queue_refreshed)
        self.queue_button.clicked.connect(lambda: spawn(self.enqueue(1)))
        self.variations_button.clicked.connect(lambda: spawn(self.enqueue(VARIATIONS)))
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
        self.gallery.upscaleRequested.connect(lambda image: spawn(self.upscale(image)))
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
        spawn(self._open_queue())

    # -- public --------------------------------------------------------------------------

    @property
    def generating(self) -> bool:
        return self._job is not None

    @property
    def request(self) -> RequestHandle | None:
        """The engine request of the running generation (None before it is sent)."""
        job = self._job.job if self._job is not None else None
        return job.handle if job is not None else None

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
        shown = self._job
        if shown is None:
            return
        shown.cancelled = True
        self.cancel_button.setEnabled(False)
        self.preview.busy("Cancelling…")
        if shown.job is not None:
            shown.job.cancel()
        elif shown.queued is not None and self.queue is not None:
            spawn(self._cancel_waiting(shown, self.queue, shown.queued))

    async def _cancel_waiting(self, shown: _Shown, queue: ImageQueue, job_id: int) -> None:
        """Cancel a job that had not started when Cancel was pressed (it may start now)."""
        try:
            before = await run_blocking(queue.cancel, job_id)
        except QueueError as exc:
            await self._end(shown, JobPhase.ERROR, str(exc))
            return
        if before is QueueState.QUEUED:  # it never ran: nothing more will come
            await self._end(shown, JobPhase.CANCELLED, "Cancelled.")

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

    async def upscale(self, image: GalleryImage, model: Path | None = None) -> None:
        """Make a larger copy of `image` with an upscaler model (the hires fix's, else one
        chosen now), tiled in the image engine, and add it to the gallery."""
        from app.engines.protocol import EventKind

        model = model or self.form.upscaler
        if model is None:
            name, _filter = QFileDialog.getOpenFileName(
                self, "Choose an upscaler", "", "Upscaler (*.safetensors)"
            )
            if not name:
                return
            model = Path(name)
        output = image.path.with_name(f"{image.path.stem}-upscaled.png")
        number = 2
        while output.exists():
            output = image.path.with_name(f"{image.path.stem}-upscaled-{number}.png")
            number += 1
        self._say(f"Upscaling {image.path.name} with {model.stem}…")
        core = self._core

        def run() -> Event:
            return core.images.upscale(image.path, model=model, output=output).wait(UPSCALE_WAIT_S)

        try:
            outcome = await run_blocking(run)
            if outcome.kind is not EventKind.RESULT:
                self._say(error_text(ImageEngineError.from_event(outcome)), error=True)
                return
            row = await run_blocking(core.gallery.add_file, output)
        except (AppError, OSError, TimeoutError) as exc:
            self._say(error_text(exc), error=True)
            return
        self.gallery_model.prepend([row])
        self.imagesAdded.emit(1)
        spawn(self._show_count())
        self._say(f"Upscaled {image.path.name} to {row.width}x{row.height}: {output.name}.")
        self.upscaled.emit(output)

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
        # Enter and Esc keep the image: only the Delete button deletes (ui.confirm).
        self.asking = confirmation_box(
            self,
            "Delete image",
            f"Delete {image.path.name}? The file and its thumbnail are removed from disk.",
            action="Delete",
        )
        try:
            confirmed = await ask(self.asking)
        finally:
            self.asking = None
        if not confirmed:
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

    async def enqueue(self, count: int, *, watch: bool = False) -> list[QueuedJob]:
        """Queue `count` jobs with the settings shown (1: as they are; more: each a new
        seed); they run one by one, after any before them. Returns the jobs queued. With
        `watch` (one job: Generate), the queue keeps its `ImageJob` for the page to follow."""
        model = self.picker.model()
        if model is None:
            self._say("Pick a model first (or open a file or folder).", error=True)
            return []
        try:
            params = self.form.params()
            params = await run_blocking(resolve_loras, params, self._core.library)
        except (ImageParamsError, AppError) as exc:
            self._say(f"Check the settings: {exc}", error=True)
            return []
        try:
            queue = self.queue if self.queue is not None else await self._open_queue()
        except (AppError, OSError) as exc:
            self._say(error_text(exc), error=True)
            return []
        learned = self._learned.get(str(model.path))
        ref = replace(model.ref, family=learned[0] if learned is not None else model.family)
        follows = not self.form.size_chosen
        if count == 1:
            job = await run_blocking(
                lambda: queue.add(ref, params, size_follows_model=follows, watch=watch)
            )
            jobs = [job]
        else:
            jobs = await run_blocking(
                queue.add_variations, ref, params, count, size_follows_model=follows
            )
        if not watch:  # a watched job's progress is on the preview
            self._say(f"Queued {len(jobs)} job{'s' if len(jobs) != 1 else ''}.")
        self.queue_panel.changed()
        return jobs

    def _queue_refreshed(self, ended: int, _listed: int) -> None:
        """Queued jobs ended: their images are in the gallery now."""
        if ended != self._queue_ended:
            self._queue_ended = ended
            self.gallery_model.refresh()
            spawn(self._show_count())

    async def _open_queue(self) -> ImageQueue:
        """The queue, opened (a job a killed app left running goes back in line) and
        started: what was queued before a quit runs now."""
        if self.queue is None:
            core = self._core
            queue = await run_blocking(
                ImageQueue,
                core.database,
                lambda: core.images,
                lambda: core.gallery,
                on_change=self.queue_panel.changed,
            )
            if self.queue is None:
                self.queue = queue
                queue.start()
        self.queue_panel.changed()
        return self.queue

    def shutdown(self) -> None:
        """The window closes: cancel a running generation; the job indexes what it wrote."""
        self.queue_panel.stop()
        if self.queue is not None:  # its running job goes back in line for the next start
            self.queue.stop(timeout=CLOSE_WAIT_S)
        self._poll.stop()
        shown, self._job = self._job, None
        job = shown.job if shown is not None else None
        if job is None or job.done:
            return
        job.cancel()
        job.wait(CLOSE_WAIT_S)  # quick inserts on the job's thread; the window waits for them

    # -- models --------------------------------------------------------------------------

    def _list_models(self) -> None:
        models = [
            model
            for entry in self.pipelines.entries()
            if (model := ImageModel.from_entry(entry)) is not None
        ]
        self.picker.set_models(models)
        self.form.loras.set_available(
            [
                AvailableLora(
                    name=location.path.stem, path=location.path, family=entry.architecture
                )
                for entry in self.library.entries()
                if entry.kind is ModelKind.LORA
                and entry.unreadable is None
                and (location := entry.usable_location) is not None
            ]
        )
        self.modelsListed.emit(len(models))

    def _model_picked(self, model: ImageModel | None) -> None:
        if model is None:
            return
        family, size = self._learned.get(str(model.path), (model.family, None))
        self.form.set_family(
            family, default=size, model=(model.name or model.label) if size else None
        )

    # -- generating ----------------------------------------------------------------------

    async def _generate(self) -> None:
        """Generate adds a job to the queue and follows it: at once when nothing else
        waits, else after the jobs before it."""
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
        shown = _Shown(model)
        self._job = shown
        self._set_busy(True)
        self._say("")
        self.preview.set_caption("")
        self.preview.busy("Starting…")
        self.generationStarted.emit()
        jobs = await self.enqueue(1, watch=True)
        if not jobs:  # the settings or the queue failed: `enqueue` said why
            await self._end(shown, JobPhase.ERROR, self.status.text())
            return
        shown.queued = jobs[0].id
        if shown.cancelled and self.queue is not None:  # pressed while it was being added
            await self._cancel_waiting(shown, self.queue, jobs[0].id)
        self._poll.start()

    def _model_loaded(self, model: ImageModel, info: PipelineLoaded) -> None:
        family, default = info.family, info.default_size
        self._learned[str(model.path)] = (family, default)
        if family != model.family:
            self.picker.learned(model.with_family(family))
        picked = self.picker.model()
        if picked is not None and picked.path == model.path:
            self.form.set_family(family, default=default, model=model.name or model.label)

    def _poll_job(self) -> None:
        shown = self._job
        if shown is None or shown.queued is None or self.queue is None:
            self._poll.stop()
            return
        job = shown.job
        if job is None:
            started = self.queue.watched(shown.queued)
            if started is None:  # it waits its turn
                self.preview.busy("Waiting in the queue…")
                return
            if not isinstance(started, ImageJob):  # the engine could not be had
                self._poll.stop()
                spawn(self._end(shown, JobPhase.ERROR, error_text(started)))
                return
            shown.job = job = started
            shown.engine_was_running = job.engine.process.alive
        snapshot = job.snapshot()
        if snapshot.loaded is not None and not shown.loaded:
            shown.loaded = True
            self._model_loaded(shown.model, snapshot.loaded)
        if not shown.cancelled:
            self._show_progress(shown, snapshot)
        fresh = list(snapshot.indexed[shown.indexed :])
        if fresh:
            shown.indexed += len(fresh)
            self.gallery_model.prepend(fresh)
            self.imagesAdded.emit(len(fresh))
            shown.counting.append(spawn(self._show_count()))
        if snapshot.index_error is not None and not shown.index_error:
            shown.index_error = True
            text = f"An image was made but not added to the gallery: {snapshot.index_error}"
            self._say(text, error=True)
        if snapshot.finished:
            self._poll.stop()
            spawn(self._finished(shown, snapshot))

    def _show_progress(self, shown: _Shown, snapshot: JobSnapshot) -> None:
        """What the job is doing: a busy bar while it starts or loads, else its latest step."""
        if snapshot.phase is not shown.phase and not snapshot.finished:
            shown.phase = snapshot.phase
            if snapshot.phase is JobPhase.STARTING:
                starting = "Starting…" if shown.engine_was_running else "Starting the image engine…"
                self.preview.busy(starting)
            elif snapshot.phase is JobPhase.LOADING:
                self.preview.busy(f"Loading {shown.model.ref.name}…")
            elif snapshot.step is None:
                self.preview.busy("Starting…")
        step = snapshot.step
        if step is not None and snapshot.steps_seen != shown.steps_seen:
            shown.steps_seen = snapshot.steps_seen
            self.preview.show_step(step)
            self.stepShown.emit(step.step, step.steps)

    async def _finished(self, shown: _Shown, snapshot: JobSnapshot) -> None:
        import asyncio

        await asyncio.gather(*shown.counting)  # the count is right once the end is announced
        if snapshot.phase is JobPhase.DONE:
            params = snapshot.params
            images = snapshot.images
            count = len(images)
            seeds = _seeds(params) if params is not None else ""
            if params is not None and params.seed is not None:
                self.form.show_seed(params.seed)
            caption = (
                f"{count} image{'s' if count != 1 else ''} in {snapshot.seconds:.1f} s · {seeds}"
            )
            if images:
                picture = await run_blocking(read_scaled, images[-1].path)
                self.preview.show_image(picture, caption)
            await self._end(shown, JobPhase.DONE, "", caption=caption)
        elif snapshot.phase is JobPhase.CANCELLED or shown.cancelled:
            kept = len(snapshot.images)
            note = f" ({kept} finished image{'s' if kept != 1 else ''} kept)" if kept else ""
            await self._end(shown, JobPhase.CANCELLED, f"Cancelled{note}.")
        else:
            await self._end(shown, JobPhase.ERROR, error_text(snapshot.error))

    async def _end(
        self, shown: _Shown, how: JobPhase, text: str, *, caption: str | None = None
    ) -> None:
        if self._job is not shown:
            return
        self._job = None
        if self.queue is not None and shown.queued is not None:
            self.queue.unwatch(shown.queued)
        self._poll.stop()
        self._set_busy(False)
        self.preview.done("Done" if caption else "")
        if how is not JobPhase.DONE:
            self.preview.show_last_finished()
        if caption is not None:
            self.preview.set_caption(caption)
        self._say(text, error=how is JobPhase.ERROR)
        self.generationFinished.emit(how.value)

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

    def _restore(
        self,
        params: ImageParams,
        source: str,
        *,
        how: str = "",
        left_out: Mapping[str, str] | None = None,
    ) -> None:
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
        if left_out:
            text += (
                " Not carried over: "
                + "; ".join(f"{key}: {value}" for key, value in list(left_out.items())[:12])
                + "."
            )
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
        how = _SOURCE_WORDS.get(metadata.source, "")
        self._restore(metadata.params, path.name, how=how, left_out=metadata.fields)

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


# Where a dropped image's settings came from, as the status line says it.
_SOURCE_WORDS = {
    "a1111": " (AUTOMATIC1111 parameters)",
    "comfyui": " (ComfyUI graph)",
    "invokeai": " (InvokeAI metadata)",
}


def _dropped_file(event: QDragEnterEvent | QDropEvent) -> Path | None:
    """The one local file or folder a drag carries (None for anything else)."""
    mime = event.mimeData()
    if not mime.hasUrls():
        return None
    urls = mime.urls()
    if len(urls) != 1 or not urls[0].isLocalFile():
        return None
    return Path(urls[0].toLocalFile())

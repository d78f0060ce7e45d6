"""One press of Generate, from starting the engine to the last image indexed: `ImageJob`.

The Images page and `modeldeck image` both run this workflow, so it lives here once. A job
runs on its own thread: it starts the engine child if it is not running (seconds: torch),
loads the model if it is not the loaded one, generates, and indexes each image in the
gallery as the engine saves it. Two ways to follow it, as a chat `Reply` offers:
- `snapshot()`, cheap and thread-safe, for a GUI that polls from a timer (only the latest
  step matters on screen);
- `on_update`, called on the job's thread with each `JobUpdate`, for the CLI's progress lines.

`cancel` stops it between steps. Images finished before the cancel stay (saved and indexed);
the one being made is dropped by the engine before any file is written, so nothing is left
half-indexed.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from enum import StrEnum
from pathlib import Path
from typing import Any

from app.engines.protocol import Event, EventKind
from app.engines.supervisor import RequestHandle
from app.errors import AppError
from app.images.engine import ImageEngine, ImageEngineError, read_progress
from app.images.gallery import Gallery, GalleryImage
from app.images.messages import (
    BatchDone,
    GeneratedImage,
    ModelLoading,
    PipelineLoaded,
    StepProgress,
)
from app.images.params import ImageParams, ModelRef

__all__ = [
    "EngineStarting",
    "Generating",
    "ImageJob",
    "JobPhase",
    "JobSnapshot",
    "JobUpdate",
]

# How long the job waits for each event before it looks at its cancel flag again. The engine
# notices a cancel itself (between steps); this only bounds how stale the flag can get while
# the child is silent (loading a model).
_EVENT_WAIT_S = 0.25


class JobPhase(StrEnum):
    """Where a job is; the last three are how it ended (the values are the page's words)."""

    STARTING = "starting"  # the engine child is starting
    LOADING = "loading"  # the model is loading
    GENERATING = "generating"  # the request is sent; steps come
    DONE = "done"
    CANCELLED = "cancelled"
    ERROR = "error"


FINISHED = frozenset({JobPhase.DONE, JobPhase.CANCELLED, JobPhase.ERROR})


@dataclass(frozen=True)
class EngineStarting:
    """The engine child is starting (it imports torch and diffusers: seconds)."""


@dataclass(frozen=True)
class Generating:
    """The request went to the engine with these parameters (the seed is chosen now)."""

    params: ImageParams
    model: PipelineLoaded | None  # what this job loaded; None when it was loaded already


# What `on_update` is called with, in order: EngineStarting?, ModelLoading?, PipelineLoaded?,
# Generating, then StepProgress and GeneratedImage as they come (a ModelLoading again when a
# fresh child had to load the model itself).
JobUpdate = (
    EngineStarting | ModelLoading | PipelineLoaded | Generating | StepProgress | GeneratedImage
)


@dataclass(frozen=True)
class JobSnapshot:
    """A job as it stands (for a screen that polls)."""

    phase: JobPhase
    loaded: PipelineLoaded | None  # what this job loaded (None: already loaded, or not yet)
    params: ImageParams | None  # what went to the engine (None before it did)
    step: StepProgress | None  # the latest step
    steps_seen: int  # steps so far: a poll tells a new step from the one it showed
    images: tuple[GeneratedImage, ...]  # saved so far
    indexed: tuple[GalleryImage, ...]  # of those, indexed in the gallery so far
    index_error: str | None  # an image was saved but could not be indexed
    result: BatchDone | None  # the engine's RESULT, once DONE
    error: Exception | None  # why it ended in ERROR
    seconds: float  # the engine's time for the batch once DONE; till then, time so far

    @property
    def finished(self) -> bool:
        return self.phase in FINISHED


class ImageJob:
    """Start → load → generate → index, on a thread of its own; `start` sets it going.

    Args:
        engine: the image engine (started here when it is not running).
        gallery: where images go and are indexed.
        model: the model to use; it is loaded unless it is the engine's model already.
        params: what to generate (`model` replaces theirs; the seed is chosen when unset).
        out: a .png file to write instead (a batch adds -1, -2…): then nothing goes to the
            gallery folder and nothing is indexed.
        size_follows_model: use the model's own size when this job loads it (the person did
            not choose one).
        on_update: called on the job's thread with each `JobUpdate`.
    """

    def __init__(
        self,
        engine: ImageEngine,
        gallery: Gallery,
        model: ModelRef,
        params: ImageParams,
        *,
        out: Path | None = None,
        size_follows_model: bool = False,
        on_update: Callable[[JobUpdate], None] | None = None,
    ) -> None:
        self.engine = engine
        self.gallery = gallery
        self.model = model
        self._params = params
        self._out = out
        self._size_follows_model = size_follows_model
        self._on_update = on_update
        self._started = time.monotonic()
        self._lock = threading.Lock()
        self._cancelled = False
        self._handle: RequestHandle | None = None
        self._snapshot = JobSnapshot(
            phase=JobPhase.STARTING,
            loaded=None,
            params=None,
            step=None,
            steps_seen=0,
            images=(),
            indexed=(),
            index_error=None,
            result=None,
            error=None,
            seconds=0.0,
        )
        self._finished = threading.Event()
        self._thread = threading.Thread(target=self._run, name="image job", daemon=True)

    # -- following it ----------------------------------------------------------------------

    def start(self) -> ImageJob:
        """Set the job going on its thread; returns at once."""
        self._started = time.monotonic()
        self._thread.start()
        return self

    def snapshot(self) -> JobSnapshot:
        with self._lock:
            snapshot = self._snapshot
        if not snapshot.finished:
            snapshot = replace(snapshot, seconds=time.monotonic() - self._started)
        return snapshot

    @property
    def done(self) -> bool:
        return self._finished.is_set()

    @property
    def cancelled(self) -> bool:
        """Whether `cancel` was called (the job may not have ended yet)."""
        return self._cancelled

    @property
    def handle(self) -> RequestHandle | None:
        """The engine request running now (load or generate), or None."""
        return self._handle

    def cancel(self) -> None:
        """Stop after the current step; it ends CANCELLED (unless it was done already)."""
        with self._lock:
            self._cancelled = True
            handle = self._handle
        if handle is not None:
            handle.cancel()

    def wait(self, timeout: float | None = None) -> JobSnapshot:
        """Block until the job ends (or `timeout` seconds pass) and return where it stands."""
        self._finished.wait(timeout)
        return self.snapshot()

    # -- the job's thread -------------------------------------------------------------------

    def _run(self) -> None:
        try:
            phase = self._work()
        except (AppError, OSError, RuntimeError, TimeoutError, ValueError) as error:
            self._end(JobPhase.ERROR, error)
        except Exception as error:  # a bug: end the job (a screen waits on it), then report it
            self._end(JobPhase.ERROR, error)
            raise
        else:
            self._end(phase)

    def _work(self) -> JobPhase:
        engine = self.engine
        if not engine.process.alive:
            self._update(EngineStarting())
            engine.start()
        model, params = self.model, self._params
        loaded: PipelineLoaded | None = None
        if not self._cancelled and (engine.model is None or engine.model.path != model.path):
            self._set(phase=JobPhase.LOADING)
            self._update(ModelLoading())
            outcome = self._follow(engine.load(model))
            if outcome.kind is not EventKind.RESULT:
                if self._cancelled:
                    return JobPhase.CANCELLED
                raise ImageEngineError.from_event(outcome)
            loaded = outcome.expect(PipelineLoaded)
            self._set(loaded=loaded)
            self._update(loaded)
            model = replace(model, family=loaded.family)
            if self._size_follows_model:
                width, height = loaded.default_size
                params = replace(params, width=width, height=height)
        if self._cancelled:
            return JobPhase.CANCELLED
        params = replace(params, model=model).with_seed()
        self._set(phase=JobPhase.GENERATING, params=params)
        self._update(Generating(params, loaded))
        if self._out is not None:
            request = engine.generate(params, output_dir=self._out.parent, name=self._out.stem)
        else:
            request = engine.generate(
                params,
                output_dir=self.gallery.output_dir(),
                thumbnail_dir=self.gallery.thumbnail_dir,
            )
        outcome = self._follow(request)
        if outcome.kind is EventKind.RESULT:
            self._set(result=outcome.expect(BatchDone))
            return JobPhase.DONE
        if outcome.kind is EventKind.CANCELLED or self._cancelled:
            return JobPhase.CANCELLED
        raise ImageEngineError.from_event(outcome)

    def _follow(self, handle: RequestHandle) -> Event:
        """Stream `handle`'s events into the snapshot until its terminal one, returned."""
        with self._lock:
            self._handle = handle
            cancelled = self._cancelled
        if cancelled:  # asked before the request existed
            handle.cancel()
        while True:
            try:
                event = handle.next_event(timeout=_EVENT_WAIT_S)
            except queue.Empty:
                continue
            if event.terminal:
                with self._lock:
                    self._handle = None
                return event
            item = read_progress(event)
            if isinstance(item, StepProgress):
                with self._lock:
                    seen = self._snapshot.steps_seen + 1
                self._set(phase=JobPhase.GENERATING, step=item, steps_seen=seen)
            elif isinstance(item, ModelLoading):
                self._set(phase=JobPhase.LOADING)
            elif isinstance(item, GeneratedImage):
                self._keep(item)
            if item is not None:
                self._update(item)

    def _keep(self, image: GeneratedImage) -> None:
        """An image is saved: note it, and index it unless it went to `out`."""
        with self._lock:
            images = (*self._snapshot.images, image)
        self._set(images=images)
        if self._out is not None:
            return
        try:
            row = self.gallery.add_generated(image)
        except (AppError, OSError) as error:
            self._set(index_error=str(error))
            return
        with self._lock:
            indexed = (*self._snapshot.indexed, row)
        self._set(indexed=indexed)

    def _set(self, **changes: Any) -> None:
        with self._lock:
            self._snapshot = replace(self._snapshot, **changes)

    def _update(self, item: JobUpdate) -> None:
        if self._on_update is not None:
            self._on_update(item)

    def _end(self, phase: JobPhase, error: Exception | None = None) -> None:
        with self._lock:
            result = self._snapshot.result
            seconds = result.seconds if result is not None and result.seconds else None
            self._snapshot = replace(
                self._snapshot,
                phase=phase,
                error=error,
                seconds=seconds if seconds is not None else time.monotonic() - self._started,
            )
            self._handle = None
        self._finished.set()

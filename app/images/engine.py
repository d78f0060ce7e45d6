"""The image engine as the app sees it: a diffusers child process, one model at a time.

`ImageEngine` wraps `EngineProcess(diffusers_worker.main)`. `load` and `generate` return a
`RequestHandle` at once; its events stream in from the child and carry the messages of
`app.images.messages` (`read_progress`, `load_info` and `generated_images` pick them out).
Every `generate` also carries the model to use, so after a crash (the supervisor ends the
request with a STOPPED event) the next `generate` starts a fresh child that loads the model
again by itself.

`load` and `generate` start the child first when it is not running (importing torch and
diffusers takes seconds, also after a crash): call them off the GUI thread, or call `start`
there first; with the child running they return at once.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from types import MappingProxyType
from typing import Any

from app import paths
from app.engines.errors import EngineError, EngineErrorKind
from app.engines.protocol import Event, EventKind, Op
from app.engines.supervisor import EngineProcess, RequestHandle
from app.images import diffusers_worker
from app.images.messages import (
    BatchDone,
    GeneratedImage,
    GenerateImages,
    LoadPipeline,
    ModelLoading,
    PipelineLoaded,
    StepProgress,
    UpscaleImage,
)
from app.images.params import ImageParams, ModelRef

__all__ = [
    "ImageEngine",
    "ImageEngineError",
    "error_meaning",
    "generated_images",
    "generation_seconds",
    "load_info",
    "read_progress",
]

START_TIMEOUT_S = 120.0  # importing torch + diffusers on a cold disk

# What each kind of failure the image engine reports means for a person (the message beside
# it says the details). Kinds not listed here are not the image engine's.
_MEANINGS: Mapping[EngineErrorKind, str] = MappingProxyType(
    {
        EngineErrorKind.BAD_INPUT: "a parameter cannot be used",
        EngineErrorKind.NOT_FOUND: "the model is not there",
        EngineErrorKind.NOT_A_PIPELINE: "the folder is not a diffusers pipeline",
        EngineErrorKind.PICKLE: "pickle checkpoints are not loaded (they can run code)",
        EngineErrorKind.NOT_DIFFUSION: "not a diffusion model",
        EngineErrorKind.UNSUPPORTED_FAMILY: "this model family cannot be loaded from a single file",
        EngineErrorKind.LOAD_FAILED: "the model could not be loaded",
        EngineErrorKind.NO_MODEL: "no model is loaded",
        EngineErrorKind.NAN: "the model produced an empty (NaN or black) image",
        EngineErrorKind.OUT_OF_MEMORY: "not enough memory",
        EngineErrorKind.NO_RUNTIME: "the image runtime (torch, diffusers) is not installed",
        EngineErrorKind.STOPPED: "the engine stopped",
        EngineErrorKind.INTERNAL: "a bug in the image engine",
    }
)


def error_meaning(kind: EngineErrorKind) -> str | None:
    """What a failure of `kind` means for a person ("not enough memory"); None for a kind
    the image engine does not report."""
    return _MEANINGS.get(kind)


class ImageEngineError(EngineError):
    """A request to the image engine failed; `kind` says which way (see `meaning`)."""

    @property
    def meaning(self) -> str | None:
        """What this kind of failure means for a person (`message` has the details)."""
        return error_meaning(self.kind)

    @classmethod
    def from_event(cls, event: Event) -> ImageEngineError:
        """The error an ERROR or STOPPED event reports."""
        failure = event.failure
        message = failure.message or error_meaning(failure.kind) or failure.kind.value
        return cls(message, kind=failure.kind)


def read_progress(event: Event) -> ModelLoading | StepProgress | GeneratedImage | None:
    """A GENERATE PROGRESS event's message; None for other events."""
    if event.kind is not EventKind.PROGRESS:
        return None
    payload = event.payload
    if isinstance(payload, ModelLoading | StepProgress | GeneratedImage):
        return payload
    return None


def generated_images(result: Event) -> list[GeneratedImage]:
    """The images a GENERATE RESULT event lists."""
    return list(result.expect(BatchDone).images)


def load_info(result: Event) -> PipelineLoaded:
    """What a LOAD RESULT event says of the model (family, pipeline, device, default size)."""
    return result.expect(PipelineLoaded)


def generation_seconds(result: Event) -> float | None:
    """How long a GENERATE RESULT event says the batch took (None: it did not say)."""
    return result.expect(BatchDone).seconds or None


class ImageEngine:
    """The image engine: one diffusers child process, restarted on demand after a crash.

    Args:
        config_cache_dir: where the shipped single-file configs are written out
            (default: `<data dir>/diffusers-configs`).
        hf_cache_dir: the HF cache, searched for the reference configs of single files.
        device: "cuda", "mps" or "cpu" (default: the best the child finds).
        dtype: "float16" or "float32" (default: fp16 on a GPU, fp32 on the CPU).
        threads: CPU threads torch may use (default: torch's choice, one per core). Fewer
            leave room for the rest of the machine; on a busy CPU they are often faster.
    """

    def __init__(
        self,
        *,
        config_cache_dir: Path | None = None,
        hf_cache_dir: Path | None = None,
        device: str | None = None,
        dtype: str | None = None,
        threads: int | None = None,
    ) -> None:
        self.process = EngineProcess(diffusers_worker.main, name="the image engine")
        self.config_cache_dir = config_cache_dir or paths.data_dir() / "diffusers-configs"
        self.hf_cache_dir = hf_cache_dir
        self.device = device
        self.dtype = dtype
        self.threads = threads
        self._model: ModelRef | None = None
        self._load_request: LoadPipeline | None = None  # sent again with each GENERATE

    @property
    def model(self) -> ModelRef | None:
        """The model the engine uses (the last `load`), or None."""
        return self._model

    @property
    def capabilities(self) -> Mapping[str, Any]:
        """What the child reported when it started (device, VRAM, versions); {} before."""
        return self.process.capabilities

    @property
    def pid(self) -> int | None:
        return self.process.pid

    def start(self, *, timeout: float = START_TIMEOUT_S) -> Mapping[str, Any]:
        """Start the child if needed (blocks for seconds) and return its capabilities."""
        return self.process.start(timeout=timeout)

    def load(self, model: ModelRef, *, config: Path | None = None) -> RequestHandle:
        """Load `model` (its `path`: a diffusers folder or a single .safetensors file).

        `config` is a diffusers folder whose configs a single file should use instead of its
        family's reference configs. The RESULT (`load_info`) says the family, device, default
        size, and memory savers chosen; an ERROR's kind is an `EngineErrorKind`. `model`
        becomes the engine's model even when it fails to load: `generate` then fails the same
        way until another `load`.

        Raises:
            ValueError: `model` has no path.
        """
        if not model.path:
            raise ValueError(f"model {model.name!r} has no path")
        request = LoadPipeline(
            path=Path(model.path),
            name=model.name,
            config=config,
            repo_id=model.repo_id,
            revision=model.revision,
            sha256=model.sha256,
            device=self.device,
            dtype=self.dtype,
            threads=self.threads,
            config_cache_dir=self.config_cache_dir,
            hf_cache_dir=self.hf_cache_dir,
        )
        self._model, self._load_request = model, request
        self.start()
        return self.process.submit(Op.LOAD, request)

    def generate(
        self,
        params: ImageParams,
        *,
        output_dir: Path,
        name: str | None = None,
        thumbnail_dir: Path | None = None,
        preview: bool = True,
    ) -> RequestHandle:
        """Generate `params.batch` images into `output_dir` with the loaded model.

        The seed is resolved here when `params` has none, so it is always recorded. `name`
        is the file stem (batches add -1, -2…; default: time and seed); thumbnails go to
        `thumbnail_dir` when given. Events: PROGRESS (see `read_progress`), then RESULT
        (`generated_images`), ERROR, CANCELLED, or STOPPED if the child died.
        """
        params = params.with_seed()
        if params.model is None and self._model is not None:
            params = _with_model(params, self._model)
        request = GenerateImages(
            params=params,
            output_dir=output_dir,
            model=self._load_request,
            name=name or None,
            thumbnail_dir=thumbnail_dir,
            preview=preview,
        )
        self.start()
        return self.process.submit(Op.GENERATE, request)

    def upscale(
        self, source: Path, *, model: Path, output: Path, scale: float = 0.0, tile: int = 256
    ) -> RequestHandle:
        """Make the image at `source` `scale` times larger (0: the model's own factor) with
        the ESRGAN-family safetensors upscaler at `model`, tiled; a PNG at `output`. Events:
        PROGRESS (`StepProgress`, one step per tile), then RESULT (`ImageUpscaled`)."""
        request = UpscaleImage(
            source=source,
            model=model,
            scale=scale,
            output=output,
            tile=tile,
            device=self.device,
            threads=self.threads,
        )
        self.start()
        return self.process.submit(Op.UPSCALE, request)

    def unload(self) -> RequestHandle:
        """Free the model's memory (the child keeps running)."""
        self._model, self._load_request = None, None
        return self.process.submit(Op.UNLOAD)

    def cancel(self, handle: RequestHandle) -> None:
        """Ask the engine to stop `handle`'s request after the current step."""
        handle.cancel()

    def stop(self, *, timeout: float = 5.0) -> None:
        """End the child (politely, then by force after `timeout` seconds)."""
        self.process.stop(timeout=timeout)

    def kill(self) -> None:
        """End the child at once; open requests end as STOPPED."""
        self.process.kill()


def _with_model(params: ImageParams, model: ModelRef) -> ImageParams:
    from dataclasses import replace

    return replace(params, model=model)

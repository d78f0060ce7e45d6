"""The image engine as the app sees it: a diffusers child process, one model at a time.

`ImageEngine` wraps `EngineProcess(diffusers_worker.main)`. `load` and `generate` return a
`RequestHandle` at once; its events stream in from the child (see
`app.images.diffusers_worker` for the exact data) and `read_progress` turns them into typed
objects. Every `generate` also carries the model to use, so after a crash (the supervisor
ends the request with a STOPPED event) the next `generate` starts a fresh child that loads
the model again by itself.

`load` and `generate` start the child first when it is not running (importing torch and
diffusers takes seconds, also after a crash): call them off the GUI thread, or call `start`
there first; with the child running they return at once.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from app import paths
from app.engines.errors import EngineError
from app.engines.protocol import Event, EventKind, Op, Values
from app.engines.supervisor import EngineProcess, RequestHandle
from app.images import diffusers_worker
from app.images.params import ImageParams, ModelRef

__all__ = [
    "ERROR_KINDS",
    "GeneratedImage",
    "ImageEngine",
    "ImageEngineError",
    "ModelLoading",
    "StepProgress",
    "generated_images",
    "generation_seconds",
    "load_info",
    "read_progress",
]

START_TIMEOUT_S = 120.0  # importing torch + diffusers on a cold disk

# The `kind` of ERROR events, and what each means for a person.
ERROR_KINDS: Mapping[str, str] = {
    "bad-input": "a parameter cannot be used",
    "not-found": "the model is not there",
    "not-a-pipeline": "the folder is not a diffusers pipeline",
    "pickle": "pickle checkpoints are not loaded (they can run code)",
    "not-diffusion": "not a diffusion model",
    "unsupported-family": "this model family cannot be loaded from a single file",
    "load-failed": "the model could not be loaded",
    "no-model": "no model is loaded",
    "nan": "the model produced an empty (NaN or black) image",
    "out-of-memory": "not enough memory",
    "no-runtime": "the image runtime (torch, diffusers) is not installed",
    "stopped": "the engine stopped",
    "internal": "a bug in the image engine",
}


class ImageEngineError(EngineError):
    """A request to the image engine failed; `kind` is one of `ERROR_KINDS`."""

    @classmethod
    def from_event(cls, event: Event) -> ImageEngineError:
        """The error an ERROR or STOPPED event reports."""
        failure = event.failure
        message = failure.message or ERROR_KINDS.get(failure.kind, failure.kind)
        return cls(message, kind=failure.kind)


@dataclass(frozen=True)
class ModelLoading:
    """The engine is loading the model before generating (a fresh child, or a new model)."""


@dataclass(frozen=True)
class StepProgress:
    """One denoising step done."""

    image: int  # which image of the batch (0-based)
    images: int  # images in the batch
    step: int  # 1-based
    steps: int
    preview: bytes | None  # a PNG at most 64 px on its long side, when sent
    preview_size: tuple[int, int] | None

    @property
    def fraction(self) -> float:
        """How much of the whole batch is done, 0…1."""
        if self.images <= 0 or self.steps <= 0:
            return 0.0
        return (self.image + self.step / self.steps) / self.images


@dataclass(frozen=True)
class GeneratedImage:
    """One image written to disk (streamed as it is saved, and listed in the RESULT)."""

    path: Path
    thumbnail: Path | None
    seed: int
    width: int
    height: int
    seconds: float
    params: ImageParams  # this image's own (batch 1, its seed)
    sampler: str | None
    created_at: str | None

    @classmethod
    def from_data(cls, data: Mapping[str, Any]) -> GeneratedImage:
        thumbnail = data.get("thumbnail")
        return cls(
            path=Path(str(data["path"])),
            thumbnail=Path(str(thumbnail)) if thumbnail else None,
            seed=int(data["seed"]),
            width=int(data["width"]),
            height=int(data["height"]),
            seconds=float(data.get("seconds") or 0.0),
            params=ImageParams.from_json(data["params"]),
            sampler=str(data["sampler"]) if data.get("sampler") else None,
            created_at=str(data["created_at"]) if data.get("created_at") else None,
        )


def read_progress(event: Event) -> ModelLoading | StepProgress | GeneratedImage | None:
    """A GENERATE PROGRESS event as a typed object; None for other events."""
    if event.kind is not EventKind.PROGRESS:
        return None
    if not isinstance(event.payload, Values):
        return None
    data = event.payload.values
    phase = data.get("phase")
    if phase == "loading":
        return ModelLoading()
    if phase == "step":
        size = data.get("preview_size")
        return StepProgress(
            image=int(data.get("image", 0)),
            images=int(data.get("images", 1)),
            step=int(data["step"]),
            steps=int(data["steps"]),
            preview=data.get("preview"),
            preview_size=(int(size[0]), int(size[1])) if size else None,
        )
    if phase == "image":
        return GeneratedImage.from_data(data)
    return None


def generated_images(result: Event) -> list[GeneratedImage]:
    """The images a GENERATE RESULT event lists."""
    values = result.expect(Values).values
    return [GeneratedImage.from_data(item) for item in values.get("images", ())]


def load_info(result: Event) -> Mapping[str, Any]:
    """What a LOAD RESULT event says of the model (family, pipeline, device, default size)."""
    return result.expect(Values).values


def generation_seconds(result: Event) -> float | None:
    """How long a GENERATE RESULT event says the batch took (None: it did not say)."""
    seconds = result.expect(Values).values.get("seconds")
    return float(seconds) if seconds else None


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
        self._model_args: dict[str, Any] | None = None

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
        family's reference configs. The RESULT says the family, device, default size, and
        memory savers chosen; an ERROR's kind is one of `ERROR_KINDS`. `model` becomes the
        engine's model even when it fails to load: `generate` then fails the same way until
        another `load`.

        Raises:
            ValueError: `model` has no path.
        """
        if not model.path:
            raise ValueError(f"model {model.name!r} has no path")
        args: dict[str, Any] = {
            "path": model.path,
            "name": model.name,
            "config_cache_dir": str(self.config_cache_dir),
        }
        for key, value in (
            ("config", str(config) if config else None),
            ("repo_id", model.repo_id),
            ("revision", model.revision),
            ("sha256", model.sha256),
            ("hf_cache_dir", str(self.hf_cache_dir) if self.hf_cache_dir else None),
            ("device", self.device),
            ("dtype", self.dtype),
            ("threads", self.threads),
        ):
            if value is not None:
                args[key] = value
        self._model, self._model_args = model, args
        self.start()
        return self.process.submit(Op.LOAD, args)

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
        args: dict[str, Any] = {
            "params": params.to_json(),
            "output_dir": str(output_dir),
            "preview": preview,
        }
        if self._model_args is not None:
            args["model"] = self._model_args
        if name:
            args["name"] = name
        if thumbnail_dir is not None:
            args["thumbnail_dir"] = str(thumbnail_dir)
        self.start()
        return self.process.submit(Op.GENERATE, args)

    def unload(self) -> RequestHandle:
        """Free the model's memory (the child keeps running)."""
        self._model, self._model_args = None, None
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

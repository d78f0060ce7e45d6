"""The image engine's messages: one frozen dataclass per kind of request and of answer.

The app (`app.images.engine`) sends the requests and the child (`app.images.diffusers_worker`)
sends the answers; the pipe pickles both, so every class here is top-level, and this module
imports nothing heavy: the app's process (the window, the CLI) builds and reads them without
ever importing torch or diffusers.

- LOAD `LoadPipeline` → RESULT `PipelineLoaded`.
- GENERATE `GenerateImages` → PROGRESS `ModelLoading` (a fresh child loads the model first),
  `StepProgress` (each denoising step), `GeneratedImage` (each image, once saved); then RESULT
  `BatchDone`.
- UPSCALE `UpscaleImage` → RESULT `ImageUpscaled` (a safetensors upscaler model, tiled).
- UNLOAD (no body) → RESULT `Unloaded`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from app.engines.protocol import Payload
from app.images.params import ImageParams, ModelRef

__all__ = [
    "BatchDone",
    "GenerateImages",
    "GeneratedImage",
    "ImageUpscaled",
    "LoadPipeline",
    "ModelLoading",
    "PipelineLoaded",
    "StepProgress",
    "Unloaded",
    "UpscaleImage",
]


# --- requests --------------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class LoadPipeline(Payload):
    """LOAD: the model to load (a diffusers folder or a single .safetensors file), and how."""

    path: Path
    name: str | None = None  # default: the checkpoint's own name, else the file's
    config: Path | None = None  # a diffusers folder whose configs a single file uses instead
    repo_id: str | None = None  # what `PipelineLoaded` (and so image metadata) records
    revision: str | None = None
    sha256: str | None = None
    device: str | None = None  # "cuda" | "mps" | "cpu"; default: the best the child has
    dtype: str | None = None  # "float16" | "float32" | "bfloat16"; default: by device
    threads: int | None = None  # torch's CPU threads; default: torch's choice
    config_cache_dir: Path | None = None  # where shipped single-file configs are written out
    hf_cache_dir: Path | None = None  # the HF cache, searched for single files' configs


@dataclass(frozen=True, kw_only=True)
class GenerateImages(Payload):
    """GENERATE: `params.batch` images into `output_dir`."""

    params: ImageParams  # checked again by the child (unpickling skips `__post_init__`)
    output_dir: Path
    model: LoadPipeline | None = None  # loaded first when it is not the loaded model
    name: str | None = None  # the file stem (batches add -1, -2…); default: time and seed
    thumbnail_dir: Path | None = None  # no thumbnails when None
    thumbnail_size: int = 256  # their long side, px
    preview: bool = True  # send small previews with `StepProgress`


@dataclass(frozen=True, kw_only=True)
class UpscaleImage(Payload):
    """UPSCALE: `source` made `scale` times larger with the upscaler model at `model`, written
    as a PNG at `output` (its metadata, if any, kept and the upscale noted)."""

    source: Path
    model: Path  # an ESRGAN-family .safetensors (Real-ESRGAN's compact net, or RRDBNet)
    scale: float  # the result's size over the source's; the model's own factor when 0
    output: Path
    tile: int = 256  # source pixels per tile side: the memory one pass needs stays bounded
    device: str | None = None
    threads: int | None = None


# --- answers ---------------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class PipelineLoaded(Payload):
    """LOAD's RESULT (and the model a `BatchDone` used): what was loaded, where, and how."""

    name: str
    path: str
    family: str | None  # "SD 1.x", "SD 2.x", "SDXL"; None when it cannot be told
    pipeline: str  # the diffusers class, e.g. "StableDiffusionPipeline"
    device: str  # "cuda" | "mps" | "cpu"
    dtype: str  # "float16" | "float32" | "bfloat16"
    seconds: float  # how long loading took (0 when it was loaded already)
    cached: bool  # it was loaded already: nothing was read
    default_size: tuple[int, int]  # the model's own width and height
    memory_savers: tuple[str, ...]  # what was turned on to fit the device
    scheduler: str  # the sampler the model comes with ("DDIM", "Euler"…)
    repo_id: str | None = None
    revision: str | None = None
    sha256: str | None = None

    @property
    def ref(self) -> ModelRef:
        """The model as image metadata names it."""
        return ModelRef(
            name=self.name,
            path=self.path,
            repo_id=self.repo_id,
            revision=self.revision,
            sha256=self.sha256,
            family=self.family,
        )

    def to_json(self) -> dict[str, Any]:
        """For `modeldeck image --json` (absent values left out)."""
        data: dict[str, Any] = {
            "name": self.name,
            "path": self.path,
            "family": self.family,
            "pipeline": self.pipeline,
            "device": self.device,
            "dtype": self.dtype,
            "seconds": self.seconds,
            "cached": self.cached,
            "default_size": list(self.default_size),
            "memory_savers": list(self.memory_savers),
            "scheduler": self.scheduler,
        }
        for key, value in (
            ("repo_id", self.repo_id),
            ("revision", self.revision),
            ("sha256", self.sha256),
        ):
            if value is not None:
                data[key] = value
        return data


@dataclass(frozen=True)
class ModelLoading(Payload):
    """The engine is loading the model before generating (a fresh child, or a new model)."""


@dataclass(frozen=True, kw_only=True)
class StepProgress(Payload):
    """One denoising step done."""

    image: int  # which image of the batch (0-based)
    images: int  # images in the batch
    step: int  # 1-based
    steps: int
    preview: bytes | None = None  # a PNG at most 64 px on its long side, when sent
    preview_size: tuple[int, int] | None = None

    @property
    def fraction(self) -> float:
        """How much of the whole batch is done, 0…1."""
        if self.images <= 0 or self.steps <= 0:
            return 0.0
        return (self.image + self.step / self.steps) / self.images


@dataclass(frozen=True, kw_only=True)
class GeneratedImage(Payload):
    """One image written to disk (streamed as it is saved, and listed in `BatchDone`)."""

    path: Path
    thumbnail: Path | None
    seed: int
    width: int
    height: int
    seconds: float
    params: ImageParams  # this image's own (batch 1, its seed)
    sampler: str | None
    created_at: str | None  # ISO 8601, UTC, as the PNG's metadata says
    index: int = 0  # its place in the batch


@dataclass(frozen=True, kw_only=True)
class BatchDone(Payload):
    """GENERATE's RESULT: every image of the batch, and what made them."""

    images: tuple[GeneratedImage, ...]
    seconds: float  # generating (and saving) the batch, loading not included
    load_seconds: float  # loading the model first, when the request had to
    sampler: str
    device: str
    model: PipelineLoaded
    params: ImageParams  # the batch's (its first seed)


@dataclass(frozen=True, kw_only=True)
class ImageUpscaled(Payload):
    """UPSCALE's RESULT."""

    path: Path
    width: int
    height: int
    model_scale: int  # the upscaler's own factor (2, 4…)
    architecture: str  # "SRVGGNetCompact" | "RRDBNet"
    tiles: int
    seconds: float


@dataclass(frozen=True)
class Unloaded(Payload):
    """UNLOAD's RESULT: the model's memory is free (the child keeps running)."""

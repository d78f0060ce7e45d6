"""Images: text-to-image and image-to-image with local diffusion models.

Modules, each one idea:
- `params`: what one generation asks for (`ImageParams`, `ModelRef`), size presets.
- `engine`: `ImageEngine`, the diffusers child process as the app sees it, and its events.
- `png_metadata`: parameters in PNG text chunks (ModelDeck's JSON and A1111's `parameters`).
- `gallery`: `Gallery`, the images indexed in the app database, paged, with thumbnails.
- `choice`: which diffusion model a name, key, repo id or path means.
- `memory`: which memory savers a device needs.
- `single_file`: the configs that single-file SD checkpoints load with, offline.

torch and diffusers are never imported here: only the engine's child process uses them.
"""

from app.images.choice import ImageModelChoiceError, choose_diffusion_model
from app.images.engine import (
    ERROR_KINDS,
    GeneratedImage,
    ImageEngine,
    ImageEngineError,
    ModelLoading,
    StepProgress,
    generated_images,
    read_progress,
)
from app.images.gallery import Gallery, GalleryImage, default_images_dir, make_thumbnail
from app.images.memory import MemorySavers, choose_memory_savers
from app.images.params import (
    DEFAULT_SCHEDULER,
    SCHEDULERS,
    ImageParams,
    ImageParamsError,
    ModelRef,
    SizePreset,
    default_size,
    size_presets,
)
from app.images.png_metadata import ImageMetadata, read_metadata, save_png

__all__ = [
    "DEFAULT_SCHEDULER",
    "ERROR_KINDS",
    "SCHEDULERS",
    "Gallery",
    "GalleryImage",
    "GeneratedImage",
    "ImageEngine",
    "ImageEngineError",
    "ImageMetadata",
    "ImageModelChoiceError",
    "ImageParams",
    "ImageParamsError",
    "MemorySavers",
    "ModelLoading",
    "ModelRef",
    "SizePreset",
    "StepProgress",
    "choose_diffusion_model",
    "choose_memory_savers",
    "default_images_dir",
    "default_size",
    "generated_images",
    "make_thumbnail",
    "read_metadata",
    "read_progress",
    "save_png",
    "size_presets",
]

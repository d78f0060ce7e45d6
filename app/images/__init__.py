"""Images: text-to-image and image-to-image with local diffusion models.

Modules, each one idea:
- `params`: what one generation asks for (`ImageParams`, `ModelRef`), size presets.
- `engine`: `ImageEngine`, the diffusers child process as the app sees it, and its errors.
- `messages`: the engine's requests and what its child sends back, one dataclass each.
- `job`: `ImageJob`, one press of Generate (start, load, generate, index), for GUI and CLI.
- `png_metadata`: parameters in PNG text chunks (ModelDeck's JSON and A1111's `parameters`).
- `foreign_metadata`: other tools' settings (ComfyUI's graph, InvokeAI's object, A1111's EXIF).
- `loras`: the LoRAs of a generation (`LoraRef`) and A1111's `<lora:name:weight>` syntax.
- `queue`: `ImageQueue`, jobs kept in the database and run one after another.
- `gallery`: `Gallery`, the images indexed in the app database, paged, with thumbnails.
- `choice`: which diffusion model a name, key, repo id or path means.
- `memory`: which memory savers a device needs.
- `single_file`: the configs that single-file SD checkpoints load with, offline.

torch and diffusers are never imported here: only the engine's child process uses them.
"""

from app.images.choice import ImageModelChoiceError, choose_diffusion_model
from app.images.engine import (
    ImageEngine,
    ImageEngineError,
    error_meaning,
    generated_images,
    load_info,
    read_progress,
)
from app.images.gallery import Gallery, GalleryImage, default_images_dir, make_thumbnail
from app.images.memory import MemorySavers, choose_memory_savers
from app.images.messages import (
    BatchDone,
    GeneratedImage,
    GenerateImages,
    LoadPipeline,
    ModelLoading,
    PipelineLoaded,
    StepProgress,
    Unloaded,
)
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
    "SCHEDULERS",
    "BatchDone",
    "Gallery",
    "GalleryImage",
    "GenerateImages",
    "GeneratedImage",
    "ImageEngine",
    "ImageEngineError",
    "ImageMetadata",
    "ImageModelChoiceError",
    "ImageParams",
    "ImageParamsError",
    "LoadPipeline",
    "MemorySavers",
    "ModelLoading",
    "ModelRef",
    "PipelineLoaded",
    "SizePreset",
    "StepProgress",
    "Unloaded",
    "choose_diffusion_model",
    "choose_memory_savers",
    "default_images_dir",
    "default_size",
    "error_meaning",
    "generated_images",
    "load_info",
    "make_thumbnail",
    "read_metadata",
    "read_progress",
    "save_png",
    "size_presets",
]

"""The image engine's child process: torch + diffusers, one pipeline loaded at a time.

Started by `app.images.engine.ImageEngine` through `EngineProcess` (spawn); `main` is the
child's entry. torch and diffusers are imported in `main` only, so importing this module (the
app does, to name the entry) stays cheap. Nothing here reaches the network: every load is
`local_files_only`, and single-file checkpoints get their configs from the HF cache or from
the copies shipped with ModelDeck (`app.images.single_file`).

READY data: runtime (bool), device ("cuda" | "mps" | "cpu"), devices (available), device_name,
vram_total / vram_free (bytes, None off CUDA), torch, diffusers (versions), schedulers; when
torch or diffusers is missing: runtime False and error (every request then fails with kind
"no-runtime").

Requests and answers are the messages of `app.images.messages`:
- LOAD `LoadPipeline` → RESULT `PipelineLoaded`. Its `config` is a diffusers folder whose
  configs a single file uses instead of its family's reference configs; `threads` sets
  torch's CPU threads.
- GENERATE `GenerateImages` (its `model`, a `LoadPipeline`, is loaded first when it differs
  from the loaded model — so a fresh child after a crash reloads by itself) streams PROGRESS
  `ModelLoading`, `StepProgress` (a preview PNG ≤ 64 px at most every `PREVIEW_INTERVAL_S`)
  and `GeneratedImage` (each image once saved); then RESULT `BatchDone`. Cancel is noticed
  between steps (→ CANCELLED).
- UNLOAD (no body) → RESULT `Unloaded`.
A request whose body is not its op's message ends as an INTERNAL error (the ends disagree).

ERROR kinds (`EngineErrorKind`): BAD_INPUT (parameters; sizes not a multiple of 8 are refused
before anything runs), NOT_FOUND, NOT_A_PIPELINE, PICKLE, NOT_DIFFUSION (an LLM),
UNSUPPORTED_FAMILY, LOAD_FAILED, NO_MODEL, NAN (NaN or black output), OUT_OF_MEMORY,
NO_RUNTIME, INTERNAL.
"""

from __future__ import annotations

import gc
import io
import math
import os
import signal
import sys
import time
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from app.engines.errors import EngineErrorKind
from app.engines.protocol import (
    EngineFailure,
    EventKind,
    Handler,
    Op,
    Payload,
    RequestCancelled,
    RequestContext,
    serve,
)
from app.errors import CheckpointError
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
from app.images.params import DEFAULT_SCHEDULER, SCHEDULERS, ImageParams, ImageParamsError
from app.images.pixels import open_image
from app.images.png_metadata import ImageMetadata, save_png
from app.images.single_file import config_folder, family_config
from app.library.sniff import CheckpointFormat, ModelKind, sniff
from app.text import one_line

PREVIEW_MAX_SIDE = 64
PREVIEW_INTERVAL_S = 0.1  # at most this often (the last step always gets one)
BLACK_LEVEL = 1.0 / 255.0  # an image whose brightest pixel is below this is "black"

# Latent → RGB approximations (from ComfyUI's latent formats): rgb = latent · factors + bias,
# in [-1, 1]. Good enough for a 64-px live preview; the real image comes from the VAE.
_SD_RGB_FACTORS = (
    (0.3512, 0.2297, 0.3227),
    (0.3250, 0.4974, 0.2350),
    (-0.2829, 0.1762, 0.2721),
    (-0.2120, -0.2616, -0.7177),
)
_SD_RGB_BIAS = (0.0, 0.0, 0.0)
_SDXL_RGB_FACTORS = (
    (0.3651, 0.4232, 0.4341),
    (-0.2533, -0.0042, 0.1068),
    (0.1076, 0.1111, -0.0362),
    (-0.3165, -0.2492, -0.2188),
)
_SDXL_RGB_BIAS = (0.1084, -0.0175, -0.0011)

# Scheduler names → (diffusers class, extra config) and class → the name A1111 writes.
_SCHEDULERS: dict[str, tuple[str, dict[str, Any]]] = {
    "Euler": ("EulerDiscreteScheduler", {}),
    "Euler a": ("EulerAncestralDiscreteScheduler", {}),
    "DPM++ 2M": (
        "DPMSolverMultistepScheduler",
        {"algorithm_type": "dpmsolver++", "solver_order": 2},
    ),
    "DDIM": ("DDIMScheduler", {}),
}
_SAMPLER_NAMES = {
    "EulerDiscreteScheduler": "Euler",
    "EulerAncestralDiscreteScheduler": "Euler a",
    "DPMSolverMultistepScheduler": "DPM++ 2M",
    "DDIMScheduler": "DDIM",
    "PNDMScheduler": "PNDM",
    "LMSDiscreteScheduler": "LMS",
    "HeunDiscreteScheduler": "Heun",
    "UniPCMultistepScheduler": "UniPC",
}
_UNET_CONTEXT_FAMILIES = {768: "SD 1.x", 1024: "SD 2.x"}


def main(connection: Connection) -> None:
    """The child's entry: import the runtime, report READY, serve requests until told to stop."""
    # Ctrl+C in a terminal reaches the whole process group; the app cancels properly instead.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    os.environ["HF_HUB_OFFLINE"] = "1"
    os.environ["HF_HUB_DISABLE_PROGRESS_BARS"] = "1"  # transformers' "Loading weights" bar too
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ.setdefault("DIFFUSERS_VERBOSITY", "error")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    try:
        import diffusers
        import torch
    except ImportError as error:
        how = (
            "download the full ModelDeck bundle, which carries it"
            if getattr(sys, "frozen", False)  # an installed bundle has no pip to run
            else "install it with pip install 'modeldeck[image]'"
        )
        message = f"the image runtime is not installed ({error.name} is missing): {how}"

        def missing(context: RequestContext) -> Payload:
            raise EngineFailure(EngineErrorKind.NO_RUNTIME, message)

        serve(
            connection,
            {Op.LOAD: missing, Op.GENERATE: missing},
            ready={"runtime": False, "error": message},
        )
        return
    diffusers.utils.logging.disable_progress_bar()
    diffusers.utils.logging.set_verbosity_error()
    engine = _Engine()
    handlers: dict[Op, Handler] = {
        Op.LOAD: engine.load,
        Op.GENERATE: engine.generate,
        Op.UNLOAD: engine.unload,
    }
    ready = engine.capabilities() | {"torch": torch.__version__, "diffusers": diffusers.__version__}
    serve(connection, handlers, ready=ready)


def failure_kind(error: BaseException) -> EngineErrorKind | None:
    """OUT_OF_MEMORY for the ways torch and Python say memory ran out; else None."""
    if isinstance(error, MemoryError):
        return EngineErrorKind.OUT_OF_MEMORY
    if type(error).__name__ == "OutOfMemoryError":  # torch.OutOfMemoryError (CUDA, MPS)
        return EngineErrorKind.OUT_OF_MEMORY
    text = str(error).lower()
    if isinstance(error, RuntimeError) and (
        "out of memory" in text or "can't allocate memory" in text
    ):
        return EngineErrorKind.OUT_OF_MEMORY
    return None


def detect_devices() -> list[str]:
    """The devices torch can run on here, best first."""
    import torch

    devices = []
    if torch.cuda.is_available():
        devices.append("cuda")
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        devices.append("mps")
    return [*devices, "cpu"]


@dataclass
class _Loaded:
    """The pipeline in memory and what it was loaded from."""

    key: tuple[str, str | None, str, str]  # path, config, device, dtype
    pipeline: Any
    info: PipelineLoaded
    default_scheduler: Any
    savers: MemorySavers
    img2img: Any = None


@dataclass(frozen=True, kw_only=True)
class _Job:
    """What one GENERATE request runs with."""

    pipeline: Any  # text-to-image, or its image-to-image sibling
    sampler: str
    family: str | None
    init_image: Any  # a PIL image, for image-to-image
    batch: int
    output_dir: Path
    stem: str | None
    thumbnail_dir: Path | None
    thumbnail_size: int
    preview: bool


class _Engine:
    def __init__(self) -> None:
        self._devices = detect_devices()
        self._loaded: _Loaded | None = None

    # -- READY ------------------------------------------------------------------------------

    def capabilities(self) -> dict[str, Any]:
        import torch

        device = self._devices[0]
        data: dict[str, Any] = {
            "runtime": True,
            "device": device,
            "devices": self._devices,
            "device_name": "CPU",
            "vram_total": None,
            "vram_free": None,
            "schedulers": list(SCHEDULERS),
        }
        if device == "cuda":
            data["device_name"] = torch.cuda.get_device_name(0)
            free, total = torch.cuda.mem_get_info(0)
            data["vram_free"], data["vram_total"] = int(free), int(total)
        elif device == "mps":
            data["device_name"] = "Apple GPU (MPS)"
        return data

    # -- LOAD -------------------------------------------------------------------------------

    def load(self, context: RequestContext) -> PipelineLoaded:
        return self._ensure_loaded(context.request.expect(LoadPipeline))

    def unload(self, context: RequestContext) -> Unloaded:
        self._free()
        return Unloaded()

    def _ensure_loaded(self, request: LoadPipeline) -> PipelineLoaded:
        import torch

        if not request.path.parts:  # Path("") is Path("."): no path at all
            raise EngineFailure(EngineErrorKind.BAD_INPUT, "no model path given")
        path = request.path.expanduser()
        config = request.config
        device = request.device or self._devices[0]
        if device not in self._devices:
            raise EngineFailure(
                EngineErrorKind.BAD_INPUT,
                f"device {device!r} is not available here ({', '.join(self._devices)})",
            )
        dtype_name = request.dtype or ("float32" if device == "cpu" else "float16")
        if dtype_name not in ("float16", "float32", "bfloat16"):
            raise EngineFailure(EngineErrorKind.BAD_INPUT, f"unknown dtype {dtype_name!r}")
        key = (str(path.absolute()), str(config) if config else None, device, dtype_name)
        if request.threads:
            torch.set_num_threads(max(1, request.threads))
        if self._loaded is not None and self._loaded.key == key:
            return replace(self._loaded.info, cached=True, seconds=0.0)

        checkpoint = _checkpoint(path)
        self._free()  # never two models in memory at once
        started = time.perf_counter()
        pipeline, family = _load_pipeline(
            path, checkpoint, config, getattr(torch, dtype_name), request
        )
        width, height = _default_size(pipeline, family)
        savers = choose_memory_savers(
            device=device,
            free_memory=_free_memory(device),
            family=family,
            width=width,
            height=height,
            half_precision=dtype_name != "float32",
        )
        try:
            _place(pipeline, device, savers)
        except Exception as error:
            del pipeline
            gc.collect()
            _empty_cache(device)
            if failure_kind(error) is EngineErrorKind.OUT_OF_MEMORY:
                raise EngineFailure(
                    EngineErrorKind.OUT_OF_MEMORY, f"not enough memory on {device} for {path.name}"
                ) from None
            raise
        pipeline.set_progress_bar_config(disable=True)
        info = PipelineLoaded(
            name=request.name or checkpoint.name or path.name,
            path=str(path),
            family=family,
            pipeline=type(pipeline).__name__,
            device=device,
            dtype=dtype_name,
            seconds=round(time.perf_counter() - started, 3),
            cached=False,
            default_size=(width, height),
            memory_savers=tuple(savers.names),
            scheduler=_sampler_name(pipeline.scheduler),
            repo_id=request.repo_id or None,
            revision=request.revision or None,
            sha256=request.sha256 or _file_sha256(path),
        )
        self._loaded = _Loaded(key, pipeline, info, pipeline.scheduler, savers)
        return info

    def _free(self) -> None:
        if self._loaded is None:
            return
        device = self._loaded.info.device
        self._loaded = None
        gc.collect()
        _empty_cache(device)

    # -- GENERATE ---------------------------------------------------------------------------

    def generate(self, context: RequestContext) -> BatchDone:
        request = context.request.expect(GenerateImages)
        try:
            # Unpickling skipped `ImageParams`' checks: `replace` makes it run them again.
            params = replace(request.params).with_seed()
        except ImageParamsError as error:
            raise EngineFailure(EngineErrorKind.BAD_INPUT, str(error)) from None
        load_seconds = 0.0
        if request.model is not None:
            if self._needs_load(request.model):
                context.emit(EventKind.PROGRESS, ModelLoading())
            load_seconds = self._ensure_loaded(request.model).seconds
        loaded = self._loaded
        if loaded is None:
            raise EngineFailure(EngineErrorKind.NO_MODEL, "no model is loaded")
        if params.model is None:
            params = replace(params, model=loaded.info.ref)
        elif (
            not params.model.sha256
            and loaded.info.sha256
            and params.model.path in (None, loaded.info.path)
        ):
            # The PNG's "Model hash" (A1111: the checkpoint's sha256, 10 digits) needs it.
            params = replace(params, model=replace(params.model, sha256=loaded.info.sha256))
        job = self._prepare(loaded, params, request)

        started = time.perf_counter()
        images: list[GeneratedImage] = []
        for index in range(params.batch):
            if context.cancelled():
                raise RequestCancelled
            image = self._make_image(context, job, params.for_image(index), index)
            images.append(image)
            context.emit(EventKind.PROGRESS, image)
        return BatchDone(
            images=tuple(images),
            seconds=round(time.perf_counter() - started, 3),
            load_seconds=load_seconds,
            sampler=job.sampler,
            device=loaded.info.device,
            model=loaded.info,
            params=params,
        )

    def _prepare(self, loaded: _Loaded, params: ImageParams, request: GenerateImages) -> _Job:
        """Pick the pipeline, scheduler and memory savers of one request; check its paths."""
        pipeline = self._pipeline_for(loaded, params)
        scheduler = self._scheduler_for(loaded, params.scheduler)
        pipeline.scheduler = scheduler
        device = loaded.info.device
        savers = choose_memory_savers(
            device=device,
            free_memory=None if loaded.savers.cpu_offload else _free_memory(device),
            family=loaded.info.family,
            width=params.width,
            height=params.height,
        )
        _set_vae_tiling(pipeline, savers.vae_tiling or loaded.savers.vae_tiling)
        output_dir = request.output_dir
        try:
            output_dir.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise EngineFailure(
                EngineErrorKind.BAD_INPUT, f"cannot write to {output_dir}: {error}"
            ) from None
        return _Job(
            pipeline=pipeline,
            sampler=_sampler_name(scheduler),
            family=loaded.info.family,
            init_image=_init_image(params) if params.init_image else None,
            batch=params.batch,
            output_dir=output_dir,
            stem=request.name or None,
            thumbnail_dir=request.thumbnail_dir,
            thumbnail_size=request.thumbnail_size,
            preview=request.preview,
        )

    def _make_image(
        self, context: RequestContext, job: _Job, params: ImageParams, index: int
    ) -> GeneratedImage:
        """Generate image `index` of the batch, save it (and its thumbnail); its message."""
        started = time.perf_counter()
        array = self._run(context, job, params, index)
        seconds = time.perf_counter() - started
        image = _to_pil(array)
        path = _unique_path(job.output_dir, _file_stem(job.stem, params, index, job.batch))
        metadata = ImageMetadata(
            params=params,
            sampler=job.sampler,
            seconds=seconds,
            created_at=datetime.now(UTC).isoformat(timespec="microseconds"),
        )
        save_png(image, path, metadata)
        thumbnail = _save_thumbnail(image, path, job.thumbnail_dir, job.thumbnail_size)
        return GeneratedImage(
            index=index,
            path=path,
            thumbnail=thumbnail,
            seed=params.seed or 0,  # `generate` resolved every seed
            width=image.width,
            height=image.height,
            seconds=round(seconds, 3),
            params=params,
            sampler=job.sampler,
            created_at=metadata.created_at,
        )

    def _needs_load(self, model: LoadPipeline) -> bool:
        loaded = self._loaded
        if loaded is None:
            return True
        path = str(model.path.expanduser().absolute())
        return loaded.key[0] != path

    def _pipeline_for(self, loaded: _Loaded, params: ImageParams) -> Any:
        if not params.init_image:
            return loaded.pipeline
        if loaded.img2img is None:
            from diffusers import AutoPipelineForImage2Image

            try:
                loaded.img2img = AutoPipelineForImage2Image.from_pipe(loaded.pipeline)
            except Exception as error:
                raise EngineFailure(
                    EngineErrorKind.BAD_INPUT,
                    f"{loaded.info.name} has no image-to-image mode ({_error_line(error)})",
                ) from None
            loaded.img2img.set_progress_bar_config(disable=True)
        return loaded.img2img

    def _scheduler_for(self, loaded: _Loaded, name: str) -> Any:
        default = loaded.default_scheduler
        if name == DEFAULT_SCHEDULER:
            return default
        import diffusers

        class_name, extra = _SCHEDULERS[name]
        compatible = {cls.__name__ for cls in getattr(default, "compatibles", ())}
        if class_name != type(default).__name__ and class_name not in compatible:
            raise EngineFailure(
                EngineErrorKind.BAD_INPUT,
                f"the {name} scheduler does not work with {loaded.info.name}",
            )
        scheduler_class = getattr(diffusers, class_name)
        return scheduler_class.from_config(default.config, **extra)

    def _run(self, context: RequestContext, job: _Job, params: ImageParams, index: int) -> Any:
        import numpy
        import torch

        last_preview = 0.0

        def on_step_end(
            pipe: Any, step: int, timestep: Any, tensors: dict[str, Any]
        ) -> dict[str, Any]:
            nonlocal last_preview
            if context.cancelled():
                raise RequestCancelled
            total = int(getattr(pipe, "num_timesteps", 0) or params.steps)
            progress = StepProgress(image=index, images=job.batch, step=step + 1, steps=total)
            now = time.monotonic()
            latents = tensors.get("latents")
            if (
                job.preview
                and latents is not None
                and (step + 1 >= total or now - last_preview >= PREVIEW_INTERVAL_S)
            ):
                preview = latent_preview(latents, job.family)
                if preview is not None:
                    progress = replace(progress, preview=preview[0], preview_size=preview[1])
                    last_preview = now
            context.emit(EventKind.PROGRESS, progress)
            return tensors

        call: dict[str, Any] = {
            "prompt": params.prompt,
            "negative_prompt": params.negative or None,
            "num_inference_steps": params.steps,
            "guidance_scale": params.guidance,
            # A CPU generator gives the same noise on every device: seeds carry over.
            "generator": torch.Generator(device="cpu").manual_seed(params.seed or 0),
            "output_type": "np",
            "callback_on_step_end": on_step_end,
            "callback_on_step_end_tensor_inputs": ["latents"],
        }
        if job.init_image is not None:
            call["image"] = job.init_image
            call["strength"] = params.strength
        else:
            call["width"], call["height"] = params.width, params.height
        try:
            output = job.pipeline(**call)
        except RequestCancelled:
            raise
        except EngineFailure:
            raise
        except Exception as error:
            if failure_kind(error) is EngineErrorKind.OUT_OF_MEMORY:
                _empty_cache(str(getattr(job.pipeline, "device", "cpu")))
                raise EngineFailure(
                    EngineErrorKind.OUT_OF_MEMORY,
                    f"not enough memory for a {params.width}x{params.height} image: "
                    "try a smaller size or close other programs",
                ) from None
            raise
        array = numpy.asarray(output.images[0], dtype=numpy.float32)
        if not numpy.isfinite(array).all() or float(array.max(initial=0.0)) < BLACK_LEVEL:
            raise EngineFailure(
                EngineErrorKind.NAN,
                "the model produced an empty image (NaN values): in half precision this is "
                "usually the VAE overflowing; try fp32 or a fixed fp16 VAE",
            )
        return array


# --- loading ---------------------------------------------------------------------------------


_SHA256_MEMO: dict[tuple[str, int, int], str] = {}


def _file_sha256(path: Path) -> str | None:
    """A single-file checkpoint's sha256 (for A1111's "Model hash"), once per file version;
    None for a folder (a diffusers pipeline has no one hash) or a file that cannot be read."""
    import hashlib

    try:
        stat = path.stat()
        if not path.is_file():
            return None
        key = (str(path.resolve()), stat.st_size, stat.st_mtime_ns)
        if key not in _SHA256_MEMO:
            with path.open("rb") as handle:
                _SHA256_MEMO[key] = hashlib.file_digest(handle, "sha256").hexdigest()
        return _SHA256_MEMO[key]
    except OSError:
        return None


def _checkpoint(path: Path) -> Any:
    """What is at `path`, refusing what the image engine cannot or will not load."""
    if not path.exists():
        raise EngineFailure(EngineErrorKind.NOT_FOUND, f"{path} does not exist")
    try:
        checkpoint = sniff(path)
    except CheckpointError as error:  # a folder without model_index.json, a damaged file, …
        kind = EngineErrorKind.NOT_A_PIPELINE if path.is_dir() else EngineErrorKind.LOAD_FAILED
        raise EngineFailure(kind, str(error)) from None
    name = path.name
    if checkpoint.format is CheckpointFormat.PICKLE:
        raise EngineFailure(
            EngineErrorKind.PICKLE,
            f"{name} is a pickle checkpoint: loading one can run any code hidden in it, so "
            "ModelDeck does not. Use a .safetensors version of this model.",
        )
    if checkpoint.format is CheckpointFormat.GGUF or checkpoint.family == "LLM":
        raise EngineFailure(
            EngineErrorKind.NOT_DIFFUSION,
            f"{name}: this is a language model, not a diffusion model",
        )
    if checkpoint.format is CheckpointFormat.DIFFUSERS:
        if checkpoint.warning and "pickle" in checkpoint.warning:
            raise EngineFailure(
                EngineErrorKind.PICKLE,
                f"{name} has only pickle weights (.bin): loading them can run code, so ModelDeck "
                "does not. Use a version with .safetensors weights.",
            )
        return checkpoint
    if checkpoint.kind is not ModelKind.DIFFUSION_SINGLE_FILE:
        raise EngineFailure(
            EngineErrorKind.NOT_DIFFUSION, f"{name} does not look like a diffusion model"
        )
    if family_config(checkpoint.family) is None:
        family = checkpoint.family or "this kind of"
        raise EngineFailure(
            EngineErrorKind.UNSUPPORTED_FAMILY,
            f"{name}: single-file {family} checkpoints are not supported (SD 1.x, SD 2.x and "
            "SDXL are); use the diffusers version of this model",
        )
    return checkpoint


def _load_pipeline(
    path: Path, checkpoint: Any, config: Path | None, dtype: Any, request: LoadPipeline
) -> tuple[Any, str | None]:
    """The pipeline at `path` (on the CPU) and its family; load failures as EngineFailure."""
    try:
        if checkpoint.format is CheckpointFormat.DIFFUSERS:
            pipeline = _load_folder(path, dtype)
            family = _folder_family(pipeline)
        else:
            family = checkpoint.family
            pipeline = _load_single_file(path, family, config, dtype, request)
    except EngineFailure:
        raise
    except Exception as error:
        gc.collect()
        if failure_kind(error) is EngineErrorKind.OUT_OF_MEMORY:
            raise EngineFailure(
                EngineErrorKind.OUT_OF_MEMORY, f"not enough memory to load {path.name}"
            ) from None
        raise EngineFailure(
            EngineErrorKind.LOAD_FAILED, f"cannot load {path.name}: {_error_line(error)}"
        ) from None
    if not callable(pipeline) or not hasattr(pipeline, "scheduler"):
        raise EngineFailure(
            EngineErrorKind.NOT_A_PIPELINE,
            f"{path.name} is a {type(pipeline).__name__}, not an image pipeline",
        )
    return pipeline, family


def _load_folder(path: Path, dtype: Any) -> Any:
    from diffusers import DiffusionPipeline

    kwargs: dict[str, Any] = {
        _dtype_argument(): dtype,
        "local_files_only": True,
        "use_safetensors": True,
    }
    if str(dtype) != "torch.float32" and any(path.glob("*/*.fp16.safetensors")):
        kwargs["variant"] = "fp16"  # half the bytes to read when the repo has them
    loader: Any = DiffusionPipeline  # diffusers' loaders are untyped
    return loader.from_pretrained(str(path), **kwargs)


def _load_single_file(
    path: Path, family: str | None, config: Path | None, dtype: Any, request: LoadPipeline
) -> Any:
    import json

    import diffusers

    if config is None:
        if request.config_cache_dir is None:
            raise EngineFailure(
                EngineErrorKind.BAD_INPUT, "no config_cache_dir for a single-file checkpoint"
            )
        try:
            folder = config_folder(
                family or "",
                cache_dir=request.config_cache_dir,
                hf_cache_dir=request.hf_cache_dir,
            )
        except CheckpointError as error:
            raise EngineFailure(EngineErrorKind.UNSUPPORTED_FAMILY, str(error)) from None
    else:
        folder = config
    try:
        index = json.loads((folder / "model_index.json").read_text(encoding="utf-8"))
        pipeline_class = getattr(diffusers, str(index["_class_name"]))
    except (OSError, ValueError, KeyError, AttributeError) as error:
        raise EngineFailure(
            EngineErrorKind.LOAD_FAILED,
            f"no usable model_index.json in {folder}: {_error_line(error)}",
        ) from None
    return pipeline_class.from_single_file(
        str(path), config=str(folder), local_files_only=True, **{_dtype_argument(): dtype}
    )


def _dtype_argument() -> str:
    """ "dtype" where diffusers takes it (it deprecated "torch_dtype"), else "torch_dtype"."""
    from diffusers.pipelines import pipeline_utils

    return "dtype" if hasattr(pipeline_utils, "_resolve_dtype") else "torch_dtype"


def _folder_family(pipeline: Any) -> str | None:
    name = type(pipeline).__name__
    if "XL" in name:
        return "SDXL"
    unet = getattr(pipeline, "unet", None)
    if name.startswith("StableDiffusion") and unet is not None:
        width = getattr(unet.config, "cross_attention_dim", None)
        return _UNET_CONTEXT_FAMILIES.get(width) if isinstance(width, int) else None
    return None


def _default_size(pipeline: Any, family: str | None) -> tuple[int, int]:
    from app.images.params import default_size

    if family is not None:
        return default_size(family)
    unet = getattr(pipeline, "unet", None)
    scale = int(getattr(pipeline, "vae_scale_factor", 8) or 8)
    sample = getattr(getattr(unet, "config", None), "sample_size", None)
    if isinstance(sample, int) and sample > 0:
        side = max(64, sample * scale)
        return side, side
    return default_size(None)


def _place(pipeline: Any, device: str, savers: MemorySavers) -> None:
    if savers.cpu_offload:
        pipeline.enable_model_cpu_offload()
    else:
        pipeline.to(device)
    if savers.attention_slicing:
        pipeline.enable_attention_slicing()
    _set_vae_tiling(pipeline, savers.vae_tiling)


def _set_vae_tiling(pipeline: Any, on: bool) -> None:
    vae = getattr(pipeline, "vae", None)
    if vae is None or not hasattr(vae, "enable_tiling"):
        return
    if on:
        vae.enable_tiling()
    else:
        vae.disable_tiling()


def _free_memory(device: str) -> int | None:
    import torch

    if device == "cuda" and torch.cuda.is_available():
        free, _total = torch.cuda.mem_get_info()
        return int(free)
    return None


def _empty_cache(device: str) -> None:
    import torch

    if device.startswith("cuda") and torch.cuda.is_available():
        torch.cuda.empty_cache()
    elif device.startswith("mps") and hasattr(torch, "mps"):
        torch.mps.empty_cache()


def _sampler_name(scheduler: Any) -> str:
    name = type(scheduler).__name__
    if name == "DPMSolverMultistepScheduler":
        config = getattr(scheduler, "config", {})
        if config.get("algorithm_type") != "dpmsolver++" or config.get("solver_order") != 2:
            return name
    return _SAMPLER_NAMES.get(name, name)


# --- images ----------------------------------------------------------------------------------


def latent_preview(latents: Any, family: str | None) -> tuple[bytes, tuple[int, int]] | None:
    """A small PNG approximating what 4-channel SD/SDXL latents will decode to, and its size.

    None for latents of another shape (other model families).
    """
    import torch
    from PIL import Image

    if getattr(latents, "ndim", 0) != 4 or latents.shape[1] != 4:
        return None
    if family == "SDXL":
        factors, bias = _SDXL_RGB_FACTORS, _SDXL_RGB_BIAS
    else:
        factors, bias = _SD_RGB_FACTORS, _SD_RGB_BIAS
    with torch.no_grad():
        sample = latents[0:1].detach().to("cpu", torch.float32)
        height, width = sample.shape[2], sample.shape[3]
        scale = max(1, math.ceil(max(height, width) / PREVIEW_MAX_SIDE))
        if scale > 1:
            sample = torch.nn.functional.avg_pool2d(sample, scale, ceil_mode=True)
        matrix = torch.tensor(factors, dtype=torch.float32)
        offset = torch.tensor(bias, dtype=torch.float32)
        rgb = torch.einsum("chw,cr->hwr", sample[0], matrix) + offset
        pixels = ((rgb + 1.0) * 127.5).clamp(0, 255).to(torch.uint8).numpy()
    buffer = io.BytesIO()
    image = Image.fromarray(pixels)
    image.save(buffer, format="PNG")
    return buffer.getvalue(), (image.width, image.height)


def _init_image(params: ImageParams) -> Any:
    from PIL import Image, UnidentifiedImageError

    path = Path(str(params.init_image))
    try:
        with open_image(path) as source:  # ImageTooLargeError (an OSError) before decoding
            image = source.convert("RGB")
    except (OSError, UnidentifiedImageError) as error:
        raise EngineFailure(
            EngineErrorKind.BAD_INPUT, f"cannot read the source image {path}: {error}"
        ) from None
    if image.size != (params.width, params.height):
        image = image.resize((params.width, params.height), Image.Resampling.LANCZOS)
    return image


def _to_pil(array: Any) -> Any:
    import numpy
    from PIL import Image

    pixels = (numpy.clip(array, 0.0, 1.0) * 255).round().astype(numpy.uint8)
    return Image.fromarray(pixels)


def _file_stem(stem: str | None, params: ImageParams, index: int, batch: int) -> str:
    if stem:
        return stem if batch == 1 else f"{stem}-{index + 1}"
    now = datetime.now().strftime("%Y%m%d-%H%M%S")
    return f"{now}-{params.seed}"


def _unique_path(folder: Path, stem: str) -> Path:
    path = folder / f"{stem}.png"
    number = 2
    while path.exists():
        path = folder / f"{stem}-{number}.png"
        number += 1
    return path


def _save_thumbnail(image: Any, path: Path, folder: Path | None, size: int) -> Path | None:
    if folder is None or size <= 0:
        return None
    folder.mkdir(parents=True, exist_ok=True)
    thumbnail = image.copy()
    thumbnail.thumbnail((size, size))
    target = folder / f"{path.stem}.jpg"
    number = 2
    while target.exists():
        target = folder / f"{path.stem}-{number}.jpg"
        number += 1
    thumbnail.save(target, format="JPEG", quality=85)
    return target


def _error_line(error: BaseException) -> str:
    """A library's error on one short line (diffusers' messages run over many)."""
    return one_line(str(error), fallback=type(error).__name__, limit=300)

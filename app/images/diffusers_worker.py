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
import re
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
from app.images.loras import LoraRef
from app.images.memory import MemorySavers, choose_memory_savers
from app.images.messages import (
    BatchDone,
    GeneratedImage,
    GenerateImages,
    ImageUpscaled,
    LoadPipeline,
    ModelLoading,
    PipelineLoaded,
    StepProgress,
    Unloaded,
    UpscaleImage,
)
from app.images.params import (
    DEFAULT_SCHEDULER,
    MAX_STEPS,
    SCHEDULERS,
    ImageParams,
    ImageParamsError,
)
from app.images.pixels import open_image
from app.images.png_metadata import ImageMetadata, save_png
from app.images.single_file import config_folder, family_config
from app.library.sniff import Checkpoint, CheckpointFormat, ModelKind, sniff
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
        Op.UPSCALE: engine.upscale,
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
    loras: _AppliedLoras | None = None  # the LoRAs fused into its weights now


@dataclass(frozen=True)
class _AppliedLoras:
    """LoRAs fused into a pipeline, and the weights they replaced (to put back exactly:
    unfusing subtracts what fusing added, which leaves rounding errors in the weights)."""

    key: tuple[tuple[str, float], ...]  # (path, weight) of each, in order
    originals: tuple[tuple[Any, Any], ...]  # (parameter, its value before fusing, on the CPU)


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
    hires: Any = None  # the image-to-image pipeline that refines a hires fix


class _Engine:
    def __init__(self) -> None:
        self._devices = detect_devices()
        self._loaded: _Loaded | None = None
        self._upscaler: _Upscaler | None = None

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
        params = self._apply_loras(loaded, params)
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

    # -- LoRAs ------------------------------------------------------------------------------

    def _apply_loras(self, loaded: _Loaded, params: ImageParams) -> ImageParams:
        """Fuse `params.loras` into the loaded pipeline (nothing to do when they are fused
        already), after taking out any others; `params` with each LoRA's hash and family.

        Fused because a fused LoRA costs nothing per step, where a LoRA beside the weights
        adds two small matrix products to every adapted layer at every step; fusing takes a
        fraction of a second, once per change of LoRAs or weights.
        """
        checked = tuple(_checked_lora(lora, loaded) for lora in params.loras)
        key = tuple((str(lora.path), lora.weight) for lora in checked)
        current = loaded.loras.key if loaded.loras is not None else ()
        if key != current:
            _remove_loras(loaded)
            if checked:
                loaded.loras = _fuse_loras(loaded.pipeline, checked, key)
        return replace(params, loras=checked) if checked else params

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
            hires=(
                self._pipeline_for(loaded, replace(params, init_image="hires fix"))
                if params.hires_scale
                else None
            ),
        )

    def _make_image(
        self, context: RequestContext, job: _Job, params: ImageParams, index: int
    ) -> GeneratedImage:
        """Generate image `index` of the batch, save it (and its thumbnail); its message."""
        started = time.perf_counter()
        array = self._run(context, job, params, index)
        if params.hires_scale:
            array = self._hires_fix(context, job, params, index, array)
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

    # -- hires fix and upscaling ---------------------------------------------------------------

    def _hires_fix(
        self, context: RequestContext, job: _Job, params: ImageParams, index: int, array: Any
    ) -> Any:
        """Upscale a finished image to the hires size and refine it with image-to-image at
        `hires_strength` (the same prompt and seed): detail at a size the model was not
        trained to draw whole."""
        from PIL import Image

        image = _to_pil(array)
        size = (params.hires_width, params.hires_height)
        if params.upscaler:
            upscaler = self._upscaler_for(Path(params.upscaler), job.pipeline)
            image = _upscale_image(context, upscaler, image, tile=256, device=upscaler.device)
        image = image.resize(size, Image.Resampling.LANCZOS)
        strength = params.hires_strength
        if strength <= 0:  # nothing to refine: the upscaled image is the result
            return numpy_image(image)
        # Image-to-image runs steps x strength denoising steps; as A1111 does, the refining
        # pass gets as many as the first (and at least one).
        steps = min(MAX_STEPS, math.ceil(params.steps / strength))
        refine = replace(job, pipeline=job.hires, init_image=image)
        second = replace(params, init_image="hires fix", strength=strength, steps=steps)
        return self._run(context, refine, second, index)

    def upscale(self, context: RequestContext) -> ImageUpscaled:
        """UPSCALE: a file made larger with an upscaler model, tiled, saved as a PNG."""
        import torch
        from PIL import Image, UnidentifiedImageError

        request = context.request.expect(UpscaleImage)
        if request.threads:
            torch.set_num_threads(max(1, request.threads))
        device = request.device or self._devices[0]
        if device not in self._devices:
            raise EngineFailure(EngineErrorKind.BAD_INPUT, f"device {device!r} is not available")
        if not 0 <= request.scale <= 16 or not 16 <= request.tile <= 4096:
            raise EngineFailure(EngineErrorKind.BAD_INPUT, "scale or tile out of range")
        started = time.perf_counter()
        upscaler = self._upscaler_for(request.model, None, device=device)
        try:
            with open_image(request.source) as source:
                image = source.convert("RGB")
                chunks = _text_chunks_of(source)
        except (OSError, UnidentifiedImageError) as error:
            raise EngineFailure(
                EngineErrorKind.BAD_INPUT, f"cannot read the image {request.source}: {error}"
            ) from None
        scale = request.scale or upscaler.scale
        target = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
        if max(target) > UPSCALE_MAX_SIDE:
            raise EngineFailure(
                EngineErrorKind.BAD_INPUT,
                f"{target[0]}x{target[1]} is larger than {UPSCALE_MAX_SIDE} px on a side",
            )
        tiles = _tile_count(image.width, image.height, request.tile)
        result = _upscale_image(context, upscaler, image, tile=request.tile, device=device)
        if result.size != target:
            result = result.resize(target, Image.Resampling.LANCZOS)
        _save_upscaled(result, request.output, chunks, upscaler, scale)
        return ImageUpscaled(
            path=request.output,
            width=result.width,
            height=result.height,
            model_scale=upscaler.scale,
            architecture=upscaler.architecture,
            tiles=tiles,
            seconds=round(time.perf_counter() - started, 3),
        )

    def _upscaler_for(self, path: Path, pipeline: Any, *, device: str | None = None) -> _Upscaler:
        """The upscaler model at `path`, loaded once (on the pipeline's device, or `device`)."""
        if device is None:
            device = str(getattr(pipeline, "device", "cpu")).split(":")[0] if pipeline else "cpu"
        key = (str(path.expanduser().absolute()), device)
        if self._upscaler is None or self._upscaler.key != key:
            self._upscaler = None
            self._upscaler = _load_upscaler(path.expanduser(), device, key)
        return self._upscaler

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


# --- upscaler models (ESRGAN family) -----------------------------------------------------------

UPSCALE_MAX_SIDE = 16384
_TILE_PAD = 16  # source pixels each tile borrows from its neighbours (no seams for small nets)


@dataclass(frozen=True)
class _Upscaler:
    key: tuple[str, str]
    net: Any  # a torch module: (1, 3, h, w) in [0, 1] -> (1, 3, h*scale, w*scale)
    scale: int
    architecture: str
    name: str
    device: str
    multiple: int  # a tile's sides must be a multiple of this (RRDBNet x2 / x1 unshuffle)


def _sniffed_not_pickle(path: Path, what: str) -> Checkpoint:
    """What `path` holds, read from its header; a pickle is refused before anything loads it.

    Raises:
        EngineFailure: BAD_INPUT (unreadable header) or PICKLE.
    """
    try:
        checkpoint = sniff(path)
    except CheckpointError as error:
        raise EngineFailure(EngineErrorKind.BAD_INPUT, str(error)) from None
    if checkpoint.format is CheckpointFormat.PICKLE:
        raise EngineFailure(
            EngineErrorKind.PICKLE,
            f"{path.name} is a pickle file: loading one can run any code hidden in it, so "
            f"ModelDeck does not. Use a .safetensors version of this {what}.",
        )
    return checkpoint


def _load_upscaler(path: Path, device: str, key: tuple[str, str]) -> _Upscaler:
    """An ESRGAN-family upscaler from a safetensors file: Real-ESRGAN's SRVGGNetCompact
    (`body.N.*`) or BasicSR's RRDBNet (`conv_first`, `body.N.rdbM.convK`, `conv_up1`…).

    Raises:
        EngineFailure: NOT_FOUND, PICKLE, or BAD_INPUT (not an upscaler these loaders know).
    """
    import torch
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    if not path.is_file():
        raise EngineFailure(EngineErrorKind.NOT_FOUND, f"upscaler {path} does not exist")
    checkpoint = _sniffed_not_pickle(path, "upscaler")
    if checkpoint.format is not CheckpointFormat.SAFETENSORS:
        raise EngineFailure(EngineErrorKind.BAD_INPUT, f"{path.name} is not a safetensors file")
    try:
        state = load_file(str(path))
    except (SafetensorError, OSError) as error:
        raise EngineFailure(
            EngineErrorKind.BAD_INPUT, f"cannot read {path.name}: {error}"
        ) from None
    if "model.0.weight" in state:  # the original ESRGAN code's names (4x-UltraSharp, …)
        state = _rrdb_from_esrgan_names(state)
    try:
        if "conv_first.weight" in state:
            net, scale, multiple, architecture = _rrdb_net(state)
        elif "body.0.weight" in state:
            net, scale, multiple, architecture = _compact_net(state)
        else:
            raise ValueError("its tensors are neither SRVGGNetCompact's nor RRDBNet's")
        net.load_state_dict(state, strict=True)
    except (ValueError, RuntimeError, KeyError) as error:
        raise EngineFailure(
            EngineErrorKind.BAD_INPUT,
            f"{path.name} is not an upscaler ModelDeck can load: {_error_line(error)}",
        ) from None
    net.eval().requires_grad_(False)
    net.to(device=device, dtype=torch.float32)
    return _Upscaler(key, net, scale, architecture, path.stem, device, multiple)


_ESRGAN_BLOCK = re.compile(r"^model\.1\.sub\.(\d+)\.RDB(\d)\.conv(\d)\.0\.(weight|bias)$")
_ESRGAN_NAMES = {
    "model.0": "conv_first",
    "model.3": "conv_up1",
    "model.6": "conv_up2",
    "model.8": "conv_hr",
    "model.10": "conv_last",
}


def _rrdb_from_esrgan_names(state: dict[str, Any]) -> dict[str, Any]:
    """An x4 RRDBNet's tensors under the original ESRGAN code's names, renamed to BasicSR's
    (`model.1.sub.N.RDBk.convj.0` -> `body.N.rdbk.convj`, the last `model.1.sub.*` ->
    `conv_body`, `model.3/6/8/10` -> the upsampling and output convs).

    Raises:
        ValueError: a tensor these names do not cover.
    """
    blocks = [int(match[1]) for name in state if (match := _ESRGAN_BLOCK.match(name))]
    trunk = max(blocks, default=-1) + 1  # the conv after the blocks
    renamed: dict[str, Any] = {}
    for name, tensor in state.items():
        if match := _ESRGAN_BLOCK.match(name):
            block, rdb, conv, kind = match.groups()
            renamed[f"body.{block}.rdb{rdb}.conv{conv}.{kind}"] = tensor
            continue
        prefix, _, kind = name.rpartition(".")
        if prefix == f"model.1.sub.{trunk}":
            renamed[f"conv_body.{kind}"] = tensor
        elif prefix in _ESRGAN_NAMES:
            renamed[f"{_ESRGAN_NAMES[prefix]}.{kind}"] = tensor
        else:
            raise ValueError(f"unexpected tensor {name[:80]!r} in an ESRGAN model")
    return renamed


def _compact_net(state: dict[str, Any]) -> tuple[Any, int, int, str]:
    """Real-ESRGAN's SRVGGNetCompact: convs and PReLUs in `body`, a pixel shuffle, plus the
    nearest-upsampled input."""
    import torch

    indices = sorted({int(name.split(".")[1]) for name in state if name.startswith("body.")})
    layers: list[Any] = []
    for index in indices:
        weight = state[f"body.{index}.weight"]
        if weight.ndim == 4:
            out_channels, in_channels, kernel, _ = (int(side) for side in weight.shape)
            layers.append(torch.nn.Conv2d(in_channels, out_channels, kernel, padding=kernel // 2))
        elif weight.ndim == 1:
            layers.append(torch.nn.PReLU(num_parameters=int(weight.shape[0])))
        else:
            raise ValueError(f"body.{index} is neither a convolution nor a PReLU")
    if indices != list(range(len(indices))) or not layers:
        raise ValueError("its body layers are not numbered 0…n")
    last = int(state[f"body.{indices[-1]}.weight"].shape[0])
    scale = round(math.sqrt(last / 3))
    if scale < 1 or 3 * scale * scale != last:
        raise ValueError(f"its last layer has {last} channels, not 3 times a square")

    class Compact(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.body = torch.nn.ModuleList(layers)

        def forward(self, x: Any) -> Any:
            out = x
            for layer in self.body:
                out = layer(out)
            out = torch.nn.functional.pixel_shuffle(out, scale)
            return out + torch.nn.functional.interpolate(x, scale_factor=scale, mode="nearest")

    return Compact(), scale, 1, "SRVGGNetCompact"


def _rrdb_net(state: dict[str, Any]) -> tuple[Any, int, int, str]:
    """BasicSR's RRDBNet (ESRGAN, Real-ESRGAN x4plus): residual-in-residual dense blocks and
    two nearest x2 upsamplings; x2 and x1 models first fold the input (pixel unshuffle)."""
    import torch

    first = state["conv_first.weight"]
    features, in_channels = int(first.shape[0]), int(first.shape[1])
    folds = {3: 1, 12: 2, 48: 4}
    if in_channels not in folds:
        raise ValueError(f"conv_first takes {in_channels} channels, not 3, 12 or 48")
    fold = folds[in_channels]
    blocks = len({name.split(".")[1] for name in state if name.startswith("body.")})
    growth = int(state["body.0.rdb1.conv1.weight"].shape[0])
    conv = torch.nn.Conv2d
    leaky = torch.nn.functional.leaky_relu

    class Dense(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv1 = conv(features, growth, 3, 1, 1)
            self.conv2 = conv(features + growth, growth, 3, 1, 1)
            self.conv3 = conv(features + 2 * growth, growth, 3, 1, 1)
            self.conv4 = conv(features + 3 * growth, growth, 3, 1, 1)
            self.conv5 = conv(features + 4 * growth, features, 3, 1, 1)

        def forward(self, x: Any) -> Any:
            x1 = leaky(self.conv1(x), 0.2)
            x2 = leaky(self.conv2(torch.cat((x, x1), 1)), 0.2)
            x3 = leaky(self.conv3(torch.cat((x, x1, x2), 1)), 0.2)
            x4 = leaky(self.conv4(torch.cat((x, x1, x2, x3), 1)), 0.2)
            x5 = self.conv5(torch.cat((x, x1, x2, x3, x4), 1))
            return x5 * 0.2 + x

    class Block(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.rdb1, self.rdb2, self.rdb3 = Dense(), Dense(), Dense()

        def forward(self, x: Any) -> Any:
            return self.rdb3(self.rdb2(self.rdb1(x))) * 0.2 + x

    class Rrdb(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv_first = conv(in_channels, features, 3, 1, 1)
            self.body = torch.nn.Sequential(*(Block() for _ in range(blocks)))
            self.conv_body = conv(features, features, 3, 1, 1)
            self.conv_up1 = conv(features, features, 3, 1, 1)
            self.conv_up2 = conv(features, features, 3, 1, 1)
            self.conv_hr = conv(features, features, 3, 1, 1)
            self.conv_last = conv(features, 3, 3, 1, 1)

        def forward(self, x: Any) -> Any:
            if fold > 1:
                x = torch.nn.functional.pixel_unshuffle(x, fold)
            feat = self.conv_first(x)
            feat = feat + self.conv_body(self.body(feat))
            up = torch.nn.functional.interpolate
            feat = leaky(self.conv_up1(up(feat, scale_factor=2, mode="nearest")), 0.2)
            feat = leaky(self.conv_up2(up(feat, scale_factor=2, mode="nearest")), 0.2)
            return self.conv_last(leaky(self.conv_hr(feat), 0.2))

    return Rrdb(), 4 // fold, fold, "RRDBNet"


def _tile_count(width: int, height: int, tile: int) -> int:
    return math.ceil(width / tile) * math.ceil(height / tile)


def _upscale_image(
    context: RequestContext, upscaler: _Upscaler, image: Any, *, tile: int, device: str
) -> Any:
    """`image` (PIL, RGB) through the upscaler, `tile` source pixels at a time, each tile
    with `_TILE_PAD` pixels of its neighbours so the seams match an untiled pass."""
    import numpy
    import torch
    from PIL import Image

    scale, multiple = upscaler.scale, upscaler.multiple
    pixels = torch.from_numpy(numpy.asarray(image, dtype=numpy.float32) / 255.0)
    source = pixels.permute(2, 0, 1).unsqueeze(0).to(device)
    _, _, height, width = source.shape
    output = torch.zeros((1, 3, height * scale, width * scale), dtype=torch.float32)
    total, done = _tile_count(width, height, tile), 0
    with torch.no_grad():
        for top in range(0, height, tile):
            for left in range(0, width, tile):
                if context.cancelled():
                    raise RequestCancelled
                bottom, right = min(top + tile, height), min(left + tile, width)
                y0, x0 = max(top - _TILE_PAD, 0), max(left - _TILE_PAD, 0)
                y1, x1 = min(bottom + _TILE_PAD, height), min(right + _TILE_PAD, width)
                piece = source[:, :, y0:y1, x0:x1]
                extra_y, extra_x = (-piece.shape[2]) % multiple, (-piece.shape[3]) % multiple
                if extra_y or extra_x:  # a folding net needs sides it can fold
                    piece = torch.nn.functional.pad(
                        piece, (0, extra_x, 0, extra_y), mode="replicate"
                    )
                result = upscaler.net(piece).float().cpu()
                inner_y, inner_x = (top - y0) * scale, (left - x0) * scale
                rows, columns = (bottom - top) * scale, (right - left) * scale
                output[:, :, top * scale : bottom * scale, left * scale : right * scale] = result[
                    :, :, inner_y : inner_y + rows, inner_x : inner_x + columns
                ]
                done += 1
                context.emit(
                    EventKind.PROGRESS, StepProgress(image=0, images=1, step=done, steps=total)
                )
    array = output[0].clamp(0, 1).permute(1, 2, 0).numpy()
    return Image.fromarray((array * 255.0).round().astype(numpy.uint8))


def _text_chunks_of(image: Any) -> dict[str, str]:
    """The PNG text chunks Pillow read with the image (its metadata), to keep on the copy."""
    info = getattr(image, "text", None)
    if not isinstance(info, dict):
        return {}
    return {str(key): str(value) for key, value in info.items() if isinstance(value, str)}


def _save_upscaled(
    image: Any, path: Path, chunks: dict[str, str], upscaler: _Upscaler, scale: float
) -> None:
    from PIL.PngImagePlugin import PngInfo

    info = PngInfo()
    note = f"Postprocess upscale by: {scale:g}, Postprocess upscaler: {upscaler.name}"
    for key, value in chunks.items():
        # A1111's extras tab notes an upscale at the end of the parameters' last line.
        info.add_text(key, f"{value}, {note}" if key == "parameters" else value)
    if "parameters" not in chunks:
        info.add_text("modeldeck_upscale", f"{upscaler.name} ({upscaler.architecture}) x{scale:g}")
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path, format="PNG", pnginfo=info)


# --- LoRAs -----------------------------------------------------------------------------------


def _checked_lora(lora: LoraRef, loaded: _Loaded) -> LoraRef:
    """`lora` with its hash and family, if it is a LoRA this model can take.

    Raises:
        EngineFailure: BAD_INPUT (no such file, not a LoRA, made for another family), or
            PICKLE.
    """
    if not lora.path:
        raise EngineFailure(
            EngineErrorKind.BAD_INPUT,
            f"LoRA {lora.name!r} is not on this machine (no file for it)",
        )
    path = Path(lora.path).expanduser()
    if not path.is_file():
        raise EngineFailure(EngineErrorKind.BAD_INPUT, f"LoRA file {path} does not exist")
    checkpoint = _sniffed_not_pickle(path, "LoRA")
    header = checkpoint.lora
    if checkpoint.kind is not ModelKind.LORA or header is None:
        raise EngineFailure(
            EngineErrorKind.BAD_INPUT, f"{path.name} is a {checkpoint.kind.value}, not a LoRA"
        )
    model = loaded.info
    unet = getattr(loaded.pipeline, "unet", None)
    width = getattr(getattr(unet, "config", None), "cross_attention_dim", None)
    width = width if isinstance(width, int) else None
    wrong_family = header.family and model.family and header.family != model.family
    wrong_width = header.context_width and width and header.context_width != width
    if wrong_family or wrong_width:
        raise EngineFailure(
            EngineErrorKind.BAD_INPUT,
            f"{path.name} is a LoRA for {_family_words(header.family, header.context_width)}, "
            f"but {model.name} is {_family_words(model.family, width)}",
        )
    return replace(
        lora,
        short_hash=_lora_hash(path),
        family=header.family or model.family,
    )


def _family_words(family: str | None, width: int | None) -> str:
    if family:
        return family
    if width:
        return f"a model with a {width}-wide text context"
    return "an unknown model family"


def _fuse_loras(
    pipeline: Any, loras: tuple[LoraRef, ...], key: tuple[tuple[str, float], ...]
) -> _AppliedLoras:
    """Load each LoRA as a named adapter, weigh them, and fuse them into the weights."""
    names = [f"lora{index}" for index in range(len(loras))]
    try:
        for name, lora in zip(names, loras, strict=True):
            try:
                pipeline.load_lora_weights(str(lora.path), adapter_name=name)
            except Exception as error:
                raise EngineFailure(
                    EngineErrorKind.BAD_INPUT,
                    f"cannot apply LoRA {lora.name}: {_error_line(error)}",
                ) from None
        pipeline.set_adapters(names, adapter_weights=[lora.weight for lora in loras])
        originals = _lora_base_weights(pipeline)
        pipeline.fuse_lora(adapter_names=names, lora_scale=1.0)
    except BaseException:
        _unload_adapters(pipeline)
        raise
    return _AppliedLoras(key=key, originals=originals)


def _lora_base_weights(pipeline: Any) -> tuple[tuple[Any, Any], ...]:
    """Every weight an adapter sits on, with a CPU copy of its value."""
    from peft.tuners.tuners_utils import BaseTunerLayer

    found: list[tuple[Any, Any]] = []
    for component in ("unet", "transformer", "text_encoder", "text_encoder_2"):
        model = getattr(pipeline, component, None)
        if model is None or not hasattr(model, "modules"):
            continue
        for module in model.modules():
            if isinstance(module, BaseTunerLayer):
                base = module.get_base_layer()
                for parameter in (getattr(base, "weight", None), getattr(base, "bias", None)):
                    if parameter is not None:
                        found.append((parameter, parameter.detach().to("cpu", copy=True)))
    return tuple(found)


def _remove_loras(loaded: _Loaded) -> None:
    """Take every LoRA out of the loaded pipeline, its weights exactly as they were."""
    import torch

    applied, loaded.loras = loaded.loras, None
    if applied is None:
        return
    pipeline = loaded.pipeline
    pipeline.unfuse_lora()
    with torch.no_grad():
        for parameter, original in applied.originals:
            parameter.copy_(original)
    _unload_adapters(pipeline)


def _unload_adapters(pipeline: Any) -> None:
    pipeline.unload_lora_weights()


_LORA_HASH_MEMO: dict[tuple[str, int, int], str] = {}


def _lora_hash(path: Path) -> str | None:
    """A1111's LoRA hash: the sha256 of a safetensors file's tensor data (the header left
    out, as kohya's "addnet" hash does, so editing metadata keeps it), 12 hex digits."""
    import hashlib
    import struct

    try:
        stat = path.stat()
        key = (str(path.resolve()), stat.st_size, stat.st_mtime_ns)
        if key not in _LORA_HASH_MEMO:
            with path.open("rb") as handle:
                (length,) = struct.unpack("<Q", handle.read(8))
                handle.seek(8 + length)
                _LORA_HASH_MEMO[key] = hashlib.file_digest(handle, "sha256").hexdigest()
        return _LORA_HASH_MEMO[key][:12]
    except (OSError, struct.error):
        return None


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


def numpy_image(image: Any) -> Any:
    """A PIL image as the float array in [0, 1] the pipelines' "np" output is."""
    import numpy

    return numpy.asarray(image, dtype=numpy.float32) / 255.0


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

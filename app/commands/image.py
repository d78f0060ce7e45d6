"""`modeldeck image MODEL --prompt TEXT`: generate images with a local diffusion model.

    modeldeck image stable-diffusion-v1-5/stable-diffusion-v1-5 --prompt "a lighthouse at dusk"
    modeldeck image ~/models/model.safetensors --prompt "…" --size 512x768 --seed 7
    modeldeck image MODEL --prompt "…" --out lighthouse.png --json
    modeldeck image MODEL --prompt "a fox <lora:ink:0.8>" --lora ~/loras/moss.safetensors:0.6
    modeldeck image MODEL --prompt "…" --hires 2 --hires-strength 0.4 --upscale-model x4.safetensors

MODEL is a library name or entry key, a repository id in the HF cache, or a path (a diffusers
folder, or a single SD 1.x / SD 2.x / SDXL .safetensors file). The model runs in a child
process (torch + diffusers), offline. Without `--out`, images go to the gallery
(`<data dir>/images/<date>/`) and show on the Images page. Each PNG carries its parameters.

Progress goes to stderr; `--json` prints one object at the end:
{"path", "paths", "seed", "seeds", "seconds", "params", "model"}.

Exit status: 0 done; 1 error (the engine's message); 2 bad arguments; 3 no such model;
130 interrupted. Failures print one line on stderr.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

if TYPE_CHECKING:  # `register` runs at every start: the rest is imported when an image is made
    from app.core import Core
    from app.images.engine import ImageEngine
    from app.images.job import JobUpdate
    from app.images.params import ImageParams

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_USAGE = 2
EXIT_NOT_FOUND = 3
EXIT_INTERRUPTED = 130

_CANCEL_GRACE_S = 10.0
_SCHEDULERS = ("default", "Euler", "Euler a", "DPM++ 2M", "DDIM")  # = app.images.SCHEDULERS


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add `image` to a parser's subcommands."""
    image = subparsers.add_parser(
        "image",
        help="generate images with a local diffusion model",
        description="Generate images with a diffusers folder or a single SD .safetensors "
        "file, offline, in a child process. Each PNG carries its parameters.",
    )
    image.add_argument(
        "model", metavar="MODEL", help="library name or key, repo id in the HF cache, or a path"
    )
    image.add_argument("--prompt", required=True, help="what to draw")
    image.add_argument("--negative", default="", help="what to avoid")
    image.add_argument("--steps", type=int, default=20, help="denoising steps (20)")
    image.add_argument("--guidance", type=float, default=7.0, help="CFG scale (7)")
    image.add_argument("--seed", type=int, help="seed (default: random, reported)")
    image.add_argument(
        "--size", type=_size, metavar="WxH", help="e.g. 512x768 (default: the model's own)"
    )
    image.add_argument("--scheduler", choices=_SCHEDULERS, default="default")
    image.add_argument("--batch", type=int, default=1, help="images to make, seeds seed, seed+1…")
    image.add_argument("--init-image", type=Path, metavar="PATH", help="image-to-image source")
    image.add_argument(
        "--strength", type=float, default=0.75, help="image-to-image: how much changes (0.75)"
    )
    image.add_argument(
        "--lora",
        action="append",
        default=[],
        metavar="FILE_OR_NAME[:WEIGHT]",
        help="stack a LoRA (a .safetensors path or a library name) at a weight (1); "
        "repeatable; <lora:name:weight> in the prompt works too; when the prompt has none of "
        "its trigger words (from its metadata or its Civitai .civitai.info) they are listed",
    )
    image.add_argument(
        "--hires",
        type=float,
        metavar="SCALE",
        help="hires fix: generate, upscale by SCALE (1-4), refine with image-to-image",
    )
    image.add_argument(
        "--hires-strength",
        type=float,
        default=0.5,
        metavar="X",
        help="hires fix: how much the refining pass changes (0.5)",
    )
    image.add_argument(
        "--upscale-model",
        type=Path,
        metavar="FILE",
        help="hires fix: an ESRGAN-family .safetensors upscaler (default: Lanczos)",
    )
    image.add_argument("--out", type=Path, metavar="FILE", help="write the PNG here (.png)")
    add_engine_arguments(image)


def add_engine_arguments(parser: argparse.ArgumentParser) -> None:
    """`--device`, `--threads` and `--json`: what every image-engine command takes."""
    parser.add_argument("--device", choices=("cuda", "mps", "cpu"), help="default: the best here")
    parser.add_argument("--threads", type=int, help="CPU threads (default: one per core)")
    parser.add_argument("--json", action="store_true", help="print one JSON object at the end")


def run(
    core: Core,
    args: argparse.Namespace,
    out: TextIO = sys.stdout,
    *,
    err: TextIO | None = None,
    engine: ImageEngine | None = None,
) -> int:
    """Generate what `args` asks for; returns the exit status.

    Args:
        core: the opened core (library, database, HF cache setting).
        args: parsed by a parser that `register` filled.
        out: where `--json` and the paths of the images go.
        err: where progress and failures go (default: `sys.stderr`).
        engine: the image engine to use (default: a new one, stopped at the end).
    """
    from app.errors import AppError
    from app.images.choice import ImageModelChoiceError, choose_diffusion_model, resolve_loras
    from app.images.engine import ImageEngine
    from app.images.job import ImageJob, JobPhase
    from app.images.loras import LoraWeightError, parse_lora_option
    from app.images.params import ImageParamsError

    err = sys.stderr if err is None else err
    try:
        params = _params(args)
        extra_loras = [parse_lora_option(option) for option in args.lora]
    except (ImageParamsError, LoraWeightError) as exc:
        return _fail(err, str(exc), EXIT_USAGE)
    output: Path | None = args.out.expanduser().absolute() if args.out else None
    if output is not None and output.suffix.lower() != ".png":
        return _fail(err, f"--out must name a .png file, not {output.name}", EXIT_USAGE)
    try:
        model = choose_diffusion_model(args.model, core.library)
        params = resolve_loras(params, core.library, extra_loras)
    except ImageModelChoiceError as exc:
        return _fail(err, str(exc), EXIT_NOT_FOUND)
    except AppError as exc:
        return _fail(err, str(exc), EXIT_ERROR)
    _note_trigger_words(params, err)

    own_engine = engine is None
    if engine is None:
        engine = ImageEngine(
            hf_cache_dir=core.settings.resolved_cache_dir(),
            device=args.device,
            threads=args.threads,
        )
    progress = _Progress(err, model.name)
    job = ImageJob(
        engine,
        core.gallery,
        model,
        params,
        out=output,
        size_follows_model=args.size is None,
        on_update=progress.show,
    )
    try:
        job.start()
        while not job.done:  # in short waits: Ctrl+C must reach this thread
            job.wait(0.5)
    except KeyboardInterrupt:
        job.cancel()
        job.wait(_CANCEL_GRACE_S)
        return _fail(err, "interrupted", EXIT_INTERRUPTED)
    finally:
        progress.end()
        if own_engine:
            engine.stop()

    snapshot = job.snapshot()
    if snapshot.phase is not JobPhase.DONE or snapshot.result is None:
        return _failed(err, snapshot.error)
    images = snapshot.result.images
    if args.json:
        used = snapshot.params
        document = {
            "path": str(images[0].path) if images else None,
            "paths": [str(image.path) for image in images],
            "seed": used.seed if used else None,
            "seeds": [image.seed for image in images],
            "seconds": snapshot.seconds,
            "params": used.to_json() if used else None,
            "model": (snapshot.loaded or snapshot.result.model).to_json(),
        }
        out.write(json.dumps(document, ensure_ascii=False) + "\n")
    else:
        for image in images:
            out.write(f"{image.path}\n")
        count = len(images)
        err.write(f"{count} image{'s' if count != 1 else ''} in {snapshot.seconds:.1f} s\n")
    return EXIT_OK


def _failed(err: TextIO, error: Exception | None) -> int:
    """Say why a job ended without its images; the exit status that goes with it."""
    from app.engines.errors import EngineErrorKind
    from app.errors import AppError
    from app.images.engine import ImageEngineError
    from app.images.params import ImageParamsError

    if isinstance(error, ImageEngineError):
        by_kind = {EngineErrorKind.BAD_INPUT: EXIT_USAGE, EngineErrorKind.NOT_FOUND: EXIT_NOT_FOUND}
        return _fail(err, error.message, by_kind.get(error.kind, EXIT_ERROR))
    if isinstance(error, ImageParamsError | ValueError):
        return _fail(err, str(error), EXIT_USAGE)
    if isinstance(error, AppError | RuntimeError | TimeoutError):
        return _fail(err, str(error), EXIT_ERROR)
    if error is None:  # cancelled: only Ctrl+C cancels here, and that returned already
        return _fail(err, "interrupted", EXIT_INTERRUPTED)
    return _fail(err, f"{type(error).__name__}: {error}", EXIT_ERROR)


def _params(args: argparse.Namespace) -> ImageParams:
    """The parameters the options ask for (the size may change to the model's own)."""
    from app.images.params import ImageParams

    width, height = args.size or (512, 512)
    return ImageParams(
        prompt=args.prompt,
        negative=args.negative,
        steps=args.steps,
        guidance=args.guidance,
        seed=args.seed,
        width=width,
        height=height,
        scheduler=args.scheduler,
        batch=args.batch,
        init_image=str(args.init_image.expanduser().absolute()) if args.init_image else None,
        strength=args.strength,
        hires_scale=args.hires or 0.0,
        hires_strength=args.hires_strength,
        upscaler=(str(args.upscale_model.expanduser().absolute()) if args.upscale_model else None),
    )


def _size(text: str) -> tuple[int, int]:
    """`--size WxH`."""
    width, sep, height = text.lower().partition("x")
    try:
        if not sep:
            raise ValueError
        return int(width), int(height)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a size like 512x768: {text!r}") from None


def _note_trigger_words(params: ImageParams, err: TextIO) -> None:
    """For each LoRA whose trigger words the prompt lacks, a line listing them (from its
    metadata and its Civitai sidecar): a LoRA trained on a word often does little without
    it."""
    from app.images.lora_words import lora_trigger_words, missing_trigger_words

    for lora in params.loras:
        if not lora.path:
            continue
        words = missing_trigger_words(params.prompt, lora_trigger_words(Path(lora.path)))
        if words:
            err.write(f"LoRA {lora.name} answers to: {', '.join(words)} (not in the prompt)\n")


def _fail(err: TextIO, message: str, status: int) -> int:
    err.write(f"modeldeck: {' '.join(message.split())}\n")
    err.flush()
    return status


class _Progress:
    """A job's updates on stderr: steps redrawn in place on a terminal; elsewhere a line per
    image (and at most one step line a second). Called on the job's thread."""

    def __init__(self, err: TextIO, model: str) -> None:
        self._err = err
        self._model = model
        self._tty = _is_tty(err)
        self._drawn = 0
        self._last = 0.0

    def note(self, text: str) -> None:
        self.end()
        self._err.write(text + "\n")
        self._err.flush()

    def show(self, item: JobUpdate) -> None:
        from app.images.job import Generating
        from app.images.messages import GeneratedImage, ModelLoading, StepProgress

        if isinstance(item, ModelLoading):
            self.note(f"loading {self._model}…")
        elif isinstance(item, Generating):
            params, loaded = item.params, item.model
            how = f"{loaded.pipeline} on {loaded.device} ({loaded.dtype}), " if loaded else ""
            loras = "".join(f", LoRA {lora.name} at {lora.weight:g}" for lora in params.loras)
            hires = (
                f", hires fix to {params.hires_width}x{params.hires_height}"
                if params.hires_scale
                else ""
            )
            self.note(f"{how}{params.size}, seed {params.seed}{loras}{hires}")
        elif isinstance(item, StepProgress):
            batch = f" (image {item.image + 1}/{item.images})" if item.images > 1 else ""
            line = f"step {item.step}/{item.steps}{batch}"
            if self._tty:
                self._err.write("\r" + line.ljust(self._drawn))
                self._err.flush()
                self._drawn = len(line)
            elif time.monotonic() - self._last >= 1.0 or item.step == item.steps:
                self._last = time.monotonic()
                self.note(line)
        elif isinstance(item, GeneratedImage):
            self.note(f"wrote {item.path} (seed {item.seed}, {item.seconds:.1f} s)")

    def end(self) -> None:
        if self._drawn:
            self._err.write("\n")
            self._err.flush()
            self._drawn = 0


def _is_tty(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False

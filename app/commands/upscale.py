"""`modeldeck upscale IMAGE --model M --scale N`: make an image larger with an upscaler model.

    modeldeck upscale fox.png --model ~/upscalers/4x-UltraSharp.safetensors
    modeldeck upscale fox.png --model realesr-general-x4v3.safetensors --scale 2 --out big.png

The model is an ESRGAN-family safetensors file (Real-ESRGAN's compact SRVGGNet or BasicSR's
RRDBNet layout); pickles (.pth) are refused, as everywhere in ModelDeck. The image engine runs
it in its child process, in tiles, so large images fit in memory; the PNG keeps the source's
metadata. Without `--out` it is written beside the source as `<name>-x<scale>.png`.

Exit status: 0 done; 1 error; 2 bad arguments; 3 no such file; 130 interrupted.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

from app.commands.image import add_engine_arguments

if TYPE_CHECKING:
    from app.core import Core
    from app.images.engine import ImageEngine

EXIT_OK, EXIT_ERROR, EXIT_USAGE, EXIT_NOT_FOUND, EXIT_INTERRUPTED = 0, 1, 2, 3, 130
_TIMEOUT_S = 3600.0


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add `upscale` to a parser's subcommands."""
    upscale = subparsers.add_parser(
        "upscale",
        help="make an image larger with an ESRGAN-family upscaler model",
        description="Upscale an image with a .safetensors upscaler model (Real-ESRGAN, "
        "ESRGAN), tiled, in the image engine's child process.",
    )
    upscale.add_argument("image", metavar="IMAGE", type=Path, help="the image to upscale")
    upscale.add_argument("--model", type=Path, required=True, help="the upscaler .safetensors")
    upscale.add_argument(
        "--scale", type=float, default=0.0, help="how many times larger (default: the model's)"
    )
    upscale.add_argument("--out", type=Path, metavar="FILE", help="the PNG to write")
    upscale.add_argument("--tile", type=int, default=256, help="tile side in source pixels")
    add_engine_arguments(upscale)


def run(
    core: Core,
    args: argparse.Namespace,
    out: TextIO = sys.stdout,
    *,
    err: TextIO | None = None,
    engine: ImageEngine | None = None,
) -> int:
    """Upscale what `args` names; returns the exit status."""
    from app.engines.errors import EngineErrorKind
    from app.engines.protocol import EventKind
    from app.images.engine import ImageEngine, ImageEngineError
    from app.images.messages import ImageUpscaled

    err = sys.stderr if err is None else err
    source: Path = args.image.expanduser().absolute()
    model: Path = args.model.expanduser().absolute()
    for path, what in ((source, "image"), (model, "upscaler")):
        if not path.is_file():
            return _fail(err, f"no {what} at {path}", EXIT_NOT_FOUND)
    if not 0 <= args.scale <= 16 or not 16 <= args.tile <= 4096:
        return _fail(err, "--scale must be 0-16 and --tile 16-4096", EXIT_USAGE)
    scale_name = f"{args.scale:g}" if args.scale else "model"
    target = (args.out or source.with_name(f"{source.stem}-x{scale_name}.png")).absolute()
    if target.suffix.lower() != ".png":
        return _fail(err, f"--out must name a .png file, not {target.name}", EXIT_USAGE)
    own_engine = engine is None
    if engine is None:
        engine = ImageEngine(device=args.device, threads=args.threads)
    try:
        handle = engine.upscale(
            source, model=model, output=target, scale=args.scale, tile=args.tile
        )
        try:
            outcome = handle.wait(_TIMEOUT_S)
        except KeyboardInterrupt:
            handle.cancel()
            return _fail(err, "interrupted", EXIT_INTERRUPTED)
    finally:
        if own_engine:
            engine.stop()
    if outcome.kind is not EventKind.RESULT:
        error = ImageEngineError.from_event(outcome)
        status = {
            EngineErrorKind.BAD_INPUT: EXIT_USAGE,
            EngineErrorKind.PICKLE: EXIT_USAGE,
            EngineErrorKind.NOT_FOUND: EXIT_NOT_FOUND,
        }.get(error.kind, EXIT_ERROR)
        return _fail(err, error.message, status)
    result = outcome.expect(ImageUpscaled)
    if args.json:
        document = {
            "path": str(result.path),
            "width": result.width,
            "height": result.height,
            "model_scale": result.model_scale,
            "architecture": result.architecture,
            "tiles": result.tiles,
            "seconds": result.seconds,
        }
        out.write(json.dumps(document) + "\n")
    else:
        out.write(f"{result.path}\n")
        err.write(
            f"{result.width}x{result.height} with {model.name} ({result.architecture} "
            f"x{result.model_scale}, {result.tiles} tiles) in {result.seconds:.1f} s\n"
        )
    return EXIT_OK


def _fail(err: TextIO, message: str, status: int) -> int:
    err.write(f"modeldeck: {' '.join(message.split())}\n")
    err.flush()
    return status

"""Generation parameters inside PNG files, written and read back.

Each image ModelDeck saves carries two text chunks:
- `modeldeck`: JSON with every parameter (`ImageParams.to_json`, less the model's local path),
  the sampler that ran, the time it took and when it was made; `read_metadata` prefers it;
- `parameters`: the same in the AUTOMATIC1111 text format that most image tools read
  ("prompt\\nNegative prompt: …\\nSteps: 20, Sampler: Euler a, CFG scale: 7, Seed: 1, …").

`read_metadata` also parses a `parameters` chunk written by those other tools, so their
images can be made again here. Pillow is imported when a file is read or written (it comes
with the image runtime), so this module imports cheaply.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from app.images.params import SCHEDULERS, ImageParams, ImageParamsError

if TYPE_CHECKING:
    from PIL.Image import Image

__all__ = [
    "A1111_KEY",
    "METADATA_KEY",
    "ImageMetadata",
    "a1111_parameters",
    "metadata_chunks",
    "parse_a1111_parameters",
    "read_metadata",
    "save_png",
]

METADATA_KEY = "modeldeck"
A1111_KEY = "parameters"
_FORMAT = 1

# "Key: value" pairs of A1111's last line; a value is either JSON-quoted or runs to a comma.
_A1111_PAIR = re.compile(r'\s*(\w[\w \-/]+):\s*("(?:\\.|[^\\"])+"|[^,]*)(?:,|$)')
_SIZE = re.compile(r"^\s*(\d+)\s*x\s*(\d+)\s*$")


@dataclass(frozen=True, kw_only=True)
class ImageMetadata:
    """What an image says about how it was made."""

    params: ImageParams
    source: str = METADATA_KEY  # "modeldeck", or "a1111" for another tool's `parameters`
    sampler: str | None = None  # the scheduler that ran ("Euler a", "PNDM", …)
    seconds: float | None = None  # generation time of this image
    created_at: str | None = None  # ISO 8601, UTC
    fields: Mapping[str, str] = field(default_factory=dict)  # A1111 fields with no parameter


def metadata_chunks(metadata: ImageMetadata) -> dict[str, str]:
    """The PNG text chunks for `metadata`: {"modeldeck": JSON, "parameters": A1111 text}."""
    params = metadata.params.to_json()
    if "model" in params:  # images get shared: where the model lives here is nobody's business
        params["model"].pop("path", None)
    document: dict[str, Any] = {"format": _FORMAT, "params": params}
    if metadata.sampler is not None:
        document["sampler"] = metadata.sampler
    if metadata.seconds is not None:
        document["seconds"] = round(metadata.seconds, 3)
    if metadata.created_at is not None:
        document["created_at"] = metadata.created_at
    return {
        METADATA_KEY: json.dumps(document, ensure_ascii=False, sort_keys=True),
        A1111_KEY: a1111_parameters(metadata.params, sampler=metadata.sampler),
    }


def a1111_parameters(params: ImageParams, *, sampler: str | None = None) -> str:
    """`params` in AUTOMATIC1111's `parameters` text format."""
    lines = [params.prompt]
    if params.negative:
        lines.append(f"Negative prompt: {params.negative}")
    pairs: list[tuple[str, object]] = [
        ("Steps", params.steps),
        ("Sampler", sampler or params.scheduler),
        ("CFG scale", f"{params.guidance:g}"),
        ("Seed", params.seed),
        ("Size", params.size),
    ]
    model = params.model
    if model is not None:
        if model.short_hash:
            pairs.append(("Model hash", model.short_hash))
        pairs.append(("Model", model.name))
    if params.init_image is not None:
        pairs.append(("Denoising strength", f"{params.strength:g}"))
    if params.batch > 1:
        pairs.append(("Batch size", params.batch))
    lines.append(
        ", ".join(f"{key}: {_quote(str(value))}" for key, value in pairs if value is not None)
    )
    return "\n".join(lines)


def parse_a1111_parameters(text: str) -> ImageMetadata:
    """Parse AUTOMATIC1111's `parameters` text (also written by Fooocus, Forge, InvokeAI…).

    Unknown samplers keep the model's default scheduler (the name stays in `sampler`); fields
    without a parameter here ("Clip skip", "VAE", …) are kept in `fields`.

    Raises:
        ImageParamsError: a value is out of range (a size that is not a multiple of 8, …).
    """
    *lines, last = text.strip().split("\n")
    if len(_A1111_PAIR.findall(last)) < 3:
        lines.append(last)
        last = ""
    prompt: list[str] = []
    negative: list[str] = []
    in_negative = False
    for raw in lines:
        line = raw.strip()
        if line.startswith("Negative prompt:"):
            in_negative = True
            line = line[len("Negative prompt:") :].strip()
        (negative if in_negative else prompt).append(line)
    fields = {key.strip(): _unquote(value) for key, value in _A1111_PAIR.findall(last)}

    def take(key: str) -> str | None:
        return fields.pop(key, None)

    values: dict[str, Any] = {"prompt": "\n".join(prompt), "negative": "\n".join(negative)}
    if (steps := take("Steps")) is not None:
        values["steps"] = steps
    if (cfg := take("CFG scale")) is not None:
        values["guidance"] = cfg
    if (seed := take("Seed")) is not None:
        values["seed"] = seed
    if (size := take("Size")) is not None and (match := _SIZE.match(size)):
        values["width"], values["height"] = int(match[1]), int(match[2])
    sampler = take("Sampler")
    if sampler in SCHEDULERS:
        values["scheduler"] = sampler
    if (strength := take("Denoising strength")) is not None:
        values["strength"] = strength  # the source image itself is not named
    model_name = take("Model")
    if model_name is not None:
        values["model"] = {"name": model_name}
    params = ImageParams.from_json(values)
    return ImageMetadata(params=params, source="a1111", sampler=sampler, fields=fields)


def save_png(image: Image, path: Path, metadata: ImageMetadata) -> None:
    """Write `image` as a PNG at `path` with `metadata` in its text chunks."""
    from PIL.PngImagePlugin import PngInfo

    info = PngInfo()
    for key, value in metadata_chunks(metadata).items():
        info.add_text(key, value)
    image.save(path, format="PNG", pnginfo=info)


def read_metadata(path: Path) -> ImageMetadata | None:
    """How the PNG at `path` was made: ModelDeck's chunk, else an A1111 `parameters` chunk;
    None when it has neither (or they cannot be read).

    Raises:
        OSError: the file cannot be opened or is not an image.
    """
    from PIL import Image

    with Image.open(path) as image:
        image.load()  # text chunks after the image data are read with it
        chunks = {str(k): v for k, v in image.info.items() if isinstance(v, str)}
    if METADATA_KEY in chunks:
        try:
            return _from_document(json.loads(chunks[METADATA_KEY]))
        except (ValueError, TypeError):  # ImageParamsError is a ValueError
            pass
    if A1111_KEY in chunks:
        try:
            return parse_a1111_parameters(chunks[A1111_KEY])
        except ImageParamsError:
            return None
    return None


def _from_document(document: Mapping[str, Any]) -> ImageMetadata:
    if not isinstance(document, Mapping) or not isinstance(document.get("params"), Mapping):
        raise ValueError("no parameters")
    seconds = document.get("seconds")
    return ImageMetadata(
        params=ImageParams.from_json(document["params"]),
        sampler=_text_or_none(document.get("sampler")),
        seconds=float(seconds) if isinstance(seconds, int | float) else None,
        created_at=_text_or_none(document.get("created_at")),
    )


def _text_or_none(value: object) -> str | None:
    return value if isinstance(value, str) else None


def _quote(text: str) -> str:
    if "," not in text and "\n" not in text and ":" not in text and '"' not in text:
        return text
    return json.dumps(text, ensure_ascii=False)


def _unquote(text: str) -> str:
    text = text.strip()
    if len(text) >= 2 and text[0] == '"' and text[-1] == '"':
        try:
            value = json.loads(text)
        except ValueError:
            return text
        return value if isinstance(value, str) else text
    return text

"""Generation parameters inside PNG files, written and read back.

Each image ModelDeck saves carries two text chunks:
- `modeldeck`: JSON with every parameter (`ImageParams.to_json`, less the model's local path),
  the sampler that ran, the time it took and when it was made; `read_metadata` prefers it;
- `parameters`: the same in the AUTOMATIC1111 text format that most image tools read
  ("prompt\\nNegative prompt: …\\nSteps: 20, Sampler: Euler a, CFG scale: 7, Seed: 1, …").

`read_metadata` also parses a `parameters` chunk written by those other tools, ComfyUI's and
InvokeAI's chunks, and A1111's EXIF UserComment in JPEG and WebP (`foreign_metadata`), so their
images can be made again here; what does not map is listed in `ImageMetadata.fields`. LoRAs
go into `parameters` as A1111 writes them: `<lora:name:weight>` in the prompt and their hashes
in "Lora hashes"; a hires fix as "Hires upscale", "Hires upscaler" and "Denoising strength".
Pillow is imported when a file is read or written (it comes with the image runtime), so this
module imports cheaply.

A dropped PNG is a stranger's file, read while a window waits, so reading is bounded:
- text chunks are found by walking the chunk list (`png_text_chunks`), never by decoding the
  pixels (a small PNG can inflate to gigabytes), and only the keys read here are kept, each
  at most `MAX_TEXT_CHARS` once inflated (other tools' JSON: `MAX_GRAPH_CHARS`);
- the `parameters` text is parsed in one pass (`_a1111_pairs`): A1111's own regular
  expression takes quadratic time on a long line without a colon (64 kB: 36 s);
- the `modeldeck` JSON goes through `parse_untrusted_json` (size and nesting bounded).
"""

from __future__ import annotations

import json
import math
import re
import struct
import zlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from app.images.foreign_metadata import (
    COMFYUI_PROMPT_KEY,
    COMFYUI_WORKFLOW_KEY,
    INVOKEAI_KEY,
    MAX_GRAPH_CHARS,
    decode_user_comment,
    parse_comfyui_prompt,
    parse_invokeai_metadata,
)
from app.images.loras import LoraWeightError, prompt_loras
from app.images.params import SCHEDULERS, ImageParams, ImageParamsError
from app.untrusted_json import parse_untrusted_json

if TYPE_CHECKING:
    from PIL.Image import Image

__all__ = [
    "A1111_KEY",
    "METADATA_KEY",
    "ImageMetadata",
    "a1111_parameters",
    "metadata_chunks",
    "parse_a1111_parameters",
    "png_text_chunks",
    "read_metadata",
    "save_png",
]

METADATA_KEY = "modeldeck"
A1111_KEY = "parameters"
_FORMAT = 1

# Text chunks longer than this are not read (real parameters are a few kB at most).
MAX_TEXT_CHARS = 16 * 1024
# A prompt longer than this is not restored: the form lays out a 64 kB word in 0.6 s on the
# GUI thread, and CLIP reads 77 tokens (A1111's longest prompts are a few kB).
MAX_PROMPT_CHARS = 8 * 1024
# Pieces of A1111's pattern for one "Key: value" pair of its last line,
#   \s*(\w[\w \-/]+):\s*("(?:\\.|[^\\"])+"|[^,]*)(?:,|$)
# which `_a1111_pairs` applies in one pass (see there). Each piece is linear where it is used.
_SPACES = re.compile(r"\s*")
_WORD = re.compile(r"\w")
_KEY_RUN = re.compile(r"[\w \-/]*")
_QUOTED = re.compile(r'"(?:\\.|[^\\"])+"')
_SIZE = re.compile(r"^\s*(\d{1,6})\s*x\s*(\d{1,6})\s*$")
_MIN_PAIRS = 3  # a last line with fewer "Key: value" pairs is part of the prompt

_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_TEXT_CHUNKS = frozenset({b"tEXt", b"zTXt", b"iTXt"})
_ALL_KEYS = frozenset(
    {METADATA_KEY, A1111_KEY, INVOKEAI_KEY, COMFYUI_PROMPT_KEY, COMFYUI_WORKFLOW_KEY}
)
# Other tools' JSON runs longer than parameters do (a ComfyUI graph: hundreds of kB).
_GRAPH_LIMITS = {
    INVOKEAI_KEY: MAX_GRAPH_CHARS,
    COMFYUI_PROMPT_KEY: MAX_GRAPH_CHARS,
    # Only its presence matters; a large one is left out (absent) by the same limit.
    COMFYUI_WORKFLOW_KEY: MAX_GRAPH_CHARS,
}
_EXIF_IFD = 0x8769  # the Exif sub-IFD, where UserComment lives
_USER_COMMENT = 0x9286
_MAX_CHUNKS = 100_000  # chunks walked; a real PNG has tens (IDAT in 8-64 kB pieces)


@dataclass(frozen=True, kw_only=True)
class ImageMetadata:
    """What an image says about how it was made."""

    params: ImageParams
    # "modeldeck"; "a1111" (another tool's `parameters`), "invokeai", "comfyui"
    source: str = METADATA_KEY
    sampler: str | None = None  # the scheduler that ran ("Euler a", "PNDM", …)
    seconds: float | None = None  # generation time of this image
    created_at: str | None = None  # ISO 8601, UTC
    # What the other tool recorded that has no parameter here (A1111's "Clip skip", …)
    fields: Mapping[str, str] = field(default_factory=dict)


def metadata_chunks(metadata: ImageMetadata) -> dict[str, str]:
    """The PNG text chunks for `metadata`: {"modeldeck": JSON, "parameters": A1111 text}."""
    params = metadata.params.to_json()
    if "model" in params:  # images get shared: where the model lives here is nobody's business
        params["model"].pop("path", None)
    for lora in params.get("loras", ()):
        lora.pop("path", None)
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
    # A1111 keeps its LoRAs in the prompt as <lora:name:weight>; so must we, to be read there.
    tags = "".join(f" <lora:{lora.name}:{lora.weight:g}>" for lora in params.loras)
    lines = [params.prompt + tags]
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
    hashes = [f"{lora.name}: {lora.short_hash}" for lora in params.loras if lora.short_hash]
    if hashes:
        pairs.append(("Lora hashes", ", ".join(hashes)))
    if params.init_image is not None:
        pairs.append(("Denoising strength", f"{params.strength:g}"))
    if params.hires_scale:
        # A1111 writes the hires pass's strength as "Denoising strength" (txt2img has no other).
        strength_key = "Hires strength" if params.init_image is not None else "Denoising strength"
        upscaler = Path(params.upscaler).stem if params.upscaler else "Lanczos"
        pairs += [
            (strength_key, f"{params.hires_strength:g}"),
            ("Hires upscale", f"{params.hires_scale:g}"),
            ("Hires resize", f"{params.hires_width}x{params.hires_height}"),
            ("Hires upscaler", upscaler),
        ]
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
    if len(text) > MAX_TEXT_CHARS:
        raise ImageParamsError(
            f"the parameters text is {len(text)} characters, more than {MAX_TEXT_CHARS}",
            field="prompt",
        )
    *lines, last = text.strip().split("\n")
    pairs = _a1111_pairs(last)
    if len(pairs) < _MIN_PAIRS:
        lines.append(last)
        pairs = []
    prompt: list[str] = []
    negative: list[str] = []
    in_negative = False
    for raw in lines:
        line = raw.strip()
        if line.startswith("Negative prompt:"):
            in_negative = True
            line = line[len("Negative prompt:") :].strip()
        (negative if in_negative else prompt).append(line)
    fields = {key.strip(): _unquote(value) for key, value in pairs}

    def take(key: str) -> str | None:
        return fields.pop(key, None)

    try:
        clean_prompt, tags = prompt_loras("\n".join(prompt))
    except LoraWeightError as error:
        raise ImageParamsError(str(error), field="loras") from None
    # The hashes belong to the prompt's <lora:…> tags; without tags they stay a plain field.
    hashes = _lora_hashes(fields.pop("Lora hashes", "")) if tags else {}
    values: dict[str, Any] = {"prompt": clean_prompt, "negative": "\n".join(negative)}
    if tags:
        values["loras"] = [
            {"name": tag.name, "weight": tag.weight, "short_hash": hashes.get(tag.name)}
            for tag in tags
        ]
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
    _take_strengths(fields, values)
    model_name = take("Model")
    if model_name is not None:
        values["model"] = {"name": model_name}
    params = _checked_prompts(ImageParams.from_json(values))
    return ImageMetadata(params=params, source="a1111", sampler=sampler, fields=fields)


def _take_strengths(fields: dict[str, str], values: dict[str, Any]) -> None:
    """The hires fix's fields, and the denoising strength (the hires pass's when there is
    one, else image-to-image's: the source image itself is not named)."""
    hires = fields.pop("Hires upscale", None)
    if hires is None:
        if (strength := fields.pop("Denoising strength", None)) is not None:
            values["strength"] = strength
        return
    values["hires_scale"] = hires
    fields.pop("Hires resize", None)  # follows from the size and the scale
    strength = fields.pop("Hires strength", None) or fields.pop("Denoising strength", None)
    if strength is not None:
        values["hires_strength"] = strength
    if fields.get("Hires upscaler") == "Lanczos":  # the default: nothing to restore
        fields.pop("Hires upscaler")


def _lora_hashes(text: str) -> dict[str, str]:
    """A1111's "Lora hashes" field: "name: 0123456789ab, other: …" → {name: hash}."""
    hashes: dict[str, str] = {}
    for item in text.split(","):
        name, sep, digest = item.rpartition(":")
        if sep and name.strip() and digest.strip():
            hashes[name.strip()] = digest.strip()
    return hashes


def save_png(image: Image, path: Path, metadata: ImageMetadata) -> None:
    """Write `image` as a PNG at `path` with `metadata` in its text chunks."""
    from PIL.PngImagePlugin import PngInfo

    info = PngInfo()
    for key, value in metadata_chunks(metadata).items():
        info.add_text(key, value)
    image.save(path, format="PNG", pnginfo=info)


def read_metadata(path: Path) -> ImageMetadata | None:
    """How the image at `path` was made. From a PNG: ModelDeck's chunk, else A1111's
    `parameters`, else InvokeAI's `invokeai_metadata`, else ComfyUI's `prompt` graph; from a
    JPEG or WebP: A1111's `parameters` in the EXIF UserComment. None when it has none of
    these (or they cannot be read). What another tool recorded that ModelDeck has no
    parameter for is listed in the result's `fields`.

    Raises:
        OSError: the file cannot be opened or is not an image.
    """
    chunks = png_text_chunks(path, keys=_ALL_KEYS, limits=_GRAPH_LIMITS)
    if chunks is None:  # not a PNG: Pillow says whether it is an image at all (pixels unread)
        return _exif_metadata(path)
    if METADATA_KEY in chunks:
        try:
            document = parse_untrusted_json(
                chunks[METADATA_KEY], max_bytes=MAX_TEXT_CHARS, what="the modeldeck chunk"
            )
            return _from_document(document)
        except (ValueError, TypeError):  # UntrustedJsonError, ImageParamsError are ValueErrors
            pass
    if A1111_KEY in chunks:
        try:
            return parse_a1111_parameters(chunks[A1111_KEY])
        except ImageParamsError:
            pass
    for key, source, parse in (
        (INVOKEAI_KEY, "invokeai", parse_invokeai_metadata),
        (COMFYUI_PROMPT_KEY, "comfyui", parse_comfyui_prompt),
    ):
        if key not in chunks:
            continue
        try:
            params, left, sampler = parse(chunks[key])
            params = _checked_prompts(params)
        except ImageParamsError:
            continue
        if source == "comfyui" and COMFYUI_WORKFLOW_KEY in chunks:
            left["Workflow"] = "the editor's graph is kept in the file, not restored"
        return ImageMetadata(params=params, source=source, sampler=sampler, fields=left)
    return None


def _exif_metadata(path: Path) -> ImageMetadata | None:
    """A1111's `parameters` from a JPEG's or WebP's EXIF UserComment (pixels unread)."""
    from PIL import Image

    with Image.open(path) as image:
        try:
            comment = image.getexif().get_ifd(_EXIF_IFD).get(_USER_COMMENT)
        except (ValueError, SyntaxError, struct.error, KeyError):  # damaged EXIF
            return None
    if not isinstance(comment, bytes | str) or len(comment) > 4 * MAX_TEXT_CHARS:
        return None
    text = decode_user_comment(comment)
    if not text or not text.strip():
        return None
    try:
        return parse_a1111_parameters(text)
    except ImageParamsError:
        return None


def png_text_chunks(
    path: Path, *, keys: frozenset[str], limits: Mapping[str, int] | None = None
) -> dict[str, str] | None:
    """The text chunks named in `keys` of the PNG at `path`; None if it is not a PNG.

    Walks the chunk list and seeks past everything else, pixels included, so the time is
    that of reading a few hundred bytes per chunk however large the image claims to be. A
    chunk is decoded as Pillow does (tEXt and zTXt as Latin-1, iTXt as UTF-8); one longer
    than its key's limit in `limits` (inflated; default `MAX_TEXT_CHARS`), damaged or cut
    short is left out. The first chunk of each key wins.

    Raises:
        OSError: the file cannot be read.
    """
    found: dict[str, str] = {}
    limits = limits or {}
    most = max([MAX_TEXT_CHARS, *(limits.get(key, MAX_TEXT_CHARS) for key in keys)])
    with open(path, "rb") as file:
        if file.read(len(_PNG_SIGNATURE)) != _PNG_SIGNATURE:
            return None
        for _ in range(_MAX_CHUNKS):
            header = file.read(8)
            if len(header) < 8:
                break
            length, kind = struct.unpack(">I4s", header)
            if kind == b"IEND":
                break
            if kind in _TEXT_CHUNKS and length <= 4 * most:
                data = file.read(length)
                if len(data) < length:
                    break
                file.seek(4, 1)  # the CRC
                decoded = _text_chunk(kind, data, keys, most)
                if (
                    decoded is not None
                    and decoded[0] not in found
                    and len(decoded[1]) <= limits.get(decoded[0], MAX_TEXT_CHARS)
                ):
                    found[decoded[0]] = decoded[1]
            else:
                file.seek(length + 4, 1)
    return found


def _text_chunk(
    kind: bytes, data: bytes, keys: frozenset[str], most: int
) -> tuple[str, str] | None:
    """(keyword, text) of one tEXt/zTXt/iTXt chunk whose keyword is wanted; else None."""
    keyword_bytes, separator, rest = data.partition(b"\0")
    keyword = keyword_bytes.decode("latin-1")
    if not separator or keyword not in keys:
        return None
    encoding = "latin-1"
    compressed = kind == b"zTXt"
    if kind == b"zTXt":
        rest = rest[1:]  # the compression method: 0 (zlib) is the only one
    elif kind == b"iTXt":
        # flag, method, language tag \0, translated keyword \0, then the UTF-8 text
        if len(rest) < 2:
            return None
        compressed = rest[0] == 1
        _language, _, after_language = rest[2:].partition(b"\0")
        _translated, _, rest = after_language.partition(b"\0")
        encoding = "utf-8"
    if compressed:
        inflated = _inflate(rest, limit=4 * most)
        if inflated is None:
            return None
        rest = inflated
    try:
        text = rest.decode(encoding)
    except UnicodeDecodeError:
        return None
    return (keyword, text) if len(text) <= most else None


def _inflate(data: bytes, *, limit: int) -> bytes | None:
    """`data` decompressed, or None when it is damaged or inflates past `limit` bytes."""
    inflater = zlib.decompressobj()
    try:
        inflated = inflater.decompress(data, limit + 1)
    except zlib.error:
        return None
    return inflated if len(inflated) <= limit else None


def _from_document(document: object) -> ImageMetadata:
    if not isinstance(document, Mapping) or not isinstance(document.get("params"), Mapping):
        raise ValueError("no parameters")
    return ImageMetadata(
        params=_checked_prompts(ImageParams.from_json(document["params"])),
        sampler=_text_or_none(document.get("sampler")),
        seconds=_seconds_or_none(document.get("seconds")),
        created_at=_text_or_none(document.get("created_at")),
    )


def _a1111_pairs(line: str) -> list[tuple[str, str]]:
    """The (key, raw value) pairs A1111's pattern finds in `line`, in time linear in it.

    `re.findall` with that pattern retries at every character after a failed match, and each
    try runs to the end of a long key-like run: quadratic. Here a failed try skips every
    start that must fail the same way: a run of spaces leads to the same next character, and
    every start inside a run of key characters meets the same character after it, and no
    key starts before a word character.
    """
    pairs: list[tuple[str, str]] = []
    position, end = 0, len(line)
    while position < end:
        start = _SPACES.match(line, position).end()  # type: ignore[union-attr]
        if start >= end:
            break
        if not _WORD.match(line, start):  # no key starts before the next word character
            word = _WORD.search(line, start)
            position = end if word is None else word.start()
            continue
        run_end = _KEY_RUN.match(line, start + 1).end()  # type: ignore[union-attr]
        if run_end == start + 1 or run_end >= end or line[run_end] != ":":
            position = max(run_end, start + 1)
            continue
        value_start = _SPACES.match(line, run_end + 1).end()  # type: ignore[union-attr]
        quoted = _QUOTED.match(line, value_start)
        if quoted is not None and (quoted.end() == end or line[quoted.end()] == ","):
            value_end = quoted.end()
        else:
            comma = line.find(",", value_start)
            value_end = end if comma < 0 else comma
        pairs.append((line[start:run_end], line[value_start:value_end]))
        position = value_end + 1
    return pairs


def _checked_prompts(params: ImageParams) -> ImageParams:
    """`params`, if its prompts are short enough to show (`MAX_PROMPT_CHARS`).

    Raises:
        ImageParamsError: the prompt or the negative prompt is longer.
    """
    for name, text in (("prompt", params.prompt), ("negative", params.negative)):
        if len(text) > MAX_PROMPT_CHARS:
            raise ImageParamsError(
                f"the {name} is {len(text)} characters, more than {MAX_PROMPT_CHARS}", field=name
            )
    return params


def _seconds_or_none(value: object) -> float | None:
    """A duration from the document; None unless a finite, non-negative number."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    try:
        seconds = float(value)
    except OverflowError:  # an integer of hundreds of digits
        return None
    return seconds if math.isfinite(seconds) and seconds >= 0 else None


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

"""What a LoRA's safetensors header says: its key layout, the model family it fits, its rank
and the trigger words its trainer recorded — from the tensor names, shapes and metadata only.

Two layouts carry nearly every LoRA in circulation:
- kohya / AUTOMATIC1111: `lora_unet_<module path with _>.lora_down.weight` / `.lora_up.weight`
  / `.alpha` (text encoders: `lora_te_`, SDXL's two: `lora_te1_`, `lora_te2_`);
- diffusers / PEFT: `unet.<module path>.lora_A.weight` / `.lora_B.weight` (older diffusers:
  `….lora.down.weight` / `….lora.up.weight`; Flux and SD 3: `transformer.…`).

The family comes from the keys first (SDXL's second text encoder, Flux's double blocks), then
from the width of the cross-attention's key projection (the text context: 768 SD 1.x, 1024
SD 2.x, 2048 SDXL), then from what kohya's or the model spec's metadata claims. A LoRA whose
family none of these tell keeps its context width, so a loader can still refuse a mismatch.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum

from app.untrusted_json import UntrustedJsonError, parse_untrusted_json

__all__ = ["LoraHeader", "LoraLayout", "lora_header"]

# Trigger words kept from `ss_tag_frequency` (the tags the training captions used most).
MAX_TRIGGER_WORDS = 8
_MAX_TAG_FREQUENCY_BYTES = 1024 * 1024
_MAX_WORD_CHARS = 100


class LoraLayout(StrEnum):
    """How a LoRA names its tensors."""

    KOHYA = "kohya"  # lora_unet_…lora_down.weight, as A1111 and kohya's scripts write
    PEFT = "diffusers"  # unet.….lora_A.weight, as diffusers and PEFT write


@dataclass(frozen=True, kw_only=True)
class LoraHeader:
    """A LoRA as its header describes it."""

    layout: LoraLayout
    family: str | None  # "SD 1.x", "SD 2.x", "SDXL", "SD 3", "Flux"; None if untold
    context_width: int | None  # the text context its cross-attention expects (768 for SD 1.x)
    rank: int | None  # of the first down projection
    trigger_words: tuple[str, ...] = ()  # from its metadata, most used first
    text_encoder: bool = False  # it also adapts the text encoder(s)


_KOHYA = re.compile(r"^lora_(?:unet|te\d?|transformer)_.+\.(?:lora_down|lora_up)\.weight$")
_PEFT = re.compile(
    r"^(?:unet|text_encoder(?:_2)?|transformer)\..+"
    r"\.(?:lora_A(?:\.[\w-]+)?\.weight|lora_B(?:\.[\w-]+)?\.weight|lora\.(?:down|up)\.weight)$"
)
_DOWN = re.compile(r"(?:\.lora_down\.weight|\.lora_A(?:\.[\w-]+)?\.weight|\.lora\.down\.weight)$")
# The cross-attention's key projection, whose input is the text context.
_CROSS_KEY = re.compile(r"attn2[._]to_k(?:[._]lora)?[._](?:lora_down|lora_A|down)")
_CONTEXT_FAMILIES = {768: "SD 1.x", 1024: "SD 2.x", 2048: "SDXL"}
# kohya's `ss_base_model_version` and the model spec's `modelspec.architecture`, by prefix.
_METADATA_FAMILIES = (
    ("sdxl", "SDXL"),
    ("stable-diffusion-xl", "SDXL"),
    ("sd_v2", "SD 2.x"),
    ("stable-diffusion-v2", "SD 2.x"),
    ("sd_v1", "SD 1.x"),
    ("stable-diffusion-v1", "SD 1.x"),
    ("sd3", "SD 3"),
    ("stable-diffusion-v3", "SD 3"),
    ("flux", "Flux"),
)


def lora_header(names: list[str], header: Mapping[str, object]) -> LoraHeader | None:
    """The LoRA that a safetensors header describes; None when its tensors are not a LoRA's.

    Args:
        names: the tensor names (the header's keys less `__metadata__`).
        header: the parsed header (shapes are read from it; its `__metadata__`, if any, is
            a stranger's {str: str}).
    """
    kohya = sum(1 for name in names if _KOHYA.match(name))
    peft = sum(1 for name in names if _PEFT.match(name))
    if not kohya and not peft:
        return None
    layout = LoraLayout.KOHYA if kohya >= peft else LoraLayout.PEFT
    rank: int | None = None
    context_width: int | None = None
    for name in names:
        if not _DOWN.search(name):
            continue
        shape = _shape(header.get(name))
        if shape is None:
            continue
        if rank is None:
            rank = shape[0]
        if context_width is None and _CROSS_KEY.search(name):
            context_width = shape[1]
    metadata = header.get("__metadata__")
    metadata = metadata if isinstance(metadata, Mapping) else {}
    return LoraHeader(
        layout=layout,
        family=_key_family(names)
        or _CONTEXT_FAMILIES.get(context_width or 0)
        or _metadata_family(metadata),
        context_width=context_width,
        rank=rank,
        trigger_words=_trigger_words(metadata),
        text_encoder=any(name.startswith(("lora_te", "text_encoder")) for name in names),
    )


def _shape(entry: object) -> tuple[int, int] | None:
    if not isinstance(entry, Mapping):
        return None
    shape = entry.get("shape")
    if isinstance(shape, list) and len(shape) >= 2 and all(isinstance(d, int) for d in shape[:2]):
        return int(shape[0]), int(shape[1])
    return None


def _key_family(names: list[str]) -> str | None:
    for name in names:
        if name.startswith(("lora_te2_", "lora_te1_", "text_encoder_2.")):
            return "SDXL"
        if "double_blocks" in name or "single_transformer_blocks" in name:
            return "Flux"
        if "joint_blocks" in name:
            return "SD 3"
    return None


def _metadata_family(metadata: Mapping[object, object]) -> str | None:
    for key in ("ss_base_model_version", "modelspec.architecture"):
        value = metadata.get(key)
        if not isinstance(value, str):
            continue
        claim = value.strip().lower()
        for prefix, family in _METADATA_FAMILIES:
            if claim.startswith(prefix):
                return family
    return None


def _trigger_words(metadata: Mapping[object, object]) -> tuple[str, ...]:
    """The model spec's trigger phrase, else the tags kohya's training captions used most."""
    phrase = metadata.get("modelspec.trigger_phrase")
    if isinstance(phrase, str) and phrase.strip():
        return _words(phrase.split(","))
    frequency = metadata.get("ss_tag_frequency")
    if not isinstance(frequency, str):
        return ()
    try:
        document = parse_untrusted_json(
            frequency, max_bytes=_MAX_TAG_FREQUENCY_BYTES, what="ss_tag_frequency"
        )
    except UntrustedJsonError:
        return ()
    counts: dict[str, int] = {}
    if isinstance(document, Mapping):
        for tags in document.values():
            if not isinstance(tags, Mapping):
                continue
            for tag, count in tags.items():
                if isinstance(tag, str) and isinstance(count, int) and not isinstance(count, bool):
                    counts[tag.strip()] = counts.get(tag.strip(), 0) + count
    ranked = sorted(counts, key=lambda tag: (-counts[tag], tag))
    return _words(ranked)


def _words(candidates: list[str]) -> tuple[str, ...]:
    words: list[str] = []
    for candidate in candidates:
        word = " ".join(candidate.split())
        if word and len(word) <= _MAX_WORD_CHARS and word not in words:
            words.append(word)
        if len(words) >= MAX_TRIGGER_WORDS:
            break
    return tuple(words)

"""LoRAs in a generation: `LoraRef` (which file, at what weight) and A1111's prompt syntax.

A person stacks LoRAs on the Images page, with `--lora FILE_OR_NAME[:WEIGHT]`, or by writing
`<lora:name:0.8>` in the prompt as AUTOMATIC1111 does; `prompt_loras` takes those tags out of
the prompt (the text encoder should not read them) and says what they asked for.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

from app.errors import AppError

__all__ = [
    "MAX_LORAS",
    "MAX_LORA_WEIGHT",
    "LoraRef",
    "LoraWeightError",
    "PromptLora",
    "parse_lora_option",
    "prompt_loras",
]

MAX_LORAS = 16  # stacked in one generation
MAX_LORA_WEIGHT = 10.0  # A1111 accepts any number; past ±10 the image is noise
# <lora:name> or <lora:name:weight> (A1111 also allows a third, text-encoder weight: ignored).
_GAPS = re.compile(r"[ \t]{2,}")  # where a tag was taken out
_EMPTY_ITEMS = re.compile(r",(?:[ \t]*,)+")  # "a, <lora:x>, b" leaves "a, , b"
_TAG = re.compile(r"<lora:([^:<>\n]{1,200})(?::([^:<>\n]{0,40}))?(?::[^<>\n]{0,40})?>")


class LoraWeightError(AppError, ValueError):
    """A LoRA weight is not a number, or out of range."""


@dataclass(frozen=True, kw_only=True)
class LoraRef:
    """One LoRA of a generation.

    `name` is what prompts and A1111's metadata call it (the file's stem); `short_hash` is
    the hash A1111 writes in "Lora hashes" (the first 12 hex digits of the sha256 of the
    file's tensor data, which is also how Civitai finds it), filled in by the engine.
    """

    name: str
    path: str | None = None
    weight: float = 1.0
    short_hash: str | None = None
    family: str | None = None  # the family its header claims ("SD 1.x"…)

    def __post_init__(self) -> None:
        check_weight(self.weight, self.name)

    def to_json(self) -> dict[str, Any]:
        return {key: value for key, value in asdict(self).items() if value is not None}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> LoraRef:
        """A LoRA from `to_json` data.

        Raises:
            LoraWeightError: its weight is not a number in range.
        """

        def text(key: str) -> str | None:
            value = data.get(key)
            return str(value) if value is not None else None

        weight = data.get("weight", 1.0)
        if isinstance(weight, bool) or not isinstance(weight, int | float):
            raise LoraWeightError(f"LoRA weight must be a number, not {weight!r}")
        return cls(
            name=str(data.get("name") or "lora"),
            path=text("path"),
            weight=float(weight),
            short_hash=text("short_hash"),
            family=text("family"),
        )


@dataclass(frozen=True)
class PromptLora:
    """A `<lora:name:weight>` tag of a prompt."""

    name: str
    weight: float


def check_weight(weight: object, name: str) -> None:
    """Raises LoraWeightError unless `weight` is a finite number within ±`MAX_LORA_WEIGHT`."""
    if isinstance(weight, bool) or not isinstance(weight, int | float) or not math.isfinite(weight):
        raise LoraWeightError(f"the weight of LoRA {name!r} must be a number, not {weight!r}")
    if abs(weight) > MAX_LORA_WEIGHT:
        raise LoraWeightError(
            f"the weight of LoRA {name!r} must be between -{MAX_LORA_WEIGHT:g} and "
            f"{MAX_LORA_WEIGHT:g}, not {weight:g}"
        )


def prompt_loras(prompt: str) -> tuple[str, tuple[PromptLora, ...]]:
    """The prompt without its `<lora:name:weight>` tags, and the tags (weight 1 when absent).

    Raises:
        LoraWeightError: a tag's weight is not a number in range.
    """
    found: list[PromptLora] = []

    def take(match: re.Match[str]) -> str:
        name = match[1].strip()
        found.append(PromptLora(name, _weight(match[2], name)))
        return ""

    cleaned = _TAG.sub(take, prompt)
    if not found:
        return prompt, ()
    cleaned = _GAPS.sub(" ", _EMPTY_ITEMS.sub(",", cleaned))
    return cleaned.strip(" \t,"), tuple(found)


def parse_lora_option(text: str) -> PromptLora:
    """`FILE_OR_NAME[:WEIGHT]`, as `--lora` takes it (a Windows drive letter is no weight).

    Raises:
        LoraWeightError: the weight is not a number in range, or nothing is named.
    """
    head, sep, tail = text.rpartition(":")
    if sep and head and not (len(head) == 1 and tail.startswith(("\\", "/"))):
        try:
            weight = float(tail)
        except ValueError:
            return PromptLora(text, 1.0)  # a colon inside a path
        check_weight(weight, head)
        return PromptLora(head, weight)
    if not text.strip():
        raise LoraWeightError("--lora needs a file or a name")
    return PromptLora(text, 1.0)


def _weight(text: str | None, name: str) -> float:
    if text is None or not text.strip():
        return 1.0
    try:
        weight = float(text)
    except ValueError:
        raise LoraWeightError(f"the weight of LoRA {name!r} is not a number: {text!r}") from None
    check_weight(weight, name)
    return weight

"""Which vision projector (mmproj GGUF) goes with a GGUF model, from names alone.

A vision model on the Hub ships as a language model plus one or more projector files in the
same repository ("mmproj-F16.gguf", "mmproj-model-f32.gguf", "mmproj-Q8_0.gguf"). The one to
load is the projector in the model's own folder, else anywhere in the repository; among
several, the one of the model's precision, else the usual F16, then BF16, Q8_0, F32. The
download plan and the Library both ask here, so a model downloaded is the model found.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import TypeVar

from app.hub.repo_files import GgufModel, parse_quantization

# Preference when the model's precision is not offered: F16 is what most repos ship and what
# llama.cpp's converter writes by default; a quantized projector loses the most.
_PROJECTOR_PRECISIONS = ("F16", "BF16", "Q8_0", "F32")

T = TypeVar("T")


def rank_projectors(model_quantization: str | None, projectors: Sequence[tuple[T, str]]) -> list[T]:
    """`projectors` (item, file name) best first for a model of `model_quantization`.

    The projector of the model's own precision first ("Q8_0" for a Q8_0 model), then F16,
    BF16, Q8_0, F32, then the rest by name.
    """
    wanted = (model_quantization or "").upper().removeprefix("UD-")

    def order(entry: tuple[T, str]) -> tuple[int, int, str]:
        quantization = parse_quantization(entry[1]) or ""
        preference = (
            _PROJECTOR_PRECISIONS.index(quantization)
            if quantization in _PROJECTOR_PRECISIONS
            else len(_PROJECTOR_PRECISIONS)
        )
        return (0 if wanted and quantization == wanted else 1, preference, entry[1].lower())

    return [item for item, _ in sorted(projectors, key=order)]


def matching_projector(model: GgufModel, models: Iterable[GgufModel]) -> GgufModel | None:
    """The projector among a repository's `models` that goes with `model`; None for a text
    model (a repository without projectors) or when `model` is itself a projector."""
    if model.is_projector:
        return None
    projectors = [m for m in models if m.is_projector and m.is_complete]
    folder = _folder(model.path)
    beside = [p for p in projectors if _folder(p.path) == folder]
    candidates = beside or projectors
    ranked = rank_projectors(model.quantization, [(p, p.path) for p in candidates])
    return ranked[0] if ranked else None


def _folder(path: str) -> str:
    return path.rpartition("/")[0]

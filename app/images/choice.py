"""Which diffusion model a person means: a path, a library name or key, or a repo id.

`modeldeck image MODEL` and the Images page's model picker end here, so they pick the same
files the same way.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

from app.errors import AppError
from app.images.loras import LoraRef, LoraWeightError, PromptLora, prompt_loras
from app.images.params import ImageParams, ModelRef
from app.library.catalog import LibraryEntry
from app.library.choice import ChoiceMiss, choose_entry, list_options
from app.library.library import Library
from app.library.sniff import ModelKind

__all__ = [
    "DIFFUSION_KINDS",
    "ImageModelChoiceError",
    "choose_diffusion_model",
    "choose_lora",
    "model_ref",
    "resolve_loras",
]

DIFFUSION_KINDS = frozenset({ModelKind.DIFFUSERS_PIPELINE, ModelKind.DIFFUSION_SINGLE_FILE})


class ImageModelChoiceError(AppError, LookupError):
    """No usable diffusion model matches what was asked for (or several do)."""


def choose_diffusion_model(query: str, library: Library) -> ModelRef:
    """Resolve `query` to one diffusion model.

    A path (a diffusers folder or a .safetensors file) is used as it is — the image engine
    says what is wrong with it, if anything. Otherwise `query` is a library entry key, a name
    or a repo id in the HF cache (the library scans on first use: blocking).

    Raises:
        ImageModelChoiceError: nothing matches, the match is not a diffusion model, or
            several do (the message lists them).
    """
    path = Path(query).expanduser()
    if path.exists():
        return ModelRef(name=path.stem if path.is_file() else path.name, path=str(path))

    def none_left(miss: ChoiceMiss) -> ImageModelChoiceError:
        if kinds := miss.other_kinds:
            return ImageModelChoiceError(
                f"{query!r} is a {', '.join(kind.value for kind in kinds)}, not a diffusion model.",
                hint="Image generation needs a diffusers folder or an SD .safetensors file.",
            )
        missing = " (its drive or folder is not there now)" if miss.absent else ""
        return ImageModelChoiceError(
            f"No diffusion model matches {query!r} on this machine{missing}.",
            hint="See `modeldeck list`, or download one with `modeldeck pull`.",
        )

    def several_left(present: Sequence[LibraryEntry]) -> ImageModelChoiceError:
        options = list_options(present, lambda entry: f"{entry.name} ({entry.key})")
        return ImageModelChoiceError(
            f"{query!r} matches {len(present)} models: {options}.",
            hint="Give the entry key or the path.",
        )

    entry = choose_entry(
        library,
        query,
        kinds=DIFFUSION_KINDS,
        none_left=none_left,
        several_left=several_left,
    )
    return model_ref(entry)


def model_ref(entry: LibraryEntry) -> ModelRef:
    """The `ModelRef` of a library entry, loading from its first copy present on disk."""
    location = entry.usable_location
    if location is None:
        raise ImageModelChoiceError(
            f"No copy of {entry.name} is on disk now.",
            hint="Plug in the drive or folder that holds it.",
        )
    family = entry.architecture if entry.kind is ModelKind.DIFFUSION_SINGLE_FILE else None
    return ModelRef(
        name=entry.name,
        path=str(location.path),
        repo_id=location.repo_id,
        revision=location.revision,
        sha256=entry.sha256,
        family=family,
    )


def choose_lora(query: str, library: Library, *, weight: float = 1.0) -> LoraRef:
    """Resolve `query` (a .safetensors path, or a library LoRA's name or key) to a LoRA.

    A path is used as it is — the image engine says whether it is a LoRA and fits.

    Raises:
        ImageModelChoiceError: no LoRA matches, or several do.
    """
    path = Path(query).expanduser()
    if path.is_file():
        return LoraRef(name=path.stem, path=str(path.absolute()), weight=weight)

    def none_left(miss: ChoiceMiss) -> ImageModelChoiceError:
        if kinds := miss.other_kinds:
            return ImageModelChoiceError(
                f"{query!r} is a {', '.join(kind.value for kind in kinds)}, not a LoRA."
            )
        return ImageModelChoiceError(
            f"No LoRA matches {query!r} on this machine.",
            hint="Give the .safetensors file's path, or add its folder to the library.",
        )

    def several_left(present: Sequence[LibraryEntry]) -> ImageModelChoiceError:
        options = list_options(present, lambda entry: f"{entry.name} ({entry.key})")
        return ImageModelChoiceError(
            f"{query!r} matches {len(present)} LoRAs: {options}.", hint="Give the path."
        )

    entry = choose_entry(
        library,
        query,
        kinds=frozenset({ModelKind.LORA}),
        none_left=none_left,
        several_left=several_left,
    )
    location = entry.usable_location
    if location is None:  # choose_entry keeps present entries; a drive can go meanwhile
        raise ImageModelChoiceError(f"No copy of {entry.name} is on disk now.")
    return LoraRef(
        name=Path(location.path).stem,
        path=str(location.path),
        weight=weight,
        family=entry.architecture,
    )


def resolve_loras(
    params: ImageParams, library: Library, extra: Sequence[PromptLora] = ()
) -> ImageParams:
    """`params` with every LoRA it asks for found on disk: its own (restored from an image,
    they may carry only a name), the prompt's `<lora:name:weight>` tags (taken out of the
    prompt), then `extra` (`--lora` options). A LoRA asked for twice keeps the last weight.

    Raises:
        ImageModelChoiceError: a LoRA is not on this machine, or a weight is out of range.
    """
    try:
        prompt, tags = prompt_loras(params.prompt)
    except LoraWeightError as error:
        raise ImageModelChoiceError(str(error)) from None
    chosen: dict[str, LoraRef] = {}
    for lora in params.loras:
        found = lora if lora.path else choose_lora(lora.name, library, weight=lora.weight)
        chosen[found.path or found.name] = found
    for tag in (*tags, *extra):
        found = choose_lora(tag.name, library, weight=tag.weight)
        chosen.pop(found.path or found.name, None)
        chosen[found.path or found.name] = found
    return replace(params, prompt=prompt, loras=tuple(chosen.values()))

"""What one image generation asks for: `ImageParams`, checked when it is made.

The same dataclass travels to the image engine (as JSON-ready data), is written into each
PNG and is read back from it, so an image can be made again exactly: the seed is always
resolved before generating (`with_seed`) and recorded.
"""

from __future__ import annotations

import math
import secrets
from collections.abc import Mapping
from dataclasses import asdict, dataclass, replace
from typing import Any

from app.errors import AppError
from app.images.loras import MAX_LORAS, LoraRef, LoraWeightError

__all__ = [
    "DEFAULT_SCHEDULER",
    "FAMILY_SIZES",
    "MAX_SEED",
    "SCHEDULERS",
    "ImageParams",
    "ImageParamsError",
    "ModelRef",
    "SizePreset",
    "default_size",
    "size_presets",
]

DEFAULT_SCHEDULER = "default"  # the model's own scheduler
SCHEDULERS: tuple[str, ...] = (DEFAULT_SCHEDULER, "Euler", "Euler a", "DPM++ 2M", "DDIM")
MAX_SEED = 2**32 - 1  # the range A1111 and ComfyUI use, so seeds carry over
MAX_STEPS = 500
MAX_BATCH = 64
MAX_GUIDANCE = 50.0
MIN_SIZE = 64
MAX_SIZE = 4096
SIZE_MULTIPLE = 8  # the VAE halves the image 3 times; other sizes fail inside the UNet
MIN_HIRES_SCALE = 1.0
MAX_HIRES_SCALE = 4.0


class ImageParamsError(AppError, ValueError):
    """A generation parameter is out of range (a size that is not a multiple of 8, …)."""

    def __init__(self, message: str, *, field: str, hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.field = field


@dataclass(frozen=True, kw_only=True)
class ModelRef:
    """Which model made an image: enough to find it again and to name it in metadata."""

    name: str
    path: str | None = None  # where it was loaded from on this machine
    repo_id: str | None = None  # the HF repository, when it came from one
    revision: str | None = None  # its commit
    sha256: str | None = None  # a single file's sha256, when known
    family: str | None = None  # "SD 1.x", "SD 2.x", "SDXL", …

    @property
    def short_hash(self) -> str | None:
        """The 10-character hash A1111 writes as "Model hash"."""
        return self.sha256[:10] if self.sha256 else None

    def to_json(self) -> dict[str, Any]:
        return {key: value for key, value in asdict(self).items() if value is not None}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ModelRef:
        def text(key: str) -> str | None:
            value = data.get(key)
            return str(value) if value is not None else None

        return cls(
            name=str(data.get("name") or "unknown"),
            path=text("path"),
            repo_id=text("repo_id"),
            revision=text("revision"),
            sha256=text("sha256"),
            family=text("family"),
        )


@dataclass(frozen=True, kw_only=True)
class ImageParams:
    """The parameters of one generation (a batch of `batch` images, seeds `seed`, `seed+1`…).

    Raises:
        ImageParamsError: a value is out of range; `field` names which.
    """

    prompt: str
    negative: str = ""
    steps: int = 20
    guidance: float = 7.0
    seed: int | None = None  # None: pick one at random (`with_seed`)
    width: int = 512
    height: int = 512
    scheduler: str = DEFAULT_SCHEDULER
    batch: int = 1
    model: ModelRef | None = None
    init_image: str | None = None  # img2img: the source image's path
    strength: float = 0.75  # img2img: how much of the source is replaced (0 keeps it all)
    loras: tuple[LoraRef, ...] = ()  # stacked in this order, each at its weight
    # Hires fix: generate, upscale by `hires_scale` (0: off), refine with img2img at
    # `hires_strength`; `upscaler` is a safetensors upscaler model (None: Lanczos).
    hires_scale: float = 0.0
    hires_strength: float = 0.5
    upscaler: str | None = None

    def __post_init__(self) -> None:
        _check_int("steps", self.steps, 1, MAX_STEPS)
        _check_int("batch", self.batch, 1, MAX_BATCH)
        if self.seed is not None:
            _check_int("seed", self.seed, 0, MAX_SEED)
        for name, value in (("width", self.width), ("height", self.height)):
            _check_int(name, value, MIN_SIZE, MAX_SIZE)
            if value % SIZE_MULTIPLE:
                lower = value - value % SIZE_MULTIPLE
                raise ImageParamsError(
                    f"{name} {value} is not a multiple of {SIZE_MULTIPLE}",
                    field=name,
                    hint=f"Use {max(lower, MIN_SIZE)} or {lower + SIZE_MULTIPLE}.",
                )
        _check_float("guidance", self.guidance, 0.0, MAX_GUIDANCE)
        _check_float("strength", self.strength, 0.0, 1.0)
        if self.scheduler not in SCHEDULERS:
            raise ImageParamsError(
                f"unknown scheduler {self.scheduler!r}",
                field="scheduler",
                hint="Choose one of: " + ", ".join(SCHEDULERS) + ".",
            )
        if not isinstance(self.prompt, str) or not isinstance(self.negative, str):
            raise ImageParamsError("the prompt must be text", field="prompt")
        _check_float("hires_strength", self.hires_strength, 0.0, 1.0)
        if self.hires_scale:
            _check_float("hires_scale", self.hires_scale, MIN_HIRES_SCALE, MAX_HIRES_SCALE)
            for name, side in (("width", self.hires_width), ("height", self.hires_height)):
                if side > MAX_SIZE:
                    raise ImageParamsError(
                        f"hires fix makes the {name} {side}, more than {MAX_SIZE}",
                        field="hires_scale",
                    )
        if len(self.loras) > MAX_LORAS:
            raise ImageParamsError(
                f"{len(self.loras)} LoRAs, more than {MAX_LORAS} in one image", field="loras"
            )

    @property
    def hires_width(self) -> int:
        """The width after the hires fix (a multiple of 8); `width` when it is off."""
        return _scaled(self.width, self.hires_scale)

    @property
    def hires_height(self) -> int:
        return _scaled(self.height, self.hires_scale)

    @property
    def size(self) -> str:
        """ "512x768", as A1111 writes it."""
        return f"{self.width}x{self.height}"

    def with_seed(self) -> ImageParams:
        """These parameters with a random seed if none was fixed."""
        if self.seed is not None:
            return self
        return replace(self, seed=secrets.randbelow(MAX_SEED + 1))

    def for_image(self, index: int) -> ImageParams:
        """The parameters of image `index` of the batch: one image, seed `seed + index`."""
        if self.seed is None:
            raise ImageParamsError("resolve the seed first (with_seed)", field="seed")
        return replace(self, batch=1, seed=(self.seed + index) % (MAX_SEED + 1))

    def to_json(self) -> dict[str, Any]:
        """JSON-ready data; `from_json` gives back an equal object."""
        data: dict[str, Any] = {
            "prompt": self.prompt,
            "negative": self.negative,
            "steps": self.steps,
            "guidance": self.guidance,
            "seed": self.seed,
            "width": self.width,
            "height": self.height,
            "scheduler": self.scheduler,
            "batch": self.batch,
        }
        if self.model is not None:
            data["model"] = self.model.to_json()
        if self.init_image is not None:
            data["init_image"] = self.init_image
            data["strength"] = self.strength
        if self.loras:
            data["loras"] = [lora.to_json() for lora in self.loras]
        if self.hires_scale:
            data["hires_scale"] = self.hires_scale
            data["hires_strength"] = self.hires_strength
            if self.upscaler is not None:
                data["upscaler"] = self.upscaler
        return data

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ImageParams:
        """Parameters from `to_json` data (missing values take their defaults).

        Raises:
            ImageParamsError: a value has the wrong type or is out of range.
        """
        if not isinstance(data, Mapping):
            raise ImageParamsError("parameters must be a JSON object", field="params")
        defaults = cls(prompt="")
        model = data.get("model")
        loras = data.get("loras")
        try:
            return cls(
                prompt=str(data.get("prompt", "")),
                negative=str(data.get("negative") or ""),
                steps=_as_int(data.get("steps", defaults.steps), "steps"),
                guidance=_as_float(data.get("guidance", defaults.guidance), "guidance"),
                seed=None if data.get("seed") is None else _as_int(data["seed"], "seed"),
                width=_as_int(data.get("width", defaults.width), "width"),
                height=_as_int(data.get("height", defaults.height), "height"),
                scheduler=str(data.get("scheduler") or DEFAULT_SCHEDULER),
                batch=_as_int(data.get("batch", 1), "batch"),
                model=ModelRef.from_json(model) if isinstance(model, Mapping) else None,
                init_image=str(data["init_image"]) if data.get("init_image") else None,
                strength=_as_float(data.get("strength", defaults.strength), "strength"),
                hires_scale=_as_float(data.get("hires_scale", 0.0), "hires_scale"),
                hires_strength=_as_float(
                    data.get("hires_strength", defaults.hires_strength), "hires_strength"
                ),
                upscaler=str(data["upscaler"]) if data.get("upscaler") else None,
                loras=tuple(
                    LoraRef.from_json(item)
                    for item in (loras if isinstance(loras, list) else [])[: MAX_LORAS + 1]
                    if isinstance(item, Mapping)
                ),
            )
        except LoraWeightError as error:
            raise ImageParamsError(str(error), field="loras") from None
        except (TypeError, ValueError) as error:
            if isinstance(error, ImageParamsError):
                raise
            raise ImageParamsError(f"bad parameter: {error}", field="params") from None


@dataclass(frozen=True)
class SizePreset:
    """A width x height a model family was trained near, with its aspect ratio's name."""

    label: str  # "1:1", "2:3", …
    width: int
    height: int


def _presets(*sizes: tuple[str, int, int]) -> tuple[SizePreset, ...]:
    return tuple(SizePreset(label, width, height) for label, width, height in sizes)


# The first of each is the family's native square. Other ratios keep about the same number of
# pixels (SDXL's are its training buckets), every side a multiple of 8.
FAMILY_SIZES: Mapping[str, tuple[SizePreset, ...]] = {
    "SD 1.x": _presets(
        ("1:1", 512, 512),
        ("2:3", 512, 768),
        ("3:2", 768, 512),
        ("9:16", 432, 768),
        ("16:9", 768, 432),
    ),
    "SD 2.x": _presets(
        ("1:1", 768, 768),
        ("2:3", 640, 960),
        ("3:2", 960, 640),
        ("9:16", 576, 1024),
        ("16:9", 1024, 576),
    ),
    "SDXL": _presets(
        ("1:1", 1024, 1024),
        ("2:3", 832, 1216),
        ("3:2", 1216, 832),
        ("9:16", 768, 1344),
        ("16:9", 1344, 768),
    ),
}


def size_presets(family: str | None) -> tuple[SizePreset, ...]:
    """The size presets of a family ("SD 1.x", "SD 2.x", "SDXL"); SD 1.x's when unknown."""
    return FAMILY_SIZES.get(family or "", FAMILY_SIZES["SD 1.x"])


def default_size(family: str | None) -> tuple[int, int]:
    """The family's native square, e.g. (1024, 1024) for SDXL."""
    preset = size_presets(family)[0]
    return preset.width, preset.height


def _check_int(name: str, value: object, low: int, high: int) -> None:
    if not isinstance(value, int) or isinstance(value, bool):
        raise ImageParamsError(f"{name} must be a whole number, not {value!r}", field=name)
    if not low <= value <= high:
        raise ImageParamsError(f"{name} must be between {low} and {high}, not {value}", field=name)


def _check_float(name: str, value: object, low: float, high: float) -> None:
    if not isinstance(value, int | float) or isinstance(value, bool) or not math.isfinite(value):
        raise ImageParamsError(f"{name} must be a number, not {value!r}", field=name)
    if not low <= value <= high:
        raise ImageParamsError(
            f"{name} must be between {low:g} and {high:g}, not {value}", field=name
        )


def _as_int(value: object, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise ImageParamsError(f"{name} must be a whole number, not {value!r}", field=name)
    try:
        number = float(value)
    except (ValueError, OverflowError):  # OverflowError: an int beyond any float (10**400)
        raise ImageParamsError(
            f"{name} must be a whole number, not {value!r}", field=name
        ) from None
    if not number.is_integer():
        raise ImageParamsError(f"{name} must be a whole number, not {value!r}", field=name)
    return int(number)


def _as_float(value: object, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise ImageParamsError(f"{name} must be a number, not {value!r}", field=name)
    try:
        return float(value)
    except (ValueError, OverflowError):  # OverflowError: an int beyond any float (10**400)
        raise ImageParamsError(f"{name} must be a number, not {value!r}", field=name) from None


def _scaled(side: int, scale: float) -> int:
    if not scale:
        return side
    return max(MIN_SIZE, round(side * scale / SIZE_MULTIPLE) * SIZE_MULTIPLE)

"""Which of diffusers' memory savers to turn on, from the device and its free memory.

A pure function, so it is tested without a GPU; the image engine calls it with what torch
reports. The savers trade speed for memory, so each is used only when the estimate says the
model would not fit without it:
- attention slicing: attention in slices (less peak memory, ~10 % slower);
- VAE tiling: decode large images tile by tile (needed above ~1.5 megapixels on most GPUs);
- model CPU offload: keep only the running component on the GPU (fits ~4 GB cards, slower).
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["MemorySavers", "choose_memory_savers", "estimate_weights_bytes"]

GIB = 1024**3
MEGAPIXEL = 1024 * 1024

# fp16 weights of UNet + text encoders + VAE.
_FAMILY_WEIGHTS_FP16 = {"SD 1.x": int(2.0 * GIB), "SD 2.x": int(2.6 * GIB), "SDXL": int(6.9 * GIB)}
_UNKNOWN_WEIGHTS_FP16 = int(2.6 * GIB)
# Working memory beyond the weights for one image: a fixed part (CUDA context, text
# embeddings, buffers) plus a part that grows with the image (latents, attention, VAE decode).
_WORKING_FIXED = int(1.5 * GIB)
_WORKING_PER_MEGAPIXEL = int(2.5 * GIB)
# Above this many pixels the VAE decodes in tiles on any device (a 2048² decode in one piece
# needs several GB even on a CPU).
_VAE_TILING_PIXELS = 1536 * 1536


@dataclass(frozen=True)
class MemorySavers:
    """The savers to turn on for one model on one device."""

    attention_slicing: bool = False
    vae_tiling: bool = False
    cpu_offload: bool = False  # model CPU offload: components move to the GPU in turn

    @property
    def names(self) -> tuple[str, ...]:
        """What is on, for a person: ("attention slicing", "VAE tiling", …)."""
        named = (
            (self.attention_slicing, "attention slicing"),
            (self.vae_tiling, "VAE tiling"),
            (self.cpu_offload, "model CPU offload"),
        )
        return tuple(name for on, name in named if on)


def estimate_weights_bytes(family: str | None, *, half_precision: bool = True) -> int:
    """The memory a family's weights take on the device (fp16, or twice that in fp32)."""
    weights = _FAMILY_WEIGHTS_FP16.get(family or "", _UNKNOWN_WEIGHTS_FP16)
    return weights if half_precision else weights * 2


def choose_memory_savers(
    *,
    device: str,
    free_memory: int | None,
    family: str | None,
    width: int,
    height: int,
    weights_bytes: int | None = None,
    half_precision: bool = True,
) -> MemorySavers:
    """The savers for generating `width`x`height` images with a model of `family`.

    Args:
        device: "cuda", "mps" or "cpu".
        free_memory: bytes free on the GPU now (before loading), None when unknown.
        family: "SD 1.x", "SD 2.x", "SDXL", or None.
        weights_bytes: the model's weights on the device, when known better than the
            family's usual size.
        half_precision: weights in fp16 (GPU) rather than fp32.
    """
    pixels = width * height
    big_image = pixels > _VAE_TILING_PIXELS
    if device == "cpu":
        return MemorySavers(vae_tiling=big_image)
    if device == "mps":
        # Unified memory: diffusers recommends slicing on Macs below 64 GB, which is most.
        return MemorySavers(attention_slicing=True, vae_tiling=big_image)
    if free_memory is None:
        return MemorySavers(vae_tiling=big_image)
    weights = weights_bytes or estimate_weights_bytes(family, half_precision=half_precision)
    working = _WORKING_FIXED + _WORKING_PER_MEGAPIXEL * pixels // MEGAPIXEL
    if free_memory >= weights + working:
        return MemorySavers(vae_tiling=big_image)
    if free_memory >= weights + working // 2:
        return MemorySavers(attention_slicing=True, vae_tiling=True)
    return MemorySavers(attention_slicing=True, vae_tiling=True, cpu_offload=True)

"""What a vision projector costs beside its model, from its header: memory and image tokens.

The weights are the file (a projector is small and loaded whole). The compute buffer of its
image encoder is a rough share of the weights, at least `MIN_COMPUTE_BYTES`: attention over
a few thousand patches at most. The tokens one image takes depend on the projector's type:
LLaVA's MLP passes every patch through, MobileVLM's LDP pools them by four, Gemma 3 always
gives 256; types that tile or keep the image's own resolution (Qwen2-VL, Pixtral,
MiniCPM-V, SmolVLM) are left unknown rather than guessed.
"""

from __future__ import annotations

import dataclasses

from app.hardware import MIB
from app.library.sniff import Checkpoint
from app.llm.fit import ProjectorCost

MIN_COMPUTE_BYTES = 32 * MIB
COMPUTE_SHARE_OF_WEIGHTS = 0.5

_PATCHES_PER_TOKEN = {"mlp": 1, "mlp_norm": 1, "ldp": 4, "ldpv2": 4}
_FIXED_TOKENS = {"gemma3": 256}


def image_tokens(
    projector_type: str | None, image_size: int | None, patch_size: int | None
) -> int | None:
    """Context tokens one image takes with this projector; None when its type does not fix it."""
    if projector_type in _FIXED_TOKENS:
        return _FIXED_TOKENS[projector_type]
    per_token = _PATCHES_PER_TOKEN.get(projector_type or "")
    if per_token is None or not image_size or not patch_size:
        return None
    return max(1, (image_size // patch_size) ** 2 // per_token)


def projector_cost_of_file(size: int) -> ProjectorCost:
    """The cost of a projector known only by its file's size (a hub listing, before a
    download): its weights and compute buffer; its image tokens are unknown until read."""
    return ProjectorCost(
        weight_bytes=size,
        compute_bytes=max(MIN_COMPUTE_BYTES, int(size * COMPUTE_SHARE_OF_WEIGHTS)),
        image_tokens=None,
    )


def projector_cost(checkpoint: Checkpoint) -> ProjectorCost:
    """The cost of the projector `checkpoint` (sniffed from an mmproj GGUF).

    Raises:
        ValueError: `checkpoint` is not a vision projector.
    """
    info = checkpoint.projector
    if info is None:
        raise ValueError(f"{checkpoint.path.name} is not a vision projector")
    return dataclasses.replace(
        projector_cost_of_file(checkpoint.size),
        image_tokens=image_tokens(info.projector_type, info.image_size, info.patch_size),
    )

"""Tiny random LoRAs for the tiny pipeline, in the two key layouts people's files use.

Rank 4 on every attention projection of the UNet (self- and cross-attention), random but
seeded, large enough to move the pixels visibly:
- `write_peft_lora`: diffusers/PEFT keys (`unet.<module>.lora_A.weight` / `.lora_B.weight`),
  what `StableDiffusionPipeline.save_lora_weights` writes;
- `write_kohya_lora`: the same weights under kohya/A1111 keys
  (`lora_unet_<module with _>.lora_down.weight` / `.lora_up.weight` / `.alpha` = rank, so
  kohya's scale alpha/rank is 1 and both files make the same image).

Importing this module imports torch: tests only.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors.torch import save_file

from tests.support.diffusers_builder import build_pipeline

RANK = 4
_TARGETS = tuple(
    f"{attention}.{projection}"
    for attention in ("attn1", "attn2")
    for projection in ("to_q", "to_k", "to_v", "to_out.0")
)


def lora_weights(*, seed: int, scale: float = 0.5) -> dict[str, torch.Tensor]:
    """{module path in the UNet + ".down"/".up": tensor} for every attention projection."""
    unet = build_pipeline().unet
    generator = torch.Generator().manual_seed(seed)
    weights: dict[str, torch.Tensor] = {}
    for name, module in unet.named_modules():
        if not name.endswith(_TARGETS):
            continue
        out_features, in_features = module.weight.shape
        weights[f"{name}.down"] = torch.randn(RANK, in_features, generator=generator) * scale
        weights[f"{name}.up"] = torch.randn(out_features, RANK, generator=generator) * scale
    return weights


def write_peft_lora(path: Path, *, seed: int = 1, metadata: dict[str, str] | None = None) -> Path:
    """A diffusers/PEFT-layout LoRA for the tiny pipeline; returns `path`."""
    tensors = {}
    for key, tensor in lora_weights(seed=seed).items():
        module, _, end = key.rpartition(".")
        tensors[f"unet.{module}.lora_{'A' if end == 'down' else 'B'}.weight"] = tensor
    save_file(tensors, str(path), metadata=metadata)
    return path


def write_kohya_lora(
    path: Path,
    *,
    seed: int = 1,
    metadata: dict[str, str] | None = None,
    text_encoders: tuple[str, ...] = (),
) -> Path:
    """The same LoRA under kohya/A1111 keys; `text_encoders` ("te1", "te2") adds a token
    text-encoder tensor pair for each, as an SDXL LoRA has (it makes the file SDXL's)."""
    tensors: dict[str, torch.Tensor] = {}
    for key, tensor in lora_weights(seed=seed).items():
        module, _, end = key.rpartition(".")
        stem = "lora_unet_" + module.replace(".", "_")
        tensors[f"{stem}.lora_{end}.weight"] = tensor
        tensors[f"{stem}.alpha"] = torch.tensor(float(RANK))
    for encoder in text_encoders:
        stem = f"lora_{encoder}_text_model_encoder_layers_0_self_attn_q_proj"
        tensors[f"{stem}.lora_down.weight"] = torch.zeros(RANK, 32)
        tensors[f"{stem}.lora_up.weight"] = torch.zeros(32, RANK)
        tensors[f"{stem}.alpha"] = torch.tensor(float(RANK))
    save_file(tensors, str(path), metadata=metadata)
    return path


def kohya_metadata(*, base: str = "sd_v1", tags: dict[str, int] | None = None) -> dict[str, str]:
    """The metadata kohya's trainer writes that ModelDeck reads: base model and caption tags."""
    metadata = {"ss_base_model_version": base, "ss_network_dim": str(RANK)}
    if tags is not None:
        metadata["ss_tag_frequency"] = json.dumps({"10_dataset": tags})
    return metadata

"""A tiny Stable Diffusion pipeline with random weights that diffusers really runs.

The shapes are those of diffusers' own tests (see TESTING.md): a 2-level UNet, a 2-level VAE
(so latents are half the image size, not an eighth), a 5-layer CLIP text model and a CLIP
tokenizer over the first few hundred CLIP merges. 2 steps at 64x64 take well under a second
on a CPU.

Written three ways:
- `build_pipeline_folder`: a diffusers folder (`save_pretrained`), ~9 MB;
- `write_single_file`: the same weights as one original-format (LDM) SD 1.x safetensors file,
  the key layout `from_single_file` converts back (UNet under `model.diffusion_model.`,
  VAE under `first_stage_model.`, CLIP under `cond_stage_model.transformer.text_model.`);
- `write_config_folder`: the folder without weights, the `config=` of that single file.

Importing this module imports torch and diffusers: tests only.
"""

from __future__ import annotations

import gzip
import re
import shutil
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import torch
from diffusers import AutoencoderKL, DDIMScheduler, StableDiffusionPipeline, UNet2DConditionModel
from safetensors.torch import save_file
from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

from app.images.engine import ImageEngine
from app.images.single_file import clip_vocabulary

MERGES = 400  # the first CLIP merges: vocabulary 512 + 400 + 2 < the text model's 1000
SEED = 0


@dataclass(frozen=True)
class TinyModels:
    """Everything the image tests load, written once per test session."""

    folder: Path  # the tiny pipeline, diffusers layout
    config: Path  # its configs without weights
    single_file: Path  # the same weights, original SD 1.x layout
    nan_folder: Path  # a pipeline whose VAE outputs NaN
    llm: Path  # a language model's safetensors
    flux: Path  # a Flux transformer's safetensors (no single-file support)
    pickle: Path  # a .ckpt pickle
    not_pipeline: Path  # a folder without model_index.json


def tiny_models(root: Path) -> TinyModels:
    """Write every image test model under `root` (the `image_models` fixture: once a run)."""
    folder = build_pipeline_folder(root / "tiny-pipeline")
    not_pipeline = root / "not-a-pipeline"
    not_pipeline.mkdir()
    (not_pipeline / "README.md").write_text("no model here\n")
    pickle_path = root / "model.ckpt"
    pickle_path.write_bytes(b"\x80\x04\x95" + b"\0" * 64)
    return TinyModels(
        folder=folder,
        config=write_config_folder(folder, root / "tiny-config"),
        single_file=write_single_file(folder, root / "tiny-sd1.safetensors"),
        nan_folder=write_nan_pipeline(folder, root / "tiny-nan"),
        llm=write_llm_safetensors(root / "llm.safetensors"),
        flux=write_flux_safetensors(root / "flux.safetensors"),
        pickle=pickle_path,
        not_pipeline=not_pipeline,
    )


def build_pipeline() -> StableDiffusionPipeline:
    """The tiny pipeline in memory (fp32, deterministic weights for a fixed seed)."""
    torch.manual_seed(SEED)
    unet = UNet2DConditionModel(
        block_out_channels=(32, 64),
        layers_per_block=2,
        sample_size=32,
        in_channels=4,
        out_channels=4,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        cross_attention_dim=32,
        norm_num_groups=2,
    )
    vae = AutoencoderKL(
        block_out_channels=[32, 64],
        in_channels=3,
        out_channels=3,
        down_block_types=["DownEncoderBlock2D", "DownEncoderBlock2D"],
        up_block_types=["UpDecoderBlock2D", "UpDecoderBlock2D"],
        latent_channels=4,
        norm_num_groups=2,
    )
    text_encoder = CLIPTextModel(
        CLIPTextConfig(
            bos_token_id=0,
            eos_token_id=2,
            hidden_size=32,
            intermediate_size=37,
            layer_norm_eps=1e-05,
            num_attention_heads=4,
            num_hidden_layers=5,
            pad_token_id=1,
            vocab_size=1000,
            max_position_embeddings=77,
        )
    )
    scheduler = DDIMScheduler(
        beta_start=0.00085,
        beta_end=0.012,
        beta_schedule="scaled_linear",
        clip_sample=False,
        set_alpha_to_one=False,
        steps_offset=1,
    )
    return StableDiffusionPipeline(
        vae=vae,
        text_encoder=text_encoder,
        tokenizer=_tokenizer(),
        unet=unet,
        scheduler=scheduler,
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    )


def build_pipeline_folder(folder: Path) -> Path:
    """Build the tiny pipeline and save it as a diffusers folder; returns `folder`."""
    build_pipeline().save_pretrained(folder, safe_serialization=True)
    return folder


def write_config_folder(pipeline_folder: Path, folder: Path) -> Path:
    """A copy of a pipeline folder without weights: what `from_single_file(config=…)` reads."""
    shutil.copytree(
        pipeline_folder,
        folder,
        ignore=shutil.ignore_patterns("*.safetensors", "*.bin"),
    )
    return folder


def write_single_file(pipeline_folder: Path, path: Path) -> Path:
    """The pipeline's weights as one original-format SD 1.x safetensors file."""
    pipeline = StableDiffusionPipeline.from_pretrained(pipeline_folder, local_files_only=True)
    layers = int(pipeline.unet.config.layers_per_block)
    tensors: dict[str, torch.Tensor] = {}
    for key, value in pipeline.unet.state_dict().items():
        tensors["model.diffusion_model." + unet_key_to_ldm(key, layers, pipeline.unet)] = value
    blocks = len(pipeline.vae.config.block_out_channels)
    for key, value in pipeline.vae.state_dict().items():
        ldm_key = vae_key_to_ldm(key, blocks)
        if re.search(r"mid\.attn_1\.(q|k|v|proj_out)\.weight$", ldm_key):
            # the LDM VAE's attention uses 1x1 convolutions
            tensors["first_stage_model." + ldm_key] = value[:, :, None, None]
        else:
            tensors["first_stage_model." + ldm_key] = value
    for key, value in pipeline.text_encoder.state_dict().items():
        if key.endswith("position_ids"):
            continue
        canonical = key if key.startswith("text_model.") else "text_model." + key
        tensors["cond_stage_model.transformer." + canonical] = value
    save_file({k: v.contiguous() for k, v in tensors.items()}, str(path))
    return path


def write_nan_pipeline(pipeline_folder: Path, folder: Path) -> Path:
    """A copy of the pipeline whose VAE decodes every image to NaN."""
    pipeline = StableDiffusionPipeline.from_pretrained(pipeline_folder, local_files_only=True)
    with torch.no_grad():
        pipeline.vae.decoder.conv_out.bias.fill_(float("nan"))
    pipeline.save_pretrained(folder, safe_serialization=True)
    return folder


def write_llm_safetensors(path: Path) -> Path:
    """A tiny safetensors file with a language model's tensor names."""
    tensors = {
        "model.embed_tokens.weight": torch.zeros(16, 8),
        "model.layers.0.self_attn.q_proj.weight": torch.zeros(8, 8),
        "model.layers.0.mlp.up_proj.weight": torch.zeros(16, 8),
        "lm_head.weight": torch.zeros(16, 8),
    }
    save_file(tensors, str(path))
    return path


def write_flux_safetensors(path: Path) -> Path:
    """A tiny safetensors file with a Flux transformer's tensor names (no single-file config)."""
    tensors = {
        "double_blocks.0.img_attn.qkv.weight": torch.zeros(24, 8),
        "single_blocks.0.linear1.weight": torch.zeros(24, 8),
    }
    save_file(tensors, str(path))
    return path


def cpu_image_engine(config_cache_dir: Path) -> ImageEngine:
    """A started CPU image engine (the `image_engine` fixture: one a run, as a child costs
    seconds to start).

    One torch thread: the tiny model gains nothing from two, and on a machine busy with other
    work two spinning threads are ten times slower."""
    engine = ImageEngine(config_cache_dir=config_cache_dir, device="cpu", threads=1)
    engine.start()
    return engine


# --- diffusers → LDM key names (the inverse of diffusers' single-file conversion) -----------

_RESNET = (
    ("norm1", "in_layers.0"),
    ("conv1", "in_layers.2"),
    ("norm2", "out_layers.0"),
    ("conv2", "out_layers.3"),
    ("time_emb_proj", "emb_layers.1"),
    ("conv_shortcut", "skip_connection"),
)
_UNET_FIXED = {
    "time_embedding.linear_1": "time_embed.0",
    "time_embedding.linear_2": "time_embed.2",
    "conv_in": "input_blocks.0.0",
    "conv_norm_out": "out.0",
    "conv_out": "out.2",
}


def unet_key_to_ldm(key: str, layers: int, unet: Any) -> str:
    """A diffusers UNet parameter name in the original SD layout."""
    for prefix, ldm in _UNET_FIXED.items():
        if key.startswith(prefix + "."):
            return ldm + key[len(prefix) :]
    if match := re.match(r"down_blocks\.(\d+)\.resnets\.(\d+)\.(.+)", key):
        block, layer, rest = int(match[1]), int(match[2]), match[3]
        return f"input_blocks.{(layers + 1) * block + layer + 1}.0.{_resnet(rest)}"
    if match := re.match(r"down_blocks\.(\d+)\.attentions\.(\d+)\.(.+)", key):
        block, layer, rest = int(match[1]), int(match[2]), match[3]
        return f"input_blocks.{(layers + 1) * block + layer + 1}.1.{rest}"
    if match := re.match(r"down_blocks\.(\d+)\.downsamplers\.0\.conv\.(.+)", key):
        return f"input_blocks.{(layers + 1) * (int(match[1]) + 1)}.0.op.{match[2]}"
    if match := re.match(r"mid_block\.resnets\.(\d+)\.(.+)", key):
        return f"middle_block.{2 * int(match[1])}.{_resnet(match[2])}"
    if match := re.match(r"mid_block\.attentions\.0\.(.+)", key):
        return f"middle_block.1.{match[1]}"
    if match := re.match(r"up_blocks\.(\d+)\.resnets\.(\d+)\.(.+)", key):
        block, layer, rest = int(match[1]), int(match[2]), match[3]
        return f"output_blocks.{(layers + 1) * block + layer}.0.{_resnet(rest)}"
    if match := re.match(r"up_blocks\.(\d+)\.attentions\.(\d+)\.(.+)", key):
        block, layer, rest = int(match[1]), int(match[2]), match[3]
        return f"output_blocks.{(layers + 1) * block + layer}.1.{rest}"
    if match := re.match(r"up_blocks\.(\d+)\.upsamplers\.0\.conv\.(.+)", key):
        block = int(match[1])
        has_attention = hasattr(unet.up_blocks[block], "attentions")
        position = 2 if has_attention else 1
        return f"output_blocks.{(layers + 1) * block + layers}.{position}.conv.{match[2]}"
    raise ValueError(f"no LDM name for UNet parameter {key}")


def vae_key_to_ldm(key: str, blocks: int) -> str:
    """A diffusers AutoencoderKL parameter name in the original SD layout."""
    if match := re.match(r"(encoder|decoder)\.mid_block\.attentions\.0\.(.+)", key):
        rest = (
            match[2]
            .replace("group_norm.", "norm.")
            .replace("to_q.", "q.")
            .replace("to_k.", "k.")
            .replace("to_v.", "v.")
            .replace("to_out.0.", "proj_out.")
        )
        return f"{match[1]}.mid.attn_1.{rest}"
    if match := re.match(r"(encoder|decoder)\.mid_block\.resnets\.(\d+)\.(.+)", key):
        return f"{match[1]}.mid.block_{int(match[2]) + 1}.{_vae_resnet(match[3])}"
    if match := re.match(r"encoder\.down_blocks\.(\d+)\.resnets\.(\d+)\.(.+)", key):
        return f"encoder.down.{match[1]}.block.{match[2]}.{_vae_resnet(match[3])}"
    if match := re.match(r"encoder\.down_blocks\.(\d+)\.downsamplers\.0\.conv\.(.+)", key):
        return f"encoder.down.{match[1]}.downsample.conv.{match[2]}"
    if match := re.match(r"decoder\.up_blocks\.(\d+)\.resnets\.(\d+)\.(.+)", key):
        level = blocks - 1 - int(match[1])
        return f"decoder.up.{level}.block.{match[2]}.{_vae_resnet(match[3])}"
    if match := re.match(r"decoder\.up_blocks\.(\d+)\.upsamplers\.0\.conv\.(.+)", key):
        return f"decoder.up.{blocks - 1 - int(match[1])}.upsample.conv.{match[2]}"
    return key.replace("conv_norm_out.", "norm_out.")


def _resnet(rest: str) -> str:
    for diffusers_name, ldm_name in _RESNET:
        if rest.startswith(diffusers_name + "."):
            return ldm_name + rest[len(diffusers_name) :]
    return rest


def _vae_resnet(rest: str) -> str:
    return rest.replace("conv_shortcut.", "nin_shortcut.")


# --- the tokenizer -----------------------------------------------------------------------


def _tokenizer() -> CLIPTokenizer:
    merges_gz = resources.files("app.images").joinpath("configs", "clip-merges.txt.gz")
    lines = gzip.decompress(merges_gz.read_bytes()).decode("utf-8").split("\n")
    merges = [line for line in lines[1:] if line][:MERGES]
    pairs = [tuple(merge.split(" ")) for merge in merges]
    return CLIPTokenizer(vocab=clip_vocabulary(merges), merges=pairs, model_max_length=77)

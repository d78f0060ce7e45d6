"""Images from other tools restore what maps and list what does not: ComfyUI's `prompt` graph,
InvokeAI's `invokeai_metadata`, A1111's EXIF UserComment in JPEG and WebP; and ModelDeck's
own LoRAs round-trip through its A1111 `parameters`.

The samples are written here in each tool's documented format: ComfyUI's default text-to-image
graph in its API form (the `prompt` chunk its SaveImage node writes, with the editor's graph in
`workflow`), InvokeAI's core metadata object (3.x `model_name`/`lora`, 4.x+ `name`/`model`),
and A1111's JPEG EXIF (piexif's UserComment: `UNICODE\\0` + UTF-16 big-endian).
"""

from __future__ import annotations

import json
from pathlib import Path

from PIL import Image
from PIL.PngImagePlugin import PngInfo

from app.images import ImageParams, ModelRef, read_metadata
from app.images.loras import LoraRef
from app.images.png_metadata import (
    A1111_KEY,
    ImageMetadata,
    parse_a1111_parameters,
    png_text_chunks,
    save_png,
)

# ComfyUI's default graph, with a LoRA loader between the checkpoint and the sampler.
COMFY_PROMPT = {
    "3": {
        "class_type": "KSampler",
        "inputs": {
            "seed": 156680208,
            "steps": 20,
            "cfg": 8,
            "sampler_name": "euler_ancestral",
            "scheduler": "karras",
            "denoise": 1,
            "model": ["10", 0],
            "positive": ["6", 0],
            "negative": ["7", 0],
            "latent_image": ["5", 0],
        },
    },
    "4": {
        "class_type": "CheckpointLoaderSimple",
        "inputs": {"ckpt_name": "v1-5-pruned-emaonly.safetensors"},
    },
    "5": {
        "class_type": "EmptyLatentImage",
        "inputs": {"batch_size": 1, "height": 768, "width": 512},
    },
    "6": {
        "class_type": "CLIPTextEncode",
        "inputs": {"clip": ["10", 1], "text": "beautiful scenery nature glass bottle landscape"},
    },
    "7": {"class_type": "CLIPTextEncode", "inputs": {"clip": ["10", 1], "text": "text, watermark"}},
    "8": {"class_type": "VAEDecode", "inputs": {"samples": ["3", 0], "vae": ["4", 2]}},
    "9": {"class_type": "SaveImage", "inputs": {"filename_prefix": "ComfyUI", "images": ["8", 0]}},
    "10": {
        "class_type": "LoraLoader",
        "inputs": {
            "lora_name": "styles/ink_sketch.safetensors",
            "strength_model": 0.8,
            "strength_clip": 1,
            "model": ["4", 0],
            "clip": ["4", 1],
        },
    },
    "11": {"class_type": "UpscaleModelLoader", "inputs": {"model_name": "4x-UltraSharp.pth"}},
}
COMFY_WORKFLOW = {"last_node_id": 11, "nodes": [{"id": 3, "type": "KSampler"}], "version": 0.4}

INVOKE_3 = {
    "app_version": "3.3.0post3",
    "generation_mode": "txt2img",
    "positive_prompt": "landscape",
    "negative_prompt": "low quality",
    "width": 768,
    "height": 432,
    "seed": 356120443,
    "rand_device": "cpu",
    "cfg_scale": 7.5,
    "steps": 50,
    "scheduler": "dpmpp_2m_sde_k",
    "clip_skip": 0,
    "model": {"model_name": "amixx_3Prunedfp16", "base_model": "sd-1", "model_type": "main"},
    "loras": [{"lora": {"model_name": "moss", "base_model": "sd-1"}, "weight": 0.6}],
    "vae": {"model_name": "sd-vae-ft-mse", "base_model": "sd-1"},
}
INVOKE_5 = {
    "app_version": "5.4.2",
    "generation_mode": "sdxl_txt2img",
    "positive_prompt": "a lighthouse at dusk",
    "negative_prompt": "",
    "width": 1024,
    "height": 1024,
    "seed": 42,
    "cfg_scale": 6,
    "cfg_rescale_multiplier": 0,
    "steps": 30,
    "scheduler": "euler_a",
    "model": {"key": "abc", "hash": "blake3:00ff", "name": "Juggernaut XL", "base": "sdxl"},
    "loras": [
        {"model": {"key": "k1", "hash": "blake3:11", "name": "ink", "base": "sdxl"}, "weight": 0.75}
    ],
}


def png_with(path: Path, chunks: dict[str, str]) -> Path:
    info = PngInfo()
    for key, text in chunks.items():
        info.add_text(key, text)
    Image.new("RGB", (8, 8)).save(path, pnginfo=info)
    return path


def test_a_comfyui_graph_restores_prompts_sampler_size_model_and_loras(tmp_path: Path) -> None:
    path = png_with(
        tmp_path / "ComfyUI_00001_.png",
        {"prompt": json.dumps(COMFY_PROMPT), "workflow": json.dumps(COMFY_WORKFLOW)},
    )
    read = read_metadata(path)
    assert read is not None
    assert read.source == "comfyui"
    params = read.params
    assert params.prompt == "beautiful scenery nature glass bottle landscape"
    assert params.negative == "text, watermark"
    assert (params.seed, params.steps, params.guidance) == (156680208, 20, 8.0)
    assert (params.width, params.height, params.scheduler) == (512, 768, "Euler a")
    assert params.model == ModelRef(name="v1-5-pruned-emaonly")
    assert params.loras == (LoraRef(name="ink_sketch", weight=0.8),)
    # What does not map is listed, not dropped silently.
    assert read.fields["Schedule type"] == "karras"
    assert read.fields["Other nodes"] == "UpscaleModelLoader"
    assert "Workflow" in read.fields


def test_a_comfyui_seed_beyond_32_bits_is_listed_not_wrapped(tmp_path: Path) -> None:
    graph = json.loads(json.dumps(COMFY_PROMPT))
    graph["3"]["inputs"]["seed"] = 2**40 + 5
    graph["5"]["inputs"]["batch_size"] = 500  # beyond ModelDeck's batch: listed too
    read = read_metadata(png_with(tmp_path / "big-seed.png", {"prompt": json.dumps(graph)}))
    assert read is not None
    assert read.params.seed is None
    assert "beyond the 32-bit seeds" in read.fields["Seed"]
    assert read.params.batch == 1
    assert read.fields["batch"].startswith("500")


def test_invokeai_metadata_of_both_eras_is_restored(tmp_path: Path) -> None:
    old = read_metadata(png_with(tmp_path / "v3.png", {"invokeai_metadata": json.dumps(INVOKE_3)}))
    assert old is not None
    assert old.source == "invokeai"
    assert (old.params.prompt, old.params.negative) == ("landscape", "low quality")
    assert (old.params.width, old.params.height, old.params.seed) == (768, 432, 356120443)
    assert (old.params.steps, old.params.guidance) == (50, 7.5)
    assert old.params.model == ModelRef(name="amixx_3Prunedfp16", family="SD 1.x")
    assert old.params.loras == (LoraRef(name="moss", weight=0.6),)
    assert old.fields["Scheduler"] == "dpmpp_2m_sde_k"  # no such scheduler here: listed
    assert {"rand_device", "vae"} <= set(old.fields)
    new = read_metadata(png_with(tmp_path / "v5.png", {"invokeai_metadata": json.dumps(INVOKE_5)}))
    assert new is not None
    assert new.params.scheduler == "Euler a"
    assert new.params.model == ModelRef(name="Juggernaut XL", family="SDXL")
    assert new.params.loras == (LoraRef(name="ink", weight=0.75),)


A1111_TEXT = (
    "a castle on a hill <lora:add_detail:0.5>\n"
    "Negative prompt: lowres\n"
    "Steps: 28, Sampler: Euler a, CFG scale: 6.5, Seed: 99, Size: 512x768, "
    'Model hash: 6ce0161689, Model: v1-5, Lora hashes: "add_detail: 7c6bad76eb54", '
    "Clip skip: 2"
)


def test_a1111_jpeg_and_webp_exif_user_comments_are_read(tmp_path: Path) -> None:
    comment = b"UNICODE\0" + A1111_TEXT.encode("utf-16-be")
    for suffix in ("jpg", "webp"):
        exif = Image.Exif()
        exif.get_ifd(0x8769)[0x9286] = comment
        path = tmp_path / f"a1111.{suffix}"
        Image.new("RGB", (16, 16), "white").save(path, exif=exif)
        read = read_metadata(path)
        assert read is not None, suffix
        assert read.source == "a1111"
        assert read.params.prompt == "a castle on a hill"
        assert read.params.loras == (
            LoraRef(name="add_detail", weight=0.5, short_hash="7c6bad76eb54"),
        )
        assert (read.params.steps, read.params.seed, read.params.height) == (28, 99, 768)
        assert read.fields["Clip skip"] == "2"
    plain = tmp_path / "plain.jpg"
    Image.new("RGB", (16, 16)).save(plain)
    assert read_metadata(plain) is None


def test_modeldeck_loras_round_trip_through_its_own_json_and_a1111_text(tmp_path: Path) -> None:
    loras = (
        LoraRef(name="ink", path="/private/ink.safetensors", weight=0.7, short_hash="0123456789ab"),
        LoraRef(
            name="moss", path="/private/moss.safetensors", weight=-0.25, short_hash="ba9876543210"
        ),
    )
    params = ImageParams(prompt="a fox", seed=3, width=64, height=64, loras=loras)
    path = tmp_path / "fox.png"
    save_png(Image.new("RGB", (64, 64)), path, ImageMetadata(params=params, sampler="DDIM"))
    read = read_metadata(path)
    assert read is not None
    # The LoRAs' paths on this machine stay off the shared image, as the model's does.
    assert read.params.loras == tuple(
        LoraRef(name=lora.name, weight=lora.weight, short_hash=lora.short_hash) for lora in loras
    )
    chunks = png_text_chunks(path, keys=frozenset({A1111_KEY}))
    assert chunks is not None
    assert "/private" not in chunks[A1111_KEY]
    again = parse_a1111_parameters(chunks[A1111_KEY])
    assert again.params.prompt == "a fox"
    assert again.params.loras == read.params.loras

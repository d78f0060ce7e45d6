"""Other tools' metadata, made up by hypothesis: ComfyUI graphs (links to nowhere, cycles,
wrong types, huge numbers), InvokeAI objects, EXIF UserComments, LoRA prompt tags and LoRA
safetensors headers. Each input ends in a result or the parser's one clear error, within
bounded time and memory (`within_bounds`)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from app.images import ImageParamsError
from app.images.foreign_metadata import (
    decode_user_comment,
    parse_comfyui_prompt,
    parse_invokeai_metadata,
)
from app.images.loras import LoraWeightError, parse_lora_option, prompt_loras
from app.images.png_metadata import read_metadata
from app.library.lora_keys import lora_header
from tests.hostile.bounds import within_bounds
from tests.hostile.hostile_files import png, png_chunk

# Leaves a stranger's JSON may hold where a number, a text or a link belongs.
leaves = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**70), 2**70),
    st.floats(allow_nan=False),
    st.text(max_size=12),
    st.sampled_from(["euler", "euler_ancestral", "karras", "1", "3", "a.safetensors"]),
)
links = st.lists(st.one_of(st.sampled_from(["1", "2", "3", "4", "x"]), st.integers()), max_size=3)
input_names = st.sampled_from(
    [
        "seed",
        "noise_seed",
        "steps",
        "cfg",
        "sampler_name",
        "scheduler",
        "denoise",
        "model",
        "positive",
        "negative",
        "latent_image",
        "text",
        "conditioning",
        "ckpt_name",
        "lora_name",
        "strength_model",
        "width",
        "height",
        "batch_size",
    ]
)
nodes = st.fixed_dictionaries(
    {
        "class_type": st.one_of(
            st.sampled_from(
                [
                    "KSampler",
                    "KSamplerAdvanced",
                    "CLIPTextEncode",
                    "LoraLoader",
                    "CheckpointLoaderSimple",
                    "EmptyLatentImage",
                    "Other",
                ]
            ),
            leaves,
        ),
        "inputs": st.one_of(
            st.dictionaries(input_names, st.one_of(leaves, links), max_size=8), leaves
        ),
    }
)
graphs = st.dictionaries(st.sampled_from(["1", "2", "3", "4", "5"]), st.one_of(nodes, leaves))
invoke_keys = st.sampled_from(
    [
        "positive_prompt",
        "negative_prompt",
        "seed",
        "steps",
        "cfg_scale",
        "scheduler",
        "width",
        "height",
        "model",
        "loras",
        "vae",
        "x",
    ]
)
invoke_values = st.recursive(
    leaves,
    lambda children: st.one_of(
        st.lists(children, max_size=3),
        st.dictionaries(
            st.sampled_from(["name", "model_name", "model", "lora", "weight", "base"]),
            children,
            max_size=4,
        ),
    ),
    max_leaves=20,
)
invoke_objects = st.dictionaries(invoke_keys, invoke_values, max_size=12)
deep = st.integers(1, 100_000).map(lambda depth: "[" * depth + "]" * depth)


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("foreign")


@given(graph=st.one_of(graphs.map(json.dumps), deep, st.text(max_size=40)))
def test_any_comfyui_prompt_is_parsed_within_bounds(graph: str) -> None:
    within_bounds(
        "comfyui prompt (hypothesis)",
        lambda: parse_comfyui_prompt(graph),
        errors=(ImageParamsError,),
    )


@given(document=st.one_of(invoke_objects.map(json.dumps), deep))
def test_any_invokeai_metadata_is_parsed_within_bounds(document: str) -> None:
    within_bounds(
        "invokeai metadata (hypothesis)",
        lambda: parse_invokeai_metadata(document),
        errors=(ImageParamsError,),
    )


@given(
    raw=st.one_of(st.binary(max_size=64), st.binary(max_size=64).map(lambda b: b"UNICODE\0" + b))
)
def test_any_user_comment_is_decoded_within_bounds(raw: bytes) -> None:
    within_bounds("exif user comment (hypothesis)", lambda: decode_user_comment(raw), errors=())


@given(
    text=st.lists(
        st.sampled_from(["<lora:", ">", ":", "a", "0.5", "1e9", " ", ",", "\n", "<"]), max_size=80
    ).map("".join)
)
def test_any_prompt_with_lora_tags_is_read_within_bounds(text: str) -> None:
    within_bounds(
        "lora prompt tags (hypothesis)", lambda: prompt_loras(text), errors=(LoraWeightError,)
    )
    within_bounds(
        "lora option (hypothesis)", lambda: parse_lora_option(text), errors=(LoraWeightError,)
    )


@given(
    names=st.lists(
        st.one_of(
            st.sampled_from(
                [
                    "lora_unet_a_attn2_to_k.lora_down.weight",
                    "lora_te2_x.lora_up.weight",
                    "unet.a.attn2.to_k.lora_A.weight",
                    "transformer.double_blocks.0.lora_B.weight",
                    "__metadata__",
                ]
            ),
            st.text(max_size=30),
        ),
        max_size=8,
    ),
    shapes=st.lists(st.one_of(st.lists(st.integers(0, 2**64), max_size=3), leaves), max_size=8),
    metadata=st.dictionaries(
        st.sampled_from(
            [
                "ss_base_model_version",
                "modelspec.architecture",
                "ss_tag_frequency",
                "modelspec.trigger_phrase",
            ]
        ),
        st.one_of(st.text(max_size=20), invoke_objects.map(json.dumps), deep),
        max_size=4,
    ),
)
def test_any_lora_header_is_read_within_bounds(
    names: list[str], shapes: list[object], metadata: dict[str, str]
) -> None:
    header: dict[str, object] = {
        name: {"shape": shape} for name, shape in zip(names, shapes, strict=False)
    }
    header["__metadata__"] = metadata
    within_bounds(
        "lora header (hypothesis)",
        lambda: lora_header([name for name in header if name != "__metadata__"], header),
        errors=(),
    )


@given(
    key=st.sampled_from([b"prompt", b"invokeai_metadata", b"workflow"]),
    text=st.one_of(graphs.map(json.dumps), invoke_objects.map(json.dumps), deep),
)
def test_any_png_with_another_tools_chunk_is_read_within_bounds(
    folder: Path, key: bytes, text: str
) -> None:
    path = folder / "foreign.png"
    path.write_bytes(png([png_chunk(b"tEXt", key + b"\0" + text.encode("utf-8"))]))
    within_bounds(
        "foreign png metadata (hypothesis)", lambda: read_metadata(path), errors=(OSError,)
    )

"""Reading repository file lists: GGUF quantizations and splits, diffusers layouts."""

from __future__ import annotations

import pytest

from app.hub.models import RepoFile
from app.hub.repo_files import (
    GgufModel,
    bits_per_weight,
    diffusers_layout,
    group_gguf_models,
    parse_quantization,
)


def files(*paths: str, size: int | None = 1000) -> list[RepoFile]:
    return [RepoFile(path=path, size=size) for path in paths]


# --- parse_quantization ----------------------------------------------------------------------

ALL_QUANTIZATIONS = [
    "F32", "F16", "BF16", "Q8_0", "Q8_1", "Q6_K", "Q5_K_M", "Q5_K_S", "Q5_0", "Q5_1",
    "Q4_K_M", "Q4_K_S", "Q4_0", "Q4_1", "Q4_0_4_4", "Q4_0_4_8", "Q4_0_8_8", "Q3_K_L",
    "Q3_K_M", "Q3_K_S", "Q3_K_XL", "Q2_K", "Q2_K_S", "IQ1_S", "IQ1_M", "IQ2_XXS", "IQ2_XS",
    "IQ2_S", "IQ2_M", "IQ3_XXS", "IQ3_XS", "IQ3_S", "IQ3_M", "IQ4_XS", "IQ4_NL", "TQ1_0",
    "TQ2_0", "MXFP4", "UD-Q4_K_XL", "UD-IQ1_S", "Q4_K_L", "Q6_K_L", "Q8_K_XL",
]  # fmt: skip


@pytest.mark.parametrize("quant", ALL_QUANTIZATIONS)
@pytest.mark.parametrize("separator", [".", "-", "_"])
@pytest.mark.parametrize("lower", [False, True])
def test_every_quantization_is_recognised_with_any_separator_and_case(
    quant: str, separator: str, lower: bool
) -> None:
    name = f"Some-Model-7B{separator}{quant.lower() if lower else quant}.gguf"
    assert parse_quantization(name) == quant
    assert bits_per_weight(quant) is not None


@pytest.mark.parametrize(
    ("filename", "expected"),
    [
        ("Llama-3.2-1B-Instruct-Q4_K_M.gguf", "Q4_K_M"),
        ("qwen2.5-7b-instruct-q4_k_m-00001-of-00002.gguf", "Q4_K_M"),
        ("model.Q8_0.gguf", "Q8_0"),
        ("ggml-model-f16.gguf", "F16"),
        ("llama-2-7b-chat.Q4_K_M.gguf", "Q4_K_M"),
        ("mistral-7b-instruct-v0.2.Q5_K_S.gguf", "Q5_K_S"),
        ("tinyllama-1.1b-chat-v1.0.Q2_K.gguf", "Q2_K"),
        ("Meta-Llama-3.1-8B-Instruct-IQ2_XXS.gguf", "IQ2_XXS"),
        ("Meta-Llama-3.1-8B-Instruct-Q4_0_4_4.gguf", "Q4_0_4_4"),
        ("Meta-Llama-3.1-8B-Instruct-Q6_K_L.gguf", "Q6_K_L"),
        ("Meta-Llama-3.1-8B-Instruct-f32.gguf", "F32"),
        ("Qwen3-30B-A3B-UD-Q4_K_XL.gguf", "UD-Q4_K_XL"),
        ("DeepSeek-R1-UD-IQ1_S-00001-of-00003.gguf", "UD-IQ1_S"),
        ("Qwen3-235B-A22B-UD-TQ1_0.gguf", "UD-TQ1_0"),
        ("gpt-oss-20b-MXFP4.gguf", "MXFP4"),
        ("gpt-oss-20b-mxfp4_moe.gguf", "MXFP4"),
        ("Llama-3.2-1B-Instruct-BF16.gguf", "BF16"),
        ("qwen2.5-0.5b-instruct-fp16.gguf", "F16"),
        ("Phi-3-mini-4k-instruct-fp16.gguf", "F16"),
        ("ggml-model-IQ4_NL.gguf", "IQ4_NL"),
        ("mmproj-model-f16.gguf", "F16"),
        ("model_q4_k_m.gguf", "Q4_K_M"),
        ("Model-Q4_K_M.GGUF", "Q4_K_M"),
        ("model-q4_k_m-imat.gguf", "Q4_K_M"),
        ("model_Q4_K_M_split.gguf", "Q4_K_M"),
        # The last quantization wins: quantized from F16 to Q8_0.
        ("llama-f16-q8_0.gguf", "Q8_0"),
        # Folders are not part of the name.
        ("Q4_K_M/model.gguf", None),
        ("BF16/Model-Q8_0.gguf", "Q8_0"),
        # Not quantizations, or not tokens of their own.
        ("model.gguf", None),
        ("openhermes-2.5-mistral-7b.gguf", None),
        ("Phi-3-mini-4k-instruct-q4.gguf", None),
        ("half-xf16.gguf", None),
        ("f16model.gguf", None),
        ("model-bf16x.gguf", None),
        ("model-Q4KM.gguf", None),
        ("model-Q4_K_M2.gguf", None),
        ("model-Q8_0_L.gguf", None),
        ("ggml-model-i2_s.gguf", None),
        ("", None),
    ],
)
def test_parse_quantization_on_real_world_names(filename: str, expected: str | None) -> None:
    assert parse_quantization(filename) == expected


# --- bits_per_weight -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("quant", "expected"),
    [
        ("Q4_K_M", 4.85),
        ("Q8_0", 8.5),
        ("F16", 16.0),
        ("BF16", 16.0),
        ("F32", 32.0),
        ("Q4_0", 4.5),
        ("MXFP4", 4.25),
        ("IQ2_XXS", 2.06),
        ("q4_k_m", 4.85),
        ("fp16", 16.0),
        ("UD-Q4_K_XL", bits_per_weight("Q4_K_XL")),
        ("ud-iq1_s", bits_per_weight("IQ1_S")),
    ],
)
def test_bits_per_weight_table(quant: str, expected: float | None) -> None:
    assert expected is not None
    assert bits_per_weight(quant) == pytest.approx(expected)


@pytest.mark.parametrize("quant", [None, "", "Q4", "Q9_K", "GPTQ", "UD-"])
def test_bits_per_weight_is_none_when_unknown(quant: str | None) -> None:
    assert bits_per_weight(quant) is None


def test_bits_per_weight_orders_the_common_quantizations() -> None:
    order = ["F32", "F16", "Q8_0", "Q6_K", "Q5_K_M", "Q4_K_M", "Q3_K_M", "Q2_K", "IQ1_S"]
    bits = [bits_per_weight(quant) for quant in order]
    assert all(b is not None for b in bits)
    assert bits == sorted(bits, key=lambda b: -(b or 0.0))
    assert len(set(bits)) == len(bits)


# --- group_gguf_models -----------------------------------------------------------------------


def by_name(models: tuple[GgufModel, ...]) -> dict[str, GgufModel]:
    return {model.name: model for model in models}


def test_single_files_become_one_model_each_best_quality_first() -> None:
    repo = files(
        "README.md",
        ".gitattributes",
        "Llama-3.2-1B-Instruct-Q4_K_M.gguf",
        "Llama-3.2-1B-Instruct-IQ2_XS.gguf",
        "Llama-3.2-1B-Instruct-f16.gguf",
        "Llama-3.2-1B-Instruct-Q8_0.gguf",
        "Llama-3.2-1B-Instruct.gguf",
        "mmproj-model-f16.gguf",
        "config.json",
    )
    models = group_gguf_models(repo)
    assert [m.quantization for m in models] == ["F16", "Q8_0", "Q4_K_M", "IQ2_XS", None, "F16"]
    assert models[-1].is_projector
    assert not any(m.is_projector for m in models[:-1])
    q4 = by_name(models)["Llama-3.2-1B-Instruct-Q4_K_M"]
    assert q4.parts == (RepoFile(path="Llama-3.2-1B-Instruct-Q4_K_M.gguf", size=1000),)
    assert q4.path == "Llama-3.2-1B-Instruct-Q4_K_M.gguf"
    assert q4.size == 1000
    assert q4.is_complete


def test_order_does_not_depend_on_input_order() -> None:
    repo = files(
        "m-Q4_K_M.gguf", "m-Q5_K_M.gguf", "m-BF16.gguf", "m-F16.gguf", "m-UD-Q4_K_XL.gguf",
        "a-Q4_K_M.gguf", "mmproj-F16.gguf", "m-weird.gguf", "x/m-Q4_K_M.gguf",
    )  # fmt: skip
    forward = group_gguf_models(repo)
    assert group_gguf_models(reversed(repo)) == forward
    assert [m.parts[0].path for m in forward] == [
        "m-BF16.gguf",
        "m-F16.gguf",
        "m-Q5_K_M.gguf",
        "a-Q4_K_M.gguf",
        "m-Q4_K_M.gguf",
        "x/m-Q4_K_M.gguf",
        "m-UD-Q4_K_XL.gguf",
        "m-weird.gguf",
        "mmproj-F16.gguf",
    ]


def test_split_parts_become_one_model_in_part_order() -> None:
    repo = [
        RepoFile(path="qwen2.5-7b-instruct-q4_k_m-00002-of-00002.gguf", size=700),
        RepoFile(path="qwen2.5-7b-instruct-q4_k_m-00001-of-00002.gguf", size=4000),
        RepoFile(path="qwen2.5-7b-instruct-q8_0-00001-of-00003.gguf", size=4000),
        RepoFile(path="qwen2.5-7b-instruct-q8_0-00003-of-00003.gguf", size=100),
        RepoFile(path="qwen2.5-7b-instruct-q8_0-00002-of-00003.gguf", size=4000),
    ]
    models = group_gguf_models(repo)
    assert [m.name for m in models] == [
        "qwen2.5-7b-instruct-q8_0",
        "qwen2.5-7b-instruct-q4_k_m",
    ]
    q8, q4 = models
    assert [p.path for p in q8.parts] == [
        "qwen2.5-7b-instruct-q8_0-00001-of-00003.gguf",
        "qwen2.5-7b-instruct-q8_0-00002-of-00003.gguf",
        "qwen2.5-7b-instruct-q8_0-00003-of-00003.gguf",
    ]
    assert q8.size == 8100 and q8.is_complete and q8.quantization == "Q8_0"
    assert q4.parts[0].path.endswith("-00001-of-00002.gguf")
    assert q4.size == 4700 and q4.is_complete and q4.quantization == "Q4_K_M"
    assert q4.path == "qwen2.5-7b-instruct-q4_k_m-00001-of-00002.gguf"


def test_split_with_missing_parts_is_incomplete() -> None:
    repo = [
        RepoFile(path="big-Q4_K_M-00001-of-00003.gguf", size=10),
        RepoFile(path="big-Q4_K_M-00003-of-00003.gguf", size=5),
    ]
    (model,) = group_gguf_models(repo)
    assert not model.is_complete
    assert len(model.parts) == 2
    assert model.size == 15  # the parts present


def test_size_is_unknown_when_any_part_size_is() -> None:
    repo = [
        RepoFile(path="big-Q4_K_M-00001-of-00002.gguf", size=10),
        RepoFile(path="big-Q4_K_M-00002-of-00002.gguf", size=None),
        RepoFile(path="small-Q4_K_M.gguf", size=None),
    ]
    assert all(model.size is None for model in group_gguf_models(repo))


def test_splits_in_folders_group_by_folder_and_name() -> None:
    repo = files(
        "DeepSeek-R1-UD-IQ1_S/DeepSeek-R1-UD-IQ1_S-00002-of-00003.gguf",
        "DeepSeek-R1-UD-IQ1_S/DeepSeek-R1-UD-IQ1_S-00001-of-00003.gguf",
        "DeepSeek-R1-UD-IQ1_S/DeepSeek-R1-UD-IQ1_S-00003-of-00003.gguf",
        "DeepSeek-R1-Q8_0/DeepSeek-R1-Q8_0-00001-of-00002.gguf",
        "mirror/DeepSeek-R1-Q8_0-00001-of-00002.gguf",
        "mirror/DeepSeek-R1-Q8_0-00002-of-00002.gguf",
    )
    models = group_gguf_models(repo)
    assert len(models) == 3
    q8_folder, q8_mirror, iq1 = models
    assert q8_folder.name == q8_mirror.name == "DeepSeek-R1-Q8_0"
    assert q8_folder.path.startswith("DeepSeek-R1-Q8_0/") and not q8_folder.is_complete
    assert q8_mirror.path.startswith("mirror/") and q8_mirror.is_complete
    assert iq1.quantization == "UD-IQ1_S" and iq1.is_complete and len(iq1.parts) == 3
    assert all(p.path.startswith("DeepSeek-R1-UD-IQ1_S/") for p in iq1.parts)


def test_quantization_falls_back_to_the_folder_name() -> None:
    (model,) = group_gguf_models(files("weights/Q5_K_M/model-00001-of-00001.gguf"))
    assert model.name == "model"
    assert model.quantization == "Q5_K_M"


def test_same_stem_with_different_part_counts_stays_apart() -> None:
    repo = files("m-Q4_0-00001-of-00002.gguf", "m-Q4_0-00001-of-00003.gguf")
    models = group_gguf_models(repo)
    assert len(models) == 2
    assert not any(m.is_complete for m in models)


@pytest.mark.parametrize(
    "path", ["m-Q4_0-00000-of-00002.gguf", "m-Q4_0-00003-of-00002.gguf", "m-Q4_0-0001-of-0002.gguf"]
)
def test_impossible_split_names_are_single_files(path: str) -> None:
    (model,) = group_gguf_models(files(path))
    assert model.name == path.removesuffix(".gguf")
    assert model.is_complete


@pytest.mark.parametrize(
    ("path", "is_projector"),
    [
        ("mmproj-model-f16.gguf", True),
        ("mmproj-Qwen2-VL-7B-Instruct-f16.gguf", True),
        ("Qwen2.5-Omni-7B-mmproj-Q8_0.gguf", True),
        ("llava/MMPROJ_F16.gguf", True),
        ("mmprojector-Q4_0.gguf", False),
        ("gemma-3-4b-it-Q4_K_M.gguf", False),
    ],
)
def test_projectors(path: str, is_projector: bool) -> None:
    (model,) = group_gguf_models(files(path))
    assert model.is_projector is is_projector


def test_no_gguf_files_no_models() -> None:
    assert group_gguf_models(files("model.safetensors", "gguf.txt", "notes.gguf.md")) == ()
    assert group_gguf_models([]) == ()


# --- diffusers_layout ------------------------------------------------------------------------

SD15 = files(
    ".gitattributes",
    "README.md",
    "model_index.json",
    "feature_extractor/preprocessor_config.json",
    "safety_checker/config.json",
    "safety_checker/model.fp16.safetensors",
    "safety_checker/model.safetensors",
    "safety_checker/pytorch_model.bin",
    "safety_checker/pytorch_model.fp16.bin",
    "scheduler/scheduler_config.json",
    "text_encoder/config.json",
    "text_encoder/model.fp16.safetensors",
    "text_encoder/model.safetensors",
    "tokenizer/vocab.json",
    "unet/config.json",
    "unet/diffusion_pytorch_model.bin",
    "unet/diffusion_pytorch_model.fp16.safetensors",
    "unet/diffusion_pytorch_model.non_ema.bin",
    "unet/diffusion_pytorch_model.safetensors",
    "vae/config.json",
    "vae/diffusion_pytorch_model.fp16.safetensors",
    "vae/diffusion_pytorch_model.safetensors",
    "v1-5-pruned.safetensors",
    "v1-5-pruned-emaonly.safetensors",
    "v1-5-pruned-emaonly.ckpt",
)


def test_stable_diffusion_1_5_layout() -> None:
    layout = diffusers_layout(SD15)
    assert layout.is_pipeline
    assert layout.components == ("safety_checker", "text_encoder", "unet", "vae")
    assert layout.variants == ("fp16", "non_ema")
    assert layout.has_safetensors
    assert layout.has_pickle
    assert [f.path for f in layout.single_file_checkpoints] == [
        "v1-5-pruned-emaonly.ckpt",
        "v1-5-pruned-emaonly.safetensors",
        "v1-5-pruned.safetensors",
    ]


def test_safetensors_only_pipeline_with_default_weights() -> None:
    layout = diffusers_layout(
        files(
            "model_index.json",
            "scheduler/scheduler_config.json",
            "transformer/config.json",
            "transformer/diffusion_pytorch_model-00001-of-00002.safetensors",
            "transformer/diffusion_pytorch_model-00002-of-00002.safetensors",
            "transformer/diffusion_pytorch_model.safetensors.index.json",
            "text_encoder_2/model-00001-of-00002.safetensors",
            "text_encoder_2/model-00002-of-00002.safetensors",
            "text_encoder_2/model.safetensors.index.json",
            "vae/diffusion_pytorch_model.safetensors",
            "flux1-dev.safetensors",
            "ae.safetensors",
        )
    )
    assert layout.is_pipeline
    assert layout.components == ("text_encoder_2", "transformer", "vae")
    assert layout.variants == ()
    assert layout.has_safetensors and not layout.has_pickle
    assert [f.path for f in layout.single_file_checkpoints] == [
        "ae.safetensors",
        "flux1-dev.safetensors",
    ]


@pytest.mark.parametrize(
    "path",
    [
        "unet/diffusion_pytorch_model.fp16.safetensors",
        "text_encoder/model.fp16-00001-of-00002.safetensors",
        "transformer/diffusion_pytorch_model-00001-of-00002.fp16.safetensors",
        "safety_checker/pytorch_model.fp16.bin",
    ],
)
def test_fp16_variant_names(path: str) -> None:
    assert diffusers_layout(files("model_index.json", path)).variants == ("fp16",)


def test_openvino_bin_beside_its_xml_is_not_pickle() -> None:
    sdxl_text_encoder = files(
        "model_index.json",
        "text_encoder/config.json",
        "text_encoder/flax_model.msgpack",
        "text_encoder/model.onnx",
        "text_encoder/model.fp16.safetensors",
        "text_encoder/openvino_model.bin",
        "text_encoder/openvino_model.xml",
    )
    layout = diffusers_layout(sdxl_text_encoder)
    assert not layout.has_pickle
    assert layout.has_safetensors
    assert layout.variants == ("fp16",)


@pytest.mark.parametrize(
    "path",
    [
        "text_encoder/openvino_model.bin",  # no .xml beside it
        "unet/diffusion_pytorch_model.bin",
        "model.ckpt",
        "embeddings/learned_embeds.pt",
        "upscaler/RealESRGAN_x4.pth",
        "training_args.bin",
    ],
)
def test_pickle_weights_are_detected(path: str) -> None:
    layout = diffusers_layout(files(path))
    assert layout.has_pickle
    assert not layout.has_safetensors


def test_single_file_checkpoint_repo() -> None:
    layout = diffusers_layout(
        files(
            "README.md",
            "sd_xl_base_1.0.safetensors",
            "sd_xl_base_1.0_0.9vae.safetensors",
            "model-00001-of-00002.safetensors",
            "model.fp16.pth",
            "nested/model_index.json",
        )
    )
    assert not layout.is_pipeline
    assert layout.components == ()
    assert layout.variants == ("fp16",)  # from model.fp16.pth, not from "1.0"
    assert layout.has_pickle and layout.has_safetensors
    assert [f.path for f in layout.single_file_checkpoints] == [
        "sd_xl_base_1.0.safetensors",
        "sd_xl_base_1.0_0.9vae.safetensors",
    ]


def test_weights_deeper_than_a_component_folder_are_not_components() -> None:
    layout = diffusers_layout(files("unet/ema/diffusion_pytorch_model.safetensors", "a/b/c/x.bin"))
    assert layout.components == ()
    assert layout.has_safetensors and layout.has_pickle


def test_empty_repo_and_one_shot_iterables() -> None:
    empty = diffusers_layout([])
    assert empty.components == empty.variants == ()
    assert empty.single_file_checkpoints == ()
    assert not (empty.is_pipeline or empty.has_safetensors or empty.has_pickle)
    assert diffusers_layout(iter(SD15)) == diffusers_layout(SD15)

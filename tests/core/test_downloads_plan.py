"""Download plans: which files a GGUF pick, a glob or a diffusers variant brings, with hashes."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable

import pytest

from app.downloads import PlannedFile, plan_diffusers, plan_files, plan_gguf
from app.downloads.plan import check_pipeline
from app.errors import RepoFileNotFoundError
from app.hub.huggingface import HuggingFaceHub
from app.hub.models import ModelDetails
from app.hub.repo_files import group_gguf_models
from tests.support.hub_server import HubServer, git_blob_sha1

CONFIG = b'{"model_type": "llama"}'


@pytest.fixture
def gguf_details(hub_server: HubServer, hub: HuggingFaceHub) -> ModelDetails:
    hub_server.add_repo(
        "org/tiny-GGUF",
        {
            "tiny-Q4_K_M.gguf": b"GGUF-q4",
            "tiny-Q8_0.gguf": b"GGUF-q8",
            "big/big-Q6_K-00001-of-00002.gguf": b"GGUF-a",
            "big/big-Q6_K-00002-of-00002.gguf": b"GGUF-b",
            "mmproj-tiny-F16.gguf": b"GGUF-proj",
            "config.json": CONFIG,
        },
        card="# tiny\n",
    )
    return hub.model_details("org/tiny-GGUF")


def paths(files: Iterable[PlannedFile]) -> list[str]:
    return [file.path for file in files]


def test_a_quantization_name_picks_that_gguf(gguf_details: ModelDetails) -> None:
    plan = plan_files(gguf_details, ["q8_0"])
    # The repository ships a vision projector: it comes with every model (see below).
    assert paths(plan.files) == ["mmproj-tiny-F16.gguf", "tiny-Q8_0.gguf"]
    assert plan.revision == gguf_details.sha
    assert plan.ref == "main"
    assert plan.label == "q8_0"
    (_, file) = plan.files
    assert file.size == len(b"GGUF-q8")
    assert file.sha256 == file.etag == hashlib.sha256(b"GGUF-q8").hexdigest()


def test_one_part_or_the_name_of_a_split_gguf_brings_every_part(
    gguf_details: ModelDetails,
) -> None:
    parts = [
        "big/big-Q6_K-00001-of-00002.gguf",
        "big/big-Q6_K-00002-of-00002.gguf",
        "mmproj-tiny-F16.gguf",
    ]
    assert paths(plan_files(gguf_details, [parts[1]]).files) == parts
    assert paths(plan_files(gguf_details, ["big-Q6_K"]).files) == parts
    assert paths(plan_files(gguf_details, ["Q6_K"]).files) == parts
    split = next(m for m in group_gguf_models(gguf_details.files) if m.quantization == "Q6_K")
    plan = plan_gguf(gguf_details, split)
    assert paths(plan.files) == parts
    assert plan.label == "Q6_K"
    assert plan.total_size == len(b"GGUF-a") + len(b"GGUF-b") + len(b"GGUF-proj")


def test_globs_exact_paths_and_the_whole_repo(gguf_details: ModelDetails) -> None:
    assert paths(plan_files(gguf_details, ["*.json"]).files) == ["config.json"]
    plan = plan_files(gguf_details, ["config.json", "tiny-Q4_K_M.gguf"])
    # repository order
    assert paths(plan.files) == ["config.json", "mmproj-tiny-F16.gguf", "tiny-Q4_K_M.gguf"]
    (config, _, _) = plan.files
    assert config.sha256 is None
    assert config.etag == git_blob_sha1(CONFIG)  # a regular file's blob name is its git id
    everything = plan_files(gguf_details)
    assert {f.path for f in everything.files} == {f.path for f in gguf_details.files}
    assert everything.label == "all files"


def test_a_pattern_that_matches_nothing_refuses_the_plan(gguf_details: ModelDetails) -> None:
    with pytest.raises(RepoFileNotFoundError, match="no file matching 'Q2_K'"):
        plan_files(gguf_details, ["tiny-Q4_K_M.gguf", "Q2_K"])


def test_asking_for_a_commit_writes_no_ref(gguf_details: ModelDetails) -> None:
    assert gguf_details.sha is not None
    assert plan_files(gguf_details, ["*.json"], ref=gguf_details.sha).ref is None
    assert plan_files(gguf_details, ["*.json"], ref="v1.0").ref == "v1.0"


DIFFUSERS_FILES = [
    "model_index.json",
    "README.md",
    "v1-5-pruned.safetensors",  # a single-file checkpoint: not part of the pipeline
    "scheduler/scheduler_config.json",
    "feature_extractor/preprocessor_config.json",
    "tokenizer/merges.txt",
    "tokenizer/special_tokens_map.json",
    "tokenizer/tokenizer_config.json",
    "tokenizer/vocab.json",
    "text_encoder/config.json",
    "text_encoder/model.safetensors",
    "text_encoder/model.fp16.safetensors",
    "text_encoder/pytorch_model.bin",
    "text_encoder/pytorch_model.fp16.bin",
    "unet/config.json",
    "unet/diffusion_pytorch_model.safetensors",
    "unet/diffusion_pytorch_model.fp16.safetensors",
    "unet/diffusion_pytorch_model.bin",
    "unet/diffusion_pytorch_model.fp16.bin",
    "unet/diffusion_flax_model.msgpack",
    "vae/config.json",
    "vae/diffusion_pytorch_model.bin",  # pickle only: .bin it is
    "vae/diffusion_pytorch_model.fp16.bin",
    "safety_checker/config.json",
    "safety_checker/model.safetensors",  # no fp16 variant: the default weights are used
    "text_encoder_2/config.json",
    "text_encoder_2/model.safetensors.index.json",
    "text_encoder_2/model-00001-of-00002.safetensors",
    "text_encoder_2/model-00002-of-00002.safetensors",
    "text_encoder_2/model.safetensors.index.fp16.json",
    "text_encoder_2/model.fp16-00001-of-00002.safetensors",
    "text_encoder_2/model.fp16-00002-of-00002.safetensors",
    "onnx/unet/model.onnx",
]


@pytest.fixture
def pipeline_details(hub_server: HubServer, hub: HuggingFaceHub) -> ModelDetails:
    files = {path: f"content of {path}".encode() for path in DIFFUSERS_FILES}
    hub_server.add_repo("org/tiny-sd", files, library_name="diffusers")
    return hub.model_details("org/tiny-sd")


COMPONENT_FILES = {
    "model_index.json",
    "scheduler/scheduler_config.json",
    "feature_extractor/preprocessor_config.json",
    "tokenizer/merges.txt",
    "tokenizer/special_tokens_map.json",
    "tokenizer/tokenizer_config.json",
    "tokenizer/vocab.json",
    "text_encoder/config.json",
    "unet/config.json",
    "vae/config.json",
    "safety_checker/config.json",
    "text_encoder_2/config.json",
}


def test_a_diffusers_fp16_plan_takes_one_variant_safetensors_first(
    pipeline_details: ModelDetails,
) -> None:
    plan = plan_diffusers(pipeline_details, "fp16")
    assert plan.label == "fp16"
    assert set(paths(plan.files)) == COMPONENT_FILES | {
        "text_encoder/model.fp16.safetensors",
        "unet/diffusion_pytorch_model.fp16.safetensors",
        "vae/diffusion_pytorch_model.fp16.bin",
        "safety_checker/model.safetensors",
        "text_encoder_2/model.safetensors.index.fp16.json",
        "text_encoder_2/model.fp16-00001-of-00002.safetensors",
        "text_encoder_2/model.fp16-00002-of-00002.safetensors",
    }


def test_a_default_diffusers_plan_takes_no_variant(pipeline_details: ModelDetails) -> None:
    plan = plan_diffusers(pipeline_details, None)
    assert plan.label == "default"
    assert set(paths(plan.files)) == COMPONENT_FILES | {
        "text_encoder/model.safetensors",
        "unet/diffusion_pytorch_model.safetensors",
        "vae/diffusion_pytorch_model.bin",
        "safety_checker/model.safetensors",
        "text_encoder_2/model.safetensors.index.json",
        "text_encoder_2/model-00001-of-00002.safetensors",
        "text_encoder_2/model-00002-of-00002.safetensors",
    }


def test_a_diffusers_plan_refuses_what_the_repo_lacks(
    pipeline_details: ModelDetails, hub_server: HubServer, hub: HuggingFaceHub
) -> None:
    with pytest.raises(RepoFileNotFoundError, match="no bf16 weights") as caught:
        plan_diffusers(pipeline_details, "bf16")
    assert caught.value.hint == "Variants offered: fp16."

    hub_server.add_repo("org/not-a-pipeline", {"unet/diffusion_pytorch_model.bin": b"x"})
    with pytest.raises(RepoFileNotFoundError, match="not a diffusers pipeline"):
        plan_diffusers(hub.model_details("org/not-a-pipeline"), None)

    hub_server.add_repo(
        "org/fp16-only",
        {"model_index.json": b"{}", "unet/diffusion_pytorch_model.fp16.safetensors": b"x"},
    )
    with pytest.raises(RepoFileNotFoundError, match="unet has no default weights"):
        plan_diffusers(hub.model_details("org/fp16-only"), None)


def add_pipeline(
    hub_server: HubServer, hub: HuggingFaceHub, repo_id: str, weights: list[str]
) -> ModelDetails:
    files = {
        "model_index.json": b"{}",
        "unet/config.json": b"{}",
        "text_encoder/config.json": b"{}",
    }
    files.update({path: f"weights of {path}".encode() for path in weights})
    hub_server.add_repo(repo_id, files, library_name="diffusers")
    return hub.model_details(repo_id)


def test_a_pipeline_with_safetensors_everywhere_runs(
    hub_server: HubServer, hub: HuggingFaceHub
) -> None:
    details = add_pipeline(
        hub_server,
        hub,
        "org/safe",
        ["unet/diffusion_pytorch_model.safetensors", "text_encoder/model.safetensors"],
    )
    check = check_pipeline(details, None)
    assert check.runs
    assert check.pickle_components == ()
    assert check.alternative is None


def test_a_pickle_only_component_is_named_and_its_safetensors_offered(
    hub_server: HubServer, hub: HuggingFaceHub
) -> None:
    # fp16 has the text encoder only as a pickle; its default weights are safetensors.
    details = add_pipeline(
        hub_server,
        hub,
        "org/fp16-pickle-encoder",
        [
            "unet/diffusion_pytorch_model.fp16.safetensors",
            "unet/diffusion_pytorch_model.safetensors",
            "text_encoder/pytorch_model.fp16.bin",
            "text_encoder/model.safetensors",
        ],
    )
    check = check_pipeline(details, "fp16")
    assert not check.runs
    assert check.pickle_components == ("text_encoder",)
    assert check.alternative == ("fp16", True)

    plan = plan_diffusers(details, "fp16", safetensors_fallback=True)
    weights = {path for path in paths(plan.files) if not path.endswith(".json")}
    # No fp16 file in the encoder's folder: diffusers loads its default weights there.
    assert weights == {
        "unet/diffusion_pytorch_model.fp16.safetensors",
        "text_encoder/model.safetensors",
    }
    assert check_pipeline(details, None).runs


def test_default_weights_as_pickles_point_to_a_variant_with_safetensors(
    hub_server: HubServer, hub: HuggingFaceHub
) -> None:
    details = add_pipeline(
        hub_server,
        hub,
        "org/default-pickles",
        [
            "unet/diffusion_pytorch_model.bin",
            "unet/diffusion_pytorch_model.fp16.safetensors",
            "text_encoder/pytorch_model.bin",
            "text_encoder/model.fp16.safetensors",
        ],
    )
    check = check_pipeline(details, None)
    assert set(check.pickle_components) == {"text_encoder", "unet"}
    assert check.alternative == ("fp16", False)


def test_a_pickle_with_no_safetensors_anywhere_has_no_alternative(
    pipeline_details: ModelDetails,
) -> None:
    check = check_pipeline(pipeline_details, "fp16")
    assert check.pickle_components == ("vae",)
    assert check.alternative is None
    with pytest.raises(RepoFileNotFoundError, match="no bf16 weights"):
        check_pipeline(pipeline_details, "bf16")


@pytest.mark.parametrize(
    ("model", "projector"),
    [
        ("vision-Q8_0.gguf", "mmproj-vision-Q8_0.gguf"),  # the model's own precision
        ("vision-BF16.gguf", "mmproj-vision-BF16.gguf"),
        ("vision-Q4_K_M.gguf", "mmproj-vision-F16.gguf"),  # not offered: F16, the usual one
    ],
)
def test_a_vision_model_brings_the_projector_of_its_precision(
    hub_server: HubServer, hub: HuggingFaceHub, model: str, projector: str
) -> None:
    files = {
        name: f"GGUF-{name}".encode()
        for name in (
            "vision-Q4_K_M.gguf",
            "vision-Q8_0.gguf",
            "vision-BF16.gguf",
            "mmproj-vision-F32.gguf",
            "mmproj-vision-F16.gguf",
            "mmproj-vision-BF16.gguf",
            "mmproj-vision-Q8_0.gguf",
        )
    }
    hub_server.add_repo("org/vision-GGUF", files, card="# vision\n")
    details = hub.model_details("org/vision-GGUF")
    chosen = next(m for m in group_gguf_models(details.files) if m.path == model)
    assert sorted(paths(plan_gguf(details, chosen).files)) == sorted([model, projector])
    assert sorted(paths(plan_files(details, [model]).files)) == sorted([model, projector])


def test_a_projector_in_the_models_folder_wins(hub_server: HubServer, hub: HuggingFaceHub) -> None:
    files = {
        "a/model-Q4_K_M.gguf": b"GGUF-a",
        "a/mmproj-a-F32.gguf": b"GGUF-pa",
        "b/model-Q4_K_M.gguf": b"GGUF-b",
        "b/mmproj-b-F16.gguf": b"GGUF-pb",
    }
    hub_server.add_repo("org/two-GGUF", files, card="# two\n")
    details = hub.model_details("org/two-GGUF")
    assert paths(plan_files(details, ["a/model-Q4_K_M.gguf"]).files) == [
        "a/mmproj-a-F32.gguf",
        "a/model-Q4_K_M.gguf",
    ]


def test_a_text_model_downloads_alone(hub_server: HubServer, hub: HuggingFaceHub) -> None:
    hub_server.add_repo("org/text-GGUF", {"text-Q4_K_M.gguf": b"GGUF-t"}, card="# t\n")
    details = hub.model_details("org/text-GGUF")
    (model,) = group_gguf_models(details.files)
    assert paths(plan_gguf(details, model).files) == ["text-Q4_K_M.gguf"]

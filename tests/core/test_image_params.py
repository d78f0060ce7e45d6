"""Image parameters, size presets, memory savers and PNG metadata: pure code, no engine."""

from __future__ import annotations

import gzip
import json
from dataclasses import replace
from importlib import resources
from pathlib import Path

import pytest
from PIL import Image

from app.engines.errors import EngineErrorKind
from app.images import (
    ImageParams,
    ImageParamsError,
    ModelRef,
    choose_memory_savers,
    default_size,
    read_metadata,
    save_png,
    size_presets,
)
from app.images.diffusers_worker import failure_kind
from app.images.png_metadata import (
    A1111_KEY,
    METADATA_KEY,
    ImageMetadata,
    a1111_parameters,
    metadata_chunks,
    parse_a1111_parameters,
)
from app.images.single_file import FAMILY_CONFIGS, clip_vocabulary, config_folder

GIB = 1024**3

MODEL = ModelRef(name="dreamshaper_8", sha256="879db523c3" + "0" * 54, family="SD 1.x")
PARAMS = ImageParams(
    prompt="a lighthouse at dusk, oil painting",
    negative="blurry, text",
    steps=25,
    guidance=6.5,
    seed=1234,
    width=512,
    height=768,
    scheduler="Euler a",
    model=MODEL,
)


# --- ImageParams -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"width": 500}, "width"),
        ({"height": 1001}, "height"),
        ({"width": 32}, "width"),
        ({"steps": 0}, "steps"),
        ({"guidance": -1.0}, "guidance"),
        ({"guidance": float("nan")}, "guidance"),
        ({"seed": -1}, "seed"),
        ({"seed": 2**32}, "seed"),
        ({"scheduler": "Karras"}, "scheduler"),
        ({"batch": 0}, "batch"),
        ({"strength": 1.5}, "strength"),
    ],
)
def test_out_of_range_parameters_are_refused_with_the_field(
    change: dict[str, object], field: str
) -> None:
    with pytest.raises(ImageParamsError) as caught:
        replace(PARAMS, **change)  # type: ignore[arg-type]
    assert caught.value.field == field
    assert isinstance(caught.value, ValueError)


def test_a_size_that_is_not_a_multiple_of_8_says_which_sizes_work() -> None:
    with pytest.raises(ImageParamsError) as caught:
        ImageParams(prompt="x", width=500)
    assert "multiple of 8" in caught.value.message
    assert caught.value.hint == "Use 496 or 504."


def test_params_survive_json() -> None:
    img2img = replace(PARAMS, init_image="/tmp/source.png", strength=0.4, batch=3)
    for params in (PARAMS, img2img, ImageParams(prompt="")):
        assert ImageParams.from_json(json.loads(json.dumps(params.to_json()))) == params


def test_from_json_refuses_wrong_types() -> None:
    with pytest.raises(ImageParamsError):
        ImageParams.from_json({"prompt": "x", "steps": "many"})
    with pytest.raises(ImageParamsError):
        ImageParams.from_json({"prompt": "x", "width": 64.5})


def test_a_random_seed_is_chosen_once_and_batches_count_up_from_it() -> None:
    params = ImageParams(prompt="x", batch=3)
    seeded = params.with_seed()
    assert seeded.seed is not None
    assert seeded.with_seed() is seeded
    assert [seeded.for_image(i).seed for i in range(3)] == [seeded.seed + i for i in range(3)]
    assert seeded.for_image(2).batch == 1
    with pytest.raises(ImageParamsError):
        params.for_image(0)


def test_size_presets_per_family() -> None:
    assert default_size("SD 1.x") == (512, 512)
    assert default_size("SD 2.x") == (768, 768)
    assert default_size("SDXL") == (1024, 1024)
    assert default_size(None) == (512, 512)
    for family in ("SD 1.x", "SD 2.x", "SDXL"):
        presets = size_presets(family)
        assert {preset.label for preset in presets} >= {"1:1", "2:3", "3:2"}
        for preset in presets:
            ImageParams(prompt="", width=preset.width, height=preset.height)  # valid
    assert ("2:3", 832, 1216) in [(p.label, p.width, p.height) for p in size_presets("SDXL")]


# --- memory savers ----------------------------------------------------------------------------


def test_memory_savers_follow_free_vram() -> None:
    def savers(device: str, free: float | None, family: str, side: int) -> tuple[str, ...]:
        free_bytes = None if free is None else int(free * GIB)
        return choose_memory_savers(
            device=device, free_memory=free_bytes, family=family, width=side, height=side
        ).names

    assert savers("cuda", 24, "SDXL", 1024) == ()
    assert savers("cuda", 10, "SDXL", 1024) == ("attention slicing", "VAE tiling")
    assert savers("cuda", 6, "SDXL", 1024) == (
        "attention slicing",
        "VAE tiling",
        "model CPU offload",
    )
    assert savers("cuda", 8, "SD 1.x", 512) == ()
    assert savers("cuda", 3.5, "SD 1.x", 512) == ("attention slicing", "VAE tiling")
    assert "model CPU offload" in savers("cuda", 2, "SD 1.x", 512)
    assert savers("cpu", None, "SDXL", 1024) == ()
    assert savers("cpu", None, "SDXL", 2048) == ("VAE tiling",)
    assert savers("mps", None, "SD 1.x", 512) == ("attention slicing",)
    assert savers("cuda", None, "SD 1.x", 512) == ()  # unknown: nothing that costs speed


def test_out_of_memory_is_recognised_however_torch_says_it() -> None:
    class OutOfMemoryError(RuntimeError):  # torch.OutOfMemoryError's name
        pass

    oom = EngineErrorKind.OUT_OF_MEMORY
    assert failure_kind(MemoryError()) is oom
    assert failure_kind(OutOfMemoryError("CUDA out of memory. Tried to allocate")) is oom
    assert failure_kind(RuntimeError("MPS backend out of memory")) is oom
    assert failure_kind(RuntimeError("DefaultCPUAllocator: can't allocate memory")) is oom
    assert failure_kind(RuntimeError("shape mismatch")) is None
    assert failure_kind(ValueError("out of memory")) is None


# --- PNG metadata -------------------------------------------------------------------------------


def test_a1111_text_has_the_usual_fields() -> None:
    text = a1111_parameters(PARAMS, sampler="Euler a")
    assert text == (
        "a lighthouse at dusk, oil painting\n"
        "Negative prompt: blurry, text\n"
        "Steps: 25, Sampler: Euler a, CFG scale: 6.5, Seed: 1234, Size: 512x768, "
        "Model hash: 879db523c3, Model: dreamshaper_8"
    )


def test_metadata_round_trips_through_a_png(tmp_path: Path) -> None:
    params = replace(PARAMS, prompt="über 🌊 «waves»", model=replace(MODEL, path="/secret/x"))
    metadata = ImageMetadata(params=params, sampler="Euler a", seconds=1.5, created_at="2026-01-01")
    path = tmp_path / "image.png"
    save_png(Image.new("RGB", (8, 8), "teal"), path, metadata)
    with Image.open(path) as image:
        assert set(image.info) >= {METADATA_KEY, A1111_KEY}
    read = read_metadata(path)
    assert read is not None
    assert read.source == METADATA_KEY
    # Everything comes back but the model's local path, which stays off shared images.
    assert read.params == replace(params, model=MODEL)
    assert (read.sampler, read.seconds, read.created_at) == ("Euler a", 1.5, "2026-01-01")


def test_another_tools_parameters_are_read(tmp_path: Path) -> None:
    from PIL.PngImagePlugin import PngInfo

    text = (
        "masterpiece, a castle,\nmultiline prompt\n"
        "Negative prompt: lowres, bad anatomy\n"
        "Steps: 30, Sampler: DPM++ 2M, Schedule type: Karras, CFG scale: 5, Seed: 42, "
        "Size: 832x1216, Model hash: 31e35c80fc, Model: sd_xl_base_1.0, "
        'Lora hashes: "add_detail: 7c6bad76eb54, other: 1234", Version: v1.10.1'
    )
    info = PngInfo()
    info.add_text(A1111_KEY, text)
    path = tmp_path / "a1111.png"
    Image.new("RGB", (8, 8)).save(path, pnginfo=info)
    read = read_metadata(path)
    assert read is not None
    assert read.source == "a1111"
    params = read.params
    assert params.prompt == "masterpiece, a castle,\nmultiline prompt"
    assert params.negative == "lowres, bad anatomy"
    assert (params.steps, params.guidance, params.seed) == (30, 5.0, 42)
    assert (params.width, params.height, params.scheduler) == (832, 1216, "DPM++ 2M")
    assert params.model == ModelRef(name="sd_xl_base_1.0")
    assert read.fields["Model hash"] == "31e35c80fc"
    assert read.fields["Lora hashes"] == "add_detail: 7c6bad76eb54, other: 1234"
    assert read.fields["Schedule type"] == "Karras"


def test_an_unknown_sampler_keeps_the_default_scheduler() -> None:
    read = parse_a1111_parameters("cat\nSteps: 20, Sampler: UniPC, CFG scale: 7, Seed: 1")
    assert read.params.scheduler == "default"
    assert read.sampler == "UniPC"


def test_our_a1111_text_parses_back_to_the_same_parameters() -> None:
    tricky = replace(PARAMS, prompt='a "quoted", prompt: with colon', negative="")
    chunks = metadata_chunks(ImageMetadata(params=tricky, sampler="Euler a"))
    read = parse_a1111_parameters(chunks[A1111_KEY])
    assert replace(read.params, model=None) == replace(tricky, model=None)


def test_a_png_without_parameters_has_no_metadata(tmp_path: Path) -> None:
    path = tmp_path / "plain.png"
    Image.new("RGB", (8, 8)).save(path)
    assert read_metadata(path) is None


# --- single-file configs -----------------------------------------------------------------------


def test_the_clip_vocabulary_gives_clips_token_ids() -> None:
    merges_gz = resources.files("app.images").joinpath("configs", "clip-merges.txt.gz")
    lines = gzip.decompress(merges_gz.read_bytes()).decode().split("\n")
    vocabulary = clip_vocabulary([line for line in lines[1:] if line])
    assert len(vocabulary) == 49408
    # "a photo of a cat" is [49406, 320, 1125, 539, 320, 2368, 49407] in every SD tokenizer.
    assert [vocabulary[t] for t in ("a</w>", "photo</w>", "of</w>", "cat</w>")] == [
        320,
        1125,
        539,
        2368,
    ]
    assert (vocabulary["<|startoftext|>"], vocabulary["<|endoftext|>"]) == (49406, 49407)
    assert vocabulary["!"] == 0


def test_shipped_configs_are_written_once_per_version(tmp_path: Path) -> None:
    for config in FAMILY_CONFIGS:
        folder = config_folder(config.family, cache_dir=tmp_path)
        index = json.loads((folder / "model_index.json").read_text())
        for component, value in index.items():
            if isinstance(value, list) and value[0] is not None:
                assert (folder / component).is_dir(), (config.family, component)
        for tokenizer in config.tokenizers:
            assert (folder / tokenizer / "vocab.json").stat().st_size > 800_000
            assert (folder / tokenizer / "merges.txt").is_file()
        assert config_folder(config.family, cache_dir=tmp_path) == folder
    assert len([p for p in tmp_path.iterdir() if not p.name.startswith(".")]) == 3


def test_a_cached_reference_repo_is_preferred(tmp_path: Path) -> None:
    shipped = config_folder("SD 1.x", cache_dir=tmp_path / "shipped")
    snapshot = (
        tmp_path
        / "hub"
        / "models--stable-diffusion-v1-5--stable-diffusion-v1-5"
        / "snapshots"
        / "abc123"
    )
    import shutil

    shutil.copytree(shipped, snapshot)
    assert config_folder("SD 1.x", cache_dir=tmp_path / "x", hf_cache_dir=tmp_path / "hub") == (
        snapshot
    )
    index = json.loads((snapshot / "model_index.json").read_text())
    index["feature_extractor"] = ["transformers", "CLIPImageProcessor"]  # as in the real repo
    (snapshot / "model_index.json").write_text(json.dumps(index))
    assert config_folder("SD 1.x", cache_dir=tmp_path / "x", hf_cache_dir=tmp_path / "hub") != (
        snapshot  # its preprocessor_config.json is missing
    )
    (snapshot / "feature_extractor").mkdir()
    (snapshot / "feature_extractor" / "preprocessor_config.json").write_text("{}")
    assert config_folder("SD 1.x", cache_dir=tmp_path / "x", hf_cache_dir=tmp_path / "hub") == (
        snapshot
    )
    (snapshot / "unet" / "config.json").unlink()  # incomplete: the shipped copy is used
    assert config_folder("SD 1.x", cache_dir=tmp_path / "x", hf_cache_dir=tmp_path / "hub") != (
        snapshot
    )


def test_families_without_single_file_configs_are_refused(tmp_path: Path) -> None:
    from app.errors import CheckpointError

    with pytest.raises(CheckpointError, match="Flux"):
        config_folder("Flux", cache_dir=tmp_path)

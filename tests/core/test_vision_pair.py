"""A vision model and its projector recognized, found beside each other, and sized together."""

from __future__ import annotations

from pathlib import Path

import pytest

from app.chat.load_plan import plan_load
from app.chat.vision import vision_models
from app.errors import CheckpointError
from app.hardware import MIB, GpuInfo, MachineMemory
from app.hub.projector_files import rank_projectors
from app.library import Library
from app.library.projectors import projector_beside
from app.library.sniff import ModelKind, sniff, sniff_projector
from app.llm import KvCacheType
from app.llm.projector_cost import MIN_COMPUTE_BYTES, image_tokens, projector_cost
from app.store import Database
from app.tiny_gguf import write_projector
from tests.core.test_library_layouts import app_folders, write_hf_repo
from tests.support.gguf_builder import write_scripted_gguf

GIB = 1024 * MIB
CPU_BUILD = {"supports_gpu_offload": False, "devices": []}


@pytest.fixture(scope="module")
def pair(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    folder = tmp_path_factory.mktemp("pair")
    model = write_scripted_gguf(folder / "Vision-Q8_0.gguf", context_length=4096)
    return model, write_projector(folder / "mmproj-Vision-F16.gguf")


def test_the_sniffer_reads_a_projectors_header(pair: tuple[Path, Path]) -> None:
    model, projector = pair
    checkpoint = sniff(projector)
    assert checkpoint.kind is ModelKind.VISION_PROJECTOR
    assert checkpoint.architecture == "clip"
    info = checkpoint.projector
    assert info is not None
    assert (info.projector_type, info.has_vision) == ("mlp", True)
    assert (info.image_size, info.patch_size, info.projection_dim) == (32, 8, 64)
    assert info.image_tokens == 16
    assert sniff(model).projector is None and sniff(model).kind is ModelKind.LLM_GGUF
    with pytest.raises(CheckpointError, match="is a language model \\(llama\\), not a vision"):
        sniff_projector(model)


def test_image_tokens_by_projector_type() -> None:
    assert image_tokens("mlp", 336, 14) == 576  # LLaVA 1.5: every patch
    assert image_tokens("ldpv2", 336, 14) == 144  # MobileVLM: pooled by four
    assert image_tokens("gemma3", 896, 14) == 256  # always 256
    assert image_tokens("qwen2.5vl_merger", 560, 14) is None  # the image's own resolution
    assert image_tokens("mlp", None, 14) is None


def test_the_fit_estimate_counts_the_projector_and_its_image_tokens(
    pair: tuple[Path, Path],
) -> None:
    model, projector = pair
    memory = MachineMemory(ram_total=16 * GIB, ram_available=8 * GIB, gpus=(), unified_memory=False)
    options = {
        "context_length": 4096,
        "gpu_layers": None,
        "threads": None,
        "kv_cache_type": KvCacheType.F16,
        "flash_attention": False,
        "capabilities": CPU_BUILD,
        "machine": memory,
    }
    alone = plan_load(model, **options)  # type: ignore[arg-type]
    paired = plan_load(model, projector=projector, **options)  # type: ignore[arg-type]
    assert alone.estimate is not None and paired.estimate is not None
    cost = projector_cost(sniff(projector))
    assert cost.weight_bytes == projector.stat().st_size
    assert cost.compute_bytes == MIN_COMPUTE_BYTES  # a tiny projector: the floor
    assert paired.estimate.ram_bytes == alone.estimate.ram_bytes + cost.total_bytes
    assert paired.estimate.projector_bytes == cost.total_bytes
    assert paired.estimate.image_tokens == 16
    assert "vision projector" in paired.estimate.explanation
    assert "An image takes about 16 tokens of the context." in paired.estimate.explanation
    assert paired.settings.projector == projector and alone.settings.projector is None


def test_on_a_gpu_the_projector_goes_with_the_layers(pair: tuple[Path, Path]) -> None:
    model, projector = pair
    gpu = GpuInfo(name="Test GPU", total_bytes=24 * GIB, free_bytes=20 * GIB, backend="cuda")
    memory = MachineMemory(
        ram_total=16 * GIB, ram_available=8 * GIB, gpus=(gpu,), unified_memory=False
    )
    cuda = {
        "supports_gpu_offload": True,
        "devices": [
            {
                "name": "CUDA0",
                "description": "Test GPU",
                "backend": "CUDA",
                "type": 1,
                "free_bytes": 20 * GIB,
                "total_bytes": 24 * GIB,
            }
        ],
    }
    options = {
        "context_length": 2048,
        "gpu_layers": -1,
        "threads": None,
        "kv_cache_type": KvCacheType.F16,
        "flash_attention": False,
        "capabilities": cuda,
        "machine": memory,
    }
    alone = plan_load(model, **options)  # type: ignore[arg-type]
    paired = plan_load(model, projector=projector, **options)  # type: ignore[arg-type]
    assert alone.estimate is not None and paired.estimate is not None
    assert paired.estimate.vram_bytes - alone.estimate.vram_bytes == paired.estimate.projector_bytes
    assert paired.estimate.ram_bytes == alone.estimate.ram_bytes


def test_a_projector_that_is_not_one_is_refused_before_loading(pair: tuple[Path, Path]) -> None:
    model, _ = pair
    memory = MachineMemory(ram_total=16 * GIB, ram_available=8 * GIB, gpus=(), unified_memory=False)
    with pytest.raises(CheckpointError, match="not a vision projector"):
        plan_load(
            model,
            context_length=512,
            gpu_layers=None,
            threads=None,
            kv_cache_type=KvCacheType.F16,
            flash_attention=False,
            capabilities=CPU_BUILD,
            machine=memory,
            projector=model,
        )


def test_precision_picks_among_several_projectors() -> None:
    names = ["mmproj-F32.gguf", "mmproj-F16.gguf", "mmproj-BF16.gguf", "mmproj-Q8_0.gguf"]
    entries = [(name, name) for name in names]
    assert rank_projectors("Q8_0", entries)[0] == "mmproj-Q8_0.gguf"
    assert rank_projectors("BF16", entries)[0] == "mmproj-BF16.gguf"
    assert rank_projectors("UD-Q4_K_XL", entries)[0] == "mmproj-F16.gguf"
    assert rank_projectors(None, entries) == [
        "mmproj-F16.gguf",
        "mmproj-BF16.gguf",
        "mmproj-Q8_0.gguf",
        "mmproj-F32.gguf",
    ]


def test_the_projector_beside_a_model_is_found_by_precision_and_header(tmp_path: Path) -> None:
    folder = tmp_path / "lmstudio" / "org" / "Vision-GGUF"
    q8 = write_scripted_gguf(folder / "Vision-Q8_0.gguf")
    q4 = write_scripted_gguf(folder / "Vision-Q4_K_M.gguf")
    f16 = write_projector(folder / "mmproj-Vision-F16.gguf")
    q8_projector = folder / "mmproj-Vision-Q8_0.gguf"
    q8_projector.write_bytes(q8.read_bytes())  # named like a projector, but a language model
    assert projector_beside(q4) == f16
    assert projector_beside(q8) == f16  # the Q8_0 "projector" is passed over: not one
    write_projector(q8_projector)
    assert projector_beside(q8) == q8_projector
    assert projector_beside(f16) is None  # a projector has none of its own
    text = write_scripted_gguf(tmp_path / "text" / "Text-Q8_0.gguf")
    assert projector_beside(text) is None
    assert projector_beside(tmp_path / "gone" / "model.gguf") is None


def test_the_library_links_each_vision_model_to_its_projector(tmp_path: Path) -> None:
    """Three layouts, one link: a Hugging Face cache snapshot, LM Studio's publisher/repo
    folders, and a folder the person imported."""
    model_bytes = write_scripted_gguf(tmp_path / "src" / "m.gguf").read_bytes()
    projector_bytes = write_projector(tmp_path / "src" / "p.gguf").read_bytes()
    cache = tmp_path / "hub"
    snapshot = write_hf_repo(
        cache,
        "org/Vision-GGUF",
        {"Vision-Q8_0.gguf": model_bytes, "mmproj-Vision-F16.gguf": projector_bytes},
    )
    apps = app_folders(tmp_path / "apps")
    studio = apps.lm_studio[0] / "lmstudio-community" / "Seeing-GGUF"
    write_scripted_gguf(studio / "Seeing-Q4_K_M.gguf", name="Seeing")
    write_projector(studio / "mmproj-Seeing-F16.gguf")
    imported = tmp_path / "mine"
    write_scripted_gguf(imported / "Mine-Q8_0.gguf", name="Mine")
    write_projector(imported / "mmproj-Mine-F16.gguf")
    write_scripted_gguf(tmp_path / "text" / "Text-Q8_0.gguf", name="Text")
    database = Database(tmp_path / "app.sqlite3")
    try:
        library = Library(database, hf_cache_dir=cache, app_folders=apps)
        library.import_paths([imported, tmp_path / "text" / "Text-Q8_0.gguf"])
        entries = library.scan()
        projectors = {
            entry.usable_location.path.name: entry.projector
            for entry in entries
            if entry.usable_location is not None
        }
        assert projectors == {
            "Vision-Q8_0.gguf": snapshot / "mmproj-Vision-F16.gguf",
            "Seeing-Q4_K_M.gguf": studio / "mmproj-Seeing-F16.gguf",
            "Mine-Q8_0.gguf": imported / "mmproj-Mine-F16.gguf",
            "Text-Q8_0.gguf": None,
            # An imported folder's projector is listed (it takes space, it can be deleted),
            # as a projector: no model to chat with (the cache's and LM Studio's are not).
            "mmproj-Mine-F16.gguf": None,
        }
        (listed,) = [
            e
            for e in entries
            if e.usable_location and e.usable_location.path.name.startswith("mmproj")
        ]
        assert listed.kind is ModelKind.VISION_PROJECTOR, listed
        assert vision_models(entries) == sorted(
            (e.name for e in entries if e.projector is not None), key=str.lower
        )
        assert len(vision_models(entries)) == 3
    finally:
        database.close()

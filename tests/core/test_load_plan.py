"""Planning a load: the context clamped, GPU layers chosen, and the memory check before loading."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from app.chat.load_plan import LoadPlan, ModelTooLargeError, plan_load
from app.hardware import MIB, GpuInfo, MachineMemory
from app.llm import KvCacheType
from tests.support.gguf_builder import write_scripted_gguf

GIB = 1024 * MIB
CPU_BUILD = {"supports_gpu_offload": False, "devices": []}


def machine(ram_available: int, *, gpus: tuple[GpuInfo, ...] = ()) -> MachineMemory:
    return MachineMemory(
        ram_total=max(ram_available, 16 * GIB),
        ram_available=ram_available,
        gpus=gpus,
        unified_memory=False,
    )


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("plan")
    # ~37 MB of F16 weights: big enough that the layer split shows in the figures.
    return write_scripted_gguf(
        folder / "small.gguf", embed=512, ff=2048, block_count=6, context_length=8192
    )


def plan(model: Path, memory: MachineMemory, **options: Any) -> LoadPlan:
    settings: dict[str, Any] = {
        "context_length": 4096,
        "gpu_layers": None,
        "threads": None,
        "kv_cache_type": KvCacheType.F16,
        "flash_attention": False,
        "capabilities": CPU_BUILD,
        "machine": memory,
    } | options
    return plan_load(model, **settings)


def test_a_model_that_fits_loads_on_the_cpu_without_notes(model: Path) -> None:
    result = plan(model, machine(8 * GIB))
    assert result.settings.context_length == 4096
    assert result.settings.gpu_layers == 0
    assert result.notes == ()
    assert result.estimate is not None and result.estimate.ram_bytes > 300 * MIB


def test_a_context_above_the_trained_maximum_is_clamped_with_a_note(model: Path) -> None:
    result = plan(model, machine(8 * GIB), context_length=100_000)
    assert result.settings.context_length == 8192
    assert any("maximum of 8,192" in note for note in result.notes)


def test_a_model_that_cannot_fit_is_refused_before_loading(model: Path) -> None:
    with pytest.raises(ModelTooLargeError, match="will not fit"):
        plan(model, machine(200 * MIB))


def test_a_tight_fit_loads_with_a_warning(model: Path) -> None:
    estimate = plan(model, machine(8 * GIB)).estimate
    assert estimate is not None
    needed = estimate.ram_bytes
    result = plan(model, machine(int(needed / 0.9)))
    assert result.tight
    assert any(note.startswith("Tight fit") for note in result.notes)


def test_a_cuda_build_with_room_puts_every_layer_on_the_gpu(model: Path) -> None:
    gpu = GpuInfo(name="RTX", backend="cuda", total_bytes=8 * GIB, free_bytes=8 * GIB)
    capabilities = {
        "supports_gpu_offload": True,
        "devices": [
            {"name": "CUDA0", "backend": "CUDA", "free_bytes": 8 * GIB, "total_bytes": 8 * GIB}
        ],
    }
    result = plan(model, machine(8 * GIB, gpus=(gpu,)), capabilities=capabilities)
    assert result.settings.gpu_layers == 7  # 6 blocks + output
    assert result.estimate is not None and result.estimate.vram_bytes > 0


def test_a_cpu_build_on_a_machine_with_a_gpu_says_how_to_use_it(model: Path) -> None:
    gpu = GpuInfo(name="RTX", backend="cuda", total_bytes=8 * GIB, free_bytes=8 * GIB)
    result = plan(model, machine(8 * GIB, gpus=(gpu,)))
    assert result.settings.gpu_layers == 0
    assert any("GGML_CUDA" in note for note in result.notes)


CUDA_BUILD = {
    "supports_gpu_offload": True,
    "devices": [
        {"name": "CUDA0", "backend": "CUDA", "free_bytes": 8 * GIB, "total_bytes": 8 * GIB}
    ],
}


def test_the_persons_gpu_layers_win(model: Path) -> None:
    gpu = GpuInfo(name="RTX", backend="cuda", total_bytes=8 * GIB, free_bytes=8 * GIB)
    result = plan(model, machine(8 * GIB, gpus=(gpu,)), gpu_layers=3, capabilities=CUDA_BUILD)
    assert result.settings.gpu_layers == 3


def test_gpu_layers_on_a_build_without_gpu_support_load_on_the_cpu_with_a_note(
    model: Path,
) -> None:
    result = plan(model, machine(8 * GIB), gpu_layers=3)
    assert result.settings.gpu_layers == 0
    assert any("no GPU to use" in note for note in result.notes)

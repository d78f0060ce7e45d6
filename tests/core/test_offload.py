"""GPU layers, backends and the load-time memory estimate, from GGUF headers and engine reports.

The tiny 2-block llama (tests/support/gguf_builder.py) gives exact arithmetic by hand;
synthetic shapes of real models give the realistic cases.
"""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from app.hardware import MIB, GpuInfo, MachineMemory, machine_memory_from
from app.library.sniff import GgufShape, sniff
from app.llm import (
    COMFORTABLE_SHARE,
    COMPUTE_BUFFER_BYTES,
    EngineCapabilities,
    EngineDevice,
    Fit,
    KvCacheType,
    choose_backend,
    choose_gpu_layers,
    clamp_context,
    estimate_file_fit,
    estimate_fit,
    kv_cache_bytes_of,
    memory_with_devices,
)
from app.units import format_bytes
from tests.support.gguf_builder import tiny_llama_tensors, write_gguf

GB = 1_000_000_000
GIB = 1024**3


def ram_only(available: int) -> MachineMemory:
    return MachineMemory(
        ram_total=2 * available, ram_available=available, gpus=(), unified_memory=False
    )


def with_gpu(ram_available: int, vram_free: int) -> MachineMemory:
    gpu = GpuInfo(name="RTX", backend="cuda", total_bytes=vram_free + GB, free_bytes=vram_free)
    return MachineMemory(
        ram_total=2 * ram_available, ram_available=ram_available, gpus=(gpu,), unified_memory=False
    )


def synthetic_shape(
    *,
    layers: int,
    embedding: int,
    heads: int,
    kv_heads: int,
    head_dim: int,
    layer_bytes: int,
    embedding_bytes: int,
    output_bytes: int,
    context: int | None = 131_072,
) -> GgufShape:
    return GgufShape(
        architecture="llama",
        block_count=layers,
        embedding_length=embedding,
        head_count=heads,
        head_count_kv=kv_heads,
        key_length=head_dim,
        value_length=head_dim,
        context_length=context,
        kv_heads_per_layer=(kv_heads,) * layers,
        layer_bytes=(layer_bytes,) * layers,
        embedding_bytes=embedding_bytes,
        output_bytes=output_bytes,
        other_bytes=0,
        tied_embeddings=False,
    )


# Llama-3.1-8B at Q4_K_M: token_embd Q4_K (144 bytes per 256), output Q6_K (210 per 256).
LLAMA_8B = synthetic_shape(
    layers=32,
    embedding=4096,
    heads=32,
    kv_heads=8,
    head_dim=128,
    layer_bytes=131_000_000,
    embedding_bytes=128_256 * 4096 * 144 // 256,
    output_bytes=128_256 * 4096 * 210 // 256 + 4096 * 4,
)

# A 4 GB model (a 3B llama at about 8 bits): 28 layers of 120 MB, 300 MB in and out.
MODEL_4GB = synthetic_shape(
    layers=28,
    embedding=3072,
    heads=24,
    kv_heads=8,
    head_dim=128,
    layer_bytes=120_000_000,
    embedding_bytes=300_000_000,
    output_bytes=300_000_000,
)
KV_PER_LAYER_4K = 4096 * 8 * 128 * 2 * 2  # tokens x kv heads x head dim x (K, V) x f16


def cuda_device(free: int, *, backend: str = "CUDA", name: str = "CUDA0") -> EngineDevice:
    return EngineDevice(
        name=name,
        backend=backend,
        free_bytes=free,
        total_bytes=free + GB,
        description="NVIDIA GeForce RTX 4060 Ti",
    )


NVIDIA_MACHINE = machine_memory_from(
    ram_total=32 * GB,
    ram_available=20 * GB,
    nvidia_smi_output="NVIDIA GeForce RTX 4060 Ti, 16380, 15000\n",
)


@pytest.fixture
def tiny(tmp_path: Path) -> GgufShape:
    shape = sniff(write_gguf(tmp_path / "tiny.gguf")).gguf_shape
    assert shape is not None
    return shape


# By hand, for the tiny llama (see tests/core/test_sniff.py): bytes per layer, embeddings,
# output (output_norm + output); KV per layer at 512 tokens in f16: 512 x 4 heads x (16 + 16) x 2.
LAYER, EMBEDDING, OUTPUT = 82_432, 33_152, 33_408
KV_LAYER_512 = 512 * 4 * (16 + 16) * 2


# --- KV cache --------------------------------------------------------------------------------


def test_kv_cache_of_llama_3_1_8b_at_8k_is_one_gib() -> None:
    estimate = estimate_fit(
        LLAMA_8B,
        context_length=8192,
        kv_type=KvCacheType.F16,
        gpu_layers=0,
        memory=ram_only(100 * GB),
    )
    assert estimate.kv_cache_bytes == 2**30 == 1 * GIB
    assert kv_cache_bytes_of(LLAMA_8B, 8192) == GIB


@pytest.mark.parametrize(
    ("kv_type", "expected"),
    [
        (KvCacheType.F32, 2 * 2 * KV_LAYER_512),
        (KvCacheType.F16, 2 * KV_LAYER_512),
        (KvCacheType.Q8_0, 2 * KV_LAYER_512 // 2 * 34 // 32),
        (KvCacheType.Q4_0, 2 * KV_LAYER_512 // 2 * 18 // 32),
    ],
)
def test_kv_cache_types(tiny: GgufShape, kv_type: KvCacheType, expected: int) -> None:
    estimate = estimate_fit(
        tiny, context_length=512, kv_type=kv_type, gpu_layers=0, memory=ram_only(GB)
    )
    assert estimate.kv_cache_bytes == expected
    assert [t.value for t in KvCacheType] == ["f32", "f16", "q8_0", "q4_0"]


def test_kv_bytes_per_element() -> None:
    assert KvCacheType.F16.bytes_per_element == 2
    assert KvCacheType.Q8_0.bytes_per_element == 34 / 32
    assert KvCacheType.Q4_0.bytes_per_element == 18 / 32
    assert KvCacheType.F32.bytes_per_element == 4


# --- estimate_fit on the tiny llama, by hand ------------------------------------------------


def test_all_on_the_cpu(tiny: GgufShape) -> None:
    estimate = estimate_fit(
        tiny, context_length=512, kv_type=KvCacheType.F16, gpu_layers=0, memory=ram_only(GB)
    )
    assert estimate.weights_ram_bytes == 231_424 == 2 * LAYER + EMBEDDING + OUTPUT
    assert estimate.kv_ram_bytes == 262_144 == 2 * KV_LAYER_512
    assert estimate.overhead_ram_bytes == COMPUTE_BUFFER_BYTES + math.ceil(231_424 * 0.05)
    assert estimate.vram_bytes == 0
    assert estimate.ram_bytes == 231_424 + 262_144 + 300 * MIB + 11_572
    assert estimate.total_bytes == estimate.ram_bytes
    assert estimate.fit is Fit.FITS
    assert "all on the CPU" in estimate.explanation


def test_one_layer_on_the_gpu_is_the_last(tiny: GgufShape) -> None:
    estimate = estimate_fit(
        tiny,
        context_length=512,
        kv_type=KvCacheType.F16,
        gpu_layers=1,
        memory=with_gpu(GB, GB),
    )
    assert estimate.weights_vram_bytes == LAYER
    assert estimate.kv_vram_bytes == KV_LAYER_512
    assert estimate.overhead_vram_bytes == 300 * MIB + 4_122  # ceil(82,432 x 5%)
    assert estimate.weights_ram_bytes == EMBEDDING + LAYER + OUTPUT == 148_992
    assert estimate.kv_ram_bytes == KV_LAYER_512
    assert estimate.overhead_ram_bytes == 7_450  # ceil(148,992 x 5%): no compute buffer
    assert estimate.vram_bytes == LAYER + KV_LAYER_512 + 300 * MIB + 4_122


def test_block_count_layers_leave_the_output_on_the_cpu(tiny: GgufShape) -> None:
    estimate = estimate_fit(
        tiny, context_length=512, kv_type=KvCacheType.F16, gpu_layers=2, memory=with_gpu(GB, GB)
    )
    assert estimate.weights_vram_bytes == 2 * LAYER
    assert estimate.weights_ram_bytes == EMBEDDING + OUTPUT


def test_block_count_plus_one_offloads_the_output_layer(tiny: GgufShape) -> None:
    estimate = estimate_fit(
        tiny, context_length=512, kv_type=KvCacheType.F16, gpu_layers=3, memory=with_gpu(GB, GB)
    )
    assert estimate.gpu_layers == 3
    assert estimate.weights_vram_bytes == 2 * LAYER + OUTPUT == 198_272
    assert estimate.kv_vram_bytes == 2 * KV_LAYER_512
    assert estimate.overhead_vram_bytes == 300 * MIB + 9_914  # ceil(198,272 x 5%)
    assert estimate.weights_ram_bytes == EMBEDDING  # the input layer stays on the CPU
    assert estimate.kv_ram_bytes == 0
    assert estimate.overhead_ram_bytes == 1_658  # ceil(33,152 x 5%)


@pytest.mark.parametrize("asked", [-1, 3, 999])
def test_minus_one_and_big_counts_mean_all_layers(tiny: GgufShape, asked: int) -> None:
    estimate = estimate_fit(
        tiny, context_length=512, kv_type=KvCacheType.F16, gpu_layers=asked, memory=ram_only(GB)
    )
    assert estimate.gpu_layers == 3


def test_tied_embeddings_put_a_copy_on_the_gpu(tmp_path: Path) -> None:
    tensors = tiny_llama_tensors()
    del tensors["output.weight"]
    shape = sniff(write_gguf(tmp_path / "tied.gguf", tensors=tensors)).gguf_shape
    assert shape is not None

    on_cpu = estimate_fit(
        shape, context_length=512, kv_type=KvCacheType.F16, gpu_layers=2, memory=ram_only(GB)
    )
    on_gpu = estimate_fit(
        shape, context_length=512, kv_type=KvCacheType.F16, gpu_layers=3, memory=ram_only(GB)
    )

    assert on_cpu.weights_ram_bytes == EMBEDDING + 64 * 4
    assert on_gpu.weights_vram_bytes == 2 * LAYER + 64 * 4 + EMBEDDING
    assert on_gpu.weights_ram_bytes == EMBEDDING


def test_quantized_tensors_shrink_the_gpu_part(tmp_path: Path) -> None:
    tensors = tiny_llama_tensors()
    quantized = {"blk.1.ffn_up.weight": tensors.pop("blk.1.ffn_up.weight")}
    shape = sniff(write_gguf(tmp_path / "q8.gguf", tensors=tensors, quantized=quantized)).gguf_shape
    assert shape is not None

    estimate = estimate_fit(
        shape, context_length=512, kv_type=KvCacheType.F16, gpu_layers=1, memory=ram_only(GB)
    )

    # ffn_up: 128 rows of 64 -> 2 blocks of 34 bytes per row instead of 128 bytes.
    assert estimate.weights_vram_bytes == LAYER - 128 * 64 * 2 + 128 * 2 * 34


def test_split_model_estimates_like_the_single_file(tmp_path: Path) -> None:
    from tests.core.test_sniff import write_split_model

    parts = write_split_model(tmp_path / "split")
    split = sniff(parts[0]).gguf_shape
    single = sniff(write_gguf(tmp_path / "one.gguf")).gguf_shape
    assert split is not None and single is not None

    def load(shape: GgufShape) -> tuple[int, int]:
        estimate = estimate_fit(
            shape,
            context_length=512,
            kv_type=KvCacheType.F16,
            gpu_layers=2,
            memory=with_gpu(GB, GB),
        )
        return estimate.ram_bytes, estimate.vram_bytes

    assert load(split) == load(single)


def test_estimate_fit_rejects_nonsense(tiny: GgufShape) -> None:
    with pytest.raises(ValueError):
        estimate_fit(tiny, context_length=-1, gpu_layers=0, memory=ram_only(GB))
    with pytest.raises(ValueError):
        estimate_fit(tiny, context_length=512, gpu_layers=-2, memory=ram_only(GB))


# --- the verdict -----------------------------------------------------------------------------


def test_ram_and_gpu_are_judged_apart() -> None:
    # Everything on an 8 GB GPU with 1 GB of RAM free: the GPU part fits, the RAM part too.
    fits = estimate_fit(
        MODEL_4GB, context_length=4096, gpu_layers=29, memory=with_gpu(1 * GB, 8 * GB)
    )
    assert fits.fit is Fit.FITS
    # The same split with 2 GB of GPU memory: the GPU part does not fit, whatever the RAM.
    too_much = estimate_fit(
        MODEL_4GB, context_length=4096, gpu_layers=29, memory=with_gpu(100 * GB, 2 * GB)
    )
    assert too_much.fit is Fit.WONT_FIT
    assert "fewer layers" in too_much.explanation
    # All on the CPU with 2 GB of RAM: RAM is what lacks.
    no_ram = estimate_fit(MODEL_4GB, context_length=4096, gpu_layers=0, memory=ram_only(2 * GB))
    assert no_ram.fit is Fit.WONT_FIT
    assert "smaller quantization" in no_ram.explanation


def test_gpu_memory_up_to_the_gpu_share_fits() -> None:
    need = estimate_fit(
        MODEL_4GB, context_length=4096, gpu_layers=10, memory=with_gpu(100 * GB, 100 * GB)
    ).vram_bytes

    def fit_with(vram_free: int) -> Fit:
        memory = with_gpu(100 * GB, vram_free)
        return estimate_fit(MODEL_4GB, context_length=4096, gpu_layers=10, memory=memory).fit

    assert fit_with(math.ceil(need / COMFORTABLE_SHARE)) is Fit.FITS
    assert fit_with(need) is Fit.TIGHT
    assert fit_with(need - 1) is Fit.WONT_FIT


def test_partial_offload_explanation() -> None:
    estimate = estimate_fit(
        MODEL_4GB, context_length=4096, gpu_layers=10, memory=with_gpu(20 * GB, 2 * GB)
    )
    assert estimate.explanation == (
        f"Needs about {format_bytes(estimate.ram_bytes)} of RAM and "
        f"{format_bytes(estimate.vram_bytes)} of GPU memory ({format_bytes(estimate.weights_bytes)}"
        f" weights + {format_bytes(estimate.kv_cache_bytes)} context at 4,096 tokens + buffers;"
        " 10 of 29 layers on the GPU); 20 GB of RAM and 2 GB of GPU memory free now."
    )


def test_unified_memory_counts_the_total_once() -> None:
    mac = machine_memory_from(ram_total=16 * GB, ram_available=7 * GB, apple_silicon=True)
    estimate = estimate_fit(LLAMA_8B, context_length=8192, gpu_layers=33, memory=mac)
    assert 6.3 * GB < estimate.total_bytes < 7 * GB
    assert estimate.fit is Fit.TIGHT  # more than 90% of the 7 GB free (14 GB if counted twice)
    assert "shared by CPU and GPU" in estimate.explanation


# --- one formula for Discover and load -------------------------------------------------------


def test_discover_and_load_agree_on_cpu(tiny: GgufShape) -> None:
    memory = ram_only(10 * GB)
    load = estimate_fit(tiny, context_length=512, gpu_layers=0, memory=memory)
    discover = estimate_file_fit(tiny.tensor_bytes, "F16", memory, context_length=512, shape=tiny)
    assert discover == load  # one estimate: the same figures, verdict and explanation


def test_quantized_kv_cache_agrees_too() -> None:
    load = estimate_fit(
        LLAMA_8B,
        context_length=8192,
        kv_type=KvCacheType.Q8_0,
        gpu_layers=0,
        memory=ram_only(GB),
    )
    discover = estimate_file_fit(
        LLAMA_8B.tensor_bytes,
        "Q4_K_M",
        ram_only(GB),
        context_length=8192,
        shape=LLAMA_8B,
        kv_type=KvCacheType.Q8_0,
    )
    assert load.kv_cache_bytes == discover.kv_cache_bytes == GIB * 34 // 64


# --- choosing GPU layers ---------------------------------------------------------------------


def test_no_offload_support_or_no_gpu_means_zero_layers() -> None:
    memory = with_gpu(20 * GB, 24 * GB)
    assert (
        choose_gpu_layers(MODEL_4GB, context_length=4096, memory=memory, supports_gpu_offload=False)
        == 0
    )
    assert (
        choose_gpu_layers(
            MODEL_4GB, context_length=4096, memory=ram_only(20 * GB), supports_gpu_offload=True
        )
        == 0
    )


def test_a_gpu_too_small_for_one_layer_gets_none() -> None:
    memory = with_gpu(20 * GB, 200 * MIB)  # less than the compute buffer
    assert (
        choose_gpu_layers(MODEL_4GB, context_length=4096, memory=memory, supports_gpu_offload=True)
        == 0
    )


def test_the_chosen_count_is_the_most_that_fits() -> None:
    for vram_free in (1 * GB, 2 * GB, 3 * GB, 4 * GB, 5 * GB):
        memory = with_gpu(20 * GB, vram_free)
        chosen = choose_gpu_layers(
            MODEL_4GB, context_length=4096, memory=memory, supports_gpu_offload=True
        )

        def vram(layers: int, memory: MachineMemory = memory) -> int:
            return estimate_fit(
                MODEL_4GB, context_length=4096, gpu_layers=layers, memory=memory
            ).vram_bytes

        if chosen:
            assert vram(chosen) <= COMFORTABLE_SHARE * vram_free
        if chosen < 29:
            assert vram(chosen + 1) > COMFORTABLE_SHARE * vram_free


def test_a_longer_context_leaves_room_for_fewer_layers() -> None:
    memory = with_gpu(20 * GB, 3 * GB)
    short, long = (
        choose_gpu_layers(
            MODEL_4GB, context_length=context, memory=memory, supports_gpu_offload=True
        )
        for context in (2048, 32768)
    )
    assert short > long


# --- backends: what the engine reports -------------------------------------------------------


def test_cpu_only_build_on_a_machine_with_an_nvidia_gpu() -> None:
    capabilities = EngineCapabilities(supports_gpu_offload=False, devices=())

    plan = choose_backend(capabilities, NVIDIA_MACHINE)
    memory = memory_with_devices(NVIDIA_MACHINE, capabilities)

    assert not plan.offload
    assert plan.backend == "CPU"
    assert plan.note is not None
    assert plan.note.startswith(
        "This build of llama.cpp has no GPU support, so NVIDIA GeForce RTX 4060 Ti is not used"
    )
    assert 'CMAKE_ARGS="-DGGML_CUDA=on" pip install --force-reinstall' in plan.note
    assert memory.gpus == ()
    layers = choose_gpu_layers(
        MODEL_4GB,
        context_length=4096,
        memory=memory,
        supports_gpu_offload=capabilities.supports_gpu_offload,
    )
    assert layers == 0
    estimate = estimate_fit(MODEL_4GB, context_length=4096, gpu_layers=layers, memory=memory)
    assert estimate.vram_bytes == 0
    assert estimate.fit is Fit.FITS


def test_cpu_only_build_on_a_machine_without_a_gpu_says_nothing() -> None:
    machine = machine_memory_from(ram_total=16 * GB, ram_available=8 * GB)
    plan = choose_backend(EngineCapabilities(supports_gpu_offload=False), machine)
    assert not plan.offload
    assert plan.note is None


def test_cuda_build_with_8_gb_free_takes_a_4_gb_model_whole() -> None:
    capabilities = EngineCapabilities(supports_gpu_offload=True, devices=(cuda_device(8 * GB),))

    plan = choose_backend(capabilities, NVIDIA_MACHINE)
    memory = memory_with_devices(NVIDIA_MACHINE, capabilities)
    layers = choose_gpu_layers(
        MODEL_4GB, context_length=4096, memory=memory, supports_gpu_offload=plan.offload
    )

    assert plan.backend == "CUDA"
    assert plan.devices == capabilities.devices
    assert plan.vram_free == 8 * GB
    assert plan.note is None
    assert memory.gpus == (
        GpuInfo(
            name="NVIDIA GeForce RTX 4060 Ti",
            backend="cuda",
            total_bytes=9 * GB,
            free_bytes=8 * GB,  # the engine's figure, not nvidia-smi's 15000 MiB
        ),
    )
    assert layers == 29  # 28 layers and the output layer
    estimate = estimate_fit(MODEL_4GB, context_length=4096, gpu_layers=layers, memory=memory)
    assert estimate.weights_vram_bytes == 28 * 120_000_000 + 300_000_000
    assert estimate.weights_ram_bytes == 300_000_000
    assert estimate.fit is Fit.FITS


def test_cuda_build_with_2_gb_free_takes_part_of_a_4_gb_model() -> None:
    capabilities = EngineCapabilities(supports_gpu_offload=True, devices=(cuda_device(2 * GB),))
    memory = memory_with_devices(NVIDIA_MACHINE, capabilities)

    layers = choose_gpu_layers(
        MODEL_4GB, context_length=4096, memory=memory, supports_gpu_offload=True
    )

    # Each layer: 120 MB of weights + 6 MB of margin + its 16 MiB of KV; once: the compute
    # buffer. 10 layers: 1,742,344,960 bytes <= 1.8 GB (90% of 2 GB); 11 would not fit.
    per_layer = 120_000_000 + 6_000_000 + KV_PER_LAYER_4K
    assert 10 * per_layer + 300 * MIB <= 0.9 * 2 * GB < 11 * per_layer + 300 * MIB
    assert layers == 10
    estimate = estimate_fit(MODEL_4GB, context_length=4096, gpu_layers=layers, memory=memory)
    assert estimate.vram_bytes == 10 * per_layer + 300 * MIB
    assert estimate.kv_vram_bytes == 10 * KV_PER_LAYER_4K
    assert estimate.kv_ram_bytes == 18 * KV_PER_LAYER_4K
    assert estimate.fit is Fit.FITS


def test_metal_on_apple_unified_memory() -> None:
    mac = machine_memory_from(
        ram_total=32 * GB, ram_available=20 * GB, apple_silicon=True, apple_chip="Apple M2 Pro"
    )
    metal = EngineDevice(
        name="Metal",
        backend="Metal",
        free_bytes=22_900_000_000,  # recommendedMaxWorkingSetSize
        total_bytes=22_900_000_000,
        description="Apple M2 Pro",
    )
    capabilities = EngineCapabilities(supports_gpu_offload=True, devices=(metal,))

    plan = choose_backend(capabilities, mac)
    memory = memory_with_devices(mac, capabilities)
    layers = choose_gpu_layers(
        LLAMA_8B, context_length=8192, memory=memory, supports_gpu_offload=True
    )

    assert plan.backend == "Metal"
    assert plan.unified_memory
    assert memory.unified_memory
    assert memory.gpus[0].backend == "metal"
    assert memory.gpus[0].free_bytes == 20 * GB  # no more than the RAM available
    assert memory.budget == 20 * GB  # not counted twice
    assert layers == 33
    estimate = estimate_fit(LLAMA_8B, context_length=8192, gpu_layers=layers, memory=memory)
    assert estimate.fit is Fit.FITS
    assert "shared by CPU and GPU" in estimate.explanation


def test_metal_with_a_small_working_set_takes_part_of_the_model() -> None:
    mac = machine_memory_from(ram_total=16 * GB, ram_available=12 * GB, apple_silicon=True)
    metal = EngineDevice(name="Metal", backend="Metal", free_bytes=3 * GB, total_bytes=3 * GB)
    memory = memory_with_devices(
        mac, EngineCapabilities(supports_gpu_offload=True, devices=(metal,))
    )

    layers = choose_gpu_layers(
        MODEL_4GB, context_length=4096, memory=memory, supports_gpu_offload=True
    )

    assert 0 < layers < 29
    vram = estimate_fit(MODEL_4GB, context_length=4096, gpu_layers=layers, memory=memory)
    assert vram.vram_bytes <= COMFORTABLE_SHARE * 3 * GB


def test_vulkan_on_an_amd_card_the_tools_did_not_see() -> None:
    machine = machine_memory_from(ram_total=32 * GB, ram_available=24 * GB)
    radeon = EngineDevice(
        name="Vulkan0",
        backend="Vulkan",
        free_bytes=15 * GB,
        total_bytes=16 * GB,
        description="AMD Radeon RX 7800 XT",
    )
    capabilities = EngineCapabilities(supports_gpu_offload=True, devices=(radeon,))

    plan = choose_backend(capabilities, machine)
    memory = memory_with_devices(machine, capabilities)

    assert plan.backend == "Vulkan"
    assert plan.offload
    assert not plan.unified_memory
    assert plan.note is None
    assert memory.gpus == (
        GpuInfo(
            name="AMD Radeon RX 7800 XT",
            backend="vulkan",
            total_bytes=16 * GB,
            free_bytes=15 * GB,
        ),
    )
    assert (
        choose_gpu_layers(MODEL_4GB, context_length=4096, memory=memory, supports_gpu_offload=True)
        == 29
    )


def test_vulkan_on_an_nvidia_card_suggests_a_cuda_build() -> None:
    capabilities = EngineCapabilities(
        supports_gpu_offload=True,
        devices=(cuda_device(8 * GB, backend="Vulkan", name="Vulkan0"),),
    )
    plan = choose_backend(capabilities, NVIDIA_MACHINE)
    assert plan.backend == "Vulkan"
    assert plan.note is not None
    assert "CUDA build" in plan.note
    assert "-DGGML_CUDA=on" in plan.note


def test_a_build_with_cuda_and_vulkan_uses_cuda_and_counts_each_gpu_once() -> None:
    capabilities = EngineCapabilities(
        supports_gpu_offload=True,
        devices=(
            cuda_device(8 * GB, backend="Vulkan", name="Vulkan0"),
            cuda_device(8 * GB),
        ),
    )
    plan = choose_backend(capabilities, NVIDIA_MACHINE)
    memory = memory_with_devices(NVIDIA_MACHINE, capabilities)
    assert plan.backend == "CUDA"
    assert [device.name for device in plan.devices] == ["CUDA0"]
    assert memory.vram_free == 8 * GB


def test_two_gpus_of_one_backend_are_both_used() -> None:
    capabilities = EngineCapabilities(
        supports_gpu_offload=True,
        devices=(cuda_device(8 * GB), cuda_device(6 * GB, name="CUDA1")),
    )
    plan = choose_backend(capabilities, NVIDIA_MACHINE)
    assert plan.vram_free == 14 * GB
    assert memory_with_devices(NVIDIA_MACHINE, capabilities).vram_free == 14 * GB


def test_an_integrated_gpu_shares_ram() -> None:
    machine = machine_memory_from(ram_total=32 * GB, ram_available=20 * GB)
    igpu = EngineDevice(
        name="Vulkan0",
        backend="Vulkan",
        free_bytes=16 * GB,
        total_bytes=16 * GB,
        description="AMD Radeon 780M",
        integrated=True,
    )
    memory = memory_with_devices(
        machine, EngineCapabilities(supports_gpu_offload=True, devices=(igpu,))
    )
    assert memory.unified_memory
    assert memory.budget == 20 * GB


def test_an_offloading_build_that_reports_no_devices_keeps_the_tools_figures() -> None:
    capabilities = EngineCapabilities(supports_gpu_offload=True, devices=())

    plan = choose_backend(capabilities, NVIDIA_MACHINE)

    assert memory_with_devices(NVIDIA_MACHINE, capabilities) == NVIDIA_MACHINE
    assert plan.backend == "CUDA"
    assert plan.vram_free == 15000 * MIB


def test_capabilities_from_the_childs_report() -> None:
    report = {
        "engine": "llama.cpp",
        "supports_gpu_offload": True,
        "devices": [
            {
                "name": "CUDA0",
                "description": "NVIDIA GeForce RTX 4090",
                "backend": "CUDA",
                "free_bytes": 23 * GB,
                "total_bytes": 24 * GB,
            },
            {"name": "Vulkan1", "backend": "Vulkan", "free_bytes": 1, "total_bytes": 2, "type": 2},
            {"name": "", "backend": "CUDA", "free_bytes": 1, "total_bytes": 2},
            {"name": "X", "backend": "CUDA", "free_bytes": -1, "total_bytes": 2},
            "garbage",
        ],
    }

    capabilities = EngineCapabilities.from_report(report)

    assert capabilities.supports_gpu_offload
    assert capabilities.devices == (
        EngineDevice(
            name="CUDA0",
            backend="CUDA",
            free_bytes=23 * GB,
            total_bytes=24 * GB,
            description="NVIDIA GeForce RTX 4090",
        ),
        EngineDevice(
            name="Vulkan1", backend="Vulkan", free_bytes=1, total_bytes=2, integrated=True
        ),
    )
    assert EngineCapabilities.from_report({}) == EngineCapabilities(supports_gpu_offload=False)


# --- context ---------------------------------------------------------------------------------


def test_context_above_the_trained_maximum_is_clamped() -> None:
    assert clamp_context(65_536, 4096) == (
        4096,
        "Context 65,536 is above this model's maximum of 4,096; using 4,096.",
    )


@pytest.mark.parametrize(
    ("requested", "trained", "expected"),
    [(4096, 4096, 4096), (8192, None, 8192), (256, 512, 256), (300, 131_072, 300)],
)
def test_context_within_bounds_is_kept(requested: int, trained: int | None, expected: int) -> None:
    assert clamp_context(requested, trained) == (expected, None)


def test_a_very_short_context_is_raised() -> None:
    assert clamp_context(100, 4096) == (
        256,
        "Context 100 is too short for a conversation; using 256.",
    )
    assert clamp_context(100, 128)[0] == 128  # never above the model's maximum


@pytest.mark.parametrize("requested", [0, -1])
def test_a_context_below_one_is_an_error(requested: int) -> None:
    with pytest.raises(ValueError):
        clamp_context(requested, 4096)

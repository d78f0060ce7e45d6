"""Where a llama.cpp model's memory goes: which GPU, how many layers on it, and whether it fits.

The llama.cpp child reports what its build can do (`EngineCapabilities`: GPU offload or not,
and the GPUs ggml sees with their free memory). From that and the GGUF header
(`GgufShape`), the functions here decide before loading:

- `choose_backend`: which GPU backend and devices to use, or the CPU, with a note for a
  person when a GPU sits unused (a CPU-only build on a machine with an NVIDIA card);
- `memory_with_devices`: the machine's memory with the engine's GPU figures in place of the
  vendor tools' ones;
- `choose_gpu_layers`: the most layers whose GPU share fits in free GPU memory;
- `estimate_load`: RAM and GPU memory for a number of GPU layers, and whether they fit;
- `clamp_context`: a requested context within what the model was trained for.

Layers are counted as llama.cpp's `n_gpu_layers` counts them: the last N repeating layers
go to the GPU, and N = block_count + 1 puts the output layer there too. The input layer
(token_embd) always stays on the CPU. The KV cache of a layer lives where the layer does.
The arithmetic (KV cache, buffers, the fit verdict) is `app.hardware`'s, so the Discover
estimate before a download and this one at load time agree.

Pure functions: nothing here imports llama_cpp or asks the machine anything.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from app.hardware import (
    COMFORTABLE_SHARE,
    Fit,
    GpuBackend,
    GpuInfo,
    MachineMemory,
    estimate_overhead_bytes,
    fit_within,
    kv_cache_bytes_of,
)
from app.units import format_bytes

if TYPE_CHECKING:
    from app.library.sniff import GgufShape

__all__ = [
    "GPU_SHARE",
    "MIN_CONTEXT_LENGTH",
    "EngineCapabilities",
    "EngineDevice",
    "KvCacheType",
    "LoadEstimate",
    "OffloadPlan",
    "choose_backend",
    "choose_gpu_layers",
    "clamp_context",
    "estimate_load",
    "memory_with_devices",
]

# `choose_gpu_layers` leaves a tenth of free GPU memory alone: the driver, the desktop and
# llama.cpp's own allocations need some, and a GPU out of memory fails the load. GPU memory
# up to this share "fits" in `estimate_load` (RAM keeps hardware's 80%).
GPU_SHARE = 0.9

# The shortest context `clamp_context` allows (the Settings page's minimum too): a chat
# template and a short exchange need a few hundred tokens.
MIN_CONTEXT_LENGTH = 256


class KvCacheType(StrEnum):
    """The element type of llama.cpp's KV cache (its `--cache-type-k/-v` names).

    Quantized caches (q8_0, q4_0) need flash attention for V in llama.cpp.
    """

    F32 = "f32"
    F16 = "f16"  # llama.cpp's default
    Q8_0 = "q8_0"
    Q4_0 = "q4_0"

    @property
    def bytes_per_element(self) -> float:
        """Bytes per cached element: ggml's bytes per block / elements per block."""
        block, block_bytes = _KV_BLOCKS[self]
        return block_bytes / block


# ggml's (elements per block, bytes per block) of the KV types: ggml type_traits, as in
# app.library.sniff's table. Dyadic fractions, so the byte counts are exact in floats.
_KV_BLOCKS: dict[KvCacheType, tuple[int, int]] = {
    KvCacheType.F32: (1, 4),
    KvCacheType.F16: (1, 2),
    KvCacheType.Q8_0: (32, 34),
    KvCacheType.Q4_0: (32, 18),
}


# --- what the engine reports -----------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class EngineDevice:
    """A GPU as llama.cpp's ggml sees it, with its memory in bytes."""

    name: str  # ggml's device name: "CUDA0", "Vulkan0", "Metal"
    backend: str  # ggml's backend registry name: "CUDA", "ROCm", "Metal", "Vulkan", "SYCL"...
    free_bytes: int
    total_bytes: int
    description: str = ""  # "NVIDIA GeForce RTX 4090"
    integrated: bool = False  # shares RAM with the CPU (ggml's IGPU type)

    @property
    def label(self) -> str:
        """The name to show a person."""
        return self.description.strip() or self.name

    @property
    def is_gpu(self) -> bool:
        """False for the CPU and accelerator-only backends (BLAS, AMX) and remote ones (RPC)."""
        return self.backend.strip().lower() not in _NOT_GPU_BACKENDS


_NOT_GPU_BACKENDS = frozenset({"", "cpu", "blas", "amx", "accel", "rpc"})


@dataclass(frozen=True, kw_only=True)
class EngineCapabilities:
    """What a llama.cpp build can do, as its child process reports it after starting."""

    supports_gpu_offload: bool  # llama_supports_gpu_offload()
    devices: tuple[EngineDevice, ...] = ()

    @classmethod
    def from_report(cls, report: Mapping[str, Any]) -> EngineCapabilities:
        """Read the child's report: {"supports_gpu_offload": bool, "devices": [{"name",
        "backend", "free_bytes", "total_bytes", "description"?, "integrated"? or "type"?}]}.

        Entries that do not make sense (no name, negative memory) are left out, so a
        strange report gives fewer devices rather than an error. ggml's device type 2 (IGPU)
        means integrated.
        """
        devices: list[EngineDevice] = []
        raw_devices = report.get("devices")
        for raw in raw_devices if isinstance(raw_devices, list | tuple) else ():
            if not isinstance(raw, Mapping):
                continue
            name, backend = raw.get("name"), raw.get("backend")
            free, total = _size(raw.get("free_bytes")), _size(raw.get("total_bytes"))
            if not (isinstance(name, str) and name and isinstance(backend, str)):
                continue
            if free is None or total is None:
                continue
            description = raw.get("description")
            devices.append(
                EngineDevice(
                    name=name,
                    backend=backend,
                    free_bytes=free,
                    total_bytes=total,
                    description=description if isinstance(description, str) else "",
                    integrated=raw.get("integrated") is True or raw.get("type") == 2,
                )
            )
        return cls(
            supports_gpu_offload=report.get("supports_gpu_offload") is True,
            devices=tuple(devices),
        )


def _size(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else None


# --- which backend ---------------------------------------------------------------------------

# Preferred first when a build has several (a CUDA + Vulkan build lists each NVIDIA card
# twice, once per backend; the vendor's own backend is the faster one).
_BACKEND_RANK = ("cuda", "rocm", "hip", "musa", "metal", "mtl", "sycl", "vulkan", "opencl")

_GPU_BACKENDS: dict[str, GpuBackend] = {
    "cuda": "cuda",
    "rocm": "rocm",
    "hip": "rocm",
    "metal": "metal",
    "mtl": "metal",
    "vulkan": "vulkan",
}

# How to get a llama-cpp-python build for the GPU the vendor tools found (its README:
# "All llama.cpp cmake build options can be set via the CMAKE_ARGS environment variable";
# the flags are llama.cpp's, docs/build.md).
_BUILD_FLAGS: dict[str, str] = {
    "cuda": "-DGGML_CUDA=on",
    "rocm": "-DGGML_HIP=on",
    "metal": "-DGGML_METAL=on",
    "vulkan": "-DGGML_VULKAN=on",
}


@dataclass(frozen=True, kw_only=True)
class OffloadPlan:
    """Where llama.cpp should put a model: GPU devices of one backend, or the CPU alone."""

    backend: str  # the engine's backend name ("CUDA", "Metal", "Vulkan"...), or "CPU"
    devices: tuple[EngineDevice, ...]  # the GPUs layers go to (llama.cpp splits them); () = CPU
    vram_free: int  # their free memory, as the engine reports it
    unified_memory: bool  # the GPU memory is RAM (Apple Silicon, integrated GPUs)
    note: str | None = None  # for a person: why a GPU is not used, and what to do

    @property
    def offload(self) -> bool:
        """Whether layers can go to a GPU at all."""
        return bool(self.devices)


def choose_backend(capabilities: EngineCapabilities, machine: MachineMemory) -> OffloadPlan:
    """Pick the GPU backend and devices llama.cpp should use, or the CPU.

    Among the GPUs the engine reports, the devices of the most preferred backend are used
    (CUDA, ROCm, Metal, SYCL, Vulkan, in that order), all of them: llama.cpp splits layers
    between them by free memory. A build without GPU support runs on the CPU; when the
    vendor tools found a GPU anyway, the note says it is unused and how to get a build that
    uses it. A build that can offload but reports no devices (an older llama-cpp-python
    without ggml's device registry) is planned on the GPUs the vendor tools found.

    Args:
        capabilities: what the llama.cpp child reported.
        machine: the machine's memory as `read_machine_memory` saw it (its GPUs come from
            nvidia-smi / rocm-smi, or are the Apple GPU).
    """
    if not capabilities.supports_gpu_offload:
        return OffloadPlan(
            backend="CPU",
            devices=(),
            vram_free=0,
            unified_memory=machine.unified_memory,
            note=_no_gpu_support_note(machine),
        )
    gpus = [device for device in capabilities.devices if device.is_gpu]
    if not gpus:
        gpus = [_device_from(gpu) for gpu in machine.gpus]
    if not gpus:
        return OffloadPlan(
            backend="CPU", devices=(), vram_free=0, unified_memory=machine.unified_memory
        )
    backend = min((device.backend for device in gpus), key=_backend_rank)
    chosen = tuple(device for device in gpus if device.backend == backend)
    unified = (
        machine.unified_memory
        or _GPU_BACKENDS.get(backend.lower()) == "metal"
        or all(device.integrated for device in chosen)
    )
    note = None
    vendor = {gpu.backend for gpu in machine.gpus}
    if backend.lower() == "vulkan" and vendor & {"cuda", "rocm"}:
        kind = "cuda" if "cuda" in vendor else "rocm"
        note = (
            f"llama.cpp uses Vulkan here; a {_BACKEND_NAMES[kind]} build is usually faster on "
            f"this GPU: {_install_command(kind)}"
        )
    return OffloadPlan(
        backend=backend,
        devices=chosen,
        vram_free=sum(device.free_bytes for device in chosen),
        unified_memory=unified,
        note=note,
    )


_BACKEND_NAMES: dict[str, str] = {
    "cuda": "CUDA",
    "rocm": "ROCm",
    "metal": "Metal",
    "vulkan": "Vulkan",
    "other": "GPU",
}


def _device_from(gpu: GpuInfo) -> EngineDevice:
    """A GPU the vendor tools found, as an engine device of the backend that drives it."""
    return EngineDevice(
        name=gpu.name,
        backend=_BACKEND_NAMES[gpu.backend],
        free_bytes=gpu.free_bytes,
        total_bytes=gpu.total_bytes,
        description=gpu.name,
    )


def _backend_rank(backend: str) -> tuple[int, str]:
    lowered = backend.strip().lower()
    rank = _BACKEND_RANK.index(lowered) if lowered in _BACKEND_RANK else len(_BACKEND_RANK)
    return rank, lowered


def _install_command(kind: str) -> str:
    return (
        f'CMAKE_ARGS="{_BUILD_FLAGS[kind]}" pip install --force-reinstall --no-cache-dir '
        "llama-cpp-python"
    )


def _no_gpu_support_note(machine: MachineMemory) -> str | None:
    if not machine.gpus:
        return None
    names = " and ".join(dict.fromkeys(gpu.name for gpu in machine.gpus))
    kind = machine.gpus[0].backend
    how = (
        f"reinstall llama-cpp-python with {_BACKEND_NAMES[kind]}: {_install_command(kind)}"
        if kind in _BUILD_FLAGS
        else "reinstall llama-cpp-python built for this GPU."
    )
    return (
        f"This build of llama.cpp has no GPU support, so {names} is not used and the model "
        f"runs on the CPU. To use the GPU, {how}"
    )


def memory_with_devices(machine: MachineMemory, capabilities: EngineCapabilities) -> MachineMemory:
    """`machine`'s memory as the engine can use it: its GPUs as the engine reports them.

    The engine's figures replace the vendor tools' (nvidia-smi, rocm-smi, the Metal
    estimate) for the devices `choose_backend` picks: they are what llama.cpp will allocate
    from, and they cover backends the tools do not see (Vulkan). With unified memory a GPU's
    free memory is capped by available RAM. A build without GPU support gets no GPUs. When
    the engine reports no devices, or one without memory figures, the vendor tools' figures
    stay.
    """
    if not capabilities.supports_gpu_offload:
        return dataclasses.replace(machine, gpus=())
    reported = [device for device in capabilities.devices if device.is_gpu]
    if not reported:
        return machine
    plan = choose_backend(capabilities, machine)
    if any(device.total_bytes <= 0 for device in plan.devices):
        return machine
    gpus: list[GpuInfo] = []
    for device in plan.devices:
        free = min(device.free_bytes, device.total_bytes)
        if plan.unified_memory:  # the GPU allocates RAM: no more free than RAM has
            free = min(free, max(0, machine.ram_available))
        gpus.append(
            GpuInfo(
                name=device.label,
                backend=_GPU_BACKENDS.get(device.backend.lower(), "other"),
                total_bytes=device.total_bytes,
                free_bytes=free,
            )
        )
    return dataclasses.replace(machine, gpus=tuple(gpus), unified_memory=plan.unified_memory)


# --- the estimate ----------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class LoadEstimate:
    """The memory loading a model needs in RAM and on the GPU, in bytes, and whether it fits."""

    gpu_layers: int  # as llama.cpp counts them: 0..block_count + 1
    context_length: int
    kv_type: KvCacheType
    weights_ram_bytes: int
    weights_vram_bytes: int
    kv_ram_bytes: int
    kv_vram_bytes: int
    overhead_ram_bytes: int
    overhead_vram_bytes: int
    ram_bytes: int  # weights + KV cache + buffers kept in RAM
    vram_bytes: int  # the same on the GPU (on unified memory: the GPU's share of RAM)
    fit: Fit
    explanation: str  # one sentence for a person

    @property
    def total_bytes(self) -> int:
        """RAM and GPU memory together."""
        return self.ram_bytes + self.vram_bytes

    @property
    def kv_cache_bytes(self) -> int:
        """The whole KV cache."""
        return self.kv_ram_bytes + self.kv_vram_bytes

    @property
    def weights_bytes(self) -> int:
        """All the weights, with the output copy of tied embeddings when it is on a GPU."""
        return self.weights_ram_bytes + self.weights_vram_bytes


@dataclass(frozen=True)
class _Split:
    weights_ram: int
    weights_vram: int
    kv_ram: int
    kv_vram: int
    overhead_ram: int
    overhead_vram: int

    @property
    def ram(self) -> int:
        return self.weights_ram + self.kv_ram + self.overhead_ram

    @property
    def vram(self) -> int:
        return self.weights_vram + self.kv_vram + self.overhead_vram


def _split(shape: GgufShape, context_length: int, kv_type: KvCacheType, gpu_layers: int) -> _Split:
    """Bytes in RAM and on the GPU with `gpu_layers` (0..block_count + 1) offloaded."""
    layers = shape.block_count
    first_gpu_layer = layers - min(gpu_layers, layers)
    output_on_gpu = gpu_layers > layers
    cpu_layers, gpu_layers_range = range(first_gpu_layer), range(first_gpu_layer, layers)
    weights_vram = sum(shape.layer_bytes[first_gpu_layer:]) + (
        shape.output_layer_bytes_on_gpu if output_on_gpu else 0
    )
    weights_ram = (
        shape.embedding_bytes
        + shape.other_bytes
        + sum(shape.layer_bytes[:first_gpu_layer])
        + (0 if output_on_gpu else shape.output_bytes)
    )
    element = kv_type.bytes_per_element
    on_gpu = gpu_layers > 0
    return _Split(
        weights_ram=weights_ram,
        weights_vram=weights_vram,
        kv_ram=kv_cache_bytes_of(
            shape, context_length, kv_bytes_per_element=element, layers=cpu_layers
        ),
        kv_vram=kv_cache_bytes_of(
            shape, context_length, kv_bytes_per_element=element, layers=gpu_layers_range
        ),
        # The main compute buffer goes where the layers run: the GPU once any are there.
        overhead_ram=estimate_overhead_bytes(weights_ram, compute_buffer=not on_gpu),
        overhead_vram=estimate_overhead_bytes(weights_vram) if on_gpu else 0,
    )


def _resolve_gpu_layers(shape: GgufShape, gpu_layers: int) -> int:
    if gpu_layers < -1:
        raise ValueError(f"GPU layers must be -1 (all) or more, not {gpu_layers!r}")
    everything = shape.block_count + 1
    return everything if gpu_layers == -1 else min(gpu_layers, everything)


def estimate_load(
    shape: GgufShape,
    *,
    context_length: int,
    kv_type: KvCacheType = KvCacheType.F16,
    gpu_layers: int,
    memory: MachineMemory,
) -> LoadEstimate:
    """Estimate the RAM and GPU memory loading a model needs, and whether it fits.

    The last `gpu_layers` repeating layers, and their KV cache, go to the GPU; with
    `gpu_layers` = block_count + 1 (or -1, or more, as llama.cpp reads them) the output
    layer goes too (with tied embeddings, as a second copy of token_embd). The embeddings,
    the other layers and their cache stay in RAM. Buffers (`hardware.estimate_overhead_bytes`)
    add 5% of each side's weights, and the compute buffer on the GPU when any layer is there,
    else in RAM.

    Discrete GPUs: the RAM part is judged against available RAM (FITS up to 80%), the GPU
    part against free GPU memory (FITS up to `GPU_SHARE`), and the worse verdict wins.
    Unified memory: the total against available RAM, and the GPU part against the GPU's
    free memory (Metal's working-set limit). `memory` should come from
    `memory_with_devices` once the engine has reported its devices.

    Raises:
        ValueError: if `context_length` is negative or `gpu_layers` is below -1.
    """
    if context_length < 0:
        raise ValueError(f"context length must not be negative, not {context_length!r}")
    layers = _resolve_gpu_layers(shape, gpu_layers)
    split = _split(shape, context_length, kv_type, layers)
    ram, vram = split.ram, split.vram
    gpu_free = sum(gpu.free_bytes for gpu in memory.gpus)
    if memory.unified_memory:
        verdicts = [fit_within(ram + vram, max(0, memory.budget))]
        if memory.gpus:
            verdicts.append(fit_within(vram, gpu_free, comfortable_share=GPU_SHARE))
        fit = _worst(verdicts)
        ram_fit = verdicts[0]
    else:
        ram_fit = fit_within(ram, max(0, memory.ram_available), comfortable_share=COMFORTABLE_SHARE)
        fit = _worst([ram_fit, fit_within(vram, memory.vram_free, comfortable_share=GPU_SHARE)])
    return LoadEstimate(
        gpu_layers=layers,
        context_length=context_length,
        kv_type=kv_type,
        weights_ram_bytes=split.weights_ram,
        weights_vram_bytes=split.weights_vram,
        kv_ram_bytes=split.kv_ram,
        kv_vram_bytes=split.kv_vram,
        overhead_ram_bytes=split.overhead_ram,
        overhead_vram_bytes=split.overhead_vram,
        ram_bytes=ram,
        vram_bytes=vram,
        fit=fit,
        explanation=_explain(
            shape=shape,
            split=split,
            gpu_layers=layers,
            context_length=context_length,
            memory=memory,
            fit=fit,
            ram_fits=ram_fit is not Fit.WONT_FIT,
        ),
    )


_FIT_ORDER = (Fit.FITS, Fit.TIGHT, Fit.WONT_FIT)


def _worst(verdicts: list[Fit]) -> Fit:
    return max(verdicts, key=_FIT_ORDER.index)


def _explain(
    *,
    shape: GgufShape,
    split: _Split,
    gpu_layers: int,
    context_length: int,
    memory: MachineMemory,
    fit: Fit,
    ram_fits: bool,
) -> str:
    weights = split.weights_ram + split.weights_vram
    kv = split.kv_ram + split.kv_vram
    parts = (
        f"{format_bytes(weights)} weights + {format_bytes(kv)} context at "
        f"{context_length:,} tokens + buffers"
    )
    on_gpu = f"{gpu_layers} of {shape.block_count + 1} layers on the GPU"
    if memory.unified_memory:
        sentence = (
            f"Needs about {format_bytes(split.ram + split.vram)} of memory shared by CPU and "
            f"GPU ({parts}; {on_gpu}); {format_bytes(memory.budget)} free now."
        )
    elif gpu_layers == 0:
        sentence = (
            f"Needs about {format_bytes(split.ram)} of RAM ({parts}), all on the CPU; "
            f"{format_bytes(memory.ram_available)} of RAM free now."
        )
    else:
        sentence = (
            f"Needs about {format_bytes(split.ram)} of RAM and {format_bytes(split.vram)} of "
            f"GPU memory ({parts}; {on_gpu}); {format_bytes(memory.ram_available)} of RAM and "
            f"{format_bytes(memory.vram_free)} of GPU memory free now."
        )
    if fit is Fit.TIGHT:
        sentence += " Tight: close other programs or use a shorter context."
    elif fit is Fit.WONT_FIT:
        if ram_fits and gpu_layers > 0:
            sentence += (
                " Put fewer layers on the GPU, or use a shorter context or a smaller KV cache type."
            )
        else:
            sentence += " Try a smaller quantization or a shorter context."
    return sentence


def choose_gpu_layers(
    shape: GgufShape,
    *,
    context_length: int,
    kv_type: KvCacheType = KvCacheType.F16,
    memory: MachineMemory,
    supports_gpu_offload: bool,
) -> int:
    """The number of layers to put on the GPU (llama.cpp's n_gpu_layers), 0..block_count + 1.

    0 when the build cannot offload or `memory` has no GPU. With unified memory (Metal),
    all of them when the whole model fits the memory free now and its GPU share fits the
    GPU's limit. Otherwise the most layers whose GPU part (weights, their KV cache and the
    buffers) stays within `GPU_SHARE` of the GPU's free memory; 0 when not even one does.

    Raises:
        ValueError: if `context_length` is negative.
    """
    if context_length < 0:
        raise ValueError(f"context length must not be negative, not {context_length!r}")
    if not supports_gpu_offload or not memory.gpus:
        return 0
    everything = shape.block_count + 1
    gpu_free = sum(gpu.free_bytes for gpu in memory.gpus)
    if memory.unified_memory:
        whole = _split(shape, context_length, kv_type, everything)
        if whole.ram + whole.vram <= memory.budget and whole.vram <= gpu_free:
            return everything
    limit = GPU_SHARE * (gpu_free if memory.unified_memory else memory.vram_free)
    # The GPU part grows with each layer, so the answer is the last count that fits.
    low, high = 0, everything
    while low < high:
        middle = (low + high + 1) // 2
        if _split(shape, context_length, kv_type, middle).vram <= limit:
            low = middle
        else:
            high = middle - 1
    return low


def clamp_context(requested: int, trained: int | None) -> tuple[int, str | None]:
    """A context length the model can use, and a note for a person when it differs.

    Above the model's trained maximum (`GgufShape.context_length`; None: unknown, so not
    capped) it is lowered to that maximum. Below `MIN_CONTEXT_LENGTH` it is raised to it
    (or to the trained maximum, if that is smaller): a chat template and a short exchange
    need that much. Otherwise it is returned as it is, with no note.

    Raises:
        ValueError: if `requested` is below 1 (a length, not "use the default": callers
            pass the default themselves).
    """
    if requested < 1:
        raise ValueError(f"context length must be at least 1, not {requested!r}")
    if trained is not None and trained > 0 and requested > trained:
        return trained, (
            f"Context {requested:,} is above this model's maximum of {trained:,}; "
            f"using {trained:,}."
        )
    floor = min(MIN_CONTEXT_LENGTH, trained) if trained else MIN_CONTEXT_LENGTH
    if requested < floor:
        return floor, f"Context {requested:,} is too short for a conversation; using {floor:,}."
    return requested, None

"""Which GPU llama.cpp should use, with which memory figures, and the context to load with.

The llama.cpp child reports what its build can do (`EngineCapabilities`: GPU offload or not,
and the GPUs ggml sees with their free memory). From that, the functions here decide before
loading:

- `choose_backend`: which GPU backend and devices to use, or the CPU, with a note for a
  person when a GPU sits unused (a CPU-only build on a machine with an NVIDIA card);
- `memory_with_devices`: the machine's memory with the engine's GPU figures in place of the
  vendor tools' ones, for `app.llm.fit.estimate_fit`;
- `clamp_context`: a requested context within what the model was trained for.

Pure functions: nothing here imports llama_cpp or asks the machine anything.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from app.hardware import GpuBackend, GpuInfo, MachineMemory

__all__ = [
    "MIN_CONTEXT_LENGTH",
    "EngineCapabilities",
    "EngineDevice",
    "OffloadPlan",
    "choose_backend",
    "clamp_context",
    "memory_with_devices",
]

# The shortest context `clamp_context` allows (the Settings page's minimum too): a chat
# template and a short exchange need a few hundred tokens.
MIN_CONTEXT_LENGTH = 256


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

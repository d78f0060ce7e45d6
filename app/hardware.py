"""This machine's memory, and whether a model will fit in it before it is downloaded.

`read_machine_memory` asks psutil for RAM and the vendors' command-line tools for GPU memory
(`nvidia-smi`, `rocm-smi`); it never imports torch or llama_cpp. The parsing and the
decisions are pure functions (`parse_nvidia_smi`, `parse_rocm_smi`, `machine_memory_from`,
`estimate_gguf_fit`), so tests cover them without a GPU.

The arithmetic of an estimate — the KV cache (`estimate_kv_cache_bytes` from a parameter
count, `kv_cache_bytes_of` from a GGUF header), the buffers (`estimate_overhead_bytes`) and
the verdict (`fit_within`) — is shared with `app.engines.offload`, which splits the same
figures between RAM and GPU memory when a model is loaded.
"""

from __future__ import annotations

import json
import math
import platform
import shutil
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from itertools import pairwise
from typing import TYPE_CHECKING, Any, Literal

import psutil

from app.hub.repo_files import bits_per_weight
from app.units import format_bytes

if TYPE_CHECKING:
    from collections.abc import Iterable

    from app.library.sniff import GgufShape

# The vendor tools report cuda, rocm and metal; an engine may report the others.
GpuBackend = Literal["cuda", "metal", "rocm", "vulkan", "other"]

DEFAULT_CONTEXT_LENGTH = 4096

MIB = 1024 * 1024

# How long a vendor tool may take before we give up on it and report no GPU.
TOOL_TIMEOUT_S = 3.0

# Metal lets the GPU wire only part of unified memory ("recommendedMaxWorkingSetSize",
# about two thirds to three quarters of RAM depending on the machine); we cannot ask Metal
# without importing a GPU runtime, so this is an estimate.
METAL_WORKING_SET_FRACTION = 0.75

# Bits per weight assumed when a file name does not say how it is quantized: Q4_K_M, the
# most common download.
FALLBACK_BITS_PER_WEIGHT = 4.85

# llama.cpp's compute buffers (about 300 MiB at a 4K context with the default batch size)
# plus a margin for the runtime itself, the vocabulary and fragmentation.
COMPUTE_BUFFER_BYTES = 300 * MIB
OVERHEAD_FRACTION_OF_WEIGHTS = 0.05

# A model "fits" when it needs at most this share of the memory that is free now; up to all
# of it is "tight" (it may load, but other programs or a longer context can push it over).
COMFORTABLE_SHARE = 0.8


@dataclass(frozen=True, kw_only=True)
class GpuInfo:
    """One GPU and its memory, in bytes."""

    name: str
    backend: GpuBackend
    total_bytes: int
    free_bytes: int


@dataclass(frozen=True, kw_only=True)
class MachineMemory:
    """The memory a model could use on this machine, in bytes."""

    ram_total: int
    ram_available: int  # what the OS could hand out now without swapping
    gpus: tuple[GpuInfo, ...]
    unified_memory: bool  # Apple Silicon: the GPU uses the same RAM, so it is not extra memory

    @property
    def vram_free(self) -> int:
        """Free memory on discrete GPUs (0 with unified memory, where it is RAM)."""
        if self.unified_memory:
            return 0
        return sum(gpu.free_bytes for gpu in self.gpus)

    @property
    def budget(self) -> int:
        """The memory free for a model now: available RAM plus free discrete-GPU memory."""
        return self.ram_available + self.vram_free


class Fit(StrEnum):
    """Whether a model will fit in memory."""

    FITS = "fits"
    TIGHT = "tight"
    WONT_FIT = "won't fit"


@dataclass(frozen=True, kw_only=True)
class FitEstimate:
    """How much memory running a model needs, against what is free, in bytes."""

    required_bytes: int  # weights + KV cache + overhead
    weights_bytes: int
    kv_cache_bytes: int
    overhead_bytes: int
    available_bytes: int  # available RAM + free discrete-GPU memory, at the time of the reading
    fit: Fit
    context_length: int
    explanation: str  # one or two sentences for a person


# --- reading the machine ---------------------------------------------------------------------


def read_machine_memory() -> MachineMemory:
    """Read RAM and GPU memory now.

    RAM comes from psutil. NVIDIA GPUs come from `nvidia-smi` and AMD GPUs from `rocm-smi`
    when they are on PATH; a tool that is missing, fails, prints nonsense or takes longer
    than `TOOL_TIMEOUT_S` contributes no GPU. On Apple Silicon the GPU is reported as one
    Metal device sharing RAM. Blocks for up to a few seconds: call it off the GUI thread.
    """
    ram = psutil.virtual_memory()
    apple = is_apple_silicon(
        system=platform.system(),
        machine=platform.machine(),
        arm64_capable=_run_tool(["sysctl", "-n", "hw.optional.arm64"])
        if sys.platform == "darwin"
        else None,
    )
    nvidia: str | None = None
    rocm: str | None = None
    chip: str | None = None
    if apple:
        chip = _run_tool(["sysctl", "-n", "machdep.cpu.brand_string"])
    else:
        nvidia = _run_tool(
            [
                "nvidia-smi",
                "--query-gpu=name,memory.total,memory.free",
                "--format=csv,noheader,nounits",
            ]
        )
        rocm = _run_tool(["rocm-smi", "--showproductname", "--showmeminfo", "vram", "--json"])
    return machine_memory_from(
        ram_total=ram.total,
        ram_available=ram.available,
        apple_silicon=apple,
        apple_chip=chip,
        nvidia_smi_output=nvidia,
        rocm_smi_output=rocm,
    )


def is_apple_silicon(*, system: str, machine: str, arm64_capable: str | None = None) -> bool:
    """Whether this is a Mac with an Apple Silicon chip.

    Args:
        system: `platform.system()`, e.g. "Darwin".
        machine: `platform.machine()`, e.g. "arm64"; a Python running under Rosetta says
            "x86_64" on an Apple Silicon Mac.
        arm64_capable: the output of `sysctl -n hw.optional.arm64` ("1" on Apple Silicon,
            also under Rosetta), or None when it was not read.
    """
    if system != "Darwin":
        return False
    return machine == "arm64" or (arm64_capable or "").strip() == "1"


def machine_memory_from(
    *,
    ram_total: int,
    ram_available: int,
    apple_silicon: bool = False,
    apple_chip: str | None = None,
    nvidia_smi_output: str | None = None,
    rocm_smi_output: str | None = None,
) -> MachineMemory:
    """Combine raw readings into a `MachineMemory`; the decision logic of `read_machine_memory`.

    On Apple Silicon the GPU is one Metal device whose memory is RAM (`unified_memory` is
    True; its total is Metal's working-set limit, estimated). Elsewhere the GPUs are those
    that `nvidia-smi` (CUDA) and `rocm-smi` (ROCm) report; None or unreadable output means
    none of that kind.
    """
    if apple_silicon:
        working_set = int(ram_total * METAL_WORKING_SET_FRACTION)
        metal = GpuInfo(
            name=(apple_chip or "").strip() or "Apple GPU",
            backend="metal",
            total_bytes=working_set,
            free_bytes=max(0, min(ram_available, working_set)),
        )
        return MachineMemory(
            ram_total=ram_total, ram_available=ram_available, gpus=(metal,), unified_memory=True
        )
    gpus: list[GpuInfo] = []
    if nvidia_smi_output is not None:
        gpus.extend(parse_nvidia_smi(nvidia_smi_output))
    if rocm_smi_output is not None:
        gpus.extend(parse_rocm_smi(rocm_smi_output))
    return MachineMemory(
        ram_total=ram_total, ram_available=ram_available, gpus=tuple(gpus), unified_memory=False
    )


def parse_nvidia_smi(output: str) -> tuple[GpuInfo, ...]:
    """Parse `nvidia-smi --query-gpu=name,memory.total,memory.free --format=csv,noheader,nounits`.

    Each line reads "NVIDIA GeForce RTX 4090, 24564, 23592" (MiB). Lines that do not parse
    (error messages, "[N/A]" or "[Not Supported]" values, as on unified-memory boards) are
    skipped, so garbage yields no GPUs rather than an error.
    """
    gpus: list[GpuInfo] = []
    for line in output.splitlines():
        fields = [field.strip() for field in line.rsplit(",", 2)]
        if len(fields) != 3 or not fields[0]:
            continue
        total, free = _parse_mib(fields[1]), _parse_mib(fields[2])
        if total is None or free is None or free > total:
            continue
        gpus.append(GpuInfo(name=fields[0], backend="cuda", total_bytes=total, free_bytes=free))
    return tuple(gpus)


def parse_rocm_smi(output: str) -> tuple[GpuInfo, ...]:
    """Parse `rocm-smi --showproductname --showmeminfo vram --json`.

    The JSON maps "card0", "card1", ... to fields such as "VRAM Total Memory (B)",
    "VRAM Total Used Memory (B)" and "Card Series" (the spelling of the names differs
    between ROCm versions, so they are matched without case). Warnings printed before the
    JSON are skipped; output that is not JSON yields no GPUs.
    """
    start = output.find("{")
    if start < 0:
        return ()
    try:
        data, _end = json.JSONDecoder().raw_decode(output, start)
    except ValueError:
        return ()
    if not isinstance(data, dict):
        return ()
    gpus: list[GpuInfo] = []
    for card, fields in data.items():
        if not isinstance(fields, dict):
            continue
        lowered = {str(key).strip().lower(): value for key, value in fields.items()}
        total = _parse_int(lowered.get("vram total memory (b)"))
        used = _parse_int(lowered.get("vram total used memory (b)"))
        if total is None or used is None or not 0 <= used <= total:
            continue
        name = _first_text(lowered, ("card series", "card model", "card sku")) or str(card)
        gpus.append(GpuInfo(name=name, backend="rocm", total_bytes=total, free_bytes=total - used))
    return tuple(gpus)


def _parse_mib(text: str) -> int | None:
    try:
        value = float(text)
    except ValueError:
        return None
    if not math.isfinite(value) or value < 0:
        return None
    return int(value * MIB)


def _parse_int(value: Any) -> int | None:
    try:
        number = int(str(value).strip())
    except ValueError:
        return None
    return number if number >= 0 else None


def _first_text(fields: dict[str, Any], keys: Sequence[str]) -> str | None:
    for key in keys:
        value = fields.get(key)
        if isinstance(value, str) and value.strip():
            return value.strip()
    return None


def _run_tool(args: list[str], *, timeout: float | None = None) -> str | None:
    """Run a command-line tool and return its standard output, or None on any failure."""
    executable = shutil.which(args[0])
    if executable is None:
        return None
    try:
        result = subprocess.run(
            [executable, *args[1:]],
            capture_output=True,
            text=True,
            errors="replace",
            timeout=TOOL_TIMEOUT_S if timeout is None else timeout,
            check=False,
            stdin=subprocess.DEVNULL,
            # A console window must not flash up when the GUI app runs this on Windows.
            creationflags=getattr(subprocess, "CREATE_NO_WINDOW", 0),
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return result.stdout if result.returncode == 0 else None


# --- estimates -------------------------------------------------------------------------------

# Without the GGUF header we do not know a model's shape, so we guess it from its size.
# Rows are (parameters, layers, K/V width = kv_heads * head_dim) of typical models. Modern
# models use grouped-query attention, so the K/V width is far below the hidden size (1024
# for most models from 2B to 405B). Between rows, layers * K/V width is interpolated on a
# log scale of the parameter count; outside the table the nearest row is used. The rows are
# chosen so that a bigger model never gets a smaller cache. Mixture-of-experts models
# (counted by total parameters, so overestimated), sliding-window models and old models
# without GQA (Llama-2-13B: 40 layers, 5120 wide, underestimated) are what this gets most
# wrong; the GGUF header, once read, gives the exact figure.
_TYPICAL_SHAPES: tuple[tuple[float, int, int], ...] = (
    (0.5e9, 24, 128),  # Qwen2.5-0.5B
    (1.2e9, 16, 512),  # Llama-3.2-1B
    (1.7e9, 28, 1024),  # Qwen3-1.7B
    (3.2e9, 28, 1024),  # Llama-3.2-3B
    (8.0e9, 32, 1024),  # Llama-3.1-8B, Mistral-7B
    (14e9, 40, 1024),  # Qwen3-14B, Mistral-Nemo-12B
    (32e9, 64, 1024),  # Qwen2.5-32B, Qwen3-32B
    (70e9, 80, 1024),  # Llama-3.1-70B
    (123e9, 88, 1024),  # Mistral-Large-2
    (405e9, 126, 1024),  # Llama-3.1-405B
)


def estimate_kv_cache_bytes(
    parameter_count: float, context_length: int, *, kv_bytes_per_element: float = 2.0
) -> int:
    """Estimate the KV cache of a model with `parameter_count` weights at `context_length`.

    KV bytes = 2 (K and V) * layers * K/V width * context * bytes per element, with
    layers * K/V width guessed from the parameter count (see `_TYPICAL_SHAPES`): an 8B
    model at 4,096 tokens needs 2 * 32 * 1024 * 4096 * 2 bytes, about 537 MB.
    `kv_bytes_per_element` is 2 for llama.cpp's default f16 cache, 1 for q8_0.

    Raises:
        ValueError: if the parameter count is not positive, or the context or element size
            is negative.
    """
    if not parameter_count > 0 or not math.isfinite(parameter_count):
        raise ValueError(f"parameter count must be positive, not {parameter_count!r}")
    if context_length < 0:
        raise ValueError(f"context length must not be negative, not {context_length!r}")
    if not kv_bytes_per_element >= 0:
        raise ValueError(f"bytes per element must not be negative, not {kv_bytes_per_element!r}")
    return math.ceil(
        2 * _kv_elements_per_token(parameter_count) * context_length * kv_bytes_per_element
    )


def kv_cache_bytes_of(
    shape: GgufShape,
    context_length: int,
    *,
    kv_bytes_per_element: float = 2.0,
    layers: Iterable[int] | None = None,
) -> int:
    """The KV cache of a model whose GGUF header was read, at `context_length` tokens.

    K bytes = context * sum over layers of (kv_heads * key_length) * bytes per element, and
    V bytes likewise with value_length; `layers` limits the sum (default: all layers), which
    is how llama.cpp splits the cache between the CPU and a GPU. `kv_bytes_per_element` is 2
    for llama.cpp's default f16 cache, 34/32 for q8_0, 18/32 for q4_0. Sliding-window layers
    (Gemma 2/3) are counted at the full context, so their models are overestimated.

    Raises:
        ValueError: if the context or element size is negative.
    """
    if context_length < 0:
        raise ValueError(f"context length must not be negative, not {context_length!r}")
    if not kv_bytes_per_element >= 0:
        raise ValueError(f"bytes per element must not be negative, not {kv_bytes_per_element!r}")
    return math.ceil(shape.kv_elements_per_token(layers) * context_length * kv_bytes_per_element)


def estimate_overhead_bytes(weights_bytes: int, *, compute_buffer: bool = True) -> int:
    """Memory beyond weights and KV cache: compute buffers and a margin for the runtime.

    `OVERHEAD_FRACTION_OF_WEIGHTS` of `weights_bytes`, plus `COMPUTE_BUFFER_BYTES` when
    `compute_buffer` is True (llama.cpp allocates its main compute buffer once, on the GPU
    when layers are offloaded, else in RAM).
    """
    margin = math.ceil(weights_bytes * OVERHEAD_FRACTION_OF_WEIGHTS)
    return margin + (COMPUTE_BUFFER_BYTES if compute_buffer else 0)


def fit_within(
    required: int, available: int, *, comfortable_share: float = COMFORTABLE_SHARE
) -> Fit:
    """Whether `required` bytes fit in `available`: FITS up to `comfortable_share` of it,
    TIGHT up to all of it, WONT_FIT beyond. Nothing required always fits."""
    if required <= 0:
        return Fit.FITS
    if required <= comfortable_share * available:
        return Fit.FITS
    if required <= available:
        return Fit.TIGHT
    return Fit.WONT_FIT


def _kv_elements_per_token(parameter_count: float) -> float:
    """Layers * K/V width of a typical model with this many parameters."""
    first, last = _TYPICAL_SHAPES[0], _TYPICAL_SHAPES[-1]
    if parameter_count <= first[0]:
        return float(first[1] * first[2])
    if parameter_count >= last[0]:
        return float(last[1] * last[2])
    for (p0, layers0, width0), (p1, layers1, width1) in pairwise(_TYPICAL_SHAPES):
        if parameter_count <= p1:
            t = math.log(parameter_count / p0) / math.log(p1 / p0)
            return layers0 * width0 + t * (layers1 * width1 - layers0 * width0)
    raise AssertionError("unreachable: the table covers the range")  # pragma: no cover


def estimate_gguf_fit(
    file_size: int,
    quantization: str | None,
    memory: MachineMemory,
    *,
    context_length: int = DEFAULT_CONTEXT_LENGTH,
    shape: GgufShape | None = None,
    kv_bytes_per_element: float = 2.0,
) -> FitEstimate:
    """Estimate whether a GGUF model of `file_size` bytes will run in `memory`.

    Required memory is the weights (the file size), the KV cache for `context_length`
    tokens and an overhead for compute buffers (`estimate_overhead_bytes`). The KV cache is
    exact when `shape` (the file's GGUF header, `Checkpoint.gguf_shape`) is given
    (`kv_cache_bytes_of`); without it, it is guessed from a parameter count of
    file_size * 8 / bits per weight of `quantization`, 4.85 when unknown. It is compared
    with the memory free now (available RAM plus free discrete-GPU memory; with unified
    memory the GPU adds nothing): at most 80% of it is FITS, up to all of it TIGHT, more
    WONT_FIT. `app.engines.offload.estimate_load` splits the same figures between RAM and
    GPU memory.

    Args:
        kv_bytes_per_element: 2 for llama.cpp's default f16 cache, 34/32 for q8_0.

    Raises:
        ValueError: if `file_size` or `context_length` is negative.
    """
    if file_size < 0:
        raise ValueError(f"file size must not be negative, not {file_size!r}")
    if context_length < 0:
        raise ValueError(f"context length must not be negative, not {context_length!r}")
    if shape is not None:
        kv_cache = kv_cache_bytes_of(
            shape, context_length, kv_bytes_per_element=kv_bytes_per_element
        )
    else:
        bits = bits_per_weight(quantization) or FALLBACK_BITS_PER_WEIGHT
        parameter_count = file_size * 8 / bits
        kv_cache = (
            estimate_kv_cache_bytes(
                parameter_count, context_length, kv_bytes_per_element=kv_bytes_per_element
            )
            if parameter_count > 0
            else 0
        )
    overhead = estimate_overhead_bytes(file_size)
    required = file_size + kv_cache + overhead
    available = max(0, memory.budget)
    fit = fit_within(required, available)
    return FitEstimate(
        required_bytes=required,
        weights_bytes=file_size,
        kv_cache_bytes=kv_cache,
        overhead_bytes=overhead,
        available_bytes=available,
        fit=fit,
        context_length=context_length,
        explanation=_explain(
            fit=fit,
            required=required,
            weights=file_size,
            kv_cache=kv_cache,
            context_length=context_length,
            memory=memory,
            quantization_known=shape is not None or bits_per_weight(quantization) is not None,
        ),
    )


def _explain(
    *,
    fit: Fit,
    required: int,
    weights: int,
    kv_cache: int,
    context_length: int,
    memory: MachineMemory,
    quantization_known: bool,
) -> str:
    needs = (
        f"Needs about {format_bytes(required)} ({format_bytes(weights)} weights + "
        f"{format_bytes(kv_cache)} context at {context_length:,} tokens + buffers)"
    )
    if memory.unified_memory:
        free = f"{format_bytes(memory.budget)} of memory free now, shared by CPU and GPU"
    elif memory.vram_free > 0:
        free = (
            f"{format_bytes(memory.budget)} free now ({format_bytes(memory.ram_available)} "
            f"RAM + {format_bytes(memory.vram_free)} GPU)"
        )
    else:
        free = f"{format_bytes(memory.budget)} of RAM free now"
    sentence = f"{needs}; {free}."
    if not quantization_known:
        sentence += (
            f" The quantization is unknown; assumed {FALLBACK_BITS_PER_WEIGHT} bits per weight."
        )
    if fit is Fit.TIGHT:
        sentence += " Tight: close other programs or use a shorter context."
    elif fit is Fit.WONT_FIT:
        sentence += " Try a smaller quantization or a shorter context."
    return sentence

"""This machine's memory: RAM and GPUs, as free now.

`read_machine_memory` asks psutil for RAM and the vendors' command-line tools for GPU memory
(`nvidia-smi`, `rocm-smi`); it never imports torch or llama_cpp. The parsing and the
decisions are pure functions (`parse_nvidia_smi`, `parse_rocm_smi`, `machine_memory_from`),
so tests cover them without a GPU. Whether a model fits in it is `app.llm.fit`'s question.
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
from typing import Any, Literal

import psutil

# The vendor tools report cuda, rocm and metal; an engine may report the others.
GpuBackend = Literal["cuda", "metal", "rocm", "vulkan", "other"]

MIB = 1024 * 1024

# How long a vendor tool may take before we give up on it and report no GPU.
TOOL_TIMEOUT_S = 3.0

# Metal lets the GPU wire only part of unified memory ("recommendedMaxWorkingSetSize",
# about two thirds to three quarters of RAM depending on the machine); we cannot ask Metal
# without importing a GPU runtime, so this is an estimate.
METAL_WORKING_SET_FRACTION = 0.75


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

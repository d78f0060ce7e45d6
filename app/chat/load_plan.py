"""Before a model loads: clamp the context, choose the GPU layers, and check the memory.

The same estimate Discover and `modeldeck info` show before a download (`app.llm.fit`), now
with the GGUF header's exact shape and what the engine reports of its GPUs. A model that cannot fit
is refused before llama.cpp tries (an out-of-memory kill takes the machine with it for a
while); a tight one loads with a warning.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from app.errors import AppError
from app.hardware import MachineMemory
from app.library.sniff import sniff, sniff_projector
from app.llm import (
    EngineCapabilities,
    Fit,
    FitEstimate,
    KvCacheType,
    choose_backend,
    clamp_context,
    estimate_fit,
    memory_with_devices,
)
from app.llm.messages import LoadSettings
from app.llm.projector_cost import projector_cost


class ModelTooLargeError(AppError, MemoryError):
    """The estimate says the model cannot fit in RAM + GPU memory."""

    def __init__(self, estimate: FitEstimate) -> None:
        super().__init__(
            f"This model will not fit: {estimate.explanation}",
            hint="Pick a smaller quantization, or a shorter context.",
        )
        self.estimate = estimate


@dataclass(frozen=True, kw_only=True)
class LoadPlan:
    """The settings to load with, the estimate behind them, and what to tell the person."""

    settings: LoadSettings
    estimate: FitEstimate | None  # None when the header gave no shape to estimate from
    notes: tuple[str, ...]  # clamped context, a tight fit, an unused GPU…

    @property
    def tight(self) -> bool:
        return self.estimate is not None and self.estimate.fit is Fit.TIGHT


def plan_load(
    path: Path,
    *,
    context_length: int,
    gpu_layers: int | None,
    threads: int | None,
    kv_cache_type: KvCacheType,
    flash_attention: bool,
    capabilities: Mapping[str, Any],
    machine: MachineMemory,
    projector: Path | None = None,
) -> LoadPlan:
    """Decide how to load the GGUF at `path` (and the vision `projector` beside it).

    Args:
        gpu_layers: the person's choice; None lets the estimate choose.
        projector: an mmproj GGUF to load with the model; the estimate counts it.
        capabilities: what the LLM engine reported (GPU support, devices).
        machine: RAM and GPUs as the app sees them.

    Raises:
        ModelTooLargeError: the estimate exceeds RAM + GPU memory.
        CheckpointError: the file is not a readable GGUF (or `projector` not a projector).
    """
    checkpoint = sniff(path)
    cost = projector_cost(sniff_projector(projector)) if projector is not None else None
    shape = checkpoint.gguf_shape
    notes: list[str] = []
    trained = shape.context_length if shape is not None else checkpoint.context_length
    context, note = clamp_context(context_length, trained)
    if note:
        notes.append(note)
    engine = EngineCapabilities.from_report(capabilities)
    backend = choose_backend(engine, machine)
    if backend.note:
        notes.append(backend.note)
    if gpu_layers and not backend.offload:
        notes.append(
            f"{gpu_layers} GPU layers were asked for, but this llama.cpp has no GPU to use; "
            "loading on the CPU."
        )
        gpu_layers = 0
    memory = memory_with_devices(machine, engine)
    estimate: FitEstimate | None = None
    if shape is not None:
        estimate = estimate_fit(
            shape,
            context_length=context,
            memory=memory,
            kv_type=kv_cache_type,
            gpu_layers=gpu_layers,
            supports_gpu_offload=backend.offload,
            file_size=checkpoint.size,
            projector=cost,
        )
        if gpu_layers is None:
            gpu_layers = estimate.gpu_layers
        if estimate.fit is Fit.WONT_FIT:
            raise ModelTooLargeError(estimate)
        if estimate.fit is Fit.TIGHT:
            notes.append(f"Tight fit: {estimate.explanation}")
    settings = LoadSettings(
        path=path,
        context_length=context,
        gpu_layers=gpu_layers or 0,
        threads=threads,
        flash_attention=flash_attention,
        kv_cache_type=kv_cache_type.value,
        projector=projector,
    )
    return LoadPlan(settings=settings, estimate=estimate, notes=tuple(notes))

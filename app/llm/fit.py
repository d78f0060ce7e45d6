"""Whether a GGUF model fits this machine: one estimate for Discover, `info`, Load and serving.

`estimate_fit` is the only verdict (fits / tight / won't fit) and the only explanation the
app gives. It splits a model between RAM and GPU memory the way llama.cpp does, layer by
layer, from a GGUF header (`GgufShape`). Before a download only the file's size and
quantization are known, so `estimate_file_fit` guesses a typical shape for them
(`guess_gguf_shape`) and then asks the same question; with the header (a downloaded file,
or at load time) the figures are exact. Given the same shape, file size, context and
memory, Discover, `modeldeck info`, the Load planner and the server give the same answer.

The arithmetic: the KV cache (`kv_cache_bytes_of` from a header, `estimate_kv_cache_bytes`
from a parameter count), the buffers (`estimate_overhead_bytes`), the verdict
(`fit_within`, with one `COMFORTABLE_SHARE` for RAM and GPU memory alike) and the most
layers a GPU takes (`choose_gpu_layers`).

Pure functions: nothing here imports llama_cpp or asks the machine anything.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from enum import StrEnum
from itertools import pairwise
from typing import TYPE_CHECKING

from app.hardware import MIB, MachineMemory
from app.hub.repo_files import bits_per_weight
from app.library.sniff import GgufShape
from app.units import format_bytes

if TYPE_CHECKING:
    from collections.abc import Iterable

__all__ = [
    "COMFORTABLE_SHARE",
    "COMPUTE_BUFFER_BYTES",
    "DEFAULT_CONTEXT_LENGTH",
    "FALLBACK_BITS_PER_WEIGHT",
    "Fit",
    "FitEstimate",
    "KvCacheType",
    "ProjectorCost",
    "choose_gpu_layers",
    "estimate_file_fit",
    "estimate_fit",
    "estimate_kv_cache_bytes",
    "estimate_overhead_bytes",
    "fit_within",
    "guess_gguf_shape",
    "kv_cache_bytes_of",
]

DEFAULT_CONTEXT_LENGTH = 4096

# Bits per weight assumed when a file name does not say how it is quantized: Q4_K_M, the
# most common download.
FALLBACK_BITS_PER_WEIGHT = 4.85

# llama.cpp's compute buffers (about 300 MiB at a 4K context with the default batch size)
# plus a margin for the runtime itself, the vocabulary and fragmentation.
COMPUTE_BUFFER_BYTES = 300 * MIB
OVERHEAD_FRACTION_OF_WEIGHTS = 0.05

# A model "fits" when each memory it uses (RAM, GPU memory) needs at most this share of what
# is free there now; up to all of it is "tight" (it may load, but other programs or a longer
# context can push it over). `choose_gpu_layers` fills a GPU up to the same share, so the
# layers it picks are never called tight by the verdict. Free memory already leaves out what
# the system and other programs hold, and the estimate adds its own 5% and compute buffer.
COMFORTABLE_SHARE = 0.9


class Fit(StrEnum):
    """Whether a model will fit in memory."""

    FITS = "fits"
    TIGHT = "tight"
    WONT_FIT = "won't fit"


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


# --- the estimate ----------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class FitEstimate:
    """The memory a model needs in RAM and on the GPU, in bytes, and whether it fits."""

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
    projector_bytes: int = 0  # a vision projector's weights and compute buffer, counted above
    image_tokens: int | None = None  # context one image takes, when a projector comes along

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

    @property
    def overhead_bytes(self) -> int:
        """The buffers, in RAM and on the GPU."""
        return self.overhead_ram_bytes + self.overhead_vram_bytes


@dataclass(frozen=True, kw_only=True)
class ProjectorCost:
    """What a vision projector loaded beside the model costs: its weights, the buffer its
    image encoder computes in, and the context tokens one image takes."""

    weight_bytes: int
    compute_bytes: int
    image_tokens: int | None  # None: the projector's type does not say (dynamic resolution)

    @property
    def total_bytes(self) -> int:
        return self.weight_bytes + self.compute_bytes


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


def estimate_fit(
    shape: GgufShape,
    *,
    context_length: int,
    memory: MachineMemory,
    kv_type: KvCacheType = KvCacheType.F16,
    gpu_layers: int | None = None,
    supports_gpu_offload: bool | None = None,
    file_size: int | None = None,
    projector: ProjectorCost | None = None,
) -> FitEstimate:
    """Estimate the RAM and GPU memory a model needs, and whether it fits: the app's one verdict.

    The last `gpu_layers` repeating layers, and their KV cache, go to the GPU; with
    `gpu_layers` = block_count + 1 (or -1, or more, as llama.cpp reads them) the output
    layer goes too (with tied embeddings, as a second copy of token_embd). The embeddings,
    the other layers and their cache stay in RAM, and so do the bytes of the file outside
    its tensors (the header, the vocabulary) when `file_size` is given. Buffers
    (`estimate_overhead_bytes`) add 5% of each side's weights, and the compute buffer on the
    GPU when any layer is there, else in RAM.

    Discrete GPUs: the RAM part is judged against available RAM, the GPU part against free
    GPU memory, each FITS up to `COMFORTABLE_SHARE`, and the worse verdict wins. Unified
    memory: the total against available RAM, and the GPU part against the GPU's free memory
    (Metal's working-set limit). `memory` should come from
    `app.llm.offload.memory_with_devices` once the engine has reported its devices.

    Args:
        gpu_layers: llama.cpp's n_gpu_layers; None: as many as fit (`choose_gpu_layers`).
        supports_gpu_offload: whether layers can go to a GPU when `gpu_layers` is None;
            None: whenever `memory` has a GPU.
        file_size: the GGUF's bytes on disk (all parts of a split file).
        projector: a vision projector loaded beside the model: on the GPU with any layer
            there (as the engine loads it), else in RAM.

    Raises:
        ValueError: if `context_length` is negative or `gpu_layers` is below -1.
    """
    if context_length < 0:
        raise ValueError(f"context length must not be negative, not {context_length!r}")
    if file_size is not None and file_size > shape.tensor_bytes:
        # Not a tensor, so not on a GPU: the header and metadata are read into RAM.
        shape = dataclasses.replace(
            shape, other_bytes=shape.other_bytes + file_size - shape.tensor_bytes
        )
    if gpu_layers is None:
        gpu_layers = choose_gpu_layers(
            shape,
            context_length=context_length,
            kv_type=kv_type,
            memory=memory,
            supports_gpu_offload=bool(memory.gpus)
            if supports_gpu_offload is None
            else supports_gpu_offload,
        )
    layers = _resolve_gpu_layers(shape, gpu_layers)
    split = _split(shape, context_length, kv_type, layers)
    if projector is not None:
        split = _with_projector(split, projector, on_gpu=layers > 0)
    ram, vram = split.ram, split.vram
    gpu_free = sum(gpu.free_bytes for gpu in memory.gpus)
    if memory.unified_memory:
        verdicts = [fit_within(ram + vram, max(0, memory.budget))]
        if memory.gpus:
            verdicts.append(fit_within(vram, gpu_free))
        fit = _worst(verdicts)
        ram_fit = verdicts[0]
    else:
        ram_fit = fit_within(ram, max(0, memory.ram_available))
        fit = _worst([ram_fit, fit_within(vram, memory.vram_free)])
    return FitEstimate(
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
            projector=projector,
        ),
        projector_bytes=projector.total_bytes if projector is not None else 0,
        image_tokens=projector.image_tokens if projector is not None else None,
    )


def _with_projector(split: _Split, projector: ProjectorCost, *, on_gpu: bool) -> _Split:
    if on_gpu:
        return dataclasses.replace(
            split,
            weights_vram=split.weights_vram + projector.weight_bytes,
            overhead_vram=split.overhead_vram + projector.compute_bytes,
        )
    return dataclasses.replace(
        split,
        weights_ram=split.weights_ram + projector.weight_bytes,
        overhead_ram=split.overhead_ram + projector.compute_bytes,
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
    projector: ProjectorCost | None = None,
) -> str:
    weights = split.weights_ram + split.weights_vram
    kv = split.kv_ram + split.kv_vram
    with_projector = (
        f" (with a {format_bytes(projector.weight_bytes)} vision projector)"
        if projector is not None
        else ""
    )
    parts = (
        f"{format_bytes(weights)} weights{with_projector} + {format_bytes(kv)} context at "
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
    if projector is not None and projector.image_tokens:
        sentence += f" An image takes about {projector.image_tokens:,} tokens of the context."
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
    buffers) stays within `COMFORTABLE_SHARE` of the GPU's free memory; 0 when not even one does.

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
    limit = COMFORTABLE_SHARE * (gpu_free if memory.unified_memory else memory.vram_free)
    # The GPU part grows with each layer, so the answer is the last count that fits.
    low, high = 0, everything
    while low < high:
        middle = (low + high + 1) // 2
        if _split(shape, context_length, kv_type, middle).vram <= limit:
            low = middle
        else:
            high = middle - 1
    return low


# --- before a download: the hub's file size and quantization ---------------------------------


def estimate_file_fit(
    file_size: int,
    quantization: str | None,
    memory: MachineMemory,
    *,
    context_length: int = DEFAULT_CONTEXT_LENGTH,
    kv_type: KvCacheType = KvCacheType.F16,
    shape: GgufShape | None = None,
    projector: ProjectorCost | None = None,
) -> FitEstimate:
    """Whether a GGUF of `file_size` bytes fits `memory`: `estimate_fit` on what the hub says
    (with the vision `projector` that downloads and loads with it, when there is one).

    With `shape` (the file's GGUF header) the estimate is the one the Load planner makes
    for the same file, context and memory. Without it the shape is guessed from the size
    and `quantization` (`guess_gguf_shape`; 4.85 bits per weight when unknown, which the
    explanation says). GPU layers are as many as fit the GPUs in `memory`.

    Raises:
        ValueError: if `file_size` or `context_length` is negative.
    """
    if file_size < 0:
        raise ValueError(f"file size must not be negative, not {file_size!r}")
    guessed = shape is None
    estimate = estimate_fit(
        guess_gguf_shape(file_size, quantization) if shape is None else shape,
        context_length=context_length,
        memory=memory,
        kv_type=kv_type,
        file_size=file_size,
        projector=projector,
    )
    if guessed and bits_per_weight(quantization) is None:
        return dataclasses.replace(
            estimate,
            explanation=f"{estimate.explanation} The quantization is unknown; assumed "
            f"{FALLBACK_BITS_PER_WEIGHT} bits per weight.",
        )
    return estimate


def guess_gguf_shape(file_size: int, quantization: str | None) -> GgufShape:
    """A typical GGUF header for a file of `file_size` bytes quantized as `quantization`.

    The parameter count is file_size * 8 / bits per weight (`FALLBACK_BITS_PER_WEIGHT`
    when the quantization is unknown); layers and K/V width are those of a typical model
    of that size (`_TYPICAL_SHAPES`, so the KV cache is `estimate_kv_cache_bytes`'s), and
    the weights are spread evenly over the layers.

    Raises:
        ValueError: if `file_size` is negative.
    """
    if file_size < 0:
        raise ValueError(f"file size must not be negative, not {file_size!r}")
    bits = bits_per_weight(quantization) or FALLBACK_BITS_PER_WEIGHT
    parameter_count = file_size * 8 / bits
    if parameter_count > 0:
        layers = _typical_layers(parameter_count)
        width = round(_kv_elements_per_token(parameter_count) / layers)
    else:  # an empty file: nothing to cache
        layers, width = 1, 0
    per_layer, rest = divmod(file_size, layers)
    return GgufShape(
        architecture=None,
        block_count=layers,
        embedding_length=width,
        head_count=1,
        head_count_kv=1,
        key_length=width,
        value_length=width,
        context_length=None,
        kv_heads_per_layer=(1,) * layers,
        layer_bytes=(per_layer,) * layers,
        embedding_bytes=0,
        output_bytes=0,
        other_bytes=rest,
        tied_embeddings=False,
    )


def _typical_layers(parameter_count: float) -> int:
    """The layers of a typical model with this many parameters (`_TYPICAL_SHAPES`)."""
    below = [row for row in _TYPICAL_SHAPES if row[0] <= parameter_count]
    return (below[-1] if below else _TYPICAL_SHAPES[0])[1]

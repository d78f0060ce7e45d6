"""Running a GGUF language model on this machine, before any engine starts: where it goes and
whether it fits.

`fit` is the one memory estimate (Discover, `modeldeck info`, the Load planner and the
server all ask it); `offload` reads what a llama.cpp build reports and picks its GPUs. Below
`app.chat` and the hub-facing code, above `app.hardware`; generic over engines.
"""

from app.llm.fit import (
    COMFORTABLE_SHARE,
    COMPUTE_BUFFER_BYTES,
    DEFAULT_CONTEXT_LENGTH,
    FALLBACK_BITS_PER_WEIGHT,
    Fit,
    FitEstimate,
    KvCacheType,
    choose_gpu_layers,
    estimate_file_fit,
    estimate_fit,
    estimate_kv_cache_bytes,
    estimate_overhead_bytes,
    fit_within,
    guess_gguf_shape,
    kv_cache_bytes_of,
)
from app.llm.offload import (
    MIN_CONTEXT_LENGTH,
    EngineCapabilities,
    EngineDevice,
    OffloadPlan,
    choose_backend,
    clamp_context,
    memory_with_devices,
)

__all__ = [
    "COMFORTABLE_SHARE",
    "COMPUTE_BUFFER_BYTES",
    "DEFAULT_CONTEXT_LENGTH",
    "FALLBACK_BITS_PER_WEIGHT",
    "MIN_CONTEXT_LENGTH",
    "EngineCapabilities",
    "EngineDevice",
    "Fit",
    "FitEstimate",
    "KvCacheType",
    "OffloadPlan",
    "choose_backend",
    "choose_gpu_layers",
    "clamp_context",
    "estimate_file_fit",
    "estimate_fit",
    "estimate_kv_cache_bytes",
    "estimate_overhead_bytes",
    "fit_within",
    "guess_gguf_shape",
    "kv_cache_bytes_of",
    "memory_with_devices",
]

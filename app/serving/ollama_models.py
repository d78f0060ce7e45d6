"""Models as Ollama's /api/tags, /api/ps and /api/show describe them: names, sizes, dates,
and the details (family, parameter size, quantization) read from each GGUF's header by the
library's sniffer (cached while the file is unchanged)."""

from __future__ import annotations

import functools
import hashlib
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import anyio

from app.library.sniff import Checkpoint, sniff
from app.serving.served_models import ListedModel

__all__ = ["described", "shown", "timestamp"]


@functools.lru_cache(maxsize=256)
def _sniffed(path: Path, size: int, modified_ns: int) -> Checkpoint | None:
    """The file's header (cached while the file is unchanged); None if it cannot be read."""
    try:
        return sniff(path)
    except (OSError, ValueError):
        return None


async def _checkpoint(model: ListedModel) -> Checkpoint | None:
    try:
        stat = model.path.stat()
    except OSError:
        return None
    return await anyio.to_thread.run_sync(_sniffed, model.path, stat.st_size, stat.st_mtime_ns)


async def described(model: ListedModel) -> dict[str, Any]:
    """A model as /api/tags and /api/ps list it."""
    checkpoint = await _checkpoint(model)
    return {
        "name": model.model_id,
        "model": model.model_id,
        "modified_at": timestamp(model.created),
        "size": model.size,
        "digest": _digest(model),
        "details": _details(checkpoint),
    }


async def shown(model: ListedModel) -> dict[str, Any]:
    """A model as /api/show tells it (Ollama's client needs `model_info`)."""
    checkpoint = await _checkpoint(model)
    info: dict[str, Any] = {}
    if checkpoint is not None:
        architecture = checkpoint.architecture or "unknown"
        info["general.architecture"] = architecture
        if checkpoint.name:
            info["general.name"] = checkpoint.name
        if checkpoint.parameter_count:
            info["general.parameter_count"] = checkpoint.parameter_count
        if checkpoint.context_length:
            info[f"{architecture}.context_length"] = checkpoint.context_length
    parameters = f"num_ctx {model.context_length}" if model.context_length else ""
    return {
        "modelfile": "",
        "parameters": parameters,
        "template": "",
        "details": _details(checkpoint),
        "model_info": info,
        # Tools work with any chat template (described in a system prompt when the template
        # has no place for them: `app.chat.tools`).
        "capabilities": ["completion", "tools"],
        "modified_at": timestamp(model.created),
    }


def _details(checkpoint: Checkpoint | None) -> dict[str, Any]:
    family = checkpoint.architecture if checkpoint is not None else None
    return {
        "parent_model": "",
        "format": "gguf",
        "family": family or "",
        "families": [family] if family else None,
        "parameter_size": _parameter_size(checkpoint.parameter_count if checkpoint else None),
        "quantization_level": (checkpoint.quantization or "") if checkpoint else "",
    }


def _parameter_size(count: int | None) -> str:
    """Ollama's way of saying a parameter count: "7.6B", "494.03M"."""
    if not count:
        return ""
    for unit, scale in (("B", 1e9), ("M", 1e6), ("K", 1e3)):
        if count >= scale:
            return f"{count / scale:.2f}".rstrip("0").rstrip(".") + unit
    return str(count)


def _digest(model: ListedModel) -> str:
    """An identity for the file as it is now. Ollama's digest is its manifest's hash; hashing
    gigabytes of weights for a listing is not an option, so this hashes where the file is,
    its size and when it changed."""
    try:
        modified = model.path.stat().st_mtime_ns
    except OSError:
        modified = 0
    identity = f"{model.path}\0{model.size}\0{modified}".encode()
    return hashlib.sha256(identity).hexdigest()


def timestamp(unix_seconds: float) -> str:
    return datetime.fromtimestamp(unix_seconds, UTC).isoformat().replace("+00:00", "Z")

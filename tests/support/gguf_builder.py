"""Tiny GGUF files for tests: the app's own builder (`app.tiny_gguf`), which the self-test uses.

One writer for both, so the file `modeldeck --self-test` loads is the one the tests prove.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from app.tiny_gguf import (
    CHATML,
    IM_END,
    SCRIPTED_REPLY,
    VOCAB,
    scripted_tensors,
    tiny_llama_tensors,
    write_embedding_gguf,
    write_gguf,
    write_scripted_gguf,
)

__all__ = [
    "CHATML",
    "IM_END",
    "SCRIPTED_REPLY",
    "VOCAB",
    "ScriptedGgufs",
    "scripted_tensors",
    "tiny_llama_tensors",
    "write_embedding_gguf",
    "write_gguf",
    "write_scripted_gguf",
    "write_scripted_ggufs",
]


@dataclass(frozen=True)
class ScriptedGgufs:
    """Tiny GGUFs that llama.cpp really loads and runs."""

    scripted: Path  # answers every prompt with SCRIPTED_REPLY; trained for 512 tokens
    scripted_4k: Path  # the same, trained for 4,096 (a conversation's worth of room)
    endless: Path  # repeats its reply until stopped; trained for 32,768
    embedder: Path  # an embedding model (mean pooling named in the file)
    embedder_unpooled: Path  # the same weights, no pooling named (mean pooling is the app's)


def write_scripted_ggufs(folder: Path) -> ScriptedGgufs:
    """Write the scripted GGUFs into `folder`."""
    return ScriptedGgufs(
        # The file name is the model id the local API serves ("Scripted-Q8_0.gguf").
        scripted=write_scripted_gguf(folder / "Scripted-Q8_0.gguf"),
        scripted_4k=write_scripted_gguf(folder / "scripted-4k.gguf", context_length=4096),
        endless=write_scripted_gguf(folder / "endless.gguf", endless=True, context_length=32_768),
        embedder=write_embedding_gguf(folder / "Tiny-Embedder-F16.gguf"),
        embedder_unpooled=write_embedding_gguf(folder / "unpooled-embedder.gguf", pooling=None),
    )

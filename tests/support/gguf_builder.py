"""Tiny GGUF files for tests: the app's own builder (`app.tiny_gguf`), which the self-test uses.

One writer for both, so the file `modeldeck --self-test` loads is the one the tests prove.
"""

from __future__ import annotations

from app.tiny_gguf import (
    CHATML,
    IM_END,
    SCRIPTED_REPLY,
    VOCAB,
    scripted_tensors,
    tiny_llama_tensors,
    write_gguf,
    write_scripted_gguf,
)

__all__ = [
    "CHATML",
    "IM_END",
    "SCRIPTED_REPLY",
    "VOCAB",
    "scripted_tensors",
    "tiny_llama_tensors",
    "write_gguf",
    "write_scripted_gguf",
]

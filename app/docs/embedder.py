"""Vectors for chunks and questions, from an embedding GGUF run in the LLM engine's child.

`Embedder` is what indexing and search need: a model id (recorded with a collection's
vectors, so a new model re-embeds it and an unchanged one never does) and `embed`, which
returns unit-length float32 rows. `EngineEmbedder` is the real one: its own `LlmEngine`
(llama.cpp in a child process, loaded in embedding mode), fed in batches.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

import numpy as np

from app.llm.engine import LlmEngine
from app.llm.messages import LoadSettings

EMBED_BATCH = 32  # texts per request: one pipe round trip per ~10,000 tokens
MAX_EMBED_CONTEXT = 2048  # chunks are ~300 tokens; a bigger context only costs memory


class Embedder(Protocol):
    @property
    def model_id(self) -> str:
        """Names the model the vectors come from (the same model, the same id)."""
        ...

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """One unit-length float32 row per text."""
        ...


def model_id_of(path: Path) -> str:
    """A GGUF's identity for recorded vectors: its name and size (a new download differs)."""
    try:
        size = path.stat().st_size
    except OSError:
        size = 0
    return f"{path.name}:{size}"


class EngineEmbedder:
    """An embedding GGUF loaded on first use in an engine child of its own."""

    def __init__(self, path: Path, *, engine: LlmEngine | None = None) -> None:
        self.path = path
        self._engine = engine
        self._owns_engine = engine is None
        self._loaded = False
        self.prompt_tokens = 0  # all the tokens embedded so far

    @property
    def model_id(self) -> str:
        return model_id_of(self.path)

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """Unit vectors of `texts`, in batches of `EMBED_BATCH`.

        Raises:
            EngineError: the model could not be loaded or failed (its message says why).
        """
        engine = self._start()
        rows: list[tuple[float, ...]] = []
        for start in range(0, len(texts), EMBED_BATCH):
            # An empty text has no tokens to pool; a single space stands for it.
            batch = [text if text.strip() else " " for text in texts[start : start + EMBED_BATCH]]
            result = engine.embed(batch, normalize=True)
            rows += result.vectors
            self.prompt_tokens += result.prompt_tokens
        return np.asarray(rows, dtype=np.float32).reshape(len(texts), -1)

    def close(self) -> None:
        if self._engine is not None and self._owns_engine:
            self._engine.close()

    def _start(self) -> LlmEngine:
        if self._engine is None:
            self._engine = LlmEngine()
        if not self._loaded:
            from app.library.sniff import sniff

            trained = None
            with contextlib.suppress(OSError, ValueError):  # llama.cpp will say what is wrong
                trained = sniff(self.path).context_length
            context = min(trained or 512, MAX_EMBED_CONTEXT)
            self._engine.load(LoadSettings(path=self.path, context_length=context, embedding=True))
            self._loaded = True
        return self._engine

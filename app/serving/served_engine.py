"""The app's LLM engine as the API server sees it: which model it serves, and whether a load
is under way (the server answers 503 until it is done)."""

from __future__ import annotations

import threading
from pathlib import Path

from app.chat.local import LocalChatEngine
from app.llm.engine import LoadedModel
from app.llm.messages import LoadSettings


class ServedEngine:
    """One `LocalChatEngine`, shared with the rest of the app, plus the loading state.

    A load made through `load` shows as `loading` to the server; the model id is read from the
    engine at each request, so a model loaded elsewhere in the app is served from then on.
    """

    def __init__(self, engine: LocalChatEngine) -> None:
        self.engine = engine
        self._lock = threading.Lock()
        self._loads = 0

    @property
    def loading(self) -> bool:
        """True while a `load` is under way."""
        return self._loads > 0

    def load(self, settings: LoadSettings) -> LoadedModel:
        """Load a model into the engine (blocks; call it from a worker thread).

        Raises:
            EngineError: the model could not be loaded.
        """
        with self._lock:
            self._loads += 1
        try:
            return self.engine.load(settings)
        finally:
            with self._lock:
                self._loads -= 1

    @property
    def loaded(self) -> LoadedModel | None:
        return self.engine.loaded

    @property
    def model_id(self) -> str | None:
        """The served model's id: its file name ("qwen2.5-0.5b-instruct-q4_k_m.gguf")."""
        loaded = self.engine.loaded
        return Path(loaded.settings.path).name if loaded is not None else None

    def names(self) -> set[str]:
        """Every name a request may use for the loaded model: the file name, without its
        extension, and the name in its metadata."""
        loaded = self.engine.loaded
        if loaded is None:
            return set()
        path = Path(loaded.settings.path)
        return {name for name in (path.name, path.stem, loaded.name) if name}

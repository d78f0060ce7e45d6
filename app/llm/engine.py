"""The app's handle on the LLM engine: load a GGUF, complete a rendered prompt, survive crashes.

`LlmEngine` owns one llama.cpp child (`app.llm.llama_worker`). It takes a prompt already
rendered (chat templates live in `app.chat`: see `app.chat.local.LocalChatEngine`), and when
the child has died since the last load it starts a fresh one and loads the same model again
before the next request — the conversation goes on.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

from app.engines.errors import EngineError, EngineErrorKind, EngineUnavailableError
from app.engines.protocol import Event, EventKind, Op, Payload
from app.engines.supervisor import EngineProcess, RequestHandle
from app.llm import llama_worker
from app.llm.messages import (
    Embed,
    Embedded,
    Generate,
    Loaded,
    LoadSettings,
    TokenCount,
    Tokenize,
)
from app.llm.sampling import Sampling
from app.llm.vision import PromptImage

LOAD_TIMEOUT_S = 600.0  # a 70B model from a slow disk takes minutes
EMBED_TIMEOUT_S = 600.0  # a big batch on a CPU


@dataclass(frozen=True, kw_only=True)
class LoadedModel:
    """What the engine reports after a load."""

    settings: LoadSettings
    context_length: int
    trained_context_length: int
    architecture: str | None
    name: str | None
    chat_template: str | None
    bos_token: str
    eos_token: str
    gpu_layers_placed: int  # how many layers llama.cpp put on a GPU
    layer_count: int | None
    buffers_mib: Mapping[str, float] = field(default_factory=dict)  # "CPU_Mapped": 4096.0
    load_seconds: float = 0.0
    vision: bool = False  # a projector is loaded: prompts may carry images

    @property
    def placement(self) -> str:
        """The actual CPU/GPU split, for a person: "all 33 layers on the GPU"…"""
        total = self.layer_count
        if self.gpu_layers_placed == 0:
            return "on the CPU"
        if total is not None and self.gpu_layers_placed >= total:
            return f"all {total} layers on the GPU"
        of = f" of {total}" if total is not None else ""
        return f"{self.gpu_layers_placed}{of} layers on the GPU, the rest on the CPU"


class LlmEngine:
    """One local LLM, loaded in a supervised child process."""

    def __init__(self) -> None:
        self._process = EngineProcess(llama_worker.main, name="the LLM engine")
        self._lock = threading.Lock()
        self._loaded: LoadedModel | None = None
        self._loaded_in: int | None = None  # the child's pid the model lives in

    @property
    def loaded(self) -> LoadedModel | None:
        return self._loaded

    @property
    def pid(self) -> int | None:
        return self._process.pid

    @property
    def last_exit(self) -> str | None:
        return self._process.last_exit

    def capabilities(self) -> Mapping[str, Any]:
        """What this build of llama.cpp can do (starts the child; may block ~1 s)."""
        capabilities = self._process.start()
        if "unavailable" in capabilities:
            raise EngineUnavailableError(
                str(capabilities["unavailable"]), kind=EngineErrorKind.UNAVAILABLE
            )
        return capabilities

    def load(self, settings: LoadSettings) -> LoadedModel:
        """Load a model (replacing the one loaded); blocks until it is ready.

        Raises:
            EngineError: the model could not be loaded (the reason comes from llama.cpp).
            EngineUnavailableError: llama-cpp-python is not installed.
        """
        self.capabilities()
        with self._lock:
            outcome = self._process.submit(Op.LOAD, settings).wait(LOAD_TIMEOUT_S)
            result = result_of(outcome, Loaded)
            loaded = LoadedModel(
                settings=settings,
                context_length=result.context_length,
                trained_context_length=result.trained_context_length,
                architecture=result.architecture,
                name=result.name,
                chat_template=result.chat_template,
                bos_token=result.bos_token,
                eos_token=result.eos_token,
                gpu_layers_placed=result.split.gpu_layers,
                layer_count=result.split.layers,
                buffers_mib=dict(result.split.buffers_mib),
                load_seconds=result.seconds,
                vision=result.vision,
            )
            self._loaded, self._loaded_in = loaded, self._process.pid
            return loaded

    @property
    def context_length(self) -> int | None:
        """The loaded model's context, in tokens (None before a load)."""
        return self._loaded.context_length if self._loaded is not None else None

    def count_tokens(self, text: str) -> int:
        """How many tokens `text` is for the loaded model."""
        self._ensure_alive()
        outcome = self._process.submit(Op.TOKENIZE, Tokenize(text)).wait(60.0)
        return result_of(outcome, TokenCount).count

    def embed(self, texts: Sequence[str], *, normalize: bool = True) -> Embedded:
        """One vector per text, from a model loaded with `LoadSettings(embedding=True)`.

        Texts longer than the loaded context are truncated to it (llama.cpp's batch).

        Raises:
            EngineError: no model loaded, a model loaded for chat (kind UNSUPPORTED), an
                empty text (BAD_INPUT), or the engine failed.
        """
        self._ensure_alive()
        request = Embed(tuple(texts), normalize)
        return result_of(self._process.submit(Op.EMBED, request).wait(EMBED_TIMEOUT_S), Embedded)

    def generate_from_prompt(
        self,
        prompt: str,
        sampling: Sampling,
        *,
        literal_spans: Sequence[tuple[int, int]] = (),
        grammar: str | None = None,
        images: Sequence[PromptImage] = (),
    ) -> RequestHandle:
        """Start a completion of a raw prompt (no template).

        `literal_spans` are (start, end) ranges of `prompt` that are plain text a person
        wrote: special-token text inside them ("<|im_end|>") stays text, so a message cannot
        end its own turn or forge another. `grammar` (GBNF, see `app.llm.grammar`) constrains
        the reply; a grammar llama.cpp refuses ends the request with kind "bad-grammar".
        `images` sit at `IMAGE_MARKER`s in `prompt` (`app.llm.vision`); they need a model
        loaded with a projector (otherwise the request ends with kind "no-vision").
        """
        self._ensure_alive()
        spans = tuple((start, end) for start, end in literal_spans)
        request = Generate(prompt, sampling, spans, grammar, tuple(images))
        return self._process.submit(Op.GENERATE, request)

    def unload(self) -> None:
        with self._lock:
            if self._loaded is not None and self._process.alive:
                self._process.submit(Op.UNLOAD).wait(30.0)
            self._loaded = self._loaded_in = None

    def close(self) -> None:
        self._process.stop()
        self._loaded = self._loaded_in = None

    def kill(self) -> None:
        """End the child at once (tests, and "force stop")."""
        self._process.kill()

    def _require_loaded(self) -> LoadedModel:
        if self._loaded is None:
            raise EngineError(
                "No model is loaded.", kind=EngineErrorKind.NOT_LOADED, hint="Pick a model first."
            )
        return self._loaded

    def _ensure_alive(self) -> None:
        """After a crash, start a fresh child and load the same model again."""
        loaded = self._require_loaded()
        if not self._process.alive or self._process.pid != self._loaded_in:
            self.load(loaded.settings)


PayloadT = TypeVar("PayloadT", bound=Payload)


def result_of(event: Event, type_: type[PayloadT]) -> PayloadT:
    """A request's terminal event as its result message (`Loaded`, `TokenCount`, `Generated`).

    Raises:
        EngineError: the request ended other than with a RESULT (its kind and message).
        TypeError: the RESULT carries another message (a bug: the two ends disagree).
    """
    if event.kind is EventKind.RESULT:
        return event.expect(type_)
    failure = event.failure
    raise EngineError(failure.message, kind=failure.kind, log=failure.log)

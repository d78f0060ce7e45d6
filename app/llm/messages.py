"""The LLM engine's messages: one frozen dataclass per request and per result.

The llama.cpp child (`app.llm.llama_worker`) returns these from its handlers and the app reads
them with `Event.expect(...)` (or `app.llm.engine.result_of`): both ends share the types, not
dictionary keys. They cross the pipe pickled, so each is a top-level class that both
processes import from here.

    LOAD      LoadSettings  -> Loaded
    TOKENIZE  Tokenize      -> TokenCount
    EMBED     Embed         -> Embedded (the model loaded with `LoadSettings.embedding`)
    GENERATE  Generate      -> Generated (a remote engine's replies end with one too)
    UNLOAD    Empty         -> Empty (both `app.engines.protocol`)
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from app.engines.protocol import Payload
from app.llm.sampling import Sampling
from app.llm.stats import GenerationStats
from app.llm.vision import PromptImage


@dataclass(frozen=True, kw_only=True)
class LoadSettings(Payload):
    """LOAD's request: how to load a GGUF, the knobs of llama.cpp's `Llama(...)`."""

    path: Path
    context_length: int = 4096
    gpu_layers: int = 0
    threads: int | None = None  # None: llama.cpp's choice
    flash_attention: bool = False
    kv_cache_type: str = "f16"
    embedding: bool = False  # load for EMBED (vectors), not for GENERATE
    projector: Path | None = None  # a vision projector (mmproj GGUF) loaded beside the model

    def to_args(self) -> dict[str, Any]:
        # `embedding` only when set: a chat's recorded settings stay as they were.
        return (
            {
                "path": str(self.path),
                "context_length": self.context_length,
                "gpu_layers": self.gpu_layers,
                "threads": self.threads,
                "flash_attention": self.flash_attention,
                "kv_cache_type": self.kv_cache_type,
            }
            | ({"embedding": True} if self.embedding else {})
            | ({"projector": str(self.projector)} if self.projector is not None else {})
        )


@dataclass(frozen=True)
class Tokenize(Payload):
    """TOKENIZE's request: count the tokens of `text` for the loaded model."""

    text: str


@dataclass(frozen=True)
class Embed(Payload):
    """EMBED's request: one vector per text, pooled by the model's own pooling (mean when the
    model has none); `normalize` scales each to length 1 (cosine similarity = dot product)."""

    texts: tuple[str, ...]
    normalize: bool = True


@dataclass(frozen=True)
class Embedded(Payload):
    """EMBED's result: `vectors[i]` is the embedding of `texts[i]`; `prompt_tokens` is the
    tokens all the texts were, together (what an API reports as usage)."""

    vectors: tuple[tuple[float, ...], ...]
    prompt_tokens: int


@dataclass(frozen=True)
class Generate(Payload):
    """GENERATE's request: complete a rendered prompt.

    `literal_spans` are (start, end) ranges of `prompt` that a person wrote: special-token
    text inside them stays text (see `LlmEngine.generate_from_prompt`). `grammar` is GBNF
    text the reply must match (`app.llm.grammar` makes it from a JSON schema), or None.
    """

    prompt: str
    sampling: Sampling
    literal_spans: tuple[tuple[int, int], ...] = ()
    grammar: str | None = None
    # Images at their markers in `prompt` (`app.llm.vision`): the projector must be loaded.
    images: tuple[PromptImage, ...] = ()


@dataclass(frozen=True, kw_only=True)
class LayerSplit:
    """How llama.cpp placed a model, read from its load log."""

    gpu_layers: int = 0  # layers it put on a GPU
    layers: int | None = None  # None: the log did not say
    buffers_mib: Mapping[str, float] = field(default_factory=dict)  # "CPU_Mapped": 4096.0


@dataclass(frozen=True, kw_only=True)
class Loaded(Payload):
    """LOAD's result: what the model file and llama.cpp say about the loaded model."""

    path: str
    seconds: float  # how long the load took
    context_length: int  # the context llama.cpp allocated
    trained_context_length: int
    architecture: str | None
    name: str | None
    chat_template: str | None
    bos_token: str  # "" when the vocabulary has no BOS token
    eos_token: str
    threads: int
    split: LayerSplit
    vision: bool = False  # a projector is loaded: prompts may carry images


@dataclass(frozen=True)
class TokenCount(Payload):
    """TOKENIZE's result: how many tokens the text is for the loaded model."""

    count: int


@dataclass(frozen=True)
class Generated(Payload):
    """GENERATE's result: how the reply was made.

    `estimated` is True when the figures are guesses (a remote server that sent no token
    counts: the generated count is the number of streamed chunks and the prompt's is 0).
    """

    stats: GenerationStats
    estimated: bool = False

"""How to sample a reply: the settings every chat engine takes."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from app.llm.grammar import parse_schema

# The largest seed: llama.cpp takes a 32-bit seed and the GUI's seed field a signed int.
MAX_SEED = 2**31 - 1


@dataclass(frozen=True, kw_only=True)
class Sampling:
    """Sampling settings, with llama.cpp's defaults. A seed of None means a random one.

    `json_schema` (JSON text) constrains the reply to JSON valid against it: a local engine
    samples under the grammar `app.llm.grammar` makes of it. It is checked here, so a schema
    the grammar cannot express is refused with the other settings (a `GrammarError`, a
    ValueError).
    """

    temperature: float = 0.8
    top_p: float = 0.95
    top_k: int = 40
    min_p: float = 0.05
    repeat_penalty: float = 1.1
    max_tokens: int = 512
    seed: int | None = None
    stop: tuple[str, ...] = field(default_factory=tuple)
    json_schema: str | None = None

    def __post_init__(self) -> None:
        if self.temperature < 0:
            raise ValueError(f"temperature must not be negative, not {self.temperature}")
        if not 0 < self.top_p <= 1:
            raise ValueError(f"top-p must be in (0, 1], not {self.top_p}")
        if self.top_k < 0:
            raise ValueError(f"top-k must not be negative, not {self.top_k}")
        if not 0 <= self.min_p <= 1:
            raise ValueError(f"min-p must be in [0, 1], not {self.min_p}")
        if self.repeat_penalty <= 0:
            raise ValueError(f"repeat penalty must be positive, not {self.repeat_penalty}")
        if self.max_tokens < 1:
            raise ValueError(f"max tokens must be at least 1, not {self.max_tokens}")
        if self.json_schema is not None:
            parse_schema(self.json_schema)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["stop"] = list(self.stop)
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Sampling:
        known = {name: data[name] for name in cls.__dataclass_fields__ if name in data}
        if "stop" in known:
            known["stop"] = tuple(known["stop"])
        return cls(**known)

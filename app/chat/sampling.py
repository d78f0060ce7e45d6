"""How to sample a reply, and what a finished reply reports: shared by every chat engine."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass(frozen=True, kw_only=True)
class Sampling:
    """Sampling settings, with llama.cpp's defaults. A seed of None means a random one."""

    temperature: float = 0.8
    top_p: float = 0.95
    top_k: int = 40
    min_p: float = 0.05
    repeat_penalty: float = 1.1
    max_tokens: int = 512
    seed: int | None = None
    stop: tuple[str, ...] = field(default_factory=tuple)

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


@dataclass(frozen=True, kw_only=True)
class ReplyStats:
    """What one reply cost: the figures shown under it and exported with it."""

    prompt_tokens: int
    generated_tokens: int
    time_to_first_token_s: float | None  # None: no token came
    tokens_per_second: float | None  # generated tokens / time after the first token
    finish_reason: str  # "stop" (end of text or a stop string), "length", "cancelled"…

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ReplyStats:
        return cls(
            prompt_tokens=int(data.get("prompt_tokens", 0)),
            generated_tokens=int(data.get("generated_tokens", 0)),
            time_to_first_token_s=data.get("time_to_first_token_s"),
            tokens_per_second=data.get("tokens_per_second"),
            finish_reason=str(data.get("finish_reason", "stop")),
        )

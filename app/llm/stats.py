"""How a reply was made: token counts, speed, why it stopped, the seed and the model.

Every chat engine reports a reply's figures as `GenerationStats` (llama.cpp's child in its
`Generated` result, a remote server through `app.chat.remote`), and the conversation store
keeps them beside the reply. It lives here, below `app.chat`, because the LLM engine's pipe
messages carry it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

StatsStyle = Literal["screen", "document"]
"""How `GenerationStats.summary` words its line: under a reply, or in an exported file."""


@dataclass(frozen=True, kw_only=True)
class GenerationStats:
    """How a reply was made. Every figure is optional: a runtime reports what it knows."""

    prompt_tokens: int | None = None
    generated_tokens: int | None = None
    time_to_first_token_s: float | None = None
    tokens_per_second: float | None = None
    duration_s: float | None = None
    finish_reason: str | None = None  # e.g. 'stop', 'length', 'cancelled'
    # The stop string that ended the reply (APIs report it); not kept with a conversation.
    stop_string: str | None = None
    seed: int | None = None  # the sampling seed, so the reply can be made again
    model: str | None = None  # the name of the model that wrote the reply
    settings: Mapping[str, Any] = field(default_factory=dict)  # the sampling settings used

    def to_json(self) -> dict[str, Any]:
        """A JSON object of the figures that are known, in a fixed order."""
        document: dict[str, Any] = {}
        for name in _STATS_NUMBERS + _STATS_TEXTS:
            value = getattr(self, name)
            if value is not None:
                document[name] = value
        if self.settings:
            document["settings"] = dict(self.settings)
        return document

    def summary(self, *, style: StatsStyle = "screen") -> str:
        """One line of the figures that are known, joined by " · ".

        `"screen"` is the line under a reply (the Chat page, `modeldeck chat`): tokens in and
        out, first-token time, speed, and why it stopped when that was not its own end.
        `"document"` is the line an export keeps (Markdown): plain counts, seconds, the total
        time and the model's name.
        """
        if style == "document":
            return " · ".join(self._document_parts())
        parts = []
        if self.prompt_tokens is not None:
            parts.append(f"{self.prompt_tokens:,} prompt tokens")
        if self.generated_tokens is not None:
            parts.append(f"{self.generated_tokens:,} generated")
        if self.time_to_first_token_s is not None:
            parts.append(f"first token {self.time_to_first_token_s * 1000:,.0f} ms")
        if self.tokens_per_second is not None:
            parts.append(f"{self.tokens_per_second:,.1f} tokens/s")
        if self.finish_reason == "length":
            parts.append("stopped at the token limit")
        elif self.finish_reason == "context-full":
            parts.append("stopped: the context is full")
        return " · ".join(parts)

    def _document_parts(self) -> list[str]:
        parts = []
        if self.prompt_tokens is not None:
            parts.append(f"{self.prompt_tokens} prompt tokens")
        if self.generated_tokens is not None:
            parts.append(f"{self.generated_tokens} tokens generated")
        if self.time_to_first_token_s is not None:
            parts.append(f"{self.time_to_first_token_s:.2f} s to first token")
        if self.tokens_per_second is not None:
            parts.append(f"{self.tokens_per_second:.1f} tokens/s")
        if self.duration_s is not None:
            parts.append(f"{self.duration_s:.1f} s in all")
        if self.model:
            parts.append(self.model)
        return parts

    @classmethod
    def from_json(cls, value: object) -> GenerationStats | None:
        """The stats `to_json` wrote; figures of the wrong type are dropped, not trusted."""
        if not isinstance(value, dict):
            return None
        numbers: dict[str, Any] = {}
        for name in _STATS_NUMBERS:
            item = value.get(name)
            if isinstance(item, int | float) and not isinstance(item, bool):
                whole = name.endswith("_tokens") or name == "seed"
                numbers[name] = int(item) if whole else float(item)
        texts = {name: value[name] for name in _STATS_TEXTS if isinstance(value.get(name), str)}
        settings = value.get("settings")
        return cls(**numbers, **texts, settings=settings if isinstance(settings, dict) else {})


_STATS_NUMBERS = (
    "prompt_tokens",
    "generated_tokens",
    "time_to_first_token_s",
    "tokens_per_second",
    "duration_s",
    "seed",
)
_STATS_TEXTS = ("finish_reason", "model")

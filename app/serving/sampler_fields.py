"""llama.cpp's sampler settings as OpenAI's body (with llama.cpp's own `top_k`, `min_p`,
`repeat_penalty`) and Ollama's `options` both name them: one set of fields, checked once
(numbers finite and in range), becoming `Sampling` keywords the same way."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["MAX_TOP_K", "SamplerFields"]

# llama.cpp takes top_k as a 32-bit int.
MAX_TOP_K = 2**31 - 1


class SamplerFields(BaseModel):
    """The sampler's fields; each body model that has them derives from this one (and
    says how it folds a seed llama.cpp cannot take)."""

    model_config = ConfigDict(extra="ignore", allow_inf_nan=False)

    temperature: float | None = Field(default=None, ge=0)
    top_p: float | None = Field(default=None, gt=0, le=1)
    top_k: int | None = Field(default=None, ge=0, le=MAX_TOP_K)
    min_p: float | None = Field(default=None, ge=0, le=1)
    repeat_penalty: float | None = Field(default=None, gt=0)
    seed: int | None = None

    def sampler_values(self) -> dict[str, Any]:
        """The fields a request set, as `Sampling` keywords (the rest keep its defaults)."""
        values: dict[str, Any] = {
            "temperature": self.temperature,
            "top_p": self.top_p,
            "top_k": self.top_k,
            "min_p": self.min_p,
            "repeat_penalty": self.repeat_penalty,
            "seed": self.seed,
        }
        return {name: value for name, value in values.items() if value is not None}

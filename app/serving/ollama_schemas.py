"""Ollama's request bodies as pydantic models, what they become in the app (`Sampling` with a
JSON schema for `format`, `Tools`, template messages), and Ollama's error shape,
`{"error": "message"}`.

`options` map to the sampler: temperature, top_p, top_k, min_p, repeat_penalty, seed, stop,
num_predict (-1 and -2: up to the context's end). Options that set how a model is loaded
(num_ctx, num_gpu, …) are ignored: a model keeps the context it was loaded with.
`keep_alive` is seconds or a duration ("5m", "1h"; negative: for good).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from typing import Annotated, Any, Literal

from fastapi.responses import Response
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator

from app.chat.tools import Tools
from app.chat.vision import ImageAttachment, VisionError, content_with_images, image_from_base64
from app.llm.grammar import JSON_OBJECT_SCHEMA
from app.llm.sampling import Sampling
from app.serving.error_answers import ErrorAnswer
from app.serving.request_documents import ModeldeckFields
from app.serving.sampler_fields import SamplerFields
from app.serving.schemas import MAX_MESSAGES, MAX_MODEL_NAME_CHARS, MAX_STOP_CHARS
from app.serving.structured_fields import ToolsField, tools_of

__all__ = [
    "ChatBody",
    "EmbedBody",
    "GenerateBody",
    "KeepAlive",
    "OllamaError",
    "ShowBody",
    "keep_alive_seconds",
    "ollama_error_response",
]

MAX_STOP_STRINGS = 16
MAX_EMBED_INPUTS = 2048
MAX_IMAGES = 16  # per message (each costs hundreds of prompt tokens)

_BODY = ConfigDict(extra="ignore", allow_inf_nan=False)
ModelName = Annotated[str, Field(min_length=1, max_length=MAX_MODEL_NAME_CHARS)]
StopString = Annotated[str, Field(max_length=MAX_STOP_CHARS)]


class OllamaError(ErrorAnswer):
    """An error answer in Ollama's shape."""

    def body(self) -> dict[str, Any]:
        return {"error": self.message}


def ollama_error_response(
    status: int, message: str, code: str, headers: Mapping[str, str] | None = None
) -> Response:
    """An error from outside these endpoints (the browser guard, a body too large) in
    Ollama's shape; `code` has no place in it."""
    return OllamaError(status, message, headers=headers).response()


# -- request bodies -------------------------------------------------------------------------


# Ollama's `keep_alive`: seconds, or a duration ("5m", "1h", "30s", "-1"); negative: forever.
_DURATION = re.compile(r"^\s*(-?\d+(?:\.\d+)?)\s*(ms|s|m|h)?\s*$")
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, None: 1.0}


def _duration(value: float | str | None) -> float | str | None:
    if isinstance(value, str) and not _DURATION.match(value):
        raise ValueError('keep_alive must be seconds or a duration such as "5m" or "1h"')
    return value


KeepAlive = Annotated[float | str | None, AfterValidator(_duration)]


def keep_alive_seconds(value: float | str) -> float:
    """A valid `keep_alive` in seconds (negative: keep the model loaded for good)."""
    if not isinstance(value, str):
        return float(value)
    match = _DURATION.match(value)
    assert match is not None  # checked by the body's validation
    number, unit = match.groups()
    return float(number) * _UNIT_SECONDS[unit]


class OllamaOptions(SamplerFields):
    """The sampler's part of Ollama's `options` (the rest is ignored)."""

    num_predict: int | None = None
    stop: Annotated[list[StopString], Field(max_length=MAX_STOP_STRINGS)] | None = None

    @field_validator("num_predict")
    @classmethod
    def _known_limit(cls, value: int | None) -> int | None:
        if value is not None and value < 1 and value not in (-1, -2):
            raise ValueError("num_predict must be positive, or -1 (no limit) or -2 (the context)")
        return value

    @field_validator("seed")
    @classmethod
    def _seed_fits(cls, value: int | None) -> int | None:
        # llama.cpp takes a 32-bit seed; a bigger one (or Ollama's -1, "random") is folded.
        return None if value is None or value < 0 else value % 2**32

    def sampling(self, *, context_length: int, json_schema: str | None = None) -> Sampling:
        """These options as `Sampling`; the token limit is clamped to the context, and the
        reply constrained to `json_schema` (JSON text) when one is given.

        Raises:
            ValueError: a value `Sampling` refuses (a schema the grammar cannot express
                is a `GrammarError`, a ValueError).
        """
        limit = self.num_predict if self.num_predict and self.num_predict > 0 else context_length
        stop = tuple(text for text in self.stop or () if text)
        return Sampling(
            **self.sampler_values(),
            max_tokens=max(1, min(limit, context_length)),
            stop=stop,
            json_schema=json_schema,
        )


Format = Literal["", "json"] | dict[str, Any] | None


class _GenerationBody(BaseModel):
    model_config = _BODY

    model: ModelName
    stream: bool = True  # Ollama streams unless told not to
    format: Format = None
    options: OllamaOptions | None = None
    keep_alive: KeepAlive = None
    modeldeck: ModeldeckFields | None = None  # documents to answer from (`request_documents`)

    def sampling(self, context_length: int) -> Sampling:
        """The options as `Sampling`, with `format` as its JSON schema ("json": any object)."""
        options = self.options or OllamaOptions()
        schema: str | None = None
        if self.format:
            schema = json.dumps(JSON_OBJECT_SCHEMA if self.format == "json" else self.format)
        try:
            return options.sampling(context_length=context_length, json_schema=schema)
        except ValueError as exc:
            raise OllamaError(400, str(exc)) from None


class CallFunction(BaseModel):
    model_config = _BODY

    name: str
    arguments: dict[str, Any] = {}


class MessageToolCall(BaseModel):
    """A call an assistant made, as Ollama writes it (arguments as an object, no id)."""

    model_config = _BODY

    function: CallFunction


def decoded_images(encoded: Sequence[str]) -> list[ImageAttachment]:
    """Ollama's base64 `images` as attachments ("image 1", "image 2"… in errors).

    Raises:
        OllamaError: 400, an image whose base64 is malformed or too large.
    """
    try:
        return [image_from_base64(data, f"image {index}") for index, data in enumerate(encoded, 1)]
    except VisionError as exc:
        raise OllamaError(400, str(exc)) from None


class ChatMessage(BaseModel):
    model_config = _BODY

    role: Literal["system", "user", "assistant", "tool"]
    content: str | None = None
    images: Annotated[list[str], Field(max_length=MAX_IMAGES)] | None = None
    tool_calls: list[MessageToolCall] | None = None
    tool_name: str | None = None  # a tool message: the tool that answered

    def as_template_message(self) -> dict[str, Any]:
        """The message as a chat template reads it (a marker per image before the text, see
        `app.chat.vision`; calls and results as transformers passes them, `app.chat.tools`)."""
        content = content_with_images(self.content or "", len(self.images or ()))
        message: dict[str, Any] = {"role": self.role, "content": content}
        if self.tool_calls:
            message["tool_calls"] = [
                {
                    "type": "function",
                    "function": {"name": call.function.name, "arguments": call.function.arguments},
                }
                for call in self.tool_calls
            ]
        if self.role == "tool" and self.tool_name:
            message["name"] = self.tool_name
        return message


class ChatBody(_GenerationBody):
    messages: Annotated[list[ChatMessage], Field(max_length=MAX_MESSAGES)] = []
    tools: ToolsField = None  # OpenAI's shape; Ollama's client always sends a list

    def images(self) -> list[ImageAttachment]:
        """Every message's images, in order (as their markers come in the prompt)."""
        encoded = [image for message in self.messages for image in message.images or ()]
        return decoded_images(encoded)

    def app_tools(self) -> Tools | None:
        """The tools the model may call (Ollama has no tool_choice: the model decides)."""
        try:
            return tools_of(self.tools, None)
        except ValueError as exc:  # GrammarError included
            raise OllamaError(400, str(exc)) from None


class GenerateBody(_GenerationBody):
    prompt: str | None = None
    system: str | None = None
    suffix: str | None = None
    raw: bool = False
    images: Annotated[list[str], Field(max_length=MAX_IMAGES)] | None = None

    def decoded_images(self) -> list[ImageAttachment]:
        return decoded_images(self.images or ())


class EmbedBody(BaseModel):
    model_config = _BODY

    model: ModelName
    input: str | Annotated[list[str], Field(min_length=1, max_length=MAX_EMBED_INPUTS)]
    truncate: bool = True
    keep_alive: KeepAlive = None

    @property
    def texts(self) -> list[str]:
        return [self.input] if isinstance(self.input, str) else list(self.input)


class ShowBody(BaseModel):
    model_config = _BODY

    model: ModelName | None = None
    name: ModelName | None = None  # what older clients send

    @property
    def requested(self) -> str:
        requested = self.model or self.name
        if requested is None:
            raise OllamaError(400, "Missing required parameter: 'model'.")
        return requested

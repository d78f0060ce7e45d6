"""The OpenAI request bodies the server accepts, as pydantic models, and how they become
`Sampling`.

Unknown fields are ignored (clients send `user`, `logit_bias`, … freely). Beyond OpenAI's
fields, llama.cpp's `top_k`, `min_p` and `repeat_penalty` are accepted. A field left out
takes the app's default (`Sampling`: llama.cpp's defaults), except `max_tokens`: a chat reply
may fill the context, a completion stops at 16 tokens (as OpenAI's do).

Numbers must be finite (JSON's `1e999` parses as infinity, which `ge=0` lets through), and
the lists and strings that cost work per token or per message are bounded: stop strings
(checked against the text at every token), messages, a model name (echoed in errors).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from app.chat.vision import ImageAttachment, image_from_data_uri
from app.llm.sampling import Sampling
from app.llm.vision import IMAGE_MARKER, neutralize_markers
from app.serving.request_documents import ModeldeckFields
from app.serving.sampler_fields import SamplerFields
from app.serving.structured_fields import (
    MessageToolCall,
    ResponseFormat,
    ToolChoiceField,
    ToolsField,
)

COMPLETION_DEFAULT_MAX_TOKENS = 16
MAX_STOP_STRINGS = 16
MAX_STOP_CHARS = 1024
# Far more turns than any context holds; a bound that says so before a template walks them.
MAX_MESSAGES = 10_000
MAX_MODEL_NAME_CHARS = 1024

# Every body model: unknown fields ignored, numbers finite.
_BODY = ConfigDict(extra="ignore", allow_inf_nan=False)


class TextPart(BaseModel):
    model_config = _BODY

    type: Literal["text"]
    text: str


class ImageUrl(BaseModel):
    model_config = _BODY

    url: str
    detail: str | None = None


class ImagePart(BaseModel):
    """An image, as OpenAI sends one: a `data:` URI (an http(s) URL is not fetched)."""

    model_config = _BODY

    type: Literal["image_url"]
    image_url: ImageUrl


class OtherPart(BaseModel):
    """A content part the model cannot read (an image, audio…): refused with a message."""

    model_config = _BODY

    type: str


class ChatMessage(BaseModel):
    model_config = _BODY

    role: Literal["system", "developer", "user", "assistant", "tool"]
    content: str | list[TextPart | ImagePart | OtherPart] | None = None
    tool_calls: list[MessageToolCall] | None = None  # an assistant's calls
    tool_call_id: str | None = None  # a tool message: the call it answers
    name: str | None = None

    def as_template_message(self) -> dict[str, Any]:
        """The message as a chat template reads it (text only; "developer" is a system turn;
        an assistant's calls and a tool result's call id as transformers passes them).

        Raises:
            ValueError: a part is not text.
        """
        role = "system" if self.role == "developer" else self.role
        message: dict[str, Any] = {"role": role, "content": self._text()}
        if self.tool_calls:
            message["tool_calls"] = [call.as_template_call() for call in self.tool_calls]
        if self.tool_call_id is not None:
            message["tool_call_id"] = self.tool_call_id
        if self.name is not None and role == "tool":
            message["name"] = self.name
        return message

    def _text(self) -> str:
        if self.content is None:
            return ""
        if isinstance(self.content, str):
            return self.content
        texts: list[str] = []
        for part in self.content:
            if isinstance(part, ImagePart):
                texts.append(IMAGE_MARKER)  # where the image goes (`images`)
            elif isinstance(part, TextPart):
                texts.append(neutralize_markers(part.text))
            else:
                raise ValueError(f"This model reads text only; a message has a {part.type!r} part.")
        return "".join(texts)

    def images(self) -> list[ImageAttachment]:
        """The message's images, in order, decoded from their data: URIs (not yet as pixels).

        Raises:
            ValueError: an image is given by a URL to fetch, or its data: URI is malformed.
        """
        if not isinstance(self.content, list):
            return []
        parts = [part for part in self.content if isinstance(part, ImagePart)]
        return [
            image_from_data_uri(part.image_url.url, f"image {index}")
            for index, part in enumerate(parts, start=1)
        ]


class StreamOptions(BaseModel):
    model_config = _BODY

    include_usage: bool = False


StopString = Annotated[str, Field(max_length=MAX_STOP_CHARS)]
Stop = StopString | Annotated[list[StopString], Field(max_length=MAX_STOP_STRINGS)] | None


class SamplingFields(SamplerFields):
    """The sampling fields shared by both endpoints."""

    model: Annotated[str, Field(max_length=MAX_MODEL_NAME_CHARS)] | None = None  # None: loaded
    stream: bool = False
    stream_options: StreamOptions | None = None
    max_tokens: int | None = Field(default=None, ge=1)
    max_completion_tokens: int | None = Field(default=None, ge=1)
    stop: Stop = None
    n: int = 1

    @field_validator("n")
    @classmethod
    def _one_choice(cls, value: int) -> int:
        if value != 1:
            raise ValueError("this server makes one choice per request (n must be 1)")
        return value

    @field_validator("seed")
    @classmethod
    def _seed_fits(cls, value: int | None) -> int | None:
        # llama.cpp takes a 32-bit seed; a bigger one is folded rather than refused.
        return None if value is None else value % 2**32

    @property
    def include_usage(self) -> bool:
        return self.stream_options is not None and self.stream_options.include_usage

    def sampling(self, *, default_max_tokens: int, context_length: int) -> Sampling:
        """These fields as `Sampling`; `max_tokens` clamped to `context_length` (the engine
        stops at the context's end anyway, with finish_reason "length").

        Raises:
            ValueError: a value `Sampling` refuses.
        """
        requested = self.max_tokens or self.max_completion_tokens or default_max_tokens
        stops = [self.stop] if isinstance(self.stop, str) else list(self.stop or ())
        stop = tuple(text for text in stops if text)  # an empty stop string would end at once
        limit = max(1, min(requested, context_length))
        return Sampling(**self.sampler_values(), max_tokens=limit, stop=stop)


class ChatCompletionRequest(SamplingFields):
    messages: list[ChatMessage] = Field(min_length=1, max_length=MAX_MESSAGES)
    response_format: ResponseFormat | None = None  # see `structured_fields`
    tools: ToolsField = None
    tool_choice: ToolChoiceField = None
    modeldeck: ModeldeckFields | None = None  # documents to answer from (`request_documents`)


class CompletionRequest(SamplingFields):
    prompt: (
        Annotated[str, Field(min_length=1)]
        | Annotated[list[Annotated[str, Field(min_length=1)]], Field(min_length=1, max_length=1)]
    )

    @property
    def prompt_text(self) -> str:
        return self.prompt if isinstance(self.prompt, str) else self.prompt[0]

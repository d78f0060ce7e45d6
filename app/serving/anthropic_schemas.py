"""The body of Anthropic's `POST /v1/messages`, as pydantic models, and what it becomes in the
app: chat-template messages, `Sampling` and `Tools`.

Content is a string or a list of blocks: `text`; in an assistant turn, `tool_use` (a call the
model made: id, name, input); in a user turn, `tool_result` (the answer to a call: its
`tool_use_id` and content). Calls and results go to the template as transformers passes them
(`tool_calls` on the assistant message, `role: "tool"` messages), so a template that knows
tools renders them its own way (`app.chat.tools`). In a user turn, `image` blocks with a
`base64` source go to a vision model (a marker where the block is, `app.chat.vision`); a
`url` source is refused (this server fetches nothing), and so are document blocks.

`tools` are `{name, description, input_schema}`; `tool_choice` is `auto`, `any` (a call is
required), `tool` (that one function) or `none`.
"""

from __future__ import annotations

import json
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from app.chat.tools import NO_PARAMETERS, FunctionTool, ToolChoice, ToolChoiceMode, Tools
from app.chat.vision import ImageAttachment, VisionError, image_from_base64
from app.llm.grammar import grammar_for_schema
from app.llm.sampling import Sampling
from app.llm.vision import IMAGE_MARKER, neutralize_markers
from app.serving.request_documents import ModeldeckFields
from app.serving.sampler_fields import MAX_TOP_K
from app.serving.schemas import MAX_MESSAGES, MAX_MODEL_NAME_CHARS, MAX_STOP_CHARS

__all__ = ["ContentError", "CountTokensRequest", "MessagesRequest", "call_input"]

MAX_STOP_SEQUENCES = 16
MAX_TOOLS = 128
_BODY = ConfigDict(extra="ignore", allow_inf_nan=False)
# Anthropic's rule for tool names.
ToolName = Annotated[str, Field(pattern=r"^[A-Za-z0-9_\-]{1,128}$")]
StopSequence = Annotated[str, Field(max_length=MAX_STOP_CHARS)]

# Anthropic's tool_choice types, as the app's modes.
_CHOICE_MODES = {
    "auto": ToolChoiceMode.AUTO,
    "any": ToolChoiceMode.REQUIRED,
    "tool": ToolChoiceMode.FUNCTION,
    "none": ToolChoiceMode.NONE,
}


class ContentError(ValueError):
    """Content this server cannot pass to a model (an image, a document…); `field` names
    where it was."""

    def __init__(self, field: str, block_type: str) -> None:
        super().__init__(f"{field}: this model reads text only; a {block_type!r} block was sent.")
        self.field = field


class TextBlock(BaseModel):
    model_config = _BODY

    type: Literal["text"]
    text: str


class ImageSource(BaseModel):
    model_config = _BODY

    type: str  # "base64" is read; "url" and "file" are refused
    media_type: str | None = None
    data: str | None = None


class ImageBlock(BaseModel):
    model_config = _BODY

    type: Literal["image"]
    source: ImageSource

    def attachment(self, name: str) -> ImageAttachment:
        """The image's bytes (decoded to pixels only in the engine).

        Raises:
            VisionError: a source other than base64, or malformed base64.
        """
        if self.source.type != "base64" or self.source.data is None:
            raise VisionError(
                f"{name} has a {self.source.type!r} source; send images as base64 "
                "(fetching URLs is off)."
            )
        return image_from_base64(self.source.data, name)


class OtherBlock(BaseModel):
    """A block the models cannot read here (image, document…): refused."""

    model_config = _BODY

    type: str


class ToolUseBlock(BaseModel):
    model_config = _BODY

    type: Literal["tool_use"]
    id: str
    name: str
    input: dict[str, Any] = {}


class ToolResultBlock(BaseModel):
    model_config = _BODY

    type: Literal["tool_result"]
    tool_use_id: str
    content: str | list[TextBlock | OtherBlock] = ""
    is_error: bool = False


Block = TextBlock | ImageBlock | ToolUseBlock | ToolResultBlock | OtherBlock


class Message(BaseModel):
    model_config = _BODY

    role: Literal["user", "assistant"]
    content: str | list[Block]

    def template_messages(self) -> list[dict[str, Any]]:
        """This turn as template messages: tool results become `tool` messages (before the
        turn's text, as the results answer the previous turn); calls join the assistant's.

        Raises:
            ContentError: a block that is neither text nor a tool call or result.
        """
        if isinstance(self.content, str):
            return [{"role": self.role, "content": neutralize_markers(self.content)}]
        texts: list[str] = []
        calls: list[dict[str, Any]] = []
        results: list[dict[str, Any]] = []
        for block in self.content:
            if isinstance(block, TextBlock):
                texts.append(neutralize_markers(block.text))
            elif isinstance(block, ImageBlock) and self.role == "user":
                texts.append(IMAGE_MARKER)  # where the image goes (`images`)
            elif isinstance(block, ToolUseBlock) and self.role == "assistant":
                calls.append(
                    {
                        "id": block.id,
                        "type": "function",
                        "function": {"name": block.name, "arguments": block.input},
                    }
                )
            elif isinstance(block, ToolResultBlock) and self.role == "user":
                content = _text_of(block.content, "messages")
                results.append(
                    {"role": "tool", "content": content, "tool_call_id": block.tool_use_id}
                )
            else:
                raise ContentError("messages", block.type)
        turn: dict[str, Any] = {"role": self.role, "content": "".join(texts)}
        if calls:
            turn["tool_calls"] = calls
        return [*results, turn] if (texts or calls or not results) else results


class ToolDefinition(BaseModel):
    model_config = _BODY

    name: ToolName
    description: str = ""
    input_schema: dict[str, Any] = dict(NO_PARAMETERS)


class ToolChoiceField(BaseModel):
    model_config = _BODY

    type: Literal["auto", "any", "tool", "none"]
    name: ToolName | None = None


class CountTokensRequest(BaseModel):
    """`POST /v1/messages/count_tokens`: what a prompt is made of (a message without the
    reply's settings)."""

    model_config = _BODY

    model: Annotated[str, Field(min_length=1, max_length=MAX_MODEL_NAME_CHARS)]
    messages: list[Message] = Field(min_length=1, max_length=MAX_MESSAGES)
    system: str | list[TextBlock | OtherBlock] | None = None
    tools: Annotated[list[ToolDefinition], Field(max_length=MAX_TOOLS)] | None = None
    tool_choice: ToolChoiceField | None = None

    def template_messages(self) -> list[dict[str, Any]]:
        """The system prompt and turns as a chat template reads them.

        Raises:
            ContentError: a block the models cannot read.
        """
        system = _text_of(self.system, "system") if self.system else ""
        turns = [message for turn in self.messages for message in turn.template_messages()]
        return [{"role": "system", "content": system}, *turns] if system else turns

    def images(self) -> list[ImageAttachment]:
        """The user turns' image blocks, in prompt order ("image 1", "image 2"… in errors).

        Raises:
            VisionError: an image given by URL, or malformed base64.
        """
        blocks = [
            block
            for turn in self.messages
            if turn.role == "user" and not isinstance(turn.content, str)
            for block in turn.content
            if isinstance(block, ImageBlock)
        ]
        return [block.attachment(f"image {index}") for index, block in enumerate(blocks, 1)]

    def app_tools(self) -> Tools | None:
        """The tools and choice (None: no tools, the reply is text).

        Raises:
            GrammarError: a forced choice's call schema cannot become a grammar.
            ValueError: a choice without tools, or naming none of them; two tools of a name.
        """
        choice = self.tool_choice
        if choice is not None and choice.type == "tool" and choice.name is None:
            raise ValueError("tool_choice: a 'tool' choice needs the tool's name.")
        if not self.tools:
            if choice is not None and choice.type not in ("auto", "none"):
                raise ValueError("tool_choice needs tools to choose from.")
            return None
        functions = tuple(
            FunctionTool(tool.name, tool.description, tool.input_schema) for tool in self.tools
        )
        mode = _CHOICE_MODES[choice.type] if choice is not None else ToolChoiceMode.AUTO
        name = choice.name if choice is not None and choice.type == "tool" else None
        tools = Tools(functions, ToolChoice(mode, name))
        call_schema = tools.call_schema()
        if call_schema is not None:
            grammar_for_schema(call_schema)
        return tools


class MessagesRequest(CountTokensRequest):
    """`POST /v1/messages`: a prompt and how to write the reply."""

    max_tokens: int = Field(ge=1)
    stop_sequences: Annotated[list[StopSequence], Field(max_length=MAX_STOP_SEQUENCES)] = []
    temperature: float | None = Field(default=None, ge=0, le=1)
    top_p: float | None = Field(default=None, gt=0, le=1)
    top_k: int | None = Field(default=None, ge=0, le=MAX_TOP_K)
    stream: bool = False
    modeldeck: ModeldeckFields | None = None  # documents to answer from (`request_documents`)

    def sampling(self, *, context_length: int) -> Sampling:
        values: dict[str, Any] = {
            "temperature": self.temperature,
            "top_p": self.top_p,
            "top_k": self.top_k,
        }
        given = {name: value for name, value in values.items() if value is not None}
        # max_tokens past the context is clamped: the reply ends at the context's end.
        return Sampling(
            **given,
            max_tokens=min(self.max_tokens, context_length),
            stop=tuple(text for text in self.stop_sequences if text),
        )


def _text_of(content: str | list[TextBlock | OtherBlock], field: str) -> str:
    if isinstance(content, str):
        return content
    texts = []
    for block in content:
        if not isinstance(block, TextBlock):
            raise ContentError(field, block.type)
        texts.append(block.text)
    return "".join(texts)


def call_input(arguments: str) -> dict[str, Any]:
    """A parsed call's arguments (JSON text of an object) as a tool_use block's `input`."""
    value = json.loads(arguments)
    return value if isinstance(value, dict) else {}

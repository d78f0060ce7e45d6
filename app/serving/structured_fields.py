"""OpenAI's structured-output and tool fields of a chat request, as pydantic models, and what
they become in the app: a JSON schema for `Sampling.json_schema`, and `Tools`.

- `response_format`: `{"type": "text"}`, `{"type": "json_object"}` (any JSON object), or
  `{"type": "json_schema", "json_schema": {"name", "schema", "strict"}}`. Both JSON kinds are
  enforced by a grammar, so `strict` changes nothing here: the reply always matches.
- `tools` (functions only) and `tool_choice`: "auto" (the default with tools), "none",
  "required", or `{"type": "function", "function": {"name": …}}`.
- An assistant message's `tool_calls` and a tool message's `tool_call_id` go back to the
  template (`ChatMessage.as_template_message`).
"""

from __future__ import annotations

import json
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from app.chat.tools import FunctionTool, ToolChoice, ToolChoiceMode, Tools
from app.llm.grammar import JSON_OBJECT_SCHEMA, grammar_for_schema

MAX_TOOLS = 128  # OpenAI's limit
_BODY = ConfigDict(extra="ignore", allow_inf_nan=False)
# OpenAI's rule for function names: what every template and parser can carry.
FunctionName = Annotated[str, Field(pattern=r"^[A-Za-z0-9_.\-]{1,64}$")]


class JsonSchemaFormat(BaseModel):
    model_config = ConfigDict(extra="ignore", allow_inf_nan=False, populate_by_name=True)

    name: Annotated[str, Field(max_length=64)] = "response"
    description: str | None = None
    # `schema` would shadow a BaseModel attribute; the JSON key is still "schema".
    json_schema: dict[str, Any] | None = Field(default=None, alias="schema")
    strict: bool | None = None


class ResponseFormat(BaseModel):
    model_config = _BODY

    type: Literal["text", "json_object", "json_schema"]
    json_schema: JsonSchemaFormat | None = None

    def schema_text(self) -> str | None:
        """The JSON schema the reply must match, as text (None for plain text).

        Raises:
            GrammarError: the schema cannot become a grammar (a ValueError: a 400).
            ValueError: `json_schema` is missing.
        """
        if self.type == "text":
            return None
        if self.type == "json_object":
            schema: Any = JSON_OBJECT_SCHEMA
        elif self.json_schema is None:
            raise ValueError("response_format json_schema needs a json_schema object.")
        else:
            schema = self.json_schema.json_schema or {}  # no schema: any JSON value
        grammar_for_schema(schema)  # refused now, as a 400, not in the engine
        return json.dumps(schema)


class FunctionDefinition(BaseModel):
    model_config = _BODY

    name: FunctionName
    description: str | None = None
    parameters: dict[str, Any] | None = None
    strict: bool | None = None


class ToolDefinition(BaseModel):
    model_config = _BODY

    type: Literal["function"]
    function: FunctionDefinition


class NamedFunction(BaseModel):
    model_config = _BODY

    name: FunctionName


class NamedToolChoice(BaseModel):
    model_config = _BODY

    type: Literal["function"]
    function: NamedFunction


ToolChoiceField = Literal["auto", "none", "required"] | NamedToolChoice | None
ToolsField = Annotated[list[ToolDefinition], Field(max_length=MAX_TOOLS)] | None


def tools_of(tools: ToolsField, choice: ToolChoiceField) -> Tools | None:
    """The request's tools and choice (None: no tools, so the reply is plain text).

    Every forced choice's call schema is checked to make a grammar.

    Raises:
        GrammarError: a function's parameters cannot become a grammar.
        ValueError: a choice without tools, a choice naming a function not among them, two
            functions of one name.
    """
    if not tools:
        if choice not in (None, "none", "auto"):
            raise ValueError("tool_choice needs tools to choose from.")
        return None
    functions = tuple(
        FunctionTool(
            name=tool.function.name,
            description=tool.function.description or "",
            parameters=tool.function.parameters or {"type": "object", "properties": {}},
        )
        for tool in tools
    )
    if isinstance(choice, NamedToolChoice):
        mode, name = ToolChoiceMode.FUNCTION, choice.function.name
    else:
        mode, name = ToolChoiceMode(choice or "auto"), None
    result = Tools(functions, ToolChoice(mode, name))
    call_schema = result.call_schema()
    if call_schema is not None:
        grammar_for_schema(call_schema)
    return result


class CallFunction(BaseModel):
    model_config = _BODY

    name: str
    arguments: str = "{}"


class MessageToolCall(BaseModel):
    """A call an earlier assistant message made (sent back with the conversation)."""

    model_config = _BODY

    id: str | None = None
    type: Literal["function"] = "function"
    function: CallFunction

    def as_template_call(self) -> dict[str, Any]:
        """The call as templates read it: arguments as an object where they parse (Qwen's
        and Llama's templates write them with `tojson`), else the text as sent."""
        try:
            arguments: Any = json.loads(self.function.arguments)
        except (ValueError, RecursionError):
            arguments = self.function.arguments
        call: dict[str, Any] = {
            "type": "function",
            "function": {"name": self.function.name, "arguments": arguments},
        }
        if self.id is not None:
            call["id"] = self.id
        return call

"""Tools a reply may call: their definitions, the choice a request makes, and how both reach
a model that has no idea of tools of its own.

A chat template that knows tools (it reads the `tools` variable, as Qwen's, Llama 3.1's,
Mistral's and Hermes' do) renders them itself, in the format its model was trained on; the
calls the model then writes are parsed by `app.chat.tool_calls`. A template that does not
gets `with_tool_prompt`: a system message describing the tools in the Hermes format
(`<tool_call>…</tool_call>`), and earlier calls and results written as text in that format.

A forced choice (`required`, or one named function) is not left to the model: the reply is
sampled under the grammar of `call_schema` — one JSON call, `{"name": …, "arguments": {…}}`,
whose arguments are valid against the function's parameters schema.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from app.chat.tool_calls import HERMES_CLOSE, HERMES_OPEN

__all__ = [
    "FunctionTool",
    "ToolChoice",
    "ToolChoiceMode",
    "Tools",
    "template_reads_tools",
    "with_tool_prompt",
]

# What a function without a parameters schema takes: an object, of anything.
NO_PARAMETERS: Mapping[str, Any] = {"type": "object", "properties": {}}


@dataclass(frozen=True)
class FunctionTool:
    """One function a model may call: its name, what it does, and its parameters' schema."""

    name: str
    description: str = ""
    parameters: Mapping[str, Any] = field(default_factory=lambda: dict(NO_PARAMETERS))

    def as_template_tool(self) -> dict[str, Any]:
        """The tool as chat templates read it (OpenAI's and transformers' shape)."""
        function: dict[str, Any] = {"name": self.name}
        if self.description:
            function["description"] = self.description
        function["parameters"] = dict(self.parameters)
        return {"type": "function", "function": function}

    def call_schema(self) -> dict[str, Any]:
        """The JSON schema of one call to this function."""
        return {
            "type": "object",
            "properties": {"name": {"const": self.name}, "arguments": dict(self.parameters)},
            "required": ["name", "arguments"],
        }


class ToolChoiceMode(StrEnum):
    """OpenAI's `tool_choice`."""

    AUTO = "auto"  # the model decides: text or calls
    NONE = "none"  # no calls: the tools are not shown to the model
    REQUIRED = "required"  # one call, to any of the tools
    FUNCTION = "function"  # one call, to the named function


@dataclass(frozen=True)
class ToolChoice:
    """Which calls a reply may or must make; `name` only for `FUNCTION`."""

    mode: ToolChoiceMode = ToolChoiceMode.AUTO
    name: str | None = None


@dataclass(frozen=True)
class Tools:
    """The tools of one request and its choice.

    Raises:
        ValueError: no tools with a choice other than "none", two tools with one name, or a
            named function that is not among them.
    """

    functions: tuple[FunctionTool, ...]
    choice: ToolChoice = ToolChoice()

    def __post_init__(self) -> None:
        names = [function.name for function in self.functions]
        if len(set(names)) != len(names):
            raise ValueError("Two tools have the same name.")
        if self.choice.mode is ToolChoiceMode.FUNCTION and self.choice.name not in names:
            raise ValueError(f"tool_choice names {self.choice.name!r}, which is not in tools.")
        if not self.functions and self.choice.mode is not ToolChoiceMode.NONE:
            raise ValueError("tool_choice needs tools to choose from.")

    @property
    def names(self) -> frozenset[str]:
        return frozenset(function.name for function in self.functions)

    @property
    def offered(self) -> bool:
        """The model sees the tools (and its reply is parsed for calls)."""
        return bool(self.functions) and self.choice.mode is not ToolChoiceMode.NONE

    @property
    def forced(self) -> bool:
        """The reply must be one call: it is sampled under `call_schema`'s grammar."""
        return self.choice.mode in (ToolChoiceMode.REQUIRED, ToolChoiceMode.FUNCTION)

    def call_schema(self) -> dict[str, Any] | None:
        """The JSON schema a forced reply must match (None when the choice is free)."""
        if self.choice.mode is ToolChoiceMode.FUNCTION:
            return next(f.call_schema() for f in self.functions if f.name == self.choice.name)
        if self.choice.mode is ToolChoiceMode.REQUIRED:
            schemas = [function.call_schema() for function in self.functions]
            return schemas[0] if len(schemas) == 1 else {"anyOf": schemas}
        return None

    def template_tools(self) -> list[dict[str, Any]]:
        """The tools as chat templates read them."""
        return [function.as_template_tool() for function in self.functions]


def template_reads_tools(template: str | None) -> bool:
    """Whether a chat template renders tools itself (it reads the `tools` variable)."""
    return template is not None and "tools" in template


def with_tool_prompt(messages: Sequence[Mapping[str, Any]], tools: Tools) -> list[dict[str, Any]]:
    """`messages` for a template that knows nothing of tools: the tools described in the
    system message (Hermes' format), assistant calls and tool results written as text."""
    converted: list[dict[str, Any]] = []
    for message in messages:
        role = message.get("role")
        content = message.get("content") or ""
        if role == "assistant" and message.get("tool_calls"):
            calls = "\n".join(_call_text(call) for call in message["tool_calls"])
            converted.append({"role": "assistant", "content": f"{content}{calls}".strip()})
        elif role == "tool":
            # Templates that know only system/user/assistant refuse other roles.
            text = f"<tool_response>\n{content}\n</tool_response>"
            converted.append({"role": "user", "content": text})
        else:
            converted.append({"role": role, "content": content})
    if not tools.offered:
        return converted
    prompt = _tool_prompt(tools)
    if converted and converted[0]["role"] == "system":
        first = converted[0]
        converted[0] = {"role": "system", "content": f"{first['content']}\n\n{prompt}".strip()}
    else:
        converted.insert(0, {"role": "system", "content": prompt})
    return converted


def _tool_prompt(tools: Tools) -> str:
    signatures = "\n".join(json.dumps(tool, ensure_ascii=False) for tool in tools.template_tools())
    return (
        "# Tools\n\nYou may call one or more functions to assist with the user query.\n\n"
        "You are provided with function signatures within <tools></tools> XML tags:\n"
        f"<tools>\n{signatures}\n</tools>\n\n"
        "For each function call, return a json object with function name and arguments "
        f"within {HERMES_OPEN}{HERMES_CLOSE} XML tags:\n"
        f'{HERMES_OPEN}\n{{"name": <function-name>, "arguments": <args-json-object>}}\n'
        f"{HERMES_CLOSE}"
    )


def _call_text(call: Mapping[str, Any]) -> str:
    function = call.get("function") or {}
    arguments = function.get("arguments", {})
    call_json = json.dumps({"name": function.get("name"), "arguments": arguments})
    return f"{HERMES_OPEN}\n{call_json}\n{HERMES_CLOSE}"

"""A chat reply with tools, in OpenAI's shapes: `message.tool_calls` in an answer, and
tool-call deltas in a stream.

The reply's text is parsed by `app.chat.tool_calls`. Streamed, text that cannot start a call
goes out as content deltas at once; calls go out when the reply ends, each as one delta with
its index, id, type and name (sent once: the `openai` client concatenates name deltas) and
empty arguments, then its arguments. That is the shape the client's stream helpers
(`ChatCompletionStreamState`, `client.chat.completions.stream`) assemble into
`message.tool_calls`. A reply with calls finishes with "tool_calls".
"""

from __future__ import annotations

import uuid
from typing import Any

from app.chat.tool_calls import ParsedReply, ToolCall, ToolCallStream, parse_tool_calls
from app.chat.tools import Tools

__all__ = ["FINISH_TOOL_CALLS", "ToolDeltas", "tool_message"]

FINISH_TOOL_CALLS = "tool_calls"


def tool_message(text: str, tools: Tools) -> tuple[dict[str, Any], bool]:
    """The assistant message for a whole reply, and whether it calls tools."""
    parsed = parse_tool_calls(text, tools.names)
    if not parsed.tool_calls:
        return {"role": "assistant", "content": text}, False
    message = {
        "role": "assistant",
        "content": parsed.content or None,
        "tool_calls": [_call(call) for call in parsed.tool_calls],
    }
    return message, True


class ToolDeltas:
    """The `delta` objects of a streamed reply that may call tools."""

    def __init__(self, tools: Tools) -> None:
        self._stream = ToolCallStream(tools.names)
        self.called = False

    def feed(self, text: str) -> list[dict[str, Any]]:
        """The deltas for one piece of the reply (content that cannot start a call)."""
        shown = self._stream.feed(text)
        return [{"content": shown}] if shown else []

    def finish(self) -> list[dict[str, Any]]:
        """The deltas for the rest: held text, then each call."""
        parsed: ParsedReply = self._stream.finish()
        deltas: list[dict[str, Any]] = [{"content": parsed.content}] if parsed.content else []
        for index, call in enumerate(parsed.tool_calls):
            opening = {**_call(call), "index": index}
            opening["function"] = {"name": call.name, "arguments": ""}
            deltas.append({"tool_calls": [opening]})
            arguments = {"index": index, "function": {"arguments": call.arguments}}
            deltas.append({"tool_calls": [arguments]})
        self.called = bool(parsed.tool_calls)
        return deltas


def _call(call: ToolCall) -> dict[str, Any]:
    return {
        "id": f"call_{uuid.uuid4().hex[:24]}",
        "type": "function",
        "function": {"name": call.name, "arguments": call.arguments},
    }

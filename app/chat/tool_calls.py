"""Tool calls in a model's reply: find them in the formats models are trained to write.

A model offered tools answers either with text or with calls, written in its family's
format:

- Hermes / Qwen: `<tool_call>{"name": …, "arguments": {…}}</tool_call>`, one block a call,
  text allowed around them (the format the app's fallback tool prompt asks for, too);
- Llama 3.x: the whole reply is `{"name": …, "parameters": {…}}` (or a list of them),
  sometimes after `<|python_tag|>`; a constrained call (`tool_choice` required or named) is
  the same JSON with "arguments";
- Mistral: `[TOOL_CALLS][{"name": …, "arguments": {…}}, …]`, or the newer
  `[TOOL_CALLS]name[ARGS]{…}`.

The reply is untrusted text: parsing is linear in its length (each block's JSON is decoded
once, between markers), and a call that does not parse, or names a tool that was not
offered, stays text. `ToolCallStream` does the same over a streamed reply, holding back text
from where a call may begin.
"""

from __future__ import annotations

import json
from collections.abc import Collection
from dataclasses import dataclass
from typing import Any

__all__ = [
    "CALL_MARKERS",
    "ParsedReply",
    "ToolCall",
    "ToolCallStream",
    "parse_tool_calls",
]

HERMES_OPEN, HERMES_CLOSE = "<tool_call>", "</tool_call>"
MISTRAL_CALLS, MISTRAL_ARGS = "[TOOL_CALLS]", "[ARGS]"
PYTHON_TAG = "<|python_tag|>"
# Text where a call may begin, anywhere in a reply.
CALL_MARKERS = (HERMES_OPEN, MISTRAL_CALLS, PYTHON_TAG)


@dataclass(frozen=True)
class ToolCall:
    """One call a model made: the tool's name and its arguments as JSON text (an object)."""

    name: str
    arguments: str


@dataclass(frozen=True)
class ParsedReply:
    """A reply split into its text and its tool calls (none: a plain text reply)."""

    content: str
    tool_calls: tuple[ToolCall, ...] = ()


def parse_tool_calls(text: str, names: Collection[str] | None = None) -> ParsedReply:
    """The tool calls in `text`, in any of the formats above, and the text around them.

    Args:
        text: the model's whole reply.
        names: the names of the tools offered; a call to another name is not a call. None
            accepts any name.
    """
    calls: list[ToolCall] = []
    if HERMES_OPEN in text:
        content, calls = _hermes(text, names)
        if calls:
            return ParsedReply(content, tuple(calls))
    start = text.find(MISTRAL_CALLS)
    if start >= 0:
        calls = _mistral(text[start + len(MISTRAL_CALLS) :], names)
        if calls:
            return ParsedReply(text[:start].strip(), tuple(calls))
    body = text.strip()
    prefix = ""
    if PYTHON_TAG in body:
        prefix, _, body = body.partition(PYTHON_TAG)
        body = body.strip()
    if body[:1] in ("{", "["):
        calls = _calls_in(_whole_json(body), names)
        if calls:
            return ParsedReply(prefix.strip(), tuple(calls))
    return ParsedReply(text)


class ToolCallStream:
    """A streamed reply that may hold tool calls: the text safe to show as it comes, the
    calls at the end.

    Text is released as soon as it cannot be the start of a call. A reply that begins with
    `{` or `[` (a Llama-style call) is held whole; after a marker (`<tool_call>`…) the rest
    is held. `finish` parses the whole reply; what was held and is not a call comes out then.
    """

    def __init__(self, names: Collection[str] | None = None) -> None:
        self._names = names
        self._pieces: list[str] = []  # the whole reply so far
        self._unreleased = ""  # its end, not yet given out as text
        self._released = 0  # characters given out as text
        self._holding = False  # a call may have begun: release nothing more until the end

    def feed(self, piece: str) -> str:
        """Add a piece of the reply; returns the text that may be shown now."""
        self._pieces.append(piece)
        if self._holding:
            return ""
        unreleased = self._unreleased = self._unreleased + piece
        if self._released == 0:
            stripped = unreleased.lstrip()
            if not stripped:
                return ""
            if stripped[0] in "{[":
                self._holding = True
                return ""
        for marker in CALL_MARKERS:
            found = unreleased.find(marker)
            if found >= 0:
                self._holding = True
                return self._release(unreleased[:found])
        return self._release(unreleased[: len(unreleased) - _partial_marker(unreleased)])

    def finish(self) -> ParsedReply:
        """The whole reply parsed; `content` is only the text not yet released by `feed`."""
        text = "".join(self._pieces)
        parsed = parse_tool_calls(text, self._names)
        if parsed.tool_calls:
            # The released text is the reply up to the first call; the content is that text
            # and what follows the calls, stripped.
            shown = text[: self._released].strip()
            rest = parsed.content[len(shown) :] if parsed.content.startswith(shown) else ""
            return ParsedReply(rest.strip(), parsed.tool_calls)
        return ParsedReply(text[self._released :])

    def _release(self, text: str) -> str:
        self._released += len(text)
        self._unreleased = self._unreleased[len(text) :]
        return text


def _partial_marker(text: str) -> int:
    """How many characters at the end of `text` could begin a marker (held back)."""
    longest = 0
    for marker in CALL_MARKERS:
        for size in range(min(len(marker) - 1, len(text)), longest, -1):
            if text.endswith(marker[:size]):
                longest = size
                break
    return longest


def _hermes(text: str, names: Collection[str] | None) -> tuple[str, list[ToolCall]]:
    """`<tool_call>…</tool_call>` blocks (the last may be unclosed: the reply ended)."""
    calls: list[ToolCall] = []
    outside: list[str] = []
    cursor = 0
    while (start := text.find(HERMES_OPEN, cursor)) >= 0:
        outside.append(text[cursor:start])
        body_start = start + len(HERMES_OPEN)
        end = text.find(HERMES_CLOSE, body_start)
        body = text[body_start:] if end < 0 else text[body_start:end]
        found = _calls_in(_whole_json(body.strip()), names)
        if not found:
            outside.append(text[start : body_start + len(body)])
        calls += found
        cursor = len(text) if end < 0 else end + len(HERMES_CLOSE)
        if end >= 0 and not found:
            outside.append(HERMES_CLOSE)
    outside.append(text[cursor:])
    return "".join(outside).strip(), calls


def _mistral(text: str, names: Collection[str] | None) -> list[ToolCall]:
    """After `[TOOL_CALLS]`: a JSON list of calls, or `name[ARGS]{…}` repeated."""
    stripped = text.lstrip()
    if stripped.startswith("["):
        return _calls_in(_first_json(stripped), names)
    calls: list[ToolCall] = []
    for chunk in stripped.split(MISTRAL_CALLS):
        name, marker, arguments = chunk.partition(MISTRAL_ARGS)
        if not marker:
            continue
        decoded = _first_json(arguments.lstrip())
        call = _call(name.strip(), decoded, names)
        if call is not None:
            calls.append(call)
    return calls


_NOT_JSON = object()


def _whole_json(text: str) -> Any:
    """`text` as JSON, or `_NOT_JSON` (also for nesting too deep to decode)."""
    try:
        return json.loads(text)
    except (ValueError, RecursionError):
        return _NOT_JSON


def _first_json(text: str) -> Any:
    """The JSON value at the start of `text` (text may follow it), or `_NOT_JSON`."""
    try:
        value, _ = json.JSONDecoder().raw_decode(text)
    except (ValueError, RecursionError):
        return _NOT_JSON
    return value


def _calls_in(value: Any, names: Collection[str] | None) -> list[ToolCall]:
    """The calls a decoded JSON value holds: one call object or a list of them (all must be
    calls, or none counts)."""
    items = value if isinstance(value, list) else [value]
    calls = [
        _call(item.get("name"), item.get("arguments", item.get("parameters")), names)
        if isinstance(item, dict)
        else None
        for item in items
    ]
    if not calls or any(call is None for call in calls):
        return []
    return [call for call in calls if call is not None]


def _call(name: Any, arguments: Any, names: Collection[str] | None) -> ToolCall | None:
    if not isinstance(name, str) or not name or (names is not None and name not in names):
        return None
    if isinstance(arguments, str):  # some models write the arguments as a JSON string
        decoded = _whole_json(arguments)
        arguments = decoded if decoded is not _NOT_JSON else arguments
    if arguments is None:
        arguments = {}
    if not isinstance(arguments, dict):
        return None
    return ToolCall(name, json.dumps(arguments, ensure_ascii=False))

"""A model's reply and a client's JSON schema are untrusted: the tool-call parser and the
schema-to-grammar conversion keep bounded time and memory on whatever hypothesis makes up.

Inputs are built from the formats' own parts (the call markers, JSON of calls, deep nesting,
unclosed blocks, repetition counts) with arbitrary text between them.
"""

from __future__ import annotations

import json
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from app.chat.tool_calls import (
    CALL_MARKERS,
    HERMES_CLOSE,
    MISTRAL_ARGS,
    ParsedReply,
    ToolCallStream,
    parse_tool_calls,
)
from app.llm.grammar import GrammarError, grammar_for_schema
from tests.hostile.bounds import within_bounds

NAMES = frozenset({"get_weather", "f"})
_CALL = '{"name": "get_weather", "arguments": {"city": "Paris"}}'

pieces = st.one_of(
    st.sampled_from([*CALL_MARKERS, HERMES_CLOSE, MISTRAL_ARGS, _CALL, "{", "[", '"', "}", "]"]),
    st.text(max_size=40),
    st.integers(1, 20_000).map(lambda n: "[" * n),  # nesting deeper than json decodes
    st.integers(1, 20_000).map(lambda n: '{"a":' * n),
    st.integers(1, 50_000).map(lambda n: "x" * n),
)
replies = st.lists(pieces, max_size=30).map("".join)


def _check(parsed: ParsedReply) -> ParsedReply:
    for call in parsed.tool_calls:
        assert call.name in NAMES
        assert isinstance(json.loads(call.arguments), dict)
    return parsed


@given(text=replies)
def test_any_reply_is_parsed_within_bounds(text: str) -> None:
    within_bounds("tool-call reply (hypothesis)", lambda: _check(parse_tool_calls(text, NAMES)),
                  errors=())  # fmt: skip


@given(parts=st.lists(pieces, max_size=30))
def test_any_streamed_reply_is_parsed_within_bounds(parts: list[str]) -> None:
    def stream() -> str:
        tool_stream = ToolCallStream(NAMES)
        shown = "".join(tool_stream.feed(part) for part in parts)
        parsed = _check(tool_stream.finish())
        # Nothing is lost: what was shown, then the rest, is the reply (when it has no calls).
        if not parsed.tool_calls:
            assert shown + parsed.content == "".join(parts)
        return shown

    within_bounds("tool-call stream (hypothesis)", stream, errors=())


def _nested(depth: int) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": "string"}
    for _ in range(depth):
        schema = {"type": "object", "properties": {"a": schema}}
    return schema


SCHEMA_KEYWORDS = [
    "type",
    "properties",
    "items",
    "enum",
    "const",
    "required",
    "anyOf",
    "oneOf",
    "allOf",
    "$ref",
    "$defs",
    "pattern",
    "minLength",
    "maxLength",
    "minItems",
    "maxItems",
    "minimum",
    "maximum",
    "additionalProperties",
    "format",
    "x",
]
json_values = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(-(2**70), 2**70), st.text(max_size=10)),
    lambda children: st.one_of(
        st.lists(children, max_size=4),
        st.dictionaries(
            st.sampled_from(SCHEMA_KEYWORDS),
            children,
            max_size=5,
        ),
    ),
    max_leaves=30,
)
schema_values = st.one_of(
    json_values,
    st.sampled_from(["string", "integer", "number", "boolean", "object", "array", "null"]).map(
        lambda kind: {"type": kind}
    ),
    st.integers(0, 10**9).map(lambda n: {"type": "string", "pattern": f"^a{{{n}}}$"}),
    st.integers(0, 10**9).map(lambda n: {"type": "array", "minItems": n}),
    st.integers(1, 200).map(_nested),
)


@given(schema=schema_values)
def test_any_schema_becomes_a_grammar_or_a_clear_error_within_bounds(schema: Any) -> None:
    within_bounds(
        "json schema to grammar (hypothesis)",
        lambda: grammar_for_schema(schema),
        errors=(GrammarError,),
        megabytes=128.0,
    )

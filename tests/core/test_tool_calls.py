"""Tool calls parsed from the formats models write, tool prompts for templates without tools,
and JSON schemas turned into grammars (the pure parts; the server tests run them for real)."""

from __future__ import annotations

import json

import pytest

from app.chat.tool_calls import ToolCall, ToolCallStream, parse_tool_calls
from app.chat.tools import FunctionTool, ToolChoice, ToolChoiceMode, Tools, with_tool_prompt
from app.llm.grammar import GrammarError, grammar_for_schema, parse_schema
from app.llm.sampling import Sampling

NAMES = {"get_weather", "get_time"}
PARIS = ToolCall("get_weather", '{"city": "Paris"}')


@pytest.mark.parametrize(
    ("reply", "content", "calls"),
    [
        # Hermes / Qwen, with text around, two blocks, and an unclosed last block.
        (
            'Let me look.\n<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris"}}'
            "\n</tool_call>",
            "Let me look.",
            [PARIS],
        ),
        (
            '<tool_call>{"name": "get_weather", "arguments": {"city": "Paris"}}</tool_call>\n'
            '<tool_call>{"name": "get_time", "arguments": {}}</tool_call>',
            "",
            [PARIS, ToolCall("get_time", "{}")],
        ),
        (
            '<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris"}}',
            "",
            [PARIS],
        ),
        # Llama 3.x: the whole reply, "parameters", maybe after <|python_tag|>.
        ('{"name": "get_weather", "parameters": {"city": "Paris"}}', "", [PARIS]),
        ('<|python_tag|>{"name": "get_weather", "parameters": {"city": "Paris"}}', "", [PARIS]),
        # A constrained call (tool_choice required/named), arguments as a JSON string.
        ('{"name": "get_weather", "arguments": "{\\"city\\": \\"Paris\\"}"}', "", [PARIS]),
        # Mistral, both generations of the format.
        ('[TOOL_CALLS][{"name": "get_weather", "arguments": {"city": "Paris"}}]', "", [PARIS]),
        ('[TOOL_CALLS]get_weather[ARGS]{"city": "Paris"}', "", [PARIS]),
    ],
)
def test_calls_are_found_in_each_format(reply: str, content: str, calls: list[ToolCall]) -> None:
    parsed = parse_tool_calls(reply, NAMES)
    assert parsed.content == content
    assert list(parsed.tool_calls) == calls


@pytest.mark.parametrize(
    "reply",
    [
        "Quick fox.",
        '{"name": "rm_rf", "arguments": {}}',  # not an offered tool
        '{"answer": 42}',  # JSON, but not a call
        "<tool_call>not json</tool_call>",
        '<tool_call>{"name": "get_weather", "arguments": [1]}</tool_call>',  # not an object
        "[TOOL_CALLS] nothing",
        "[" * 100_000,  # nesting too deep to decode
    ],
)
def test_text_that_is_not_a_call_stays_text(reply: str) -> None:
    parsed = parse_tool_calls(reply, NAMES)
    assert parsed.tool_calls == ()
    assert parsed.content == reply


def test_a_stream_shows_text_until_a_call_begins() -> None:
    stream = ToolCallStream(NAMES)
    shown = [
        stream.feed(piece)
        for piece in ["Let me", " look <tool", "_call>", '{"name": "get_weather", ',
                      '"arguments": {"city": "Paris"}}</tool_call>', " Done."]
    ]  # fmt: skip
    assert shown == ["Let me", " look ", "", "", "", ""]
    assert stream.finish() == type(stream.finish())("Done.", (PARIS,))


def test_a_stream_holds_a_reply_that_starts_like_json_and_gives_it_back() -> None:
    stream = ToolCallStream(NAMES)
    assert stream.feed(' {"answer"') == ""
    assert stream.feed(": 1}") == ""
    finished = stream.finish()
    assert finished.tool_calls == () and finished.content == ' {"answer": 1}'


def test_a_template_without_tools_gets_a_tool_prompt_and_text_turns() -> None:
    tools = Tools((FunctionTool("get_weather", "Weather", {"type": "object"}),))
    messages = with_tool_prompt(
        [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "Paris?"},
            {
                "role": "assistant",
                "content": "",
                "tool_calls": [
                    {"function": {"name": "get_weather", "arguments": {"city": "Paris"}}}
                ],
            },
            {"role": "tool", "content": "21 C"},
        ],
        tools,
    )
    assert [m["role"] for m in messages] == ["system", "user", "assistant", "user"]
    assert messages[0]["content"].startswith("Be brief.\n\n# Tools")
    assert '"name": "get_weather"' in messages[0]["content"]
    assert parse_tool_calls(messages[2]["content"], {"get_weather"}).tool_calls == (PARIS,)
    assert messages[3]["content"] == "<tool_response>\n21 C\n</tool_response>"
    none = Tools(tools.functions, ToolChoice(ToolChoiceMode.NONE))
    assert "# Tools" not in with_tool_prompt([{"role": "user", "content": "x"}], none)[0]["content"]


def test_a_forced_choice_is_one_calls_schema() -> None:
    weather = FunctionTool("get_weather", "", {"type": "object", "properties": {}})
    time = FunctionTool("get_time")
    named = Tools((weather, time), ToolChoice(ToolChoiceMode.FUNCTION, "get_time"))
    assert named.call_schema() == time.call_schema()
    required = Tools((weather, time), ToolChoice(ToolChoiceMode.REQUIRED))
    assert required.call_schema() == {"anyOf": [weather.call_schema(), time.call_schema()]}
    assert Tools((weather,)).call_schema() is None
    grammar_for_schema(required.call_schema() or {})  # the converter takes it
    with pytest.raises(ValueError, match="not in tools"):
        Tools((weather,), ToolChoice(ToolChoiceMode.FUNCTION, "nope"))


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("{", "not valid JSON"),
        ("[1]", "must be a JSON object"),
        ('{"type": "foo"}', "not supported"),
        ('{"enum": []}', "matches nothing"),
        ('{"type": "array", "maxItems": 100000}', "maxItems"),
        ('{"type": "string", "pattern": "^a{5000}$"}', "pattern"),
        (
            json.dumps(
                {
                    "type": "object",
                    "properties": {"x": {"type": "array", "items": {"$ref": "#/$defs/n"}}},
                    "$defs": {"n": {"type": "integer", "minimum": 0}},
                }
            ),
            None,
        ),
    ],
)
def test_a_schema_a_grammar_cannot_express_is_a_clear_error(text: str, says: str | None) -> None:
    if says is None:
        parse_schema(text)
        return
    with pytest.raises(GrammarError, match=says):
        parse_schema(text)
    with pytest.raises(ValueError, match=says):  # the same check guards Sampling
        Sampling(json_schema=text)


def test_json_strings_in_a_grammar_exclude_control_characters() -> None:
    grammar = grammar_for_schema({"type": "string"})
    assert r'char ::= [^"\\\x7F\x00-\x1F]' in grammar

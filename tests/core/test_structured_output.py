"""JSON output and tool calls through the OpenAI-compatible server, for real: uvicorn on
127.0.0.1, the real engine child, tiny GGUFs and the real `openai` client.

The scripted model answers "Quick fox." to everything, and a random-weight model never writes
JSON by chance: a reply that parses and matches the schema is the grammar's doing. The tool
model (tests/support/tool_gguf.py) answers every prompt with a Hermes-style tool call, so the
parsing of an unconstrained ("auto") reply is tested on a model's real output.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx2
import openai
import pytest

from app.chat.local import LocalChatEngine
from app.chat.remote import RemoteEndpoint, RemoteEngine
from app.chat.tools import FunctionTool, ToolChoice, ToolChoiceMode, Tools
from app.engines.errors import EngineErrorKind
from app.engines.protocol import EventKind
from app.llm.messages import LoadSettings
from app.llm.sampling import Sampling
from app.serving import ModelServer
from app.serving.schemas import ChatMessage
from tests.support.gguf_builder import SCRIPTED_REPLY, ScriptedGgufs
from tests.support.served import openai_client, serving
from tests.support.tool_gguf import write_piece_scripted_gguf

pytestmark = pytest.mark.slow

HELLO: list[Any] = [{"role": "user", "content": "What's the weather in Paris?"}]
CALL_PIECES = [
    "Checking. ",
    "<tool_call>\n",
    '{"name": "get_weather", ',
    '"arguments": ',
    '{"city": "Paris"}}',
    "\n</tool_call>",
]
WEATHER: Any = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "The weather in a city",
        "parameters": {
            "type": "object",
            "properties": {
                "city": {"type": "string", "enum": ["Paris", "Oslo", "Lima"]},
                "unit": {"type": "string", "enum": ["C", "F"]},
            },
            "required": ["city", "unit"],
        },
    },
}
TIME: Any = {
    "type": "function",
    "function": {
        "name": "get_time",
        "parameters": {
            "type": "object",
            "properties": {"zone": {"type": "string", "enum": ["UTC", "CET"]}},
            "required": ["zone"],
        },
    },
}
ANSWER_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "answer": {"type": "string", "enum": ["yes", "no", "maybe"]},
        "confident": {"type": "boolean"},
        "tags": {"type": "array", "items": {"enum": ["a", "b"]}, "maxItems": 3},
    },
    "required": ["answer", "confident", "tags"],
    "additionalProperties": False,
}
# A template that renders tools itself (as Qwen's and Hermes' do), and tool turns.
TOOLS_TEMPLATE = (
    "{% if tools %}<|im_start|>system\n# Tools (the template's own)\n<tools>\n"
    "{% for tool in tools %}{{ tool | tojson }}\n{% endfor %}</tools><|im_end|>\n{% endif %}"
    "{% for message in messages %}"
    "{% if message.role == 'assistant' and message.tool_calls %}<|im_start|>assistant\n"
    "{% for call in message.tool_calls %}<tool_call>\n"
    '{"name": "{{ call.function.name }}", "arguments": {{ call.function.arguments | tojson }}}'
    "\n</tool_call>{% endfor %}<|im_end|>\n"
    "{% elif message.role == 'tool' %}<|im_start|>user\n<tool_response>\n{{ message.content }}"
    "\n</tool_response><|im_end|>\n"
    "{% else %}<|im_start|>{{ message.role }}\n{{ message.content }}<|im_end|>\n{% endif %}"
    "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


@pytest.fixture(scope="module")
def models(ggufs: ScriptedGgufs, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("tool-ggufs")
    return {
        # The tool prompts are long in a byte-level vocabulary: the 4k model has room.
        "scripted": ggufs.scripted_4k,
        "caller": write_piece_scripted_gguf(
            folder / "Tool-Caller.gguf", CALL_PIECES, context_length=4096
        ),
        "template-caller": write_piece_scripted_gguf(
            folder / "Template-Tool-Caller.gguf",
            CALL_PIECES,
            chat_template=TOOLS_TEMPLATE,
            context_length=4096,
        ),
    }


def _serving(server: ModelServer, path: Path) -> ModelServer:
    return serving(server, LoadSettings(path=path, context_length=4096, threads=1))


@pytest.fixture
def scripted(server: ModelServer, models: dict[str, Path]) -> ModelServer:
    return _serving(server, models["scripted"])


@pytest.fixture
def caller(server: ModelServer, models: dict[str, Path]) -> ModelServer:
    return _serving(server, models["caller"])


@pytest.fixture
def client(server: ModelServer) -> Iterator[openai.OpenAI]:
    with openai_client(server) as client:
        yield client


@pytest.fixture
def http(server: ModelServer) -> Iterator[httpx2.Client]:
    assert server.url is not None
    with httpx2.Client(base_url=server.url, timeout=60) as http:
        yield http


def _matches_answer_schema(document: Any) -> bool:
    """ANSWER_SCHEMA, checked by hand (no JSON Schema validator is installed)."""
    return (
        isinstance(document, dict)
        and set(document) == {"answer", "confident", "tags"}
        and document["answer"] in ("yes", "no", "maybe")
        and isinstance(document["confident"], bool)
        and isinstance(document["tags"], list)
        and len(document["tags"]) <= 3
        and all(tag in ("a", "b") for tag in document["tags"])
    )


def _valid_weather_arguments(arguments: str) -> bool:
    document = json.loads(arguments)
    return (
        set(document) == {"city", "unit"}
        and document["city"] in ("Paris", "Oslo", "Lima")
        and document["unit"] in ("C", "F")
    )


# -- response_format -------------------------------------------------------------------------


def test_json_object_replies_parse_as_json_objects(
    scripted: ModelServer, client: openai.OpenAI
) -> None:
    plain = client.chat.completions.create(model="scripted-4k", messages=HELLO, seed=1)
    assert plain.choices[0].message.content == SCRIPTED_REPLY  # not JSON without a grammar
    for seed in range(8):
        answer = client.chat.completions.create(
            model="scripted-4k",
            messages=HELLO,
            seed=seed,
            max_tokens=300,
            response_format={"type": "json_object"},
        )
        content = answer.choices[0].message.content
        assert content is not None
        assert isinstance(json.loads(content), dict), (seed, content)


def test_json_schema_replies_match_the_schema(scripted: ModelServer, client: openai.OpenAI) -> None:
    for seed in range(6):
        answer = client.chat.completions.create(
            model="scripted-4k",
            messages=HELLO,
            seed=seed,
            temperature=1.0,
            max_tokens=300,
            response_format={
                "type": "json_schema",
                "json_schema": {"name": "answer", "schema": ANSWER_SCHEMA, "strict": True},
            },
        )
        content = answer.choices[0].message.content
        assert content is not None
        assert _matches_answer_schema(json.loads(content)), (seed, content)
        assert answer.choices[0].finish_reason == "stop"


def test_a_streamed_json_schema_reply_joins_to_matching_json(
    scripted: ModelServer, client: openai.OpenAI
) -> None:
    chunks = client.chat.completions.create(
        model="scripted-4k",
        messages=HELLO,
        seed=3,
        max_tokens=300,
        stream=True,
        response_format={
            "type": "json_schema",
            "json_schema": {"name": "answer", "schema": ANSWER_SCHEMA},
        },
    )
    text = "".join(chunk.choices[0].delta.content or "" for chunk in chunks if chunk.choices)
    assert _matches_answer_schema(json.loads(text)), text


@pytest.mark.parametrize(
    ("response_format", "says"),
    [
        ({"type": "json_schema", "json_schema": {"name": "x", "schema": {"type": "foo"}}}, "foo"),
        (
            {
                "type": "json_schema",
                "json_schema": {"name": "x", "schema": {"type": "string", "pattern": "(("}},
            },
            "Pattern must start with",
        ),
        (
            {
                "type": "json_schema",
                "json_schema": {"name": "x", "schema": {"type": "string", "maxLength": 10**9}},
            },
            "maxLength",
        ),
        ({"type": "json_schema"}, "json_schema"),
    ],
)
def test_an_invalid_schema_is_400_in_openais_shape(
    scripted: ModelServer,
    client: openai.OpenAI,
    http: httpx2.Client,
    response_format: Any,
    says: str,
) -> None:
    with pytest.raises(openai.BadRequestError) as raised:
        client.chat.completions.create(
            model="scripted-4k",
            messages=HELLO,
            response_format=response_format,
        )
    assert raised.value.status_code == 400
    response = http.post(
        "/chat/completions", json={"messages": HELLO, "response_format": response_format}
    )
    assert response.status_code == 400
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert error["type"] == "invalid_request_error"
    assert error["param"] == "response_format"
    assert says in error["message"]
    # The server is fine afterwards.
    assert client.chat.completions.create(messages=HELLO, model="scripted-4k").choices


# -- tools -----------------------------------------------------------------------------------


def test_a_named_tool_choice_is_a_valid_call(scripted: ModelServer, client: openai.OpenAI) -> None:
    for seed in range(4):
        answer = client.chat.completions.create(
            model="scripted-4k",
            messages=HELLO,
            seed=seed,
            max_tokens=200,
            tools=[WEATHER, TIME],
            tool_choice={"type": "function", "function": {"name": "get_weather"}},
        )
        choice = answer.choices[0]
        assert choice.finish_reason == "tool_calls"
        assert choice.message.content is None
        calls = choice.message.tool_calls
        assert calls is not None and len(calls) == 1
        call = calls[0]
        assert call.type == "function" and call.id.startswith("call_")
        assert call.function.name == "get_weather"
        assert _valid_weather_arguments(call.function.arguments), call


def test_a_required_tool_choice_calls_one_of_the_tools(
    scripted: ModelServer, client: openai.OpenAI
) -> None:
    names = set()
    for seed in range(6):
        answer = client.chat.completions.create(
            model="scripted-4k",
            messages=HELLO,
            seed=seed,
            max_tokens=200,
            tools=[WEATHER, TIME],
            tool_choice="required",
        )
        calls = answer.choices[0].message.tool_calls
        assert calls is not None and len(calls) == 1
        function = calls[0].function  # type: ignore[union-attr]
        names.add(function.name)
        if function.name == "get_weather":
            assert _valid_weather_arguments(function.arguments)
        else:
            assert function.name == "get_time"
            assert json.loads(function.arguments) in ({"zone": "UTC"}, {"zone": "CET"})
    assert names <= {"get_weather", "get_time"}


def test_tool_choice_none_answers_in_text_without_showing_the_tools(
    scripted: ModelServer, client: openai.OpenAI
) -> None:
    bare = client.chat.completions.create(model="scripted-4k", messages=HELLO)
    answer = client.chat.completions.create(
        model="scripted-4k",
        messages=HELLO,
        tools=[WEATHER],
        tool_choice="none",
    )
    offered = client.chat.completions.create(
        model="scripted-4k",
        messages=HELLO,
        tools=[WEATHER],
    )
    assert answer.choices[0].message.content == SCRIPTED_REPLY
    assert answer.choices[0].message.tool_calls is None
    assert answer.choices[0].finish_reason == "stop"
    assert answer.usage is not None and bare.usage is not None and offered.usage is not None
    assert answer.usage.prompt_tokens == bare.usage.prompt_tokens
    # "auto" shows them (the fallback tool prompt: the template knows no tools), and a
    # plain-text reply stays text.
    assert offered.usage.prompt_tokens > bare.usage.prompt_tokens + 100
    assert offered.choices[0].message.content == SCRIPTED_REPLY
    assert offered.choices[0].finish_reason == "stop"


def test_auto_parses_the_models_own_tool_call(caller: ModelServer, client: openai.OpenAI) -> None:
    answer = client.chat.completions.create(
        model="Tool-Caller",
        messages=HELLO,
        tools=[WEATHER],
    )
    choice = answer.choices[0]
    assert choice.finish_reason == "tool_calls"
    assert choice.message.content == "Checking."
    calls = choice.message.tool_calls
    assert calls is not None and len(calls) == 1
    assert calls[0].function.name == "get_weather"  # type: ignore[union-attr]
    assert json.loads(calls[0].function.arguments) == {"city": "Paris"}  # type: ignore[union-attr]
    # Without tools, the same text is only text.
    plain = client.chat.completions.create(model="Tool-Caller", messages=HELLO)
    assert plain.choices[0].message.content == "".join(CALL_PIECES)
    assert plain.choices[0].message.tool_calls is None


def test_streamed_tool_calls_are_assembled_by_the_client(
    caller: ModelServer, client: openai.OpenAI
) -> None:
    with client.chat.completions.stream(
        model="Tool-Caller",
        messages=HELLO,
        tools=[WEATHER],
    ) as stream:
        final = stream.get_final_completion()
    choice = final.choices[0]
    assert choice.finish_reason == "tool_calls"
    assert choice.message.content == "Checking. "
    calls = choice.message.tool_calls
    assert calls is not None and len(calls) == 1
    assert calls[0].id.startswith("call_") and calls[0].type == "function"
    assert calls[0].function.name == "get_weather"
    assert json.loads(calls[0].function.arguments) == {"city": "Paris"}


def test_a_streamed_forced_call_names_the_function_once(
    scripted: ModelServer, client: openai.OpenAI
) -> None:
    chunks = list(
        client.chat.completions.create(
            model="scripted-4k",
            messages=HELLO,
            seed=2,
            max_tokens=200,
            stream=True,
            tools=[WEATHER],
            tool_choice="required",
        )
    )
    deltas = [call for c in chunks if c.choices for call in c.choices[0].delta.tool_calls or ()]
    names = [d.function.name for d in deltas if d.function is not None and d.function.name]
    assert names == ["get_weather"]
    arguments = "".join(d.function.arguments or "" for d in deltas if d.function is not None)
    assert _valid_weather_arguments(arguments)
    assert chunks[-1].choices[0].finish_reason == "tool_calls"


def test_a_tool_result_goes_back_through_the_template(
    caller: ModelServer, client: openai.OpenAI, engine: LocalChatEngine
) -> None:
    first = client.chat.completions.create(
        model="Tool-Caller",
        messages=HELLO,
        tools=[WEATHER],
    )
    call = first.choices[0].message.tool_calls[0]  # type: ignore[index]
    conversation: list[Any] = [
        *HELLO,
        first.choices[0].message.model_dump(exclude_none=True),
        {"role": "tool", "tool_call_id": call.id, "content": '{"temperature": 21}'},
    ]
    second = client.chat.completions.create(
        model="Tool-Caller",
        messages=conversation,
        tools=[WEATHER],
    )
    assert second.choices[0].finish_reason == "tool_calls"
    assert first.usage is not None and second.usage is not None
    assert second.usage.prompt_tokens > first.usage.prompt_tokens
    # What the template was given: the call and the result, in the fallback's Hermes text.
    messages = [ChatMessage.model_validate(m).as_template_message() for m in conversation]
    tools = Tools((FunctionTool("get_weather", "", WEATHER["function"]["parameters"]),))
    prompt = engine.render(messages, tools).text
    assert '<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris"}}' in prompt
    assert '<tool_response>\n{"temperature": 21}\n</tool_response>' in prompt


def test_a_template_that_knows_tools_renders_them_itself(
    server: ModelServer, models: dict[str, Path], client: openai.OpenAI, engine: LocalChatEngine
) -> None:
    _serving(server, models["template-caller"])
    conversation: list[Any] = [
        *HELLO,
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "call_1",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": '{"city": "Oslo"}'},
                }
            ],
        },
        {"role": "tool", "tool_call_id": "call_1", "content": "sunny"},
    ]
    answer = client.chat.completions.create(
        model="Template-Tool-Caller",
        messages=conversation,
        tools=[WEATHER],
    )
    assert answer.choices[0].message.tool_calls is not None
    messages = [ChatMessage.model_validate(m).as_template_message() for m in conversation]
    tools = Tools((FunctionTool("get_weather", "The weather in a city", {"type": "object"}),))
    prompt = engine.render(messages, tools).text
    assert "# Tools (the template's own)" in prompt
    assert '"name": "get_weather"' in prompt
    assert "You may call one or more functions" not in prompt  # not the fallback
    # The arguments reach the template as an object (it writes them with tojson).
    assert '"arguments": {"city": "Oslo"}' in prompt
    assert "<tool_response>\nsunny\n</tool_response>" in prompt
    none = Tools(tools.functions, ToolChoice(ToolChoiceMode.NONE))
    assert "# Tools" not in engine.render(HELLO, none).text


@pytest.mark.parametrize(
    ("tools", "tool_choice"),
    [
        ([WEATHER], {"type": "function", "function": {"name": "get_time"}}),
        ([], "required"),
        ([WEATHER, WEATHER], "auto"),
        (
            [{"type": "function", "function": {"name": "f", "parameters": {"type": "nope"}}}],
            "required",
        ),
    ],
)
def test_a_tool_choice_that_makes_no_sense_is_400(
    scripted: ModelServer, http: httpx2.Client, tools: list[Any], tool_choice: Any
) -> None:
    body = {"messages": HELLO, "tools": tools, "tool_choice": tool_choice}
    response = http.post("/chat/completions", json=body)
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["param"] == "tools" and error["message"]


def test_a_grammar_llama_cpp_cannot_parse_is_an_error_not_a_crash(
    scripted: ModelServer, engine: LocalChatEngine
) -> None:
    prompt = "<|im_start|>user\nhello<|im_end|>\n<|im_start|>assistant\n"
    pid = engine.pid
    handle = engine.generate_from_prompt(prompt, Sampling(max_tokens=5), grammar="root ::= (")
    event = handle.wait(60.0)
    assert event.kind is EventKind.ERROR
    assert event.failure.kind is EngineErrorKind.BAD_GRAMMAR
    assert "grammar" in event.failure.message
    # The same child goes on answering.
    again = engine.generate_from_prompt(prompt, Sampling(max_tokens=20), grammar='root ::= "ok"')
    chunks = [e.text for e in again.events() if e.kind is EventKind.CHUNK]
    assert "".join(chunks) == "ok"
    assert engine.pid == pid


def test_a_remote_engine_asks_the_server_for_the_schema(
    scripted: ModelServer, server: ModelServer
) -> None:
    """The Chat page's schema box with a remote endpoint: sent as `response_format`, and
    ModelDeck's own server, as the remote, enforces it."""
    assert server.url is not None
    remote = RemoteEngine(RemoteEndpoint(server.url, "scripted-4k"))
    sampling = Sampling(max_tokens=300, seed=4, json_schema=json.dumps(ANSWER_SCHEMA))
    try:
        handle = remote.generate(HELLO, sampling)
        text = "".join(event.text for event in handle.events() if event.kind is EventKind.CHUNK)
        assert handle.wait(60.0).kind is EventKind.RESULT
    finally:
        remote.close()
    assert _matches_answer_schema(json.loads(text)), text

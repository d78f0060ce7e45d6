"""Anthropic's Messages API on the local server, for real: uvicorn on 127.0.0.1, the real
engine child, tiny scripted GGUFs, and the real `anthropic` client (raw HTTP for the event
stream's exact lines and for what the client won't send)."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import anthropic
import httpx
import pytest

from app.chat.local import LocalChatEngine
from app.llm.messages import LoadSettings
from app.serving import ModelServer, RequestLogEntry
from tests.support.gguf_builder import SCRIPTED_REPLY, ScriptedGgufs
from tests.support.served import chat_models, root_url, serving
from tests.support.tool_gguf import write_piece_scripted_gguf
from tests.support.waiting import wait_until

pytestmark = pytest.mark.slow

MODEL = "Scripted-Q8_0.gguf"
HELLO: list[anthropic.types.MessageParam] = [{"role": "user", "content": "Hello"}]
KEY = "sk-local-test-key"


@pytest.fixture(scope="module")
def models(ggufs: ScriptedGgufs) -> dict[str, LoadSettings]:
    return chat_models(ggufs)


@pytest.fixture
def scripted(server: ModelServer, models: dict[str, LoadSettings]) -> ModelServer:
    return serving(server, models["scripted"])


@pytest.fixture
def root(server: ModelServer) -> str:
    return root_url(server)


@pytest.fixture
def client(root: str) -> Iterator[anthropic.Anthropic]:
    with anthropic.Anthropic(base_url=root, api_key="unused", max_retries=0) as client:
        yield client


@pytest.fixture
def http(root: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=root, timeout=30) as http:
        yield http


def _error(response: httpx.Response, status: int) -> dict[str, str]:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"type", "error"} and body["type"] == "error", body
    error: dict[str, str] = body["error"]
    assert set(error) == {"type", "message"} and error["message"], error
    return error


def test_a_message_is_the_reply_with_usage(
    scripted: ModelServer, client: anthropic.Anthropic
) -> None:
    message = client.messages.create(
        model=MODEL, max_tokens=100, system="Be brief.", messages=HELLO
    )
    assert message.type == "message" and message.role == "assistant"
    assert message.model == MODEL and message.id.startswith("msg_")
    (block,) = message.content
    assert block.type == "text" and block.text == SCRIPTED_REPLY
    assert message.stop_reason == "end_turn" and message.stop_sequence is None
    assert message.usage.output_tokens == len(SCRIPTED_REPLY)
    assert message.usage.input_tokens > 5


def test_count_tokens_is_the_prompts_size(
    scripted: ModelServer, client: anthropic.Anthropic
) -> None:
    counted = client.messages.count_tokens(model=MODEL, system="Be brief.", messages=HELLO)
    message = client.messages.create(model=MODEL, max_tokens=20, system="Be brief.", messages=HELLO)
    assert counted.input_tokens == message.usage.input_tokens > 5


def test_max_tokens_and_stop_sequences_map_to_the_engine(
    scripted: ModelServer, client: anthropic.Anthropic
) -> None:
    # anthropic 2.x has no sampling arguments (newer models fix them); the API still takes
    # them, and other clients send them.
    short = client.messages.create(
        model=MODEL, max_tokens=5, messages=HELLO, extra_body={"temperature": 0}
    )
    assert short.content[0].type == "text" and short.content[0].text == SCRIPTED_REPLY[:5]
    assert short.stop_reason == "max_tokens" and short.usage.output_tokens == 5
    blocks: list[anthropic.types.MessageParam] = [
        {
            "role": "user",
            "content": [{"type": "text", "text": "Hel"}, {"type": "text", "text": "lo"}],
        }
    ]
    stopped = client.messages.create(
        model=MODEL,
        max_tokens=100,
        messages=blocks,
        stop_sequences=["fox"],
        extra_body={"top_k": 5, "top_p": 0.9},
    )
    assert stopped.content[0].type == "text"
    assert stopped.content[0].text == SCRIPTED_REPLY[: SCRIPTED_REPLY.index("fox")]
    assert (stopped.stop_reason, stopped.stop_sequence) == ("stop_sequence", "fox")
    with client.messages.stream(
        model=MODEL, max_tokens=100, messages=HELLO, stop_sequences=["zebra", "fox"]
    ) as stream:
        final = stream.get_final_message()
    assert (final.stop_reason, final.stop_sequence) == ("stop_sequence", "fox")


def test_a_streamed_message_joins_to_the_reply(
    scripted: ModelServer, client: anthropic.Anthropic
) -> None:
    with client.messages.stream(model=MODEL, max_tokens=100, messages=HELLO) as stream:
        texts = list(stream.text_stream)
        final = stream.get_final_message()
    assert "".join(texts) == SCRIPTED_REPLY
    assert final.content[0].type == "text" and final.content[0].text == SCRIPTED_REPLY
    assert final.stop_reason == "end_turn"
    assert final.usage.output_tokens == len(SCRIPTED_REPLY) and final.usage.input_tokens > 5


def test_the_event_stream_is_anthropics(scripted: ModelServer, http: httpx.Client) -> None:
    body = {"model": MODEL, "max_tokens": 100, "messages": HELLO, "stream": True}
    with http.stream("POST", "/v1/messages", json=body) as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        lines = [line for line in response.iter_lines() if line]
    names = [line.removeprefix("event: ") for line in lines if line.startswith("event: ")]
    datas = [json.loads(line.removeprefix("data: ")) for line in lines if line.startswith("data: ")]
    assert [data["type"] for data in datas] == names
    deltas = names.count("content_block_delta")
    assert deltas >= 1
    assert names == [
        "message_start",
        "content_block_start",
        "ping",
        *["content_block_delta"] * deltas,
        "content_block_stop",
        "message_delta",
        "message_stop",
    ]
    assert datas[-2]["delta"]["stop_reason"] == "end_turn"


def test_errors_have_anthropics_shape(scripted: ModelServer, http: httpx.Client) -> None:
    missing = http.post("/v1/messages", json={"model": MODEL, "messages": HELLO})
    error = _error(missing, 400)
    assert error["type"] == "invalid_request_error" and "max_tokens" in error["message"]
    image = {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "x"}}
    pictured = {"model": MODEL, "max_tokens": 9, "messages": [{"role": "user", "content": [image]}]}
    assert "malformed" in _error(http.post("/v1/messages", json=pictured), 400)["message"]
    source = {"type": "base64", "media_type": "image/png", "data": "aGk="}  # valid base64
    seen = {"type": "image", "source": source}
    pictured = {"model": MODEL, "max_tokens": 9, "messages": [{"role": "user", "content": [seen]}]}
    assert "can't see images" in _error(http.post("/v1/messages", json=pictured), 400)["message"]
    unknown = {"model": "claude-opus", "max_tokens": 9, "messages": HELLO}
    assert _error(http.post("/v1/messages", json=unknown), 404)["type"] == "not_found_error"
    rebound = http.post("/v1/messages", json=unknown, headers={"host": "attacker.example"})
    assert _error(rebound, 403)["type"] == "permission_error"
    assert _error(http.get("/v1/messages"), 405)["type"] == "invalid_request_error"


def test_the_client_raises_its_own_errors(
    scripted: ModelServer, client: anthropic.Anthropic
) -> None:
    with pytest.raises(anthropic.NotFoundError) as missing:
        client.messages.create(model="claude-opus", max_tokens=9, messages=HELLO)
    assert "claude-opus" in str(missing.value)
    with pytest.raises(anthropic.BadRequestError):
        client.messages.create(
            model=MODEL, max_tokens=9, messages=HELLO, extra_body={"temperature": 1.5}
        )


def test_an_api_key_is_required_when_set(engine: LocalChatEngine, scripted: ModelServer) -> None:
    with ModelServer(engine) as keyed:
        keyed.start(port=0, api_key=KEY)
        root = f"http://127.0.0.1:{keyed.port}"
        with anthropic.Anthropic(base_url=root, api_key=KEY, max_retries=0) as right:
            answer = right.messages.create(model=MODEL, max_tokens=50, messages=HELLO)
            assert answer.content[0].type == "text" and answer.content[0].text == SCRIPTED_REPLY
        body = {"model": MODEL, "max_tokens": 50, "messages": HELLO}
        with httpx.Client(base_url=root, timeout=30) as http:
            by_header = http.post("/v1/messages", json=body, headers={"x-api-key": KEY})
            assert by_header.status_code == 200, by_header.text
            assert _error(http.post("/v1/messages", json=body), 401)["type"] == (
                "authentication_error"
            )
        with (
            anthropic.Anthropic(base_url=root, api_key="sk-wrong", max_retries=0) as wrong,
            pytest.raises(anthropic.AuthenticationError),
        ):
            wrong.messages.create(model=MODEL, max_tokens=50, messages=HELLO)


def test_a_client_leaving_mid_stream_stops_the_generation(
    server: ModelServer, models: dict[str, LoadSettings], http: httpx.Client
) -> None:
    serving(server, models["endless"])
    since = time.time()
    body = {"model": "endless.gguf", "max_tokens": 8000, "messages": HELLO, "stream": True}
    with http.stream("POST", "/v1/messages", json=body) as response:
        assert response.status_code == 200
        lines = response.iter_lines()
        received = [next(lines) for _ in range(12)]
    assert "event: content_block_delta" in received

    def entries() -> list[RequestLogEntry]:
        return [e for e in server.log.entries() if e.time >= since]

    wait_until(lambda: any(e.outcome for e in entries()))
    (entry,) = entries()
    assert (entry.path, entry.outcome) == ("/v1/messages", "cancelled")
    wait_until(lambda: not server.busy)
    short = http.post("/v1/messages", json={**body, "stream": False, "max_tokens": 3})
    assert short.json()["content"][0]["text"] == SCRIPTED_REPLY[:3]


# -- tools ----------------------------------------------------------------------------------

GET_TIME: anthropic.types.ToolParam = {
    "name": "get_time",
    "description": "The time in a zone.",
    "input_schema": {
        "type": "object",
        "properties": {"zone": {"type": "string", "enum": ["UTC", "CET"]}},
        "required": ["zone"],
    },
}


@pytest.fixture
def roomy(server: ModelServer, ggufs: ScriptedGgufs) -> ModelServer:
    """The scripted model with a 4k context: tool descriptions are long in its byte-level
    vocabulary."""
    return serving(server, LoadSettings(path=ggufs.scripted_4k, context_length=4096, threads=1))


def test_a_forced_tool_choice_is_a_tool_use_block(
    roomy: ModelServer, client: anthropic.Anthropic
) -> None:
    choices: list[anthropic.types.ToolChoiceParam] = [
        {"type": "tool", "name": "get_time"},
        {"type": "any"},
    ]
    for choice in choices:
        message = client.messages.create(
            model="scripted-4k",
            max_tokens=200,
            messages=[{"role": "user", "content": "What time is it?"}],
            tools=[GET_TIME],
            tool_choice=choice,
        )
        assert message.stop_reason == "tool_use", message
        (call,) = [block for block in message.content if block.type == "tool_use"]
        assert call.name == "get_time" and call.id.startswith("toolu_")
        assert call.input in ({"zone": "UTC"}, {"zone": "CET"})


def test_a_streamed_tool_call_is_assembled_by_the_client(
    roomy: ModelServer, client: anthropic.Anthropic
) -> None:
    with client.messages.stream(
        model="scripted-4k",
        max_tokens=200,
        messages=[{"role": "user", "content": "What time is it?"}],
        tools=[GET_TIME],
        tool_choice={"type": "any"},
    ) as stream:
        final = stream.get_final_message()
    assert final.stop_reason == "tool_use"
    (call,) = [block for block in final.content if block.type == "tool_use"]
    assert call.name == "get_time" and call.input in ({"zone": "UTC"}, {"zone": "CET"})


def test_tool_results_go_back_and_a_free_choice_may_answer_in_text(
    roomy: ModelServer, client: anthropic.Anthropic
) -> None:
    conversation: list[anthropic.types.MessageParam] = [
        {"role": "user", "content": "What time is it?"},
        {
            "role": "assistant",
            "content": [
                {"type": "tool_use", "id": "toolu_1", "name": "get_time", "input": {"zone": "UTC"}}
            ],
        },
        {
            "role": "user",
            "content": [
                {"type": "tool_result", "tool_use_id": "toolu_1", "content": "12:00"},
                {"type": "text", "text": "Thanks."},
            ],
        },
    ]
    message = client.messages.create(
        model="scripted-4k", max_tokens=200, messages=conversation, tools=[GET_TIME]
    )
    # The scripted model answers its text whatever it is shown: no call, a plain end.
    assert message.stop_reason == "end_turn"
    assert message.content[0].type == "text" and message.content[0].text == SCRIPTED_REPLY


def test_a_tool_choice_without_tools_is_400(roomy: ModelServer, http: httpx.Client) -> None:
    body = {
        "model": "scripted-4k",
        "max_tokens": 9,
        "messages": HELLO,
        "tool_choice": {"type": "any"},
    }
    assert "tools" in _error(http.post("/v1/messages", json=body), 400)["message"]


def test_auto_parses_the_models_own_call(
    server: ModelServer, client: anthropic.Anthropic, tmp_path: Path
) -> None:
    pieces = ["Checking. ", "<tool_call>\n", '{"name": "get_time", ', '"arguments": ']
    pieces += ['{"zone": "CET"}}', "\n</tool_call>"]
    path = write_piece_scripted_gguf(tmp_path / "Tool-Caller.gguf", pieces, context_length=4096)
    serving(server, LoadSettings(path=path, context_length=4096, threads=1))
    message = client.messages.create(
        model="Tool-Caller.gguf", max_tokens=200, messages=HELLO, tools=[GET_TIME]
    )
    assert message.stop_reason == "tool_use"
    text, call = message.content
    assert text.type == "text" and text.text == "Checking."
    assert call.type == "tool_use" and (call.name, call.input) == ("get_time", {"zone": "CET"})
    with client.messages.stream(
        model="Tool-Caller.gguf", max_tokens=200, messages=HELLO, tools=[GET_TIME]
    ) as stream:
        streamed = list(stream.text_stream)
        final = stream.get_final_message()
    assert "".join(streamed).strip() == "Checking."
    assert [block.type for block in final.content] == ["text", "tool_use"]
    assert final.stop_reason == "tool_use"

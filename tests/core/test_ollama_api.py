"""Ollama's API on the local server, for real: uvicorn on 127.0.0.1, the real engine child,
tiny scripted GGUFs, and the real `ollama` client (raw HTTP for what it has no method for)."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import ollama
import psutil
import pytest

from app.chat.local import LocalChatEngine
from app.library import Library
from app.library.other_apps import AppFolders
from app.llm.messages import LoadSettings
from app.serving import ModelServer, RequestLogEntry
from app.serving.model_pool import PoolLimits
from app.store import Database
from tests.core.test_serving_pool import serve_pool
from tests.support.gguf_builder import SCRIPTED_REPLY, ScriptedGgufs
from tests.support.served import chat_models, root_url, serving
from tests.support.tool_gguf import write_piece_scripted_gguf
from tests.support.waiting import wait_until

pytestmark = pytest.mark.slow

MODEL = "Scripted-Q8_0.gguf"
HELLO = [{"role": "user", "content": "Hello"}]
KEY = "sk-local-test-key"


@pytest.fixture(scope="module")
def models(ggufs: ScriptedGgufs) -> dict[str, LoadSettings]:
    return chat_models(ggufs) | {
        "embedder": LoadSettings(
            path=ggufs.embedder, context_length=256, threads=1, embedding=True
        ),
    }


@pytest.fixture
def scripted(server: ModelServer, models: dict[str, LoadSettings]) -> ModelServer:
    return serving(server, models["scripted"])


@pytest.fixture
def root(server: ModelServer) -> str:
    return root_url(server)


@pytest.fixture
def client(root: str) -> Iterator[ollama.Client]:
    with ollama.Client(host=root, timeout=60) as client:
        yield client


@pytest.fixture
def http(root: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=root, timeout=30) as http:
        yield http


def _error(response: httpx.Response, status: int) -> str:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error"}, body
    assert isinstance(body["error"], str) and body["error"]
    return str(body["error"])


# -- the client's calls ---------------------------------------------------------------------


def test_list_names_the_served_model_with_its_details(
    scripted: ModelServer, client: ollama.Client, ggufs: ScriptedGgufs
) -> None:
    (model,) = client.list().models
    assert model.model == MODEL
    assert model.size == ggufs.scripted.stat().st_size
    assert model.details is not None
    assert (model.details.format, model.details.family) == ("gguf", "llama")
    assert model.details.quantization_level  # read from the file's header
    assert model.digest is not None and len(model.digest) == 64
    assert model.modified_at is not None


def test_show_tells_the_models_metadata(scripted: ModelServer, client: ollama.Client) -> None:
    shown = client.show(MODEL)
    assert shown.modelinfo is not None
    assert shown.modelinfo["general.architecture"] == "llama"
    assert shown.modelinfo["general.parameter_count"] > 0
    assert shown.capabilities == ["completion", "tools"]
    assert shown.parameters == "num_ctx 512"
    with pytest.raises(ollama.ResponseError) as missing:
        client.show("llama3:8b")
    assert missing.value.status_code == 404
    assert "llama3:8b" in missing.value.error


def test_a_chat_answers_with_ollamas_figures(scripted: ModelServer, client: ollama.Client) -> None:
    answer = client.chat(model=MODEL, messages=HELLO, stream=False)
    assert answer.message.role == "assistant"
    assert answer.message.content == SCRIPTED_REPLY
    assert answer.done and answer.done_reason == "stop"
    assert answer.eval_count == len(SCRIPTED_REPLY)
    assert answer.prompt_eval_count is not None and answer.prompt_eval_count > 5
    assert answer.total_duration is not None and answer.total_duration > 0
    assert answer.model == MODEL


def test_a_streamed_chat_joins_to_the_reply_and_ends_done(
    scripted: ModelServer, client: ollama.Client
) -> None:
    parts = list(client.chat(model=f"{MODEL}:latest", messages=HELLO, stream=True))
    assert "".join(part.message.content or "" for part in parts) == SCRIPTED_REPLY
    assert [part.done for part in parts] == [False] * (len(parts) - 1) + [True]
    assert parts[-1].done_reason == "stop" and parts[-1].eval_count == len(SCRIPTED_REPLY)


def test_streaming_is_ndjson_by_default(scripted: ModelServer, http: httpx.Client) -> None:
    with http.stream("POST", "/api/chat", json={"model": MODEL, "messages": HELLO}) as response:
        assert response.status_code == 200
        assert response.headers["content-type"] == "application/x-ndjson"
        lines = [json.loads(line) for line in response.iter_lines() if line]
    assert lines[-1]["done"] is True and "eval_duration" in lines[-1]
    assert "".join(line["message"]["content"] for line in lines) == SCRIPTED_REPLY


def test_options_map_to_the_sampler(scripted: ModelServer, client: ollama.Client) -> None:
    short = client.chat(model=MODEL, messages=HELLO, stream=False, options={"num_predict": 5})
    assert short.message.content == SCRIPTED_REPLY[:5]
    assert short.done_reason == "length" and short.eval_count == 5
    stopped = client.generate(
        model=MODEL, prompt="Hi", options={"stop": ["fox"], "temperature": 0, "seed": 3}
    )
    assert stopped.response == SCRIPTED_REPLY[: SCRIPTED_REPLY.index("fox")]
    assert stopped.done_reason == "stop"


ANSWER_SCHEMA = {
    "type": "object",
    "properties": {"answer": {"type": "string", "enum": ["yes", "no"]}},
    "required": ["answer"],
    "additionalProperties": False,
}


def test_format_constrains_the_reply_to_json(scripted: ModelServer, client: ollama.Client) -> None:
    # Without a format the scripted model answers its text; with one, the grammar decides.
    for seed in range(3):
        answer = client.chat(
            model=MODEL,
            messages=HELLO,
            format=ANSWER_SCHEMA,
            options={"seed": seed, "num_predict": 300},
            stream=False,
        )
        assert answer.message.content is not None
        assert json.loads(answer.message.content)["answer"] in ("yes", "no"), answer
    for raw in (False, True):
        generated = client.generate(
            model=MODEL, prompt="Hi", raw=raw, format="json", options={"num_predict": 300}
        )
        assert isinstance(json.loads(generated.response or ""), dict), generated
    with pytest.raises(ollama.ResponseError) as refused:
        client.chat(model=MODEL, messages=HELLO, format={"type": "wat"})
    assert refused.value.status_code == 400


def test_generate_renders_the_template_unless_raw(
    scripted: ModelServer, client: ollama.Client
) -> None:
    templated = client.generate(model=MODEL, prompt="Hello", system="Be brief.")
    assert templated.response == SCRIPTED_REPLY
    assert templated.done_reason == "stop"
    raw = client.generate(model=MODEL, prompt="Hello", raw=True, options={"num_predict": 4})
    assert raw.done and raw.eval_count is not None and raw.eval_count <= 4
    # The templated prompt is the raw one inside the chat template: more tokens.
    assert raw.prompt_eval_count is not None and templated.prompt_eval_count is not None
    assert templated.prompt_eval_count > raw.prompt_eval_count
    streamed = list(client.generate(model=MODEL, prompt="Hello", stream=True))
    assert "".join(part.response or "" for part in streamed) == SCRIPTED_REPLY


def test_an_empty_chat_only_loads_the_model(scripted: ModelServer, client: ollama.Client) -> None:
    loaded = client.chat(model=MODEL, messages=[], stream=False)
    assert (loaded.done, loaded.done_reason, loaded.message.content) == (True, "load", "")
    assert client.generate(model=MODEL, prompt="").done_reason == "load"


def test_ps_lists_the_loaded_model(scripted: ModelServer, client: ollama.Client) -> None:
    (running,) = client.ps().models
    assert running.model == MODEL and running.context_length == 512


def test_version(scripted: ModelServer, http: httpx.Client) -> None:
    version = http.get("/api/version").json()["version"]
    assert [int(part) for part in version.split(".")] >= [0, 1, 0]


def test_embed_gives_the_engines_vectors(
    server: ModelServer, models: dict[str, LoadSettings], client: ollama.Client
) -> None:
    serving(server, models["embedder"])
    texts = ["the quick brown fox", "a lazy dog"]
    answer = client.embed(model="Tiny-Embedder-F16.gguf", input=texts)
    expected = server.served.engine.embed(texts)
    # Equal as float32s: llama.cpp's sums may differ in the last bits from run to run.
    assert len(answer.embeddings) == 2
    for got, want in zip(answer.embeddings, expected.vectors, strict=True):
        assert list(got) == pytest.approx(want, rel=1e-5, abs=1e-7)
    assert answer.prompt_eval_count == expected.prompt_tokens
    single = client.embed(model="Tiny-Embedder-F16.gguf", input=texts[0])
    assert list(single.embeddings[0]) == pytest.approx(expected.vectors[0], rel=1e-5, abs=1e-7)
    # A chat model loaded for chat has no vectors to give: a clear 400, not a crash.
    serving(server, models["scripted"])
    with pytest.raises(ollama.ResponseError) as refused:
        client.embed(model=MODEL, input="hello")
    assert refused.value.status_code == 400


# -- errors in Ollama's shape ---------------------------------------------------------------


def test_bad_bodies_are_400_in_ollamas_shape(scripted: ModelServer, http: httpx.Client) -> None:
    not_json = http.post("/api/chat", content=b"{", headers={"content-type": "application/json"})
    assert "JSON" in _error(not_json, 400)
    assert "model" in _error(http.post("/api/chat", json={"messages": HELLO}), 400)
    bad_option = {"model": MODEL, "messages": HELLO, "options": {"temperature": -1}}
    assert "temperature" in _error(http.post("/api/chat", json=bad_option), 400)
    images = {"model": MODEL, "messages": [{"role": "user", "content": "x", "images": ["aGk="]}]}
    assert "can't see images" in _error(http.post("/api/chat", json=images), 400)
    generated = {"model": MODEL, "prompt": "x", "images": ["aGk="]}
    assert "can't see images" in _error(http.post("/api/generate", json=generated), 400)
    images["messages"][0]["images"] = ["not base64!"]
    assert "malformed" in _error(http.post("/api/chat", json=images), 400)
    assert _error(http.post("/api/generate", json={"model": "nope", "prompt": "x"}), 404)


def test_the_browser_rules_answer_in_ollamas_shape(
    scripted: ModelServer, http: httpx.Client
) -> None:
    rebound = http.get("/api/tags", headers={"host": "attacker.example"})
    assert "127.0.0.1" in _error(rebound, 403)
    page = http.post(
        "/api/chat", json={"model": MODEL, "messages": HELLO}, headers={"origin": "https://x.io"}
    )
    assert _error(page, 403)
    form = http.post("/api/chat", content=b"{}", headers={"content-type": "text/plain"})
    assert _error(form, 415)
    assert _error(http.get("/api/chat"), 405)


def test_an_api_key_is_required_when_set(engine: LocalChatEngine, scripted: ModelServer) -> None:
    with ModelServer(engine) as keyed:
        keyed.start(port=0, api_key=KEY)
        root = f"http://127.0.0.1:{keyed.port}"
        with ollama.Client(host=root, headers={"Authorization": f"Bearer {KEY}"}) as right:
            assert right.chat(model=MODEL, messages=HELLO).message.content == SCRIPTED_REPLY
        for headers in ({}, {"Authorization": "Bearer sk-wrong"}):
            with (
                ollama.Client(host=root, headers=headers) as wrong,
                pytest.raises(ollama.ResponseError) as refused,
            ):
                wrong.list()
            assert refused.value.status_code == 401


def test_a_client_leaving_mid_stream_stops_the_generation(
    server: ModelServer, models: dict[str, LoadSettings], http: httpx.Client
) -> None:
    serving(server, models["endless"])
    since = time.time()
    body = {"model": "endless.gguf", "messages": HELLO, "options": {"num_predict": 8000}}
    with http.stream("POST", "/api/chat", json=body) as response:
        assert response.status_code == 200
        lines = response.iter_lines()
        received = [json.loads(next(lines)) for _ in range(4)]
    assert all(line["done"] is False for line in received)

    def entries() -> list[RequestLogEntry]:
        return [e for e in server.log.entries() if e.time >= since]

    wait_until(lambda: any(e.outcome for e in entries()))
    (entry,) = entries()
    assert (entry.path, entry.outcome) == ("/api/chat", "cancelled")
    wait_until(lambda: not server.busy)
    short = http.post(
        "/api/chat", json={**body, "stream": False, "options": {"num_predict": 3}}, timeout=10
    )
    assert short.json()["message"]["content"] == SCRIPTED_REPLY[:3]


# -- tools ----------------------------------------------------------------------------------

CALL_PIECES = [
    "Checking. ",
    "<tool_call>\n",
    '{"name": "get_weather", ',
    '"arguments": ',
    '{"city": "Paris"}}',
    "\n</tool_call>",
]
WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "The weather in a city.",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}},
            "required": ["city"],
        },
    },
}


@pytest.fixture(scope="module")
def caller_settings(tmp_path_factory: pytest.TempPathFactory) -> LoadSettings:
    """A model that answers every prompt with a Hermes-style call to get_weather."""
    path = write_piece_scripted_gguf(
        tmp_path_factory.mktemp("caller") / "Tool-Caller.gguf", CALL_PIECES, context_length=4096
    )
    return LoadSettings(path=path, context_length=4096, threads=1)


@pytest.fixture
def caller(server: ModelServer, caller_settings: LoadSettings) -> ModelServer:
    return serving(server, caller_settings)


def test_tool_calls_come_back_in_ollamas_shape(caller: ModelServer, client: ollama.Client) -> None:
    answer = client.chat(model="Tool-Caller.gguf", messages=HELLO, tools=[WEATHER], stream=False)
    assert answer.message.content == "Checking."
    assert answer.message.tool_calls is not None
    (call,) = answer.message.tool_calls
    assert (call.function.name, dict(call.function.arguments)) == ("get_weather", {"city": "Paris"})
    assert answer.done_reason == "stop"
    # Without tools the same text is only text.
    plain = client.chat(model="Tool-Caller.gguf", messages=HELLO, stream=False)
    assert plain.message.content == "".join(CALL_PIECES) and not plain.message.tool_calls


def test_streamed_tool_calls_come_in_one_line(caller: ModelServer, client: ollama.Client) -> None:
    parts = list(
        client.chat(model="Tool-Caller.gguf", messages=HELLO, tools=[WEATHER], stream=True)
    )
    text = "".join(part.message.content or "" for part in parts)
    assert text.strip() == "Checking." and "<tool_call>" not in text
    calls = [call for part in parts for call in part.message.tool_calls or ()]
    assert [(c.function.name, dict(c.function.arguments)) for c in calls] == [
        ("get_weather", {"city": "Paris"})
    ]
    assert parts[-1].done and not parts[-1].message.tool_calls


def test_tool_results_go_back_through_the_template(
    caller: ModelServer, client: ollama.Client
) -> None:
    call = {"function": {"name": "get_weather", "arguments": {"city": "Paris"}}}
    conversation: list[dict[str, Any]] = [
        *HELLO,
        {"role": "assistant", "content": "", "tool_calls": [call]},
        {"role": "tool", "content": "Sunny, 21 °C", "tool_name": "get_weather"},
    ]
    answer = client.chat(
        model="Tool-Caller.gguf", messages=conversation, tools=[WEATHER], stream=False
    )
    assert answer.done and answer.prompt_eval_count is not None
    # The prompt holds the result: it is longer than the question alone.
    alone = client.chat(model="Tool-Caller.gguf", messages=HELLO, tools=[WEATHER], stream=False)
    assert alone.prompt_eval_count is not None
    assert answer.prompt_eval_count > alone.prompt_eval_count + 5


# -- the whole library ------------------------------------------------------------------------


def test_the_whole_library_loads_on_request_and_keep_alive_unloads(
    tmp_path: Path, database: Database, ggufs: ScriptedGgufs
) -> None:
    library = Library(database, hf_cache_dir=tmp_path / "hub", app_folders=AppFolders())
    assert not library.import_paths([ggufs.scripted, ggufs.endless]).rejected
    server, pool = serve_pool(library, PoolLimits())
    try:
        with ollama.Client(host=f"http://127.0.0.1:{server.port}", timeout=60) as client:
            assert sorted(model.model or "" for model in client.list().models) == [
                "Scripted-Q8_0",
                "endless",
            ]
            assert not client.ps().models  # nothing is loaded until a request names it
            answer = client.chat(model="Scripted-Q8_0", messages=HELLO, stream=False)
            assert answer.message.content == SCRIPTED_REPLY
            assert [model.model for model in client.ps().models] == ["Scripted-Q8_0"]
            (pid,) = [model.pid for model in pool.snapshot()]
            unloading = client.chat(model="Scripted-Q8_0", messages=[], keep_alive=0)
            assert unloading.done_reason == "unload"
            wait_until(lambda: not client.ps().models)
            assert pid is not None
            wait_until(
                lambda: (
                    not psutil.pid_exists(pid)
                    or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
                )
            )  # the model's engine process ended
            with pytest.raises(ollama.ResponseError) as bad:
                client.chat(model="Scripted-Q8_0", messages=HELLO, keep_alive="soon")
            assert bad.value.status_code == 400
    finally:
        server.stop()

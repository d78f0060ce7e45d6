"""The OpenAI-compatible server for real: uvicorn on 127.0.0.1, the real engine child, tiny
scripted GGUFs, and the real `openai` client (raw HTTP for what a client library won't send).
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx2
import openai
import pytest

from app.chat.local import LocalChatEngine
from app.engines.protocol import Event, EventKind
from app.engines.supervisor import RequestHandle
from app.llm.messages import Generated, LoadSettings
from app.llm.sampling import Sampling
from app.llm.stats import GenerationStats
from app.serving import (
    ModelServer,
    RequestLogEntry,
    ServerStartError,
    ServingError,
    UnprotectedBindError,
)
from app.serving.engine_queue import EngineQueue
from tests.core.conftest import REPO_ROOT
from tests.support.cli_process import killed_if_left, stopped_by
from tests.support.gguf_builder import SCRIPTED_REPLY, ScriptedGgufs
from tests.support.llama_server import free_port
from tests.support.served import chat_models, openai_client, serving
from tests.support.waiting import wait_until

pytestmark = pytest.mark.slow

CHATML_PROMPT = "<|im_start|>user\nhello<|im_end|>\n<|im_start|>assistant\n"
HELLO = [{"role": "user", "content": "Hello"}]
KEY = "sk-local-test-key"


@pytest.fixture(scope="module")
def models(ggufs: ScriptedGgufs) -> dict[str, LoadSettings]:
    return chat_models(ggufs)


@pytest.fixture
def scripted(server: ModelServer, models: dict[str, LoadSettings]) -> ModelServer:
    """The module's server, answering every chat with SCRIPTED_REPLY (context 512)."""
    return serving(server, models["scripted"])


@pytest.fixture
def endless(server: ModelServer, models: dict[str, LoadSettings]) -> ModelServer:
    """The module's server with a model that repeats its reply until stopped (context 8192)."""
    return serving(server, models["endless"])


@pytest.fixture
def client(server: ModelServer) -> Iterator[openai.OpenAI]:
    with openai_client(server) as client:
        yield client


@pytest.fixture
def http(server: ModelServer) -> Iterator[httpx2.Client]:
    assert server.url is not None
    with httpx2.Client(base_url=server.url, timeout=30) as http:
        yield http


def _error(response: httpx2.Response) -> dict[str, object]:
    body = response.json()
    assert set(body) == {"error"}, body
    error: dict[str, object] = body["error"]
    assert set(error) == {"message", "type", "param", "code"}, error
    assert isinstance(error["message"], str) and error["message"]
    return error


# -- the happy paths, through the openai client ----------------------------------------------


def test_a_chat_completion_is_the_reply_with_usage(
    scripted: ModelServer, client: openai.OpenAI
) -> None:
    answer = client.chat.completions.create(
        model="Scripted-Q8_0.gguf",
        messages=HELLO,
        seed=1,
    )
    assert answer.object == "chat.completion"
    assert answer.model == "Scripted-Q8_0.gguf"
    assert answer.choices[0].message.role == "assistant"
    assert answer.choices[0].message.content == SCRIPTED_REPLY
    assert answer.choices[0].finish_reason == "stop"
    assert answer.usage is not None
    assert answer.usage.completion_tokens == len(SCRIPTED_REPLY)
    assert answer.usage.prompt_tokens > 5
    assert answer.usage.total_tokens == answer.usage.prompt_tokens + len(SCRIPTED_REPLY)


def test_a_streamed_chat_joins_to_the_reply_and_ends_with_usage(
    scripted: ModelServer, client: openai.OpenAI
) -> None:
    chunks = list(
        client.chat.completions.create(
            model="Scripted-Q8_0",  # the file name without .gguf works too
            messages=HELLO,
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == SCRIPTED_REPLY
    assert chunks[0].choices[0].delta.role == "assistant"
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices]
    assert finishes[-1] == "stop" and set(finishes[:-1]) == {None}
    last = chunks[-1]
    assert last.choices == [] and last.usage is not None
    assert last.usage.completion_tokens == len(SCRIPTED_REPLY)
    assert all(c.usage is None for c in chunks[:-1])


def test_the_stream_is_server_sent_events_ending_with_done(
    scripted: ModelServer, http: httpx2.Client
) -> None:
    body = {"messages": HELLO, "stream": True}
    with http.stream("POST", "/chat/completions", json=body) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        lines = [line for line in response.iter_lines() if line]
    assert all(line.startswith("data: ") for line in lines), lines
    assert lines[-1] == "data: [DONE]"
    chunks = [json.loads(line.removeprefix("data: ")) for line in lines[:-1]]
    assert {chunk["object"] for chunk in chunks} == {"chat.completion.chunk"}
    assert "usage" not in chunks[-1]  # only when stream_options.include_usage asks


def test_completions_continue_a_raw_prompt(scripted: ModelServer, client: openai.OpenAI) -> None:
    answer = client.completions.create(model="Scripted-Q8_0.gguf", prompt=CHATML_PROMPT)
    assert answer.choices[0].text == SCRIPTED_REPLY
    assert answer.choices[0].finish_reason == "stop"
    assert answer.usage is not None and answer.usage.completion_tokens == len(SCRIPTED_REPLY)

    short = client.completions.create(
        model="Scripted-Q8_0.gguf", prompt=CHATML_PROMPT, max_tokens=4
    )
    assert short.choices[0].text == SCRIPTED_REPLY[:4]
    assert short.choices[0].finish_reason == "length"

    stream = client.completions.create(
        model="Scripted-Q8_0.gguf",
        prompt=CHATML_PROMPT,
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    assert "".join(c.choices[0].text for c in chunks if c.choices) == SCRIPTED_REPLY
    assert chunks[-1].usage is not None
    assert chunks[-1].usage.completion_tokens == len(SCRIPTED_REPLY)


def test_stop_strings_and_max_tokens_map_to_the_engine(
    scripted: ModelServer, client: openai.OpenAI
) -> None:
    stopped = client.chat.completions.create(
        model="Scripted-Q8_0.gguf",
        messages=HELLO,
        stop=" fox",
    )
    assert stopped.choices[0].message.content == "Quick"
    assert stopped.choices[0].finish_reason == "stop"
    capped = client.chat.completions.create(
        model="Scripted-Q8_0.gguf",
        messages=HELLO,
        max_tokens=3,
        extra_body={"top_k": 5, "min_p": 0.1, "repeat_penalty": 1.05},
    )
    assert capped.choices[0].message.content == SCRIPTED_REPLY[:3]
    assert capped.choices[0].finish_reason == "length"


def test_the_model_list_names_the_loaded_file(scripted: ModelServer, client: openai.OpenAI) -> None:
    models = client.models.list().data
    assert [model.id for model in models] == ["Scripted-Q8_0.gguf"]
    assert models[0].owned_by == "modeldeck"


# -- what is refused, and how (raw HTTP) ------------------------------------------------------


def test_malformed_json_is_400(scripted: ModelServer, http: httpx2.Client) -> None:
    response = http.post(
        "/chat/completions", content=b'{"messages": [', headers={"content-type": "application/json"}
    )
    assert response.status_code == 400
    error = _error(response)
    assert error["type"] == "invalid_request_error"
    assert "parse the JSON" in str(error["message"])


def test_missing_messages_is_400_naming_the_parameter(
    scripted: ModelServer, http: httpx2.Client
) -> None:
    response = http.post("/chat/completions", json={"model": "Scripted-Q8_0.gguf"})
    assert response.status_code == 400
    error = _error(response)
    assert error["param"] == "messages"
    assert error["message"] == "Missing required parameter: 'messages'."


def test_an_unknown_model_is_404(scripted: ModelServer, http: httpx2.Client) -> None:
    response = http.post("/chat/completions", json={"model": "gpt-4o", "messages": HELLO})
    assert response.status_code == 404
    error = _error(response)
    assert error["code"] == "model_not_found" and error["param"] == "model"
    assert "Scripted-Q8_0.gguf" in str(error["message"])


def test_a_negative_temperature_is_400(scripted: ModelServer, http: httpx2.Client) -> None:
    response = http.post("/chat/completions", json={"messages": HELLO, "temperature": -0.5})
    assert response.status_code == 400
    assert _error(response)["param"] == "temperature"


def test_a_huge_max_tokens_is_clamped_to_the_context(
    scripted: ModelServer, http: httpx2.Client
) -> None:
    response = http.post("/chat/completions", json={"messages": HELLO, "max_tokens": 10**9})
    assert response.status_code == 200, response.text
    assert response.json()["choices"][0]["message"]["content"] == SCRIPTED_REPLY


def test_a_prompt_longer_than_the_context_is_400_context_length_exceeded(
    scripted: ModelServer, http: httpx2.Client
) -> None:
    long = [{"role": "user", "content": "word " * 800}]  # ~1,600 tokens; the context is 512
    for stream in (False, True):
        response = http.post("/chat/completions", json={"messages": long, "stream": stream})
        assert response.status_code == 400
        error = _error(response)
        assert error["code"] == "context_length_exceeded"
        assert "512" in str(error["message"])


def test_an_image_for_a_text_model_is_400(scripted: ModelServer, http: httpx2.Client) -> None:
    # (tests/core/test_serving_vision.py: a model that sees)
    message = {"role": "user", "content": [{"type": "image_url", "image_url": {"url": "x"}}]}
    response = http.post("/chat/completions", json={"messages": [message]})
    assert response.status_code == 400
    assert "image 1 is not a base64 data: URI" in str(_error(response)["message"])
    png = "data:image/png;base64,iVBORw0KGgo="
    message = {"role": "user", "content": [{"type": "image_url", "image_url": {"url": png}}]}
    response = http.post("/chat/completions", json={"messages": [message]})
    assert response.status_code == 400
    assert "can't see images: it has no vision projector" in str(_error(response)["message"])
    audio = {"role": "user", "content": [{"type": "input_audio", "input_audio": {}}]}
    response = http.post("/chat/completions", json={"messages": [audio]})
    assert response.status_code == 400
    assert "text only" in str(_error(response)["message"])


def test_an_api_key_is_required_when_set(engine: LocalChatEngine, scripted: ModelServer) -> None:
    with ModelServer(engine) as keyed:
        url = keyed.start(port=0, api_key=KEY)
        with openai.OpenAI(base_url=url, api_key=KEY, max_retries=0) as right:
            answer = right.chat.completions.create(model="Scripted-Q8_0.gguf", messages=HELLO)
            assert answer.choices[0].message.content == SCRIPTED_REPLY
        with (
            openai.OpenAI(base_url=url, api_key="sk-wrong", max_retries=0) as wrong,
            pytest.raises(openai.AuthenticationError) as refused,
        ):
            wrong.models.list()
        assert refused.value.code == "invalid_api_key"
        with httpx2.Client(base_url=url) as http:
            missing = http.post("/chat/completions", json={"messages": HELLO})
        assert missing.status_code == 401
        error = _error(missing)
        assert error["type"] == "invalid_request_error" and error["code"] == "invalid_api_key"
        assert missing.headers["www-authenticate"] == "Bearer"


def test_requests_while_a_model_loads_are_503_with_retry_after(
    engine: LocalChatEngine,
    endless: ModelServer,
    http: httpx2.Client,
    models: dict[str, LoadSettings],
) -> None:
    # The Chat page is generating; a load through the server waits behind it in the engine.
    busy = engine.generate_from_prompt(CHATML_PROMPT, Sampling(max_tokens=8000, seed=1))
    assert busy.next_event(timeout=30).kind is EventKind.CHUNK
    loader = threading.Thread(target=endless.load, args=(models["scripted"],))
    loader.start()
    try:
        wait_until(lambda: endless.loading)
        for response in (
            http.post("/chat/completions", json={"messages": HELLO}),
            http.post("/completions", json={"prompt": "Hi"}),
            http.get("/models"),
        ):
            assert response.status_code == 503
            assert int(response.headers["retry-after"]) > 0
            assert _error(response)["code"] == "model_loading"
    finally:
        busy.cancel()
        loader.join(30)
    assert not endless.loading
    answer = http.post("/chat/completions", json={"messages": HELLO})
    assert answer.json()["choices"][0]["message"]["content"] == SCRIPTED_REPLY


def test_without_a_key_the_host_header_must_name_this_machine(
    scripted: ModelServer, http: httpx2.Client
) -> None:
    # A web page that rebinds its own name to 127.0.0.1 still sends its name as Host.
    refused = http.get("/models", headers={"host": "attacker.example:8080"})
    assert refused.status_code == 403
    assert _error(refused)["code"] == "host_not_allowed"
    for host in ("localhost:1234", "127.0.0.1", "[::1]:8080"):
        assert http.get("/models", headers={"host": host}).status_code == 200, host


def test_with_no_model_loaded_the_list_is_empty_and_chats_are_503() -> None:
    engine = LocalChatEngine()  # its child never starts: nothing asks it anything
    with ModelServer(engine) as server:
        url = server.start(port=0)
        with httpx2.Client(base_url=url) as http:
            assert http.get("/models").json() == {"object": "list", "data": []}
            response = http.post("/chat/completions", json={"messages": HELLO})
        assert response.status_code == 503
        assert _error(response)["code"] == "model_not_loaded"
    assert engine.pid is None


# -- clients that leave, and many clients at once ---------------------------------------------


def _entries_for(server: ModelServer, since: float) -> list[RequestLogEntry]:
    return [entry for entry in server.log.entries() if entry.time >= since]


def test_a_client_leaving_mid_stream_cancels_its_generation(
    endless: ModelServer, http: httpx2.Client
) -> None:
    since = time.time()
    body = {"messages": HELLO, "stream": True, "max_tokens": 8000}
    with http.stream("POST", "/chat/completions", json=body) as response:
        assert response.status_code == 200
        lines = response.iter_lines()
        received = [next(lines) for _ in range(6)]
    assert any("Quick" in line or "fox" in line for line in received), received

    # The engine said CANCELLED (it did not run on to max_tokens), and is free at once.
    wait_until(lambda: any(e.outcome for e in _entries_for(endless, since)))
    (entry,) = _entries_for(endless, since)
    assert (entry.status, entry.outcome) == (200, "cancelled")
    assert not endless.busy
    started = time.perf_counter()
    answer = http.post("/chat/completions", json={"messages": HELLO, "max_tokens": 5})
    assert answer.json()["choices"][0]["message"]["content"] == SCRIPTED_REPLY[:5]
    assert time.perf_counter() - started < 5


def test_a_client_that_times_out_waiting_cancels_its_generation(
    endless: ModelServer, http: httpx2.Client
) -> None:
    since = time.time()
    body = {"messages": HELLO, "max_tokens": 8000}  # not streamed: nothing comes until the end
    with pytest.raises(httpx2.ReadTimeout):
        http.post("/chat/completions", json=body, timeout=0.3)
    wait_until(lambda: any(e.outcome for e in _entries_for(endless, since)))
    (entry,) = _entries_for(endless, since)
    assert entry.outcome == "cancelled"
    assert entry.status == 499  # "client closed request", for the log
    answer = http.post("/chat/completions", json={"messages": HELLO, "max_tokens": 5})
    assert answer.json()["choices"][0]["message"]["content"] == SCRIPTED_REPLY[:5]


def test_twenty_concurrent_clients_are_all_answered(scripted: ModelServer) -> None:
    url = scripted.url
    assert url is not None
    peak = 0

    async def ask(client: httpx2.AsyncClient, n: int) -> str:
        body = {"messages": [{"role": "user", "content": f"Question {n}"}], "seed": n}
        response = await client.post("/chat/completions", json=body)
        assert response.status_code == 200, response.text
        content: str = response.json()["choices"][0]["message"]["content"]
        return content

    async def watch_queue(done: asyncio.Event) -> None:
        nonlocal peak
        while not done.is_set():
            peak = max(peak, scripted.queue_length)
            await asyncio.sleep(0.001)

    async def main() -> list[str]:
        limits = httpx2.Limits(max_connections=20)
        async with httpx2.AsyncClient(base_url=url, timeout=60, limits=limits) as client:
            done = asyncio.Event()
            watcher = asyncio.create_task(watch_queue(done))
            answers = await asyncio.gather(*(ask(client, n) for n in range(20)))
            done.set()
            await watcher
            return list(answers)

    assert asyncio.run(main()) == [SCRIPTED_REPLY] * 20
    assert peak >= 1  # requests waited their turn, and the queue showed it
    assert scripted.queue_length == 0 and not scripted.busy


def test_the_engine_queue_admits_in_arrival_order_and_forgets_who_left() -> None:
    submitted: list[int] = []
    handles: dict[int, RequestHandle] = {}

    def submitter(n: int) -> Callable[[], RequestHandle]:
        def submit() -> RequestHandle:
            submitted.append(n)
            handles[n] = RequestHandle(n, lambda handle: None)
            return handles[n]

        return submit

    async def main() -> None:
        queue = EngineQueue()
        first = await queue.start(submitter(0))
        waiting = [asyncio.create_task(queue.start(submitter(n))) for n in range(1, 5)]
        await asyncio.sleep(0.01)
        assert queue.waiting == 4 and queue.busy
        waiting[1].cancel()  # request 2 leaves before its turn
        await asyncio.sleep(0.01)
        assert queue.waiting == 3
        handles[0].put(Event(0, EventKind.RESULT, Generated(GenerationStats())))
        assert (await first.next_event()).kind is EventKind.RESULT
        for n, task in ((1, waiting[0]), (3, waiting[2]), (4, waiting[3])):
            generation = await task
            handles[n].put(Event(n, EventKind.RESULT, Generated(GenerationStats())))
            await generation.next_event()
        assert queue.waiting == 0
        await asyncio.sleep(0.01)
        assert not queue.busy

    asyncio.run(main())
    assert submitted == [0, 1, 3, 4]


# -- starting and stopping --------------------------------------------------------------------


def test_serving_beyond_loopback_needs_an_api_key(engine: LocalChatEngine) -> None:
    server = ModelServer(engine)
    with pytest.raises(UnprotectedBindError) as refused:
        server.start("0.0.0.0", 0)
    assert "API key" in str(refused.value)
    assert isinstance(refused.value, PermissionError)
    assert not server.running
    with server:
        url = server.start("0.0.0.0", 0, api_key=KEY)
        assert url.startswith("http://0.0.0.0:") and server.requires_key
    assert not server.running and server.url is None


def test_stopping_the_server_ends_a_running_stream(
    engine: LocalChatEngine, endless: ModelServer
) -> None:
    other = ModelServer(engine)
    url = other.start(port=0)
    body = {"messages": HELLO, "stream": True, "max_tokens": 8000}
    with (
        httpx2.Client(base_url=url, timeout=30) as http,
        http.stream("POST", "/chat/completions", json=body) as response,
    ):
        lines = response.iter_lines()
        assert next(lines).startswith("data: ")
        stopper = threading.Thread(target=other.stop)
        started = time.perf_counter()
        stopper.start()
        rest = [line for line in lines if line]
    stopper.join(30)
    assert time.perf_counter() - started < 10
    assert not other.running
    last = json.loads(rest[-1].removeprefix("data: "))
    assert last["error"]["code"] == "server_stopping"
    assert not endless.busy  # the module's server on the same engine is untouched


def test_a_taken_port_is_a_clear_error(engine: LocalChatEngine, server: ModelServer) -> None:
    with pytest.raises(ServerStartError, match="already in use"):
        ModelServer(engine).start(port=server.port)
    with pytest.raises(ServingError, match="already running"):
        server.start(port=0)


def test_the_request_log_tells_its_listeners(scripted: ModelServer, http: httpx2.Client) -> None:
    heard: list[RequestLogEntry] = []
    remove = scripted.log.add_listener(heard.append)
    try:
        http.post("/chat/completions", json={"messages": HELLO})
        http.post("/chat/completions", json={"model": "nope", "messages": HELLO})
        wait_until(lambda: len(heard) == 2)  # an entry is made once its answer is sent
    finally:
        remove()
    ok, missing = heard
    assert (ok.method, ok.path, ok.status, ok.tokens, ok.outcome) == (
        "POST", "/v1/chat/completions", 200, len(SCRIPTED_REPLY), "stop",
    )  # fmt: skip
    assert ok.client.startswith("127.0.0.1:") and ok.duration_s > 0
    assert (missing.status, missing.tokens) == (404, None)


# -- the command line -------------------------------------------------------------------------


def _serve(
    data_dir: Path, hf_home: Path, *args: str, env: dict[str, str] | None = None
) -> subprocess.Popen[str]:
    child_env = {
        key: value
        for key, value in os.environ.items()
        if key not in ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN", "HF_ENDPOINT", "MODELDECK_API_KEY")
    }
    child_env |= {
        "MODELDECK_DATA_DIR": str(data_dir),
        "HF_HOME": str(hf_home),
        "HF_HUB_DISABLE_TELEMETRY": "1",
        "PYTHON_KEYRING_BACKEND": "keyring.backends.fail.Keyring",
        "PYTHONPATH": str(REPO_ROOT),
        "PYTHONUNBUFFERED": "1",
        **(env or {}),
    }
    return subprocess.Popen(
        [sys.executable, "-m", "ui.launcher", "serve", *args],
        cwd=REPO_ROOT,
        env=child_env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_modeldeck_serve_answers_until_ctrl_c(
    data_dir: Path, hf_home: Path, models: dict[str, LoadSettings]
) -> None:
    port = free_port()
    model = models["scripted"].path
    process = _serve(
        data_dir, hf_home, str(model), "--port", str(port), "--ctx", "512",
        env={"MODELDECK_API_KEY": KEY},
    )  # fmt: skip
    with killed_if_left(process):
        assert process.stdout is not None
        printed = [process.stdout.readline() for _ in range(5)]
        assert printed[0].startswith(f"Serving Scripted-Q8_0.gguf at http://127.0.0.1:{port}/v1")
        assert "API key required" in printed[0]
        root = f"http://127.0.0.1:{port}"  # each API's base URL, for its own clients
        assert [line.split() for line in printed[1:4]] == [
            ["OpenAI", f"{root}/v1"],
            ["Ollama", root],
            ["Anthropic", root],
        ]
        assert printed[4].strip() == "Press Ctrl+C to stop."
        url = f"http://127.0.0.1:{port}/v1"
        with openai.OpenAI(base_url=url, api_key=KEY, max_retries=0) as client:
            answer = client.chat.completions.create(model="Scripted-Q8_0", messages=HELLO)
        assert answer.choices[0].message.content == SCRIPTED_REPLY
        stderr = stopped_by(process, signal.SIGINT)
    assert process.returncode == 0, stderr
    assert "Traceback" not in stderr


def test_modeldeck_serve_stops_on_sigterm(
    data_dir: Path, hf_home: Path, models: dict[str, LoadSettings]
) -> None:
    process = _serve(data_dir, hf_home, str(models["scripted"].path), "--port", "0")
    with killed_if_left(process):
        assert process.stdout is not None
        assert process.stdout.readline().startswith("Serving Scripted-Q8_0.gguf at http://")
        stderr = stopped_by(process, signal.SIGTERM)
    assert process.returncode == 0, stderr


def test_modeldeck_serve_refuses_an_open_address_without_a_key(
    data_dir: Path, hf_home: Path, models: dict[str, LoadSettings]
) -> None:
    process = _serve(data_dir, hf_home, str(models["scripted"].path), "--host", "0.0.0.0")
    _, stderr = process.communicate(timeout=30)
    assert process.returncode == 2
    assert "without an API key" in stderr and "Traceback" not in stderr

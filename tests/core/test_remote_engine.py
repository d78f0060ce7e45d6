"""RemoteEngine against real servers on 127.0.0.1: llama-cpp-python's OpenAI-compatible server
serving the scripted GGUF, and small stdlib servers that misbehave on purpose (slow, silent,
garbage, errors)."""

from __future__ import annotations

import contextlib
import json
import queue
import stat
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from app.chat.conversations import ConversationStore, MessageState
from app.chat.remote import RemoteEndpoint, RemoteEngine
from app.chat.remote_settings import KEYRING_SERVICE, EndpointKeyStore
from app.chat.session import ChatSession, ReplyState
from app.engines.errors import EngineError, EngineErrorKind
from app.engines.protocol import Event, EventKind, Failure, TextChunk
from app.errors import SettingsError
from app.hub.credentials import TokenSource
from app.llm.messages import Generated
from app.llm.sampling import Sampling
from app.store import Database
from tests.core.conftest import MemoryKeyring
from tests.support.gguf_builder import SCRIPTED_REPLY, ScriptedGgufs
from tests.support.llama_server import LlamaServer, free_port
from tests.support.waiting import wait_until

SERVER_KEY = "sk-server-key-1234567890"
WRONG_KEY = "sk-WRONG-key-0987654321"
HELLO = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hello?"}]


# --- the real llama.cpp server --------------------------------------------------------------


@pytest.fixture(scope="session")
def scripted_model(ggufs: ScriptedGgufs) -> Path:
    return ggufs.scripted


@pytest.fixture(scope="session")
def llama_server(scripted_model: Path) -> Iterator[LlamaServer]:
    with LlamaServer(scripted_model) as server:
        yield server


@pytest.fixture(scope="session")
def keyed_llama_server(scripted_model: Path) -> Iterator[LlamaServer]:
    with LlamaServer(scripted_model, api_key=SERVER_KEY) as server:
        yield server


# --- a stdlib server that answers as each test scripts it ------------------------------------


Respond = Callable[["StubHandler"], None]
Serve = Callable[[Respond], "StubServer"]


class StubServer(ThreadingHTTPServer):
    """An HTTP server on 127.0.0.1 whose every request goes to `respond(handler)`.

    Handler threads are joined on close (`released` tells long-running ones to stop), so a test
    leaves no thread or socket behind. `requests` holds (method, path, headers, JSON body).
    """

    daemon_threads = False
    block_on_close = True

    def __init__(self, respond: Respond) -> None:
        super().__init__(("127.0.0.1", 0), StubHandler)
        self.respond = respond
        self.released = threading.Event()
        self.requests: list[tuple[str, str, dict[str, str], Any]] = []
        self.disconnected_at: float | None = None
        self._thread = threading.Thread(target=self.serve_forever, args=(0.01,), daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/v1"

    def __enter__(self) -> StubServer:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.released.set()
        self.shutdown()
        self.server_close()
        self._thread.join()

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # a client that went away mid-answer is what several tests do on purpose


class StubHandler(BaseHTTPRequestHandler):
    server: StubServer

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        self._record(None)
        self.server.respond(self)

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length", 0))
        raw = self.rfile.read(length)
        self._record(json.loads(raw) if raw else None)
        self.server.respond(self)

    @property
    def body(self) -> Any:
        return self.server.requests[-1][3]

    def _record(self, body: Any) -> None:
        headers = {name.lower(): value for name, value in self.headers.items()}
        self.server.requests.append((self.command, self.path, headers, body))

    # What a response can be.

    def send_json(self, status: int, document: Any) -> None:
        data = json.dumps(document).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def send_raw(self, status: int, content_type: str, data: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.end_headers()
        self.wfile.write(data)

    def start_events(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.end_headers()

    def event(self, data: Any) -> None:
        text = data if isinstance(data, str) else json.dumps(data)
        self.wfile.write(f"data: {text}\n\n".encode())
        self.wfile.flush()

    def wait_for_disconnect(self) -> None:
        """Block until the client closes the connection (or the test ends); note when."""
        self.connection.settimeout(0.01)
        while not self.server.released.is_set():
            try:
                if not self.connection.recv(1024):
                    self.server.disconnected_at = time.monotonic()
                    return
            except TimeoutError:
                continue
            except OSError:
                self.server.disconnected_at = time.monotonic()
                return


def chunk(content: str | None = None, *, finish: str | None = None) -> dict[str, Any]:
    delta = {"content": content} if content is not None else {}
    return {
        "id": "chatcmpl-1",
        "object": "chat.completion.chunk",
        "model": "stub",
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
    }


def stream_reply(pieces: list[str], *, usage: dict[str, int] | None = None) -> Respond:
    def respond(handler: StubHandler) -> None:
        handler.start_events()
        for piece in pieces:
            handler.event(chunk(piece))
        handler.event(chunk(finish="length" if usage else "stop"))
        if usage is not None:
            handler.event({"id": "chatcmpl-1", "choices": [], "usage": usage})
        handler.event("[DONE]")

    return respond


def endless(handler: StubHandler) -> None:
    """A slow model that never stops: a chunk every 100 ms until the client goes away."""
    handler.start_events()
    n = 0
    while not handler.server.released.is_set():
        try:
            handler.event(chunk(f"t{n} "))
        except OSError:
            handler.server.disconnected_at = time.monotonic()
            return
        n += 1
        handler.server.released.wait(0.1)


def silent(handler: StubHandler) -> None:
    """A server that takes the request and never answers (until the test ends)."""
    handler.server.released.wait(10)


def first_chunk_then_silence(handler: StubHandler) -> None:
    handler.start_events()
    handler.event(chunk("Once "))
    handler.wait_for_disconnect()


@pytest.fixture
def serve() -> Iterator[Serve]:
    """Start a stub server answering with a function; it is stopped when the test ends."""
    with contextlib.ExitStack() as stack:

        def start(respond: Respond) -> StubServer:
            return stack.enter_context(StubServer(respond))

        yield start


# --- helpers -----------------------------------------------------------------------------


def engine_for(
    url: str, *, model: str = "scripted", key: str | None = None, **kw: Any
) -> RemoteEngine:
    return RemoteEngine(RemoteEndpoint(url, model, api_key=key), **kw)


def collect(engine: RemoteEngine, sampling: Sampling | None = None) -> tuple[list[Event], Event]:
    handle = engine.generate(HELLO, sampling or Sampling())
    events = list(handle.events(timeout=30))
    return events[:-1], events[-1]


def text_of(events: list[Event]) -> str:
    return "".join(str(event.text) for event in events if event.kind is EventKind.CHUNK)


def failure(engine: RemoteEngine) -> tuple[str, str]:
    """The kind and message of a reply that must fail."""
    _, outcome = collect(engine)
    assert outcome.kind is EventKind.ERROR, outcome
    return str(outcome.failure.kind), str(outcome.failure.message)


# --- replies from the real llama.cpp server ------------------------------------------------


def test_the_llama_server_streams_the_scripted_reply(llama_server: LlamaServer) -> None:
    with engine_for(llama_server.url) as engine:
        assert engine.context_length is None
        assert engine.prompt_tokens(HELLO) is None

        streamed, outcome = collect(engine, Sampling(seed=7, max_tokens=64))

    assert outcome.kind is EventKind.RESULT, outcome
    assert text_of(streamed) == SCRIPTED_REPLY
    assert all(event.kind is EventKind.CHUNK for event in streamed)
    stats = outcome.expect(Generated).stats
    # llama-cpp-python's server sends no usage: one chunk per token, counted.
    assert outcome.expect(Generated).estimated is True
    assert stats.generated_tokens == len(SCRIPTED_REPLY)
    assert stats.prompt_tokens == 0
    assert stats.finish_reason == "stop"
    assert stats.time_to_first_token_s is not None and 0 < stats.time_to_first_token_s < 30


def test_a_chat_session_runs_on_the_remote_engine(
    llama_server: LlamaServer, tmp_path: Path
) -> None:
    database = Database(tmp_path / "app.sqlite3")
    try:
        store = ConversationStore(database)
        conversation = store.create("Remote", system_prompt="Be brief.")
        with engine_for(llama_server.url) as engine:
            session = ChatSession(store, conversation.id, engine)
            snapshot = session.send("Hello?", Sampling()).wait(30)
        assert snapshot.state is ReplyState.COMPLETE
        assert snapshot.text == SCRIPTED_REPLY
        assistant = store.messages(conversation.id)[-1]
        assert (assistant.content, assistant.state) == (SCRIPTED_REPLY, MessageState.COMPLETE)
    finally:
        database.close()


def test_list_models_and_check_name_what_the_server_has(
    llama_server: LlamaServer, scripted_model: Path
) -> None:
    served = str(scripted_model)  # llama-cpp-python names the model after its path
    with engine_for(llama_server.url, model=served) as engine:
        assert engine.list_models() == [served]
        assert engine.check() == f"{llama_server.url} answers and serves {served}."
    with engine_for(llama_server.url, model="gpt-4o") as engine:
        assert engine.check() == (
            f"{llama_server.url} answers, but does not list gpt-4o; it lists {served}."
        )


def test_the_right_key_is_accepted(keyed_llama_server: LlamaServer) -> None:
    with engine_for(keyed_llama_server.url, key=SERVER_KEY) as engine:
        streamed, outcome = collect(engine)
        assert len(engine.list_models()) == 1
    assert outcome.kind is EventKind.RESULT
    assert text_of(streamed) == SCRIPTED_REPLY


def test_a_wrong_key_is_refused_and_never_shown(keyed_llama_server: LlamaServer) -> None:
    with engine_for(keyed_llama_server.url, key=WRONG_KEY) as engine:
        kind, message = failure(engine)
        with pytest.raises(EngineError) as listing:
            engine.list_models()
    assert kind == "auth"
    assert message.startswith("The server refused the API key (HTTP 401)")
    assert listing.value.kind == "auth"
    for text in (message, str(listing.value), repr(engine.endpoint), str(engine.endpoint)):
        assert WRONG_KEY not in text
        assert SERVER_KEY not in text


def test_a_missing_key_says_one_is_needed(keyed_llama_server: LlamaServer) -> None:
    with engine_for(keyed_llama_server.url) as engine:
        kind, message = failure(engine)
    assert kind == "auth"
    assert (
        message
        == f"{keyed_llama_server.url} wants an API key (HTTP 401) — add one to the endpoint."
    )


def test_a_url_without_v1_is_not_found_and_says_what_to_check(llama_server: LlamaServer) -> None:
    root = llama_server.url.removesuffix("/v1")
    with engine_for(root, model="tiny") as engine:
        kind, message = failure(engine)
    assert kind == "not-found"
    assert root in message and "'tiny'" in message and "/v1" in message


# --- failures, from servers that misbehave on purpose ----------------------------------------


def test_an_unknown_model_is_not_found_with_the_servers_words(serve: Serve) -> None:
    def respond(handler: StubHandler) -> None:
        model = handler.body["model"]
        error = {"message": f"The model `{model}` does not exist.", "type": "NotFoundError"}
        handler.send_json(404, {"error": error})

    server = serve(respond)
    with engine_for(server.url, model="nope") as engine:
        kind, message = failure(engine)
    assert kind == "not-found"
    assert message.startswith(f"{server.url} has no model 'nope', or the URL is wrong (HTTP 404: ")
    assert "The model `nope` does not exist." in message


def test_a_closed_port_is_unreachable() -> None:
    port = free_port()  # nothing listens there
    with engine_for(f"http://127.0.0.1:{port}/v1") as engine:
        kind, message = failure(engine)
        with pytest.raises(EngineError) as listing:
            engine.list_models()
    assert kind == "unreachable"
    assert message == f"Cannot reach http://127.0.0.1:{port}/v1 — is the server running?"
    assert (listing.value.kind, listing.value.message) == (kind, message)


def test_a_server_that_never_answers_times_out(serve: Serve) -> None:
    server = serve(silent)
    with engine_for(server.url, timeout=0.5) as engine:
        started = time.monotonic()
        kind, message = failure(engine)
        waited = time.monotonic() - started
    assert kind == "timeout"
    assert message.startswith(f"{server.url} did not answer within 0.5 s")
    assert 0.4 < waited < 5


@pytest.mark.parametrize(
    ("content_type", "body"),
    [
        ("text/event-stream", b"data: {not json\n\n"),
        ("text/event-stream", b'data: {"foo": 1}\n\n'),
        ("text/event-stream", b"data: [1, 2]\n\n"),
        ("text/html", b"<html><body>Welcome to nginx!</body></html>"),
        ("application/json", b'{"choices": [{"message": {"content": "not streamed"}}]}'),
    ],
    ids=["broken-json", "not-a-chunk", "a-list", "html", "not-streamed"],
)
def test_an_answer_that_is_not_openai_shaped_is_a_bad_response(
    serve: Serve, content_type: str, body: bytes
) -> None:
    server = serve(lambda handler: handler.send_raw(200, content_type, body))
    with engine_for(server.url) as engine:
        kind, message = failure(engine)
    assert kind == "bad-response"
    assert message.startswith(f"{server.url} did not answer like an OpenAI-compatible server")


def test_a_model_list_that_is_not_one_is_a_bad_response(serve: Serve) -> None:
    server = serve(lambda handler: handler.send_raw(200, "text/html", b"<html>hello</html>"))
    with engine_for(server.url) as engine, pytest.raises(EngineError) as listing:
        engine.list_models()
    assert listing.value.kind == "bad-response"


@pytest.mark.parametrize(
    ("document", "shown"),
    [
        (
            {"error": {"message": "CUDA error: out of memory", "code": 500}},
            "CUDA error: out of memory",
        ),
        ({"detail": "Model is still loading"}, "Model is still loading"),
    ],
)
def test_a_server_error_carries_the_servers_message(
    serve: Serve, document: dict[str, Any], shown: str
) -> None:
    server = serve(lambda handler: handler.send_json(503, document))
    with engine_for(server.url) as engine:
        kind, message = failure(engine)
    assert kind == "server-error"
    assert message == f"The server at {server.url} failed (HTTP 503): {shown}"


def test_an_error_inside_the_stream_is_a_server_error(serve: Serve) -> None:
    def respond(handler: StubHandler) -> None:
        handler.start_events()
        handler.event(chunk("Par"))
        handler.event({"error": {"message": "the KV cache is full"}})

    server = serve(respond)
    with engine_for(server.url) as engine:
        streamed, outcome = collect(engine)
    assert text_of(streamed) == "Par"  # what came before is kept
    assert outcome.kind is EventKind.ERROR
    assert outcome.failure.kind == "server-error"
    assert "the KV cache is full" in str(outcome.failure.message)


def test_a_connection_broken_mid_reply_keeps_the_text(serve: Serve) -> None:
    def respond(handler: StubHandler) -> None:
        handler.protocol_version = "HTTP/1.1"  # chunked: an early close is visibly broken
        handler.send_response(200)
        handler.send_header("Content-Type", "text/event-stream")
        handler.send_header("Transfer-Encoding", "chunked")
        handler.end_headers()
        data = f"data: {json.dumps(chunk('Half'))}\n\n".encode()
        handler.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
        handler.wfile.flush()
        handler.close_connection = True

    server = serve(respond)
    with engine_for(server.url) as engine:
        streamed, outcome = collect(engine)
    assert text_of(streamed) == "Half"
    assert outcome.payload == Failure(
        EngineErrorKind.DISCONNECTED, f"The connection to {server.url} broke mid-reply."
    )


def test_a_server_that_stalls_mid_reply_times_out_and_keeps_the_text(serve: Serve) -> None:
    server = serve(first_chunk_then_silence)
    with engine_for(server.url, timeout=0.3) as engine:
        streamed, outcome = collect(engine)
    assert text_of(streamed) == "Once "
    assert outcome.failure.kind == "timeout"
    assert str(outcome.failure.message).startswith(
        f"{server.url} stopped sending the reply for 0.3 s"
    )


# --- what is sent, and what comes back --------------------------------------------------------


def test_the_sampling_settings_and_key_reach_the_server(serve: Serve) -> None:
    server = serve(stream_reply(["Hi"]))
    sampling = Sampling(
        temperature=0.3,
        top_p=0.9,
        top_k=12,
        min_p=0.1,
        repeat_penalty=1.2,
        max_tokens=77,
        seed=42,
        stop=("###",),
    )
    with engine_for(server.url, model="m1", key=SERVER_KEY) as engine:
        collect(engine, sampling)
    [(method, path, headers, body)] = server.requests
    assert (method, path) == ("POST", "/v1/chat/completions")
    assert headers["authorization"] == f"Bearer {SERVER_KEY}"
    assert body["model"] == "m1"
    assert body["messages"] == HELLO
    assert body["stream"] is True
    assert body["stream_options"] == {"include_usage": True}
    expected = {
        "temperature": 0.3,
        "top_p": 0.9,
        "top_k": 12,
        "min_p": 0.1,
        "repeat_penalty": 1.2,
        "max_tokens": 77,
        "seed": 42,
        "stop": ["###"],
    }
    assert {name: body[name] for name in expected} == expected


def test_a_random_seed_and_no_stop_strings_are_left_to_the_server(serve: Serve) -> None:
    server = serve(stream_reply(["Hi"]))
    with engine_for(server.url) as engine:
        collect(engine, Sampling())
    body = server.requests[0][3]
    assert "seed" not in body and "stop" not in body


def test_the_servers_usage_gives_the_token_counts(serve: Serve) -> None:
    usage = {"prompt_tokens": 31, "completion_tokens": 3, "total_tokens": 34}
    server = serve(stream_reply(["One", " two", " three"], usage=usage))
    with engine_for(server.url, model="m1") as engine:
        streamed, outcome = collect(engine)
    assert text_of(streamed) == "One two three"
    assert outcome.kind is EventKind.RESULT
    assert outcome.expect(Generated).estimated is False
    stats = outcome.expect(Generated).stats
    assert stats.model == "m1"
    assert (stats.prompt_tokens, stats.generated_tokens, stats.finish_reason) == (31, 3, "length")


def test_a_server_that_rejects_extra_fields_is_asked_again_without_them(serve: Serve) -> None:
    def respond(handler: StubHandler) -> None:
        if "top_k" in handler.body or "stream_options" in handler.body:
            message = "Unrecognized request argument supplied: top_k"
            handler.send_json(400, {"error": {"message": message, "type": "invalid_request"}})
        else:
            stream_reply(["Fine"])(handler)

    server = serve(respond)
    with engine_for(server.url) as engine:
        first, outcome = collect(engine)
        second, _ = collect(engine)
        assert not engine.sends_extensions
    assert outcome.kind is EventKind.RESULT
    assert text_of(first) == text_of(second) == "Fine"
    assert len(server.requests) == 3  # refused once, then plain for good


def test_a_refused_request_says_why(serve: Serve) -> None:
    message = "the request exceeds the available context size (4096 tokens)"
    server = serve(lambda handler: handler.send_json(400, {"error": {"message": message}}))
    with engine_for(server.url) as engine:
        kind, text = failure(engine)
    assert kind == "rejected"
    assert text == f"The server at {server.url} refused the request (HTTP 400): {message}"
    assert len(server.requests) == 1  # nothing in it asks for a retry


def test_fast_chunks_are_coalesced_and_the_first_goes_at_once(serve: Serve) -> None:
    pieces = [f"w{n} " for n in range(200)]
    server = serve(stream_reply(pieces))
    with engine_for(server.url) as engine:
        streamed, outcome = collect(engine)
    assert outcome.kind is EventKind.RESULT
    assert text_of(streamed) == "".join(pieces)
    assert streamed[0].text == pieces[0]
    assert len(streamed) < len(pieces) / 4
    assert outcome.expect(Generated).stats.generated_tokens == len(pieces)


# --- cancelling -------------------------------------------------------------------------------


def test_cancel_mid_stream_ends_the_reply(serve: Serve) -> None:
    server = serve(endless)
    with engine_for(server.url) as engine:
        handle = engine.generate(HELLO, Sampling())
        first = handle.next_event(timeout=10)
        assert first.kind is EventKind.CHUNK
        time.sleep(0.15)  # mid-stream, between two chunks
        handle.cancel()
        outcome = handle.wait(timeout=5)
        assert outcome.kind is EventKind.CANCELLED
        with pytest.raises(queue.Empty):  # nothing after the terminal event
            handle.next_event(timeout=0.3)


def test_cancel_wakes_the_reader_even_when_the_server_is_silent(serve: Serve) -> None:
    server = serve(first_chunk_then_silence)
    threads_before = _remote_threads()
    with engine_for(server.url) as engine:
        handle = engine.generate(HELLO, Sampling())
        assert handle.next_event(timeout=10).payload == TextChunk("Once ")
        handle.cancel()
        assert handle.wait(timeout=5).kind is EventKind.CANCELLED
        deadline = time.monotonic() + 10
        while server.disconnected_at is None and time.monotonic() < deadline:
            time.sleep(0.005)
        # The server saw the connection go: it can stop generating.
        assert server.disconnected_at is not None
        wait_until(
            lambda: _remote_threads() <= threads_before, timeout=5, interval=0.005
        )  # and its thread has ended


def test_cancel_before_the_server_answers_ends_at_once(serve: Serve) -> None:
    server = serve(silent)
    with engine_for(server.url) as engine:
        handle = engine.generate(HELLO, Sampling())
        while not server.requests:
            time.sleep(0.01)
        handle.cancel()
        assert handle.wait(timeout=5).kind is EventKind.CANCELLED


def test_closing_the_engine_cancels_its_replies_and_refuses_new_ones(serve: Serve) -> None:
    server = serve(endless)
    engine = engine_for(server.url)
    handle = engine.generate(HELLO, Sampling())
    assert handle.next_event(timeout=10).kind is EventKind.CHUNK
    engine.close()
    assert handle.wait(timeout=5).kind is EventKind.CANCELLED
    with pytest.raises(EngineError) as closed:
        engine.generate(HELLO, Sampling())
    assert closed.value.kind == "closed"


def _remote_threads() -> int:
    return sum(thread.name == "remote reply" for thread in threading.enumerate())


# --- the endpoint, and where its key is kept ------------------------------------------------


def test_the_endpoint_keeps_its_key_out_of_sight() -> None:
    endpoint = RemoteEndpoint("http://gpu-box:8080/v1/", " llama-3 ", api_key=SERVER_KEY)
    assert endpoint.base_url == "http://gpu-box:8080/v1"
    assert endpoint.model == "llama-3"
    assert endpoint.label == "llama-3 at gpu-box:8080"
    assert RemoteEndpoint("http://a/v1", "m", name="Lab server").label == "Lab server"
    assert SERVER_KEY not in repr(endpoint) and SERVER_KEY not in str(endpoint)


@pytest.mark.parametrize("url", ["gpu-box:8080", "ftp://gpu-box/v1", "http://", ""])
def test_an_endpoint_needs_an_http_url(url: str) -> None:
    with pytest.raises(SettingsError):
        RemoteEndpoint(url, "m")


def test_keys_go_to_private_files_without_a_keyring(tmp_path: Path) -> None:
    keys = EndpointKeyStore(tmp_path / "keys")
    assert keys.location is TokenSource.APP_FILE
    assert keys.save("http://a:1/v1/", f" {SERVER_KEY}\n") is TokenSource.APP_FILE
    keys.save("http://b:2/v1", WRONG_KEY)

    assert keys.load("http://a:1/v1") == SERVER_KEY  # the trailing slash does not matter
    assert keys.load("http://b:2/v1") == WRONG_KEY
    assert keys.load("http://c:3/v1") is None
    files = sorted((tmp_path / "keys").iterdir())
    assert len(files) == 2
    assert all(stat.S_IMODE(file.stat().st_mode) == 0o600 for file in files)
    assert all("http" not in file.name for file in files)

    endpoint = keys.with_key(RemoteEndpoint("http://a:1/v1", "m"))
    assert endpoint.api_key == SERVER_KEY
    keys.clear("http://a:1/v1")
    assert keys.with_key(endpoint).api_key is None


def test_keys_go_to_the_keyring_one_entry_per_url(
    tmp_path: Path, memory_keyring: MemoryKeyring
) -> None:
    keys = EndpointKeyStore(tmp_path / "keys")
    assert keys.save("http://a:1/v1", SERVER_KEY) is TokenSource.KEYRING
    keys.save("http://b:2/v1", WRONG_KEY)
    assert memory_keyring.passwords == {
        (KEYRING_SERVICE, "http://a:1/v1"): SERVER_KEY,
        (KEYRING_SERVICE, "http://b:2/v1"): WRONG_KEY,
    }
    assert not (tmp_path / "keys").exists()
    keys.save("http://a:1/v1", "  ")  # an empty key clears it
    assert keys.load("http://a:1/v1") is None
    assert keys.load("http://b:2/v1") == WRONG_KEY

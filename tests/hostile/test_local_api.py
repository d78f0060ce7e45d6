"""A hostile web page and hostile bodies against the local API, over real HTTP.

The server is the real one (uvicorn on 127.0.0.1, the engine child with a tiny scripted
GGUF). The attacker is a browser, so its requests are sent as a browser sends them (httpx2
with the browser's headers: Origin, Sec-Fetch-Site, a form's Content-Type); the well-behaved
client is the real `openai` library. Bodies are also parsed in-process within bounds
(`within_bounds`), since a server's memory is not the test's to measure.
"""

from __future__ import annotations

import json
import signal
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx2
import openai
import pytest
from hypothesis import given

from app.chat.local import LocalChatEngine
from app.errors import SettingsError
from app.llm.messages import LoadSettings
from app.serving import ModelServer
from app.serving.request_body import MAX_BODY_BYTES, MAX_JSON_VALUES, BodyError, parse_body
from app.serving.schemas import ChatCompletionRequest
from app.settings import Settings, load_settings, save_settings
from app.store import Database
from tests.core.test_serving import _serve as serve_command
from tests.hostile.bounds import within_bounds
from tests.hostile.request_bodies import MANGLES, json_documents, mangled
from tests.support.cli_process import killed_if_left, stopped_by
from tests.support.gguf_builder import SCRIPTED_REPLY, ScriptedGgufs
from tests.support.llama_server import free_port
from tests.support.served import started_server
from tests.support.waiting import wait_until

pytestmark = pytest.mark.slow

REPO_ROOT = Path(__file__).resolve().parents[2]
HELLO = [{"role": "user", "content": "Hello"}]
ALLOWED = "http://localhost:3000"
EVIL = "http://evil.example"
# What a browser sends with a cross-site form POST or a fetch(..., {mode: "no-cors"}).
FORM_POST = {"origin": EVIL, "content-type": "text/plain", "sec-fetch-site": "cross-site"}


@pytest.fixture(scope="module")
def model(ggufs: ScriptedGgufs) -> LoadSettings:
    return LoadSettings(path=ggufs.scripted, context_length=512, threads=1)


@pytest.fixture(scope="module")
def server(model: LoadSettings) -> Iterator[ModelServer]:
    """One server for the module, without a key, allowing pages from `ALLOWED` only."""
    engine = LocalChatEngine()
    server = ModelServer(engine)
    server.start(port=0, allowed_origins=[ALLOWED + "/"])  # normalized to ALLOWED
    server.load(model)
    yield server
    server.stop()
    engine.close()


@pytest.fixture
def http(server: ModelServer) -> Iterator[httpx2.Client]:
    assert server.url is not None
    with httpx2.Client(base_url=server.url, timeout=30) as http:
        yield http


def _error(response: httpx2.Response, status: int) -> dict[str, object]:
    """The error of an answer in OpenAI's shape, with the status expected."""
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error"}, body
    error: dict[str, object] = body["error"]
    assert set(error) == {"message", "type", "param", "code"}, error
    assert isinstance(error["message"], str) and error["message"]
    return error


def _post(
    http: httpx2.Client, body: bytes | str, *, path: str = "/chat/completions", **headers: str
) -> httpx2.Response:
    """POST `body` as is, declared JSON unless `headers` say otherwise."""
    headers = {"content-type": "application/json"} | {
        name.replace("_", "-"): value for name, value in headers.items()
    }
    return http.post(path, content=body, headers=headers)


def _generations(server: ModelServer) -> int:
    """How many generations the server has run (the log notes tokens for each)."""
    return sum(1 for entry in server.log.entries() if entry.tokens is not None)


# -- finding 7: a web page makes the model generate (CSRF) -----------------------------------


def test_a_cross_site_form_post_is_refused_and_generates_nothing(
    server: ModelServer, http: httpx2.Client
) -> None:
    before, logged = _generations(server), len(server.log.entries())

    response = http.post(
        "/chat/completions", content=json.dumps({"messages": HELLO}), headers=FORM_POST
    )

    assert _error(response, 403)["code"] == "origin_not_allowed"
    assert "access-control-allow-origin" not in response.headers
    wait_until(lambda: len(server.log.entries()) >= logged + 1)
    assert server.log.entries()[-1].status == 403
    assert _generations(server) == before


def test_a_page_from_another_origin_is_refused_however_it_asks(
    server: ModelServer, http: httpx2.Client
) -> None:
    json_post = http.post("/chat/completions", json={"messages": HELLO}, headers={"origin": EVIL})
    preflight = http.options(
        "/chat/completions",
        headers={"origin": EVIL, "access-control-request-method": "POST"},
    )
    # A no-cors GET (an <img>, a <script>) carries no Origin, only Sec-Fetch-Site.
    no_cors = http.get("/models", headers={"sec-fetch-site": "cross-site"})
    opaque = http.post("/completions", json={"prompt": "Hi"}, headers={"origin": "null"})

    for response in (json_post, preflight, no_cors, opaque):
        assert _error(response, 403)["code"] == "origin_not_allowed"
        assert "access-control-allow-origin" not in response.headers


def test_a_body_that_is_not_declared_json_is_refused_from_anyone(http: httpx2.Client) -> None:
    body = json.dumps({"messages": HELLO})
    for content_type in (
        "text/plain",
        "application/x-www-form-urlencoded",
        "",
        "application/json; charset=latin-1",
    ):
        response = http.post(
            "/chat/completions", content=body, headers={"content-type": content_type}
        )
        assert _error(response, 415)["code"] == "unsupported_media_type", content_type
    declared = http.post(
        "/chat/completions",
        content=body,
        headers={"content-type": "Application/JSON; charset=UTF-8"},
    )
    assert declared.status_code == 200, declared.text


def test_a_rebound_host_name_is_refused_even_with_a_key() -> None:
    """DNS rebinding: the page's own name now points at 127.0.0.1, so the browser sends it as
    Host. On a loopback server that name is refused, with a key or without."""
    engine = LocalChatEngine()  # its child never starts: nothing asks it anything
    with ModelServer(engine) as keyed:
        url = keyed.start(port=0, api_key="sk-local")
        with httpx2.Client(base_url=url) as http:
            rebound = http.get("/models", headers={"host": "evil.example:8080"})
            direct = http.get("/models", headers={"authorization": "Bearer sk-local"})
    assert _error(rebound, 403)["code"] == "host_not_allowed"
    assert direct.status_code == 200
    assert engine.pid is None


def test_an_allowed_origin_gets_cors_answers_preflight_and_stream(
    server: ModelServer, http: httpx2.Client
) -> None:
    preflight = http.options(
        "/chat/completions",
        headers={
            "origin": ALLOWED,
            "access-control-request-method": "POST",
            "access-control-request-headers": "authorization, content-type, x-stainless-os",
        },
    )
    assert preflight.status_code == 200
    assert preflight.headers["access-control-allow-origin"] == ALLOWED
    assert "POST" in preflight.headers["access-control-allow-methods"]
    assert "x-stainless-os" in preflight.headers["access-control-allow-headers"]
    assert "origin" in preflight.headers["vary"].lower()

    answer = http.post("/chat/completions", json={"messages": HELLO}, headers={"origin": ALLOWED})
    assert answer.status_code == 200
    assert answer.headers["access-control-allow-origin"] == ALLOWED
    assert answer.json()["choices"][0]["message"]["content"] == SCRIPTED_REPLY
    body = {"messages": HELLO, "stream": True}
    with http.stream("POST", "/chat/completions", json=body, headers={"origin": ALLOWED}) as stream:
        assert stream.headers["access-control-allow-origin"] == ALLOWED
        assert list(stream.iter_lines())[-2:] == ["data: [DONE]", ""]


def test_the_openai_client_is_not_affected(server: ModelServer) -> None:
    assert server.url is not None
    with openai.OpenAI(base_url=server.url, api_key="unused", max_retries=0) as client:
        answer = client.chat.completions.create(model="Scripted-Q8_0.gguf", messages=HELLO)
        streamed = client.completions.create(
            model="Scripted-Q8_0.gguf", prompt="Hi", max_tokens=4, stream=True
        )
        assert [chunk.choices[0].text for chunk in streamed]
    assert answer.choices[0].message.content == SCRIPTED_REPLY


# -- finding 14 and its siblings: bodies ------------------------------------------------------


def test_a_deeply_nested_body_is_400_not_500(http: httpx2.Client) -> None:
    deep = (
        b'{"messages": [{"role": "user", "content": "Hi"}], "x": '
        + b"[" * 100_000
        + b"]" * 100_000
        + b"}"
    )
    in_a_message = (
        b'{"messages": [{"role": "user", "content": ' + b"[" * 5000 + b"]" * 5000 + b"}]}"
    )
    for body in (deep, in_a_message):
        response = http.post(
            "/chat/completions", content=body, headers={"content-type": "application/json"}
        )
        error = _error(response, 400)
        assert error["type"] == "invalid_request_error"
        assert "parse the JSON" in str(error["message"])


def test_a_body_over_the_limit_is_413_declared_or_streamed(
    server: ModelServer, http: httpx2.Client
) -> None:
    """FastAPI counts the bytes as they arrive. A body sent in chunks (no Content-Length) is
    cut off at the limit and answered in OpenAI's shape; one that declares its length is
    answered by FastAPI itself before it is read (plain text: FastAPI replaces any answer to
    it), which the openai client reports as a 413 all the same."""
    body = b'{"messages": [{"role": "user", "content": "' + b"x" * MAX_BODY_BYTES + b'"}]}'
    chunked = http.post(
        "/chat/completions",
        content=iter([body[i : i + 65536] for i in range(0, len(body), 65536)]),
        headers={"content-type": "application/json"},
    )
    error = _error(chunked, 413)
    assert error["code"] == "request_too_large"
    assert f"{MAX_BODY_BYTES:,} bytes" in str(error["message"])

    assert server.url is not None
    with (
        openai.OpenAI(base_url=server.url, api_key="unused", max_retries=0) as client,
        pytest.raises(openai.APIStatusError) as declared,
    ):
        client.chat.completions.create(
            model="Scripted-Q8_0.gguf",
            messages=[{"role": "user", "content": "x" * MAX_BODY_BYTES}],
        )
    assert declared.value.status_code == 413


@pytest.mark.parametrize(
    ("field", "raw"),
    [
        ("temperature", b"1e999"),  # JSON's way to say infinity
        ("temperature", b"NaN"),
        ("top_p", b"-1e999"),
        ("max_tokens", b"-1"),
        ("max_tokens", b"1e999"),
        ("max_tokens", b"9" * 5000),  # past what any integer parser here takes
        ("n", b"1000000000000000000000000000000"),
        ("top_k", b"100000000000000000000"),
        ("stop", json.dumps(["x"] * 10_000).encode()),
        ("stop", json.dumps("x" * 100_000).encode()),
        ("model", json.dumps("m" * 100_000).encode()),
    ],
    ids=lambda value: value if isinstance(value, str) else value[:12].decode() + "…",
)
def test_hostile_numbers_and_lists_are_400(http: httpx2.Client, field: str, raw: bytes) -> None:
    body = (
        b'{"messages": [{"role": "user", "content": "Hi"}], "'
        + field.encode()
        + b'": '
        + raw
        + b"}"
    )

    response = http.post(
        "/chat/completions", content=body, headers={"content-type": "application/json"}
    )

    error = _error(response, 400)
    assert error["param"] in (field, None), error  # None: the parser refused the number
    assert len(str(error["message"])) < 400  # a huge value is not echoed back


def test_invalid_utf8_lone_surrogates_and_non_objects_are_400(http: httpx2.Client) -> None:
    for body, says in [
        (b'{"messages": [{"role": "user", "content": "\xff\xfe"}]}', "parse the JSON"),
        (b'{"messages": [{"role": "user", "content": "\\ud800"}]}', "parse the JSON"),
        (b'[{"role": "user", "content": "Hi"}]', "must be a JSON object"),
        (b'"Hi"', "must be a JSON object"),
    ]:
        response = http.post(
            "/chat/completions", content=body, headers={"content-type": "application/json"}
        )
        assert says in str(_error(response, 400)["message"])


def test_a_huge_messages_array_is_refused_before_it_is_parsed(
    server: ModelServer, http: httpx2.Client
) -> None:
    body = json.dumps({"messages": [{"role": "user"}] * 300_000}).encode()
    assert len(body) < MAX_BODY_BYTES

    response = http.post(
        "/chat/completions", content=body, headers={"content-type": "application/json"}
    )

    assert f"more than {MAX_JSON_VALUES:,} JSON values" in str(_error(response, 400)["message"])
    # Within the value bound, the number of turns has its own (a clear 400, not a long render).
    many = json.dumps({"messages": [{"role": "user", "content": "Hi"}] * 10_001}).encode()
    response = http.post(
        "/chat/completions", content=many, headers={"content-type": "application/json"}
    )
    assert _error(response, 400)["param"] == "messages"


def test_duplicate_keys_take_the_last_value(http: httpx2.Client) -> None:
    body = b'{"messages": [{"role": "nobody"}], "messages": [{"role": "user", "content": "Hi"}]}'
    response = http.post(
        "/chat/completions", content=body, headers={"content-type": "application/json"}
    )
    assert response.status_code == 200, response.text


# Hostile bodies, parsed in-process within bounds. pydantic's parser allocates in Rust, where
# tracemalloc does not look, so the bodies that would cost most there must be refused before
# it runs (by their count of values): `counted` says which.
HOSTILE_BODIES: dict[str, tuple[Callable[[], bytes], bool]] = {
    "deep": (lambda: b'{"x": ' + b"[" * 200_000 + b"]" * 200_000 + b"}", True),
    "many empty objects": (lambda: b'{"messages": [' + b"{}," * 2_000_000 + b"{}]}", True),
    "many numbers": (lambda: b'{"x": [' + b"0," * 4_000_000 + b"0]}", True),
    "many strings": (lambda: b'{"x": [' + b'"",' * 2_000_000 + b'""]}', True),
    "many messages": (lambda: b'{"messages": [' + b'{"role": "user"},' * 400_000 + b"{}]}", True),
    "commas in text": (lambda: b'{"x": "' + b"a, " * 2_000_000 + b'"}', False),
    "escaped quotes": (lambda: b'{"x": "' + b'\\",' * 2_000_000 + b'"}', False),
    "unterminated": (lambda: b'{"messages": "' + b"x" * 7_000_000, False),
}


@pytest.mark.parametrize("name", list(HOSTILE_BODIES))
def test_a_hostile_body_is_parsed_or_refused_within_bounds(name: str) -> None:
    make, counted = HOSTILE_BODIES[name]
    raw = make()
    assert len(raw) <= MAX_BODY_BYTES

    outcome = within_bounds(
        "local API body",
        lambda: parse_body(raw, ChatCompletionRequest),
        errors=(BodyError,),
        seconds=1.5,
        megabytes=64,
    )

    assert isinstance(outcome.error, BodyError)  # none of them is a valid request
    assert ("JSON values" in str(outcome.error)) is counted


json_values = json_documents(
    ["messages", "role", "content", "model", "max_tokens", "stop", "n", "x"], max_keys=5
)


@pytest.fixture(scope="module")
def unloaded() -> Iterator[ModelServer]:
    """A server with no model: a valid body is answered 503, so nothing generates."""
    with started_server(LocalChatEngine()) as server:
        yield server


@given(document=json_values, mangle=MANGLES)
def test_any_body_gets_an_openai_error_or_an_answer_never_a_500(
    unloaded: ModelServer, document: object, mangle: str
) -> None:
    raw = mangled(document, mangle)
    assert unloaded.url is not None
    with httpx2.Client(base_url=unloaded.url, timeout=30) as http:
        response = http.post(
            "/chat/completions", content=raw, headers={"content-type": "application/json"}
        )
    assert response.status_code in (400, 503), response.text
    _error(response, response.status_code)


# -- the setting and the command line --------------------------------------------------------


def test_allowed_origins_are_normalized_persisted_and_checked(tmp_path: Path) -> None:
    database = Database(tmp_path / "app.sqlite3")
    save_settings(
        database,
        Settings(
            api_allowed_origins=("HTTP://LocalHost:3000/", "https://app.example:443", ALLOWED)
        ),
    )
    assert load_settings(database).api_allowed_origins == (ALLOWED, "https://app.example")
    for wrong in ("*", "null", "file:///tmp/x", "https://app.example/path", "app.example"):
        with pytest.raises(SettingsError):
            save_settings(database, Settings(api_allowed_origins=(wrong,)))
    database.set_setting("api_allowed_origins", ["*"])  # written by something else
    assert load_settings(database).api_allowed_origins == ()


def _serve(tmp_path: Path, *args: str) -> subprocess.Popen[str]:
    return serve_command(tmp_path / "data", tmp_path / "hf", *args)


def test_modeldeck_serve_allows_only_the_origins_it_is_given(
    tmp_path: Path, model: LoadSettings
) -> None:
    refused = _serve(tmp_path, str(model.path), "--allow-origin", "*")
    _, stderr = refused.communicate(timeout=30)
    assert refused.returncode == 2 and "allowed origin must look like" in stderr

    port = free_port()
    process = _serve(
        tmp_path, str(model.path), "--port", str(port), "--ctx", "512",
        "--allow-origin", ALLOWED, "--allow-origin", "https://app.example",
    )  # fmt: skip
    with killed_if_left(process):
        assert process.stdout is not None
        assert process.stdout.readline().startswith("Serving Scripted-Q8_0.gguf at")
        with httpx2.Client(base_url=f"http://127.0.0.1:{port}/v1", timeout=30) as http:
            allowed = http.get("/models", headers={"origin": "https://app.example"})
            evil = http.post("/chat/completions", content="{}", headers=FORM_POST)
        stderr = stopped_by(process, signal.SIGINT)
    assert allowed.headers["access-control-allow-origin"] == "https://app.example"
    assert _error(evil, 403)["code"] == "origin_not_allowed"
    assert process.returncode == 0 and "Traceback" not in stderr
    assert f"Web pages allowed from: {ALLOWED}, https://app.example" in stderr

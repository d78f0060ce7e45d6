"""Hostile bodies for the Ollama, Anthropic and embeddings endpoints: every one is answered
in its API's own error shape (or, when valid, 503: no model is loaded), never a 500, and a
body over the limit is 413 in that shape too. A real server on 127.0.0.1, raw HTTP."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from app.chat.local import LocalChatEngine
from app.serving import ModelServer
from app.serving.request_body import MAX_BODY_BYTES
from tests.hostile.request_bodies import MANGLES, json_documents, mangled
from tests.support.served import started_server

pytestmark = pytest.mark.slow


def _ollama_error(body: object) -> bool:
    return isinstance(body, dict) and set(body) == {"error"} and bool(body["error"])


def _anthropic_error(body: object) -> bool:
    if not isinstance(body, dict) or set(body) != {"type", "error"} or body["type"] != "error":
        return False
    error = body["error"]
    return isinstance(error, dict) and set(error) == {"type", "message"} and bool(error["message"])


def _openai_error(body: object) -> bool:
    if not isinstance(body, dict) or set(body) != {"error"}:
        return False
    error = body["error"]
    return isinstance(error, dict) and set(error) == {"message", "type", "param", "code"}


SHAPES: dict[str, Callable[[object], bool]] = {
    "/api/chat": _ollama_error,
    "/api/generate": _ollama_error,
    "/api/embed": _ollama_error,
    "/api/show": _ollama_error,
    "/v1/messages": _anthropic_error,
    "/v1/embeddings": _openai_error,
}


@pytest.fixture(scope="module")
def unloaded() -> Iterator[ModelServer]:
    """A server with no model: a valid body is answered 503 (404 for show), nothing runs."""
    engine = LocalChatEngine()
    with started_server(engine) as server:
        yield server
    assert engine.pid is None  # nothing ever reached an engine


@pytest.fixture
def http(unloaded: ModelServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=f"http://127.0.0.1:{unloaded.port}", timeout=30) as http:
        yield http


json_values = json_documents(
    [
        "model",
        "messages",
        "role",
        "content",
        "prompt",
        "input",
        "options",
        "format",
        "tools",
        "max_tokens",
        "system",
        "type",
        "keep_alive",
        "stream",
        "tool_choice",
    ],
    max_keys=6,
)


@settings(max_examples=60, deadline=None)
@given(
    path=st.sampled_from(list(SHAPES)),
    document=json_values,
    mangle=MANGLES,
)
def test_any_body_gets_its_apis_error_never_a_500(
    unloaded: ModelServer, path: str, document: object, mangle: str
) -> None:
    raw = mangled(document, mangle)
    with httpx.Client(base_url=f"http://127.0.0.1:{unloaded.port}", timeout=30) as http:
        response = http.post(path, content=raw, headers={"content-type": "application/json"})
    assert response.status_code in (400, 404, 503), response.text
    assert SHAPES[path](response.json()), response.text


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/api/chat", {"model": "m", "messages": [], "options": {"temperature": "1e999"}}),
        ("/api/chat", {"model": "m", "options": {"num_predict": -7}}),
        ("/api/chat", {"model": "m", "options": {"stop": ["x"] * 10_000}}),
        ("/api/chat", {"model": "m", "keep_alive": "forever-ish"}),
        ("/api/chat", {"model": "m" * 100_000}),
        ("/api/embed", {"model": "m", "input": []}),
        ("/api/embed", {"model": "m", "input": ["x"] * 5000}),
        ("/v1/messages", {"model": "m", "max_tokens": 0, "messages": [{"role": "user"}]}),
        ("/v1/messages", {"model": "m", "max_tokens": 9, "messages": []}),
        ("/v1/messages", {"model": "m", "max_tokens": 9, "messages": [], "tools": [{}] * 500}),
        ("/v1/embeddings", {"input": [""]}),
        ("/v1/embeddings", {"input": [[1, 2]]}),
    ],
    ids=lambda value: value if isinstance(value, str) else json.dumps(value)[:40],
)
def test_hostile_values_are_400(http: httpx.Client, path: str, body: object) -> None:
    raw = json.dumps(body).encode().replace(b'"1e999"', b"1e999")
    response = http.post(path, content=raw, headers={"content-type": "application/json"})
    assert response.status_code == 400, response.text
    assert SHAPES[path](response.json()), response.text


@pytest.mark.parametrize("path", ["/api/chat", "/v1/messages"])
def test_a_body_over_the_limit_is_413_in_the_apis_shape(http: httpx.Client, path: str) -> None:
    body = b'{"model": "m", "prompt": "' + b"x" * MAX_BODY_BYTES + b'"}'
    response = http.post(
        path,
        content=iter([body[i : i + 65536] for i in range(0, len(body), 65536)]),
        headers={"content-type": "application/json"},
    )
    assert response.status_code == 413
    assert SHAPES[path](response.json()), response.text

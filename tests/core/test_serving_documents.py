"""Documents over the API, for real: a words-only collection of real files, the scripted model
served by uvicorn, and the real `openai`, `ollama` and `anthropic` clients naming the
collection in `modeldeck.documents`. The question reaches the model with the numbered
passages `DocumentCollections.compose` builds (as `modeldeck chat --docs`), and the answer
names its sources."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anthropic
import httpx
import ollama
import openai
import pytest

from app.chat.local import LocalChatEngine
from app.docs.collections import DocumentCollections
from app.llm.messages import LoadSettings
from app.serving import ModelServer
from app.serving.request_documents import PROMPT_MARGIN_TOKENS, SOURCES_HEADER
from app.store import Database
from tests.support.gguf_builder import SCRIPTED_REPLY, ScriptedGgufs

pytestmark = pytest.mark.slow

MODEL = "scripted-4k"
CONTEXT = 2048  # room for the instruction and a passage (byte-level tokens)
QUESTION = "Which mineral is in the cellar?"
HELLO: list[dict[str, str]] = [{"role": "user", "content": QUESTION}]
USE_NOTES = {"modeldeck": {"documents": "notes"}}


@pytest.fixture(scope="module")
def notes(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("notes")
    (folder / "cellar.md").write_text("# Cellar\n\nThe cellar holds quartz and a mineral lamp.\n")
    (folder / "garden.md").write_text("# Garden\n\nTomatoes grow by the fence.\n")
    return folder


@pytest.fixture
def documents(database: Database, tmp_path: Path, notes: Path) -> Iterator[DocumentCollections]:
    collections = DocumentCollections(database, tmp_path / "vectors")
    collections.add("notes", [notes], embedder=None)  # words only
    collections.index("notes")
    yield collections
    collections.close()


@pytest.fixture(scope="module")
def engine() -> Iterator[LocalChatEngine]:
    engine = LocalChatEngine()
    yield engine
    engine.close()


@pytest.fixture
def server(
    engine: LocalChatEngine, ggufs: ScriptedGgufs, documents: DocumentCollections
) -> Iterator[ModelServer]:
    server = ModelServer(engine, documents=lambda: documents)
    server.start(port=0)
    try:
        server.load(LoadSettings(path=ggufs.scripted_4k, context_length=CONTEXT, threads=1))
        yield server
    finally:
        server.stop()


def expected_prompt_tokens(
    engine: LocalChatEngine, documents: DocumentCollections, max_tokens: int
) -> int:
    """The prompt `chat --docs` would send: the same builder, the same budget."""
    context = CONTEXT
    overhead = engine.count_tokens(engine.render([{"role": "user", "content": ""}]).text)
    composed = documents.compose(
        ["notes"],
        QUESTION,
        budget_tokens=context - max_tokens - overhead - PROMPT_MARGIN_TOKENS,
        count_tokens=engine.count_tokens,
    )
    assert composed.sources, "the question's words should find the cellar note"
    return engine.count_tokens(engine.render([{"role": "user", "content": composed.text}]).text)


def check_sources(field: Any, notes: Path) -> None:
    sources = field["sources"]
    assert sources[0]["number"] == 1
    assert Path(sources[0]["file"]) == notes / "cellar.md"
    assert sources[0]["label"].startswith("[1] cellar.md")


def test_openai_requests_answer_from_a_collection(
    server: ModelServer, engine: LocalChatEngine, documents: DocumentCollections, notes: Path
) -> None:
    assert server.url is not None
    with openai.OpenAI(base_url=server.url, api_key="unused", max_retries=0) as client:
        plain = client.chat.completions.create(model=MODEL, messages=HELLO, max_tokens=50)  # type: ignore[arg-type]
        raw = client.chat.completions.with_raw_response.create(
            model=MODEL,
            messages=HELLO,  # type: ignore[arg-type]
            max_tokens=50,
            extra_body=USE_NOTES,
        )
        answer = raw.parse()
        assert answer.choices[0].message.content == SCRIPTED_REPLY
        assert answer.usage is not None and plain.usage is not None
        assert answer.usage.prompt_tokens == expected_prompt_tokens(engine, documents, 50)
        assert answer.usage.prompt_tokens > plain.usage.prompt_tokens
        assert answer.model_extra is not None
        check_sources(answer.model_extra["modeldeck"], notes)
        assert int(raw.headers[SOURCES_HEADER]) == len(answer.model_extra["modeldeck"]["sources"])
        assert (
            SOURCES_HEADER
            not in client.chat.completions.with_raw_response.create(
                model=MODEL,
                messages=HELLO,  # type: ignore[arg-type]
            ).headers
        )
        stream = client.chat.completions.create(
            model=MODEL,
            messages=HELLO,  # type: ignore[arg-type]
            stream=True,
            extra_body=USE_NOTES,
        )
        chunks = list(stream)
        assert chunks[0].model_extra is not None
        check_sources(chunks[0].model_extra["modeldeck"], notes)
        joined = "".join(chunk.choices[0].delta.content or "" for chunk in chunks if chunk.choices)
        assert joined == SCRIPTED_REPLY
        with pytest.raises(openai.NotFoundError, match="nowhere"):
            client.chat.completions.create(
                model=MODEL,
                messages=HELLO,  # type: ignore[arg-type]
                extra_body={"modeldeck": {"documents": "nowhere"}},
            )


def test_ollama_requests_answer_from_a_collection(
    server: ModelServer, engine: LocalChatEngine, documents: DocumentCollections, notes: Path
) -> None:
    assert server.url is not None
    root = server.url.removesuffix("/v1")
    options = {"num_predict": 50}
    with ollama.Client(host=root, timeout=60) as client:
        # The ollama client sends only its own fields: the extra one goes by plain HTTP.
        plain = client.chat(model=MODEL, messages=HELLO, options=options)  # type: ignore[arg-type]
        assert plain.prompt_eval_count is not None
    body = {"model": MODEL, "messages": HELLO, "stream": False, "options": options, **USE_NOTES}
    answer = httpx.post(f"{root}/api/chat", json=body, timeout=60)
    assert answer.status_code == 200, answer.text
    line = answer.json()
    assert line["message"]["content"] == SCRIPTED_REPLY
    assert line["prompt_eval_count"] == expected_prompt_tokens(engine, documents, 50)
    check_sources(line["modeldeck"], notes)
    assert answer.headers[SOURCES_HEADER] == str(len(line["modeldeck"]["sources"]))
    generated = httpx.post(
        f"{root}/api/generate",
        json={"model": MODEL, "prompt": QUESTION, "stream": False, **USE_NOTES},
        timeout=60,
    ).json()
    check_sources(generated["modeldeck"], notes)
    missing = httpx.post(
        f"{root}/api/chat", json=body | {"modeldeck": {"documents": "nowhere"}}, timeout=60
    )
    assert missing.status_code == 404 and "nowhere" in missing.json()["error"]


def test_anthropic_requests_answer_from_a_collection(
    server: ModelServer, engine: LocalChatEngine, documents: DocumentCollections, notes: Path
) -> None:
    assert server.url is not None
    root = server.url.removesuffix("/v1")
    with anthropic.Anthropic(base_url=root, api_key="unused", max_retries=0) as client:
        raw = client.messages.with_raw_response.create(
            model=MODEL,
            max_tokens=50,
            messages=HELLO,  # type: ignore[arg-type]
            extra_body=USE_NOTES,
        )
        message = raw.parse()
        assert message.content[0].type == "text" and message.content[0].text == SCRIPTED_REPLY
        assert message.usage.input_tokens == expected_prompt_tokens(engine, documents, 50)
        assert message.model_extra is not None
        check_sources(message.model_extra["modeldeck"], notes)
        assert raw.headers[SOURCES_HEADER] == str(len(message.model_extra["modeldeck"]["sources"]))
        body = {"model": MODEL, "max_tokens": 50, "messages": HELLO, "stream": True, **USE_NOTES}
        events = httpx.post(f"{root}/v1/messages", json=body, timeout=60).text
        start = next(line for line in events.splitlines() if '"message_start"' in line)
        check_sources(json.loads(start.removeprefix("data: "))["message"]["modeldeck"], notes)
        with pytest.raises(anthropic.NotFoundError, match="nowhere"):
            client.messages.create(
                model=MODEL,
                max_tokens=9,
                messages=HELLO,  # type: ignore[arg-type]
                extra_body={"modeldeck": {"documents": "nowhere"}},
            )


def test_a_server_without_collections_says_so(
    engine: LocalChatEngine, ggufs: ScriptedGgufs
) -> None:
    server = ModelServer(engine)
    server.start(port=0)
    try:
        server.load(LoadSettings(path=ggufs.scripted_4k, context_length=CONTEXT, threads=1))
        assert server.url is not None
        with (
            openai.OpenAI(base_url=server.url, api_key="unused", max_retries=0) as client,
            pytest.raises(openai.BadRequestError, match="no document collections"),
        ):
            client.chat.completions.create(
                model=MODEL,
                messages=HELLO,  # type: ignore[arg-type]
                extra_body=USE_NOTES,
            )
    finally:
        server.stop()

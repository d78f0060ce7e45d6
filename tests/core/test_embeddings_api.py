"""OpenAI's embeddings endpoint on the local server, for real: the engine's embedding mode on
a tiny embedding GGUF, through the real `openai` client (float and base64)."""

from __future__ import annotations

import base64
import struct
from collections.abc import Iterator

import httpx
import openai
import pytest

from app.chat.local import LocalChatEngine
from app.llm.messages import LoadSettings
from app.serving import ModelServer
from tests.support.gguf_builder import ScriptedGgufs

pytestmark = pytest.mark.slow

EMBEDDER = "Tiny-Embedder-F16.gguf"
TEXTS = ["the quick brown fox", "a lazy dog sleeps", "x"]
KEY = "sk-local-test-key"


@pytest.fixture(scope="module")
def embedder(ggufs: ScriptedGgufs) -> LoadSettings:
    return LoadSettings(path=ggufs.embedder, context_length=256, threads=1, embedding=True)


@pytest.fixture(scope="module")
def engine() -> Iterator[LocalChatEngine]:
    engine = LocalChatEngine()
    yield engine
    engine.close()


@pytest.fixture(scope="module")
def server(engine: LocalChatEngine, embedder: LoadSettings) -> Iterator[ModelServer]:
    server = ModelServer(engine)
    server.start(port=0)
    server.load(embedder)
    yield server
    server.stop()


@pytest.fixture
def client(server: ModelServer, embedder: LoadSettings) -> Iterator[openai.OpenAI]:
    if server.served.loaded is None or server.served.loaded.settings != embedder:
        server.load(embedder)
    assert server.url is not None
    with openai.OpenAI(base_url=server.url, api_key="unused", max_retries=0) as client:
        yield client


def _same(got: list[float], want: tuple[float, ...]) -> bool:
    # Equal as float32s: llama.cpp's sums may differ in the last bits from run to run.
    return got == pytest.approx(want, rel=1e-5, abs=1e-7)


# The client asks for base64 unless told otherwise, and decodes it into floats itself.
@pytest.mark.parametrize("encoding", ["float", "the client's default (base64)"])
def test_vectors_are_the_engines(server: ModelServer, client: openai.OpenAI, encoding: str) -> None:
    if encoding == "float":
        answer = client.embeddings.create(model=EMBEDDER, input=TEXTS, encoding_format="float")
    else:
        answer = client.embeddings.create(model=EMBEDDER, input=TEXTS)
    expected = server.served.engine.embed(TEXTS)
    assert answer.object == "list" and answer.model == EMBEDDER
    assert [item.index for item in answer.data] == [0, 1, 2]
    for item, vector in zip(answer.data, expected.vectors, strict=True):
        assert len(item.embedding) == 64
        assert _same(item.embedding, vector)
    assert answer.usage.prompt_tokens == expected.prompt_tokens
    assert answer.usage.total_tokens == expected.prompt_tokens


def test_base64_is_little_endian_float32(server: ModelServer, client: openai.OpenAI) -> None:
    assert server.url is not None
    body = {"model": EMBEDDER, "input": "x", "encoding_format": "base64"}
    raw = httpx.post(f"{server.url}/embeddings", json=body).json()["data"][0]["embedding"]
    floats = struct.unpack("<64f", base64.b64decode(raw))
    assert _same(list(floats), server.served.engine.embed(["x"]).vectors[0])


def test_one_string_is_one_vector(client: openai.OpenAI) -> None:
    answer = client.embeddings.create(model=EMBEDDER, input="hello", encoding_format="float")
    assert len(answer.data) == 1 and len(answer.data[0].embedding) == 64


def test_bad_requests_are_400_in_openais_shape(
    server: ModelServer, client: openai.OpenAI, ggufs: ScriptedGgufs
) -> None:
    with pytest.raises(openai.BadRequestError) as empty:
        client.embeddings.create(model=EMBEDDER, input="")
    assert empty.value.param == "input"
    with pytest.raises(openai.BadRequestError) as ids:
        client.embeddings.create(model=EMBEDDER, input=[[1, 2, 3]])
    assert ids.value.param == "input"
    with pytest.raises(openai.BadRequestError) as narrower:
        client.embeddings.create(model=EMBEDDER, input="x", dimensions=8)
    assert narrower.value.param == "dimensions"
    with pytest.raises(openai.NotFoundError):
        client.embeddings.create(model="text-embedding-3-small", input="x")
    # A chat model has no vectors to give: a clear 400, and the server goes on.
    server.load(LoadSettings(path=ggufs.scripted, context_length=512, threads=1))
    with pytest.raises(openai.BadRequestError) as chat_model:
        client.embeddings.create(model="Scripted-Q8_0.gguf", input="x")
    assert chat_model.value.code == "model_not_embedding"


def test_an_api_key_is_required_when_set(
    engine: LocalChatEngine, server: ModelServer, embedder: LoadSettings
) -> None:
    server.load(embedder)
    with ModelServer(engine) as keyed:
        url = keyed.start(port=0, api_key=KEY)
        with openai.OpenAI(base_url=url, api_key=KEY, max_retries=0) as right:
            assert len(right.embeddings.create(model=EMBEDDER, input="x").data) == 1
        with (
            openai.OpenAI(base_url=url, api_key="sk-wrong", max_retries=0) as wrong,
            pytest.raises(openai.AuthenticationError) as refused,
        ):
            wrong.embeddings.create(model=EMBEDDER, input="x")
        assert refused.value.code == "invalid_api_key"

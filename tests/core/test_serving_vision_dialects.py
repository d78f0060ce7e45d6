"""Images on Ollama's and Anthropic's APIs, for real: the `ollama` client's `images` (on
/api/chat and /api/generate) and the `anthropic` client's base64 image blocks reach a served
vision model (the tiny llama with its tiny projector) exactly as OpenAI's image_url parts do:
the prompt grows by the image's tokens and the model answers."""

from __future__ import annotations

import base64
import io
from collections.abc import Iterator
from pathlib import Path

import anthropic
import ollama
import pytest
from PIL import Image

from app.chat.local import LocalChatEngine
from app.llm.messages import LoadSettings
from app.serving import ModelServer
from app.tiny_gguf import write_projector
from tests.support.gguf_builder import SCRIPTED_REPLY, ScriptedGgufs

pytestmark = pytest.mark.slow

MODEL = "Scripted-Q8_0"
IMAGE_TOKENS = 16  # the tiny projector's tokens per image (as tests/core/test_serving_vision)
# Ollama's images come before the message's text, on a line of their own (as `chat --image`).
OLLAMA_IMAGE_TOKENS = IMAGE_TOKENS + 1


def png() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (48, 48), (0, 120, 250)).save(buffer, format="PNG")
    return buffer.getvalue()


@pytest.fixture(scope="module")
def root(ggufs: ScriptedGgufs, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    projector: Path = write_projector(tmp_path_factory.mktemp("seen") / "mmproj-F16.gguf")
    engine = LocalChatEngine()
    server = ModelServer(engine)
    server.start(port=0)
    try:
        loaded = server.load(
            LoadSettings(path=ggufs.scripted, context_length=512, threads=1, projector=projector)
        )
        assert loaded.vision and server.url is not None
        yield server.url.removesuffix("/v1")
    finally:
        server.stop()
        engine.close()


@pytest.fixture
def client(root: str) -> Iterator[ollama.Client]:
    with ollama.Client(host=root, timeout=60) as client:
        yield client


def test_ollama_chat_images_are_seen(client: ollama.Client) -> None:
    plain = client.chat(model=MODEL, messages=[{"role": "user", "content": "What is it?"}])
    seen = client.chat(
        model=MODEL, messages=[{"role": "user", "content": "What is it?", "images": [png()]}]
    )
    assert seen.message.content == plain.message.content == SCRIPTED_REPLY
    assert plain.prompt_eval_count is not None
    assert seen.prompt_eval_count == plain.prompt_eval_count + OLLAMA_IMAGE_TOKENS
    streamed = client.chat(
        model=MODEL,
        messages=[{"role": "user", "content": "What is it?", "images": [png()]}],
        stream=True,
    )
    assert "".join(part.message.content or "" for part in streamed) == SCRIPTED_REPLY


def test_ollama_generate_images_are_seen(client: ollama.Client) -> None:
    plain = client.generate(model=MODEL, prompt="What is it?")
    seen = client.generate(model=MODEL, prompt="What is it?", images=[png()])
    assert seen.response == plain.response == SCRIPTED_REPLY
    assert plain.prompt_eval_count is not None
    assert seen.prompt_eval_count == plain.prompt_eval_count + OLLAMA_IMAGE_TOKENS
    with pytest.raises(ollama.ResponseError, match="cannot go raw") as raw:
        client.generate(model=MODEL, prompt="x", images=[png()], raw=True)
    assert raw.value.status_code == 400


def test_ollama_bytes_that_are_not_an_image_are_400(client: ollama.Client) -> None:
    with pytest.raises(ollama.ResponseError, match="image 1 is not an image") as caught:
        client.chat(
            model=MODEL, messages=[{"role": "user", "content": "x", "images": [b"not an image"]}]
        )
    assert caught.value.status_code == 400
    # The engine is still there for the next request.
    assert client.generate(model=MODEL, prompt="x").response == SCRIPTED_REPLY


def _image_block(data: bytes) -> anthropic.types.ImageBlockParam:
    encoded = base64.b64encode(data).decode()
    return {
        "type": "image",
        "source": {"type": "base64", "media_type": "image/png", "data": encoded},
    }


def test_anthropic_image_blocks_are_seen(root: str) -> None:
    with anthropic.Anthropic(base_url=root, api_key="unused", max_retries=0) as client:
        plain = client.messages.create(
            model=MODEL, max_tokens=100, messages=[{"role": "user", "content": "What is it?"}]
        )
        seen = client.messages.create(
            model=MODEL,
            max_tokens=100,
            messages=[
                {
                    "role": "user",
                    "content": [_image_block(png()), {"type": "text", "text": "What is it?"}],
                }
            ],
        )
        assert seen.content[0].type == "text" and seen.content[0].text == SCRIPTED_REPLY
        assert seen.usage.input_tokens == plain.usage.input_tokens + IMAGE_TOKENS
        with client.messages.stream(
            model=MODEL,
            max_tokens=100,
            messages=[{"role": "user", "content": [_image_block(png())]}],
        ) as stream:
            assert "".join(stream.text_stream) == SCRIPTED_REPLY


def test_anthropic_bad_images_are_invalid_requests(root: str) -> None:
    with anthropic.Anthropic(base_url=root, api_key="unused", max_retries=0) as client:
        with pytest.raises(anthropic.BadRequestError, match="image 1 is not an image"):
            client.messages.create(
                model=MODEL,
                max_tokens=9,
                messages=[{"role": "user", "content": [_image_block(b"not an image")]}],
            )
        linked: anthropic.types.ImageBlockParam = {
            "type": "image",
            "source": {"type": "url", "url": "https://example.com/a.png"},
        }
        with pytest.raises(anthropic.BadRequestError, match="fetching URLs is off"):
            client.messages.create(
                model=MODEL, max_tokens=9, messages=[{"role": "user", "content": [linked]}]
            )

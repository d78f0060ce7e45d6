"""OpenAI `image_url` parts on /v1/chat/completions, for real: the `openai` client sends a
data: URI to a served vision model (the tiny llama with its tiny projector), which sees it."""

from __future__ import annotations

import base64
import io
from collections.abc import Iterator
from pathlib import Path

import openai
import pytest
from PIL import Image

from app.chat.local import LocalChatEngine
from app.llm.messages import LoadSettings
from app.serving import ModelServer
from app.tiny_gguf import write_projector
from tests.support.gguf_builder import SCRIPTED_REPLY, ScriptedGgufs

pytestmark = pytest.mark.slow

IMAGE_TOKENS = 16


def data_uri() -> str:
    buffer = io.BytesIO()
    Image.new("RGB", (48, 48), (250, 200, 0)).save(buffer, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


@pytest.fixture(scope="module")
def client(
    ggufs: ScriptedGgufs, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[openai.OpenAI]:
    projector: Path = write_projector(tmp_path_factory.mktemp("served") / "mmproj-F16.gguf")
    engine = LocalChatEngine()
    server = ModelServer(engine)
    server.start(port=0)
    try:
        loaded = server.load(
            LoadSettings(path=ggufs.scripted, context_length=512, threads=1, projector=projector)
        )
        assert loaded.vision
        assert server.url is not None
        with openai.OpenAI(base_url=server.url, api_key="unused", max_retries=0) as client:
            yield client
    finally:
        server.stop()
        engine.close()


def test_an_image_url_part_is_seen(client: openai.OpenAI) -> None:
    text = client.chat.completions.create(
        model="Scripted-Q8_0", messages=[{"role": "user", "content": "What is it?"}]
    )
    seen = client.chat.completions.create(
        model="Scripted-Q8_0",
        messages=[
            {
                "role": "user",
                "content": [
                    {"type": "image_url", "image_url": {"url": data_uri()}},
                    {"type": "text", "text": "What is it?"},
                ],
            }
        ],
    )
    assert seen.choices[0].message.content == text.choices[0].message.content == SCRIPTED_REPLY
    assert seen.usage is not None and text.usage is not None
    assert seen.usage.prompt_tokens == text.usage.prompt_tokens + IMAGE_TOKENS


def test_an_image_by_url_is_not_fetched(client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError, match="fetching URLs is off"):
        client.chat.completions.create(
            model="Scripted-Q8_0",
            messages=[
                {
                    "role": "user",
                    "content": [
                        {"type": "image_url", "image_url": {"url": "https://example.com/a.png"}}
                    ],
                }
            ],
        )


def test_bytes_that_are_not_an_image_are_400(client: openai.OpenAI) -> None:
    junk = "data:image/png;base64," + base64.b64encode(b"not an image at all").decode()
    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(
            model="Scripted-Q8_0",
            messages=[
                {"role": "user", "content": [{"type": "image_url", "image_url": {"url": junk}}]}
            ],
        )
    assert "image 1 is not an image" in str(caught.value)

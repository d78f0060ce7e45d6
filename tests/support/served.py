"""The local API server as the API tests use it: a real `ModelServer` on a free port of
127.0.0.1 over a real engine child, and the clients that talk to it.

The module-scoped `engine` and `server` fixtures (tests/core/conftest.py) are built from these;
a test module picks its models and calls `serving` to switch only when the model differs, so
one engine child serves a whole module.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import openai

from app.chat.local import LocalChatEngine
from app.llm.messages import LoadSettings
from app.serving import ModelServer
from tests.support.gguf_builder import ScriptedGgufs


@contextmanager
def local_engine() -> Iterator[LocalChatEngine]:
    """A real engine; its child process starts on the first load and ends on close."""
    engine = LocalChatEngine()
    try:
        yield engine
    finally:
        engine.close()


@contextmanager
def started_server(engine: LocalChatEngine) -> Iterator[ModelServer]:
    """A server on a free port, without a key and with no model loaded yet."""
    server = ModelServer(engine)
    server.start(port=0)
    try:
        yield server
    finally:
        server.stop()


def serving(server: ModelServer, settings: LoadSettings) -> ModelServer:
    """`server`, with `settings` loaded (a reload only when another model is loaded)."""
    loaded = server.served.loaded
    if loaded is None or loaded.settings != settings:
        server.load(settings)
    return server


def chat_models(ggufs: ScriptedGgufs) -> dict[str, LoadSettings]:
    """The two chat models of the API tests, on one thread each (these models need no more,
    and on a busy two-core machine llama.cpp's threads would wait on each other):
    "scripted" answers every chat with SCRIPTED_REPLY (context 512); "endless" repeats its
    reply until stopped (context 8192)."""
    return {
        "scripted": LoadSettings(path=ggufs.scripted, context_length=512, threads=1),
        "endless": LoadSettings(path=ggufs.endless, context_length=8192, threads=1),
    }


def root_url(server: ModelServer) -> str:
    """Where the Ollama and Anthropic dialects live (the OpenAI one is under /v1)."""
    return f"http://127.0.0.1:{server.port}"


def openai_client(server: ModelServer) -> openai.OpenAI:
    """The real `openai` client for `server`, failing at once instead of retrying."""
    assert server.url is not None
    return openai.OpenAI(base_url=server.url, api_key="unused", max_retries=0)

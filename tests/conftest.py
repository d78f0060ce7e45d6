"""Shared fixtures: an isolated huggingface_hub home, a fake Hub on 127.0.0.1, and the tiny
models that real engines load (built once per run; tests only read them)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from tests.support.gguf_builder import ScriptedGgufs, write_scripted_ggufs
from tests.support.hub_server import HubServer

if TYPE_CHECKING:
    from app.images.engine import ImageEngine
    from tests.support.diffusers_builder import TinyModels

# huggingface_hub reads these once, at import: set them before any test module imports it.
# Telemetry would otherwise make a first request to the real Hub; Xet must never be used.
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
os.environ.setdefault("HF_HUB_DISABLE_XET", "1")


@pytest.fixture
def hf_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A private HF_HOME (cache, token file) for one test; no token of this machine leaks in.

    huggingface_hub turns the environment into module constants at import time, so the
    constants are pointed at the new home as well as the environment.
    """
    from huggingface_hub import constants

    home = tmp_path / "hf_home"
    home.mkdir()
    for name in ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN", "HF_ENDPOINT", "HF_HUB_OFFLINE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HF_HOME", str(home))
    monkeypatch.setenv("HF_HUB_DISABLE_TELEMETRY", "1")
    monkeypatch.setenv("HF_HUB_DISABLE_XET", "1")
    settings = {
        "HF_HOME": str(home),
        "HF_HUB_CACHE": str(home / "hub"),
        "HUGGINGFACE_HUB_CACHE": str(home / "hub"),
        "HF_ASSETS_CACHE": str(home / "assets"),
        "HF_XET_CACHE": str(home / "xet"),
        "HF_TOKEN_PATH": str(home / "token"),
        "HF_STORED_TOKENS_PATH": str(home / "stored_tokens"),
        "HF_HUB_DISABLE_TELEMETRY": True,
        "HF_HUB_DISABLE_XET": True,
        "HF_HUB_OFFLINE": False,
    }
    for name, value in settings.items():
        monkeypatch.setattr(constants, name, value)
    return home


@pytest.fixture
def hub_server(tmp_path: Path, hf_home: Path) -> Iterator[HubServer]:
    """A started fake Hub rooted in this test's tmp_path, with an isolated HF_HOME.

    Point the real client at `hub_server.url` (`HfApi(endpoint=...)`, `endpoint=`).
    Fails the test if the server hit an internal error while answering.
    """
    with HubServer(tmp_path / "hub") as server:
        yield server
    assert not server.errors, f"the fake hub failed internally: {server.errors!r}"


@pytest.fixture(scope="session")
def ggufs(tmp_path_factory: pytest.TempPathFactory) -> ScriptedGgufs:
    """The scripted GGUFs, written once for the whole run (read-only: copy one to change it)."""
    return write_scripted_ggufs(tmp_path_factory.mktemp("gguf"))


@pytest.fixture(scope="session")
def image_models(tmp_path_factory: pytest.TempPathFactory) -> TinyModels:
    """The tiny diffusers pipelines and files, written once for the whole run (read-only)."""
    from tests.support.diffusers_builder import tiny_models  # torch: only for tests that ask

    return tiny_models(tmp_path_factory.mktemp("image-models"))


@pytest.fixture(scope="session")
def image_engine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ImageEngine]:
    """One started CPU image engine for the whole run; a test may load any model into it."""
    from tests.support.diffusers_builder import cpu_image_engine

    engine = cpu_image_engine(tmp_path_factory.mktemp("configs"))
    yield engine
    engine.stop(timeout=5.0)

"""Fixtures for the core tests: a clean environment, keyrings, the HF provider and the CLI.

Every test here runs without this machine's tokens, endpoint or app data: the autouse
fixture removes them and points ModelDeck's data folder at the test's tmp_path.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import keyring
import pytest
from keyring.backend import KeyringBackend
from keyring.backends import fail
from keyring.errors import PasswordDeleteError

from app.chat.local import LocalChatEngine
from app.hub.huggingface import HuggingFaceHub
from app.serving import ModelServer
from app.store import Database
from tests.support.hub_server import HubServer
from tests.support.served import local_engine, started_server

REPO_ROOT = Path(__file__).resolve().parents[2]
SECRET_TOKEN = "hf_SECRETsecret1234567890"


class MemoryKeyring(KeyringBackend):
    """A working keyring that keeps passwords in a dict (the real backends need a desktop)."""

    priority = 1

    def __init__(self) -> None:
        super().__init__()  # type: ignore[no-untyped-call]
        self.passwords: dict[tuple[str, str], str] = {}

    def get_password(self, service: str, username: str) -> str | None:
        return self.passwords.get((service, username))

    def set_password(self, service: str, username: str, password: str) -> None:
        self.passwords[(service, username)] = password

    def delete_password(self, service: str, username: str) -> None:
        if self.passwords.pop((service, username), None) is None:
            raise PasswordDeleteError("no such password")


@pytest.fixture(autouse=True)
def clean_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """No token, endpoint or data folder of this machine; no keyring (like a headless box).

    Returns the app data folder (`MODELDECK_DATA_DIR`).
    """
    for name in ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN", "HF_TOKEN_PATH", "HF_ENDPOINT"):
        monkeypatch.delenv(name, raising=False)
    data_dir = tmp_path / "modeldeck-data"
    monkeypatch.setenv("MODELDECK_DATA_DIR", str(data_dir))
    # Set the backend by patching keyring's module state, not with `set_keyring`: afterwards it
    # goes back to exactly what it was, "not chosen yet" included, so a later test that picks
    # a backend through PYTHON_KEYRING_BACKEND still gets the one it asks for.
    monkeypatch.setattr(keyring.core, "_keyring_backend", fail.Keyring())  # type: ignore[no-untyped-call]
    monkeypatch.setenv("PYTHON_KEYRING_BACKEND", "keyring.backends.fail.Keyring")
    return data_dir


@pytest.fixture
def data_dir(clean_environment: Path) -> Path:
    """The app data folder of this test (also in `MODELDECK_DATA_DIR`)."""
    return clean_environment


@pytest.fixture
def memory_keyring(monkeypatch: pytest.MonkeyPatch) -> MemoryKeyring:
    """A working in-memory keyring for this test only."""
    backend = MemoryKeyring()
    monkeypatch.setattr(keyring.core, "_keyring_backend", backend)
    return backend


@pytest.fixture
def database(tmp_path: Path) -> Iterator[Database]:
    """A fresh app database file."""
    db = Database(tmp_path / "app.sqlite3")
    yield db
    db.close()


@pytest.fixture
def hub(hub_server: HubServer) -> HuggingFaceHub:
    """The real provider, anonymous, talking to the fake hub (HF cache in the test's HF_HOME)."""
    return HuggingFaceHub(endpoint=hub_server.url)


@dataclass(frozen=True)
class CliResult:
    """What a `modeldeck` run printed and returned."""

    returncode: int
    stdout: str
    stderr: str


@dataclass(frozen=True)
class Cli:
    """Runs `modeldeck` in a child process with an isolated data folder, HF_HOME and keyring."""

    data_dir: Path
    hf_home: Path

    def run(self, *args: str, env: dict[str, str] | None = None) -> CliResult:
        """Run `python -m ui.launcher ARGS`; `env` adds or overrides variables."""
        child_env = {
            key: value
            for key, value in os.environ.items()
            if key not in ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN", "HF_ENDPOINT", "HF_TOKEN_PATH")
            and not key.startswith(("HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE"))
        }
        child_env |= {
            "MODELDECK_DATA_DIR": str(self.data_dir),
            "HF_HOME": str(self.hf_home),
            "HF_HUB_DISABLE_TELEMETRY": "1",
            "HF_HUB_DISABLE_XET": "1",
            "PYTHON_KEYRING_BACKEND": "keyring.backends.fail.Keyring",
            "PYTHONPATH": str(REPO_ROOT),
        }
        child_env |= env or {}
        completed = subprocess.run(
            [sys.executable, "-m", "ui.launcher", *args],
            cwd=REPO_ROOT,
            env=child_env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        return CliResult(completed.returncode, completed.stdout, completed.stderr)


@pytest.fixture
def cli(data_dir: Path, hf_home: Path) -> Cli:
    """A `modeldeck` runner sharing this test's data folder and HF_HOME."""
    return Cli(data_dir=data_dir, hf_home=hf_home)


@pytest.fixture(scope="module")
def engine() -> Iterator[LocalChatEngine]:
    """One real engine for a module of local-API tests (modules that mean another engine
    define their own `engine`)."""
    with local_engine() as engine:
        yield engine


@pytest.fixture(scope="module")
def server(engine: LocalChatEngine) -> Iterator[ModelServer]:
    """One local API server for the module, on a free port, without a key and with no model
    loaded: tests ask for theirs with `tests.support.served.serving`."""
    with started_server(engine) as server:
        yield server

"""`modeldeck --self-test`: does this install (source or bundle) start and run a model?

The checks run in a throwaway folder: `MODELDECK_DATA_DIR` and `HF_HOME` point into it and
the keyring is switched off, so nothing of the user's data, models or token is read or
written. The LLM check writes a tiny real GGUF there (`app.tiny_gguf`), loads it in the LLM
engine's child process and expects the scripted reply. The window check is Qt, so the UI
passes it in (`ui.application.run_self_test`); the core stays Qt-free.

Each check prints one line, "ok" or "FAIL" with the reason; the exit status is 0 when all
passed, 1 otherwise.
"""

from __future__ import annotations

import importlib.util
import os
import queue
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from app import __version__, paths
from app.errors import AppError

GENERATE_TIMEOUT_S = 60.0  # the scripted model answers in milliseconds; this is a hang


@dataclass(frozen=True)
class Check:
    """One thing to try: `run(folder)` returns what it saw, or raises to fail."""

    name: str
    run: Callable[[Path], str]


@dataclass(frozen=True, kw_only=True)
class CheckResult:
    name: str
    passed: bool
    detail: str  # what was seen, or why it failed
    seconds: float


def isolate_environment(folder: Path) -> None:
    """Point every place the app writes or reads user data at `folder`."""
    os.environ[paths.DATA_DIR_ENV] = str(folder / "data")
    os.environ["HF_HOME"] = str(folder / "huggingface")
    # The Library also looks in other apps' folders under the home: a fresh home is a first run.
    home = folder / "home"
    home.mkdir(exist_ok=True)
    os.environ["HOME"] = os.environ["USERPROFILE"] = str(home)
    for name in ("XDG_DATA_HOME", "XDG_CONFIG_HOME", "XDG_CACHE_HOME"):
        os.environ[name] = str(home / f".{name.split('_')[1].lower()}")
    for name in (
        "HF_HUB_CACHE",
        "HUGGINGFACE_HUB_CACHE",
        "HF_TOKEN",
        "HUGGING_FACE_HUB_TOKEN",
        "HF_TOKEN_PATH",
        "OLLAMA_MODELS",
    ):
        os.environ.pop(name, None)
    # No keyring prompt, and no read of the user's saved token.
    os.environ["PYTHON_KEYRING_BACKEND"] = "keyring.backends.fail.Keyring"


def check_data_folder(folder: Path) -> str:
    """A first run: the data folder and the database are created, defaults are read."""
    from app.core import Core

    core = Core.open()
    try:
        database = paths.database_path()
        if not database.is_file():
            raise RuntimeError(f"no database was created at {database}")
        context = core.settings.default_context_length
    finally:
        core.close()
    return f"created {paths.data_dir()}, default context {context} tokens"


def check_llm_engine(folder: Path) -> str:
    """Load a tiny scripted GGUF in the LLM engine's child process and generate its reply."""
    from app.chat.local import LocalChatEngine
    from app.engines.protocol import EventKind
    from app.llm.messages import LoadSettings
    from app.llm.sampling import Sampling
    from app.tiny_gguf import SCRIPTED_REPLY, write_scripted_gguf

    model = write_scripted_gguf(folder / "selftest.gguf")
    engine = LocalChatEngine()
    try:
        capabilities = engine.capabilities()
        engine.load(LoadSettings(path=model, context_length=512))
        started = time.perf_counter()
        handle = engine.generate(
            [{"role": "user", "content": "Say something."}],
            Sampling(temperature=0.0, max_tokens=16, seed=0),
        )
        text: list[str] = []
        try:
            for event in handle.events(timeout=GENERATE_TIMEOUT_S):
                if event.kind is EventKind.CHUNK:
                    text.append(event.text)
                elif event.kind is not EventKind.RESULT and event.terminal:
                    raise RuntimeError(event.failure.message)
        except queue.Empty:
            raise RuntimeError(f"no reply within {GENERATE_TIMEOUT_S:.0f} s") from None
        reply = "".join(text)
        if reply != SCRIPTED_REPLY:
            raise RuntimeError(f"expected {SCRIPTED_REPLY!r}, the model said {reply!r}")
        seconds = time.perf_counter() - started
    finally:
        engine.close()
    version = capabilities.get("version", "?")
    return f"llama.cpp {version} answered {reply!r} in {seconds:.2f} s"


def describe_image_runtime() -> str:
    """Whether torch and diffusers are present, without importing them (they load in a child)."""
    missing = [name for name in ("torch", "diffusers") if importlib.util.find_spec(name) is None]
    if not missing:
        return "image runtime: present (torch, diffusers)"
    return (
        f"image runtime: not in this install ({', '.join(missing)} missing); image models need "
        "the full bundle, or `pip install 'modeldeck[image]'` in a source install"
    )


def run_checks(checks: Sequence[Check], folder: Path) -> list[CheckResult]:
    """Run each check in order; a failing check does not stop the ones after it."""
    results: list[CheckResult] = []
    for check in checks:
        started = time.perf_counter()
        try:
            detail, passed = check.run(folder), True
        except AppError as error:
            detail, passed = str(error), False
        except Exception as error:  # any failure is a result to report, not a crash
            detail, passed = f"{type(error).__name__}: {error}", False
        results.append(
            CheckResult(
                name=check.name,
                passed=passed,
                detail=" ".join(detail.split()),  # one line, whatever the reason said
                seconds=time.perf_counter() - started,
            )
        )
    return results


def run_self_test(*, ui_checks: Sequence[Check] = (), out: TextIO | None = None) -> int:
    """Run every check in a throwaway folder, print one line each; 0 if all passed, else 1.

    Args:
        ui_checks: checks that need the UI (the main window), run after the data folder's.
        out: where the report goes (default: stdout).
    """
    # A Windows window app has no stdout unless it is redirected; the exit status still says.
    out = out or sys.stdout or open(os.devnull, "w")  # noqa: SIM115
    kind = "bundle" if getattr(sys, "frozen", False) else "source"
    folder = Path(tempfile.mkdtemp(prefix="modeldeck-selftest-"))
    try:
        isolate_environment(folder)
        python = sys.version.split()[0]
        print(f"ModelDeck {__version__} self-test ({kind}, Python {python})", file=out)
        checks = [
            Check("data folder", check_data_folder),
            *ui_checks,
            Check("LLM engine", check_llm_engine),
        ]
        results = run_checks(checks, folder)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    for result in results:
        status = "ok  " if result.passed else "FAIL"
        print(f"{status} {result.name}: {result.detail} ({result.seconds:.1f} s)", file=out)
    print(f"note {describe_image_runtime()}", file=out)
    failed = sum(not result.passed for result in results)
    print(f"self-test: {len(results) - failed} passed, {failed} failed", file=out, flush=True)
    return 1 if failed else 0

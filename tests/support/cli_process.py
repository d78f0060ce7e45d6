"""The environment of a `modeldeck` command run as a child process by a test (to kill it)."""

from __future__ import annotations

import os
import signal
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]


def cli_environment(data_dir: Path, hf_home: Path) -> dict[str, str]:
    """This environment without the machine's hub settings, pointed at a private data dir and
    HF home, with no keychain and no telemetry."""
    env = {
        key: value for key, value in os.environ.items() if not key.startswith(("HF_", "HUGGING"))
    }
    return env | {
        "MODELDECK_DATA_DIR": str(data_dir),
        "HF_HOME": str(hf_home),
        "HF_HUB_DISABLE_TELEMETRY": "1",
        "HF_HUB_DISABLE_XET": "1",
        "PYTHON_KEYRING_BACKEND": "keyring.backends.fail.Keyring",
        "PYTHONPATH": str(REPO_ROOT),
    }


@contextmanager
def killed_if_left(process: subprocess.Popen[str]) -> Iterator[subprocess.Popen[str]]:
    """`process`, killed (and reaped) if it is still running when the block ends, so a failed
    assertion never leaves a server behind."""
    try:
        yield process
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()


def stopped_by(process: subprocess.Popen[str], signum: signal.Signals) -> str:
    """Send `signum` (Ctrl+C is SIGINT) and wait up to 30 s for the exit; returns stderr."""
    process.send_signal(signum)
    _, stderr = process.communicate(timeout=30)
    return stderr

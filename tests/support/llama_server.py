"""llama-cpp-python's own OpenAI-compatible server, started for tests on 127.0.0.1.

`LlamaServer(model_path)` runs `python -m llama_cpp.server` as a child process on a free port
and waits until `GET /v1/models` answers; leaving the `with` block stops it. With the scripted
GGUF of `tests.support.gguf_builder`, every chat reply is exactly `SCRIPTED_REPLY`: the server
renders the GGUF's own ChatML template (it logs "Using gguf chat template").
"""

from __future__ import annotations

import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from types import TracebackType
from typing import IO

START_TIMEOUT_S = 60.0


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


class LlamaServer:
    """A running `llama_cpp.server` for one GGUF.

    Args:
        model_path: the GGUF to serve.
        api_key: when given, the server refuses requests without this bearer token.
        n_ctx: the context length.

    Attributes (once started):
        url: the API root, "http://127.0.0.1:PORT/v1".
        log: the server's output so far (for a failing test's message).
    """

    def __init__(self, model_path: Path, *, api_key: str | None = None, n_ctx: int = 512) -> None:
        self.model_path = model_path
        self.api_key = api_key
        self.n_ctx = n_ctx
        self.port = 0
        self._process: subprocess.Popen[bytes] | None = None
        self._log_file: IO[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    @property
    def log(self) -> str:
        if self._log_file is None:
            return ""
        self._log_file.flush()
        return Path(self._log_file.name).read_text(encoding="utf-8", errors="replace")

    def start(self) -> LlamaServer:
        """Start the server and wait until it answers (raises RuntimeError if it does not)."""
        self.port = free_port()
        command = [
            sys.executable,
            "-m",
            "llama_cpp.server",
            "--model",
            str(self.model_path),
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--n_ctx",
            str(self.n_ctx),
        ]
        if self.api_key is not None:
            command += ["--api_key", self.api_key]
        # A file, not a pipe: nobody reads the log while tests run, and a full pipe blocks.
        self._log_file = tempfile.NamedTemporaryFile(prefix="llama-server-", suffix=".log")  # noqa: SIM115
        self._process = subprocess.Popen(
            command, stdout=self._log_file, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
        )
        try:
            self._wait_until_up()
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        """Stop the server (terminate, then kill) and drop its log."""
        process, self._process = self._process, None
        if process is not None:
            process.terminate()
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(10)
        log_file, self._log_file = self._log_file, None
        if log_file is not None:
            log_file.close()

    def __enter__(self) -> LlamaServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    def _wait_until_up(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT_S
        request = urllib.request.Request(f"{self.url}/models")
        if self.api_key is not None:
            request.add_header("Authorization", f"Bearer {self.api_key}")
        while time.monotonic() < deadline:
            assert self._process is not None
            if self._process.poll() is not None:
                raise RuntimeError(
                    f"llama_cpp.server exited ({self._process.returncode}):\n{self.log[-3000:]}"
                )
            try:
                with urllib.request.urlopen(request, timeout=2) as response:
                    if response.status == 200:
                        return
            except urllib.error.HTTPError as error:
                error.close()  # an answer, but not yet the model list
            except OSError:
                pass  # not listening yet
            time.sleep(0.05)
        raise RuntimeError(
            f"llama_cpp.server did not answer within {START_TIMEOUT_S:.0f} s:\n{self.log[-3000:]}"
        )

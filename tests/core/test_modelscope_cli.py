"""`modeldeck search|info|pull --hub modelscope`, run as a real child process against the
ModelScope test server; a pull killed with SIGKILL continues where it stopped."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from app.store import Database
from tests.core.conftest import Cli
from tests.support.cli_process import REPO_ROOT, cli_environment
from tests.support.modelscope_server import ModelScopeServer
from tests.support.waiting import wait_until

WEIGHTS = bytes(range(256)) * 2048  # 512 KiB
MODEL = "Qwen/Tiny-GGUF"
FILE = "tiny-Q4_K_M.gguf"


@pytest.fixture
def server() -> Iterator[ModelScopeServer]:
    with ModelScopeServer() as running:
        running.add_model(
            MODEL,
            {FILE: WEIGHTS, "README.md": b"---\nlicense: apache-2.0\n---\n# Tiny\n"},
            license="Apache License 2.0",
            downloads=42,
        )
        yield running


def test_search_and_info_on_modelscope(cli: Cli, server: ModelScopeServer) -> None:
    found = cli.run("search", "tiny", "--hub", "modelscope", "--endpoint", server.url, "--json")
    assert found.returncode == 0, found.stderr
    (result,) = json.loads(found.stdout)
    assert result["id"] == MODEL
    assert result["hub"] == "modelscope"
    assert result["license"] == "apache-2.0"

    info = cli.run("info", MODEL, "--hub", "modelscope", "--endpoint", server.url, "--json")
    assert info.returncode == 0, info.stderr
    report = json.loads(info.stdout)
    assert FILE in json.dumps(report)
    assert "Apache" in json.dumps(report)

    missing = cli.run("info", "no/such", "--hub", "modelscope", "--endpoint", server.url)
    assert missing.returncode == 3, missing.stderr
    assert "no/such" in missing.stderr


def test_pull_into_modelscope_cache_and_list(
    cli: Cli, server: ModelScopeServer, tmp_path: Path
) -> None:
    env = {"MODELSCOPE_CACHE": str(tmp_path / "ms")}
    pulled = cli.run(
        "pull", MODEL, "Q4_K_M", "--hub", "modelscope", "--endpoint", server.url, env=env
    )
    assert pulled.returncode == 0, pulled.stderr
    target = tmp_path / "ms" / "models" / "Qwen" / "Tiny-GGUF" / FILE
    assert target.read_bytes() == WEIGHTS
    assert "verified" in pulled.stdout

    listed = cli.run("list", "--json", env=env)
    assert listed.returncode == 0, listed.stderr
    assert MODEL in listed.stdout


def test_a_killed_pull_continues_where_it_stopped(
    server: ModelScopeServer, data_dir: Path, hf_home: Path, tmp_path: Path
) -> None:
    cache = tmp_path / "ms"
    env = cli_environment(data_dir, hf_home) | {"MODELSCOPE_CACHE": str(cache)}
    command = [
        sys.executable,
        "-m",
        "ui.launcher",
        "pull",
        MODEL,
        "Q4_K_M",
        "--hub",
        "modelscope",
        "--endpoint",
        server.url,
    ]
    server.stall_after(MODEL, FILE, 200_000)
    child = subprocess.Popen(
        command, cwd=REPO_ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    sha256 = hashlib.sha256(WEIGHTS).hexdigest()
    partial = cache / "models" / "._____temp" / "Qwen" / "Tiny-GGUF" / f"{sha256}.incomplete"
    try:
        wait_until(lambda: partial.exists() and partial.stat().st_size == 200_000, timeout=30)
    finally:
        os.kill(child.pid, signal.SIGKILL)
        child.wait(timeout=10)

    server.stop_stalling(MODEL, FILE)
    again = subprocess.run(
        command, cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=60, check=False
    )
    assert again.returncode == 0, again.stderr
    ranges = [r.headers.get("range") for r in server.requests if r.query.get("FilePath") == FILE]
    assert ranges == [None, "bytes=200000-"]
    assert (cache / "models" / "Qwen" / "Tiny-GGUF" / FILE).read_bytes() == WEIGHTS
    assert not partial.exists()
    # One job in the app's download queue: the second run adopted the one the killed run left.
    database = Database(data_dir / "modeldeck.sqlite3")
    try:
        jobs = database.fetch_all("SELECT hub, repo_id, state FROM download_jobs")
    finally:
        database.close()
    assert jobs == [("modelscope", MODEL, "completed")]

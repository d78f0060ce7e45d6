"""`modeldeck pull`: output, exit codes, and resuming after Ctrl+C or a kill -9 of the process."""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from huggingface_hub import hf_hub_download

from app.commands import pull
from app.core import Core
from tests.core.conftest import REPO_ROOT
from tests.support.cli_process import cli_environment
from tests.support.hub_server import DropAfter, Fault, FlipByte, HubServer, Stall
from tests.support.waiting import wait_until

MODEL = os.urandom(1_000_000)
MODEL_SHA = hashlib.sha256(MODEL).hexdigest()
CDN_GET = r"^/lfs/"


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.fixture
def repo(hub_server: HubServer) -> str:
    return hub_server.add_repo(
        "org/tiny", {"tiny-Q4_K_M.gguf": MODEL, "config.json": b"{}"}, card="# Tiny\n"
    )


@pytest.fixture
def core(hub_server: HubServer, data_dir: Path, hf_home: Path) -> Iterator[Core]:
    opened = Core.open(data_dir=data_dir, endpoint_override=hub_server.url)
    yield opened
    opened.close()


def parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="modeldeck")
    pull.register(parser.add_subparsers(dest="command"))
    return parser.parse_args(["pull", *argv])


def one_error_line(capsys: pytest.CaptureFixture[str]) -> str:
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1, lines
    assert lines[0].startswith("modeldeck: ")
    return lines[0]


def test_pull_draws_a_bar_on_a_terminal_and_says_where_the_files_are(
    core: Core, repo: str, hf_home: Path
) -> None:
    out = Terminal()
    assert pull.run(core, parse("org/tiny", "Q4_K_M"), out) == pull.EXIT_OK

    text = out.getvalue()
    assert text.startswith("\rorg/tiny [Q4_K_M] [")
    assert "100%" in text and "1 MB / 1 MB" in text
    folder = hf_home / "hub" / "models--org--tiny" / "snapshots" / repo
    assert text.endswith(f"\nDownloaded 1 file (1 MB) of org/tiny to {folder}\n")
    cached = hf_hub_download(
        "org/tiny", "tiny-Q4_K_M.gguf", cache_dir=hf_home / "hub", local_files_only=True
    )
    assert Path(cached).read_bytes() == MODEL


def test_pull_without_a_terminal_prints_only_the_outcome(core: Core, repo: str) -> None:
    out = io.StringIO()
    assert pull.run(core, parse("org/tiny"), out) == pull.EXIT_OK  # the whole repository
    (line,) = out.getvalue().splitlines()
    assert line.startswith("Downloaded 3 files (")


def test_pull_json_prints_progress_and_done_events(
    core: Core, repo: str, hub_server: HubServer
) -> None:
    out = io.StringIO()
    assert pull.run(core, parse("org/tiny", "*.gguf", "--json"), out) == pull.EXIT_OK

    events = [json.loads(line) for line in out.getvalue().splitlines()]
    assert events[0]["event"] == "progress" and events[0]["total"] == len(MODEL)
    done = events[-1]
    assert done["event"] == "done"
    assert done["repo_id"] == "org/tiny" and done["revision"] == repo
    assert done["files"] == ["tiny-Q4_K_M.gguf"] and done["bytes"] == len(MODEL)
    assert Path(done["path"], "tiny-Q4_K_M.gguf").read_bytes() == MODEL

    hub_server.clear_requests()  # a second pull finds everything in the cache
    assert pull.run(core, parse("org/tiny", "*.gguf", "--json"), io.StringIO()) == pull.EXIT_OK
    assert hub_server.requests_to(CDN_GET) == []


def test_pull_exit_codes_not_found_gated_and_corrupt(
    core: Core, repo: str, hub_server: HubServer, capsys: pytest.CaptureFixture[str]
) -> None:
    assert pull.run(core, parse("org/missing"), io.StringIO()) == pull.EXIT_NOT_FOUND
    assert "org/missing" in one_error_line(capsys)

    assert pull.run(core, parse("org/tiny", "Q2_K"), io.StringIO()) == pull.EXIT_NOT_FOUND
    assert "no file matching 'Q2_K'" in one_error_line(capsys)

    hub_server.add_repo("org/gated", {"model.gguf": MODEL}, gated="auto")
    out = io.StringIO()
    assert pull.run(core, parse("org/gated", "--json"), out) == pull.EXIT_FORBIDDEN
    assert f"{hub_server.url}/org/gated" in one_error_line(capsys)
    error = json.loads(out.getvalue().splitlines()[-1])
    assert error["event"] == "error" and error["kind"] == "gated" and error["exit_code"] == 4

    hub_server.inject(Fault(FlipByte(5), path=CDN_GET, method="GET", times=2))
    assert pull.run(core, parse("org/tiny", "Q4_K_M"), io.StringIO()) == pull.EXIT_ERROR
    assert "sha256 mismatch twice" in one_error_line(capsys)


def test_pull_when_the_hub_is_unreachable_exits_5(
    core: Core, repo: str, hub_server: HubServer, capsys: pytest.CaptureFixture[str]
) -> None:
    core.hub.model_details("org/tiny")  # seen before: an offline copy of its details exists
    hub_server.stop()

    assert pull.run(core, parse("org/tiny"), io.StringIO()) == pull.EXIT_OFFLINE
    assert one_error_line(capsys).startswith("modeldeck: offline: cannot reach")
    assert pull.run(core, parse("org/never-seen"), io.StringIO()) == pull.EXIT_OFFLINE
    assert "offline" in one_error_line(capsys)


# -- a real process, interrupted ---------------------------------------------------------------

BIG_SIZE = 20_000_000
FIRST_PART = 5_000_000


@pytest.fixture
def big_repo(hub_server: HubServer, tmp_path: Path) -> str:
    """org/big: one 20 MB file. Its first GET drops after 5 MB; the second stalls (30 s)."""
    path = tmp_path / "big-Q8_0.gguf"
    path.write_bytes(os.urandom(BIG_SIZE))
    hub_server.add_repo("org/big", {"big-Q8_0.gguf": path})
    hub_server.inject(Fault(DropAfter(FIRST_PART), path=CDN_GET, method="GET"))
    hub_server.inject(Fault(Stall(30), path=CDN_GET, method="GET"))
    return hashlib.sha256(path.read_bytes()).hexdigest()


def start_pull(hub_server: HubServer, data_dir: Path, hf_home: Path) -> subprocess.Popen[str]:
    env = cli_environment(data_dir, hf_home)
    return subprocess.Popen(
        [sys.executable, "-m", "app.commands.pull", "--endpoint", hub_server.url, "org/big"],
        cwd=REPO_ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def wait_for_partial(partial: Path, size: int, child: subprocess.Popen[str]) -> None:
    def reached() -> bool:
        assert child.poll() is None, child.communicate()
        return partial.exists() and partial.stat().st_size == size

    wait_until(reached, timeout=30, interval=0.02, message=f"the partial file never reached {size}")


def job_states(data_dir: Path) -> list[str]:
    with sqlite3.connect(data_dir / "modeldeck.sqlite3") as connection:
        return [row[0] for row in connection.execute("SELECT state FROM download_jobs")]


def finish_and_check(
    hub_server: HubServer, data_dir: Path, hf_home: Path, blob_sha: str, partial: Path
) -> None:
    hub_server.clear_faults()
    hub_server.clear_requests()
    again = start_pull(hub_server, data_dir, hf_home)
    stdout, stderr = again.communicate(timeout=60)
    assert again.returncode == 0, stderr
    assert stdout.startswith("Downloaded 1 file (20 MB) of org/big")
    resolve = hub_server.requests_to(r"/resolve/", "GET")[0]
    assert resolve.range == f"bytes={FIRST_PART}-"  # the next GET continued from the partial
    cdn = hub_server.requests_to(CDN_GET, "GET")[0]
    assert cdn.range == f"bytes={FIRST_PART}-" and cdn.status == 206
    blob = partial.with_suffix("")
    assert hashlib.sha256(blob.read_bytes()).hexdigest() == blob_sha
    assert not partial.exists()
    assert job_states(data_dir) == ["completed"]  # the same job, adopted and finished


def test_pull_continues_after_the_process_is_killed(
    hub_server: HubServer, big_repo: str, data_dir: Path, hf_home: Path
) -> None:
    partial = hf_home / "hub" / "models--org--big" / "blobs" / f"{big_repo}.incomplete"
    child = start_pull(hub_server, data_dir, hf_home)
    wait_for_partial(partial, FIRST_PART, child)
    child.send_signal(signal.SIGKILL)
    child.communicate(timeout=10)
    assert job_states(data_dir) == ["running"]  # as a crash leaves it

    finish_and_check(hub_server, data_dir, hf_home, big_repo, partial)


def test_ctrl_c_pauses_the_pull_and_the_next_pull_continues(
    hub_server: HubServer, big_repo: str, data_dir: Path, hf_home: Path
) -> None:
    partial = hf_home / "hub" / "models--org--big" / "blobs" / f"{big_repo}.incomplete"
    child = start_pull(hub_server, data_dir, hf_home)
    wait_for_partial(partial, FIRST_PART, child)
    started = time.monotonic()
    child.send_signal(signal.SIGINT)
    _, stderr = child.communicate(timeout=20)

    assert child.returncode == pull.EXIT_INTERRUPTED
    assert time.monotonic() - started < 5  # it does not wait for the stalled connection
    assert stderr.strip().splitlines() == [
        "modeldeck: interrupted: the download is paused; run the same command again to continue."
    ]
    assert job_states(data_dir) == ["paused"]
    assert partial.stat().st_size == FIRST_PART

    finish_and_check(hub_server, data_dir, hf_home, big_repo, partial)

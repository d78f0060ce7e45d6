"""`modeldeck search|info|pull --hub civitai` and `modeldeck identify`, run as real child
processes against the fake Civitai."""

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
from tests.support.civitai_server import CivitaiServer, ServedFile
from tests.support.cli_process import REPO_ROOT, cli_environment
from tests.support.waiting import wait_until

CHECKPOINT = os.urandom(200_000)
LORA = os.urandom(30_000)
NO_TOKEN = {"CIVITAI_TOKEN": "", "CIVITAI_API_TOKEN": ""}


@pytest.fixture
def civitai() -> Iterator[CivitaiServer]:
    with CivitaiServer() as server:
        server.add_model(
            1, "Anime Checkpoint", downloads=900, allow_commercial_use=["Image"],
            files=[ServedFile(id=11, name="animeCheckpoint_v1.safetensors", data=CHECKPOINT),
                   ServedFile(id=12, name="anime.ckpt", data=b"p", format="PickleTensor",
                              primary=False, kind="Pruned Model")],
        )  # fmt: skip
        server.add_model(
            2, "Anime LoRA", type="LORA", base_model="Pony", trained_words=("anime girl",),
            files=[ServedFile(id=21, name="animeLora.safetensors", data=LORA,
                              requires_login=True)], downloads=800,
        )  # fmt: skip
        server.add_model(3, "Anime NSFW", nsfw=True, downloads=1000)
        yield server


def run(cli: Cli, *args: str, token: str | None = None) -> tuple[int, str, str]:
    env = NO_TOKEN | ({"CIVITAI_TOKEN": token} if token else {})
    result = cli.run(*args, env=env)
    return result.returncode, result.stdout, result.stderr


def test_search_shows_checkpoints_and_loras_with_permissions(
    cli: Cli, civitai: CivitaiServer
) -> None:
    code, out, err = run(cli, "search", "anime", "--hub", "civitai", "--endpoint", civitai.url,
                         "--json")  # fmt: skip
    assert code == 0, err
    results = json.loads(out)
    assert [r["id"] for r in results] == ["civitai:1/Anime Checkpoint", "civitai:2/Anime LoRA"]
    assert {r["hub"] for r in results} == {"civitai"}
    assert results[0]["license"] == "civitai:image,derivatives,no-credit,different-license"
    code, out, err = run(cli, "search", "anime", "--hub", "civitai", "--endpoint", civitai.url)
    assert code == 0, err
    assert "civitai:2" in out and "LORA" not in out.split("\n")[0]


def test_info_shows_permissions_scans_and_files(cli: Cli, civitai: CivitaiServer) -> None:
    code, out, err = run(cli, "info", "civitai:1", "--hub", "civitai", "--endpoint", civitai.url)
    assert code == 0, err
    assert "Civitai permissions" in out
    assert "only to sell images it generates" in out
    assert "animeCheckpoint_v1.safetensors" in out
    assert hashlib.sha256(CHECKPOINT).hexdigest()[:12] in out
    missing = run(cli, "info", "civitai:99", "--hub", "civitai", "--endpoint", civitai.url)
    assert missing[0] == 3 and "No model with id 99" in missing[2]


def test_pull_verifies_and_records_provenance(cli: Cli, civitai: CivitaiServer) -> None:
    code, out, err = run(cli, "pull", "civitai:1", "--hub", "civitai", "--endpoint", civitai.url)
    assert code == 0, err
    assert "sha256 verified" in out
    path = cli.data_dir / "models" / "checkpoints" / "animeCheckpoint_v1.safetensors"
    assert path.read_bytes() == CHECKPOINT
    sidecar = json.loads(path.with_name("animeCheckpoint_v1.civitai.info").read_text())
    assert sidecar["modelId"] == 1 and sidecar["id"] == 10


def test_pull_needs_a_token_for_login_only_files(cli: Cli, civitai: CivitaiServer) -> None:
    args = ("pull", "civitai:2@20", "--hub", "civitai", "--endpoint", civitai.url, "--json")
    code, _, err = run(cli, *args)
    assert code == 4 and "logged in" in err and "API key" in err
    code, out, err = run(cli, *args, token=civitai.token)
    assert code == 0, err
    record = json.loads(out.strip().splitlines()[-1])
    assert record["trained_words"] == ["anime girl"] and record["base_model"] == "Pony"
    assert Path(record["path"]).parent.name == "loras"
    assert civitai.token not in err + out


def test_pull_refuses_pickles(cli: Cli, civitai: CivitaiServer) -> None:
    code, _, err = run(cli, "pull", "civitai:1", "anime.ckpt", "--hub", "civitai",
                       "--endpoint", civitai.url)  # fmt: skip
    assert code == 6 and "pickle" in err


def test_identify_records_provenance(cli: Cli, civitai: CivitaiServer, tmp_path: Path) -> None:
    local = tmp_path / "my-lora.safetensors"
    local.write_bytes(LORA)
    code, out, err = run(cli, "identify", str(local), "--endpoint", civitai.url)
    assert code == 0, err
    assert "Anime LoRA" in out and "civitai:2@20" in out and "anime girl" in out
    assert (tmp_path / "my-lora.civitai.info").exists()
    other = tmp_path / "other.safetensors"
    other.write_bytes(b"unknown")
    code, _, err = run(cli, "identify", str(other), "--endpoint", civitai.url)
    assert code == 3, err


def test_pull_killed_with_sigkill_continues_where_it_stopped(
    cli: Cli, civitai: CivitaiServer
) -> None:
    civitai.stall_after(11, 80_000)
    env = cli_environment(cli.data_dir, cli.hf_home) | NO_TOKEN
    child = subprocess.Popen(
        [sys.executable, "-m", "ui.launcher", "pull", "civitai:1", "--hub", "civitai",
         "--endpoint", civitai.url],
        cwd=REPO_ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    folder = cli.data_dir / "models" / "checkpoints"
    partial = folder / f".{hashlib.sha256(CHECKPOINT).hexdigest()}.incomplete"

    def reached() -> bool:
        assert child.poll() is None, child.communicate()
        return partial.exists() and partial.stat().st_size == 80_000

    wait_until(reached, timeout=30, interval=0.02, message="the partial never reached 80 kB")
    child.send_signal(signal.SIGKILL)
    child.communicate(timeout=10)
    civitai.clear_faults()

    code, out, err = run(cli, "pull", "civitai:1", "--hub", "civitai", "--endpoint", civitai.url)
    assert code == 0, err
    assert "sha256 verified" in out
    assert civitai.requests_to("/cdn/")[-1].range == "bytes=80000-"
    assert (folder / "animeCheckpoint_v1.safetensors").read_bytes() == CHECKPOINT
    assert not partial.exists()
    # One job in the app's download queue: the second run adopted the one the killed run left.
    database = Database(cli.data_dir / "modeldeck.sqlite3")
    try:
        jobs = database.fetch_all("SELECT hub, repo_id, state FROM download_jobs")
    finally:
        database.close()
    assert jobs == [("civitai", "civitai:1@10", "completed")]

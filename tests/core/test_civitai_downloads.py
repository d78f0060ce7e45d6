"""Civitai downloads over real HTTP: verified, resumed, refused, placed per kind, never twice."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from app.downloads.civitai import (
    FlaggedFileError,
    PickleRefusedError,
    content_disposition_filename,
    fetch_civitai_file,
    plan_civitai_download,
)
from app.downloads.transfer import RetryPolicy
from app.errors import GatedRepoError, IntegrityError
from app.hub.civitai.client import CivitaiClient
from app.hub.civitai.provenance import read_sidecar, sidecar_path
from app.hub.civitai.provider import CivitaiHub
from app.hub.civitai.settings import CivitaiSettings, FolderKind, FolderLayout
from app.hub.untrusted import UnsafeHubDataError
from tests.support.civitai_server import CivitaiServer, ServedFile
from tests.support.cli_process import REPO_ROOT
from tests.support.waiting import wait_until

CHECKPOINT = os.urandom(300_000)
LORA = os.urandom(50_000)
FAST = RetryPolicy(delays=(0.01,), attempts=3, stall_seconds=5)


@pytest.fixture
def civitai() -> Iterator[CivitaiServer]:
    with CivitaiServer() as server:
        server.add_model(1, "Anime Mix", files=[
            ServedFile(id=11, name="animeMix_v1.safetensors", data=CHECKPOINT),
            ServedFile(id=12, name="animeMix_v1.ckpt", data=b"pickle", format="PickleTensor",
                       primary=False, kind="Pruned Model"),
        ])  # fmt: skip
        server.add_model(2, "Anime Style", type="LORA", base_model="SDXL 1.0",
                         trained_words=("anime style",),
                         files=[ServedFile(id=21, name="style.safetensors", data=LORA,
                                           requires_login=True)])  # fmt: skip
        server.add_model(3, "Bad", files=[
            ServedFile(id=31, name="bad.safetensors", data=b"x" * 100, virus_scan="Danger"),
        ])  # fmt: skip
        yield server


@pytest.fixture
def settings(tmp_path: Path) -> CivitaiSettings:
    return CivitaiSettings(models_dir=str(tmp_path / "models"))


def pull(
    civitai: CivitaiServer, settings: CivitaiSettings, ref: str, *, token: str | None = None,
    file_name: str | None = None,
) -> Path:  # fmt: skip
    with CivitaiClient(endpoint=civitai.url, token=token) as client:
        model, version = CivitaiHub(client).version(ref)
        plan = plan_civitai_download(
            model, version, endpoint=civitai.url, settings=settings, file_name=file_name
        )
        return fetch_civitai_file(plan, client=client, policy=FAST)


def test_checkpoint_is_verified_and_placed_with_its_provenance(
    civitai: CivitaiServer, settings: CivitaiSettings
) -> None:
    path = pull(civitai, settings, "civitai:1")
    assert path == settings.resolved_models_dir() / "checkpoints" / "animeMix_v1.safetensors"
    assert path.read_bytes() == CHECKPOINT
    provenance = read_sidecar(path)
    assert provenance is not None
    assert (provenance.model_id, provenance.version_id) == (1, 10)
    assert provenance.sha256 == hashlib.sha256(CHECKPOINT).hexdigest()
    assert provenance.base_model == "SD 1.5"
    assert not list(path.parent.glob("*.incomplete"))
    # Civitai Helper's own shape: it reads our sidecar too.
    data = json.loads(sidecar_path(path).read_text())
    assert (
        data["modelId"] == 1
        and data["files"][0]["hashes"]["SHA256"] == hashlib.sha256(CHECKPOINT).hexdigest().upper()
    )


def test_never_downloaded_twice(civitai: CivitaiServer, settings: CivitaiSettings) -> None:
    pull(civitai, settings, "civitai:1")
    before = len(civitai.requests_to("/cdn/"))
    pull(civitai, settings, "civitai:1@10")
    assert len(civitai.requests_to("/cdn/")) == before
    assert len(civitai.requests_to("/api/download/")) == 1


def test_login_required_file_needs_the_token(
    civitai: CivitaiServer, settings: CivitaiSettings
) -> None:
    with pytest.raises(GatedRepoError, match="logged in") as caught:
        pull(civitai, settings, "civitai:2")
    assert "API key" in (caught.value.hint or "")
    path = pull(civitai, settings, "civitai:2", token=civitai.token)
    assert path.parent.name == "loras" and path.read_bytes() == LORA
    provenance = read_sidecar(path)
    assert provenance is not None and provenance.trained_words == ("anime style",)
    assert civitai.requests_to("/api/download/")[-1].authorization == f"Bearer {civitai.token}"


def test_a1111_layout(civitai: CivitaiServer, tmp_path: Path) -> None:
    webui = tmp_path / "webui" / "models"
    settings = CivitaiSettings(models_dir=str(webui), layout=FolderLayout.A1111)
    path = pull(civitai, settings, "civitai:2", token=civitai.token)
    assert path.parent == webui / "Lora"
    assert settings.folder_for(FolderKind.EMBEDDINGS) == tmp_path / "webui" / "embeddings"


def test_corrupt_byte_is_refused_and_nothing_kept(
    civitai: CivitaiServer, settings: CivitaiSettings
) -> None:
    civitai.flip_byte(11, offset=1234)
    with pytest.raises(IntegrityError, match="sha256 mismatch"):
        pull(civitai, settings, "civitai:1")
    folder = settings.resolved_models_dir() / "checkpoints"
    assert [p.name for p in folder.iterdir()] == []


def test_dropped_connection_resumes_with_range(
    civitai: CivitaiServer, settings: CivitaiSettings
) -> None:
    civitai.drop_after(11, 100_000)
    path = pull(civitai, settings, "civitai:1")
    assert path.read_bytes() == CHECKPOINT
    ranges = [request.range for request in civitai.requests_to("/cdn/")]
    assert ranges == [None, "bytes=100000-"]


def test_pickles_and_flagged_files_are_refused(
    civitai: CivitaiServer, settings: CivitaiSettings
) -> None:
    with pytest.raises(PickleRefusedError, match="pickle"):
        pull(civitai, settings, "civitai:1", file_name="animeMix_v1.ckpt")
    with pytest.raises(FlaggedFileError, match="antivirus: danger"):
        pull(civitai, settings, "civitai:3")
    assert civitai.requests_to("/api/download/") == []


def test_content_disposition_names() -> None:
    assert (
        content_disposition_filename('attachment; filename="a b.safetensors"') == "a b.safetensors"
    )
    assert (
        content_disposition_filename("attachment; filename*=UTF-8''%C3%A9.safetensors")
        == "é.safetensors"
    )
    assert content_disposition_filename("attachment") is None


_CHILD = textwrap.dedent(
    """
    import sys
    from pathlib import Path
    from app.downloads.civitai import fetch_civitai_file, plan_civitai_download
    from app.hub.civitai.client import CivitaiClient
    from app.hub.civitai.provider import CivitaiHub
    from app.hub.civitai.settings import CivitaiSettings

    endpoint, folder = sys.argv[1], sys.argv[2]
    settings = CivitaiSettings(models_dir=folder)
    with CivitaiClient(endpoint=endpoint) as client:
        model, version = CivitaiHub(client).version("civitai:1")
        plan = plan_civitai_download(model, version, endpoint=endpoint, settings=settings)
        print(fetch_civitai_file(plan, client=client))
    """
)


def test_kill_9_then_resume(civitai: CivitaiServer, settings: CivitaiSettings) -> None:
    civitai.stall_after(11, 120_000)
    folder = settings.resolved_models_dir()
    child = subprocess.Popen(
        [sys.executable, "-c", _CHILD, civitai.url, str(folder)],
        cwd=REPO_ROOT, env=os.environ | {"PYTHONPATH": str(REPO_ROOT)},
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    partial = folder / "checkpoints" / f".{hashlib.sha256(CHECKPOINT).hexdigest()}.incomplete"

    def reached() -> bool:
        assert child.poll() is None, child.communicate()
        return partial.exists() and partial.stat().st_size == 120_000

    wait_until(reached, timeout=30, interval=0.02, message="the partial never reached 120 kB")
    child.send_signal(signal.SIGKILL)
    child.communicate(timeout=10)
    civitai.clear_faults()

    path = pull(civitai, settings, "civitai:1")
    assert path.read_bytes() == CHECKPOINT
    assert civitai.requests_to("/cdn/")[-1].range == "bytes=120000-"
    assert not partial.exists()


@pytest.mark.parametrize(
    "disposition",
    ['attachment; filename="../../escape.safetensors"',
     "attachment; filename*=UTF-8''..%2F..%2Fescape.safetensors",
     'attachment; filename="a\\\\b.safetensors"'],
)  # fmt: skip
def test_a_hostile_content_disposition_name_is_refused(
    settings: CivitaiSettings, tmp_path: Path, disposition: str
) -> None:
    with CivitaiServer() as server:
        server.add_model(9, "Hostile", files=[
            ServedFile(id=91, name="ok.safetensors", data=b"w" * 1000, disposition=disposition)
        ])  # fmt: skip
        with pytest.raises(UnsafeHubDataError):
            pull(server, settings, "civitai:9")
    assert not list(tmp_path.rglob("escape.safetensors"))
    assert not list((settings.resolved_models_dir() / "checkpoints").glob("*.safetensors"))


def test_hostile_listed_names_are_refused_before_any_byte(
    settings: CivitaiSettings, tmp_path: Path
) -> None:
    with CivitaiServer() as server:
        server.add_model(8, "Hostile", files=[
            ServedFile(id=81, name="../../x.safetensors", data=b"w" * 10)
        ])  # fmt: skip
        with pytest.raises(UnsafeHubDataError):
            pull(server, settings, "civitai:8")
        assert server.requests_to("/api/download/") == []


def test_a_rate_limited_download_waits_and_retries(
    civitai: CivitaiServer, settings: CivitaiSettings
) -> None:
    civitai.rate_limit(1, retry_after="0", prefix="/api/download/")
    path = pull(civitai, settings, "civitai:1")
    assert path.read_bytes() == CHECKPOINT
    assert len(civitai.requests_to("/api/download/")) == 2

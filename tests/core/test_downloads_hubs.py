"""One queue for every hub: Civitai and ModelScope jobs in `DownloadManager`, over real HTTP.

Each job is stopped part-way (the server drops the connection, and the retry waits 30 s, so
the job sits "running" with bytes on disk), then paused and resumed, or the manager is shut
down and a new one made on the same database (a restart): the job is found as it was and
continues from the bytes on disk with a Range request, into its hub's own place.
"""

from __future__ import annotations

import hashlib
import json
import os
import pickle
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import pytest

from app.downloads import DownloadManager, DownloadPlan, JobState
from app.downloads.civitai import plan_civitai_download
from app.downloads.modelscope import plan_modelscope
from app.downloads.sources import CivitaiSource, Hub, ModelScopeSource
from app.downloads.transfer import RetryPolicy
from app.hub.civitai.client import CivitaiClient
from app.hub.civitai.provider import CivitaiHub
from app.hub.civitai.settings import CivitaiSettings
from app.hub.modelscope.api import ModelScopeClient
from app.hub.modelscope.layout import cached_paths
from app.hub.untrusted import UnsafeHubDataError
from app.store import Database
from tests.support.civitai_server import CivitaiServer, ServedFile
from tests.support.modelscope_server import ModelScopeServer
from tests.support.waiting import wait_until

CHECKPOINT = os.urandom(300_000)
WEIGHTS = os.urandom(200_000)
MS_MODEL, MS_FILE = "org/Tiny-GGUF", "tiny-q4_k_m.gguf"
STOP_AT = 100_000
# A dropped connection is retried only after 30 s: meanwhile the job is running, stopped.
SLOW_RETRY = RetryPolicy(delays=(30.0,), attempts=3, stall_seconds=5)


@dataclass
class HubCase:
    """A hub's job: its plan, how to stop its transfer at STOP_AT, and where it lands."""

    plan: DownloadPlan
    stop_at: Callable[[], None]
    ranges: Callable[[], list[str | None]]  # the Range of each file GET, in order
    landed: Callable[[], bytes]


@pytest.fixture
def civitai_case(tmp_path: Path) -> Iterator[HubCase]:
    with CivitaiServer() as server:
        server.add_model(1, "Anime Mix", files=[
            ServedFile(id=11, name="animeMix_v1.safetensors", data=CHECKPOINT),
        ])  # fmt: skip
        settings = CivitaiSettings(models_dir=str(tmp_path / "models"))
        with CivitaiClient(endpoint=server.url) as client:
            model, version = CivitaiHub(client).version("civitai:1")
        download = plan_civitai_download(model, version, endpoint=server.url, settings=settings)
        final = tmp_path / "models" / "checkpoints" / "animeMix_v1.safetensors"

        def landed() -> bytes:
            info = json.loads(final.with_name("animeMix_v1.civitai.info").read_text())
            assert info["modelId"] == 1 and info["id"] == version.id
            return final.read_bytes()

        yield HubCase(
            plan=download.job_plan(endpoint=server.url),
            stop_at=lambda: server.drop_after(11, STOP_AT),
            ranges=lambda: [r.range for r in server.requests_to("/cdn/")],
            landed=landed,
        )


@pytest.fixture
def modelscope_case(tmp_path: Path) -> Iterator[HubCase]:
    with ModelScopeServer() as server:
        server.add_model(MS_MODEL, {MS_FILE: WEIGHTS, "README.md": b"# tiny\n"})
        root = tmp_path / "ms" / "models"
        plan = plan_modelscope(
            ModelScopeClient(endpoint=server.url), MS_MODEL, ["Q4_K_M"], root=root
        )
        folder = root / "org" / "Tiny-GGUF"

        def landed() -> bytes:
            assert pickle.loads((folder / ".mdl").read_bytes()) == {"id": MS_MODEL}
            assert MS_FILE in cached_paths(folder)
            return (folder / MS_FILE).read_bytes()

        def ranges() -> list[str | None]:
            gets = server.requests_to(f"/api/v1/models/{MS_MODEL}/repo")
            return [r.headers.get("range") for r in gets if r.query.get("FilePath") == MS_FILE]

        yield HubCase(
            plan=plan,
            stop_at=lambda: server.drop_after(MS_MODEL, MS_FILE, STOP_AT),
            ranges=ranges,
            landed=landed,
        )


@pytest.fixture(params=["civitai", "modelscope"])
def case(request: pytest.FixtureRequest) -> HubCase:
    return request.getfixturevalue(f"{request.param}_case")  # type: ignore[no-any-return]


@pytest.fixture
def new_manager(database: Database, tmp_path: Path) -> Iterator[Callable[[], DownloadManager]]:
    made: list[DownloadManager] = []

    def make() -> DownloadManager:
        manager = DownloadManager(
            database,
            endpoint="http://127.0.0.1:9",  # Hugging Face: never asked in these tests
            cache_dir=tmp_path / "hf",
            retry=SLOW_RETRY,
            free_space=lambda _path: 1 << 40,
        )
        made.append(manager)
        return manager

    yield make
    for manager in made:
        manager.shutdown(timeout=5)


def stopped_part_way(manager: DownloadManager, case: HubCase) -> int:
    case.stop_at()
    manager.start()
    job_id = manager.enqueue(case.plan)
    wait_until(
        lambda: manager.job(job_id).bytes_done == STOP_AT,
        timeout=15,
        message=lambda: f"last status: {manager.job(job_id)}",
    )
    return job_id


def test_a_job_of_another_hub_pauses_and_resumes_from_the_bytes_on_disk(
    case: HubCase, new_manager: Callable[[], DownloadManager]
) -> None:
    manager = new_manager()
    job_id = stopped_part_way(manager, case)
    assert manager.job(job_id).hub is case.plan.hub

    assert manager.pause(job_id)
    paused = manager.wait(job_id, timeout=5)
    assert paused.state is JobState.PAUSED and paused.bytes_done == STOP_AT

    assert manager.resume(job_id)
    done = manager.wait(job_id, timeout=20)
    assert done.state is JobState.COMPLETED, done
    assert case.ranges()[-1] == f"bytes={STOP_AT}-"
    assert hashlib.sha256(case.landed()).hexdigest() == case.plan.files[0].sha256


def test_a_job_of_another_hub_survives_a_restart_of_the_queue(
    case: HubCase, new_manager: Callable[[], DownloadManager]
) -> None:
    first = new_manager()
    job_id = stopped_part_way(first, case)
    first.shutdown(timeout=5)  # as at a quit: the job is saved queued, its bytes on disk

    second = new_manager()  # a new process: the job comes back from the database
    restored = second.job(job_id)
    assert restored.hub is case.plan.hub and restored.repo_id == case.plan.repo_id
    assert restored.state is JobState.QUEUED and restored.bytes_done == STOP_AT
    second.start()
    done = second.wait(job_id, timeout=20)
    assert done.state is JobState.COMPLETED, done
    assert case.ranges()[-1] == f"bytes={STOP_AT}-"
    assert hashlib.sha256(case.landed()).hexdigest() == case.plan.files[0].sha256


def test_the_saved_source_reads_back_as_it_was(
    case: HubCase, new_manager: Callable[[], DownloadManager], database: Database
) -> None:
    manager = new_manager()
    job_id = manager.enqueue(case.plan)  # not started: saved only
    (hub, source), *_ = database.fetch_all(
        "SELECT hub, source FROM download_jobs WHERE id = ?", (job_id,)
    )
    assert hub == case.plan.hub.value
    from app.downloads.sources import source_from_json

    assert source_from_json(Hub(hub), source, about="test") == case.plan.source
    assert isinstance(case.plan.source, CivitaiSource | ModelScopeSource)


def test_an_unreadable_saved_source_is_refused_and_the_rest_runs(
    civitai_case: HubCase, new_manager: Callable[[], DownloadManager], database: Database
) -> None:
    job_id = new_manager().enqueue(civitai_case.plan)
    database.execute(
        "UPDATE download_jobs SET source = ? WHERE id = ?",
        ('{"endpoint": "x", "folder": "relative/../path"}', job_id),
    )
    restored = new_manager().job(job_id)
    assert restored.state is JobState.FAILED
    assert restored.error is not None and "cannot be read" in restored.error


def test_a_civitai_plan_whose_address_leaves_its_site_is_refused(
    civitai_case: HubCase, new_manager: Callable[[], DownloadManager]
) -> None:
    source = civitai_case.plan.source
    assert isinstance(source, CivitaiSource)
    elsewhere = replace(
        civitai_case.plan, source=replace(source, url="http://127.0.0.2:1/api/download/models/10")
    )
    with pytest.raises(UnsafeHubDataError, match="not on"):
        new_manager().enqueue(elsewhere)

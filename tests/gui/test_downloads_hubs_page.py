"""Civitai and ModelScope jobs on the Downloads page: shown with their hub, paused, resumed,
and finished into their hub's place (a restart of the queue: tests/core/test_downloads_hubs)."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from pytestqt.qtbot import QtBot

from app.downloads import DownloadPlan, JobState
from app.downloads.civitai import plan_civitai_download
from app.downloads.modelscope import plan_modelscope
from app.hub.civitai.client import CivitaiClient
from app.hub.civitai.provider import CivitaiHub
from app.hub.civitai.settings import CivitaiSettings
from app.hub.modelscope.api import ModelScopeClient
from tests.support.civitai_server import CivitaiServer, ServedFile
from tests.support.modelscope_server import ModelScopeServer
from ui.downloads_page import JobAction
from ui.main_window import MainWindow

CHECKPOINT = os.urandom(200_000)
WEIGHTS = os.urandom(150_000)


@pytest.fixture
def civitai() -> Iterator[CivitaiServer]:
    with CivitaiServer() as server:
        server.add_model(1, "Anime Mix", files=[
            ServedFile(id=11, name="animeMix_v1.safetensors", data=CHECKPOINT),
        ])  # fmt: skip
        yield server


@pytest.fixture
def modelscope() -> Iterator[ModelScopeServer]:
    with ModelScopeServer() as server:
        server.add_model("org/Tiny-GGUF", {"tiny-q4_k_m.gguf": WEIGHTS})
        yield server


def civitai_plan(civitai: CivitaiServer, models: Path) -> DownloadPlan:
    with CivitaiClient(endpoint=civitai.url) as client:
        model, version = CivitaiHub(client).version("civitai:1")
    settings = CivitaiSettings(models_dir=str(models))
    download = plan_civitai_download(model, version, endpoint=civitai.url, settings=settings)
    return download.job_plan(endpoint=civitai.url)


def row_of(window: MainWindow, repo_id: str) -> int:
    model = window.downloads.model
    return next(
        row
        for row in range(model.rowCount())
        if (job := model.job(row)) is not None and job.repo_id == repo_id
    )


def state_of(window: MainWindow, repo_id: str) -> JobState | None:
    try:
        job = window.downloads.model.job(row_of(window, repo_id))
    except StopIteration:
        return None
    return None if job is None else job.state


def in_state(window: MainWindow, repo_id: str, state: JobState) -> Callable[[], bool]:
    return lambda: state_of(window, repo_id) is state


def test_civitai_and_modelscope_jobs_pause_resume_and_finish_on_the_page(
    qtbot: QtBot,
    window: MainWindow,
    civitai: CivitaiServer,
    modelscope: ModelScopeServer,
    tmp_path: Path,
) -> None:
    ms_root = tmp_path / "ms" / "models"
    plans = {
        "civitai:1@10": civitai_plan(civitai, tmp_path / "models"),
        "org/Tiny-GGUF": plan_modelscope(
            ModelScopeClient(endpoint=modelscope.url), "org/Tiny-GGUF", root=ms_root
        ),
    }
    # Each first file request is answered "429, come back in 60 s": time to press Pause.
    civitai.rate_limit(1, retry_after="60", prefix="/cdn/")
    modelscope.rate_limit(1, retry_after="60")
    page = window.downloads
    for plan in plans.values():
        page.enqueue(plan)
    qtbot.waitUntil(lambda: page.model.rowCount() == 2, timeout=10_000)
    texts = {page.model.item(row, 0).text() for row in range(2)}
    assert any("Civitai" in text and "animeMix_v1.safetensors" in text for text in texts)
    assert any("ModelScope" in text and "Tiny-GGUF" in text for text in texts)

    asked = {
        "civitai:1@10": lambda: bool(civitai.requests_to("/cdn/")),
        "org/Tiny-GGUF": lambda: any("FilePath" in r.query for r in modelscope.requests),
    }
    for repo_id in plans:
        qtbot.waitUntil(asked[repo_id], timeout=10_000)  # and answered "come back later"
        assert state_of(window, repo_id) is JobState.RUNNING
        page.view.selectRow(row_of(window, repo_id))
        qtbot.waitUntil(page.buttons[JobAction.PAUSE].isEnabled, timeout=10_000)
        page.buttons[JobAction.PAUSE].click()
        qtbot.waitUntil(in_state(window, repo_id, JobState.PAUSED), timeout=10_000)

    for repo_id in plans:
        page.view.selectRow(row_of(window, repo_id))
        qtbot.waitUntil(page.buttons[JobAction.RESUME].isEnabled, timeout=10_000)
        page.buttons[JobAction.RESUME].click()
    for repo_id in plans:
        qtbot.waitUntil(in_state(window, repo_id, JobState.COMPLETED), timeout=30_000)
    placed = tmp_path / "models" / "checkpoints" / "animeMix_v1.safetensors"
    assert placed.read_bytes() == CHECKPOINT
    assert placed.with_name("animeMix_v1.civitai.info").exists()
    assert (ms_root / "org" / "Tiny-GGUF" / "tiny-q4_k_m.gguf").read_bytes() == WEIGHTS

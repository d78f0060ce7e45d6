"""Downloads from the window: Discover's Download button, the queue page, pause and resume."""

from __future__ import annotations

import hashlib
import threading
from pathlib import Path

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QMessageBox
from pytestqt.modeltest import ModelTester
from pytestqt.qtbot import QtBot

from app.core import Core
from app.downloads import FileState, FileStatus, JobState, JobStatus
from tests.support.hub_server import Fault, HubServer, Stall
from ui.discover.results_model import SearchState
from ui.downloads_page import DownloadsModel, DownloadsPage, JobAction
from ui.main_window import MainWindow

WEIGHTS = bytes(range(256)) * 4096  # 1 MiB, an LFS file


def add_repo(hub_server: HubServer) -> None:
    hub_server.add_repo(
        "acme/tiny-gguf",
        {"tiny-Q4_K_M.gguf": b"GGUF" + WEIGHTS, "tiny-Q8_0.gguf": b"GGUF" + WEIGHTS * 2},
        card="---\nlicense: mit\n---\n# Tiny",
    )


def open_files_tab(qtbot: QtBot, window: MainWindow) -> None:
    page = window.discover
    page.search_field.setText("tiny")
    page.search_now()
    qtbot.waitUntil(lambda: page.results.state == SearchState.RESULTS, timeout=10_000)
    with qtbot.waitSignal(page.details.detailsShown, timeout=10_000):
        page.results_view.selectRow(0)
    view = page.details.view
    view.tabs.setCurrentWidget(view.files)


def select_file(window: MainWindow, name: str) -> None:
    files = window.discover.details.view.files
    model = files.model
    assert model is not None
    row = next(row for row in range(model.rowCount()) if model.item(row, 0).text() == name)
    files.tree.setCurrentIndex(model.index(row, 0))


def test_download_button_queues_the_file_and_the_page_shows_it_finish(
    qtbot: QtBot, window: MainWindow, core: Core, hub_server: HubServer
) -> None:
    add_repo(hub_server)
    open_files_tab(qtbot, window)
    select_file(window, "tiny-Q4_K_M.gguf")
    files = window.discover.details.view.files
    assert files.download_button.isEnabled()
    files.download_button.click()

    page = window.downloads
    qtbot.waitUntil(lambda: page.model.rowCount() == 1, timeout=10_000)
    qtbot.waitUntil(
        lambda: (job := page.model.job(0)) is not None and job.state is JobState.COMPLETED,
        timeout=30_000,
    )
    job = page.model.job(0)
    assert job is not None and job.label == "Q4_K_M"
    assert job.bytes_done == job.total == len(WEIGHTS) + 4
    cached = list(
        Path(core.settings.resolved_cache_dir()).glob(
            "models--acme--tiny-gguf/snapshots/*/tiny-Q4_K_M.gguf"
        )
    )
    assert len(cached) == 1
    assert (
        hashlib.sha256(cached[0].read_bytes()).hexdigest()
        == hashlib.sha256(b"GGUF" + WEIGHTS).hexdigest()
    )
    assert "Queued acme/tiny-gguf" in window.statusBar().currentMessage()


def test_pause_and_resume_from_the_page(
    qtbot: QtBot, window: MainWindow, hub_server: HubServer
) -> None:
    add_repo(hub_server)
    hub_server.inject(Fault(Stall(2.0), path=r"^/lfs/", times=1))  # time to press Pause
    open_files_tab(qtbot, window)
    select_file(window, "tiny-Q8_0.gguf")
    window.discover.details.view.files.download_button.click()
    page = window.downloads
    qtbot.waitUntil(lambda: page.model.rowCount() == 1, timeout=10_000)
    page.view.selectRow(0)
    qtbot.waitUntil(page.buttons[JobAction.PAUSE].isEnabled, timeout=10_000)
    page.buttons[JobAction.PAUSE].click()
    qtbot.waitUntil(
        lambda: (job := page.model.job(0)) is not None and job.state is JobState.PAUSED,
        timeout=10_000,
    )
    assert page.buttons[JobAction.RESUME].isEnabled()
    page.buttons[JobAction.RESUME].click()
    qtbot.waitUntil(
        lambda: (job := page.model.job(0)) is not None and job.state is JobState.COMPLETED,
        timeout=30_000,
    )
    assert page.buttons[JobAction.REMOVE].isEnabled()
    page.buttons[JobAction.REMOVE].click()
    qtbot.waitUntil(lambda: page.model.rowCount() == 0, timeout=10_000)


def test_pause_and_cancel_run_off_the_gui_thread(
    qtbot: QtBot, window: MainWindow, core: Core, hub_server: HubServer
) -> None:
    add_repo(hub_server)
    hub_server.inject(Fault(Stall(6.0), path=r"^/lfs/", times=1))  # time to press Pause (slow CI)
    open_files_tab(qtbot, window)
    select_file(window, "tiny-Q8_0.gguf")
    window.discover.details.view.files.download_button.click()
    page = window.downloads
    qtbot.waitUntil(lambda: page.model.rowCount() == 1, timeout=10_000)
    # The manager calls subscribers on the thread that changed the state: pause and cancel
    # write SQLite (cancel also deletes partial files), so that must be a worker.
    calls: list[tuple[JobState, threading.Thread]] = []
    unsubscribe = core.start_downloads().subscribe(
        lambda status: calls.append((status.state, threading.current_thread()))
    )
    try:
        page.view.selectRow(0)
        qtbot.waitUntil(page.buttons[JobAction.PAUSE].isEnabled, timeout=10_000)
        page.buttons[JobAction.PAUSE].click()
        qtbot.waitUntil(page.buttons[JobAction.CANCEL].isEnabled, timeout=10_000)
        # Enter on the question keeps the download (the default is No) …
        page.buttons[JobAction.CANCEL].click()
        box = confirm_box(qtbot, page)
        assert box.defaultButton() is box.button(QMessageBox.StandardButton.No)
        qtbot.keyClick(box, Qt.Key.Key_Return)
        qtbot.waitUntil(lambda: page.asking is None, timeout=10_000)
        job = page.model.job(0)
        assert job is not None and job.state is JobState.PAUSED
        # … and only the explicit button cancels it.
        qtbot.waitUntil(page.buttons[JobAction.CANCEL].isEnabled, timeout=10_000)
        page.buttons[JobAction.CANCEL].click()
        confirm_box(qtbot, page).button(QMessageBox.StandardButton.Yes).click()
        qtbot.waitUntil(
            lambda: (job := page.model.job(0)) is not None and job.state is JobState.CANCELLED,
            timeout=10_000,
        )
    finally:
        unsubscribe()
    states = {state for state, _thread in calls}
    assert {JobState.PAUSED, JobState.CANCELLED} <= states
    assert all(thread is not threading.main_thread() for _state, thread in calls)


def confirm_box(qtbot: QtBot, page: DownloadsPage) -> QMessageBox:
    qtbot.waitUntil(lambda: page.asking is not None and page.asking.isVisible(), timeout=10_000)
    assert page.asking is not None
    return page.asking


def test_tab_leaves_the_downloads_table(qtbot: QtBot, window: MainWindow) -> None:
    page = window.downloads
    window.show_page(page)
    assert not page.view.tabKeyNavigation()
    assert page.view.accessibleName() == "Downloads"
    assert all(button.accessibleName() for button in page.buttons.values())


def job_status(job_id: int, state: JobState, done: int = 0) -> JobStatus:
    return JobStatus(
        id=job_id,
        repo_id=f"acme/model-{job_id}",
        revision="0" * 40,
        label="Q4_K_M",
        state=state,
        error="offline" if state is JobState.WAITING else None,
        error_kind=None,
        bytes_done=done,
        total=100,
        speed=10.0 if state is JobState.RUNNING else 0.0,
        eta=5.0 if state is JobState.RUNNING else None,
        files=(FileStatus(path="model.gguf", size=100, bytes_done=done, state=FileState.RUNNING),),
        created_at="2026-01-01T00:00:00Z",
        finished_at=None,
    )


def test_downloads_model_passes_the_model_tester(qtmodeltester: ModelTester) -> None:
    model = DownloadsModel()
    qtmodeltester.check(model)
    model.update([job_status(1, JobState.RUNNING, 10), job_status(2, JobState.WAITING)])
    qtmodeltester.check(model)
    model.update([job_status(1, JobState.RUNNING, 60), job_status(2, JobState.QUEUED)])
    qtmodeltester.check(model)
    assert model.item(0, 1).text() == "60%"
    model.update([job_status(2, JobState.PAUSED)])
    qtmodeltester.check(model)
    assert model.rowCount() == 1 and model.item(0, 5).text() == "paused"
    model.update([])
    qtmodeltester.check(model)
    assert model.rowCount() == 0


def test_downloads_left_unfinished_resume_when_the_window_starts(
    qtbot: QtBot, core: Core, hub_server: HubServer, qt_loop: object
) -> None:
    from app.downloads import DownloadManager, plan_files

    add_repo(hub_server)
    details = core.hub.model_details("acme/tiny-gguf")
    # A previous run queued this and ended before it ran (quit, crash or kill -9).
    previous = DownloadManager(
        core.database, endpoint=core.endpoint, cache_dir=core.settings.resolved_cache_dir()
    )
    previous.enqueue(plan_files(details, ["tiny-Q8_0.gguf"]))

    window = MainWindow(core)
    qtbot.addWidget(window)
    window.show()
    window.start_background_work()
    page = window.downloads
    qtbot.waitUntil(lambda: page.model.rowCount() == 1, timeout=10_000)
    qtbot.waitUntil(
        lambda: (job := page.model.job(0)) is not None and job.state is JobState.COMPLETED,
        timeout=30_000,
    )

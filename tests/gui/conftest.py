"""Fixtures for pytest-qt tests: an offscreen Qt, asyncio on the Qt loop, a core on a fake hub."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import qasync
from PySide6.QtWidgets import QApplication
from pytestqt.qtbot import QtBot

from app.core import Core
from tests.support.hub_server import HubServer
from ui.chat.page import ChatPage
from ui.main_window import MainWindow


@pytest.fixture
def qt_loop(qapp: QApplication) -> Iterator[asyncio.AbstractEventLoop]:
    """asyncio running on the Qt event loop that pytest-qt spins (as qasync does in the app)."""
    loop = qasync.QEventLoop(qapp, already_running=True)
    # Plain threads, joined at teardown: qasync's QThread pool would outlive the test.
    executor = ThreadPoolExecutor(max_workers=4, thread_name_prefix="test-worker")
    loop.set_default_executor(executor)
    asyncio.set_event_loop(loop)
    yield loop
    pending = [task for task in asyncio.all_tasks(loop) if not task.done()]
    for task in pending:
        task.cancel()
    for _ in range(20):  # let cancellations and executor callbacks settle
        qapp.processEvents()
        if all(task.done() for task in pending):
            break
    executor.shutdown(wait=True, cancel_futures=True)
    asyncio.events._set_running_loop(None)
    asyncio.set_event_loop(None)


@pytest.fixture
def core(tmp_path: Path, hub_server: HubServer, monkeypatch: pytest.MonkeyPatch) -> Iterator[Core]:
    """A core with its own data dir, talking to the fake hub; no real keychain is touched."""
    monkeypatch.setenv("PYTHON_KEYRING_BACKEND", "keyring.backends.fail.Keyring")
    # The library looks into other apps' folders under HOME: give it an empty one.
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.delenv("OLLAMA_MODELS", raising=False)
    opened = Core.open(data_dir=tmp_path / "data", endpoint_override=hub_server.url)
    yield opened
    opened.close()


@pytest.fixture
def window(qtbot: QtBot, core: Core, qt_loop: asyncio.AbstractEventLoop) -> MainWindow:
    """The main window, shown offscreen."""
    main_window = MainWindow(core)
    qtbot.addWidget(main_window)
    main_window.show()
    qtbot.waitExposed(main_window)
    return main_window


@pytest.fixture
def chat(qtbot: QtBot, window: MainWindow) -> ChatPage:
    """The Chat page, shown, with its conversation list and model list filled."""
    page = window.chat
    with (
        qtbot.waitSignal(page.conversations.listed, timeout=10_000),
        qtbot.waitSignal(page.panel.modelsListed, timeout=20_000),
    ):
        window.show_page(page)
    return page


def select_repo(qtbot: QtBot, window: MainWindow, repo_id: str) -> None:
    page = window.discover
    row = next(
        row
        for row in range(page.results.rowCount())
        if (summary := page.results.summary(row)) and summary.repo_id == repo_id
    )
    with (
        qtbot.waitSignal(page.details.detailsShown, timeout=10_000),
        qtbot.waitSignal(page.details.cardShown, timeout=20_000),  # a 1 MB card is slow
    ):
        page.results_view.selectRow(row)

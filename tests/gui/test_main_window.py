"""The main window as a whole, and the app started for real on a (virtual) display."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from pytestqt.qtbot import QtBot

from app.chat.conversations import MessageState, Role
from app.core import Core
from tests.support.hub_server import HubServer
from ui.main_window import MainWindow


def test_window_has_title_sidebar_and_pages(window: MainWindow, hub_server: HubServer) -> None:
    assert window.windowTitle() == "ModelDeck"
    titles = [window.sidebar.item(row).text() for row in range(window.sidebar.count())]
    assert titles == [
        "Discover", "Library", "Chat", "Documents", "Images", "Downloads", "Settings"
    ]  # fmt: skip
    assert window.pages.currentWidget() is window.discover
    assert hub_server.url in window.endpoint_label.text()


def test_sidebar_switches_pages_and_builds_them_on_first_use(
    qtbot: QtBot, window: MainWindow
) -> None:
    titles = [window.sidebar.item(row).text() for row in range(window.sidebar.count())]
    settings, downloads = titles.index("Settings"), titles.index("Downloads")
    library, chat = titles.index("Library"), titles.index("Chat")
    images = titles.index("Images")
    assert window.pages.widget(settings).__class__.__name__ == "QWidget"  # not built yet
    window.sidebar.setCurrentRow(settings)
    assert window.pages.currentWidget() is window.settings
    window.sidebar.setCurrentRow(downloads)
    assert window.pages.currentWidget() is window.downloads
    window.sidebar.setCurrentRow(library)
    assert window.pages.currentWidget() is window.library
    window.sidebar.setCurrentRow(chat)
    assert window.pages.currentWidget() is window.chat
    window.sidebar.setCurrentRow(images)
    assert window.pages.currentWidget() is window.images


def _app_env(tmp_path: Path, hub_server: HubServer) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith("QT_")}
    env.update(
        MODELDECK_DATA_DIR=str(tmp_path / "data"),
        MODELDECK_STARTUP_PROBE="1",
        HF_ENDPOINT=hub_server.url,
        PYTHON_KEYRING_BACKEND="keyring.backends.fail.Keyring",
    )
    return env


@pytest.mark.skipif(
    shutil.which("xvfb-run") is None, reason="needs Xvfb (scripts/test installs it)"
)
def test_the_app_starts_and_paints_on_a_real_x_display(
    tmp_path: Path, hub_server: HubServer
) -> None:
    """`modeldeck` as a user starts it: xcb platform, first paint, no heavy runtimes loaded."""
    result = subprocess.run(
        ["xvfb-run", "-a", sys.executable, "-m", "ui.launcher"],
        env=_app_env(tmp_path, hub_server),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "first-paint" in result.stdout
    assert "heavy-modules -" in result.stdout
    assert (tmp_path / "data" / "modeldeck.sqlite3").exists()


def test_without_a_display_the_app_says_so_in_one_line(
    tmp_path: Path, hub_server: HubServer
) -> None:
    env = _app_env(tmp_path, hub_server)
    for name in ("DISPLAY", "WAYLAND_DISPLAY"):
        env.pop(name, None)
    result = subprocess.run(
        [sys.executable, "-m", "ui.launcher"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 1
    assert result.stderr.startswith("modeldeck: no display found")
    assert "Traceback" not in result.stderr


def test_a_reply_a_killed_run_left_streaming_is_interrupted_once_the_app_starts(
    qtbot: QtBot, window: MainWindow, core: Core
) -> None:
    conversation = core.conversations.create("Cut short")
    core.conversations.append_message(
        conversation.id, Role.ASSISTANT, "half a sen", state=MessageState.STREAMING
    )
    assert core.conversations.messages(conversation.id)[-1].state is MessageState.STREAMING

    window.start_background_work()

    def interrupted() -> bool:
        return core.conversations.messages(conversation.id)[-1].state is MessageState.INTERRUPTED

    qtbot.waitUntil(interrupted, timeout=10_000)
    assert core.conversations.messages(conversation.id)[-1].content == "half a sen"

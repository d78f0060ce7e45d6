"""Updates in the window: the Library's Update column, File > Check for updates, the daily
background check, and Discover's "you have an older revision"."""

from __future__ import annotations

import argparse
import io

from PySide6.QtCore import Qt
from pytestqt.qtbot import QtBot

from app.commands import pull
from app.core import Core
from tests.core.test_library_layouts import gguf_bytes
from tests.support.hub_server import HubServer
from ui.library_model import UPDATE_COLUMN
from ui.main_window import MainWindow

TIMEOUT_MS = 20_000
REPO = "org/tiny-GGUF"
NEW_GGUF = gguf_bytes(salt=2, elements=4096)


def pull_repo(core: Core, hub_server: HubServer) -> str:
    commit = hub_server.add_repo(
        REPO, {"tiny-Q4_K_M.gguf": gguf_bytes(salt=1), "config.json": b"{}"}, card="# Tiny\n"
    )
    parser = argparse.ArgumentParser()
    pull.register(parser.add_subparsers(dest="command"))
    assert pull.run(core, parser.parse_args(["pull", REPO]), io.StringIO()) == 0
    return commit


def update_cell(window: MainWindow) -> str:
    model = window.library_models
    cells = [
        str(model.data(model.index(row, UPDATE_COLUMN)))
        for row, entry in enumerate(model.entries())
        if REPO in entry.repo_ids
    ]
    return cells[0] if cells else ""


def test_check_for_updates_fills_the_library_column(
    qtbot: QtBot, window: MainWindow, core: Core, hub_server: HubServer
) -> None:
    pull_repo(core, hub_server)
    window.show_page(window.library)
    qtbot.waitUntil(lambda: window.library_models.rowCount() > 0, timeout=TIMEOUT_MS)
    header = window.library_models.headerData(UPDATE_COLUMN, Qt.Orientation.Horizontal)
    assert header == "Update"
    assert update_cell(window) == ""

    hub_server.commit_changes(REPO, {"tiny-Q4_K_M.gguf": NEW_GGUF})
    window.check_updates_action.trigger()

    expected = f"update available: 1 file, +{len(NEW_GGUF) / 1000:.1f} kB"
    qtbot.waitUntil(lambda: update_cell(window) == expected, timeout=TIMEOUT_MS)
    qtbot.waitUntil(
        lambda: "1 model has an update" in window.statusBar().currentMessage(), timeout=TIMEOUT_MS
    )


def test_the_background_check_runs_at_most_once_a_day_and_is_silent_offline(
    qtbot: QtBot, window: MainWindow, core: Core, hub_server: HubServer
) -> None:
    from ui.tasks import spawn

    pull_repo(core, hub_server)
    hub_server.commit_changes(REPO, {"tiny-Q4_K_M.gguf": NEW_GGUF})
    hub_server.clear_requests()
    done = spawn(window.check_for_updates(background=True))
    qtbot.waitUntil(done.done, timeout=TIMEOUT_MS)
    asked = len(hub_server.requests_to(r"^/api/models/"))
    assert asked == 1

    again = spawn(window.check_for_updates(background=True))
    qtbot.waitUntil(again.done, timeout=TIMEOUT_MS)
    assert len(hub_server.requests_to(r"^/api/models/")) == asked  # checked today already

    hub_server.stop()
    window.statusBar().clearMessage()
    offline = spawn(window.check_for_updates(background=True))
    qtbot.waitUntil(offline.done, timeout=TIMEOUT_MS)
    assert offline.exception() is None and window.statusBar().currentMessage() == ""


def test_discover_says_when_the_library_has_an_older_revision(
    qtbot: QtBot, window: MainWindow, core: Core, hub_server: HubServer
) -> None:
    pull_repo(core, hub_server)
    view = window.discover.details.view
    window.discover.details.load(REPO)
    qtbot.waitUntil(lambda: view.title.text() == REPO, timeout=TIMEOUT_MS)
    qtbot.wait(200)
    assert view.older_revision.isHidden()

    new_commit = hub_server.commit_changes(REPO, {"tiny-Q4_K_M.gguf": NEW_GGUF})
    window.discover.details.load(REPO)
    qtbot.waitUntil(lambda: not view.older_revision.isHidden(), timeout=TIMEOUT_MS)
    assert "You have an older revision" in view.older_revision.text()
    assert new_commit[:10] in view.older_revision.text()

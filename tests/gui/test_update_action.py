"""The Library's Update action: a click takes an update through the download queue, fetching
only the changed files, and the branch moves to the new snapshot once they are in."""

from __future__ import annotations

from pytestqt.qtbot import QtBot

from app.core import Core
from tests.gui.test_updates import REPO, TIMEOUT_MS, pull_repo, update_cell
from tests.support.hub_server import Fault, FlipByte, HubServer
from ui.library_model import UPDATE_COLUMN
from ui.library_page import RowAction
from ui.main_window import MainWindow

NEW_CONFIG = b'{"v": 2}'


def select_repo(window: MainWindow, commit: str | None = None) -> None:
    """Select the repo's row (the one at `commit`, when given)."""
    page = window.library
    for row in range(page.proxy.rowCount()):
        entry = page.model.item(page.proxy.mapToSource(page.proxy.index(row, 0)).row())
        if (
            entry is not None
            and REPO in entry.repo_ids
            and (commit is None or any(loc.revision == commit for loc in entry.locations))
        ):
            page.view.selectRow(row)
            return
    raise AssertionError(f"{REPO} is not listed")


def test_update_button_fetches_only_the_changed_file_and_moves_the_ref(
    qtbot: QtBot, window: MainWindow, core: Core, hub_server: HubServer
) -> None:
    old_commit = pull_repo(core, hub_server)
    page = window.library
    window.show_page(page)
    qtbot.waitUntil(lambda: window.library_models.rowCount() > 0, timeout=TIMEOUT_MS)
    select_repo(window)
    assert not page.update_button.isEnabled()  # no update known yet

    new_commit = hub_server.commit_changes(REPO, {"config.json": NEW_CONFIG})
    window.check_updates_action.trigger()
    qtbot.waitUntil(lambda: update_cell(window).startswith("update available"), timeout=TIMEOUT_MS)
    select_repo(window)
    qtbot.waitUntil(page.update_button.isEnabled, timeout=TIMEOUT_MS)
    menu = page.context_menu_for(page.view.currentIndex().row())
    assert page.row_actions[RowAction.UPDATE] in menu.actions()

    hub_server.clear_requests()
    with qtbot.waitSignal(page.updateFinished, timeout=TIMEOUT_MS) as finished:
        page.update_button.click()
    assert finished.args == [True]

    cache = core.settings.resolved_cache_dir() / "models--org--tiny-GGUF"
    assert (cache / "refs" / "main").read_text() == new_commit
    new = cache / "snapshots" / new_commit
    assert (new / "config.json").read_bytes() == NEW_CONFIG
    assert (new / "tiny-Q4_K_M.gguf").is_file()  # reused from the old snapshot
    assert (cache / "snapshots" / old_commit / "tiny-Q4_K_M.gguf").is_file()  # kept
    # Only the changed file was sent again.
    assert hub_server.requests_to(r"config\.json", method="GET")
    assert hub_server.requests_to(r"tiny-Q4_K_M\.gguf", method="GET") == []
    # It went through the app's queue, so the Downloads page lists it.
    listed = window.downloads.model
    jobs = [listed.job(row) for row in range(listed.rowCount())]
    (update_job,) = [job for job in jobs if job is not None and job.revision == new_commit]
    # The new snapshot's files; those already in the cache are linked, not fetched (above).
    assert {file.path for file in update_job.files} == {
        "README.md",
        "config.json",
        "tiny-Q4_K_M.gguf",
    }
    qtbot.waitUntil(lambda: update_cell(window) == "", timeout=TIMEOUT_MS)
    assert "Updated org/tiny-GGUF" in page.status.text()
    assert not page.update_button.isEnabled()


def test_a_failed_update_leaves_the_old_revision_as_the_model(
    qtbot: QtBot, window: MainWindow, core: Core, hub_server: HubServer
) -> None:
    old_commit = pull_repo(core, hub_server)
    hub_server.commit_changes(REPO, {"config.json": NEW_CONFIG})
    # Every copy of the changed file arrives damaged: the integrity check refuses it.
    hub_server.inject(Fault(FlipByte(2), path=r"config\.json", times=None))
    window.check_updates_action.trigger()
    page = window.library
    window.show_page(page)
    qtbot.waitUntil(lambda: update_cell(window).startswith("update available"), timeout=TIMEOUT_MS)
    select_repo(window)
    qtbot.waitUntil(page.update_button.isEnabled, timeout=TIMEOUT_MS)

    with qtbot.waitSignal(page.updateFinished, timeout=TIMEOUT_MS) as finished:
        page.update_button.click()

    assert finished.args == [False]
    assert "old revision is untouched" in page.status.text()
    cache = core.settings.resolved_cache_dir() / "models--org--tiny-GGUF"
    assert (cache / "refs" / "main").read_text() == old_commit
    assert (cache / "snapshots" / old_commit / "config.json").read_bytes() == b"{}"
    # The model (at the old commit) still offers its update.
    models = window.library_models
    (old_row,) = [
        row
        for row, entry in enumerate(models.entries())
        if any(location.revision == old_commit for location in entry.locations)
    ]
    assert str(models.data(models.index(old_row, UPDATE_COLUMN))).startswith("update available")
    select_repo(window, old_commit)
    assert page.update_button.isEnabled()

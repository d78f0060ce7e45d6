"""The Settings page: endpoint validation, the token, and Discover following the change."""

from __future__ import annotations

import stat

from pytestqt.qtbot import QtBot

from app.core import Core
from tests.support.hub_server import HubServer
from ui.discover.results_model import SearchState
from ui.main_window import MainWindow

SECRET = "hf_SettingsPageSecret1234567890"


def test_a_bad_endpoint_is_refused_with_a_reason(
    qtbot: QtBot, window: MainWindow, core: Core
) -> None:
    page = window.settings
    window.show_page(page)
    page.endpoint.setText("ftp://mirror.example")
    with qtbot.assertNotEmitted(page.hubChanged):
        page.apply_button.click()
        qtbot.waitUntil(lambda: page.feedback.property("error") is True, timeout=5_000)
    assert "http://" in page.feedback.text()
    assert page.feedback.property("error") is True
    assert core.settings.hub_endpoint is None


def test_a_new_endpoint_is_saved_and_discover_searches_there(
    qtbot: QtBot, window: MainWindow, core: Core, hub_server: HubServer, tmp_path: object
) -> None:
    hub_server.add_repo("acme/model", card="# Model")
    page = window.settings
    page.endpoint.setText(hub_server.url + "/")
    with qtbot.waitSignal(page.hubChanged):
        page.apply_button.click()
    assert core.settings.hub_endpoint == hub_server.url
    reopened = Core.open(data_dir=core.database.path.parent)
    assert reopened.settings.hub_endpoint == hub_server.url
    reopened.close()
    results = window.discover.results
    qtbot.waitUntil(lambda: results.state == SearchState.RESULTS, timeout=10_000)
    assert results.summary(0).repo_id == "acme/model"  # type: ignore[union-attr]


def test_a_token_without_a_keyring_goes_to_a_private_file_and_is_never_shown(
    qtbot: QtBot, window: MainWindow, core: Core
) -> None:
    page = window.settings
    window.show_page(page)
    page.token.setText(SECRET)
    with qtbot.waitSignal(page.hubChanged, timeout=10_000):
        page.save_token_button.click()
    token_file = core.tokens.fallback_file
    assert token_file.read_text() == SECRET
    assert stat.S_IMODE(token_file.stat().st_mode) == 0o600
    assert page.token.text() == ""
    qtbot.waitUntil(lambda: "token is in use" in page.token_status.text(), timeout=5_000)
    shown = page.token_status.text() + page.feedback.text()
    assert SECRET not in shown
    assert "only you can read" in page.feedback.text()
    assert core.token.value == SECRET

    with qtbot.waitSignal(page.hubChanged, timeout=10_000):
        page.clear_token_button.click()
    assert not token_file.exists()
    qtbot.waitUntil(lambda: "No token" in page.token_status.text(), timeout=5_000)

"""The Settings page: endpoint validation, the token, and Discover following the change."""

from __future__ import annotations

import asyncio
import stat
from pathlib import Path

import pytest
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QMessageBox
from pytestqt.qtbot import QtBot

from app.core import Core
from tests.support.hub_server import HubServer
from ui.discover.results_model import SearchState
from ui.main_window import MainWindow
from ui.settings_page import SettingsPage, token_binding_text

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


def confirm_box(qtbot: QtBot, page: SettingsPage) -> QMessageBox:
    qtbot.waitUntil(lambda: page.asking is not None and page.asking.isVisible(), timeout=5_000)
    assert page.asking is not None
    return page.asking


def test_the_page_says_that_endpoint_wins_over_the_saved_one(
    qtbot: QtBot, window: MainWindow, core: Core, hub_server: HubServer
) -> None:
    # The window's core runs with --endpoint (the test hub): it wins over a saved endpoint.
    page = window.settings
    window.show_page(page)
    assert "--endpoint" in page.endpoint_source.text()
    assert hub_server.url in page.endpoint_source.text()
    page.endpoint.setText("https://mirror.example")
    with qtbot.waitSignal(page.hubChanged, timeout=10_000):
        page.apply_button.click()
    text = page.endpoint_source.text()
    assert "wins over the saved endpoint (https://mirror.example)" in text
    assert "This run still uses" in page.feedback.text()


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

    # Forgetting asks first; Enter keeps the token (the default is No).
    page.clear_token_button.click()
    box = confirm_box(qtbot, page)
    assert box.defaultButton() is box.button(QMessageBox.StandardButton.No)
    qtbot.keyClick(box, Qt.Key.Key_Return)
    qtbot.waitUntil(lambda: page.feedback.text() == "The token is kept.", timeout=5_000)
    assert token_file.read_text() == SECRET
    with qtbot.waitSignal(page.hubChanged, timeout=10_000):
        page.clear_token_button.click()
        confirm_box(qtbot, page).button(QMessageBox.StandardButton.Yes).click()
    assert not token_file.exists()
    qtbot.waitUntil(lambda: "No token" in page.token_status.text(), timeout=5_000)


def test_the_token_line_says_which_endpoint_it_is_bound_to_and_offers_to_keep_it(
    qtbot: QtBot,
    qt_loop: asyncio.AbstractEventLoop,
    tmp_path: Path,
    hub_server: HubServer,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Its own core: the shared fixture pins the endpoint for the run, and this one moves it.
    monkeypatch.setenv("PYTHON_KEYRING_BACKEND", "keyring.backends.fail.Keyring")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    core = Core.open(data_dir=tmp_path / "bound-data")
    window = MainWindow(core)
    qtbot.addWidget(window)
    window.show()
    page = window.settings
    window.show_page(page)
    with HubServer(tmp_path / "other-hub") as other:
        try:
            page.endpoint.setText(hub_server.url)
            with qtbot.waitSignal(page.hubChanged, timeout=10_000):
                page.apply_button.click()
            page.token.setText(SECRET)
            with qtbot.waitSignal(page.hubChanged, timeout=10_000):
                page.save_token_button.click()
            qtbot.waitUntil(lambda: "bound to" in page.token_binding.text(), timeout=5_000)
            assert f"bound to {hub_server.url} and sent only there" in page.token_binding.text()
            assert "never sent over plain http to another machine" in page.token_binding.text()
            assert page.keep_token_button.isHidden()

            page.endpoint.setText(other.url)
            with qtbot.waitSignal(page.hubChanged, timeout=10_000):
                page.apply_button.click()

            line = page.token_binding.text()
            assert f"belongs to {hub_server.url}, so it is not sent to {other.url}" in line
            assert page.keep_token_button.isVisible()
            assert other.url in page.keep_token_button.text()
            assert core.token.value is None
            assert SECRET not in line + page.token_status.text() + page.feedback.text()

            with qtbot.waitSignal(page.hubChanged, timeout=10_000):
                page.keep_token_button.click()

            assert f"bound to {other.url} and sent only there" in page.token_binding.text()
            assert page.keep_token_button.isHidden()
            assert core.token.value == SECRET
        finally:
            window.close()
            core.close()


def test_the_token_line_warns_about_plain_http_to_another_machine() -> None:
    line = token_binding_text("http://mirror.lan:8080", "http://mirror.lan:8080")

    assert "http://mirror.lan:8080 is plain http to another machine: no token goes there" in line
    assert "plain http to another machine: no token" not in token_binding_text(
        "http://127.0.0.1:8080", None
    )

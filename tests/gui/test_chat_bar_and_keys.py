"""The Chat page's model bar, keyboard, first-run welcome and plain load errors, with the real
llama.cpp engine and the scripted GGUFs (see test_chat_page.py for the conversation itself)."""

from __future__ import annotations

from pathlib import Path

import pytest
from PySide6.QtCore import Qt
from pytestqt.qtbot import QtBot

from app.chat.conversations import Role
from app.core import Core
from tests.gui.test_chat_page import REPLY_TIMEOUT_MS, load
from tests.support.gguf_builder import ScriptedGgufs
from ui.chat.composer import sends
from ui.chat.page import ChatPage
from ui.main_window import MainWindow

CTRL = Qt.KeyboardModifier.ControlModifier
SHIFT = Qt.KeyboardModifier.ShiftModifier
NONE = Qt.KeyboardModifier.NoModifier


def test_which_enter_sends() -> None:
    assert sends(NONE, ctrl_enter_sends=False)
    assert not sends(SHIFT, ctrl_enter_sends=False)
    assert sends(CTRL, ctrl_enter_sends=False)  # Ctrl+Enter sends in either mode
    assert not sends(NONE, ctrl_enter_sends=True)
    assert sends(CTRL, ctrl_enter_sends=True)


def test_enter_sends_shift_enter_adds_a_line_and_the_setting_swaps_them(
    qtbot: QtBot, chat: ChatPage, core: Core, ggufs: ScriptedGgufs
) -> None:
    page = chat
    bar = page.panel.bar
    assert bar.badge.text() == "Not loaded" and not bar.unload_button.isEnabled()
    load(qtbot, page, ggufs.scripted_4k)
    # The "press Load" hint said after the pick is gone once it loaded.
    assert "press Load" not in page.status.text()
    assert bar.badge.text() == "Loaded · CPU" and bar.unload_button.isEnabled()
    assert "Enter sends" in page.composer.keys.text()

    editor = page.composer.editor
    editor.setFocus()
    qtbot.keyClicks(editor, "Two")
    qtbot.keyClick(editor, Qt.Key.Key_Return, SHIFT)  # a new line, not a send
    qtbot.keyClicks(editor, "lines")
    assert page.composer.text == "Two\nlines" and page.reply is None
    with (
        qtbot.waitSignal(page.replyStarted, timeout=REPLY_TIMEOUT_MS),
        qtbot.waitSignal(page.replyFinished, timeout=REPLY_TIMEOUT_MS),
    ):
        qtbot.keyClick(editor, Qt.Key.Key_Return)
    user = page.transcript.messages()[0]
    assert (user.role, user.content) == (Role.USER, "Two\nlines")

    # The setting: Ctrl+Enter sends, Enter adds a line; it is kept for the next start.
    page.panel.ctrl_enter.setChecked(True)
    assert "Ctrl+Enter sends" in page.composer.keys.text()
    qtbot.waitUntil(lambda: core.settings.chat_send_with_ctrl_enter, timeout=10_000)
    qtbot.keyClicks(editor, "More")
    with qtbot.assertNotEmitted(page.replyStarted, wait=300):
        qtbot.keyClick(editor, Qt.Key.Key_Return)
    assert page.composer.text == "More\n"
    with qtbot.waitSignal(page.replyFinished, timeout=REPLY_TIMEOUT_MS):
        qtbot.keyClick(editor, Qt.Key.Key_Return, CTRL)
    assert [m.content for m in page.transcript.messages() if m.role is Role.USER][-1] == "More\n"

    # Unload frees the model: nothing answers, Send is off, the badge says so.
    with qtbot.waitSignal(page.panel.unloaded, timeout=REPLY_TIMEOUT_MS):
        bar.unload_button.click()
    assert core.llm.loaded is None and page.controller.engine is None
    assert bar.badge.text() == "Not loaded" and not bar.unload_button.isEnabled()
    editor.setPlainText("Anyone?")
    assert not page.composer.send_button.isEnabled()


def test_the_first_run_welcome_finds_a_model_and_the_page_fits_900_by_600(
    qtbot: QtBot, window: MainWindow, chat: ChatPage
) -> None:
    page = chat
    assert page.body.currentWidget() is page.welcome
    assert page.welcome.find_button.accessibleName() == "Find a model in Discover"

    # 900 by 600: the settings panel folds, the bar and the composer keep the whole width.
    window.resize(900, 600)
    qtbot.waitUntil(lambda: window.width() == 900)
    qtbot.waitUntil(lambda: not page.panel.isVisible())
    bar = page.panel.bar
    for widget in (bar.picker, bar.load_button, bar.unload_button, bar.badge):
        assert widget.isVisible()
        assert widget.geometry().right() <= bar.width()
    assert bar.picker.width() >= 120
    editor = page.composer.editor
    assert editor.width() >= page.body.width() - 2
    assert page.composer.keys.text() == "Enter sends · Shift+Enter adds a line"
    # The panel is a click away; on a page this narrow the list makes room for it.
    page.panel_button.click()
    assert page.panel.isVisible() and not page.conversations.isVisible()
    qtbot.waitUntil(lambda: page.panel.geometry().right() <= page.splitter.width())
    assert page.center.width() >= page.center.minimumSizeHint().width()
    page.panel_button.click()
    assert not page.panel.isVisible() and page.conversations.isVisible()

    page.welcome.find_button.click()
    assert window.pages.currentWidget() is window.discover


def test_a_failed_load_says_what_failed_and_keeps_the_log_behind_details(
    qtbot: QtBot, chat: ChatPage, ggufs: ScriptedGgufs, tmp_path: Path
) -> None:
    page = chat
    broken = tmp_path / "broken.gguf"
    broken.write_bytes(ggufs.scripted_4k.read_bytes()[:4096])  # cut short, like a bad download
    page.pick_model(broken)
    with qtbot.waitSignal(page.panel.loadFinished, timeout=REPLY_TIMEOUT_MS) as finished:
        page.panel.load_button.click()
    assert finished.args == [False]
    bar = page.panel.bar
    problem = bar.problem
    assert problem.isVisible() and bar.badge.text() == "Load failed"
    assert problem.message.text().startswith(("llama.cpp could not load broken", "broken"))
    assert "again" in problem.message.text()  # what to try
    assert problem.details.toPlainText() and not problem.details.isVisible()
    problem.details_button.click()
    assert problem.details.isVisible()

    # A good load clears the problem and the stale hint.
    load(qtbot, page, ggufs.scripted_4k)
    assert not problem.isVisible() and bar.badge.text() == "Loaded · CPU"
    assert page.status.text() == ""


def test_deleting_a_conversation_defaults_to_no(
    qtbot: QtBot, chat: ChatPage, core: Core, monkeypatch: pytest.MonkeyPatch
) -> None:
    from PySide6.QtWidgets import QMessageBox

    page = chat
    kept = core.conversations.create("Keep me")
    with qtbot.waitSignal(page.conversations.listed, timeout=10_000):
        page.conversations.refresh(select=kept.id)
    seen: list[object] = []

    def question(*args: object, **kwargs: object) -> QMessageBox.StandardButton:
        # (parent, title, text, buttons, default), the default maybe by name
        seen.append(args[4] if len(args) > 4 else kwargs.get("defaultButton"))
        return QMessageBox.StandardButton.No  # what Enter picks

    monkeypatch.setattr(QMessageBox, "question", question)
    page.conversations.view.setCurrentRow(0)
    page.conversations.delete_button.click()
    assert seen == [QMessageBox.StandardButton.No]
    assert core.conversations.get(kept.id).title == "Keep me"
    assert not page.conversations.view.tabKeyNavigation()

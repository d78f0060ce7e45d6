"""The Documents page: add a folder, see it indexed with counts, pause and stop, remove."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
from PySide6.QtWidgets import QApplication, QMessageBox
from pytestqt.qtbot import QtBot

from app.docs.indexer import IndexPhase, IndexProgress
from tests.support.gguf_builder import SCRIPTED_REPLY, ScriptedGgufs
from ui.documents_page import DocumentsPage
from ui.main_window import MainWindow


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    root = tmp_path / "Recipes (2024)"
    root.mkdir()
    for index in range(6):
        (root / f"dish{index}.md").write_text(f"# Dish {index}\n\nStir the pot {index} times.\n")
    (root / "photo.txt").write_bytes(b"\x00\x01binary")
    return root


@pytest.fixture
def page(qtbot: QtBot, window: MainWindow) -> DocumentsPage:
    titles = [window.sidebar.item(row).text() for row in range(window.sidebar.count())]
    window.sidebar.setCurrentRow(titles.index("Documents"))
    assert window.pages.currentWidget() is window.documents
    return window.documents


def _cells(page: DocumentsPage, row: int = 0) -> list[str]:
    return [page.table.item(row, column).text() for column in range(page.table.columnCount())]


def test_a_folder_is_added_and_indexed(qtbot: QtBot, page: DocumentsPage, folder: Path) -> None:
    with qtbot.wait_signal(page.indexFinished, timeout=30_000) as finished:
        page.add_folder(folder)
    assert "6 new" in finished.args[0] and "1 skipped" in finished.args[0]
    qtbot.wait_until(lambda: page.table.rowCount() == 1)
    assert _cells(page) == [
        "Recipes _2024_",
        "6 (1 skipped)",
        _cells(page)[2],
        "6",
        "words",
        "ready",
    ]
    assert page.status.text().startswith("Recipes _2024_: 6 new")
    page.table.selectRow(0)
    assert page.update_button.isEnabled() and not page.pause_button.isEnabled()
    # The folder changes; Update index follows it.
    (folder / "dish0.md").unlink()
    with qtbot.wait_signal(page.indexFinished, timeout=30_000) as again:
        page.update_button.click()
    assert "1 removed" in again.args[0]
    qtbot.wait_until(lambda: _cells(page)[1] == "5 (1 skipped)")


def test_pause_resume_and_stop(
    qtbot: QtBot, page: DocumentsPage, folder: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The first two files are held while being read, until the test let them go: so the
    # run is surely mid-way at each click, however the threads are scheduled.
    reading = [threading.Event(), threading.Event()]
    go_on = [threading.Event(), threading.Event()]
    relay = page._relay

    def hold_two_files(progress: IndexProgress) -> None:  # on the indexing thread
        relay(progress)
        held = sum(event.is_set() for event in reading)
        if progress.phase is IndexPhase.READING and held < len(reading):
            reading[held].set()
            go_on[held].wait(30)  # until the test has pressed Pause

    monkeypatch.setattr(page, "_relay", hold_two_files)
    page.add_folder(folder)
    qtbot.wait_until(reading[0].is_set, timeout=30_000)
    assert page.indexing and page.stop_button.isEnabled() and not page.add_button.isEnabled()
    page.pause_button.click()
    go_on[0].set()
    assert page.pause_button.text() == "Resume" and page.status.text().startswith("Paused")
    page.pause_button.click()  # resume: the next file is read…
    qtbot.wait_until(reading[1].is_set, timeout=30_000)
    page.pause_button.click()  # …and pause again: the run waits after it
    go_on[1].set()
    with qtbot.wait_signal(page.indexFinished, timeout=30_000) as finished:
        page.stop_button.click()  # a stop also wakes a paused run
    assert "stopped; what was indexed is kept" in finished.args[0]
    assert not page.indexing and page.add_button.isEnabled()
    assert page.pause_button.text() == "Pause"


def test_remove_asks_first_and_keeps_the_files(
    qtbot: QtBot, page: DocumentsPage, folder: Path
) -> None:
    with qtbot.wait_signal(page.indexFinished, timeout=30_000):
        page.add_folder(folder)
    qtbot.wait_until(lambda: page.table.rowCount() == 1)
    page.table.selectRow(0)
    page.remove_button.click()
    qtbot.wait_until(lambda: _visible_box() is not None)
    dialog = _visible_box()
    assert dialog is not None
    assert "The files themselves stay" in dialog.text()
    dialog.button(QMessageBox.StandardButton.Yes).click()
    qtbot.wait_until(lambda: page.table.rowCount() == 0)
    assert (folder / "dish1.md").exists()


def _visible_box() -> QMessageBox | None:
    return next(
        (w for w in QApplication.topLevelWidgets() if isinstance(w, QMessageBox) and w.isVisible()),
        None,
    )


def test_chat_with_a_collection_sends_numbered_sources(
    qtbot: QtBot, window: MainWindow, page: DocumentsPage, folder: Path, ggufs: ScriptedGgufs
) -> None:
    from tests.gui.test_chat_page import REPLY_TIMEOUT_MS, load, send

    with qtbot.wait_signal(page.indexFinished, timeout=30_000):
        page.add_folder(folder)
    qtbot.wait_until(lambda: page.table.rowCount() == 1)
    page.table.selectRow(0)
    page.attach_button.click()
    chat = window.chat
    assert window.pages.currentWidget() is chat
    assert chat.attached_documents == "Recipes _2024_"
    load(qtbot, chat, ggufs.scripted_4k)
    with qtbot.wait_signal(chat.replyFinished, timeout=REPLY_TIMEOUT_MS):
        send(qtbot, chat, "How often do I stir pot 3?")
    messages = chat.transcript.messages()
    question, reply = messages[-2], messages[-1]
    assert reply.content == SCRIPTED_REPLY
    # The message as sent, sources and all, is what the transcript keeps and shows.
    assert question.content.endswith("Question: How often do I stir pot 3?")
    assert "[1] dish3.md, lines 1-3" in question.content
    assert "Stir the pot 3 times." in question.content
    chat.attach_documents(None)
    with qtbot.wait_signal(chat.replyFinished, timeout=REPLY_TIMEOUT_MS):
        send(qtbot, chat, "And without documents?")
    assert chat.transcript.messages()[-2].content == "And without documents?"

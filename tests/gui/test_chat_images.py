"""The Chat page with images: attached by button, drop and paste, shown as thumbnails in the
composer and the transcript, seen by the model (the tiny llama with its tiny projector),
kept beside the database after a restart, and exported beside the Markdown."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from PySide6.QtCore import QMimeData, QPoint, QPointF, Qt, QUrl
from PySide6.QtGui import QColor, QDragEnterEvent, QDropEvent, QGuiApplication, QImage
from PySide6.QtWidgets import QApplication, QFileDialog
from pytestqt.qtbot import QtBot

from app.chat.conversations import Role
from app.core import Core
from app.llm.vision import IMAGE_MARKER
from app.tiny_gguf import write_projector
from tests.gui.test_chat_page import REPLY_TIMEOUT_MS, load
from tests.support.gguf_builder import SCRIPTED_REPLY, ScriptedGgufs, write_scripted_gguf
from ui.chat.message_widget import MessageWidget
from ui.chat.page import ChatPage
from ui.main_window import MainWindow

IMAGE_TOKENS = 16


def image_file(path: Path, color: str) -> Path:
    image = QImage(40, 30, QImage.Format.Format_RGB32)
    image.fill(QColor(color))
    assert image.save(str(path))
    return path


def drop(page: ChatPage, paths: list[Path]) -> None:
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(path)) for path in paths])
    viewport = page.composer.editor.viewport()
    action, button = Qt.DropAction.CopyAction, Qt.MouseButton.LeftButton
    modifiers = Qt.KeyboardModifier.NoModifier
    enter = QDragEnterEvent(QPoint(5, 5), action, mime, button, modifiers)
    QApplication.sendEvent(viewport, enter)
    assert enter.isAccepted()
    QApplication.sendEvent(viewport, QDropEvent(QPointF(5, 5), action, mime, button, modifiers))


def user_widget(page: ChatPage) -> MessageWidget:
    user = next(m for m in page.transcript.messages() if m.role is Role.USER)
    widget = page.transcript.entry(user.id)
    assert isinstance(widget, MessageWidget)
    return widget


def test_images_are_attached_seen_kept_and_exported(
    qtbot: QtBot,
    chat: ChatPage,
    core: Core,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    folder = tmp_path / "vision"
    model = write_scripted_gguf(folder / "Vision-Q8_0.gguf", context_length=4096)
    write_projector(folder / "mmproj-Vision-F16.gguf")
    page = chat
    load(qtbot, page, model)
    loaded = core.llm.loaded
    assert loaded is not None and loaded.vision  # the projector beside it came along

    red, green = (
        image_file(tmp_path / "red.png", "red"),
        image_file(tmp_path / "green.png", "green"),
    )
    tray = page.composer.attachments
    # The button (its file dialog answers with a file), a drop, and a paste of pixels.
    monkeypatch.setattr(QFileDialog, "getOpenFileNames", lambda *args, **kwargs: ([str(red)], ""))
    page.composer.attach_button.click()
    qtbot.waitUntil(lambda: len(tray.attachments) == 1, timeout=10_000)
    drop(page, [green])
    qtbot.waitUntil(lambda: len(tray.attachments) == 2, timeout=10_000)
    pasted = QImage(20, 20, QImage.Format.Format_RGB32)
    pasted.fill(QColor("blue"))
    QGuiApplication.clipboard().setImage(pasted)
    page.composer.editor.setFocus()
    qtbot.keyClick(page.composer.editor, Qt.Key.Key_V, Qt.KeyboardModifier.ControlModifier)
    qtbot.waitUntil(lambda: len(tray.attachments) == 3, timeout=10_000)
    assert page.composer.text == ""  # the paste attached an image, it wrote no text
    assert [a.name for a in tray.attachments] == ["red.png", "green.png", "pasted image.png"]
    assert len(tray.row.thumbnails) == 3 and tray.row.isVisibleTo(page.composer)
    assert not tray.row.thumbnails[0].pixmap().isNull()
    # Not an image: said, not attached.
    notes = tmp_path / "notes.png"
    notes.write_bytes(b"not a picture")
    drop(page, [notes])
    qtbot.waitUntil(lambda: "notes.png is not an image" in tray.note.text(), timeout=10_000)
    assert len(tray.attachments) == 3
    # The pasted one goes again (its remove button), then the message is sent.
    assert len(tray.row.remove_buttons) == 3
    tray.row.remove_buttons[2].click()
    assert [a.name for a in tray.attachments] == ["red.png", "green.png"]

    page.composer.editor.setPlainText("What colours are these?")
    with (
        qtbot.waitSignal(page.replyFinished, timeout=REPLY_TIMEOUT_MS) as finished,
        qtbot.waitSignal(page.replyStarted, timeout=REPLY_TIMEOUT_MS),
    ):
        page.composer.send_button.click()
    assert finished.args == ["complete"]
    assert tray.attachments == () and not tray.row.isVisibleTo(page.composer)
    user, reply = page.transcript.messages()
    assert reply.content == SCRIPTED_REPLY
    assert [image.name for image in user.images] == ["red.png", "green.png"]
    assert reply.stats is not None and reply.stats.prompt_tokens is not None
    assert reply.stats.prompt_tokens > 2 * IMAGE_TOKENS
    # The transcript shows the two thumbnails; the files are kept content-addressed.
    qtbot.waitUntil(lambda: len(user_widget(page).images.thumbnails) == 2, timeout=10_000)
    red_sha = hashlib.sha256(red.read_bytes()).hexdigest()
    stored = core.database.path.parent / "chat-images" / red_sha[:2] / f"{red_sha}.png"
    assert stored.read_bytes() == red.read_bytes()

    # The prompt as the model sees it: a marker where each image's tokens go.
    page.panel.prompt_button.click()
    qtbot.waitUntil(lambda: page.prompt_dialog is not None, timeout=10_000)
    dialog = page.prompt_dialog
    assert dialog is not None
    shown = dialog.text.toPlainText()
    assert f"{IMAGE_MARKER}{IMAGE_MARKER}\nWhat colours are these?" in shown
    dialog.close()

    # Exported Markdown links the images, copied beside it.
    target = tmp_path / "export" / "colours.md"
    target.parent.mkdir()
    monkeypatch.setattr(QFileDialog, "getSaveFileName", lambda *a, **k: (str(target), ""))
    with qtbot.waitSignal(page.exported, timeout=10_000):
        page.export_markdown_action.trigger()
    link = f"chat-images/{red_sha[:2]}/{red_sha}.png"
    assert f"![red.png]({link})" in target.read_text(encoding="utf-8")
    assert (target.parent / link).read_bytes() == red.read_bytes()


def test_sent_images_show_again_after_a_restart(
    qtbot: QtBot, core: Core, tmp_path: Path, chat: ChatPage
) -> None:
    red = image_file(tmp_path / "red.png", "red")
    conversation = core.conversations.create("Seen before")
    stored = core.chat_images.put(red.read_bytes(), "red.png")
    core.conversations.append_message(conversation.id, "user", "What is it?", images=(stored,))
    core.conversations.append_message(conversation.id, "assistant", "Red.")

    # A second window on the same data folder: what a restart finds.
    again = Core.open(data_dir=core.database.path.parent)
    try:
        window = MainWindow(again)
        qtbot.addWidget(window)
        window.show()
        page = window.chat
        with qtbot.waitSignal(page.conversationShown, timeout=20_000):
            window.show_page(page)
        qtbot.waitUntil(lambda: len(page.transcript.messages()) == 2, timeout=10_000)
        widget = user_widget(page)
        qtbot.waitUntil(lambda: len(widget.images.thumbnails) == 1, timeout=10_000)
        assert not widget.images.thumbnails[0].pixmap().isNull()
        assert "red.png" in widget.images.thumbnails[0].toolTip()
        window.close()
    finally:
        again.close()


def test_a_text_model_says_which_models_can_see(
    qtbot: QtBot, chat: ChatPage, core: Core, tmp_path: Path, ggufs: ScriptedGgufs
) -> None:
    folder = tmp_path / "vision"
    write_scripted_gguf(folder / "Vision-Q8_0.gguf", context_length=4096)
    write_projector(folder / "mmproj-Vision-F16.gguf")
    core.models.import_paths([folder / "Vision-Q8_0.gguf"])
    page = chat
    load(qtbot, page, ggufs.scripted_4k)
    page.composer.attachments.add_files([image_file(tmp_path / "red.png", "red")])
    qtbot.waitUntil(lambda: len(page.composer.attachments.attachments) == 1, timeout=10_000)
    page.composer.editor.setPlainText("What is it?")
    page.composer.send_button.click()
    qtbot.waitUntil(lambda: "can't see images" in page.status.text(), timeout=20_000)
    assert "these can: " in page.status.text()
    assert page.transcript.messages() == []  # nothing was sent or stored
    assert len(page.composer.attachments.attachments) == 1  # the images wait for a model

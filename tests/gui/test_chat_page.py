"""The Chat page with the real llama.cpp engine and the tiny scripted GGUFs.

`ggufs.scripted_4k` answers every prompt with exactly SCRIPTED_REPLY; `ggufs.endless` repeats it
until the token limit or the context ends it (for Stop, a kill, and closing mid-reply).
"""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path

import pytest
from PySide6.QtCore import Qt
from PySide6.QtGui import QGuiApplication
from PySide6.QtWidgets import QFileDialog, QLineEdit, QMessageBox, QPushButton
from pytestqt.modeltest import ModelTester
from pytestqt.qtbot import QtBot

from app.chat.conversations import MessageState, Role
from app.chat.template_formats import FALLBACK_FORMATS
from app.core import Core
from app.engines.protocol import EventKind
from app.llm.sampling import Sampling
from tests.support.gguf_builder import SCRIPTED_REPLY, ScriptedGgufs
from tests.support.hub_server import HubServer
from ui.chat.message_body import MessageBody
from ui.chat.message_widget import MarkerWidget, MessageWidget
from ui.chat.page import ChatPage
from ui.main_window import MainWindow

REPLY_TIMEOUT_MS = 60_000
ENDLESS_CONTEXT = 32_768  # long enough that a reply is still streaming when Stop comes


def load(
    qtbot: QtBot,
    page: ChatPage,
    path: Path,
    *,
    context: int = 2048,
    max_tokens: int = 512,
) -> None:
    """Pick `path`, set the context and max tokens, press Load and wait until it loaded."""
    with qtbot.waitSignal(page.panel.presetApplied, timeout=10_000):
        page.pick_model(path)
    page.panel.load_form.context.setValue(context)
    page.panel.sampling.max_tokens.setValue(max_tokens)
    with qtbot.waitSignal(page.panel.loadFinished, timeout=REPLY_TIMEOUT_MS) as loaded:
        page.panel.load_button.click()
    assert loaded.args == [True], page.panel.load_status.text()


def send(qtbot: QtBot, page: ChatPage, text: str) -> None:
    """Type `text` and press Ctrl+Enter; returns once the reply started."""
    page.composer.editor.setPlainText(text)
    with qtbot.waitSignal(page.replyStarted, timeout=REPLY_TIMEOUT_MS):
        qtbot.keyClick(page.composer.editor, Qt.Key.Key_Return, Qt.KeyboardModifier.ControlModifier)


def reply_widget(page: ChatPage) -> MessageWidget:
    message = page.transcript.last_message()
    assert message is not None and message.role is Role.ASSISTANT
    entry = page.transcript.entry(message.id)
    assert isinstance(entry, MessageWidget)
    return entry


def wait_for_streamed_text(qtbot: QtBot, page: ChatPage, *, at_least: int = 1) -> None:
    qtbot.waitUntil(lambda: len(reply_widget(page).body.text) >= at_least, timeout=10_000)


def test_a_conversation_streams_stops_regenerates_and_is_edited(
    qtbot: QtBot, chat: ChatPage, core: Core, ggufs: ScriptedGgufs
) -> None:
    page = chat
    assert not page.composer.send_button.isEnabled()  # no model yet
    load(qtbot, page, ggufs.scripted_4k)
    assert "on the CPU" in page.panel.load_status.text()
    assert "loaded in" in page.panel.load_status.text()

    # An empty message cannot be sent: the button is off and Ctrl+Enter does nothing.
    page.composer.editor.setPlainText("   \n ")
    assert not page.composer.send_button.isEnabled()
    with qtbot.assertNotEmitted(page.replyStarted, wait=300):
        qtbot.keyClick(page.composer.editor, Qt.Key.Key_Return, Qt.KeyboardModifier.ControlModifier)

    with qtbot.waitSignal(page.replyFinished, timeout=REPLY_TIMEOUT_MS) as finished:
        send(qtbot, page, "Hello there")
    assert finished.args == ["complete"]
    user, reply = page.transcript.messages()
    assert (user.role, user.content) == (Role.USER, "Hello there")
    assert (reply.content, reply.state) == (SCRIPTED_REPLY, MessageState.COMPLETE)
    widget = reply_widget(page)
    assert widget.body.toPlainText().strip() == SCRIPTED_REPLY
    assert "tokens/s" in widget.stats.text() and "prompt tokens" in widget.stats.text()
    assert page.composer.text == ""  # the field emptied once the message went
    qtbot.waitUntil(lambda: page.conversations.titles() == ["Hello there"], timeout=10_000)
    assert page.title.text() == "Hello there"

    # Per reply: copy the text, and the llama.cpp command that reproduces it (shown under
    # the reply on demand, with its own Copy).
    widget.copy_button.click()
    assert QGuiApplication.clipboard().text() == SCRIPTED_REPLY
    assert widget.command_button.isVisible() and not widget.command.isVisible()
    widget.command_button.click()
    qtbot.waitUntil(widget.command.isVisible, timeout=10_000)
    command = page.last_command or ""
    assert command.startswith("llama-cli -m ") and str(ggufs.scripted_4k) in command
    assert "<|im_start|>user" in command and "--seed" in command
    assert widget.command.text.toPlainText() == command
    assert QGuiApplication.clipboard().text() == SCRIPTED_REPLY  # shown, not copied yet
    widget.command.copy_button.click()
    assert QGuiApplication.clipboard().text() == command
    widget.command.hide_button.click()
    assert not widget.command.isVisible()

    # The prompt as the model sees it: the model's ChatML template, applied.
    page.panel.prompt_button.click()
    qtbot.waitUntil(lambda: page.prompt_dialog is not None, timeout=10_000)
    dialog = page.prompt_dialog
    assert dialog is not None and dialog.text.isReadOnly()
    assert "<|im_start|>user\nHello there<|im_end|>" in dialog.text.toPlainText()
    assert "the model's template" in dialog.format_label.text()
    dialog.close()

    # Another chat template replaces the model's own for this engine.
    page.panel.template.choice.setCurrentText("Llama 3")
    assert core.llm.template_override == FALLBACK_FORMATS["Llama 3"]
    page.panel.template.choice.setCurrentText("Model's template")
    assert core.llm.template_override is None

    # The endless model: the reply grows until Stop; what came is kept.
    load(qtbot, page, ggufs.endless, context=ENDLESS_CONTEXT, max_tokens=1_000_000)
    with qtbot.waitSignal(page.replyFinished, timeout=REPLY_TIMEOUT_MS) as finished:
        send(qtbot, page, "Go on and on")
        assert page.composer.send_button.text() == "Stop"
        assert not page.composer.regenerate_button.isEnabled()
        wait_for_streamed_text(qtbot, page)
        first = len(reply_widget(page).body.text)
        wait_for_streamed_text(qtbot, page, at_least=first + 1)  # it grows
        page.composer.send_button.click()
    assert finished.args == ["cancelled"]
    stopped = page.transcript.messages()[-1]
    assert stopped.state is MessageState.CANCELLED
    assert stopped.content.startswith(SCRIPTED_REPLY)
    assert reply_widget(page).note.text() == "Stopped."
    assert page.composer.send_button.text() == "Send"

    # Regenerate writes a new version of the stopped reply; the stopped one is kept.
    page.panel.sampling.max_tokens.setValue(25)
    assert page.composer.regenerate_button.isEnabled()
    assert not reply_widget(page).previous_button.isVisible()  # one version: no arrows
    with qtbot.waitSignal(page.replyFinished, timeout=REPLY_TIMEOUT_MS) as finished:
        page.composer.regenerate_button.click()
    assert finished.args == ["complete"]
    messages = page.transcript.messages()
    assert len(messages) == 4
    assert messages[-1].created_at != stopped.created_at  # a new reply (ids are reused)
    assert messages[-1].state is MessageState.COMPLETE
    assert messages[-1].content == (SCRIPTED_REPLY * 3)[:25]
    versions = reply_widget(page)
    assert versions.version.text() == "2/2" and versions.previous_button.isVisible()
    assert versions.previous_button.isEnabled() and not versions.next_button.isEnabled()
    assert versions.previous_button.accessibleName() == "Previous version"

    # Step back to the stopped version: the store (what the model sees) follows.
    versions.previous_button.click()
    qtbot.waitUntil(lambda: reply_widget(page).version.text() == "1/2", timeout=10_000)
    assert page.transcript.messages()[-1].content == stopped.content
    stored = core.conversations.messages(page.conversation_id or 0)
    assert stored[-1].content == stopped.content and stored[-1].version == 1
    reply_widget(page).next_button.click()
    qtbot.waitUntil(lambda: reply_widget(page).version.text() == "2/2", timeout=10_000)
    assert page.transcript.messages()[-1].content == (SCRIPTED_REPLY * 3)[:25]

    # Edit the first message: it and everything after it is replaced.
    first_user = page.transcript.entry(messages[0].id)
    assert isinstance(first_user, MessageWidget)
    first_user.edit_button.click()
    assert page.composer.text == "Hello there"
    assert page.composer.send_button.text() == "Resend"
    page.composer.editor.setPlainText("Edited question")
    with qtbot.waitSignal(page.replyFinished, timeout=REPLY_TIMEOUT_MS):
        page.composer.send_button.click()
    user, reply = page.transcript.messages()
    assert user.content == "Edited question"
    assert reply.state is MessageState.COMPLETE and reply.content.startswith("Quick fox.")
    assert page.composer.send_button.text() == "Send"
    stored = core.conversations.messages(page.conversation_id or 0)
    assert [m.content for m in stored] == [m.content for m in page.transcript.messages()]

    # Settings are kept per model: picking the first model again brings its context back.
    with qtbot.waitSignal(page.panel.presetApplied, timeout=10_000):
        page.pick_model(ggufs.scripted_4k)
    assert page.panel.load_form.context.value() == 2048


def test_a_killed_engine_interrupts_the_reply_and_the_next_message_works(
    qtbot: QtBot, chat: ChatPage, core: Core, window: MainWindow, ggufs: ScriptedGgufs
) -> None:
    page = chat
    load(qtbot, page, ggufs.endless, context=ENDLESS_CONTEXT, max_tokens=1_000_000)
    with qtbot.waitSignal(page.replyFinished, timeout=REPLY_TIMEOUT_MS) as finished:
        send(qtbot, page, "Keep going")
        wait_for_streamed_text(qtbot, page, at_least=len(SCRIPTED_REPLY))
        pid = core.llm.pid
        assert pid is not None
        os.kill(pid, signal.SIGKILL)
    assert finished.args == ["interrupted"]
    note = reply_widget(page).note.text()
    assert "engine stopped: signal 9" in note and "while generating" in note
    assert reply_widget(page).body.text.startswith(SCRIPTED_REPLY)  # the text so far is kept
    assert window.isVisible()

    page.panel.sampling.max_tokens.setValue(10)
    with qtbot.waitSignal(page.replyFinished, timeout=REPLY_TIMEOUT_MS) as finished:
        send(qtbot, page, "Once more")
    assert finished.args == ["complete"]
    assert page.transcript.messages()[-1].content == SCRIPTED_REPLY
    assert core.llm.pid != pid  # a fresh engine, with the same model loaded again

    # Closing the window while a reply streams stops it; the stored reply says so.
    page.panel.sampling.max_tokens.setValue(1_000_000)
    send(qtbot, page, "And again")
    wait_for_streamed_text(qtbot, page, at_least=len(SCRIPTED_REPLY))
    reply_id = page.transcript.messages()[-1].id
    window.close()
    stored = next(
        m for m in core.conversations.messages(page.conversation_id or 0) if m.id == reply_id
    )
    assert stored.state is MessageState.CANCELLED
    assert stored.content.startswith(SCRIPTED_REPLY)


def test_a_conversation_too_long_for_the_context_offers_to_drop_the_oldest_turns(
    qtbot: QtBot, chat: ChatPage, core: Core, ggufs: ScriptedGgufs
) -> None:
    page = chat
    store = core.conversations
    conversation = store.create("Long one")
    for turn in range(4):
        store.append_message(conversation.id, "user", f"Question {turn}: " + "tell me more " * 5)
        store.append_message(conversation.id, "assistant", f"Answer {turn}: " + "and so on " * 5)
    with qtbot.waitSignal(page.conversationShown, timeout=10_000):
        page.conversations.refresh(select=conversation.id)
    assert len(page.transcript.messages()) == 8
    load(qtbot, page, ggufs.scripted_4k, context=256, max_tokens=64)

    # Cancel: nothing is sent, nothing is dropped.
    page.composer.editor.setPlainText("Next?")
    page.composer.send_button.click()
    qtbot.waitUntil(lambda: page.overflow_dialog is not None, timeout=REPLY_TIMEOUT_MS)
    dialog = page.overflow_dialog
    assert dialog is not None
    labels = [button.text() for button in dialog.buttons()]
    assert "Drop oldest turns" in labels
    dialog.button(QMessageBox.StandardButton.Cancel).click()
    qtbot.waitUntil(lambda: page.composer.send_button.text() != "Stop", timeout=10_000)
    qtbot.waitUntil(lambda: "Nothing was sent" in page.status.text(), timeout=10_000)
    assert len(store.messages(conversation.id)) == 8
    assert page.composer.text == "Next?"

    # Drop the oldest turns: a divider shows where, and the reply comes.
    with qtbot.waitSignal(page.replyFinished, timeout=REPLY_TIMEOUT_MS) as finished:
        page.composer.send_button.click()
        qtbot.waitUntil(lambda: page.overflow_dialog is not None, timeout=REPLY_TIMEOUT_MS)
        dialog = page.overflow_dialog
        assert dialog is not None
        drop = next(b for b in dialog.buttons() if b.text() == "Drop oldest turns")
        assert isinstance(drop, QPushButton)
        drop.click()
    assert finished.args == ["complete"]
    markers = [
        entry
        for message in page.transcript.messages()
        if isinstance(entry := page.transcript.entry(message.id), MarkerWidget)
    ]
    assert len(markers) == 1
    assert "dropped to fit the context" in markers[0].label.text()
    assert page.transcript.messages()[-1].content == SCRIPTED_REPLY


def test_conversations_are_created_renamed_searched_and_deleted(
    qtbot: QtBot,
    qtmodeltester: ModelTester,
    chat: ChatPage,
    core: Core,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    page = chat
    listing = page.conversations
    qtmodeltester.check(listing.view.model())  # the QListWidget model, empty so far
    fruit = core.conversations.create("Groceries")
    core.conversations.append_message(fruit.id, "user", "Do we need a pineapple?")
    with qtbot.waitSignal(page.conversationShown, timeout=10_000) as shown:
        listing.refresh()  # nothing was open: the most recent conversation opens
    assert shown.args == [fruit.id]
    with qtbot.waitSignal(page.conversationShown, timeout=10_000) as shown:
        listing.new_button.click()
    assert listing.titles() == ["New conversation", "Groceries"]
    qtmodeltester.check(listing.view.model())
    new_id = shown.args[0]
    assert page.conversation_id == new_id

    # F2 renames (double-click does too).
    listing.view.setFocus()
    qtbot.keyClick(listing.view, Qt.Key.Key_F2)
    editor = listing.view.viewport().findChild(QLineEdit)
    assert editor is not None
    editor.selectAll()
    qtbot.keyClicks(editor, "Trip plans")
    with qtbot.waitSignal(listing.renamed, timeout=10_000):
        qtbot.keyClick(editor, Qt.Key.Key_Return)
    assert core.conversations.get(new_id).title == "Trip plans"
    assert page.title.text() == "Trip plans"

    # The system prompt belongs to the conversation.
    page.panel.system_prompt.setPlainText("Answer like a travel agent.")
    qtbot.waitUntil(
        lambda: core.conversations.get(new_id).system_prompt == "Answer like a travel agent.",
        timeout=10_000,
    )

    # Search looks at titles and message text.
    with qtbot.waitSignal(listing.listed, timeout=10_000) as listed:
        qtbot.keyClicks(listing.search, "PINEAPPLE")
    assert listed.args == [1] and listing.titles() == ["Groceries"]
    qtmodeltester.check(listing.view.model())
    with qtbot.waitSignal(listing.listed, timeout=10_000):
        qtbot.keyClick(listing.search, Qt.Key.Key_Escape)  # Esc empties the search
    assert listing.search.text() == ""
    assert listing.titles() == ["Trip plans", "Groceries"]

    # Delete asks first.
    asked: list[str] = []

    defaults: list[object] = []

    def answer(
        parent: object, title: str, text: str, *args: object, **kwargs: object
    ) -> QMessageBox.StandardButton:
        asked.append(text)
        defaults.append(args[1] if len(args) > 1 else kwargs.get("defaultButton"))
        return QMessageBox.StandardButton.Yes

    monkeypatch.setattr(QMessageBox, "question", answer)
    listing.view.setCurrentRow(0)
    with qtbot.waitSignal(listing.listed, timeout=10_000):
        listing.delete_button.click()
    assert asked and "Trip plans" in asked[0]
    assert defaults == [QMessageBox.StandardButton.No]  # Enter does not delete
    assert listing.titles() == ["Groceries"]
    qtmodeltester.check(listing.view.model())
    qtbot.waitUntil(lambda: page.conversation_id == fruit.id, timeout=10_000)


def test_export_writes_markdown_and_json(
    qtbot: QtBot, chat: ChatPage, core: Core, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    page = chat
    conversation = core.conversations.create("Recipes", system_prompt="Be brief.")
    core.conversations.append_message(conversation.id, "user", "How long do eggs boil?")
    core.conversations.append_message(conversation.id, "assistant", "About **7 minutes**.")
    with qtbot.waitSignal(page.conversationShown, timeout=10_000):
        page.conversations.refresh(select=conversation.id)
    assert page.panel.system_prompt.toPlainText() == "Be brief."
    targets = iter([tmp_path / "recipes.md", tmp_path / "recipes.json"])

    def save_as(*args: object, **kwargs: object) -> tuple[str, str]:
        return str(next(targets)), ""

    monkeypatch.setattr(QFileDialog, "getSaveFileName", save_as)
    with qtbot.waitSignal(page.exported, timeout=10_000):
        page.export_markdown_action.trigger()
    markdown = (tmp_path / "recipes.md").read_text(encoding="utf-8")
    assert markdown.startswith("# Recipes") and "About **7 minutes**." in markdown
    with qtbot.waitSignal(page.exported, timeout=10_000):
        page.export_json_action.trigger()
    document = json.loads((tmp_path / "recipes.json").read_text(encoding="utf-8"))
    assert document["title"] == "Recipes"
    assert [m["content"] for m in document["messages"]] == [
        "How long do eggs boil?",
        "About **7 minutes**.",
    ]


def test_messages_render_markdown_safely_and_copy_code_blocks(qtbot: QtBot) -> None:
    text = (
        "Here is **bold** and a [link](https://example.com).\n\n"
        "![tracker](https://evil.example/pixel.png)\n\n"
        "Inline <img src='https://evil.example/x.png'> tags are dropped.\n\n"
        "<script>alert(1)</script>\n\n"
        "```python\nprint('hi')\n```\n\n"
        "- one\n- two\n"
    )
    whole = MessageBody()
    qtbot.addWidget(whole)
    whole.show_text(text)
    assert "print('hi')" in whole.toPlainText()
    assert "[image: tracker]" in whole.toPlainText()
    assert "alert" not in whole.toPlainText()
    assert whole.resource_requests == []  # nothing asked to load, let alone loaded
    assert whole.copy_code(0) == "print('hi')"
    assert QGuiApplication.clipboard().text() == "print('hi')"

    # Streamed in small pieces, the message ends up the same as rendered whole.
    streamed = MessageBody()
    qtbot.addWidget(streamed)
    for end in range(1, len(text) + 1, 7):
        streamed.stream(text[:end])
    streamed.stream(text)
    streamed.finish()
    assert streamed.toPlainText() == whole.toPlainText()
    code_block = next(block for block in _blocks(streamed) if block.text() == "print('hi')")
    assert code_block.blockFormat().nonBreakableLines()  # still a code block

    # A paragraph that never ends streams as plain text (cheap), then renders when done.
    endless = "A *long* paragraph that goes on. " * 400
    growing = MessageBody()
    qtbot.addWidget(growing)
    for end in range(50, len(endless) + 50, 50):
        growing.stream(endless[:end])
    assert growing.document().blockCount() > 2  # plain text, in blocks of bounded size
    growing.finish()
    rendered = MessageBody()
    qtbot.addWidget(rendered)
    rendered.show_text(endless)
    assert growing.toPlainText() == rendered.toPlainText()
    assert growing.document().blockCount() == 1


def _blocks(body: MessageBody) -> list[object]:
    document = body.document()
    return [document.findBlockByNumber(n) for n in range(document.blockCount())]


def test_chat_with_this_from_the_library_picks_the_model(
    qtbot: QtBot, window: MainWindow, ggufs: ScriptedGgufs
) -> None:
    library = window.library
    with qtbot.waitSignal(library.imported, timeout=20_000):
        library.import_paths([ggufs.scripted_4k])
    library.view.selectRow(0)
    assert library.chat_button.isEnabled()
    library.chat_button.click()
    assert window.pages.currentWidget() is window.chat
    picked = window.chat.panel.load_form.picked()
    assert picked is not None and picked.path == ggufs.scripted_4k


def test_chat_with_this_after_a_gguf_download_in_discover(
    qtbot: QtBot, window: MainWindow, hub_server: HubServer, ggufs: ScriptedGgufs
) -> None:
    from tests.gui.test_downloads_page import open_files_tab, select_file

    hub_server.add_repo(
        "acme/tiny-chat-gguf",
        {"tiny-chat-Q8_0.gguf": ggufs.scripted_4k.read_bytes()},
        card="---\nlicense: mit\n---\n# Tiny chat",
    )
    open_files_tab(qtbot, window)
    select_file(window, "tiny-chat-Q8_0.gguf")
    files = window.discover.details.view.files
    assert not files.chat_button.isVisible()
    files.download_button.click()
    downloads = window.downloads
    qtbot.waitUntil(
        lambda: (job := downloads.model.job(0)) is not None and job.state.value == "completed",
        timeout=30_000,
    )
    window.show_page(window.discover)
    qtbot.waitUntil(files.chat_button.isVisible, timeout=10_000)
    files.chat_button.click()
    assert window.pages.currentWidget() is window.chat
    picked = window.chat.panel.load_form.picked()
    assert picked is not None and picked.path.name == "tiny-chat-Q8_0.gguf"
    assert picked.path.read_bytes() == ggufs.scripted_4k.read_bytes()


def test_a_remote_endpoint_is_tested_then_answers(
    qtbot: QtBot, chat: ChatPage, ggufs: ScriptedGgufs
) -> None:
    from tests.support.llama_server import LlamaServer

    page = chat
    form = page.panel.remote_form
    page.panel.source.setCurrentIndex(1)
    with LlamaServer(ggufs.scripted_4k) as server:
        form.url.setText("http://127.0.0.1:9/v1")  # nothing listens there
        with qtbot.waitSignal(page.panel.remoteChecked, timeout=30_000) as checked:
            form.test_button.click()
        assert checked.args == [False] and form.status.property("error")
        form.url.setText(server.url)
        with qtbot.waitSignal(page.panel.remoteChecked, timeout=30_000) as checked:
            form.test_button.click()
        assert checked.args == [True], form.status.text()
        assert "answers" in form.status.text()
        assert form.model.count() >= 1  # the listed models are offered
        form.use_button.click()
        qtbot.waitUntil(lambda: page.panel.engine is not None, timeout=10_000)
        assert "remote" in page.panel.active_label.text()
        with qtbot.waitSignal(page.replyFinished, timeout=REPLY_TIMEOUT_MS) as finished:
            send(qtbot, page, "Hello, server")
        assert finished.args == ["complete"]
        reply = reply_widget(page)
        assert reply.body.text == SCRIPTED_REPLY
        assert not reply.command_button.isVisible()  # no llama.cpp command for a remote reply
        page.panel.close_engines()


def test_a_remote_api_key_is_kept_for_its_url_and_the_endpoint_remembered(
    qtbot: QtBot, chat: ChatPage, core: Core, ggufs: ScriptedGgufs
) -> None:
    from tests.support.llama_server import LlamaServer
    from ui.chat.model_panel import ModelPanel

    page = chat
    form = page.panel.remote_form
    page.panel.source.setCurrentIndex(1)
    with LlamaServer(ggufs.scripted_4k, api_key="sk-kept") as server:
        form.url.setText(server.url)
        form.model.setCurrentText("tiny")
        form.api_key.setText("sk-kept")
        form.use_button.click()
        qtbot.waitUntil(lambda: page.panel.engine is not None, timeout=10_000)
        assert core.endpoint_keys.load(server.url) == "sk-kept"

        # Next time: the URL and model are filled in, and the kept key is used unasked.
        again = ModelPanel(core)
        qtbot.addWidget(again)
        assert again.remote_form.url.text() == server.url
        assert again.remote_form.api_key.text() == ""
        again.source.setCurrentIndex(1)
        again.remote_form.use_button.click()
        qtbot.waitUntil(lambda: again.engine is not None, timeout=10_000)
        reply = again.engine.generate(  # type: ignore[union-attr]
            [{"role": "user", "content": "Hi"}], Sampling()
        ).wait(30)
        assert reply.kind is EventKind.RESULT, reply.payload
        again.close_engines()
        page.panel.close_engines()


def test_the_kv_cache_choices_are_the_engines() -> None:
    from app.llm import KvCacheType
    from ui.chat.load_form import KV_CACHE_TYPES

    assert sorted(KV_CACHE_TYPES) == sorted(kind.value for kind in KvCacheType)
    assert KV_CACHE_TYPES[0] == KvCacheType.F16.value  # llama.cpp's default

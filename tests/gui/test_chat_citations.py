"""A reply from documents: its [n] and its sources list open the cited passage."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PySide6.QtCore import QObject, QPoint, Qt, QUrl, Slot
from PySide6.QtGui import QDesktopServices, QTextCursor
from pytestqt.qtbot import QtBot

from app.docs.citation import Citation
from app.tiny_gguf import write_scripted_gguf
from ui.chat.markdown import citation_url, render_html
from ui.chat.message_body import MessageBody
from ui.chat.message_widget import MessageWidget
from ui.chat.page import ChatPage
from ui.main_window import MainWindow

CITED_REPLY = "Stir [1]."  # every byte once: the scripted model spells it by bigrams
PASSAGE_LINE = 121  # far down the file: the viewer must scroll to it


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    root = tmp_path / "Kitchen"
    root.mkdir()
    filler = "\n\n".join(f"Notebook entry {n}: onions, carrots, celery." for n in range(60))
    lines = filler.splitlines()
    assert len(lines) == PASSAGE_LINE - 2
    passage = "## Broth\n\nSimmer the broth for forty minutes.\nSkim it twice."
    (root / "notes.md").write_text("\n".join(lines) + "\n\n" + passage + "\n")
    return root


def _anchor_point(body: MessageBody, href: str) -> QPoint:
    """Where on the body's viewport the link `href` is drawn."""
    document = body.document()
    block = document.begin()
    while block.isValid():
        iterator = block.begin()
        while not iterator.atEnd():
            fragment = iterator.fragment()
            if fragment.charFormat().anchorHref() == href:
                start, end = QTextCursor(document), QTextCursor(document)
                start.setPosition(fragment.position())
                end.setPosition(fragment.position() + fragment.length())
                left, right = body.cursorRect(start), body.cursorRect(end)
                return QPoint((left.left() + right.left()) // 2, left.center().y())
            iterator += 1
        block = block.next()
    raise AssertionError(f"no link to {href} in {body.toHtml()[:500]}")


def _ask(qtbot: QtBot, window: MainWindow, folder: Path, model: Path) -> ChatPage:
    from tests.gui.test_chat_page import REPLY_TIMEOUT_MS, load, send

    documents = window.documents
    with qtbot.wait_signal(documents.indexFinished, timeout=30_000):
        documents.add_folder(folder)
    qtbot.wait_until(lambda: documents.table.rowCount() == 1)
    documents.table.selectRow(0)
    documents.attach_button.click()
    chat = window.chat
    load(qtbot, chat, model, context=4096)
    with qtbot.wait_signal(chat.replyFinished, timeout=REPLY_TIMEOUT_MS):
        send(qtbot, chat, "How long do I simmer the broth?")
    return chat


def test_clicking_a_citation_opens_the_viewer_at_the_cited_lines(
    qtbot: QtBot, window: MainWindow, folder: Path, tmp_path: Path
) -> None:
    model = write_scripted_gguf(tmp_path / "cited.gguf", reply=CITED_REPLY, context_length=4096)
    chat = _ask(qtbot, window, folder, model)
    reply = chat.transcript.messages()[-1]
    assert reply.content == CITED_REPLY
    (source,) = reply.sources  # kept with the reply, typed
    assert (source.number, Path(source.path).name) == (1, "notes.md")
    assert source.line_start == PASSAGE_LINE and source.line_end == PASSAGE_LINE + 3
    stored = window.chat._core.conversations.messages(reply.conversation_id)[-1]
    assert stored.sources == (source,)

    from tests.gui.test_chat_page import reply_widget

    widget = reply_widget(chat)
    assert widget.sources.isVisible()
    assert f'href="{citation_url(1)}"' in widget.sources.text()
    assert "[1] notes.md, lines 121-124" in widget.sources.text()
    body = widget.body
    point = _anchor_point(body, citation_url(1))
    assert body.anchorAt(point) == citation_url(1), (point, body.toHtml())
    with qtbot.wait_signal(chat.citationOpened, timeout=10_000) as opened:
        qtbot.mouseClick(
            body.viewport(),
            Qt.MouseButton.LeftButton,
            pos=point,
        )
    assert opened.args[0] == source
    viewer = chat.source_viewer
    assert viewer.isVisible()
    assert viewer.highlighted_lines() == (PASSAGE_LINE, PASSAGE_LINE + 3)
    editor = viewer.text
    cursor = editor.textCursor()
    assert cursor.blockNumber() + 1 == PASSAGE_LINE
    assert cursor.block().text() == "## Broth"
    assert editor.firstVisibleBlock().blockNumber() > 0  # scrolled down to it
    assert editor.viewport().rect().contains(editor.cursorRect(cursor).center())
    assert editor.isReadOnly()

    # The question's list of sources opens it too (and has no second list under it).
    viewer.hide()
    question = chat.transcript.entry(chat.transcript.messages()[-2].id)
    assert isinstance(question, MessageWidget) and not question.sources.isVisible()
    with qtbot.wait_signal(chat.citationOpened, timeout=10_000):
        qtbot.mouseClick(
            question.body.viewport(),
            Qt.MouseButton.LeftButton,
            pos=_anchor_point(question.body, citation_url(1)),
        )
    assert viewer.highlighted_lines() == (PASSAGE_LINE, PASSAGE_LINE + 3)

    # The list under the reply; a file gone since says so and nothing else changes.
    viewer.hide()
    with qtbot.wait_signal(chat.citationOpened, timeout=10_000):
        widget.sources.linkActivated.emit(citation_url(1))
    assert viewer.isVisible()
    viewer.hide()
    (folder / "notes.md").unlink()
    with qtbot.assert_not_emitted(chat.citationOpened, wait=500):
        widget.sources.linkActivated.emit(citation_url(1))
        qtbot.wait_until(lambda: "no longer there" in chat.status.text())
    assert not viewer.isVisible()


class _UrlCatcher(QObject):
    def __init__(self) -> None:
        super().__init__()
        self.urls: list[QUrl] = []

    @Slot(QUrl)
    def open(self, url: QUrl) -> None:
        self.urls.append(url)


def test_a_pdf_citation_opens_in_the_system_app_at_its_page(
    qtbot: QtBot, window: MainWindow, tmp_path: Path
) -> None:
    pdf = tmp_path / "report.pdf"
    pdf.write_bytes(b"%PDF-1.4\n")
    catcher = _UrlCatcher()
    QDesktopServices.setUrlHandler("file", catcher, "open")
    try:
        chat = window.chat
        citation = Citation(2, str(pdf), 3, 10, 24, "Results", 0.03)
        with qtbot.wait_signal(chat.citationOpened, timeout=10_000):
            chat.transcript.citationRequested.emit(citation)
    finally:
        QDesktopServices.unsetUrlHandler("file")
    (url,) = catcher.urls
    assert url.toLocalFile() == str(pdf) and url.fragment() == "page=3"
    assert not chat.source_viewer.isVisible()


def test_a_reply_links_only_the_numbers_of_its_sources_outside_code() -> None:
    text = "Stir [1] and [1, 2], never [9].\n\n`code [1]` and [a link [2]](https://x.org)\n"
    html, _codes = render_html(text, citations=frozenset({1, 2}))
    assert html.count('href="modeldeck:cite/1"') == 2
    assert html.count('href="modeldeck:cite/2"') == 1  # not the one inside the link
    assert "[9]" in html and "modeldeck:cite/9" not in html
    assert "<code>code [1]</code>" in html
    assert render_html(text)[0].count("modeldeck:cite") == 0


@settings(max_examples=300, deadline=2000)
@given(st.text(alphabet="[]1,2 <>&ab`*\n", max_size=80))
def test_citation_links_add_nothing_but_citation_links(text: str) -> None:
    plain, _ = render_html(text)
    linked, _ = render_html(text, citations=frozenset({1, 2}))
    # Taking the links out again gives the HTML without them: nothing else changed.
    unlinked = re.sub(r'<a href="modeldeck:cite/\d+">(\d+)</a>', r"\1", linked)
    assert unlinked == plain

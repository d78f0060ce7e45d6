"""The text of one chat message: safe rich text that grows as a reply streams, never reloaded.

`MessageBody` is a read-only QTextBrowser as tall as its text (the transcript scrolls, not
the message). It loads no resources whatever the HTML says (`ui.inert_text`), opens only safe
links, in the system browser, and turns "Copy code" links into clipboard copies.

Streaming (`stream`) costs the GUI thread only the new part: finished Markdown blocks are
rendered once and appended; the unfinished tail is re-rendered on each update while it is
short, and appended as plain text once it is long (a model writing one endless paragraph
would otherwise make every update slower than the last). `show_text` renders a whole message.
"""

from __future__ import annotations

import math

from PySide6.QtCore import Qt, QUrl, Signal
from PySide6.QtGui import (
    QColor,
    QDesktopServices,
    QGuiApplication,
    QPalette,
    QTextBlockFormat,
    QTextCharFormat,
    QTextCursor,
    QTextDocumentFragment,
)
from PySide6.QtWidgets import QFrame, QSizePolicy, QWidget

from app.hub.links import SAFE_SCHEMES
from ui.chat.markdown import (
    CITATION_PREFIX,
    COPY_CODE_PREFIX,
    code_blocks,
    render_html,
    split_segments,
    stable_end,
)
from ui.inert_text import InertTextBrowser

# Above this many characters, an unfinished block is appended as plain text while it streams
# (re-rendering it costs about 1 ms per 2 kB on each update).
TAIL_MARKDOWN_LIMIT = 4_000
# Plain text goes into blocks of about this size: Qt lays out a whole block again on each
# append, and one endless paragraph would make every update slower than the last.
PLAIN_BLOCK_CHARS = 2_000
# A finished reply's plain tail longer than this stays plain: rendering one giant block at
# once would stall the window (a model that never ends a paragraph writes no Markdown anyway).
FINISH_MARKDOWN_LIMIT = 30_000


def _plain_block_format() -> QTextBlockFormat:
    block = QTextBlockFormat()
    block.setTopMargin(0)
    block.setBottomMargin(0)
    return block


_PLAIN_BLOCK = _plain_block_format()


def _css(palette: QPalette) -> str:
    code_background = palette.color(QPalette.ColorRole.AlternateBase).darker(108).name()
    muted = palette.color(QPalette.ColorRole.PlaceholderText).name()
    return f"""
p {{ margin-top: 4px; margin-bottom: 4px; }}
h1, h2, h3 {{ margin-top: 10px; margin-bottom: 4px; }}
pre {{ background-color: {code_background}; font-family: monospace; margin-top: 0px; }}
code {{ font-family: monospace; background-color: {code_background}; }}
p.code-head {{ color: {muted}; margin-bottom: 0px; margin-top: 6px; }}
table {{ border-collapse: collapse; }}
th, td {{ border: 1px solid {muted}; padding: 3px 6px; }}
"""


class MessageBody(InertTextBrowser):
    """Rich text of one message, as tall as its content."""

    codeCopied = Signal(int)  # the index of the code block put on the clipboard
    linkOpened = Signal(str)  # a safe URL opened in the system browser
    citationClicked = Signal(int)  # a reply's [n] was clicked: open source n

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setFrameShape(QFrame.Shape.NoFrame)
        self.setVerticalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)
        palette = QPalette(self.palette())
        palette.setColor(QPalette.ColorRole.Base, QColor(0, 0, 0, 0))  # the message's own colour
        self.setPalette(palette)
        self.viewport().setAutoFillBackground(False)
        self.document().setDefaultStyleSheet(_css(self.palette()))
        self.document().setDocumentMargin(2)
        self.document().documentLayout().documentSizeChanged.connect(self._fit_height)
        self.anchorClicked.connect(self._open_link)
        self._text = ""  # the Markdown shown
        self._committed = 0  # characters of `_text` rendered as finished blocks
        self._codes = 0  # code blocks among them
        self._tail_start = 0  # document position where the unfinished tail begins
        self._tail_plain = -1  # characters of the tail shown as plain text; -1: as Markdown
        self._plain_block = 0  # characters in the last plain block
        self._plain_format = QTextCharFormat()
        self._citations: frozenset[int] = frozenset()  # the n whose [n] are links
        self._fit_height()

    def set_citations(self, numbers: frozenset[int]) -> None:
        """Make each [n] with n in `numbers` a link (`citationClicked`); shown text is redrawn."""
        if numbers != self._citations:
            self._citations = numbers
            if self._text:
                self.show_text(self._text)

    @property
    def text(self) -> str:
        """The Markdown shown."""
        return self._text

    def show_text(self, text: str) -> None:
        """Show `text` whole, rendered as Markdown."""
        self.document().clear()
        self._text, self._committed, self._codes, self._tail_start = "", 0, 0, 0
        self._tail_plain = -1
        self.stream(text)
        self.finish()

    def stream(self, text: str) -> None:
        """Show `text`, which extends what is shown: only the new part costs work."""
        if not text.startswith(self._text):
            if not text.startswith(self._text[: self._committed]):
                self.show_text(text)  # another text altogether: start again
                return
            self._remove_tail()  # the finished blocks stand; the tail is drawn anew
            self._tail_plain = -1
        cut = stable_end(text, self._committed)
        if cut > self._committed:
            self._remove_tail()
            html, codes = render_html(
                text[self._committed : cut], first_code=self._codes, citations=self._citations
            )
            self._append_html(html)
            self._committed, self._codes = cut, self._codes + codes
            self._tail_start = self._end()
            self._tail_plain = -1
        tail = text[self._committed :]
        if len(tail) <= TAIL_MARKDOWN_LIMIT:
            self._remove_tail()
            self._append_html(
                render_html(tail, first_code=self._codes, citations=self._citations)[0]
            )
        else:
            if self._tail_plain < 0:
                self._remove_tail()
                self._start_plain(code=split_segments(tail[:200])[0].code)
                self._tail_plain = 0
            self._extend_plain(tail[self._tail_plain :])
            self._tail_plain = len(tail)
        self._text = text

    def finish(self) -> None:
        """The reply ended: render a long plain tail as Markdown after all (unless huge)."""
        if self._tail_plain >= 0 and len(self._text) - self._committed <= FINISH_MARKDOWN_LIMIT:
            self._remove_tail()
            html, codes = render_html(
                self._text[self._committed :], first_code=self._codes, citations=self._citations
            )
            self._append_html(html)
            self._committed, self._codes = len(self._text), self._codes + codes
            self._tail_plain = -1
            self._tail_start = self._end()

    def copy_code(self, index: int) -> str | None:
        """Put code block `index` on the clipboard; returns its text (None: no such block)."""
        blocks = code_blocks(self._text)
        if not 0 <= index < len(blocks):
            return None
        QGuiApplication.clipboard().setText(blocks[index])
        self.codeCopied.emit(index)
        return blocks[index]

    # -- document edits ------------------------------------------------------------------

    def _end(self) -> int:
        cursor = QTextCursor(self.document())
        cursor.movePosition(QTextCursor.MoveOperation.End)
        return cursor.position()

    def _remove_tail(self) -> None:
        cursor = QTextCursor(self.document())
        cursor.setPosition(min(self._tail_start, self._end()))
        cursor.movePosition(QTextCursor.MoveOperation.End, QTextCursor.MoveMode.KeepAnchor)
        if cursor.hasSelection():
            cursor.removeSelectedText()

    def _append_html(self, html: str) -> None:
        """Append HTML as new blocks with their own formats.

        Inserted HTML is merged into the block at the cursor and its first block loses its
        format (a code block would lose its monospace), except at the very start of the
        document. So the fragment gets an empty first block, which merges with the end of
        the document's last one and adds nothing; the real first block follows it whole.
        """
        html = html.strip()  # a trailing newline would end the last block with a space
        if not html:
            return
        document = self.document()
        cursor = QTextCursor(document)
        cursor.movePosition(QTextCursor.MoveOperation.End)
        if document.isEmpty():
            cursor.insertHtml(html)
            return
        # Inert too: the HTML parser fetches style sheets as it reads, before insertion.
        piece = self.scratch_document()
        piece.setDefaultStyleSheet(document.defaultStyleSheet())
        piece.setHtml(html)
        QTextCursor(piece).insertBlock()
        cursor.insertFragment(QTextDocumentFragment(piece))

    def _start_plain(self, *, code: bool) -> None:
        """Begin a plain-text tail in a block of its own (monospace for code)."""
        self._plain_format = QTextCharFormat()
        if code:
            self._plain_format.setFontFamilies(["monospace"])
        cursor = QTextCursor(self.document())
        cursor.movePosition(QTextCursor.MoveOperation.End)
        if not self.document().isEmpty():
            cursor.insertBlock(_PLAIN_BLOCK, self._plain_format)
        else:
            cursor.setBlockFormat(_PLAIN_BLOCK)
            cursor.setBlockCharFormat(self._plain_format)
        self._plain_block = 0

    def _extend_plain(self, text: str) -> None:
        """Append plain text, starting a new block at a space every `PLAIN_BLOCK_CHARS`."""
        cursor = QTextCursor(self.document())
        cursor.movePosition(QTextCursor.MoveOperation.End)
        while text:
            room = PLAIN_BLOCK_CHARS - self._plain_block
            cut = text.find(" ", max(room, 0)) if len(text) > room else -1
            if cut < 0:
                cursor.insertText(text, self._plain_format)
                newline = text.rfind("\n")
                self._plain_block = (
                    len(text) - newline - 1 if newline >= 0 else (self._plain_block + len(text))
                )
                return
            cursor.insertText(text[: cut + 1], self._plain_format)
            cursor.insertBlock(_PLAIN_BLOCK, self._plain_format)
            self._plain_block = 0
            text = text[cut + 1 :]

    # -- size and links ------------------------------------------------------------------

    def _fit_height(self) -> None:
        height = math.ceil(self.document().size().height()) + 2 * self.frameWidth()
        if height != self.height():
            self.setFixedHeight(max(height, 4))

    def _open_link(self, url: QUrl) -> None:
        target = url.toString()
        if target.startswith(COPY_CODE_PREFIX):
            index = target.removeprefix(COPY_CODE_PREFIX)
            if index.isdigit():
                self.copy_code(int(index))
        elif target.startswith(CITATION_PREFIX):
            number = target.removeprefix(CITATION_PREFIX)
            if number.isdigit():
                self.citationClicked.emit(int(number))
        elif url.scheme().lower() in SAFE_SCHEMES:
            QDesktopServices.openUrl(url)
            self.linkOpened.emit(target)

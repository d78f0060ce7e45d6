"""A model card viewer that never loads anything and stays responsive with a 1 MB card."""

from __future__ import annotations

import time

from PySide6.QtCore import QEvent, QUrl, Signal
from PySide6.QtGui import QDesktopServices, QTextCursor, QTextDocument
from PySide6.QtWidgets import QWidget

from app.hub.links import SAFE_SCHEMES
from ui.inert_text import InertDocument, InertTextBrowser
from ui.tasks import spawn, yield_to_loop

# A few lines of CSS that Qt's rich-text engine understands, for readable cards.
_CARD_CSS = """
h1, h2, h3 { margin-top: 14px; }
pre { background: palette(alternate-base); padding: 6px; }
code { font-family: monospace; }
table { border-collapse: collapse; }
th, td { border: 1px solid palette(mid); padding: 3px 6px; }
"""
# Documents bigger than this are taken apart in steps: destroying a 1 MB document at once
# blocks the GUI thread for ~100 ms.
_BIG_DOCUMENT_CHARS = 100_000
# Inserting into a QTextDocument gets slower as it grows (~8 ms per 5 kB chunk at 1 MB on this
# machine, plus layout), so a huge card shows its first part and a link to the rest.
INITIAL_HTML_CHARS = 256_000
MORE_LINK = "modeldeck:card-rest"
_TURN_SECONDS = 0.015  # GUI-thread work between two yields to the event loop
_BLOCKS_PER_STEP = 150  # ~10 ms of work per step on a slow machine


class CardView(InertTextBrowser):
    """Shows card HTML from `app.hub.card_html` and opens links only in the system browser.

    Resources (images, style sheets) are never loaded, whatever the HTML says: the view and
    its documents are inert (`ui.inert_text`); `resource_requests` lists what was asked for.
    Large cards are appended chunk by chunk with a yield to the event loop
    between chunks, so painting and input continue while a big card fills in; a large
    previous card is dismantled the same way, in the background.
    """

    linkActivated = Signal(str)  # a safe URL the user clicked (after it was opened)
    restShown = Signal()  # the rest of a long card has been appended

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)  # shows a `new_document()`, with the card style sheet
        self.anchorClicked.connect(self._open_link)
        self._rest: list[str] = []  # chunks of a long card not shown yet
        self._rest_starts = 0  # where the "show the rest" paragraph begins
        self._small_html: str | None = None  # a card shown whole and small, to restyle

    def clear(self) -> None:
        """Empty the view at once; a big old document is taken apart in the background."""
        self._small_html = None
        old = self.document()
        if old.characterCount() < _BIG_DOCUMENT_CHARS:
            super().clear()
            return
        old.setParent(None)  # so that setDocument does not delete it here and now
        self.setDocument(self.new_document())
        spawn(_dismantle(old))

    @property
    def has_more(self) -> bool:
        """Whether a long card has a part not shown yet (behind the "show the rest" link)."""
        return bool(self._rest)

    async def show_chunks(self, chunks: list[str], *, limit: int = INITIAL_HTML_CHARS) -> None:
        """Replace the content with `chunks`, yielding to the event loop every ~15 ms.

        After about `limit` characters of HTML the rest waits behind a link at the end.
        """
        self.clear()
        self._rest = []
        if chunks:
            self.setHtml(chunks[0])
        shown = await self._append(chunks[1:], budget=limit - len(chunks[0] if chunks else ""))
        if shown < len(chunks) - 1:
            self._rest = chunks[1 + shown :]
            self._append_more_link()
        elif sum(len(chunk) for chunk in chunks) < _BIG_DOCUMENT_CHARS:
            self._small_html = "".join(chunks)
        self.moveCursor(QTextCursor.MoveOperation.Start)

    def changeEvent(self, event: QEvent) -> None:
        # The CSS's palette() colours are fixed when the HTML is parsed: after a light/dark
        # switch, parse a small card again (a big one keeps its colours until the next card,
        # rather than stall the window).
        super().changeEvent(event)
        if event.type() == QEvent.Type.PaletteChange and self._small_html is not None:
            position = self.verticalScrollBar().value()
            self.setHtml(self._small_html)
            self.verticalScrollBar().setValue(position)

    async def show_rest(self) -> None:
        """Append the part of a long card that was held back."""
        rest, self._rest = self._rest, []
        if not rest:
            return
        cursor = QTextCursor(self.document())
        cursor.setPosition(self._rest_starts)
        cursor.movePosition(QTextCursor.MoveOperation.End, QTextCursor.MoveMode.KeepAnchor)
        cursor.removeSelectedText()
        await self._append(rest, budget=None)
        self.restShown.emit()

    async def _append(self, chunks: list[str], *, budget: int | None) -> int:
        """Append chunks until `budget` characters (None: all); returns how many went in."""
        cursor = QTextCursor(self.document())
        turn_started = time.perf_counter()
        for number, chunk in enumerate(chunks):
            if budget is not None and budget <= 0:
                return number
            cursor.movePosition(QTextCursor.MoveOperation.End)
            cursor.insertHtml(chunk)
            if budget is not None:
                budget -= len(chunk)
            if time.perf_counter() - turn_started > _TURN_SECONDS:
                await yield_to_loop()
                turn_started = time.perf_counter()
        return len(chunks)

    def _append_more_link(self) -> None:
        cursor = QTextCursor(self.document())
        cursor.movePosition(QTextCursor.MoveOperation.End)
        self._rest_starts = cursor.position()
        remaining = sum(len(chunk) for chunk in self._rest)
        cursor.insertHtml(
            f'<p><a href="{MORE_LINK}"><b>This card is long: show the rest '
            f"(about {remaining // 1000:,} kB more)</b></a></p>"
        )

    def new_document(self) -> InertDocument:
        document = super().new_document()
        document.setDefaultStyleSheet(_CARD_CSS)
        return document

    def _open_link(self, url: QUrl) -> None:
        if url.toString() == MORE_LINK:
            spawn(self.show_rest())
        elif url.scheme().lower() in SAFE_SCHEMES:
            QDesktopServices.openUrl(url)
            self.linkActivated.emit(url.toString())


async def _dismantle(document: QTextDocument) -> None:
    """Remove a detached document's blocks from the end in small steps, then let it go."""
    while document.blockCount() > 1:
        cursor = QTextCursor(document)
        cursor.movePosition(QTextCursor.MoveOperation.End)
        cursor.movePosition(
            QTextCursor.MoveOperation.PreviousBlock,
            QTextCursor.MoveMode.KeepAnchor,
            _BLOCKS_PER_STEP,
        )
        if not cursor.hasSelection():
            break
        cursor.removeSelectedText()
        await yield_to_loop()
    document.deleteLater()

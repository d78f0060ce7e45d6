"""A model card viewer that never loads anything and stays responsive with a 1 MB card."""

from __future__ import annotations

import asyncio

from PySide6.QtCore import QUrl, Signal
from PySide6.QtGui import QDesktopServices, QTextCursor
from PySide6.QtWidgets import QTextBrowser, QWidget

from app.hub.card_html import SAFE_SCHEMES

# A few lines of CSS that Qt's rich-text engine understands, for readable cards.
_CARD_CSS = """
h1, h2, h3 { margin-top: 14px; }
pre { background: palette(alternate-base); padding: 6px; }
code { font-family: monospace; }
table { border-collapse: collapse; }
th, td { border: 1px solid palette(mid); padding: 3px 6px; }
"""


class CardView(QTextBrowser):
    """Shows card HTML from `app.hub.card_html` and opens links only in the system browser.

    Resources (images, style sheets) are never loaded, whatever the HTML says: `loadResource`
    answers nothing. Large cards are appended chunk by chunk with a yield to the event loop
    between chunks, so painting and input continue while a big card fills in.
    """

    linkActivated = Signal(str)  # a safe URL the user clicked (after it was opened)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setOpenLinks(False)
        self.setOpenExternalLinks(False)
        self.document().setDefaultStyleSheet(_CARD_CSS)
        self.anchorClicked.connect(self._open_link)
        self.resource_requests: list[str] = []  # what the HTML asked for (nothing is loaded)

    def loadResource(self, type: int, name: QUrl | str) -> object:
        self.resource_requests.append(name.toString() if isinstance(name, QUrl) else name)
        return None

    async def show_chunks(self, chunks: list[str]) -> None:
        """Replace the content with `chunks`, yielding to the event loop between them."""
        self.clear()
        cursor = QTextCursor(self.document())
        for number, chunk in enumerate(chunks):
            if number == 0:
                self.setHtml(chunk)
            else:
                cursor.movePosition(QTextCursor.MoveOperation.End)
                cursor.insertHtml(chunk)
            await asyncio.sleep(0)
        self.moveCursor(QTextCursor.MoveOperation.Start)

    def _open_link(self, url: QUrl) -> None:
        if url.scheme().lower() in SAFE_SCHEMES:
            QDesktopServices.openUrl(url)
            self.linkActivated.emit(url.toString())

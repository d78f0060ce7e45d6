"""Opening a reply's citation: the app's own viewer at the cited lines, or the system's app.

Text, Markdown, code and HTML show as plain text (never rendered: a document is only text),
scrolled to the cited span, which is highlighted. PDF and Word files open in the system's
application, a PDF at the cited page (`#page=N`, which most PDF viewers honour).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from PySide6.QtCore import QUrl
from PySide6.QtGui import QDesktopServices, QFontDatabase, QTextCursor, QTextFormat
from PySide6.QtWidgets import QDialog, QPlainTextEdit, QTextEdit, QVBoxLayout, QWidget

from app.docs.citation import Citation, Opener, read_source_lines
from app.errors import AppError
from ui.tasks import run_blocking
from ui.widgets import PlainLabel

VIEWER_SIZE = (760, 560)


class SourceViewer(QDialog):
    """A read-only view of one cited file, at the cited lines (one window, reused)."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Source")
        self.resize(*VIEWER_SIZE)
        self.where = PlainLabel()
        self.where.setWordWrap(True)
        self.text = QPlainTextEdit()
        self.text.setReadOnly(True)
        self.text.setLineWrapMode(QPlainTextEdit.LineWrapMode.NoWrap)
        self.text.setFont(QFontDatabase.systemFont(QFontDatabase.SystemFont.FixedFont))
        self.text.setCenterOnScroll(True)  # a span at the file's end can still sit mid-view
        layout = QVBoxLayout(self)
        layout.addWidget(self.where)
        layout.addWidget(self.text, 1)
        self.citation: Citation | None = None

    def show_citation(self, citation: Citation, lines: Sequence[str]) -> None:
        """Show `lines` (the cited file's), scrolled to the cited span and highlighting it."""
        self.citation = citation
        if self.isVisible():  # open behind the main window, perhaps: bring it forward
            self.raise_()
            self.activateWindow()
        else:
            self.show()  # first: scrolling to a line needs the view's real height
        self.setWindowTitle(f"Source [{citation.number}]: {Path(citation.path).name}")
        heading = f" — {citation.heading}" if citation.heading else ""
        self.where.setText(f"{citation.path}, {citation.location}{heading}")
        self.text.setPlainText("\n".join(lines))
        document = self.text.document()
        last = max(document.blockCount(), 1)
        first_block = document.findBlockByNumber(min(citation.line_start, last) - 1)
        last_block = document.findBlockByNumber(min(citation.line_end, last) - 1)
        highlight = self.palette().highlight().color()
        highlight.setAlpha(70)
        selections = []
        block = first_block
        while block.isValid() and block.blockNumber() <= last_block.blockNumber():
            selection = QTextEdit.ExtraSelection()
            selection.cursor = QTextCursor(block)  # one per line: each as wide as the view
            selection.format.setBackground(highlight)
            selection.format.setProperty(QTextFormat.Property.FullWidthSelection, True)
            selections.append(selection)
            block = block.next()
        self.text.setExtraSelections(selections)
        # The span's end first, then its start: the start lands in view, with the span below.
        self.text.setTextCursor(QTextCursor(last_block))
        self.text.ensureCursorVisible()
        self.text.setTextCursor(QTextCursor(first_block))
        self.text.centerCursor()

    def highlighted_lines(self) -> tuple[int, int] | None:
        """The 1-based first and last line highlighted, or None."""
        lines = [selection.cursor.blockNumber() + 1 for selection in self.text.extraSelections()]
        return (min(lines), max(lines)) if lines else None


def system_url(citation: Citation) -> QUrl:
    """The file's URL for the system's application, with `#page=N` for a PDF's page."""
    url = QUrl.fromLocalFile(str(Path(citation.path)))
    fragment = citation.page_fragment
    if fragment is not None:
        url.setFragment(fragment)
    return url


async def open_citation(viewer: SourceViewer, citation: Citation) -> str | None:
    """Open `citation` where it belongs; returns why it could not be opened (None: opened)."""
    if citation.opener is Opener.SYSTEM:
        if not await run_blocking(Path(citation.path).exists):  # a drive may be slow or gone
            return f"{citation.path} is no longer there: it was moved or deleted."
        if not QDesktopServices.openUrl(system_url(citation)):
            return f"No application here opens {Path(citation.path).name}."
        return None
    try:
        lines = await run_blocking(read_source_lines, Path(citation.path))
    except AppError as exc:
        return str(exc)
    viewer.show_citation(citation, lines)
    return None

"""The sources under a reply from documents: one link per numbered source, which opens it."""

from __future__ import annotations

import html
from collections.abc import Sequence

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import QLabel, QWidget

from app.docs.citation import Citation
from ui.chat.markdown import CITATION_PREFIX, citation_url
from ui.style import set_font


class SourcesView(QLabel):
    """ "Sources: [1] dish3.md, lines 1-3 · [2] report.pdf, page 2, lines 4-9", each a link."""

    citationClicked = Signal(int)  # the number of the source clicked

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setTextFormat(Qt.TextFormat.RichText)  # file names are escaped (`show_sources`)
        self.setWordWrap(True)
        self.setOpenExternalLinks(False)
        self.setTextInteractionFlags(
            Qt.TextInteractionFlag.LinksAccessibleByMouse
            | Qt.TextInteractionFlag.LinksAccessibleByKeyboard
        )
        set_font(self, points_delta=-1)
        self.linkActivated.connect(self._clicked)
        self.hide()

    def show_sources(self, sources: Sequence[Citation]) -> None:
        """List `sources` (hidden when there are none)."""
        links = [
            f'<a href="{citation_url(source.number)}">{html.escape(source.label())}</a>'
            f"{' — ' + html.escape(source.heading) if source.heading else ''}"
            for source in sources
        ]
        self.setText("Sources: " + " · ".join(links) if links else "")
        self.setToolTip("\n".join(source.path for source in sources))
        self.setVisible(bool(links))

    def _clicked(self, target: str) -> None:
        number = target.removeprefix(CITATION_PREFIX)
        if target.startswith(CITATION_PREFIX) and number.isdigit():
            self.citationClicked.emit(int(number))

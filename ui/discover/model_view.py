"""One model on screen: header, metadata chips, notices, and the Card / License / Files tabs."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from html import escape
from typing import Any

from PySide6.QtCore import QEvent, Qt, QUrl
from PySide6.QtGui import QDesktopServices
from PySide6.QtWidgets import QHBoxLayout, QTabWidget, QVBoxLayout, QWidget

from app.hub.models import Gating, ModelCard, ModelDetails
from app.units import format_bytes
from ui import theme
from ui.discover.card_view import CardView
from ui.discover.files_view import FilesView
from ui.discover.license_panel import LicensePanel
from ui.style import make_notice, set_font
from ui.widgets import LONG_CHARS, ElidedLabel, clip, html_label, let_shrink, plain_label

# Card metadata keys worth a chip, in display order.
_CHIP_KEYS = ("pipeline_tag", "library_name", "license", "base_model", "language", "datasets")
_MAX_CHIPS = 14


def metadata_chips(metadata: Mapping[str, Any], tags: Iterable[str] = ()) -> list[str]:
    """Short "key: value" labels for the card's front matter and the repo's tags."""
    chips: list[str] = []
    for key in _CHIP_KEYS:
        value = metadata.get(key)
        values = value if isinstance(value, list) else [value]
        chips += [f"{key.replace('_', ' ')}: {item}" for item in values[:4] if item]
    chips += [tag for tag in tags if ":" not in tag and tag not in chips]
    return chips[:_MAX_CHIPS]


def _open_url(url: str) -> None:
    QDesktopServices.openUrl(QUrl(url))


def chips_html(chips: Iterable[str]) -> str:
    """The chips as HTML; each chip's text (hub metadata) is cut short and escaped."""
    return " ".join(
        f'<span style="background-color: palette(midlight)">&nbsp;{escape(clip(chip))}&nbsp;</span>'
        for chip in chips
    )


class ModelView(QWidget):
    """The widgets that show one model; `DetailsPane` fills them as data arrives."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        # Everything here comes from the hub: plain labels, except the app's own link and the
        # chips' markup, whose values are escaped.
        self.title = ElidedLabel()  # a long repo id loses its middle, not its end
        set_font(self.title, points_delta=theme.HEADING_POINTS, bold=True)
        self.hub_link = html_label()
        self.hub_link.setTextInteractionFlags(Qt.TextInteractionFlag.TextBrowserInteraction)
        self.hub_link.setOpenExternalLinks(False)
        self.hub_link.linkActivated.connect(_open_url)
        self.facts = plain_label(word_wrap=True, selectable=True, shrinkable=True)
        self.chips = html_label()
        self._chips: list[str] = []  # shown now; drawn again when the scheme changes
        self.chips.setWordWrap(True)
        let_shrink(self.chips)
        self.notice = plain_label(word_wrap=True, shrinkable=True)  # offline copy, broken metadata
        make_notice(self.notice)
        self.notice.hide()

        self.card = CardView()
        self.license = LicensePanel()
        self.files = FilesView()
        self.tabs = QTabWidget()
        self.tabs.addTab(self.card, "Card")
        self.tabs.addTab(self.license, "License")
        self.tabs.addTab(self.files, "Files")

        header = QHBoxLayout()
        header.addWidget(self.title, 1)
        header.addWidget(self.hub_link, 0, Qt.AlignmentFlag.AlignBottom)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addLayout(header)
        for widget in (self.facts, self.chips, self.notice):
            layout.addWidget(widget)
        layout.addWidget(self.tabs, 1)

    def show_details(self, details: ModelDetails) -> None:
        """Fill the header and chips from the repository's metadata; empty the card."""
        self.title.setText(clip(details.repo_id))
        self.hub_link.setText(f'<a href="{escape(details.url)}">Open on the hub</a>')
        gated = {
            Gating.OPEN: "",
            Gating.AUTO: " · gated (terms accepted automatically)",
            Gating.MANUAL: " · gated (requests reviewed by the authors)",
        }[details.gating]
        total = sum(file.size or 0 for file in details.files)
        updated = details.last_modified.date().isoformat() if details.last_modified else "?"
        base = (
            f" · base model: {clip(', '.join(details.base_models))}" if details.base_models else ""
        )
        self.facts.setText(
            f"{clip(details.task or 'task not stated')}"
            f" · {clip(details.library or 'library not stated')}"
            f" · {details.downloads:,} downloads · {details.likes:,} likes · updated {updated}"
            f" · {len(details.files)} files, {format_bytes(total)}"
            f" · commit {(details.sha or '?')[:10]}{gated}{base}"
        )
        self.show_chips(details.card_data, details.tags)
        self.show_notices(details)
        self.card.clear()
        self.tabs.setCurrentIndex(0)

    def show_chips(self, metadata: Mapping[str, Any], tags: Iterable[str]) -> None:
        """Front matter as chips (never raw YAML)."""
        self._chips = metadata_chips(metadata, tags)
        self.chips.setText(chips_html(self._chips))

    def changeEvent(self, event: QEvent) -> None:
        # The chips' palette() colour is fixed when their HTML is parsed: parse it again
        # after a light/dark switch.
        super().changeEvent(event)
        if event.type() == QEvent.Type.PaletteChange:
            self.chips.clear()  # QLabel.setText skips a text equal to the one it shows
            self.chips.setText(chips_html(self._chips))

    def show_notices(self, details: ModelDetails, card: ModelCard | None = None) -> None:
        """Say when the data is an offline copy, and when the card's metadata is broken."""
        notes = []
        if details.saved_at is not None:
            notes.append(
                f"Offline — showing what the hub said on {details.saved_at:%Y-%m-%d %H:%M} UTC."
            )
        if card is not None and card.metadata_error:
            notes.append(card.metadata_error)
        self.notice.setText(clip(" ".join(notes), LONG_CHARS))
        self.notice.setVisible(bool(notes))

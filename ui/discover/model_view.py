"""One model on screen: header, metadata chips, notices, and the Card / License / Files tabs."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from html import escape
from pathlib import Path
from typing import Any

from PySide6.QtCore import Qt, QUrl
from PySide6.QtGui import QDesktopServices, QFont, QPainter, QPaintEvent, QPalette
from PySide6.QtWidgets import QHBoxLayout, QTabWidget, QVBoxLayout, QWidget

from app.hub.models import Gating, ModelCard, ModelDetails
from app.library.updates import older_main_revision
from app.units import format_bytes
from ui import theme
from ui.discover.card_view import CardView
from ui.discover.chip_row import ChipRow
from ui.discover.files_view import FilesView
from ui.discover.license_panel import LicensePanel
from ui.discover.result_row import counted, paint_repo_name
from ui.style import make_notice, set_font
from ui.tasks import run_blocking, spawn
from ui.widgets import LONG_CHARS, ElidedLabel, clip, html_label, plain_label, tooltip_html

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


class EndElidedLabel(ElidedLabel):
    """One line of outside text cut at its end ("…" last), whole in the tooltip when cut."""

    def _elided(self) -> str:
        width = self.contentsRect().width()
        return self.fontMetrics().elidedText(self.text(), Qt.TextElideMode.ElideRight, width)


class RepoTitle(EndElidedLabel):
    """The model's id as a heading: the author muted, the name bold, cut at the end only;
    the whole id in the tooltip."""

    def _update_tooltip(self) -> None:
        self.setToolTip(tooltip_html(self.text()))

    def paintEvent(self, event: QPaintEvent) -> None:
        painter = QPainter(self)
        name_font = QFont(self.font())
        name_font.setBold(True)
        author_font = QFont(self.font())
        author_font.setBold(False)
        palette = self.palette()
        paint_repo_name(
            painter,
            self.contentsRect(),
            self.text(),
            author_font=author_font,
            name_font=name_font,
            ink=palette.color(QPalette.ColorRole.WindowText),
            muted=palette.color(QPalette.ColorRole.PlaceholderText),
        )


class ModelView(QWidget):
    """The widgets that show one model; `DetailsPane` fills them as data arrives."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        # Everything here comes from the hub: plain labels and painted chips, except the app's
        # own link, whose URL is escaped. Each is one line high whatever the model, so the
        # tabs below never move (a cut line says the whole text in its tooltip).
        self.title = RepoTitle()
        set_font(self.title, points_delta=theme.HEADING_POINTS)
        self.hub_link = html_label()
        self.hub_link.setTextInteractionFlags(Qt.TextInteractionFlag.TextBrowserInteraction)
        self.hub_link.setOpenExternalLinks(False)
        self.hub_link.linkActivated.connect(_open_url)
        self.facts = EndElidedLabel()
        self.chips = ChipRow()
        self.notice = plain_label(word_wrap=True, shrinkable=True)  # offline copy, broken metadata
        make_notice(self.notice)
        self.notice.hide()
        # "You have an older revision": the cache's `main` is behind the hub's.
        self.older_revision = plain_label(word_wrap=True, shrinkable=True)
        make_notice(self.older_revision)
        self.older_revision.hide()
        self._shown: tuple[str, str | None] | None = None

        self.card = CardView()
        self.license = LicensePanel()
        self.files = FilesView()
        self.tabs = QTabWidget()
        self.tabs.addTab(self.card, "Card")
        self.tabs.addTab(self.license, "License")
        self.tabs.addTab(self.files, "Files")

        # The name has the whole width; the link sits at the end of the facts line.
        facts_row = QHBoxLayout()
        facts_row.addWidget(self.facts, 1)
        facts_row.addWidget(self.hub_link)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.title)
        layout.addLayout(facts_row)
        for widget in (self.chips, self.notice, self.older_revision):
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
        # Most telling first: on a narrow pane the line is cut at its end (whole in the tooltip).
        self.facts.setText(
            f"{clip(details.task or 'task not stated')}"
            f" · {clip(details.library or 'library not stated')}{gated}"
            f" · {counted(len(details.files), 'file')}, {format_bytes(total)}"
            f" · {counted(details.downloads, 'download')} · {counted(details.likes, 'like')}"
            f" · updated {updated} · commit {(details.sha or '?')[:10]}{base}"
        )
        self.show_chips(details.card_data, details.tags)
        self.show_notices(details)
        self.card.clear()
        self.tabs.setCurrentIndex(0)
        self._shown = (details.repo_id, details.sha)
        self.older_revision.hide()
        cache_dir = self.files.cache_dir
        if details.sha and details.saved_at is None and cache_dir is not None:
            spawn(self._find_older_revision(details.repo_id, details.sha, cache_dir))

    async def _find_older_revision(
        self, repo_id: str, commit: str, cache_dir: Callable[[], Path]
    ) -> None:
        older = await run_blocking(lambda: older_main_revision(cache_dir(), repo_id, commit))
        if self._shown != (repo_id, commit):  # another model is on screen now
            return
        if older is not None:
            self.older_revision.setText(
                f"You have an older revision ({older[:10]}) of this model; the hub's main is "
                f"now {commit[:10]}. `modeldeck update` fetches only the files that changed."
            )
        self.older_revision.setVisible(older is not None)

    def show_chips(self, metadata: Mapping[str, Any], tags: Iterable[str]) -> None:
        """Front matter as chips (never raw YAML)."""
        self.chips.set_chips(metadata_chips(metadata, tags))

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

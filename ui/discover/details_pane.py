"""The right side of Discover: one model's header, card, license and files."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from html import escape
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import Qt, QUrl, Signal
from PySide6.QtGui import QDesktopServices
from PySide6.QtWidgets import (
    QLabel,
    QStackedWidget,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from app.errors import AppError, GatedRepoError, HubUnreachableError
from app.hub.models import Gating, ModelCard, ModelDetails
from app.units import format_bytes
from ui.discover.card_view import CardView
from ui.discover.files_view import FilesView
from ui.discover.license_panel import LicensePanel
from ui.style import make_notice
from ui.tasks import cyclic_gc_paused, gather, run_blocking, spawn
from ui.widgets import MessageView

if TYPE_CHECKING:
    import asyncio

    from app.hardware import MachineMemory
    from app.hub.offline import OfflineAwareHub

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


def _read_machine_memory() -> MachineMemory:
    # Imported on first use, on a worker thread: psutil and friends stay out of startup.
    from app.hardware import read_machine_memory

    return read_machine_memory()


def _render_card_chunks(markdown: str, base_url: str) -> list[str]:
    # Imported on first use, on a worker thread: markdown-it costs ~25 ms at startup.
    from app.hub.card_html import render_card_chunks

    with cyclic_gc_paused():
        return render_card_chunks(markdown, base_url=base_url)


def _open_url(url: str) -> None:
    QDesktopServices.openUrl(QUrl(url))


def chips_html(chips: Iterable[str]) -> str:
    return " ".join(
        f'<span style="background-color: palette(midlight)">&nbsp;{escape(chip)}&nbsp;</span>'
        for chip in chips
    )


class DetailsPane(QWidget):
    """Loads and shows one repository; a newer selection cancels the older one's work.

    Args:
        hub: a getter for the current hub (it changes when settings change; may block).
        context_length: a getter for the context length used by fit estimates.
    """

    detailsShown = Signal(str)  # repo id, once header, license and files are filled
    cardShown = Signal(str)  # repo id, once the whole card is in the viewer
    failed = Signal(str)  # the message shown

    def __init__(
        self,
        hub: Callable[[], OfflineAwareHub],
        context_length: Callable[[], int],
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self._hub = hub
        self._context_length = context_length
        self._task: asyncio.Task[None] | None = None
        self.details: ModelDetails | None = None
        self.requested: str | None = None  # the repo shown or loading; None after a failure

        self.title = QLabel()
        self.title.setTextInteractionFlags(Qt.TextInteractionFlag.TextBrowserInteraction)
        self.title.setOpenExternalLinks(False)
        self.title.linkActivated.connect(_open_url)
        self.facts = QLabel()
        self.facts.setWordWrap(True)
        self.chips = QLabel()
        self.chips.setWordWrap(True)
        self.notice = QLabel()  # offline copy, broken metadata, …
        make_notice(self.notice)
        self.notice.setWordWrap(True)
        self.notice.hide()

        self.card = CardView()
        self.license = LicensePanel()
        self.files = FilesView()
        self.tabs = QTabWidget()
        self.tabs.addTab(self.card, "Card")
        self.tabs.addTab(self.license, "License")
        self.tabs.addTab(self.files, "Files")

        content = QWidget()
        content_layout = QVBoxLayout(content)
        content_layout.setContentsMargins(0, 0, 0, 0)
        for widget in (self.title, self.facts, self.chips, self.notice):
            content_layout.addWidget(widget)
        content_layout.addWidget(self.tabs, 1)

        self.message = MessageView()
        self.stack = QStackedWidget()
        self.stack.addWidget(self.message)
        self.stack.addWidget(content)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.stack)
        self.show_placeholder()

    def show_placeholder(self) -> None:
        if self._task is not None:
            self._task.cancel()
        self.requested = None
        self.message.show_message("Select a model", "Its card, license and files appear here.")
        self.stack.setCurrentIndex(0)

    def load(self, repo_id: str) -> asyncio.Task[None]:
        """Show `repo_id`, cancelling whatever was loading before."""
        if self._task is not None:
            self._task.cancel()
        self.requested = repo_id
        self.message.show_message(repo_id, "Loading…", busy=True)
        self.stack.setCurrentIndex(0)
        self._task = spawn(self._load(repo_id))
        return self._task

    async def _load(self, repo_id: str) -> None:
        try:
            hub = await run_blocking(self._hub)
            details = await run_blocking(hub.model_details, repo_id)
            memory = await run_blocking(_read_machine_memory)
        except AppError as exc:
            self._show_error(repo_id, exc)
            return
        self.details = details
        self._show_header(details)
        self.license.show_details(details)
        self.files.show_files(details, memory, self._context_length())
        self.card.clear()
        self.tabs.setCurrentIndex(0)
        self.stack.setCurrentIndex(1)
        self.detailsShown.emit(repo_id)
        await gather(
            self._load_card(hub, details),
            self._load_access(hub, details),
            self._load_license_text(hub, details),
        )

    async def _load_card(self, hub: OfflineAwareHub, details: ModelDetails) -> None:
        try:
            card = await run_blocking(hub.model_card, details.repo_id)
        except AppError as exc:
            self.card.setPlainText(f"The card could not be loaded: {exc}")
            self.cardShown.emit(details.repo_id)
            return
        self._show_card_notice(card, details)
        if not card.body.strip():
            self.card.setPlainText("This repository has no model card.")
        else:
            base = f"{details.url}/blob/{details.sha or 'main'}/"
            chunks = await run_blocking(_render_card_chunks, card.body, base)
            await self.card.show_chunks(chunks)
        self.chips.setText(chips_html(metadata_chips(card.metadata, details.tags)))
        self.cardShown.emit(details.repo_id)

    async def _load_access(self, hub: OfflineAwareHub, details: ModelDetails) -> None:
        if details.gating is Gating.OPEN or details.saved_at is not None:
            return
        access = await run_blocking(hub.check_access, details.repo_id)
        self.license.show_access(access)

    async def _load_license_text(self, hub: OfflineAwareHub, details: ModelDetails) -> None:
        license_file = details.license_file
        if license_file is None or (details.license_id or "other") not in ("other", "unknown"):
            return
        try:
            text = await run_blocking(hub.read_text_file, details.repo_id, license_file.path)
        except AppError:
            return  # the panel still links to the hub page; the text is a convenience
        self.license.show_license_text(text)

    def _show_header(self, details: ModelDetails) -> None:
        self.title.setText(
            f'<h2 style="margin:0">{escape(details.repo_id)}</h2>'
            f'<a href="{escape(details.url)}">Open on the hub</a>'
        )
        gated = {
            Gating.OPEN: "",
            Gating.AUTO: " · gated (terms accepted automatically)",
            Gating.MANUAL: " · gated (requests reviewed by the authors)",
        }[details.gating]
        total = sum(file.size or 0 for file in details.files)
        updated = details.last_modified.date().isoformat() if details.last_modified else "?"
        base = f" · base model: {', '.join(details.base_models)}" if details.base_models else ""
        self.facts.setText(
            f"{details.task or 'task not stated'} · {details.library or 'library not stated'}"
            f" · {details.downloads:,} downloads · {details.likes:,} likes · updated {updated}"
            f" · {len(details.files)} files, {format_bytes(total)}"
            f" · commit {(details.sha or '?')[:10]}{gated}{base}"
        )
        self.chips.setText(chips_html(metadata_chips(details.card_data, details.tags)))
        self.notice.setVisible(details.saved_at is not None)
        if details.saved_at is not None:
            self.notice.setText(
                f"Offline — showing what the hub said on {details.saved_at:%Y-%m-%d %H:%M} UTC."
            )

    def _show_card_notice(self, card: ModelCard, details: ModelDetails) -> None:
        notes = []
        if details.saved_at is not None:
            notes.append(
                f"Offline — showing what the hub said on {details.saved_at:%Y-%m-%d %H:%M} UTC."
            )
        if card.metadata_error:
            notes.append(card.metadata_error)
        self.notice.setText(" ".join(notes))
        self.notice.setVisible(bool(notes))

    def _show_error(self, repo_id: str, error: AppError) -> None:
        self.requested = None  # so that choosing the same model again retries
        title = {
            GatedRepoError: "Gated model",
            HubUnreachableError: "Offline",
        }.get(type(error), "Could not load this model")
        self.message.show_message(title, str(error), error=True)
        self.stack.setCurrentIndex(0)
        self.failed.emit(str(error))

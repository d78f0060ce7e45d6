"""The right side of Discover: one model's header, card, license and files."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from PySide6.QtCore import Signal
from PySide6.QtWidgets import (
    QStackedWidget,
    QVBoxLayout,
    QWidget,
)

from app.errors import AppError, GatedRepoError, HubUnreachableError
from app.hub.models import Gating, ModelDetails
from ui.tasks import cyclic_gc_paused, gather, run_blocking, spawn
from ui.widgets import MessageView

if TYPE_CHECKING:
    import asyncio
    from pathlib import Path

    from app.hardware import MachineMemory
    from app.hub.offline import OfflineAwareHub
    from ui.discover.model_view import ModelView


def _read_machine_memory() -> MachineMemory:
    # Imported on first use, on a worker thread: psutil and friends stay out of startup.
    from app.hardware import read_machine_memory

    return read_machine_memory()


def _render_card_chunks(markdown: str, base_url: str) -> list[str]:
    # Imported on first use, on a worker thread: markdown-it costs ~25 ms at startup.
    from app.hub.card_html import render_card_chunks

    with cyclic_gc_paused():
        return render_card_chunks(markdown, base_url=base_url)


class DetailsPane(QWidget):
    """Loads and shows one repository; a newer selection cancels the older one's work.

    Args:
        hub: a getter for the current hub (it changes when settings change; may block).
        context_length: a getter for the context length used by fit estimates.
    """

    detailsShown = Signal(str)  # repo id, once header, license and files are filled
    cardShown = Signal(str)  # repo id, once the whole card is in the viewer
    failed = Signal(str)  # the message shown
    downloadRequested = Signal(object)  # a DownloadPlan, from the Files tab
    filesRequested = Signal(object, object)  # (ModelDetails, paths) of a hub without commits
    chatRequested = Signal(object)  # the Path of a downloaded GGUF, from the Files tab
    tokenSaved = Signal()  # a token was saved from the Files tab: the hub and queue changed

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
        self._view: ModelView | None = None
        # The HF cache folder, so the Files tab can mark downloaded files and offer GGUFs to Chat.
        self.cache_dir: Callable[[], Path] | None = None
        # Keeps a token typed into the Files tab of a gated model (blocks: the OS keyring).
        self.save_token: Callable[[str], object] | None = None

        self.message = MessageView()
        self.stack = QStackedWidget()
        self.stack.addWidget(self.message)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.stack)
        self.show_placeholder()

    @property
    def view(self) -> ModelView:
        """The widgets showing a model, built when the first model is opened (not at startup)."""
        if self._view is None:
            from ui.discover.model_view import ModelView

            self._view = ModelView()
            self._view.files.downloadRequested.connect(self.downloadRequested)
            self._view.files.filesRequested.connect(self.filesRequested)
            self._view.files.chatRequested.connect(self.chatRequested)
            self._view.files.tokenSubmitted.connect(self._token_submitted)
            self._view.files.cache_dir = self.cache_dir
            self.stack.addWidget(self._view)
        return self._view

    def downloads_changed(self) -> None:
        """A download completed: the Files tab may offer the selected GGUF to Chat now."""
        if self._view is not None:
            self._view.files.check_downloaded()

    def show_placeholder(self) -> None:
        if self._task is not None:
            self._task.cancel()
        self.requested = None
        self.message.show_message("Select a model", "Its card, license and files appear here.")
        self.stack.setCurrentWidget(self.message)

    def load(self, repo_id: str) -> asyncio.Task[None]:
        """Show `repo_id`, cancelling whatever was loading before."""
        if self._task is not None:
            self._task.cancel()
        self.requested = repo_id
        self.message.show_message(repo_id, "Loading…", busy=True)
        self.stack.setCurrentWidget(self.message)
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
        view = self.view
        view.show_details(details)
        view.license.show_details(details)
        view.files.show_files(details, memory, self._context_length())
        self.stack.setCurrentWidget(view)
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
            self.view.card.setPlainText(f"The card could not be loaded: {exc}")
            self.cardShown.emit(details.repo_id)
            return
        view = self.view
        view.show_notices(details, card)
        if not card.body.strip():
            view.card.setPlainText("This repository has no model card.")
        else:
            base = f"{details.url}/blob/{details.sha or 'main'}/"
            chunks = await run_blocking(_render_card_chunks, card.body, base)
            await view.card.show_chunks(chunks)
        view.show_chips(card.metadata, details.tags)
        self.cardShown.emit(details.repo_id)

    async def _load_access(self, hub: OfflineAwareHub, details: ModelDetails) -> None:
        if details.gating is Gating.OPEN or details.saved_at is not None:
            return
        access = await run_blocking(hub.check_access, details.repo_id)
        if self.details is details:
            self.view.license.show_access(access)
            self.view.files.show_access(access)

    def _token_submitted(self, token: str) -> None:
        details = self.details
        if details is not None:
            spawn(self._save_token(details, token))

    async def _save_token(self, details: ModelDetails, token: str) -> None:
        """Keep `token` (as Settings does), then ask the hub again whether it has access."""
        gate = self.view.files.gate
        if self.save_token is None:
            gate.show_saved("Tokens are kept in Settings.", error=True)
            return
        try:
            await run_blocking(self.save_token, token)
        except Exception as exc:  # the keyring backends raise their own error types
            gate.show_saved(f"The token could not be saved: {type(exc).__name__}", error=True)
            return
        gate.show_saved("Token saved. Checking access…")
        self.tokenSaved.emit()
        hub = await run_blocking(self._hub)  # a new hub, with the new token
        access = await run_blocking(hub.check_access, details.repo_id)
        if self.details is details:
            gate.show_saved("Token saved.")
            self.view.license.show_access(access)
            self.view.files.show_access(access)

    async def _load_license_text(self, hub: OfflineAwareHub, details: ModelDetails) -> None:
        license_file = details.license_file
        if license_file is None or (details.license_id or "other") not in ("other", "unknown"):
            return
        try:
            text = await run_blocking(hub.read_text_file, details.repo_id, license_file.path)
        except AppError:
            return  # the panel still links to the hub page; the text is a convenience
        self.view.license.show_license_text(text)

    def _show_error(self, repo_id: str, error: AppError) -> None:
        self.requested = None  # so that choosing the same model again retries
        title = {
            GatedRepoError: "Gated model",
            HubUnreachableError: "Offline",
        }.get(type(error), "Could not load this model")
        self.message.show_message(title, str(error), error=True)
        self.stack.setCurrentWidget(self.message)
        self.failed.emit(str(error))

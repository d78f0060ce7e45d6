"""Chat: conversations on the left; in the middle the model bar (picker, Load, status), the
transcript and the full-width message field; the model panel's settings on the right (they
fold away, and start folded on a narrow window).

The workflow is the core's `ChatController` (shared with the model panel): it starts a reply
with the engine that answers, chooses its seed and records the model on the conversation.
A reply streams on the core's threads (`ChatSession` and its `Reply`). This page polls the
reply's snapshot every `POLL_MS` and hands the text to the one widget being written, so a fast
model never floods the event loop and the rest of the transcript is left alone. Starting a
reply (which counts tokens through the engine) and every store call run on workers.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

from PySide6.QtCore import QSize, Qt, QTimer, Signal
from PySide6.QtGui import QAction, QResizeEvent
from PySide6.QtWidgets import (
    QFileDialog,
    QHBoxLayout,
    QMenu,
    QMessageBox,
    QSplitter,
    QStackedWidget,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from app.chat.controller import (
    ChatController,
    EditAndResend,
    Regenerate,
    ReplyRecipe,
    ReplyRequest,
    Send,
)
from app.chat.conversations import NEW_CONVERSATION_TITLE, Message, Role, title_from_message
from app.chat.session import ReplyState
from app.core import Core
from app.errors import AppError
from ui.chat.composer import Composer
from ui.chat.conversation_list import ConversationList
from ui.chat.model_panel import ModelPanel
from ui.chat.prompt_dialog import PromptDialog
from ui.chat.source_viewer import SourceViewer, open_citation
from ui.chat.transcript import Transcript
from ui.chat.welcome import Welcome
from ui.style import mark_error, set_font
from ui.tasks import run_blocking, spawn
from ui.widgets import LONG_CHARS, PlainLabel, clip, let_shrink

if TYPE_CHECKING:
    from app.chat.conversations import Conversation
    from app.chat.session import ContextOverflowError, Overflow, Reply
    from app.chat.vision import ImageAttachment
    from app.docs.citation import Citation
    from ui.library_model import LibraryModel

POLL_MS = 50  # how often a streaming reply reaches the screen
SYSTEM_PROMPT_PAUSE_MS = 600  # typing in the system prompt is stored after this pause
# Below this width the settings panel starts folded: the conversation keeps its room.
PANEL_AUTO_SHOW_PX = 1050
PAGE_MARGIN = 6
CLOSE_WAIT_S = 3.0  # closing waits this long for a stopped reply to be stored
# Tokens kept free beside the sources, the reply and the template's own (role markers, BOS).
DOCUMENTS_MARGIN_TOKENS = 96


def prompt_turns(
    system_prompt: str, messages: Sequence[Message], *, before: int | None = None
) -> list[dict[str, str]]:
    """The messages a model sees (as `ChatSession` sends them): the system prompt, then the
    turns after the last marker, up to the message with id `before` (exclusive). A message's
    images show as the markers the projector's image tokens take the place of."""
    from app.chat.vision import content_with_images

    if before is not None:
        ids = [message.id for message in messages]
        messages = messages[: ids.index(before)] if before in ids else messages
    start = max((i for i, m in enumerate(messages) if m.role is Role.MARKER), default=-1)
    turns = [
        {"role": m.role.value, "content": content_with_images(m.content, len(m.images))}
        if m.images
        else {"role": m.role.value, "content": m.content}
        for m in messages[start + 1 :]
        if m.role is Role.USER or (m.role is Role.ASSISTANT and m.content)
    ]
    return ([{"role": "system", "content": system_prompt}] if system_prompt else []) + turns


class ChatPage(QWidget):
    """Talk to a local or remote model; every conversation is kept and can be searched."""

    replyStarted = Signal(int)  # the id of the reply message being written
    replyFinished = Signal(str)  # its final state: "complete", "cancelled", "interrupted"…
    conversationShown = Signal(int)  # a conversation id (-1: none) once it is on screen
    citationOpened = Signal(object)  # a Citation, once opened (in the viewer or another app)
    exported = Signal(str)  # the path of a file written by Export
    said = Signal(str)  # each line shown in the status line
    discoverRequested = Signal()  # the welcome's "Find a model": the window shows Discover

    def __init__(
        self, core: Core, models: LibraryModel | None = None, parent: QWidget | None = None
    ) -> None:
        super().__init__(parent)
        self._core = core
        self._conversation_id: int | None = None
        self._title = NEW_CONVERSATION_TITLE
        self._reply: Reply | None = None
        self._reply_conversation: int | None = None
        self._starting = False
        # A document collection the answers draw on (the Documents page attaches one).
        self.attached_documents: str | None = None
        self.source_viewer = SourceViewer(self)  # where a cited text file opens
        # Which engine answers, and starting replies with it: shared with the model panel.
        self.controller = ChatController(
            lambda: core.conversations, lambda: core.llm, lambda: core.chat_images
        )
        self._prompt_owner: int | None = None  # whose system prompt waits to be stored
        self.overflow_dialog: QMessageBox | None = None
        self.prompt_dialog: PromptDialog | None = None
        self.last_command: str | None = None
        self._pick_hint: str | None = None  # "press Load" said after a pick, until a load
        self._panel_chosen = False  # the person showed or hid the panel: no more auto-fold
        self._models_listed = 0

        self.conversations = ConversationList(lambda: self._core.conversations)
        self.conversations.setMinimumWidth(180)
        self.title = PlainLabel(NEW_CONVERSATION_TITLE)
        let_shrink(self.title)  # a title (a model may write it) must not widen the window
        set_font(self.title, points_delta=2, bold=True)
        self.title.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.export_button = QToolButton()
        self.export_button.setText("Export")
        self.export_button.setPopupMode(QToolButton.ToolButtonPopupMode.InstantPopup)
        export_menu = QMenu(self.export_button)
        self.export_markdown_action = QAction("As Markdown…", export_menu)
        self.export_json_action = QAction("As JSON…", export_menu)
        export_menu.addAction(self.export_markdown_action)
        export_menu.addAction(self.export_json_action)
        self.export_button.setMenu(export_menu)
        self.export_button.setAccessibleName("Export the conversation")
        header = QHBoxLayout()
        header.addWidget(self.title, 1)
        header.addWidget(self.export_button)

        self.panel = ModelPanel(core, models, controller=self.controller)
        self.panel_button = self.panel.bar.settings_button
        self.transcript = Transcript()
        self.transcript.read_image = core.chat_images.read  # thumbnails of sent images
        self.welcome = Welcome()
        self.body = QStackedWidget()
        self.body.addWidget(self.transcript)
        self.body.addWidget(self.welcome)
        self.composer = Composer()
        self.composer.set_ctrl_enter_sends(core.settings.chat_send_with_ctrl_enter)
        self.status = PlainLabel()
        let_shrink(self.status)
        self.status.setWordWrap(True)
        self.status.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        set_font(self.status, points_delta=-1)
        self.center = center = QWidget()
        center_layout = QVBoxLayout(center)
        center_layout.setContentsMargins(6, 0, 6, 6)
        center_layout.addWidget(self.panel.bar)
        center_layout.addLayout(header)
        center_layout.addWidget(self.body, 1)
        center_layout.addWidget(self.composer)
        center_layout.addWidget(self.status)

        self.splitter = QSplitter(Qt.Orientation.Horizontal)
        self.splitter.addWidget(self.conversations)
        self.splitter.addWidget(center)
        self.splitter.addWidget(self.panel)
        self.splitter.setStretchFactor(1, 1)
        self.splitter.setCollapsible(1, False)
        self.splitter.setSizes([220, 700, 360])
        layout = QVBoxLayout(self)
        layout.setContentsMargins(PAGE_MARGIN, PAGE_MARGIN, PAGE_MARGIN, 0)
        layout.addWidget(self.splitter)

        self._poll = QTimer(self)
        self._poll.setInterval(POLL_MS)
        self._poll.timeout.connect(self._poll_reply)
        self._prompt_timer = QTimer(self)
        self._prompt_timer.setSingleShot(True)
        self._prompt_timer.setInterval(SYSTEM_PROMPT_PAUSE_MS)
        self._prompt_timer.timeout.connect(lambda: spawn(self._store_system_prompt()))

        self.conversations.chosen.connect(self._conversation_chosen)
        self.conversations.renamed.connect(self._conversation_renamed)
        self.conversations.failed.connect(lambda text: self._say(text, error=True))
        self.composer.sendRequested.connect(self._send_requested)
        self.composer.stopRequested.connect(self.stop)
        self.composer.regenerateRequested.connect(self.regenerate)
        self.transcript.editRequested.connect(self._edit_requested)
        self.transcript.commandRequested.connect(lambda mid: spawn(self._show_command(mid)))
        self.transcript.versionRequested.connect(
            lambda mid, number: spawn(self._choose_version(mid, number))
        )
        self.transcript.copied.connect(lambda what: self._say(f"Copied the {what}."))
        self.transcript.citationRequested.connect(
            lambda citation: spawn(self.open_citation(citation))
        )
        self.panel.engineChanged.connect(lambda _engine: self._update_controls())
        self.panel.loadFinished.connect(self._load_finished)
        self.panel.unloaded.connect(self._update_controls)
        self.panel.modelsListed.connect(self._models_counted)
        self.panel.ctrl_enter.toggled.connect(self._ctrl_enter_toggled)
        self.conversations.listed.connect(lambda _count: self._show_welcome())
        self.welcome.findRequested.connect(self.discoverRequested)
        self.panel.promptRequested.connect(lambda: spawn(self._show_prompt()))
        self.panel.system_prompt.textChanged.connect(self._system_prompt_edited)
        self.panel_button.setChecked(True)
        self.panel_button.toggled.connect(self.panel.setVisible)
        self.panel_button.clicked.connect(self._panel_clicked)
        self.export_markdown_action.triggered.connect(lambda: self.export("markdown"))
        self.export_json_action.triggered.connect(lambda: self.export("json"))
        self._update_controls()
        self.conversations.refresh()

    # -- public --------------------------------------------------------------------------

    @property
    def conversation_id(self) -> int | None:
        return self._conversation_id

    @property
    def reply(self) -> Reply | None:
        """The reply being written, if any."""
        return self._reply

    def pick_model(self, path: Path) -> None:
        """Pick the GGUF at `path` in the model bar (Load still loads it)."""
        self.panel.pick(path)
        self._pick_hint = f"Picked {path.name}: press Load to chat with it."
        self._say(self._pick_hint)
        self.panel.load_button.setFocus()

    def stop(self) -> None:
        """Stop the reply being written; what came so far is kept."""
        if self._reply is not None:
            self._reply.cancel()

    def regenerate(self) -> None:
        """Replace the last reply with a new one."""
        spawn(self._start_reply(Regenerate()))

    def export(self, kind: str) -> None:
        """Ask where, then write the conversation as "markdown" or "json"."""
        if self._conversation_id is None:
            return
        suffix, filter_text = (
            (".md", "Markdown (*.md)") if kind == "markdown" else (".json", "JSON (*.json)")
        )
        name = "".join(c if c.isalnum() or c in " -_" else "_" for c in self._title).strip()
        path, _ = QFileDialog.getSaveFileName(
            self, "Export conversation", (name or "conversation") + suffix, filter_text
        )
        if path:
            spawn(self._write_export(self._conversation_id, Path(path), kind))

    def shutdown(self) -> None:
        """The window closes: stop a streaming reply and let it be stored."""
        self._poll.stop()
        reply = self._reply
        if reply is not None and not reply.done:
            reply.cancel()
            # On a timeout the stored text is at most one flush behind: nothing is lost.
            with contextlib.suppress(TimeoutError):
                reply.wait(CLOSE_WAIT_S)
        if self._prompt_timer.isActive() and self._prompt_owner is not None:
            self._prompt_timer.stop()
            self._core.conversations.set_system_prompt(
                self._prompt_owner, self.panel.system_prompt.toPlainText()
            )
        self.panel.close_engines()
        self.panel.server_panel.shutdown()  # API clients are not served by a closed window

    def minimumSizeHint(self) -> QSize:
        """Narrow enough for a small window: the settings panel folds (or, opened there,
        stands in for the conversation list), so neither counts in full."""
        hint = super().minimumSizeHint()
        center = self.center.minimumSizeHint().width()
        sides = max(self.conversations.minimumWidth(), self.panel.minimumWidth())
        width = center + sides + self.splitter.handleWidth() + 2 * PAGE_MARGIN
        return QSize(min(hint.width(), width), hint.height())

    def resizeEvent(self, event: QResizeEvent) -> None:
        """Fold the settings panel on a narrow window, until the person shows or hides it."""
        super().resizeEvent(event)
        self._fit_panels(event.size().width())

    def _fit_panels(self, width: int) -> None:
        if not self._panel_chosen:
            wide = width >= PANEL_AUTO_SHOW_PX
            if self.panel_button.isChecked() != wide:
                self.panel_button.setChecked(wide)
        # The settings opened on a page too narrow for all three: the list makes room.
        center = self.center.minimumSizeHint().width()
        room = self.conversations.minimumWidth() + center + self.panel.minimumWidth() + 24
        self.conversations.setVisible(not self.panel_button.isChecked() or width >= room)

    def _panel_clicked(self) -> None:
        self._panel_chosen = True  # no more folding by width: the person chose
        self._fit_panels(self.width())

    # -- first run, load, keyboard -------------------------------------------------------

    def _models_counted(self, count: int) -> None:
        self._models_listed = count
        self.welcome.set_has_models(count > 0)
        self._show_welcome()

    def _show_welcome(self) -> None:
        """The welcome stands in for the transcript while there is nothing at all: no
        conversation kept, none open, and no model answering."""
        first_run = (
            self._conversation_id is None
            and not self.conversations.titles()
            and self.controller.engine is None
            and not self.transcript.messages()
        )
        self.body.setCurrentWidget(self.welcome if first_run else self.transcript)

    def _load_finished(self, loaded: bool) -> None:
        if loaded and self._pick_hint is not None and self.status.text() == self._pick_hint:
            self._say("")  # "press Load" is stale once it loaded
        if loaded:
            self._pick_hint = None
        self._update_controls()

    def _ctrl_enter_toggled(self, on: bool) -> None:
        self.composer.set_ctrl_enter_sends(on)
        spawn(self._store_keyboard_setting(on))

    async def _store_keyboard_setting(self, on: bool) -> None:
        try:
            await run_blocking(lambda: self._core.update_settings(chat_send_with_ctrl_enter=on))
        except AppError as exc:
            self._say(f"The keyboard setting was not saved: {exc}", error=True)

    # -- conversations -------------------------------------------------------------------

    def _conversation_chosen(self, conversation_id: int) -> None:
        chosen = conversation_id if conversation_id >= 0 else None
        if chosen != self._conversation_id or chosen is None:
            spawn(self._open(chosen))

    async def _open(self, conversation_id: int | None) -> None:
        await self._store_system_prompt()
        self.composer.end_edit()
        self._conversation_id = conversation_id
        if conversation_id is None:
            self._show_title(NEW_CONVERSATION_TITLE)
            self._set_system_prompt("")
            self.transcript.clear()
            self.transcript.show_placeholder("No conversation yet. Write a message to start one.")
            self._update_controls()
            self.conversationShown.emit(-1)
            return
        try:
            conversation, messages = await run_blocking(self._read, conversation_id)
        except AppError as exc:
            self._say(str(exc), error=True)
            self.conversations.refresh()
            return
        if self._conversation_id != conversation_id:
            return  # another one was chosen meanwhile
        self._show_title(conversation.title)
        self._set_system_prompt(conversation.system_prompt)
        self.transcript.show_placeholder("Write a message to start.")
        await self.transcript.show_conversation(messages)
        if self._conversation_id != conversation_id:
            return
        self.transcript.scroll_to_bottom()
        self._update_controls()
        self.conversationShown.emit(conversation_id)

    def _read(self, conversation_id: int) -> tuple[Conversation, list[Message]]:
        store = self._core.conversations
        return store.get(conversation_id), store.messages(conversation_id)

    def _conversation_renamed(self, conversation_id: int, title: str) -> None:
        if conversation_id == self._conversation_id:
            self._show_title(title)

    def _show_title(self, title: str) -> None:
        self._title = title
        self.title.setText(clip(title))  # one line: a long title would widen the window

    async def _sync(self, conversation_id: int) -> None:
        messages = await run_blocking(lambda: self._core.conversations.messages(conversation_id))
        if self._conversation_id == conversation_id:
            self.transcript.sync(messages)
        self._update_controls()

    # -- system prompt -------------------------------------------------------------------

    def _set_system_prompt(self, text: str) -> None:
        self._prompt_timer.stop()
        self._prompt_owner = None
        self.panel.system_prompt.blockSignals(True)
        self.panel.system_prompt.setPlainText(text)
        self.panel.system_prompt.blockSignals(False)

    def _system_prompt_edited(self) -> None:
        if self._conversation_id is not None:
            self._prompt_owner = self._conversation_id
            self._prompt_timer.start()

    async def _store_system_prompt(self) -> None:
        owner, self._prompt_owner = self._prompt_owner, None
        self._prompt_timer.stop()
        if owner is None:
            return
        text = self.panel.system_prompt.toPlainText()
        try:
            await run_blocking(lambda: self._core.conversations.set_system_prompt(owner, text))
        except AppError as exc:
            self._say(str(exc), error=True)

    # -- replies -------------------------------------------------------------------------

    def _send_requested(self, text: str) -> None:
        editing = self.composer.editing
        images = self.composer.attachments.attachments
        if self.attached_documents is not None and editing is None:
            spawn(self._send_with_documents(text, images, self.attached_documents))
            return
        request = Send(text, images) if editing is None else EditAndResend(editing, text)
        spawn(self._start_reply(request, sent_text=text))

    def attach_documents(self, name: str | None) -> None:
        """Answer from the collection `name` (None: from nothing): each message is sent with
        the collection's best passages as numbered sources, which the reply cites as [n]."""
        self.attached_documents = name
        self._say(f"Answers draw on the documents of {name!r}, cited as [n]." if name else "")

    async def _send_with_documents(
        self, text: str, images: tuple[ImageAttachment, ...], name: str
    ) -> None:
        """Send `text` with the passages of `name` that fit beside the reply; the message as
        sent (sources included) is what the transcript shows, so the chunks sent are seen."""
        local = self.panel.local_engine
        loaded = local.loaded if local is not None else None
        try:
            max_tokens = self.panel.sampling.sampling().max_tokens
        except ValueError:
            max_tokens = 512
        context = loaded.context_length if loaded is not None else 4096
        budget = max(0, context - max_tokens - DOCUMENTS_MARGIN_TOKENS)
        count = local.count_tokens if local is not None and loaded is not None else _estimate_tokens
        try:
            composed = await run_blocking(
                self._core.documents.compose,
                [name],
                text,
                budget_tokens=budget,
                count_tokens=count,
            )
        except AppError as exc:
            self._say(str(exc), error=True)
            return
        citations = tuple(source.citation for source in composed.sources)
        await self._start_reply(Send(composed.text, images), sent_text=text, sources=citations)

    async def open_citation(self, citation: Citation) -> None:
        """Open a reply's source [n]: this app's viewer at its lines, or the system's app."""
        problem = await open_citation(self.source_viewer, citation)
        if problem is not None:
            self._say(problem, error=True)
            return
        self._say(f"Opened source [{citation.number}]: {citation.label()}.")
        self.citationOpened.emit(citation)

    def _edit_requested(self, message_id: int) -> None:
        entry = self.transcript.entry(message_id)
        if entry is not None and self._reply is None:
            self.composer.start_edit(message_id, entry.message.content)

    async def _start_reply(
        self,
        request: ReplyRequest,
        *,
        sent_text: str | None = None,
        sources: tuple[Citation, ...] = (),
    ) -> None:
        """Start a reply; when the conversation outgrows the context, ask before dropping.
        `sources` (a question from documents) are kept with the reply, which cites them."""
        from app.chat.session import ContextOverflowError, Overflow

        if self._starting or self._reply is not None:
            return
        self._starting = True
        self._update_controls()
        try:
            outcome = await self._try_start(request, sent_text, Overflow.ASK, sources)
            if isinstance(outcome, ContextOverflowError):
                if await self._ask_drop_oldest(outcome):
                    await self._try_start(request, sent_text, Overflow.DROP_OLDEST, sources)
                elif self._conversation_id is not None:
                    self._say(outcome.message + " Nothing was sent.", error=True)
                    await self._sync(self._conversation_id)
        finally:
            self._starting = False
            self._update_controls()

    async def _try_start(
        self,
        request: ReplyRequest,
        sent_text: str | None,
        overflow: Overflow,
        sources: tuple[Citation, ...] = (),
    ) -> ContextOverflowError | None:
        from app.chat.session import ContextOverflowError
        from app.chat.vision import VisionError, cannot_see

        if self.controller.engine is None:
            self._say("Load a model first: pick one in the bar above and press Load.", error=True)
            return None
        try:
            sampling = self.panel.sampling.sampling()
        except ValueError as exc:
            self._say(f"Check the sampling settings: {exc}", error=True)
            return None
        conversation_id = await self._conversation_for(sent_text)
        await self._store_system_prompt()
        self._say("")
        try:
            started = await run_blocking(
                lambda: self.controller.start_reply(
                    conversation_id, request, sampling, overflow=overflow
                )
            )
        except ContextOverflowError as exc:
            return exc
        except VisionError:  # images for a model that cannot see: name those that can
            model = self.panel.local_engine.loaded if self.panel.local_engine else None
            name = (model.name or model.settings.path.name) if model else "This model"
            entries = self._core.models.entries
            refusal = await run_blocking(lambda: cannot_see(name, entries))
            self._say(refusal.message, error=True)
            return None
        except (AppError, ValueError) as exc:
            self._say(str(exc), error=True)
            await self._sync(conversation_id)  # a failed start may have stored an error reply
            return None
        reply = started.reply
        self._reply, self._reply_conversation = reply, conversation_id
        if sources:  # before the reply is shown, so its [n] are links from the first word
            await run_blocking(self._core.conversations.set_turn_sources, reply.message_id, sources)
        if sent_text is not None:
            self.composer.clear_sent(sent_text)
        self.panel.save_preset()  # the settings that answered are this model's from now on
        await self._sync(conversation_id)
        self._poll.start()
        self.replyStarted.emit(reply.message_id)
        return None

    async def _conversation_for(self, sent_text: str | None) -> int:
        """The open conversation (titled after the first message), or a new one."""
        title = title_from_message(sent_text) if sent_text else NEW_CONVERSATION_TITLE
        conversation_id = self._conversation_id
        if conversation_id is None:
            system_prompt = self.panel.system_prompt.toPlainText()
            conversation = await run_blocking(
                lambda: self._core.conversations.create(title, system_prompt=system_prompt)
            )
            self._conversation_id = conversation.id
            self._show_title(title)
            self.transcript.clear()
            self.conversations.refresh(select=conversation.id)
            return conversation.id
        if sent_text and self._title == NEW_CONVERSATION_TITLE and not self.transcript.messages():
            await run_blocking(lambda: self._core.conversations.rename(conversation_id, title))
            self._show_title(title)
            self.conversations.set_title(conversation_id, title)
        return conversation_id

    def _poll_reply(self) -> None:
        reply = self._reply
        if reply is None:
            self._poll.stop()
            return
        snapshot = reply.snapshot()
        if self._conversation_id == self._reply_conversation:
            self.transcript.stream(reply.message_id, snapshot.text)
        if reply.done:
            self._poll.stop()
            spawn(self._reply_ended(reply))

    async def _reply_ended(self, reply: Reply) -> None:
        conversation_id = self._reply_conversation
        if conversation_id is not None:
            try:
                await self._sync(conversation_id)
            except AppError as exc:  # the conversation was deleted meanwhile
                self._say(str(exc), error=True)
        self._reply = self._reply_conversation = None
        self._update_controls()
        self.conversations.refresh()
        snapshot = reply.snapshot()
        if snapshot.state is ReplyState.INTERRUPTED:
            self._say(
                f"The reply was interrupted ({snapshot.error}). Send again to go on: "
                "the engine starts again with the same model.",
                error=True,
            )
        elif snapshot.state is ReplyState.ERROR:
            self._say(f"The reply failed: {snapshot.error}", error=True)
        self.replyFinished.emit(snapshot.state.value)

    async def _ask_drop_oldest(self, error: ContextOverflowError) -> bool:
        """Offer to drop the oldest turns (with a visible divider), or to cancel."""
        import asyncio

        box = QMessageBox(self)
        box.setIcon(QMessageBox.Icon.Question)
        box.setWindowTitle("The conversation no longer fits")
        box.setTextFormat(Qt.TextFormat.PlainText)  # the message may quote a model's name
        box.setText(error.message)
        box.setInformativeText(
            "Drop the oldest turns to make room? A divider in the conversation shows where. "
            "Or cancel, and start a new conversation or load the model with a longer context."
        )
        drop = box.addButton("Drop oldest turns", QMessageBox.ButtonRole.AcceptRole)
        box.addButton(QMessageBox.StandardButton.Cancel)
        box.setDefaultButton(drop)
        answer: asyncio.Future[bool] = asyncio.get_running_loop().create_future()

        def finished(_result: int) -> None:
            if not answer.done():
                answer.set_result(box.clickedButton() is drop)

        box.finished.connect(finished)
        self.overflow_dialog = box
        box.open()
        try:
            return await answer
        finally:
            self.overflow_dialog = None
            box.deleteLater()

    # -- prompt, command, export ---------------------------------------------------------

    async def _show_prompt(self) -> None:
        from app.chat.vision import content_with_images

        engine = self.panel.local_engine
        if engine is None:
            return
        messages = prompt_turns(self.panel.system_prompt.toPlainText(), self.transcript.messages())
        draft = self.composer.text
        attached = len(self.composer.attachments.attachments)
        if (draft.strip() or attached) and self.composer.editing is None:
            messages.append({"role": "user", "content": content_with_images(draft, attached)})
        try:
            rendered = await run_blocking(engine.render, messages)
        except AppError as exc:
            self._say(str(exc), error=True)
            return
        dialog = PromptDialog(
            rendered.text, format_name=rendered.format_name, note=rendered.note, parent=self
        )
        dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        dialog.destroyed.connect(lambda: setattr(self, "prompt_dialog", None))
        self.prompt_dialog = dialog
        dialog.open()

    async def _choose_version(self, message_id: int, number: int) -> None:
        """Show another version of a regenerated reply; the model sees that one from now on."""
        if self._reply is not None or self._starting or self._conversation_id is None:
            return
        conversation_id = self._conversation_id
        try:
            await run_blocking(lambda: self.controller.choose_version(message_id, number))
        except (AppError, ValueError) as exc:
            self._say(str(exc), error=True)
        await self._sync(conversation_id)

    async def _show_command(self, message_id: int) -> None:
        """Show the llama.cpp command that reproduces a reply under it (with Copy)."""
        from app.chat.llama_command import llama_cli_command

        engine = self.panel.local_engine
        loaded = engine.loaded if engine is not None else None
        if engine is None or loaded is None:
            self._say("Load a local model to get its llama.cpp command.", error=True)
            return
        entry = self.transcript.entry(message_id)
        version = entry.message.version if entry is not None else 1
        recipe = self.controller.recipe(message_id, version)
        note = ""
        if recipe is None:
            try:
                sampling = self.panel.sampling.sampling()
            except ValueError as exc:
                self._say(f"Check the sampling settings: {exc}", error=True)
                return
            recipe = ReplyRecipe(loaded.settings, replace(sampling, seed=sampling.seed or 0))
            note = " (with the settings shown now: this reply is from an earlier session)"
        messages = prompt_turns(
            self.panel.system_prompt.toPlainText(), self.transcript.messages(), before=message_id
        )
        try:
            rendered = await run_blocking(engine.render, messages)
        except AppError as exc:
            self._say(str(exc), error=True)
            return
        stops = tuple(dict.fromkeys((*recipe.sampling.stop, *rendered.stop)))
        command = llama_cli_command(
            recipe.load,
            replace(recipe.sampling, stop=stops),
            rendered.text,
            recipe.sampling.seed or 0,
        )
        self.last_command = command
        self.transcript.show_command(message_id, command)
        if note:
            self._say(f"The llama.cpp command for this reply{note}.")

    async def _write_export(self, conversation_id: int, path: Path, kind: str) -> None:
        from app.chat.export import copy_exported_images, export_json, export_markdown

        def write() -> None:
            conversation, messages = self._read(conversation_id)
            export = export_markdown if kind == "markdown" else export_json
            path.write_text(export(conversation, messages), encoding="utf-8")
            copy_exported_images(messages, self._core.chat_images, path.parent)

        try:
            await run_blocking(write)
        except (AppError, OSError) as exc:
            self._say(f"Nothing was exported: {exc}", error=True)
            return
        self._say(f"Exported to {path}")
        self.exported.emit(str(path))

    # -- state -----------------------------------------------------------------------------

    def _update_controls(self) -> None:
        busy = self._reply is not None or self._starting
        messages = self.transcript.messages()
        self.composer.set_state(
            busy=busy,
            ready=self.panel.engine is not None,
            can_regenerate=any(message.role is Role.USER for message in messages),
        )
        self.transcript.set_editable(not busy)
        self.transcript.set_commands_available(self.panel.local_engine is not None)
        self.panel.set_busy(busy)
        self.export_button.setEnabled(self._conversation_id is not None)
        self._show_welcome()

    def _say(self, text: str, *, error: bool = False) -> None:
        self.status.setText(clip(text, LONG_CHARS))
        mark_error(self.status, error)
        if text:
            self.said.emit(text)


def _estimate_tokens(text: str) -> int:
    """A remote model's tokens, guessed (about four characters each in English)."""
    return len(text) // 4 + 1

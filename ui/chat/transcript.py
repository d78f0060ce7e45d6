"""The conversation on screen: one widget per message in a scroll area that follows new text.

`sync` brings the widgets in line with the stored messages (adding, updating, moving and
removing only what changed); `stream` feeds the reply being written to its one widget. Nothing
else is redrawn while a reply streams. The view stays at the bottom while it was there, and
stays put when the person has scrolled up to read.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import QFrame, QScrollArea, QVBoxLayout, QWidget

from app.chat.conversations import Message, Role
from app.chat.image_store import StoredImage
from ui.chat.message_widget import MarkerWidget, MessageWidget
from ui.tasks import yield_to_loop
from ui.widgets import PlainLabel

_BOTTOM_SLACK_PX = 8
_TURN_SECONDS = 0.015  # GUI-thread work between two yields while a long conversation fills in

Entry = MessageWidget | MarkerWidget


class Transcript(QScrollArea):
    """The messages of one conversation."""

    editRequested = Signal(int)  # message id
    commandRequested = Signal(int)  # message id
    versionRequested = Signal(int, int)  # message id, the version to show
    copied = Signal(str)  # what went to the clipboard
    citationRequested = Signal(object)  # a reply's Citation, to open

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWidgetResizable(True)
        self.setFrameShape(QFrame.Shape.NoFrame)
        self.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        container = QWidget()
        self._layout = QVBoxLayout(container)
        self._layout.setContentsMargins(12, 12, 12, 12)
        self._layout.setSpacing(8)
        self.placeholder = PlainLabel()
        self.placeholder.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.placeholder.setWordWrap(True)
        self._layout.addWidget(self.placeholder)
        self._layout.addStretch(1)
        self.setWidget(container)
        self._entries: dict[int, Entry] = {}
        self._order: list[int] = []
        self._editable = True
        self._commands = False
        self._generation = 0
        self._pinned = True
        # Reads a sent image's bytes for its thumbnail (the page sets the chat image store's).
        self.read_image: Callable[[StoredImage], bytes] | None = None
        bar = self.verticalScrollBar()
        bar.valueChanged.connect(self._scrolled)
        bar.rangeChanged.connect(self._range_changed)
        self.show_placeholder("No conversation yet. Write a message to start one.")

    # -- contents ------------------------------------------------------------------------

    def messages(self) -> list[Message]:
        """The messages shown, in order."""
        return [self._entries[message_id].message for message_id in self._order]

    def entry(self, message_id: int) -> Entry | None:
        return self._entries.get(message_id)

    def last_message(self) -> Message | None:
        return self._entries[self._order[-1]].message if self._order else None

    def show_placeholder(self, text: str) -> None:
        self.placeholder.setText(text)
        self.placeholder.setVisible(not self._order)

    def clear(self) -> None:
        self._generation += 1
        for message_id in self._order:
            self._remove(message_id)
        self._order = []
        self.placeholder.setVisible(True)

    async def show_conversation(self, messages: Sequence[Message]) -> None:
        """Replace what is shown with `messages`, yielding to the event loop now and then
        (a long conversation fills in without freezing the window)."""
        self.clear()
        generation = self._generation
        self._pinned = True
        turn_started = time.perf_counter()
        for message in messages:
            if generation != self._generation:
                return  # another conversation was asked for meanwhile
            self._insert(len(self._order), message)
            if time.perf_counter() - turn_started > _TURN_SECONDS:
                await yield_to_loop()
                turn_started = time.perf_counter()
        self.placeholder.setVisible(not self._order)

    def sync(self, messages: Sequence[Message]) -> None:
        """Show exactly `messages`: new ones are added, changed ones updated, gone ones removed."""
        self._generation += 1  # a conversation still filling in stops: this is the whole of it
        wanted = [message.id for message in messages]
        for message_id in set(self._order) - set(wanted):
            self._remove(message_id)
        self._order = [message_id for message_id in self._order if message_id in wanted]
        for index, message in enumerate(messages):
            entry = self._entries.get(message.id)
            if entry is not None and entry.message.role is not message.role:
                # SQLite reuses the ids of deleted messages (after an edit, a regenerate).
                self._remove(message.id)
                self._order.remove(message.id)
                entry = None
            if entry is None:
                self._insert(index, message)
                continue
            if entry.message != message:
                entry.set_message(message)
            if self._order.index(message.id) != index:
                self._order.remove(message.id)
                self._order.insert(index, message.id)
                self._layout.removeWidget(entry)
                self._layout.insertWidget(index + 1, entry)  # after the placeholder
        self.placeholder.setVisible(not self._order)

    def stream(self, message_id: int, text: str) -> None:
        """The reply `message_id` so far; only its widget is touched."""
        entry = self._entries.get(message_id)
        if isinstance(entry, MessageWidget):
            entry.stream(text)

    def set_editable(self, editable: bool) -> None:
        """Whether Edit buttons work (not while a reply streams)."""
        self._editable = editable
        for entry in self._entries.values():
            if isinstance(entry, MessageWidget):
                entry.set_editable(editable)

    def set_commands_available(self, available: bool) -> None:
        """Whether replies offer their llama.cpp command (a local model is loaded)."""
        self._commands = available
        for entry in self._entries.values():
            if isinstance(entry, MessageWidget):
                entry.set_command_available(available)

    def show_command(self, message_id: int, command: str) -> None:
        """Show a reply's llama.cpp command under it."""
        entry = self._entries.get(message_id)
        if isinstance(entry, MessageWidget):
            entry.show_command(command)

    def scroll_to_bottom(self) -> None:
        self._pinned = True
        bar = self.verticalScrollBar()
        bar.setValue(bar.maximum())

    # -- internals -----------------------------------------------------------------------

    def _insert(self, index: int, message: Message) -> None:
        entry: Entry
        if message.role is Role.MARKER:
            entry = MarkerWidget(message)
        else:
            widget = MessageWidget(message)
            if message.images and self.read_image is not None:
                widget.show_images(self.read_image)
            widget.set_editable(self._editable)
            widget.set_command_available(self._commands)
            widget.editRequested.connect(self.editRequested)
            widget.commandRequested.connect(self.commandRequested)
            widget.versionRequested.connect(self.versionRequested)
            widget.copied.connect(self.copied)
            widget.citationRequested.connect(self.citationRequested)
            entry = widget
        self._entries[message.id] = entry
        self._order.insert(index, message.id)
        self._layout.insertWidget(index + 1, entry)  # after the placeholder
        self.placeholder.hide()

    def _remove(self, message_id: int) -> None:
        entry = self._entries.pop(message_id, None)
        if entry is not None:
            self._layout.removeWidget(entry)
            entry.hide()
            entry.deleteLater()

    def _scrolled(self, value: int) -> None:
        self._pinned = value >= self.verticalScrollBar().maximum() - _BOTTOM_SLACK_PX

    def _range_changed(self, _minimum: int, maximum: int) -> None:
        if self._pinned:
            self.verticalScrollBar().setValue(maximum)

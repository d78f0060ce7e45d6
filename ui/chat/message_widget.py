"""One entry of the transcript: a message with its buttons and stats, or a "dropped" divider."""

from __future__ import annotations

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QGuiApplication, QPalette
from PySide6.QtWidgets import (
    QFrame,
    QHBoxLayout,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from app.chat.conversations import Message, MessageState, Role
from ui.chat.message_body import MessageBody
from ui.style import mark_error, set_font
from ui.widgets import PlainLabel, tooltip_html

ROLE_TITLES = {Role.USER: "You", Role.ASSISTANT: "Assistant"}


def describe_outcome(message: Message) -> tuple[str, bool]:
    """A note for a reply that did not end normally, and whether it is an error."""
    if message.state is MessageState.STREAMING:
        return "Writing…", False
    if message.state is MessageState.CANCELLED:
        return "Stopped.", False
    if message.state is MessageState.INTERRUPTED:
        if message.error:
            return f"Interrupted: {message.error}.", True
        return "Interrupted: the app stopped before this reply was finished.", True
    if message.state is MessageState.ERROR:
        return f"Failed: {message.error or 'no reason given'}", True
    return "", False


def _tool_button(text: str, tip: str) -> QToolButton:
    button = QToolButton()
    button.setText(text)
    button.setToolTip(tip)
    button.setAutoRaise(True)
    return button


class MessageWidget(QFrame):
    """A user message or a reply: role, text, Copy (and Edit, or stats and llama.cpp command)."""

    editRequested = Signal(int)  # message id
    commandRequested = Signal(int)  # message id: copy the llama.cpp command of this reply
    copied = Signal(str)  # what went to the clipboard, for the status line

    def __init__(self, message: Message, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._message = message
        self._command_available = True
        user = message.role is Role.USER
        self.setFrameShape(QFrame.Shape.NoFrame)
        if user:
            palette = QPalette(self.palette())
            base = palette.color(QPalette.ColorRole.Highlight)
            tint = palette.color(QPalette.ColorRole.Base)
            mixed = tint.toRgb()
            mixed.setRgbF(
                0.9 * mixed.redF() + 0.1 * base.redF(),
                0.9 * mixed.greenF() + 0.1 * base.greenF(),
                0.9 * mixed.blueF() + 0.1 * base.blueF(),
            )
            palette.setColor(QPalette.ColorRole.Window, mixed)
            self.setPalette(palette)
            self.setAutoFillBackground(True)

        self.role = PlainLabel(ROLE_TITLES.get(message.role, message.role.value))
        set_font(self.role, bold=True)
        self.copy_button = _tool_button("Copy", "Copy this message as Markdown")
        self.edit_button = _tool_button("Edit", "Edit this message and send it again")
        self.edit_button.setVisible(user)
        header = QHBoxLayout()
        header.setContentsMargins(0, 0, 0, 0)
        header.addWidget(self.role)
        header.addStretch(1)
        header.addWidget(self.edit_button)
        header.addWidget(self.copy_button)

        self.body = MessageBody()
        self.note = PlainLabel()
        self.note.setWordWrap(True)
        self.note.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.stats = PlainLabel()
        # Wraps rather than widening the message past a narrow transcript (its buttons clip).
        self.stats.setWordWrap(True)
        self.stats.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        set_font(self.stats, points_delta=-1)
        stats_palette = QPalette(self.stats.palette())
        stats_palette.setColor(
            QPalette.ColorRole.WindowText,
            stats_palette.color(QPalette.ColorRole.PlaceholderText),
        )
        self.stats.setPalette(stats_palette)
        self.command_button = _tool_button(
            "llama.cpp command", "Copy the llama-cli command that reproduces this reply"
        )
        set_font(self.command_button, points_delta=-1)
        footer = QHBoxLayout()
        footer.setContentsMargins(0, 0, 0, 0)
        footer.addWidget(self.stats, 1)
        footer.addWidget(self.command_button)

        layout = QVBoxLayout(self)
        layout.setContentsMargins(10, 6, 10, 6)
        layout.setSpacing(2)
        layout.addLayout(header)
        layout.addWidget(self.body)
        layout.addWidget(self.note)
        layout.addLayout(footer)

        self.copy_button.clicked.connect(self._copy)
        self.edit_button.clicked.connect(lambda: self.editRequested.emit(self._message.id))
        self.command_button.clicked.connect(lambda: self.commandRequested.emit(self._message.id))
        self.body.codeCopied.connect(lambda index: self.copied.emit(f"code block {index + 1}"))
        self.body.show_text(message.content)
        self._show_outcome()

    @property
    def message(self) -> Message:
        return self._message

    def set_message(self, message: Message) -> None:
        """Show a newer state of the same message (a reply that finished, an edit)."""
        was_streaming = self._message.state is MessageState.STREAMING
        if message.content != self.body.text:
            if was_streaming:
                self.body.stream(message.content)
            else:
                self.body.show_text(message.content)
        if message.state is not MessageState.STREAMING:
            self.body.finish()
        self._message = message
        self._show_outcome()

    def stream(self, text: str) -> None:
        """The reply so far (only the new part costs work)."""
        self.body.stream(text)

    def set_command_available(self, available: bool) -> None:
        """Whether the llama.cpp command can be built (a local model made this reply)."""
        self._command_available = available
        self.command_button.setVisible(available and self._has_stats())

    def set_editable(self, editable: bool) -> None:
        self.edit_button.setEnabled(editable)

    def _has_stats(self) -> bool:
        return self._message.role is Role.ASSISTANT and self._message.stats is not None

    def _show_outcome(self) -> None:
        note, error = describe_outcome(self._message)
        self.note.setText(note)
        self.note.setVisible(bool(note))
        mark_error(self.note, error)
        stats = self._message.stats
        self.stats.setText(stats.summary() if stats is not None else "")
        self.stats.setVisible(stats is not None)
        self.command_button.setVisible(self._command_available and self._has_stats())

    def _copy(self) -> None:
        QGuiApplication.clipboard().setText(self._message.content)
        self.copied.emit("message")


class MarkerWidget(QWidget):
    """A divider where older messages were left out of the prompt to fit the context."""

    def __init__(self, message: Message, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._message = message
        dropped = message.dropped or 0
        noun = "message" if dropped == 1 else "messages"
        self.label = PlainLabel(f"{dropped} earlier {noun} dropped to fit the context")
        self.label.setToolTip(tooltip_html(message.content))  # QToolTip guesses rich text
        set_font(self.label, points_delta=-1)
        font = self.label.font()
        font.setItalic(True)
        self.label.setFont(font)
        layout = QHBoxLayout(self)
        layout.setContentsMargins(10, 6, 10, 6)
        layout.addWidget(self._line(), 1)
        layout.addWidget(self.label)
        layout.addWidget(self._line(), 1)

    @property
    def message(self) -> Message:
        return self._message

    def set_message(self, message: Message) -> None:
        self._message = message

    @staticmethod
    def _line() -> QFrame:
        line = QFrame()
        line.setFrameShape(QFrame.Shape.HLine)
        line.setFrameShadow(QFrame.Shadow.Sunken)
        return line

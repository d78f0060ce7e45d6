"""One entry of the transcript: a message with its buttons and stats, or a "dropped" divider.

Under a reply: its stats, arrows around "n/m" to step through its versions when it was
regenerated, and "llama.cpp command", which shows (on demand) the command that reproduces
it, with Copy.
"""

from __future__ import annotations

from collections.abc import Callable

from PySide6.QtCore import QRectF, Qt, Signal
from PySide6.QtGui import QFontDatabase, QGuiApplication, QPainter, QPaintEvent, QPalette
from PySide6.QtWidgets import (
    QFrame,
    QHBoxLayout,
    QPlainTextEdit,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from app.chat.conversations import Message, MessageState, Role
from app.chat.image_store import StoredImage
from ui.chat.attachments import ThumbnailRow, show_stored_images
from ui.chat.message_body import MessageBody
from ui.chat.sources_view import SourcesView
from ui.style import mark_error, set_font
from ui.tasks import spawn
from ui.widgets import PlainLabel, tooltip_html

ROLE_TITLES = {Role.USER: "You", Role.ASSISTANT: "Assistant"}
PREVIOUS, NEXT = "\u2039", "\u203a"  # single angle quotation marks: ‹ 2/3 ›  # noqa: RUF003


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


def _tool_button(text: str, tip: str, name: str | None = None) -> QToolButton:
    button = QToolButton()
    button.setText(text)
    button.setToolTip(tip)
    button.setAccessibleName(name or tip)
    button.setAutoRaise(True)
    return button


def version_text(message: Message) -> str:
    """ "2/3": which version of a regenerated reply is shown ("" for one never regenerated)."""
    return f"{message.version}/{message.versions}" if message.versions > 1 else ""


class CommandView(QWidget):
    """A reply's llama.cpp command, shown read-only with Copy (hidden until asked for)."""

    copied = Signal(str)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.text = QPlainTextEdit()
        self.text.setReadOnly(True)
        self.text.setAccessibleName("llama.cpp command")
        self.text.setLineWrapMode(QPlainTextEdit.LineWrapMode.WidgetWidth)
        self.text.setMaximumHeight(5 * self.text.fontMetrics().lineSpacing() + 12)
        fixed = QFontDatabase.systemFont(QFontDatabase.SystemFont.FixedFont)
        self.text.setFont(fixed)
        self.copy_button = _tool_button("Copy", "Copy the llama.cpp command")
        self.hide_button = _tool_button("Hide", "Hide the llama.cpp command")
        buttons = QVBoxLayout()
        buttons.setContentsMargins(0, 0, 0, 0)
        buttons.addWidget(self.copy_button)
        buttons.addWidget(self.hide_button)
        buttons.addStretch(1)
        layout = QHBoxLayout(self)
        layout.setContentsMargins(0, 2, 0, 0)
        layout.addWidget(self.text, 1)
        layout.addLayout(buttons)
        self.copy_button.clicked.connect(self._copy)
        self.hide_button.clicked.connect(self.hide)
        self.hide()

    def show_command(self, command: str) -> None:
        self.text.setPlainText(command)
        self.show()

    def _copy(self) -> None:
        QGuiApplication.clipboard().setText(self.text.toPlainText())
        self.copied.emit("llama.cpp command")


class MessageWidget(QFrame):
    """A user message or a reply: role, text, Copy (and Edit, or stats and llama.cpp command)."""

    editRequested = Signal(int)  # message id
    commandRequested = Signal(int)  # message id: show the llama.cpp command of this reply
    versionRequested = Signal(int, int)  # message id, the version to show
    copied = Signal(str)  # what went to the clipboard, for the status line
    citationRequested = Signal(object)  # a Citation of this reply, to open

    def __init__(self, message: Message, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._message = message
        self._command_available = True
        self._editable = True
        user = message.role is Role.USER
        self.setFrameShape(QFrame.Shape.NoFrame)
        self._tinted = user  # the person's messages sit on a tint (see paintEvent)

        self.role = PlainLabel(ROLE_TITLES.get(message.role, message.role.value))
        set_font(self.role, bold=True)
        self.copy_button = _tool_button("Copy", "Copy this message as Markdown", "Copy message")
        self.edit_button = _tool_button(
            "Edit", "Edit this message and send it again", "Edit message"
        )
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
            "llama.cpp command",
            "Show the llama-cli command that reproduces this reply",
            "Show the llama.cpp command",
        )
        set_font(self.command_button, points_delta=-1)
        self.previous_button = _tool_button(
            PREVIOUS, "Show the previous version", "Previous version"
        )
        self.next_button = _tool_button(NEXT, "Show the next version", "Next version")
        self.version = PlainLabel()
        set_font(self.version, points_delta=-1)
        footer = QHBoxLayout()
        footer.setContentsMargins(0, 0, 0, 0)
        footer.addWidget(self.previous_button)
        footer.addWidget(self.version)
        footer.addWidget(self.next_button)
        footer.addWidget(self.stats, 1)
        footer.addWidget(self.command_button, 0, Qt.AlignmentFlag.AlignTop)
        self.command = CommandView()

        layout = QVBoxLayout(self)
        layout.setContentsMargins(10, 6, 10, 6)
        layout.setSpacing(2)
        layout.addLayout(header)
        self.images = ThumbnailRow()  # a sent message's images (`show_images`)
        self.images.hide()
        layout.addWidget(self.images)
        layout.addWidget(self.body)
        self.sources = SourcesView()  # a reply from documents: its numbered sources
        layout.addWidget(self.sources)
        layout.addWidget(self.note)
        layout.addLayout(footer)
        layout.addWidget(self.command)

        self.copy_button.clicked.connect(self._copy)
        self.command.copied.connect(self.copied)
        self.previous_button.clicked.connect(lambda: self._step(-1))
        self.next_button.clicked.connect(lambda: self._step(1))
        self.edit_button.clicked.connect(lambda: self.editRequested.emit(self._message.id))
        self.command_button.clicked.connect(lambda: self.commandRequested.emit(self._message.id))
        self.body.codeCopied.connect(lambda index: self.copied.emit(f"code block {index + 1}"))
        self.body.citationClicked.connect(self._open_citation)
        self.sources.citationClicked.connect(self._open_citation)
        self._show_sources()
        self.body.show_text(message.content)
        self._show_outcome()

    def paintEvent(self, event: QPaintEvent) -> None:
        """The person's messages on a pale wash of the accent, mixed from the palette at
        each paint: a light/dark switch recolours it without rebuilding the transcript."""
        if self._tinted:
            palette = self.palette()
            accent = palette.color(QPalette.ColorRole.Highlight)
            mixed = palette.color(QPalette.ColorRole.Base).toRgb()
            mixed.setRgbF(
                0.88 * mixed.redF() + 0.12 * accent.redF(),
                0.88 * mixed.greenF() + 0.12 * accent.greenF(),
                0.88 * mixed.blueF() + 0.12 * accent.blueF(),
            )
            painter = QPainter(self)
            painter.setRenderHint(QPainter.RenderHint.Antialiasing)
            painter.setPen(Qt.PenStyle.NoPen)
            painter.setBrush(mixed)
            painter.drawRoundedRect(QRectF(self.rect()), 6.0, 6.0)
            painter.end()
        super().paintEvent(event)

    @property
    def message(self) -> Message:
        return self._message

    def set_message(self, message: Message) -> None:
        """Show a newer state of the same message (a reply that finished, an edit)."""
        was_streaming = self._message.state is MessageState.STREAMING
        if message.sources != self._message.sources:
            self._message = message
            self._show_sources()
        if message.content != self.body.text:
            if was_streaming:
                self.body.stream(message.content)
            else:
                self.body.show_text(message.content)
        if message.state is not MessageState.STREAMING:
            self.body.finish()
        if (message.version, message.state) != (self._message.version, self._message.state):
            self.command.hide()  # it was another version's command
        self._message = message
        self._show_outcome()

    def show_images(self, read: Callable[[StoredImage], bytes]) -> None:
        """Show the message's images as thumbnails, read with `read` on a worker."""
        spawn(show_stored_images(self.images, self._message.images, read))

    def stream(self, text: str) -> None:
        """The reply so far (only the new part costs work)."""
        self.body.stream(text)

    def set_command_available(self, available: bool) -> None:
        """Whether the llama.cpp command can be built (a local model made this reply)."""
        self._command_available = available
        self.command_button.setVisible(available and self._has_stats())

    def set_editable(self, editable: bool) -> None:
        """Whether Edit and the version arrows work (not while a reply streams)."""
        self.edit_button.setEnabled(editable)
        self._editable = editable
        self._show_versions()

    def show_command(self, command: str) -> None:
        """Show this reply's llama.cpp command under it, with Copy."""
        self.command.show_command(command)

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
        self._show_versions()

    def _show_versions(self) -> None:
        message = self._message
        text = version_text(message)
        for widget in (self.previous_button, self.version, self.next_button):
            widget.setVisible(bool(text))
        self.version.setText(text)
        self.version.setAccessibleName(
            f"Version {message.version} of {message.versions}" if text else ""
        )
        idle = self._editable and message.state is not MessageState.STREAMING
        self.previous_button.setEnabled(idle and message.version > 1)
        self.next_button.setEnabled(idle and message.version < message.versions)

    def _step(self, by: int) -> None:
        number = self._message.version + by
        if 1 <= number <= self._message.versions:
            self.versionRequested.emit(self._message.id, number)

    def _copy(self) -> None:
        QGuiApplication.clipboard().setText(self._message.content)
        self.copied.emit("message")

    def _show_sources(self) -> None:
        sources = self._message.sources
        # Under the reply; the question quotes them already (its [n] are links too).
        self.sources.show_sources(sources if self._message.role is Role.ASSISTANT else ())
        self.body.set_citations(frozenset(source.number for source in sources))

    def _open_citation(self, number: int) -> None:
        citation = next((s for s in self._message.sources if s.number == number), None)
        if citation is not None:
            self.citationRequested.emit(citation)


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

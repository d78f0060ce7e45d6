"""Where a message is written: a multiline field, Send (Stop while a reply streams), Regenerate.

Ctrl+Enter sends. Editing a past message puts its text here and turns Send into Resend until
it is sent or the edit is cancelled.
"""

from __future__ import annotations

from PySide6.QtCore import QEvent, QObject, Qt, Signal
from PySide6.QtGui import QKeyEvent
from PySide6.QtWidgets import (
    QHBoxLayout,
    QPlainTextEdit,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from ui.widgets import PlainLabel


class Composer(QWidget):
    """The message field and its buttons; the page decides what may happen when."""

    sendRequested = Signal(str)  # the text (for an edit too: see `editing`)
    stopRequested = Signal()
    regenerateRequested = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._busy = False
        self._ready = False  # a model is there to answer
        self._can_regenerate = False
        self._editing: int | None = None

        self.edit_note = PlainLabel(
            "Editing a message: Resend replaces it and everything after it."
        )
        self.cancel_edit_button = QPushButton("Cancel edit")
        edit_row = QHBoxLayout()
        edit_row.addWidget(self.edit_note, 1)
        edit_row.addWidget(self.cancel_edit_button)
        self.edit_bar = QWidget()
        self.edit_bar.setLayout(edit_row)
        edit_row.setContentsMargins(0, 0, 0, 0)
        self.edit_bar.hide()

        self.editor = QPlainTextEdit()
        self.editor.setPlaceholderText("Write a message — Ctrl+Enter sends")
        self.editor.setTabChangesFocus(True)
        self.editor.setFixedHeight(4 * self.editor.fontMetrics().lineSpacing() + 14)
        self.send_button = QPushButton("Send")
        self.send_button.setDefault(True)
        self.regenerate_button = QPushButton("Regenerate")
        self.regenerate_button.setToolTip("Write the last reply again")
        buttons = QVBoxLayout()
        buttons.addWidget(self.send_button)
        buttons.addWidget(self.regenerate_button)
        buttons.addStretch(1)

        row = QHBoxLayout()
        row.setContentsMargins(0, 0, 0, 0)
        row.addWidget(self.editor, 1)
        row.addLayout(buttons)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.edit_bar)
        layout.addLayout(row)

        self.editor.installEventFilter(self)
        self.editor.textChanged.connect(self._update)
        self.send_button.clicked.connect(self._send_clicked)
        self.regenerate_button.clicked.connect(self.regenerateRequested)
        self.cancel_edit_button.clicked.connect(self.end_edit)
        self._update()

    @property
    def text(self) -> str:
        return self.editor.toPlainText()

    @property
    def editing(self) -> int | None:
        """The id of the message being edited, or None."""
        return self._editing

    def set_state(self, *, busy: bool, ready: bool, can_regenerate: bool) -> None:
        """`busy`: a reply streams (Send becomes Stop); `ready`: a model can answer."""
        self._busy, self._ready, self._can_regenerate = busy, ready, can_regenerate
        self._update()

    def start_edit(self, message_id: int, text: str) -> None:
        self._editing = message_id
        self.editor.setPlainText(text)
        self.edit_bar.show()
        self.editor.setFocus()
        self._update()

    def end_edit(self) -> None:
        if self._editing is None:
            return
        self._editing = None
        self.edit_bar.hide()
        self.editor.clear()
        self._update()

    def clear_sent(self, text: str) -> None:
        """Empty the field after `text` was sent (unless more was typed meanwhile)."""
        if self._editing is not None:
            self._editing = None
            self.edit_bar.hide()
        if self.editor.toPlainText() == text:
            self.editor.clear()
        self._update()

    def can_send(self) -> bool:
        return not self._busy and self._ready and bool(self.text.strip())

    def _update(self) -> None:
        if self._busy:
            self.send_button.setText("Stop")
            self.send_button.setToolTip("Stop the reply (what came so far is kept)")
            self.send_button.setEnabled(True)
        else:
            self.send_button.setText("Resend" if self._editing is not None else "Send")
            self.send_button.setToolTip("Send (Ctrl+Enter)")
            self.send_button.setEnabled(self.can_send())
        self.regenerate_button.setEnabled(not self._busy and self._ready and self._can_regenerate)

    def _send_clicked(self) -> None:
        if self._busy:
            self.stopRequested.emit()
        elif self.can_send():
            self.sendRequested.emit(self.text)

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        """Ctrl+Enter in the field sends (plain Enter starts a new line)."""
        if (
            watched is self.editor
            and event.type() == QEvent.Type.KeyPress
            and isinstance(event, QKeyEvent)
            and event.key() in (Qt.Key.Key_Return, Qt.Key.Key_Enter)
            and event.modifiers() & Qt.KeyboardModifier.ControlModifier
        ):
            if self.can_send():
                self.sendRequested.emit(self.text)
            return True
        return super().eventFilter(watched, event)

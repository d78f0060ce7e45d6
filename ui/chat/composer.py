"""Where a message is written: a full-width multiline field, and under it a line with the
keys that send, Regenerate and Send (Stop while a reply streams).

Enter sends and Shift+Enter adds a line; with `ctrl_enter_sends` (a setting) Ctrl+Enter sends
and Enter adds a line. Ctrl+Enter always sends. Editing a past message puts its text here and
turns Send into Resend until it is sent or the edit is cancelled.
"""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QEvent, QMimeData, QObject, Qt, Signal
from PySide6.QtGui import (
    QDragEnterEvent,
    QDropEvent,
    QGuiApplication,
    QKeyEvent,
    QKeySequence,
)
from PySide6.QtWidgets import (
    QFileDialog,
    QHBoxLayout,
    QPlainTextEdit,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from ui.chat.attachments import IMAGE_SUFFIXES, AttachmentTray, image_files, pasted_image
from ui.icons import themed_icon
from ui.style import set_font
from ui.widgets import PlainLabel, let_shrink


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
        self._ctrl_enter_sends = False

        self.edit_note = PlainLabel(
            "Editing a message: Resend replaces it and everything after it."
        )
        self.cancel_edit_button = QPushButton("Cancel edit")
        self.cancel_edit_button.setAccessibleName("Cancel the edit")
        edit_row = QHBoxLayout()
        edit_row.addWidget(self.edit_note, 1)
        edit_row.addWidget(self.cancel_edit_button)
        self.edit_bar = QWidget()
        self.edit_bar.setLayout(edit_row)
        edit_row.setContentsMargins(0, 0, 0, 0)
        self.edit_bar.hide()

        self.editor = QPlainTextEdit()
        self.editor.setPlaceholderText("Write a message")
        self.editor.setAccessibleName("Message")
        self.editor.setTabChangesFocus(True)
        self.editor.setFixedHeight(3 * self.editor.fontMetrics().lineSpacing() + 14)
        self.keys = PlainLabel()
        let_shrink(self.keys)
        self.keys.setWordWrap(True)  # two short lines beside the buttons on a narrow page
        set_font(self.keys, points_delta=-1)
        self.send_button = QPushButton("Send")
        self.send_button.setDefault(True)
        self.send_button.setAccessibleName("Send the message")
        self.regenerate_button = QPushButton("Regenerate")
        self.regenerate_button.setToolTip(
            "Write the last reply again (the earlier one is kept: the arrows go back to it)"
        )
        self.regenerate_button.setAccessibleName("Regenerate the last reply")
        # Images go with the message (button, drop or paste) to a model that sees.
        self.attachments = AttachmentTray()
        self.attach_button = QPushButton(themed_icon("images"), "Image…")
        self.attach_button.setToolTip(
            "Attach images (or drop or paste them here) for a model that sees: one loaded "
            "with its vision projector"
        )
        self.attach_button.setAccessibleName("Attach images")
        buttons = QHBoxLayout()
        buttons.setContentsMargins(0, 0, 0, 0)
        buttons.addWidget(self.keys, 1)
        buttons.addWidget(self.attach_button)
        buttons.addWidget(self.regenerate_button)
        buttons.addWidget(self.send_button)

        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(4)
        layout.addWidget(self.edit_bar)
        layout.addWidget(self.attachments)
        layout.addWidget(self.editor)
        layout.addLayout(buttons)

        self.editor.installEventFilter(self)
        self.editor.viewport().installEventFilter(self)  # drops land on the viewport
        self.editor.textChanged.connect(self._update)
        self.attachments.changed.connect(self._update)
        self.attach_button.clicked.connect(self._choose_images)
        self.send_button.clicked.connect(self._send_clicked)
        self.regenerate_button.clicked.connect(self.regenerateRequested)
        self.cancel_edit_button.clicked.connect(self.end_edit)
        self._update()

    @property
    def text(self) -> str:
        return self.editor.toPlainText()

    @property
    def ctrl_enter_sends(self) -> bool:
        """True: Ctrl+Enter sends and Enter adds a line; False: Enter sends, Shift+Enter
        adds a line."""
        return self._ctrl_enter_sends

    def set_ctrl_enter_sends(self, on: bool) -> None:
        self._ctrl_enter_sends = on
        self._update()

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
            self.attachments.clear()
        self._update()

    def can_send(self) -> bool:
        has_content = bool(self.text.strip()) or bool(self.attachments.attachments)
        return not self._busy and self._ready and has_content

    def _update(self) -> None:
        if self._busy:
            self.send_button.setText("Stop")
            self.send_button.setToolTip("Stop the reply (what came so far is kept)")
            self.send_button.setEnabled(True)
        else:
            self.send_button.setText("Resend" if self._editing is not None else "Send")
            self.send_button.setToolTip(f"Send ({self._send_keys()})")
            self.send_button.setEnabled(self.can_send())
        self.send_button.setAccessibleName(
            "Stop the reply" if self._busy else self.send_button.text()
        )
        if self._ctrl_enter_sends:
            self.keys.setText("Ctrl+Enter sends · Enter adds a line")
        else:
            self.keys.setText("Enter sends · Shift+Enter adds a line")
        self.regenerate_button.setEnabled(not self._busy and self._ready and self._can_regenerate)

    def _send_clicked(self) -> None:
        if self._busy:
            self.stopRequested.emit()
        elif self.can_send():
            self.sendRequested.emit(self.text)

    def _send_keys(self) -> str:
        return "Ctrl+Enter" if self._ctrl_enter_sends else "Enter"

    def _choose_images(self) -> None:
        suffixes = " ".join(f"*{suffix}" for suffix in sorted(IMAGE_SUFFIXES))
        names, _ = QFileDialog.getOpenFileNames(self, "Attach images", "", f"Images ({suffixes})")
        if names:
            self.attachments.add_files(Path(name) for name in names)

    def _take_images(self, mime: QMimeData | None) -> bool:
        """Attach the images `mime` carries (files or pixels); True when there were some."""
        if mime is None:
            return False
        if files := image_files(mime):
            self.attachments.add_files(files)
            return True
        if (pasted := pasted_image(mime)) is not None:
            self.attachments.add(pasted)
            return True
        return False

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        """Enter (or Ctrl+Enter, by the setting) in the field sends; the other adds a line.
        Images dropped or pasted into the field are attached, not written as text."""
        if watched is self.editor.viewport() and isinstance(event, QDropEvent | QDragEnterEvent):
            if not image_files(event.mimeData()) and not event.mimeData().hasImage():
                return False  # text and other files: the field's own handling
            event.acceptProposedAction()
            if event.type() == QEvent.Type.Drop:  # (a drag entering is a QDropEvent too)
                self._take_images(event.mimeData())
            return True
        if (
            watched is self.editor
            and isinstance(event, QKeyEvent)
            and event.type() == QEvent.Type.KeyPress
            and event.matches(QKeySequence.StandardKey.Paste)
            and self._take_images(QGuiApplication.clipboard().mimeData())
        ):
            return True
        if (
            watched is self.editor
            and event.type() == QEvent.Type.KeyPress
            and isinstance(event, QKeyEvent)
            and event.key() in (Qt.Key.Key_Return, Qt.Key.Key_Enter)
        ):
            if sends(event.modifiers(), ctrl_enter_sends=self._ctrl_enter_sends):
                if self.can_send():
                    self.sendRequested.emit(self.text)
                return True
            # A plain newline: Qt's own Shift+Enter writes a line separator (U+2028), which
            # would reach the model as an odd character.
            self.editor.textCursor().insertText("\n")
            self.editor.ensureCursorVisible()
            return True
        return super().eventFilter(watched, event)


def sends(modifiers: Qt.KeyboardModifier, *, ctrl_enter_sends: bool) -> bool:
    """Whether Enter with `modifiers` sends. Ctrl+Enter always does (it never adds a line
    in either mode); Shift+Enter never does; plain Enter does unless Ctrl+Enter sends."""
    if modifiers & Qt.KeyboardModifier.ControlModifier:
        return True
    if modifiers & Qt.KeyboardModifier.ShiftModifier:
        return False
    return not ctrl_enter_sends

"""A read-only window with the prompt exactly as the model receives it (template applied)."""

from __future__ import annotations

from PySide6.QtGui import QFontDatabase, QGuiApplication
from PySide6.QtWidgets import (
    QDialog,
    QDialogButtonBox,
    QPlainTextEdit,
    QVBoxLayout,
    QWidget,
)

from ui.style import make_notice
from ui.widgets import PlainLabel


class PromptDialog(QDialog):
    """Shows a rendered prompt, which template made it, and why a fallback was used."""

    def __init__(
        self, text: str, *, format_name: str, note: str | None, parent: QWidget | None = None
    ) -> None:
        super().__init__(parent)
        self.setWindowTitle("Prompt as the model sees it")
        self.resize(760, 560)
        self.format_label = PlainLabel(f"Rendered with {format_name}; {len(text):,} characters.")
        self.note = PlainLabel(note or "")
        self.note.setWordWrap(True)
        make_notice(self.note)
        self.note.setVisible(bool(note))
        self.text = QPlainTextEdit(text)
        self.text.setReadOnly(True)
        self.text.setLineWrapMode(QPlainTextEdit.LineWrapMode.WidgetWidth)
        self.text.setFont(QFontDatabase.systemFont(QFontDatabase.SystemFont.FixedFont))
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        copy = buttons.addButton("Copy", QDialogButtonBox.ButtonRole.ActionRole)
        copy.clicked.connect(lambda: QGuiApplication.clipboard().setText(text))
        buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addWidget(self.format_label)
        layout.addWidget(self.note)
        layout.addWidget(self.text, 1)
        layout.addWidget(buttons)

"""Which chat template a local model gets: its own, a known format, or a custom Jinja text."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from PySide6.QtCore import QTimer, Signal
from PySide6.QtGui import QFontDatabase
from PySide6.QtWidgets import QComboBox, QPlainTextEdit, QVBoxLayout, QWidget

from app.chat.template_formats import FALLBACK_FORMATS
from ui.widgets import PlainLabel

MODEL_TEMPLATE = "Model's template"
CUSTOM = "Custom…"
_EDIT_PAUSE_MS = 400


class TemplatePicker(QWidget):
    """A choice of template; `override()` is what the engine's `template_override` gets."""

    changed = Signal()  # the override changed (after a pause, while custom text is typed)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.choice = QComboBox()
        self.choice.addItem(MODEL_TEMPLATE)
        for name in FALLBACK_FORMATS:
            self.choice.addItem(name)
        self.choice.addItem(CUSTOM)
        self.choice.setToolTip(
            "The model's own chat template (from its GGUF file), a known format instead, "
            "or your own Jinja template"
        )
        self.custom = QPlainTextEdit()
        self.custom.setPlaceholderText(
            "{% for message in messages %}…{% endfor %}{% if add_generation_prompt %}…{% endif %}"
        )
        self.custom.setFont(QFontDatabase.systemFont(QFontDatabase.SystemFont.FixedFont))
        self.custom.setMaximumHeight(8 * self.custom.fontMetrics().lineSpacing() + 12)
        self.custom.hide()
        self.hint = PlainLabel("Variables: messages, add_generation_prompt, bos_token, eos_token.")
        self.hint.setWordWrap(True)
        self.hint.hide()
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.choice)
        layout.addWidget(self.custom)
        layout.addWidget(self.hint)
        self._pause = QTimer(self)
        self._pause.setSingleShot(True)
        self._pause.setInterval(_EDIT_PAUSE_MS)
        self._pause.timeout.connect(self.changed)
        self.choice.currentTextChanged.connect(self._choice_changed)
        self.custom.textChanged.connect(self._pause.start)

    def override(self) -> str | None:
        """None for the model's own template; else the Jinja text to use instead."""
        name = self.choice.currentText()
        if name == MODEL_TEMPLATE:
            return None
        if name == CUSTOM:
            return self.custom.toPlainText() or None
        return FALLBACK_FORMATS[name]

    def to_preset(self) -> dict[str, Any]:
        name = self.choice.currentText()
        preset: dict[str, Any] = {"choice": name}
        if name == CUSTOM:
            preset["custom"] = self.custom.toPlainText()
        return preset

    def apply_preset(self, preset: Mapping[str, Any]) -> None:
        name = preset.get("choice")
        custom = preset.get("custom")
        self.custom.setPlainText(custom if isinstance(custom, str) else "")
        index = self.choice.findText(name) if isinstance(name, str) else -1
        self.choice.setCurrentIndex(max(index, 0))
        self._pause.stop()

    def _choice_changed(self, name: str) -> None:
        self.custom.setVisible(name == CUSTOM)
        self.hint.setVisible(name == CUSTOM)
        self.changed.emit()

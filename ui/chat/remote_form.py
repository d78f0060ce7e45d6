"""A model on an OpenAI-compatible server: URL, model name, API key, and a connection test."""

from __future__ import annotations

from typing import TYPE_CHECKING

from PySide6.QtCore import Signal
from PySide6.QtWidgets import (
    QComboBox,
    QFormLayout,
    QHBoxLayout,
    QLineEdit,
    QPushButton,
    QWidget,
)

from ui.style import mark_error
from ui.widgets import PlainLabel

if TYPE_CHECKING:  # imported when used: the engine modules stay out of the page's first paint
    from app.chat.remote import RemoteEndpoint


class RemoteForm(QWidget):
    """The endpoint's fields; the panel tests it and switches the chat to it."""

    testRequested = Signal()
    useRequested = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.url = QLineEdit()
        self.url.setPlaceholderText("http://127.0.0.1:8080/v1")
        self.model = QComboBox()
        self.model.setEditable(True)
        self.model.setToolTip("The model name the server knows; Test connection lists them")
        self.api_key = QLineEdit()
        self.api_key.setEchoMode(QLineEdit.EchoMode.Password)
        self.api_key.setPlaceholderText("none, or the one kept for this URL")
        self.api_key.setToolTip(
            "Sent as a bearer token; kept in the system keyring for this URL once used"
        )
        self.test_button = QPushButton("Test connection")
        self.use_button = QPushButton("Use this endpoint")
        buttons = QHBoxLayout()
        buttons.setContentsMargins(0, 0, 0, 0)
        buttons.addWidget(self.test_button)
        buttons.addWidget(self.use_button)
        self.status = PlainLabel()
        self.status.setWordWrap(True)
        form = QFormLayout(self)
        form.setContentsMargins(0, 0, 0, 0)
        form.addRow("URL", self.url)
        form.addRow("Model", self.model)
        form.addRow("API key", self.api_key)
        form.addRow(buttons)
        form.addRow(self.status)
        self.test_button.clicked.connect(self.testRequested)
        self.use_button.clicked.connect(self.useRequested)

    def endpoint(self) -> RemoteEndpoint:
        """The endpoint described. Raises SettingsError for an address that is no URL."""
        from app.chat.remote import RemoteEndpoint

        return RemoteEndpoint(
            self.url.text().strip(),
            self.model.currentText().strip(),
            api_key=self.api_key.text().strip() or None,
        )

    def set_models(self, models: list[str]) -> None:
        """Offer the models a server listed (keeping what was typed)."""
        typed = self.model.currentText()
        self.model.clear()
        self.model.addItems(models)
        self.model.setCurrentText(typed or (models[0] if models else ""))

    def say(self, text: str, *, error: bool = False) -> None:
        self.status.setText(text)
        mark_error(self.status, error)

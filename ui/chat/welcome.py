"""The empty Chat page on a first run: what to do next, with one button."""

from __future__ import annotations

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import QHBoxLayout, QPushButton, QVBoxLayout, QWidget

from ui.icons import themed_icon
from ui.style import set_font
from ui.widgets import PlainLabel

TEXT_WIDTH = 460  # the welcome's column, in pixels: a line a person reads at a glance
NO_MODELS = (
    "Chat runs a language model on this computer. You have none yet: find a GGUF model in "
    "Discover (a small one is a good start), download it, and come back."
)
HAS_MODELS = (
    "Pick a model in the bar above and press Load, then write your message below. "
    "Or find another model in Discover."
)


class Welcome(QWidget):
    """A short welcome; its button asks for Discover (the window switches page)."""

    findRequested = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.heading = PlainLabel("Welcome to Chat")
        set_font(self.heading, points_delta=4, bold=True)
        self.text = PlainLabel(NO_MODELS)
        self.text.setWordWrap(True)
        # Aligned inside the label, not by the layout: a wrapped label placed with an
        # alignment flag gets the height of its one-line width and is cut off.
        self.text.setAlignment(Qt.AlignmentFlag.AlignHCenter)
        self.heading.setAlignment(Qt.AlignmentFlag.AlignHCenter)
        self.find_button = QPushButton(themed_icon("discover"), "Find a model")
        self.find_button.setAccessibleName("Find a model in Discover")
        column = QWidget()
        column.setMaximumWidth(TEXT_WIDTH)
        column_layout = QVBoxLayout(column)
        column_layout.addWidget(self.heading)
        column_layout.addWidget(self.text)
        column_layout.addWidget(self.find_button, 0, Qt.AlignmentFlag.AlignHCenter)
        row = QHBoxLayout()
        row.addStretch(1)
        row.addWidget(column, 100)  # as wide as allowed, up to TEXT_WIDTH
        row.addStretch(1)
        layout = QVBoxLayout(self)
        layout.addStretch(1)
        layout.addLayout(row)
        layout.addStretch(2)
        self.find_button.clicked.connect(self.findRequested)

    def set_has_models(self, has_models: bool) -> None:
        """Say what comes next: find a model, or load one of those listed."""
        self.text.setText(HAS_MODELS if has_models else NO_MODELS)

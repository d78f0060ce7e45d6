"""The compact bar above the conversation: which model, Load / Unload, a status badge, and
the button that shows the rest of the model panel (load settings, sampling, system prompt,
serve). Under it, when a load failed, the problem said plainly with llama.cpp's own words
behind a "Details" expander.

The bar only lays out widgets: the model panel owns the picker and the buttons' behaviour.
"""

from __future__ import annotations

from PySide6.QtCore import QSize, Qt
from PySide6.QtGui import QResizeEvent
from PySide6.QtWidgets import (
    QComboBox,
    QHBoxLayout,
    QPlainTextEdit,
    QProgressBar,
    QPushButton,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from app.chat.load_problem import LoadProblem
from ui.badges import Badge, Tone
from ui.icons import themed_icon
from ui.style import make_notice, mark_error
from ui.widgets import LONG_CHARS, PlainLabel, clip, let_shrink

DETAILS_LINES = 6  # the details box's height, in lines: the log line is kept short


class LoadProblemView(QWidget):
    """A failed load: what failed and what to try, and a Details expander with the log."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.message = PlainLabel()
        self.message.setWordWrap(True)
        let_shrink(self.message)
        self.message.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        mark_error(self.message, True)
        self.details_button = QToolButton()
        self.details_button.setText("Details")
        self.details_button.setCheckable(True)
        self.details_button.setArrowType(Qt.ArrowType.RightArrow)
        self.details_button.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextBesideIcon)
        self.details_button.setAutoRaise(True)
        self.details_button.setAccessibleName("Show the engine's log")
        self.dismiss_button = QToolButton()
        self.dismiss_button.setText("Dismiss")
        self.dismiss_button.setAutoRaise(True)
        self.dismiss_button.setAccessibleName("Dismiss the load error")
        self.details = QPlainTextEdit()
        self.details.setReadOnly(True)
        self.details.setAccessibleName("The engine's log")
        self.details.setMaximumHeight(DETAILS_LINES * self.details.fontMetrics().lineSpacing())
        self.details.hide()
        top = QHBoxLayout()
        top.setContentsMargins(0, 0, 0, 0)
        top.addWidget(self.message, 1)
        top.addWidget(self.details_button, 0, Qt.AlignmentFlag.AlignTop)
        top.addWidget(self.dismiss_button, 0, Qt.AlignmentFlag.AlignTop)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(6, 4, 6, 4)
        layout.addLayout(top)
        layout.addWidget(self.details)
        make_notice(self)
        self.details_button.toggled.connect(self._toggle_details)
        self.dismiss_button.clicked.connect(self.clear)
        self.hide()

    def show_problem(self, problem: LoadProblem) -> None:
        self.message.setText(clip(problem.text, LONG_CHARS))  # quotes a model's name
        self.details.setPlainText(problem.details)
        self.details_button.setVisible(bool(problem.details))
        self.details_button.setChecked(False)
        self.show()

    def clear(self) -> None:
        self.details_button.setChecked(False)
        self.message.clear()
        self.details.clear()
        self.hide()

    def _toggle_details(self, shown: bool) -> None:
        self.details.setVisible(shown)
        arrow = Qt.ArrowType.DownArrow if shown else Qt.ArrowType.RightArrow
        self.details_button.setArrowType(arrow)


class ModelBar(QWidget):
    """Picker, Open file…, Load, Unload, the status badge and the settings toggle in a row."""

    def __init__(
        self,
        picker: QComboBox,
        open_button: QToolButton,
        load_button: QPushButton,
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.picker = picker
        self.picker.setAccessibleName("Model")
        self.open_button = open_button
        self.open_button.setIcon(themed_icon("open"))
        self.open_button.setToolTip("Open a GGUF file that is not in the library")
        self.open_button.setAccessibleName("Open a GGUF file")
        self.load_button = load_button
        self.load_button.setAccessibleName("Load the model")
        self.unload_button = QPushButton("Unload")
        self.unload_button.setAccessibleName("Unload the model")
        self.unload_button.setToolTip("Free the memory the loaded model holds")
        self.unload_button.setEnabled(False)
        self.badge = Badge("Not loaded", Tone.NEUTRAL)
        self.busy = QProgressBar()
        self.busy.setRange(0, 0)
        self.busy.setTextVisible(False)
        self.busy.setMaximumWidth(60)
        self.busy.setMaximumHeight(8)
        self.busy.hide()
        self.settings_button = QToolButton()
        self.settings_button.setIcon(themed_icon("settings"))
        self.settings_button.setText("Settings")
        # Icon only: the row must fit a 900-pixel window beside the conversation list.
        self.settings_button.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonIconOnly)
        self.settings_button.setCheckable(True)
        self.settings_button.setToolTip(
            "Show or hide the model settings: load, sampling, system prompt, serve"
        )
        self.settings_button.setAccessibleName("Model settings")
        self.problem = LoadProblemView()

        # One row on a wide page; on a narrow one the picker takes a row of its own, so the
        # bar never makes the conversation wider than the window allows.
        self._compact = False
        self._picker_row = QHBoxLayout()
        self._picker_row.setContentsMargins(0, 0, 0, 0)
        self._row = QHBoxLayout()
        self._row.setContentsMargins(0, 0, 0, 0)
        self._row.addWidget(self.picker, 1)
        for widget in self._buttons():
            if widget is self.settings_button:
                # Takes the room the picker leaves on a narrow page (none beside the picker,
                # whose stretch is the only one above 0).
                self._row.addStretch(0)
            self._row.addWidget(widget)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(4)
        layout.addLayout(self._picker_row)
        layout.addLayout(self._row)
        layout.addWidget(self.problem)

    @property
    def compact(self) -> bool:
        """Whether the picker has a row of its own (a narrow page)."""
        return self._compact

    def _buttons(self) -> tuple[QWidget, ...]:
        return (
            self.open_button,
            self.load_button,
            self.unload_button,
            self.busy,
            self.badge,
            self.settings_button,
        )

    def _one_row_width(self) -> int:
        spacing = max(self._row.spacing(), 0)
        widths = [self.picker.minimumSizeHint().width()]
        widths += [w.sizeHint().width() for w in self._buttons() if not w.isHidden()]
        return sum(widths) + spacing * (len(widths) - 1)

    def minimumSizeHint(self) -> QSize:
        """As narrow as the buttons alone: the picker goes above them when room is short."""
        hint = super().minimumSizeHint()
        spacing = max(self._row.spacing(), 0)
        buttons = [w.sizeHint().width() for w in self._buttons() if not w.isHidden()]
        narrow = max(sum(buttons) + spacing * len(buttons), self.picker.minimumSizeHint().width())
        return QSize(min(hint.width(), narrow), hint.height())

    def resizeEvent(self, event: QResizeEvent) -> None:
        super().resizeEvent(event)
        compact = event.size().width() < self._one_row_width()
        if compact != self._compact:
            self._compact = compact
            self._row.removeWidget(self.picker)
            self._picker_row.removeWidget(self.picker)
            if compact:
                self._picker_row.addWidget(self.picker, 1)
            else:
                self._row.insertWidget(0, self.picker, 1)

    def set_status(self, text: str, tone: Tone, *, tooltip: str = "") -> None:
        self.badge.set_badge(text, tone, tooltip=tooltip)

    def set_loading(self, loading: bool) -> None:
        self.busy.setVisible(loading)

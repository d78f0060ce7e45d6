"""Sampling settings: temperature, top-p, top-k, min-p, repeat penalty, max tokens, seed, stops,
and a JSON schema that constrains replies."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from PySide6.QtGui import QIntValidator
from PySide6.QtWidgets import (
    QDoubleSpinBox,
    QFormLayout,
    QLabel,
    QLineEdit,
    QPlainTextEdit,
    QSpinBox,
    QWidget,
)

from app.llm.grammar import GrammarError, parse_schema
from app.llm.sampling import MAX_SEED, Sampling


def _double(minimum: float, maximum: float, step: float, decimals: int = 2) -> QDoubleSpinBox:
    box = QDoubleSpinBox()
    box.setRange(minimum, maximum)
    box.setSingleStep(step)
    box.setDecimals(decimals)
    return box


def _integer(minimum: int, maximum: int, step: int = 1) -> QSpinBox:
    box = QSpinBox()
    box.setRange(minimum, maximum)
    box.setSingleStep(step)
    box.setGroupSeparatorShown(True)
    return box


def _stops_from_text(text: str) -> tuple[str, ...]:
    r"""One stop string a line; "\n" and "\t" written out stand for a newline and a tab."""
    lines = [line.replace("\\n", "\n").replace("\\t", "\t") for line in text.splitlines()]
    return tuple(line for line in lines if line)


def _stops_to_text(stops: tuple[str, ...]) -> str:
    return "\n".join(stop.replace("\n", "\\n").replace("\t", "\\t") for stop in stops)


class SamplingForm(QWidget):
    """Edits a `Sampling`; a blank seed means a new random one for each reply."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.temperature = _double(0.0, 5.0, 0.05)
        self.top_p = _double(0.01, 1.0, 0.01)
        self.top_k = _integer(0, 1000)
        self.min_p = _double(0.0, 1.0, 0.01)
        self.repeat_penalty = _double(0.01, 5.0, 0.01)
        self.max_tokens = _integer(1, 1_048_576, 64)
        self.seed = QLineEdit()
        self.seed.setPlaceholderText("random")
        self.seed.setValidator(QIntValidator(0, MAX_SEED, self.seed))
        self.stop = QPlainTextEdit()
        self.stop.setPlaceholderText("one a line; \\n for a newline")
        self.stop.setTabChangesFocus(True)
        self.stop.setMaximumHeight(3 * self.stop.fontMetrics().lineSpacing() + 12)
        # A schema here makes every reply JSON valid against it (a grammar, in llama.cpp).
        self.json_schema = QPlainTextEdit()
        self.json_schema.setObjectName("jsonSchema")
        self.json_schema.setPlaceholderText("empty: free text; a JSON Schema: replies match it")
        self.json_schema.setTabChangesFocus(True)
        self.json_schema.setMaximumHeight(5 * self.json_schema.fontMetrics().lineSpacing() + 12)
        self.json_schema.setToolTip(
            "A JSON Schema: each reply is constrained to JSON valid against it"
        )
        self.json_schema_problem = QLabel()
        self.json_schema_problem.setObjectName("jsonSchemaProblem")
        self.json_schema_problem.setWordWrap(True)
        self.json_schema_problem.setVisible(False)
        self.json_schema.textChanged.connect(self._check_schema)
        form = QFormLayout(self)
        form.setContentsMargins(0, 0, 0, 0)
        form.addRow("Temperature", self.temperature)
        form.addRow("Top-p", self.top_p)
        form.addRow("Top-k", self.top_k)
        form.addRow("Min-p", self.min_p)
        form.addRow("Repeat penalty", self.repeat_penalty)
        form.addRow("Max tokens", self.max_tokens)
        form.addRow("Seed", self.seed)
        form.addRow("Stop strings", self.stop)
        form.addRow("JSON schema", self.json_schema)
        form.addRow("", self.json_schema_problem)
        self.set_sampling(Sampling())

    def sampling(self) -> Sampling:
        """The settings shown. Raises ValueError for a combination `Sampling` refuses."""
        seed = self.seed.text().strip()
        return Sampling(
            temperature=self.temperature.value(),
            top_p=self.top_p.value(),
            top_k=self.top_k.value(),
            min_p=self.min_p.value(),
            repeat_penalty=self.repeat_penalty.value(),
            max_tokens=self.max_tokens.value(),
            seed=int(seed) if seed else None,
            stop=_stops_from_text(self.stop.toPlainText()),
            json_schema=self._schema_text(),
        )

    def set_sampling(self, sampling: Sampling) -> None:
        self.temperature.setValue(sampling.temperature)
        self.top_p.setValue(sampling.top_p)
        self.top_k.setValue(sampling.top_k)
        self.min_p.setValue(sampling.min_p)
        self.repeat_penalty.setValue(sampling.repeat_penalty)
        self.max_tokens.setValue(sampling.max_tokens)
        self.seed.setText("" if sampling.seed is None else str(sampling.seed))
        self.stop.setPlainText(_stops_to_text(sampling.stop))
        self.json_schema.setPlainText(sampling.json_schema or "")

    def _schema_text(self) -> str | None:
        text = self.json_schema.toPlainText()
        return text if text.strip() else None

    def _check_schema(self) -> None:
        """Say at once what is wrong with the schema (sending would refuse it anyway)."""
        text = self._schema_text()
        problem = ""
        if text is not None:
            try:
                parse_schema(text)
            except GrammarError as exc:
                problem = str(exc)
        self.json_schema_problem.setText(problem)
        self.json_schema_problem.setVisible(bool(problem))

    def to_preset(self) -> dict[str, Any]:
        return self.sampling().to_dict()

    def apply_preset(self, preset: Mapping[str, Any]) -> None:
        """Show saved settings; ones that no longer make sense leave the defaults."""
        try:
            self.set_sampling(Sampling.from_dict(preset))
        except (TypeError, ValueError):
            self.set_sampling(Sampling())

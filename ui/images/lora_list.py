"""The LoRAs stacked on a generation, each with its weight, and the trigger words they were
trained with (from their Civitai page when a `.civitai.info` sidecar is beside the file, and
from the file's metadata), offered for the prompt.

LoRAs come from the library (its own kind, "LoRA") or from a file opened here; the engine
checks that each fits the model (a LoRA for another family is refused with both named).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

from PySide6.QtCore import Signal
from PySide6.QtWidgets import (
    QComboBox,
    QDoubleSpinBox,
    QFileDialog,
    QGroupBox,
    QHBoxLayout,
    QPushButton,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from app.images.loras import MAX_LORA_WEIGHT, MAX_LORAS, LoraRef
from ui.tasks import run_blocking, spawn
from ui.widgets import PlainLabel

ADD_PROMPT = "Add a LoRA…"
OPEN_FILE = "Open a file…"


@dataclass(frozen=True)
class AvailableLora:
    """A LoRA the library holds (a copy on disk now)."""

    name: str
    path: Path
    family: str | None


class _LoraRow(QWidget):
    """One stacked LoRA: its name (and family), its weight, a remove button."""

    removed = Signal(object)  # this row

    def __init__(self, lora: LoraRef, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.lora = lora
        self.trigger_words: tuple[str, ...] = ()
        family = f" ({lora.family})" if lora.family else ""
        self.label = PlainLabel(f"{lora.name}{family}")
        self.label.setToolTip(lora.path or lora.name)
        self.weight = QDoubleSpinBox()
        self.weight.setRange(-MAX_LORA_WEIGHT, MAX_LORA_WEIGHT)
        self.weight.setSingleStep(0.05)
        self.weight.setDecimals(2)
        self.weight.setValue(lora.weight)
        self.weight.setAccessibleName(f"Weight of LoRA {lora.name}")
        self.weight.setToolTip("How strongly the LoRA applies (0: not at all)")
        self.remove = QToolButton()
        self.remove.setText("✕")
        self.remove.setAccessibleName(f"Remove LoRA {lora.name}")
        self.remove.setToolTip("Remove this LoRA")
        layout = QHBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.label, 1)
        layout.addWidget(self.weight)
        layout.addWidget(self.remove)
        self.remove.clicked.connect(lambda: self.removed.emit(self))

    def ref(self) -> LoraRef:
        return replace(self.lora, weight=round(self.weight.value(), 2))


class LoraList(QGroupBox):
    """Edits the LoRAs of a generation (`loras`, `set_loras`)."""

    triggerWordChosen = Signal(str)  # a trigger word to add to the prompt
    changed = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__("LoRAs", parent)
        self._available: list[AvailableLora] = []
        self._rows: list[_LoraRow] = []
        self.add_box = QComboBox()
        self.add_box.setAccessibleName("Add a LoRA")
        self.add_box.setToolTip("Stack a LoRA from the library, or open a .safetensors file")
        self.rows = QVBoxLayout()
        self.rows.setContentsMargins(0, 0, 0, 0)
        self.words_label = PlainLabel("Trigger words:")
        self.words = QHBoxLayout()
        self.words.setContentsMargins(0, 0, 0, 0)
        words_row = QHBoxLayout()
        words_row.setContentsMargins(0, 0, 0, 0)
        words_row.addWidget(self.words_label)
        words_row.addLayout(self.words, 1)
        layout = QVBoxLayout(self)
        layout.addLayout(self.rows)
        layout.addLayout(words_row)
        layout.addWidget(self.add_box)
        self.add_box.activated.connect(self._add_chosen)
        self._fill_add_box()
        self._show_words()

    # -- public --------------------------------------------------------------------------

    def set_available(self, loras: list[AvailableLora]) -> None:
        """The library's LoRAs, offered in the add box."""
        self._available = sorted(loras, key=lambda lora: lora.name.lower())
        self._fill_add_box()

    def loras(self) -> tuple[LoraRef, ...]:
        return tuple(row.ref() for row in self._rows)

    def add(self, lora: LoraRef) -> None:
        """Stack `lora` (a LoRA already stacked keeps its row, at the new weight)."""
        for row in self._rows:
            if row.lora.path == lora.path and lora.path is not None:
                row.weight.setValue(lora.weight)
                return
        if len(self._rows) >= MAX_LORAS:
            return
        row = _LoraRow(lora, self)
        row.removed.connect(self._remove)
        row.weight.valueChanged.connect(lambda _value: self.changed.emit())
        self._rows.append(row)
        self.rows.addWidget(row)
        self.changed.emit()
        if lora.path:
            spawn(self._read_trigger_words(row, Path(lora.path)))

    def set_loras(self, loras: tuple[LoraRef, ...]) -> list[str]:
        """Show `loras` (from an image: by name, found among the library's); returns what
        could not be carried over."""
        self.clear()
        notes: list[str] = []
        for lora in loras:
            path = lora.path if lora.path and Path(lora.path).is_file() else None
            found = next((item for item in self._available if item.name == lora.name), None)
            if path is None and found is not None:
                path, family = str(found.path), found.family
            else:
                family = lora.family
            if path is None:
                notes.append(f"its LoRA {lora.name} is not on this machine")
                continue
            self.add(replace(lora, path=path, family=family))
        return notes

    def clear(self) -> None:
        for row in list(self._rows):
            self._remove(row)

    # -- inside --------------------------------------------------------------------------

    def _fill_add_box(self) -> None:
        self.add_box.clear()
        self.add_box.addItem(ADD_PROMPT, None)
        for lora in self._available:
            family = f" ({lora.family})" if lora.family else ""
            self.add_box.addItem(f"{lora.name}{family}", lora)
        self.add_box.addItem(OPEN_FILE, OPEN_FILE)

    def _add_chosen(self, index: int) -> None:
        data = self.add_box.itemData(index)
        self.add_box.setCurrentIndex(0)
        if isinstance(data, AvailableLora):
            self.add(LoraRef(name=data.name, path=str(data.path), family=data.family))
        elif data == OPEN_FILE:
            name, _filter = QFileDialog.getOpenFileName(
                self, "Open a LoRA", "", "LoRA (*.safetensors)"
            )
            if name:
                self.add(LoraRef(name=Path(name).stem, path=name))

    def _remove(self, row: _LoraRow) -> None:
        if row in self._rows:
            self._rows.remove(row)
            row.setParent(None)
            row.deleteLater()
            self._show_words()
            self.changed.emit()

    async def _read_trigger_words(self, row: _LoraRow, path: Path) -> None:
        from app.errors import CheckpointError
        from app.images.lora_words import civitai_trigger_words, merge_trigger_words
        from app.library.sniff import sniff

        try:
            checkpoint = await run_blocking(sniff, path)
            # Its Civitai page's words (the sidecar a download from Civitai wrote), first.
            civitai = await run_blocking(civitai_trigger_words, path)
        except (CheckpointError, OSError):
            return  # the engine says what is wrong with it when it is used
        if row not in self._rows or checkpoint.lora is None:
            return
        row.trigger_words = merge_trigger_words(civitai, checkpoint.lora.trigger_words)
        if checkpoint.family and not row.lora.family:
            row.lora = replace(row.lora, family=checkpoint.family)
            row.label.setText(f"{row.lora.name} ({checkpoint.family})")
        self._show_words()

    def _show_words(self) -> None:
        while self.words.count():
            item = self.words.takeAt(0)
            widget = item.widget() if item is not None else None
            if widget is not None:
                widget.setParent(None)
                widget.deleteLater()
        words = [word for row in self._rows for word in row.trigger_words]
        for word in dict.fromkeys(words):
            button = QPushButton(word)
            button.setFlat(True)
            button.setAccessibleName(f"Add trigger word {word} to the prompt")
            button.setToolTip("Add to the prompt")
            button.clicked.connect(
                lambda _checked=False, text=word: self.triggerWordChosen.emit(text)
            )
            self.words.addWidget(button)
        self.words.addStretch(1)
        self.words_label.setVisible(bool(words))

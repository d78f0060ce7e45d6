"""A local GGUF and how to load it: context, GPU layers, threads, KV cache, flash attention."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QFormLayout,
    QSpinBox,
    QToolButton,
    QWidget,
)

from app.chat.conversations import ModelRef
from ui.widgets import tooltip_html

if TYPE_CHECKING:  # imported when used: the engine modules stay out of the page's first paint
    from app.library import LibraryEntry
    from app.llm import KvCacheType

DEFAULT_CONTEXT = 4096
# `app.llm.KvCacheType`'s values, llama.cpp's default first.
KV_CACHE_TYPES = ("f16", "q8_0", "q4_0", "f32")


@dataclass(frozen=True, kw_only=True)
class PickedModel:
    """A GGUF file the person can load, and what the library knows of it."""

    path: Path
    name: str
    label: str  # as listed: the name and the quantization
    sha256: str | None = None
    repo_id: str | None = None

    @classmethod
    def from_entry(cls, entry: LibraryEntry) -> PickedModel | None:
        location = entry.usable_location
        if location is None:
            return None
        quant = f" · {entry.quantization}" if entry.quantization else ""
        return cls(
            path=location.path,
            name=entry.name,
            label=f"{entry.name}{quant}",
            sha256=entry.sha256,
            repo_id=entry.repo_ids[0] if entry.repo_ids else None,
        )

    @classmethod
    def from_path(cls, path: Path) -> PickedModel:
        return cls(path=path, name=path.stem, label=path.name)

    @property
    def ref(self) -> ModelRef:
        return ModelRef.local(
            path=str(self.path), name=self.name, sha256=self.sha256, repo_id=self.repo_id
        )


@dataclass(frozen=True, kw_only=True)
class LoadOptions:
    """The load settings asked for (`plan_load` makes them fit the model and machine)."""

    context_length: int
    gpu_layers: int | None  # None: as many as the estimate says fit
    threads: int | None  # None: llama.cpp's choice
    kv_cache_type: KvCacheType
    flash_attention: bool

    def to_preset(self) -> dict[str, Any]:
        return {
            "context_length": self.context_length,
            "gpu_layers": self.gpu_layers,
            "threads": self.threads,
            "kv_cache_type": self.kv_cache_type.value,
            "flash_attention": self.flash_attention,
        }


class LoadForm(QWidget):
    """The model picker ("Open file…" adds any GGUF) and the load settings.

    The picker and its Open button are not laid out here: the Chat page shows them in the
    model bar above the conversation (`ui.chat.model_bar`), the settings in the side panel.
    """

    modelPicked = Signal(object)  # the PickedModel chosen, or None
    openFileRequested = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.model = QComboBox()
        self.model.setPlaceholderText("No GGUF model found — open a file")
        self.model.setMinimumContentsLength(10)
        self.model.setSizeAdjustPolicy(
            QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon
        )
        self.open_button = QToolButton()
        self.open_button.setText("Open file…")

        self.context = QSpinBox()
        self.context.setRange(256, 1_048_576)
        self.context.setSingleStep(1024)
        self.context.setGroupSeparatorShown(True)
        self.context.setSuffix(" tokens")
        self.gpu_layers = QSpinBox()
        self.gpu_layers.setRange(-1, 999)
        self.gpu_layers.setSpecialValueText("auto")
        self.gpu_layers.setToolTip("Layers on the GPU; auto: as many as fit (999: all)")
        self.threads = QSpinBox()
        self.threads.setRange(0, 512)
        self.threads.setSpecialValueText("auto")
        self.kv_cache = QComboBox()
        self.kv_cache.addItems(KV_CACHE_TYPES)
        self.flash_attention = QCheckBox("Flash attention")

        form = QFormLayout(self)
        form.setContentsMargins(0, 0, 0, 0)
        form.addRow("Context", self.context)
        form.addRow("GPU layers", self.gpu_layers)
        form.addRow("Threads", self.threads)
        form.addRow("KV cache", self.kv_cache)
        form.addRow("", self.flash_attention)
        self.apply_preset({})

        self.model.currentIndexChanged.connect(lambda _: self.modelPicked.emit(self.picked()))
        self.open_button.clicked.connect(self.openFileRequested)

    def picked(self) -> PickedModel | None:
        model = self.model.currentData()
        return model if isinstance(model, PickedModel) else None

    def set_models(self, models: Iterable[PickedModel]) -> None:
        """List `models`; the one picked stays picked (and listed) if it was."""
        current = self.picked()
        listed = list(models)
        if current is not None and all(model.path != current.path for model in listed):
            listed.insert(0, current)
        self.model.blockSignals(True)
        self.model.clear()
        for model in listed:
            self.model.addItem(model.label, model)
            self.model.setItemData(
                self.model.count() - 1, tooltip_html(str(model.path)), Qt.ItemDataRole.ToolTipRole
            )
        index = self._index_of(current.path) if current is not None else -1
        self.model.setCurrentIndex(index if index >= 0 else (0 if listed else -1))
        self.model.blockSignals(False)
        picked = self.picked()
        if (picked.path if picked else None) != (current.path if current else None):
            self.modelPicked.emit(picked)

    def pick(self, model: PickedModel) -> None:
        """Pick `model`, adding it to the list when it is not there."""
        index = self._index_of(model.path)
        if index < 0:
            self.model.addItem(model.label, model)
            index = self.model.count() - 1
        if index == self.model.currentIndex():
            self.modelPicked.emit(self.picked())
        else:
            self.model.setCurrentIndex(index)

    def options(self) -> LoadOptions:
        from app.llm import KvCacheType

        gpu_layers = self.gpu_layers.value()
        threads = self.threads.value()
        return LoadOptions(
            context_length=self.context.value(),
            gpu_layers=None if gpu_layers < 0 else gpu_layers,
            threads=threads or None,
            kv_cache_type=KvCacheType(self.kv_cache.currentText()),
            flash_attention=self.flash_attention.isChecked(),
        )

    def apply_preset(self, preset: Mapping[str, Any]) -> None:
        """Show saved load settings (the defaults for what is missing or unusable)."""
        context = preset.get("context_length")
        self.context.setValue(context if isinstance(context, int) else DEFAULT_CONTEXT)
        layers = preset.get("gpu_layers")
        self.gpu_layers.setValue(layers if isinstance(layers, int) else -1)
        threads = preset.get("threads")
        self.threads.setValue(threads if isinstance(threads, int) else 0)
        index = self.kv_cache.findText(str(preset.get("kv_cache_type", KV_CACHE_TYPES[0])))
        self.kv_cache.setCurrentIndex(max(index, 0))
        self.flash_attention.setChecked(preset.get("flash_attention") is True)

    def _index_of(self, path: Path) -> int:
        for index in range(self.model.count()):
            model = self.model.itemData(index)
            if isinstance(model, PickedModel) and model.path == path:
                return index
        return -1

"""Which diffusion model draws: the library's diffusers folders and single SD files, or one
opened from disk, with its license in view: a badge (name and category) and, behind a
"Details" expander, what it asks of you (a RAIL license's use restrictions spelled out).
The restrictions are long; shown open they pushed the prompt below the fold at 900x600."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QComboBox,
    QHBoxLayout,
    QMenu,
    QPushButton,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from app.images.params import ModelRef
from ui.badges import Badge, Tone
from ui.style import set_font
from ui.widgets import PlainLabel, tooltip_html

# A license category (`LicenseCategory` value) as a badge tone.
CATEGORY_TONES: dict[str, Tone] = {
    "permissive": Tone.GOOD,
    "copyleft": Tone.ACCENT,
    "non-commercial": Tone.BAD,
    "use-restricted": Tone.CAUTION,
    "custom": Tone.NEUTRAL,
    "unknown": Tone.NEUTRAL,
}
UNKNOWN_LICENSE = "License not known"


if TYPE_CHECKING:
    from app.library import LibraryEntry


def license_badge(license_id: str | None) -> tuple[str, Tone]:
    """The badge of a license: its name and category, and the category's tone."""
    from app.licenses import license_info

    if not license_id:
        return UNKNOWN_LICENSE, Tone.NEUTRAL
    info = license_info(license_id)
    return f"{info.name} · {info.category.value}", CATEGORY_TONES[info.category.value]


def license_text(license_id: str | None) -> str:
    """What the model's license says, in a few lines (its use restrictions for RAIL-M)."""
    from app.licenses import license_info

    if not license_id:
        return "License: not known here. Read the model's page before sharing what you make."
    info = license_info(license_id)
    lines = [f"License: {info.name} ({info.category.value})", info.summary]
    if info.use_restrictions:
        lines.append("Not to be used for: " + "; ".join(info.use_restrictions) + ".")
    if info.url:
        lines.append(f"Full text: {info.url}")
    return "\n".join(lines)


@dataclass(frozen=True, kw_only=True)
class ImageModel:
    """A diffusion model the person can pick, and what the library knows of it."""

    ref: ModelRef
    label: str
    license: str | None = None
    name: str = ""  # what a person calls it (the library's name; `ref.name` may be a hash)

    @property
    def path(self) -> Path:
        assert self.ref.path is not None  # every listed model has a path
        return Path(self.ref.path)

    @property
    def family(self) -> str | None:
        return self.ref.family

    @classmethod
    def from_entry(cls, entry: LibraryEntry) -> ImageModel | None:
        """The model of a library entry (None for entries that are not present now)."""
        from app.images.choice import model_ref

        if not entry.present:
            return None
        ref = model_ref(entry)
        family = f" · {ref.family}" if ref.family else ""
        return cls(ref=ref, label=f"{entry.name}{family}", license=entry.license, name=entry.name)

    @classmethod
    def from_path(cls, path: Path) -> ImageModel:
        """A file or folder opened from disk (the engine says what is wrong with it, if so)."""
        name = path.stem if path.suffix else path.name
        return cls(ref=ModelRef(name=name, path=str(path)), label=path.name, name=path.name)

    def with_family(self, family: str | None) -> ImageModel:
        return replace(self, ref=replace(self.ref, family=family))


class ModelPicker(QWidget):
    """A list of diffusion models, "Open…" for others, and the picked model's license."""

    picked = Signal(object)  # the ImageModel chosen, or None
    openFileRequested = Signal()
    openFolderRequested = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.combo = QComboBox()
        self.combo.setPlaceholderText("No diffusion model found — open one")
        self.combo.setAccessibleName("Diffusion model")
        self.combo.setMinimumContentsLength(14)
        self.combo.setSizeAdjustPolicy(
            QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon
        )
        # A push button sizes itself for its menu arrow (a tool button's arrow cut "Open…").
        self.open_button = QPushButton("Open…")
        self.open_button.setAccessibleName("Open a model from disk")
        self.open_button.setToolTip("Open a .safetensors file or a diffusers folder")
        menu = QMenu(self.open_button)
        self.open_file_action = menu.addAction("A .safetensors file…")
        self.open_folder_action = menu.addAction("A diffusers folder…")
        self.open_button.setMenu(menu)
        self.badge = Badge()
        self.details_button = QToolButton()
        self.details_button.setText("Details")
        self.details_button.setCheckable(True)
        self.details_button.setAutoRaise(True)
        self.details_button.setArrowType(Qt.ArrowType.RightArrow)
        self.details_button.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextBesideIcon)
        self.details_button.setAccessibleName("License details")
        self.details_button.setToolTip("What the license asks of you")
        self.license = PlainLabel()
        self.license.setWordWrap(True)
        self.license.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        set_font(self.license, points_delta=-1)
        row = QHBoxLayout()
        row.setContentsMargins(0, 0, 0, 0)
        row.addWidget(self.combo, 1)
        row.addWidget(self.open_button)
        self.license_row = QWidget()
        license_row = QHBoxLayout(self.license_row)
        license_row.setContentsMargins(0, 0, 0, 0)
        license_row.addWidget(self.badge)
        license_row.addWidget(self.details_button)
        license_row.addStretch(1)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addLayout(row)
        layout.addWidget(self.license_row)
        layout.addWidget(self.license)
        self.license_row.hide()
        self.license.hide()

        self.combo.currentIndexChanged.connect(lambda _index: self._changed())
        self.open_file_action.triggered.connect(self.openFileRequested)
        self.open_folder_action.triggered.connect(self.openFolderRequested)
        self.details_button.toggled.connect(self._show_details)

    @property
    def details_shown(self) -> bool:
        """Whether the license's details are open (closed until asked for)."""
        return self.details_button.isChecked()

    def model(self) -> ImageModel | None:
        model = self.combo.currentData()
        return model if isinstance(model, ImageModel) else None

    def models(self) -> list[ImageModel]:
        listed = (self.combo.itemData(index) for index in range(self.combo.count()))
        return [model for model in listed if isinstance(model, ImageModel)]

    def set_models(self, models: Iterable[ImageModel]) -> None:
        """List `models`; the one picked stays picked (and listed) if it was."""
        current = self.model()
        listed = list(models)
        if current is not None and all(model.path != current.path for model in listed):
            listed.insert(0, current)
        self.combo.blockSignals(True)
        self.combo.clear()
        for model in listed:
            self._add(model)
        index = self._index_of(current.path) if current is not None else -1
        self.combo.setCurrentIndex(index if index >= 0 else (0 if listed else -1))
        self.combo.blockSignals(False)
        # The same path may now be listed with more to say (a license once the library
        # lists a model that was opened by path): compare what is shown, not the path.
        if self.model() != current:
            self._changed()

    def pick(self, model: ImageModel) -> None:
        """Pick `model`, listing it first when it is not there (a listed copy keeps its
        license and family)."""
        index = self._index_of(model.path)
        if index < 0:
            self._add(model)
            index = self.combo.count() - 1
        if index == self.combo.currentIndex():
            self._changed()
        else:
            self.combo.setCurrentIndex(index)

    def find_listed(self, ref: ModelRef) -> ImageModel | None:
        """The listed model `ref` names: by path, then sha256, then name."""
        models = self.models()
        for model in models:
            if ref.path and model.ref.path == ref.path:
                return model
        for model in models:
            if ref.sha256 and model.ref.sha256 and model.ref.sha256.startswith(ref.sha256):
                return model
        short = ref.short_hash
        for model in models:
            if short and model.ref.short_hash == short:
                return model
        for model in models:
            if ref.name.casefold() in (model.ref.name.casefold(), model.label.casefold()):
                return model
        return None

    def learned(self, model: ImageModel) -> None:
        """Replace the listed copy of `model` (the engine told its family)."""
        index = self._index_of(model.path)
        if index >= 0:
            self.combo.setItemData(index, model)

    def _add(self, model: ImageModel) -> None:
        self.combo.addItem(model.label, model)
        self.combo.setItemData(
            self.combo.count() - 1, tooltip_html(str(model.path)), Qt.ItemDataRole.ToolTipRole
        )

    def _index_of(self, path: Path) -> int:
        for index in range(self.combo.count()):
            model = self.combo.itemData(index)
            if isinstance(model, ImageModel) and model.path == path:
                return index
        return -1

    def _changed(self) -> None:
        model = self.model()
        if model is None:
            self.license_row.hide()
            self.license.hide()
        else:
            text, tone = license_badge(model.license)
            self.badge.set_badge(text, tone, tooltip="License: " + text)
            self.license.setText(license_text(model.license))
            self.license_row.show()
            self.license.setVisible(self.details_shown)
        self.picked.emit(model)

    def _show_details(self, shown: bool) -> None:
        self.details_button.setArrowType(
            Qt.ArrowType.DownArrow if shown else Qt.ArrowType.RightArrow
        )
        self.license.setVisible(shown and self.model() is not None)

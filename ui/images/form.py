"""The generation settings: prompt, negative prompt, steps, guidance, seed, size (with the
model family's presets), scheduler, batch, and an init image with its strength (img2img).

`params()` reads them as `ImageParams`, which checks every value (a width that is not a
multiple of 8 is refused with the reason); `apply()` shows the parameters of an image again.
"""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QRegularExpression, Qt, Signal
from PySide6.QtGui import QPixmap, QRegularExpressionValidator
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
    QFileDialog,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPlainTextEdit,
    QPushButton,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from app.images.params import (
    DEFAULT_SCHEDULER,
    MAX_BATCH,
    MAX_GUIDANCE,
    MAX_HIRES_SCALE,
    MAX_SIZE,
    MAX_STEPS,
    MIN_SIZE,
    SCHEDULERS,
    SIZE_MULTIPLE,
    ImageParams,
    ImageParamsError,
    default_size,
    size_presets,
)
from ui.images.lora_list import LoraList
from ui.images.pictures import read_scaled
from ui.style import set_font
from ui.tasks import run_blocking, spawn
from ui.theme import SMALL_POINTS
from ui.widgets import PlainLabel, tooltip_html

CUSTOM_SIZE = "Custom"
INIT_THUMBNAIL = 56


def _text_box(lines: int, placeholder: str) -> QPlainTextEdit:
    box = QPlainTextEdit()
    box.setPlaceholderText(placeholder)
    box.setTabChangesFocus(True)
    box.setFixedHeight(lines * box.fontMetrics().lineSpacing() + 14)
    return box


class ImageForm(QWidget):
    """Edits an `ImageParams` (the model is picked elsewhere)."""

    initImageChanged = Signal(object)  # the Path of the init image, or None

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._family: str | None = None
        self._size_chosen = False  # the person set the size: a model's default no longer applies
        self._setting_size = False
        self._init_image: Path | None = None

        self.prompt = _text_box(4, "What to draw")
        self.negative = _text_box(2, "What to avoid (negative prompt)")
        self.steps = QSpinBox()
        self.steps.setRange(1, MAX_STEPS)
        self.guidance = QDoubleSpinBox()
        self.guidance.setRange(0.0, MAX_GUIDANCE)
        self.guidance.setSingleStep(0.5)
        self.guidance.setDecimals(1)
        self.guidance.setToolTip("CFG scale: how closely the image follows the prompt")
        self.seed = QLineEdit()
        self.seed.setValidator(
            QRegularExpressionValidator(QRegularExpression(r"\d{0,10}"), self.seed)
        )
        self.seed.setPlaceholderText("random")
        self.random_seed = QCheckBox("Random")
        self.random_seed.setToolTip("A new seed each time; untick to keep the one shown")
        self.random_seed.setAccessibleName("Random seed")
        seed_row = QHBoxLayout()
        seed_row.setContentsMargins(0, 0, 0, 0)
        seed_row.addWidget(self.seed, 1)
        seed_row.addWidget(self.random_seed)

        self.size_preset = QComboBox()
        self.width_box = self._size_box("Width")
        self.height_box = self._size_box("Height")
        size_row = QHBoxLayout()
        size_row.setContentsMargins(0, 0, 0, 0)
        size_row.addWidget(self.width_box, 1)
        size_row.addWidget(PlainLabel("x"))
        size_row.addWidget(self.height_box, 1)
        # Says so when the model, not the person, changed the size (after a pick or a load).
        self.size_note = PlainLabel()
        self.size_note.setWordWrap(True)
        set_font(self.size_note, points_delta=SMALL_POINTS)
        self.size_note.hide()
        self.scheduler = QComboBox()
        for name in SCHEDULERS:
            self.scheduler.addItem("Model default" if name == DEFAULT_SCHEDULER else name, name)
        self.batch = QSpinBox()
        self.batch.setRange(1, MAX_BATCH)
        self.batch.setToolTip("Images to make; seeds count up from the first")
        self.loras = LoraList()
        self.hires_scale = QDoubleSpinBox()
        self.hires_scale.setRange(1.0, MAX_HIRES_SCALE)
        self.hires_scale.setSingleStep(0.25)
        self.hires_scale.setDecimals(2)
        self.hires_scale.setPrefix("x")
        self.hires_scale.setSpecialValueText("Off")  # 1.0: no hires fix
        self.hires_scale.setAccessibleName("Hires fix scale")
        self.hires_scale.setToolTip(
            "Generate, upscale by this much, then refine with image to image (Off: no hires fix)"
        )
        self.hires_strength = QDoubleSpinBox()
        self.hires_strength.setRange(0.0, 1.0)
        self.hires_strength.setSingleStep(0.05)
        self.hires_strength.setDecimals(2)
        self.hires_strength.setAccessibleName("Hires fix strength")
        self.hires_strength.setToolTip("How much the refining pass changes (0: upscale only)")
        self.upscaler_label = PlainLabel("Lanczos")
        self.upscaler_label.setToolTip("How the image is upscaled before it is refined")
        self.upscaler_button = QPushButton("Upscaler…")
        self.upscaler_button.setAccessibleName("Choose an upscaler model")
        self.upscaler_button.setToolTip("An ESRGAN-family .safetensors upscaler (Real-ESRGAN…)")
        self.clear_upscaler_button = QPushButton("Lanczos")
        self.clear_upscaler_button.setAccessibleName("Upscale with Lanczos")
        self._upscaler: Path | None = None
        upscaler_row = QHBoxLayout()
        upscaler_row.setContentsMargins(0, 0, 0, 0)
        upscaler_row.addWidget(self.upscaler_label, 1)
        upscaler_row.addWidget(self.upscaler_button)
        upscaler_row.addWidget(self.clear_upscaler_button)
        hires_box = QGroupBox("Hires fix")
        hires_form = QFormLayout(hires_box)
        hires_form.addRow("Scale", self.hires_scale)
        hires_form.addRow("Strength", self.hires_strength)
        hires_form.addRow("Upscaler", upscaler_row)

        self.init_preview = PlainLabel()
        self.init_preview.setFixedSize(INIT_THUMBNAIL, INIT_THUMBNAIL)
        self.init_preview.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.init_preview.setFrameShape(QLabel.Shape.StyledPanel)
        self.init_label = PlainLabel()
        self.init_label.setWordWrap(True)
        self.clear_init_button = QPushButton("Clear")
        self.clear_init_button.setAccessibleName("Clear the init image")
        self.strength = QDoubleSpinBox()
        self.strength.setRange(0.0, 1.0)
        self.strength.setSingleStep(0.05)
        self.strength.setDecimals(2)
        self.strength.setToolTip("How much of the init image is replaced (0 keeps it all)")
        init_row = QHBoxLayout()
        init_row.setContentsMargins(0, 0, 0, 0)
        init_row.addWidget(self.init_preview)
        init_row.addWidget(self.init_label, 1)
        init_row.addWidget(self.clear_init_button, 0, Qt.AlignmentFlag.AlignTop)
        init_box = QGroupBox("Image to image")
        init_form = QFormLayout(init_box)
        init_form.addRow(init_row)
        init_form.addRow("Strength", self.strength)

        settings = QFormLayout()
        settings.setContentsMargins(0, 0, 0, 0)
        settings.addRow("Steps", self.steps)
        settings.addRow("Guidance", self.guidance)
        settings.addRow("Seed", seed_row)
        settings.addRow("Size", self.size_preset)
        settings.addRow("", size_row)
        settings.addRow("", self.size_note)
        settings.addRow("Scheduler", self.scheduler)
        settings.addRow("Batch", self.batch)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(PlainLabel("Prompt"))
        layout.addWidget(self.prompt)
        layout.addWidget(PlainLabel("Negative prompt"))
        layout.addWidget(self.negative)
        layout.addLayout(settings)
        layout.addWidget(self.loras)
        layout.addWidget(hires_box)
        layout.addWidget(init_box)

        self.random_seed.toggled.connect(self._random_toggled)
        self.size_preset.activated.connect(self._preset_chosen)
        self.width_box.valueChanged.connect(self._size_edited)
        self.height_box.valueChanged.connect(self._size_edited)
        self.clear_init_button.clicked.connect(lambda: self.set_init_image(None))
        self.loras.triggerWordChosen.connect(self._add_to_prompt)
        self.upscaler_button.clicked.connect(self._choose_upscaler)
        self.clear_upscaler_button.clicked.connect(lambda: self.set_upscaler(None))
        self.reset()

    def _size_box(self, name: str) -> QSpinBox:
        box = QSpinBox()
        box.setRange(MIN_SIZE, MAX_SIZE)
        box.setSingleStep(SIZE_MULTIPLE)
        box.setSuffix(" px")
        box.setToolTip(f"{name} in pixels, a multiple of {SIZE_MULTIPLE}")
        return box

    # -- reading and showing -------------------------------------------------------------

    def params(self) -> ImageParams:
        """The settings shown (no model; the page adds it).

        Raises:
            ImageParamsError: a value `ImageParams` refuses, or a fixed seed left blank.
        """
        seed_text = self.seed.text().strip()
        if not self.random_seed.isChecked() and not seed_text:
            raise ImageParamsError(
                "no seed given", field="seed", hint="Type one, or tick Random for a new one."
            )
        return ImageParams(
            prompt=self.prompt.toPlainText().strip(),
            negative=self.negative.toPlainText().strip(),
            steps=self.steps.value(),
            guidance=round(self.guidance.value(), 2),
            seed=None if self.random_seed.isChecked() else int(seed_text),
            width=self.width_box.value(),
            height=self.height_box.value(),
            scheduler=str(self.scheduler.currentData()),
            batch=self.batch.value(),
            init_image=str(self._init_image) if self._init_image is not None else None,
            strength=round(self.strength.value(), 2),
            loras=self.loras.loras(),
            hires_scale=0.0
            if self.hires_scale.value() <= 1.0
            else round(self.hires_scale.value(), 2),
            hires_strength=round(self.hires_strength.value(), 2),
            upscaler=str(self._upscaler) if self._upscaler is not None else None,
        )

    def apply(self, params: ImageParams) -> list[str]:
        """Show `params` (the seed fixed to theirs); returns what could not be carried over."""
        notes: list[str] = []
        self.prompt.setPlainText(params.prompt)
        self.negative.setPlainText(params.negative)
        self.steps.setValue(params.steps)
        self.guidance.setValue(params.guidance)
        if params.seed is not None:
            self.random_seed.setChecked(False)
            self.seed.setText(str(params.seed))
        else:
            self.random_seed.setChecked(True)
        self._set_size(params.width, params.height)
        self._size_chosen = True
        self._note_size("")
        index = self.scheduler.findData(params.scheduler)
        self.scheduler.setCurrentIndex(max(index, 0))
        self.batch.setValue(params.batch)
        self.strength.setValue(params.strength)
        if params.init_image is None:
            self.set_init_image(None)
        elif Path(params.init_image).is_file():
            self.set_init_image(Path(params.init_image))
        else:
            self.set_init_image(None)
            notes.append(f"its init image {Path(params.init_image).name} is not there any more")
        notes += self.loras.set_loras(params.loras)
        self.hires_scale.setValue(params.hires_scale or 1.0)
        self.hires_strength.setValue(params.hires_strength)
        upscaler = Path(params.upscaler) if params.upscaler else None
        if upscaler is not None and not upscaler.is_file():
            notes.append(f"its upscaler {upscaler.name} is not there: Lanczos instead")
            upscaler = None
        self.set_upscaler(upscaler)
        return notes

    def reset(self) -> None:
        """The defaults of `ImageParams` (a random seed, the family's native square)."""
        defaults = ImageParams(prompt="")
        self.steps.setValue(defaults.steps)
        self.guidance.setValue(defaults.guidance)
        self.random_seed.setChecked(True)
        self.scheduler.setCurrentIndex(0)
        self.batch.setValue(1)
        self.strength.setValue(defaults.strength)
        self.set_family(None, default=default_size(None))
        self._size_chosen = False
        self._note_size("")
        self.set_init_image(None)
        self.loras.clear()
        self.hires_scale.setValue(1.0)
        self.hires_strength.setValue(defaults.hires_strength)
        self.set_upscaler(None)

    def show_seed(self, seed: int) -> None:
        """The seed used last: kept in the field, so unticking Random repeats it."""
        self.seed.setText(str(seed))

    @property
    def upscaler(self) -> Path | None:
        """The upscaler model chosen for the hires fix (None: Lanczos)."""
        return self._upscaler

    def set_upscaler(self, path: Path | None) -> None:
        """Upscale the hires fix with the model at `path` (None: Lanczos)."""
        self._upscaler = path
        self.upscaler_label.setText(path.stem if path is not None else "Lanczos")
        self.clear_upscaler_button.setVisible(path is not None)

    def _choose_upscaler(self) -> None:
        name, _filter = QFileDialog.getOpenFileName(
            self, "Choose an upscaler", "", "Upscaler (*.safetensors)"
        )
        if name:
            self.set_upscaler(Path(name))

    def _add_to_prompt(self, word: str) -> None:
        """A LoRA's trigger word, added at the end of the prompt unless it is there."""
        text = self.prompt.toPlainText().rstrip()
        if word.lower() in text.lower():
            return
        self.prompt.setPlainText(f"{text}, {word}" if text else word)

    # -- size ----------------------------------------------------------------------------

    @property
    def size_chosen(self) -> bool:
        """Whether the person picked the size (else it follows the model)."""
        return self._size_chosen

    def set_family(
        self,
        family: str | None,
        *,
        default: tuple[int, int] | None = None,
        model: str | None = None,
    ) -> None:
        """List `family`'s size presets; unless the person chose a size, show `default`
        (the model's own size) or the family's native square. When `model` (its name) changed
        the size shown, a note next to the size says so."""
        self._family = family
        before = (self.width_box.value(), self.height_box.value())
        self.size_preset.clear()
        for preset in size_presets(family):
            self.size_preset.addItem(
                f"{preset.label}  ·  {preset.width} x {preset.height}",
                (preset.width, preset.height),
            )
        self.size_preset.addItem(CUSTOM_SIZE, None)
        if not self._size_chosen:
            size = default or default_size(family)
            self._set_size(*size)
            if model is not None and size != before:
                # Short, without the name (a hub name can be long); the tooltip names it.
                self._note_size(f"Set to the model's own size, {size[0]} x {size[1]}.")
                self.size_note.setToolTip(tooltip_html(f"{model} makes {size[0]} x {size[1]}."))
            elif size != before:
                self._note_size("")  # the family's default now: an older note is stale
        self._sync_preset()

    def _note_size(self, text: str) -> None:
        self.size_note.setText(text)
        self.size_note.setVisible(bool(text))
        if not text:
            self.size_note.setToolTip("")

    def _set_size(self, width: int, height: int) -> None:
        self._setting_size = True
        try:
            self.width_box.setValue(width)
            self.height_box.setValue(height)
        finally:
            self._setting_size = False
        self._sync_preset()

    def _preset_chosen(self, index: int) -> None:
        size = self.size_preset.itemData(index)
        if isinstance(size, tuple):
            self._set_size(*size)
            self._size_chosen = True
            self._note_size("")

    def _size_edited(self) -> None:
        if not self._setting_size:
            self._size_chosen = True
            self._note_size("")
            self._sync_preset()

    def _sync_preset(self) -> None:
        wanted = (self.width_box.value(), self.height_box.value())
        index = self.size_preset.findData(wanted)
        self.size_preset.setCurrentIndex(index if index >= 0 else self.size_preset.count() - 1)

    # -- seed and init image -------------------------------------------------------------

    def _random_toggled(self, random: bool) -> None:
        self.seed.setReadOnly(random)
        self.seed.setEnabled(not random)

    @property
    def init_image(self) -> Path | None:
        return self._init_image

    def set_init_image(self, path: Path | None) -> None:
        """Start from the image at `path` (image to image), or from noise (None)."""
        self._init_image = path
        self.clear_init_button.setEnabled(path is not None)
        self.strength.setEnabled(path is not None)
        if path is None:
            self.init_preview.clear()
            self.init_label.setText(
                "None. Drop an image on this page, or use a gallery image's menu."
            )
        else:
            self.init_label.setText(path.name)
            self.init_label.setToolTip(tooltip_html(str(path)))
            self.init_preview.clear()
            spawn(self._show_init_preview(path))
        self.initImageChanged.emit(path)

    async def _show_init_preview(self, path: Path) -> None:
        image = await run_blocking(read_scaled, path, INIT_THUMBNAIL)
        if path == self._init_image and not image.isNull():
            self.init_preview.setPixmap(QPixmap.fromImage(image))

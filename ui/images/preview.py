"""What is being made: the engine's small live preview scaled up, then the finished image,
with a per-step progress bar and a caption (the seed that was used)."""

from __future__ import annotations

from PySide6.QtCore import QSize, Qt
from PySide6.QtGui import QImage, QPixmap, QResizeEvent
from PySide6.QtWidgets import QLabel, QProgressBar, QSizePolicy, QVBoxLayout, QWidget

from app.images.messages import StepProgress
from ui.style import set_font
from ui.widgets import PlainLabel

# Small enough that a 900x600 window holds the preview, the gallery with its thumbnails, and
# the queue buttons under the form.
MIN_SIDE = 224


class PreviewPane(QWidget):
    """A picture that keeps its aspect ratio as the pane resizes, a bar, a caption."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._source: QPixmap | None = None
        self._finished: QPixmap | None = None  # the last finished image
        self._finished_caption = ""
        self._smooth = True
        self.picture = PlainLabel("Your image appears here.")
        self.picture.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.picture.setMinimumSize(QSize(MIN_SIDE, MIN_SIDE))
        self.picture.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Ignored)
        self.picture.setFrameShape(QLabel.Shape.StyledPanel)
        self.progress = QProgressBar()
        self.progress.setRange(0, 1000)
        self.progress.setTextVisible(True)
        self.progress.setFormat("")
        self.progress.setValue(0)
        self.progress.setAccessibleName("Generation progress")
        # Hidden while idle: an empty bar is an empty bordered box under the picture.
        self.progress.hide()
        self.caption = PlainLabel()
        self.caption.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        set_font(self.caption, bold=True)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.picture, 1)
        layout.addWidget(self.progress)
        layout.addWidget(self.caption)

    @property
    def step_text(self) -> str:
        return self.progress.format()

    def busy(self, text: str) -> None:
        """Working without steps to count (starting the engine, loading the model)."""
        self.progress.setRange(0, 0)
        self.progress.setFormat(text)
        self.progress.show()

    def show_step(self, step: StepProgress) -> None:
        """One step done: the bar, and the step's preview when it carries one."""
        self.progress.setRange(0, 1000)
        self.progress.setValue(round(step.fraction * 1000))
        batch = f" · image {step.image + 1} of {step.images}" if step.images > 1 else ""
        self.progress.setFormat(f"Step {step.step} of {step.steps}{batch}")
        self.progress.show()
        if step.preview:
            picture = QImage()
            if picture.loadFromData(step.preview, "PNG"):
                self._show(QPixmap.fromImage(picture), smooth=True)

    def show_image(self, picture: QImage, caption: str) -> None:
        """The finished image (decoded on a worker) and what to say under it."""
        if not picture.isNull():
            # An image smaller than the pane grows in crisp pixels: it is shown as it is.
            self._finished = QPixmap.fromImage(picture)
            self._finished_caption = caption
            self._show(self._finished, smooth=False)
        self.caption.setText(caption)

    def show_last_finished(self) -> None:
        """After a cancel or a failure: the last finished image again, not a half-made one."""
        if self._finished is not None:
            self._show(self._finished, smooth=False)
            self.caption.setText(self._finished_caption)
        else:
            self._source = None
            self.picture.clear()
            self.picture.setText("Your image appears here.")

    def done(self, text: str) -> None:
        """The end: a full bar saying `text`, or (no text) no bar at all."""
        self.progress.setRange(0, 1000)
        self.progress.setValue(1000 if text else 0)
        self.progress.setFormat(text)
        self.progress.setVisible(bool(text))

    def set_caption(self, text: str) -> None:
        self.caption.setText(text)

    def shown_pixmap(self) -> QPixmap | None:
        """What the picture shows now (None before any image)."""
        return self._source

    def resizeEvent(self, event: QResizeEvent) -> None:
        super().resizeEvent(event)
        self._fit()

    def _show(self, pixmap: QPixmap, *, smooth: bool) -> None:
        self._source, self._smooth = pixmap, smooth
        self._fit()

    def _fit(self) -> None:
        if self._source is None:
            return
        area = self.picture.contentsRect().size()
        shrinking = self._source.width() > area.width() or self._source.height() > area.height()
        mode = (
            Qt.TransformationMode.SmoothTransformation
            if self._smooth or shrinking
            else Qt.TransformationMode.FastTransformation
        )
        self.picture.setPixmap(self._source.scaled(area, Qt.AspectRatioMode.KeepAspectRatio, mode))

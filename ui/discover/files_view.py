"""The files of a repository: GGUF models grouped (split parts under one row) with their fit."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from PySide6.QtCore import QEvent, Qt, Signal
from PySide6.QtGui import QStandardItem, QStandardItemModel
from PySide6.QtWidgets import (
    QComboBox,
    QHBoxLayout,
    QHeaderView,
    QPushButton,
    QTreeView,
    QVBoxLayout,
    QWidget,
)

from app.errors import AppError
from app.hub.models import ModelDetails, RepoFile
from app.units import format_bytes
from ui import theme
from ui.icons import themed_icon
from ui.style import mark_error
from ui.tasks import run_blocking, spawn
from ui.widgets import LONG_CHARS, clip, plain_label, tooltip_html

if TYPE_CHECKING:  # imported where used: file analysis and psutil stay out of startup
    from app.hardware import MachineMemory
    from app.hub.repo_files import GgufModel
    from app.llm.fit import FitEstimate

HEADERS = ("File", "Size", "Quantization", "Fit", "SHA256")
FIT_KINDS = {"fits": "good", "tight": "warning", "won't fit": "bad"}  # ui.theme colours


def _row(
    name: str, size: int | None, quantization: str, fit: FitEstimate | None, sha256: str
) -> list[QStandardItem]:
    # Cell texts are drawn plainly by the view; tooltips go through QToolTip, which guesses
    # rich text, so they are escaped (a hub sends file names and sha256s as it likes).
    cells = [
        QStandardItem(name),
        QStandardItem(format_bytes(size) if size is not None else "?"),
        QStandardItem(quantization),
        QStandardItem(fit.fit.value if fit else ""),
        QStandardItem(sha256[:12] if sha256 else ""),
    ]
    for cell in cells:
        cell.setEditable(False)
    cells[1].setTextAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
    if sha256:
        cells[4].setToolTip(tooltip_html(sha256))
    if fit:
        cells[3].setForeground(theme.status_colour(FIT_KINDS[fit.fit.value]))
        cells[3].setToolTip(tooltip_html(fit.explanation))
        cells[0].setToolTip(tooltip_html(fit.explanation))
    return cells


TargetRole = Qt.ItemDataRole.UserRole + 1  # on column 0: the GgufModel or RepoFile of the row


def _gguf_rows(model: GgufModel, memory: MachineMemory, context: int) -> list[QStandardItem]:
    from app.llm.fit import estimate_file_fit

    fit = (
        estimate_file_fit(model.size, model.quantization, memory, context_length=context)
        if model.size is not None and not model.is_projector
        else None
    )
    if len(model.parts) == 1:
        part = model.parts[0]
        row = _row(part.path, part.size, model.quantization or "", fit, part.sha256 or "")
    else:
        complete = "" if model.is_complete else ", incomplete"
        label = f"{model.name}  ({len(model.parts)} parts{complete})"
        row = _row(label, model.size, model.quantization or "", fit, "")
        for part in model.parts:
            part_row = _row(part.path, part.size, "", None, part.sha256 or "")
            part_row[0].setData(model, TargetRole)  # a part downloads with its whole model
            row[0].appendRow(part_row)
    row[0].setData(model, TargetRole)
    return row


def build_files_model(
    files: tuple[RepoFile, ...], memory: MachineMemory, *, context_length: int
) -> QStandardItemModel:
    """A tree model: GGUF models first (best quality first), then every other file."""
    from app.hub.repo_files import group_gguf_models

    model = QStandardItemModel(0, len(HEADERS))
    model.setHorizontalHeaderLabels(list(HEADERS))
    ggufs = group_gguf_models(files)
    in_gguf = {part.path for gguf in ggufs for part in gguf.parts}
    for gguf in ggufs:
        model.appendRow(_gguf_rows(gguf, memory, context_length))
    for file in files:
        if file.path not in in_gguf:
            row = _row(file.path, file.size, "", None, file.sha256 or "")
            row[0].setData(file, TargetRole)
            model.appendRow(row)
    return model


def describe_layout(details: ModelDetails) -> str:
    """One line about the repository's format: GGUF quantizations or diffusers variants."""
    from app.hub.repo_files import diffusers_layout, group_gguf_models

    ggufs = [model for model in group_gguf_models(details.files) if not model.is_projector]
    if ggufs:
        quants = sorted({model.quantization for model in ggufs if model.quantization})
        return f"GGUF: {len(ggufs)} model file(s)" + (f" — {', '.join(quants)}" if quants else "")
    layout = diffusers_layout(details.files)
    if layout.is_pipeline:
        variants = ", ".join(layout.variants) if layout.variants else "default only"
        formats = [
            name
            for name, present in (
                ("safetensors", layout.has_safetensors),
                ("pickle .bin/.ckpt", layout.has_pickle),
            )
            if present
        ]
        return f"Diffusers pipeline — variants: {variants}; weights: {', '.join(formats) or '—'}"
    return f"{len(details.files)} file(s)"


def _recolour_fits(parent: QStandardItem) -> None:
    for row in range(parent.rowCount()):
        fit = parent.child(row, 3)
        if fit is not None and fit.text() in FIT_KINDS:
            fit.setForeground(theme.status_colour(FIT_KINDS[fit.text()]))
        child = parent.child(row, 0)
        if child is not None and child.hasChildren():
            _recolour_fits(child)


class FilesView(QWidget):
    """A summary line, download buttons, and the file tree.

    "Download" fetches the selected GGUF model (every part of a split one) or file; for a
    diffusers pipeline, "Download pipeline" fetches what it needs in the chosen variant.
    Once the selected GGUF model is in the local cache, "Chat with this" offers it to Chat.
    """

    downloadRequested = Signal(object)  # a DownloadPlan
    chatRequested = Signal(object)  # the Path of a downloaded GGUF (its first part)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._model: QStandardItemModel | None = None
        # Names variants and quantizations of files; a problem may quote a file name.
        self.summary = plain_label(word_wrap=True, shrinkable=True)
        self.download_button = QPushButton(themed_icon("downloads"), "Download")
        self.download_button.setEnabled(False)
        self.variant = QComboBox()
        self.pipeline_button = QPushButton(themed_icon("downloads"), "Download pipeline")
        self.chat_button = QPushButton(themed_icon("chat"), "Chat with this")
        self.chat_button.setToolTip("Open this model in Chat")
        self.chat_button.hide()
        self.problem = plain_label(word_wrap=True, shrinkable=True)
        buttons = QHBoxLayout()
        buttons.addWidget(self.download_button)
        buttons.addWidget(self.chat_button)
        buttons.addWidget(self.pipeline_button)
        buttons.addWidget(self.variant)
        buttons.addWidget(self.problem, 1)
        self.download_button.clicked.connect(self._download_selected)
        self.pipeline_button.clicked.connect(self._download_pipeline)
        self.chat_button.clicked.connect(self._chat_clicked)
        self._details: ModelDetails | None = None
        # The HF cache folder, to see whether a GGUF was downloaded (None: never offer Chat).
        self.cache_dir: Callable[[], Path] | None = None
        self._local_gguf: Path | None = None
        self.tree = QTreeView()
        self.tree.setUniformRowHeights(True)
        self.tree.setAlternatingRowColors(True)
        self.tree.setSelectionBehavior(QTreeView.SelectionBehavior.SelectRows)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.summary)
        layout.addLayout(buttons)
        layout.addWidget(self.tree)

    def show_files(self, details: ModelDetails, memory: MachineMemory, context_length: int) -> None:
        """Fill the tree for `details`, with fit estimates against `memory`."""
        from app.hub.repo_files import diffusers_layout

        self._details = details
        self._model = build_files_model(details.files, memory, context_length=context_length)
        self.tree.setModel(self._model)
        self.tree.selectionModel().currentChanged.connect(self._selection_changed)
        self.download_button.setEnabled(False)
        self.chat_button.hide()
        self._local_gguf = None
        self.problem.clear()
        layout = diffusers_layout(details.files)
        self.variant.clear()
        if layout.is_pipeline:
            self.variant.addItem("default weights", None)
            for variant in layout.variants:
                self.variant.addItem(variant, variant)
        self.variant.setVisible(layout.is_pipeline)
        self.pipeline_button.setVisible(layout.is_pipeline)
        header = self.tree.header()
        header.setSectionResizeMode(0, QHeaderView.ResizeMode.Stretch)
        for column in range(1, len(HEADERS)):
            header.setSectionResizeMode(column, QHeaderView.ResizeMode.ResizeToContents)
        self.tree.expandAll()
        self.summary.setText(
            f"{clip(describe_layout(details), LONG_CHARS)}. "
            f"Fit assumes a {context_length:,}-token context "
            f"and {format_bytes(memory.ram_available)} of free RAM"
            + (f" plus {len(memory.gpus)} GPU(s)" if memory.gpus else "")
            + "."
        )

    def changeEvent(self, event: QEvent) -> None:
        # The fit colours were picked for the scheme at the time: repaint them in the new one.
        super().changeEvent(event)
        if event.type() == QEvent.Type.PaletteChange and self._model is not None:
            _recolour_fits(self._model.invisibleRootItem())

    @property
    def model(self) -> QStandardItemModel | None:
        return self._model

    def selected_target(self) -> object:
        """The GgufModel or RepoFile of the selected row, if any."""
        index = self.tree.currentIndex()
        return index.siblingAtColumn(0).data(TargetRole) if index.isValid() else None

    def _selection_changed(self) -> None:
        self.download_button.setEnabled(self.selected_target() is not None)
        self.check_downloaded()

    def check_downloaded(self) -> None:
        """Offer "Chat with this" when the selected GGUF model is in the cache (after its
        download completed, or from before); the look on disk runs on a worker."""
        from app.hub.repo_files import GgufModel

        target = self.selected_target()
        details = self._details
        self._local_gguf = None
        self.chat_button.hide()
        if (
            not isinstance(target, GgufModel)
            or target.is_projector
            or details is None
            or not details.sha
            or self.cache_dir is None
        ):
            return
        spawn(self._find_local(details, target, self.cache_dir))

    async def _find_local(
        self, details: ModelDetails, target: GgufModel, cache_dir: Callable[[], Path]
    ) -> None:
        from app.downloads.cache import snapshot_folder

        def find() -> Path | None:
            folder = snapshot_folder(cache_dir(), details.repo_id, details.sha or "")
            paths = [folder / part.path for part in target.parts]
            return paths[0] if all(path.is_file() for path in paths) else None

        path = await run_blocking(find)
        if path is not None and self.selected_target() is target:
            self._local_gguf = path
            self.chat_button.show()

    def _chat_clicked(self) -> None:
        if self._local_gguf is not None:
            self.chatRequested.emit(self._local_gguf)

    def _download_selected(self) -> None:
        from app.downloads import plan_files, plan_gguf
        from app.hub.repo_files import GgufModel

        target = self.selected_target()
        if self._details is None or target is None:
            return
        try:
            if isinstance(target, GgufModel):
                plan = plan_gguf(self._details, target)
            else:
                plan = plan_files(self._details, [getattr(target, "path", "")])
        except (AppError, ValueError) as exc:
            self._say(str(exc))
            return
        self.downloadRequested.emit(plan)

    def _download_pipeline(self) -> None:
        from app.downloads import plan_diffusers

        if self._details is None:
            return
        try:
            plan = plan_diffusers(self._details, self.variant.currentData())
        except (AppError, ValueError) as exc:
            self._say(str(exc))
            return
        self.downloadRequested.emit(plan)

    def _say(self, text: str) -> None:
        self.problem.setText(clip(text, LONG_CHARS))
        mark_error(self.problem, True)

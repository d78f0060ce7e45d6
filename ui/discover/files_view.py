"""The files of a repository: GGUF models grouped (split parts under one row) with their fit.

Above the tree, what a person needs to know before pressing Download: whether the repository
is gated (and a way to ask for access and to add a token right here), and whether the
chosen diffusers variant could run at all (ModelDeck loads no pickle weights). In the tree, a
Scan badge per file says what the hub's malware and pickle scanners found (and, for a file on
disk, ModelDeck's own header check); a flagged file is downloaded only after a second "yes".
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from PySide6.QtCore import QEvent, QObject, Qt, QUrl, Signal
from PySide6.QtGui import QDesktopServices, QFontMetrics, QStandardItem, QStandardItemModel
from PySide6.QtWidgets import (
    QComboBox,
    QFrame,
    QHBoxLayout,
    QHeaderView,
    QLineEdit,
    QMessageBox,
    QPushButton,
    QTreeView,
    QVBoxLayout,
    QWidget,
)

from app.errors import AppError
from app.hub.models import AccessStatus, Gating, ModelDetails, RepoFile
from app.hub.security import FileScan, RepoSecurity, ScanLevel, flagged_files, scan_of, worst
from app.units import format_bytes
from ui.badges import CELL_MARGIN, BadgeDelegate, Tone, ToneRole, badge_font, badge_size
from ui.confirm import ask, confirmation_box
from ui.discover.vision_mark import mark_vision
from ui.icons import themed_icon
from ui.style import make_notice, mark_error
from ui.tasks import run_blocking, spawn
from ui.widgets import LONG_CHARS, clip, plain_label, tooltip_html

if TYPE_CHECKING:  # imported where used: file analysis and psutil stay out of startup
    from app.downloads.plan import DownloadPlan, PipelineCheck
    from app.hardware import MachineMemory
    from app.hub.repo_files import GgufModel
    from app.library.own_check import OwnCheck
    from app.llm.fit import FitEstimate

HEADERS = ("File", "Size", "Quantization", "Fit", "SHA256", "On disk", "Scan")
NAME, SIZE, QUANTIZATION, FIT, SHA, LOCAL, SCAN = range(len(HEADERS))
# Columns hidden when no row of this repository has anything to say in them.
OPTIONAL_COLUMNS = (QUANTIZATION, FIT, LOCAL, SHA)
NAME_WANTED = 340  # a name wider than this may be cut at its end rather than drop a column
FIT_TONES = {"fits": Tone.GOOD, "tight": Tone.CAUTION, "won't fit": Tone.BAD}
DOWNLOADED = "downloaded ✓"

TargetRole = Qt.ItemDataRole.UserRole + 1  # on column 0: the GgufModel or RepoFile of the row
FitRole = Qt.ItemDataRole.UserRole + 2  # on the fit column: "fits", "tight" or "won't fit"
PathsRole = Qt.ItemDataRole.UserRole + 3  # on column 0: the repo paths the row stands for
# A badge cell's text at each width, widest first: "fits · 4.2 GB of 24.5 GB", "fits · 4.2 GB",
# "fits"; "downloaded ✓", "downloaded ✓", "✓". The cell shows one of them (`_fit_columns`).
TextRoles = (
    Qt.ItemDataRole.UserRole + 4,
    Qt.ItemDataRole.UserRole + 5,
    Qt.ItemDataRole.UserRole + 6,
)
FitLongRole, FitShortRole, FitTinyRole = TextRoles
BADGE_COLUMNS = (FIT, LOCAL, SCAN)
ScanRole = Qt.ItemDataRole.UserRole + 7  # on the scan column: the hub's `FileScan`
# The Scan badge: its word at each width, and its tone. "not scanned" is never "safe".
SCAN_TEXTS = {
    ScanLevel.SAFE: ("safe", "✓"),
    ScanLevel.NOT_SCANNED: ("not scanned", "?"),
    ScanLevel.CAUTION: ("caution", "!"),
    ScanLevel.SUSPICIOUS: ("suspicious", "!!"),
    ScanLevel.UNSAFE: ("unsafe", "✗"),
}
SCAN_TONES = {
    ScanLevel.SAFE: Tone.GOOD,
    ScanLevel.NOT_SCANNED: Tone.NEUTRAL,
    ScanLevel.CAUTION: Tone.CAUTION,
    ScanLevel.SUSPICIOUS: Tone.BAD,
    ScanLevel.UNSAFE: Tone.BAD,
}
LOCAL_TEXTS = (DOWNLOADED, DOWNLOADED, "✓")
# The layouts tried, widest first, until the file names get their room: the columns dropped
# (the quantization is in a GGUF's name too) and how short the badges are. The fit and
# "downloaded" stay in every one.
LAYOUTS: tuple[tuple[frozenset[int], int], ...] = (
    (frozenset(), 0),
    (frozenset({SHA}), 0),
    (frozenset({SHA}), 1),
    (frozenset({SHA, QUANTIZATION}), 1),
    (frozenset({SHA, QUANTIZATION}), 2),
    (frozenset({SHA, QUANTIZATION, SIZE}), 2),
)


def fit_text(fit: FitEstimate, budget: int | None = None) -> str:
    """ "fits · 4.2 GB of 24.5 GB": the verdict, what the model needs, and what is free
    (`budget`; None for the short form)."""
    text = f"{fit.fit.value} · {format_bytes(fit.total_bytes)}"
    return text if budget is None else f"{text} of {format_bytes(budget)}"


def part_label(model_name: str, path: str, number: int, count: int) -> str:
    """A split GGUF's part under its model's row: "part 1 of 2 · 00001-of-00002.gguf".

    Its full name repeats the model's, which the row above already shows: cut at the end to
    fit, every part would read the same ("…-Q8_0-00001-of-…"). The tooltip has the full name.
    """
    name = path.rpartition("/")[2]
    rest = name[len(model_name) :].lstrip("-.") if name.startswith(model_name) else name
    return f"part {number} of {count} · {rest or name}"


def set_scan(cell: QStandardItem, scan: FileScan, own: OwnCheck | None = None) -> None:
    """Make `cell` the Scan badge: the hub's verdict, and ModelDeck's own check when given."""
    long, tiny = SCAN_TEXTS[scan.level]
    tone = SCAN_TONES[scan.level]
    tip = f"The hub's scan: {long}. {scan.finding}".strip()
    if own is not None:
        long = f"{long} · {'checked' if own.word == 'ok' else own.word}"
        if own.level.rank > scan.level.rank and own.level is not ScanLevel.NOT_SCANNED:
            tone = SCAN_TONES[own.level]
        tip += f"\nModelDeck's check: {own.detail}"
    cell.setData(scan, ScanRole)
    for role, text in zip(TextRoles, (long, long, tiny), strict=True):
        cell.setData(text, role)
    cell.setText(long)
    cell.setData(tone, ToneRole)
    cell.setToolTip(tooltip_html(tip))


def _row(
    name: str,
    size: int | None,
    quantization: str,
    fit: FitEstimate | None,
    sha256: str,
    *,
    budget: int,
    scan: FileScan,
) -> list[QStandardItem]:
    # Cell texts are drawn plainly by the view; tooltips go through QToolTip, which guesses
    # rich text, so they are escaped (a hub sends file names and sha256s as it likes).
    cells = [
        QStandardItem(name),
        QStandardItem(format_bytes(size) if size is not None else "?"),
        QStandardItem(quantization),
        QStandardItem(fit_text(fit, budget) if fit else ""),
        QStandardItem(sha256[:12] if sha256 else ""),
        QStandardItem(""),
        QStandardItem(""),
    ]
    set_scan(cells[SCAN], scan)
    for cell in cells:
        cell.setEditable(False)
    cells[SIZE].setTextAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
    if sha256:
        cells[SHA].setToolTip(tooltip_html(sha256))
    tip = name
    if fit:
        cells[FIT].setData(fit.fit.value, FitRole)
        texts = (fit_text(fit, budget), fit_text(fit), fit.fit.value)
        for role, text in zip(TextRoles, texts, strict=True):
            cells[FIT].setData(text, role)
        cells[FIT].setData(FIT_TONES[fit.fit.value], ToneRole)
        cells[FIT].setToolTip(tooltip_html(fit.explanation))
        tip = f"{name}\n{fit.explanation}"
    cells[NAME].setToolTip(tooltip_html(tip))
    return cells


def _gguf_rows(
    model: GgufModel,
    memory: MachineMemory,
    context: int,
    security: RepoSecurity | None,
    projector: GgufModel | None = None,
) -> list[QStandardItem]:
    from app.llm.fit import estimate_file_fit
    from app.llm.projector_cost import projector_cost_of_file

    # A vision model's fit counts the projector that downloads and loads with it.
    cost = (
        projector_cost_of_file(projector.size)
        if projector is not None and projector.size is not None
        else None
    )
    fit = (
        estimate_file_fit(
            model.size, model.quantization, memory, context_length=context, projector=cost
        )
        if model.size is not None and not model.is_projector
        else None
    )
    budget = memory.budget
    if len(model.parts) == 1:
        part = model.parts[0]
        row = _row(
            part.path,
            part.size,
            model.quantization or "",
            fit,
            part.sha256 or "",
            budget=budget,
            scan=scan_of(security, part.path),
        )
    else:
        complete = "" if model.is_complete else ", incomplete"
        label = f"{model.name}  ({len(model.parts)} parts{complete})"
        scan = worst([scan_of(security, part.path) for part in model.parts])
        row = _row(label, model.size, model.quantization or "", fit, "", budget=budget, scan=scan)
        for number, part in enumerate(model.parts, start=1):
            part_row = _row(
                part_label(model.name, part.path, number, len(model.parts)),
                part.size,
                "",
                None,
                part.sha256 or "",
                budget=budget,
                scan=scan_of(security, part.path),
            )
            part_row[NAME].setToolTip(tooltip_html(part.path))
            part_row[NAME].setData(model, TargetRole)  # a part downloads with its whole model
            part_row[NAME].setData((part.path,), PathsRole)
            row[NAME].appendRow(part_row)
    row[NAME].setData(model, TargetRole)
    row[NAME].setData(tuple(part.path for part in model.parts), PathsRole)
    return row


def build_files_model(
    files: tuple[RepoFile, ...],
    memory: MachineMemory,
    *,
    context_length: int,
    security: RepoSecurity | None = None,
) -> QStandardItemModel:
    """A tree model: GGUF models first (best quality first), then every other file."""
    from app.hub.projector_files import matching_projector
    from app.hub.repo_files import group_gguf_models

    model = QStandardItemModel(0, len(HEADERS))
    model.setHorizontalHeaderLabels(list(HEADERS))
    ggufs = group_gguf_models(files)
    in_gguf = {part.path for gguf in ggufs for part in gguf.parts}
    for gguf in ggufs:
        rows = _gguf_rows(gguf, memory, context_length, security, matching_projector(gguf, ggufs))
        mark_vision(rows[NAME], gguf, ggufs)  # an eye on a vision model and its projector
        model.appendRow(rows)
    for file in files:
        if file.path not in in_gguf:
            row = _row(
                file.path,
                file.size,
                "",
                None,
                file.sha256 or "",
                budget=memory.budget,
                scan=scan_of(security, file.path),
            )
            row[NAME].setData(file, TargetRole)
            row[NAME].setData((file.path,), PathsRole)
            model.appendRow(row)
    return model


def _rows(parent: QStandardItem) -> list[QStandardItem]:
    """Column 0 of every row under `parent`, children included."""
    found = []
    for row in range(parent.rowCount()):
        child = parent.child(row, NAME)
        if child is not None:
            found.append(child)
            found += _rows(child)
    return found


def _column_empty(model: QStandardItemModel, column: int) -> bool:
    for name in _rows(model.invisibleRootItem()):
        parent = name.parent() or model.invisibleRootItem()
        cell = parent.child(name.row(), column)
        if cell is not None and cell.text():
            return False
    return True


def counted_files(count: int) -> str:
    return f"{count} model file" if count == 1 else f"{count} model files"


def describe_layout(details: ModelDetails) -> str:
    """One line about the repository's format: GGUF quantizations or diffusers variants."""
    from app.hub.repo_files import diffusers_layout, group_gguf_models

    ggufs = [model for model in group_gguf_models(details.files) if not model.is_projector]
    if ggufs:
        quants = sorted({model.quantization for model in ggufs if model.quantization})
        return f"GGUF: {counted_files(len(ggufs))}" + (f" — {', '.join(quants)}" if quants else "")
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
    count = len(details.files)
    return f"{count} file" if count == 1 else f"{count} files"


_ACCESS_TEXT = {
    None: "Checking whether your token has access…",
    AccessStatus.GRANTED: "Your token has access: the files can be downloaded.",
    AccessStatus.NO_TOKEN: "No token is set. Request access on the hub, then add a token here.",
    AccessStatus.DENIED: "Your token has no access yet: request it on the hub (or wait for the "
    "authors to review your request), or add another token here.",
    AccessStatus.UNKNOWN: "Access could not be checked right now; a download may ask for a token.",
}


class GateNotice(QFrame):
    """A gated repository, said before Download: request access, add a token, see the answer."""

    tokenSubmitted = Signal(str)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        make_notice(self)
        self._url = ""
        self.text = plain_label(word_wrap=True, shrinkable=True)
        self.request_button = QPushButton(themed_icon("open"), "Request access on the hub")
        self.request_button.setAccessibleName("Request access on the hub")
        self.request_button.setToolTip("Open the model's hub page to accept its terms")
        self.token = QLineEdit()
        self.token.setEchoMode(QLineEdit.EchoMode.Password)
        self.token.setPlaceholderText("hf_…  (a read token)")
        self.token.setAccessibleName("Access token")
        self.save_button = QPushButton(themed_icon("key"), "Save token")
        self.save_button.setAccessibleName("Save access token")
        self.save_button.setEnabled(False)
        self.status = plain_label(word_wrap=True, shrinkable=True)
        self.status.hide()
        row = QHBoxLayout()
        row.setContentsMargins(0, 0, 0, 0)
        row.addWidget(self.request_button)
        row.addWidget(self.token, 1)
        row.addWidget(self.save_button)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(6, 4, 6, 4)
        layout.addWidget(self.text)
        layout.addLayout(row)
        layout.addWidget(self.status)
        self.request_button.clicked.connect(self._open_hub_page)
        self.token.textChanged.connect(lambda text: self.save_button.setEnabled(bool(text.strip())))
        self.token.returnPressed.connect(self._submit)
        self.save_button.clicked.connect(self._submit)

    def show_gate(self, details: ModelDetails) -> None:
        """Show the notice for a gated `details` (hidden for an open one, or an offline copy)."""
        self._url = details.url
        self.token.clear()
        self.status.hide()
        self.setVisible(details.gating is not Gating.OPEN and details.saved_at is None)
        self.show_access(None)

    def show_access(self, access: AccessStatus | None) -> None:
        how = "This model is gated: its files download only for a token that was granted access."
        self.text.setText(f"{how} {_ACCESS_TEXT[access]}")
        granted = access is AccessStatus.GRANTED
        for widget in (self.request_button, self.token, self.save_button):
            widget.setVisible(not granted)

    def show_saved(self, message: str, *, error: bool = False) -> None:
        self.status.setText(clip(message, LONG_CHARS))
        mark_error(self.status, error)
        self.status.show()

    def _submit(self) -> None:
        token = self.token.text().strip()
        if token:
            self.save_button.setEnabled(False)
            self.show_saved("Saving the token…")
            self.tokenSubmitted.emit(token)

    def _open_hub_page(self) -> None:
        if self._url:
            QDesktopServices.openUrl(QUrl(self._url))


class FilesView(QWidget):
    """A summary line, notices, download buttons, and the file tree.

    "Download" fetches the selected GGUF model (every part of a split one) or file; for a
    diffusers pipeline, "Download pipeline" fetches what it needs in the chosen variant.
    Files already in the cache say "downloaded ✓" and are not downloaded again; once the
    selected GGUF model is there, "Chat with this" offers it to Chat.
    """

    downloadRequested = Signal(object)  # a DownloadPlan
    # (ModelDetails, tuple of paths): files of a hub whose details name no commit (ModelScope),
    # which the HF download queue cannot plan; the page downloads them its own way.
    filesRequested = Signal(object, object)
    chatRequested = Signal(object)  # the Path of a downloaded GGUF (its first part)
    tokenSubmitted = Signal(str)  # a token typed into the gated notice

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._model: QStandardItemModel | None = None
        # Names variants and quantizations of files; a problem may quote a file name.
        self.summary = plain_label(word_wrap=True, shrinkable=True)
        self.gate = GateNotice()
        self.gate.hide()
        self.gate.tokenSubmitted.connect(self.tokenSubmitted)
        self.download_button = QPushButton(themed_icon("downloads"), "Download")
        self.download_button.setAccessibleName("Download the selected file")
        self.download_button.setEnabled(False)
        self.variant = QComboBox()
        self.variant.setAccessibleName("Pipeline weights variant")
        self.pipeline_button = QPushButton(themed_icon("downloads"), "Download pipeline")
        self.pipeline_button.setAccessibleName("Download the pipeline")
        self.chat_button = QPushButton(themed_icon("chat"), "Chat with this")
        self.chat_button.setAccessibleName("Chat with this model")
        self.chat_button.setToolTip("Open this model in Chat")
        self.chat_button.hide()
        self.problem = plain_label(word_wrap=True, shrinkable=True)
        # A pipeline that would not run as chosen, and the way to one that would.
        self.pipeline_notice = QFrame()
        make_notice(self.pipeline_notice)
        self.pipeline_notice.hide()
        self.pipeline_note = plain_label(word_wrap=True, shrinkable=True)
        self.safetensors_button = QPushButton("Use safetensors weights")
        self.safetensors_button.setAccessibleName("Use safetensors weights")
        self.safetensors_button.hide()
        notice_layout = QVBoxLayout(self.pipeline_notice)
        notice_layout.setContentsMargins(6, 4, 6, 4)
        notice_layout.addWidget(self.pipeline_note)
        notice_layout.addWidget(self.safetensors_button, 0, Qt.AlignmentFlag.AlignLeft)
        buttons = QHBoxLayout()
        buttons.addWidget(self.download_button)
        buttons.addWidget(self.chat_button)
        buttons.addWidget(self.pipeline_button)
        buttons.addWidget(self.variant)
        buttons.addWidget(self.problem, 1)
        self.download_button.clicked.connect(self._download_selected)
        self.pipeline_button.clicked.connect(self._download_pipeline)
        self.chat_button.clicked.connect(self._chat_clicked)
        self.variant.currentIndexChanged.connect(self._variant_changed)
        self.safetensors_button.clicked.connect(self._use_safetensors)
        self._details: ModelDetails | None = None
        # The HF cache folder, to see which files were downloaded (None: never looked at).
        self.cache_dir: Callable[[], Path] | None = None
        self._local_gguf: Path | None = None
        self._local_paths: frozenset[str] = frozenset()
        self._check: PipelineCheck | None = None
        self._safetensors_fallback = False  # the pipeline plan takes default safetensors
        self._is_pipeline = False
        self._empty_columns: set[int] = set()
        self._badge_widths: dict[tuple[int, int], int] = {}  # (column, text level): width
        self.asking: QMessageBox | None = None  # the second "yes" a flagged file needs
        self.tree = QTreeView()
        self.tree.setUniformRowHeights(True)
        self.tree.setAlternatingRowColors(True)
        self.tree.setSelectionBehavior(QTreeView.SelectionBehavior.SelectRows)
        self.tree.setItemDelegate(BadgeDelegate(self.tree))
        self.tree.setTabKeyNavigation(False)  # Tab leaves the tree; the arrows move in it
        self.tree.setAccessibleName("Files")
        self.tree.viewport().installEventFilter(self)  # its resizes fit the columns
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.summary)
        layout.addWidget(self.gate)
        layout.addWidget(self.pipeline_notice)
        layout.addLayout(buttons)
        layout.addWidget(self.tree)

    def show_files(self, details: ModelDetails, memory: MachineMemory, context_length: int) -> None:
        """Fill the tree for `details`, with fit estimates against `memory`."""
        from app.hub.repo_files import diffusers_layout

        self._details = details
        self._model = build_files_model(
            details.files, memory, context_length=context_length, security=details.security
        )
        self.tree.setModel(self._model)
        self.tree.selectionModel().currentChanged.connect(self._selection_changed)
        self.download_button.setEnabled(False)
        self.chat_button.hide()
        self._local_gguf = None
        self._local_paths = frozenset()
        self.problem.clear()
        self.gate.show_gate(details)
        layout = diffusers_layout(details.files)
        self._safetensors_fallback = False
        self.variant.blockSignals(True)  # one check below, not one per item added
        self.variant.clear()
        if layout.is_pipeline:
            self.variant.addItem("default weights", None)
            for variant in layout.variants:
                self.variant.addItem(variant, variant)
        self.variant.blockSignals(False)
        self._is_pipeline = layout.is_pipeline
        self.variant.setVisible(layout.is_pipeline)
        self.pipeline_button.setVisible(layout.is_pipeline)
        self._check_pipeline()
        header = self.tree.header()
        header.setStretchLastSection(False)
        header.setSectionResizeMode(NAME, QHeaderView.ResizeMode.Stretch)
        for column in range(1, len(HEADERS)):
            header.setSectionResizeMode(column, QHeaderView.ResizeMode.ResizeToContents)
        self._hide_empty_columns()
        self.tree.expandAll()
        self.summary.setText(
            f"{clip(describe_layout(details), LONG_CHARS)}. "
            f"Fit assumes a {context_length:,}-token context "
            f"and {format_bytes(memory.ram_available)} of free RAM"
            + (
                f" plus {len(memory.gpus)} GPU{'s' if len(memory.gpus) != 1 else ''}"
                if memory.gpus
                else ""
            )
            + "."
        )
        self.check_downloaded()

    def show_access(self, access: AccessStatus) -> None:
        """What the hub says about the current token and this gated repository."""
        self.gate.show_access(access)

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        if watched is self.tree.viewport() and event.type() == QEvent.Type.Resize:
            self._fit_columns()
        return super().eventFilter(watched, event)

    def _hide_empty_columns(self) -> None:
        # A column with nothing in it for this repository (Quantization for a diffusers
        # repo, Fit for one without GGUFs) would take width from the file names.
        model = self._model
        if model is None:
            return
        self._empty_columns = {c for c in OPTIONAL_COLUMNS if _column_empty(model, c)}
        self._badge_widths = self._measure_badges()
        self._fit_columns()

    def _fit_columns(self) -> None:
        """Show the columns with something to say that leave the file names enough room."""
        if self._model is None:
            return
        tree = self.tree
        header = tree.header()

        def width(column: int) -> int:
            return max(header.sectionSizeHint(column), tree.sizeHintForColumn(column))

        names = min(tree.sizeHintForColumn(NAME), NAME_WANTED)
        available = tree.viewport().width()
        optional = [c for c in range(1, len(HEADERS)) if c not in self._empty_columns]

        def needed(shown: list[int], level: int) -> int:
            # Badge columns are measured at that level's texts, whatever they show now: the
            # choice must not flip when its own effect (a narrower column) resizes the view.
            return names + sum(
                self._badge_widths.get((c, level), 0) if c in BADGE_COLUMNS else width(c)
                for c in shown
            )

        shown, level = optional, 0
        for dropped, level in LAYOUTS:
            shown = [c for c in optional if c not in dropped]
            if needed(shown, level) <= available:
                break
        for column in range(1, len(HEADERS)):
            tree.setColumnHidden(column, column not in shown)
        self._set_badge_texts(level)

    def _badge_cells(self) -> list[tuple[int, QStandardItem]]:
        model = self._model
        if model is None:
            return []
        cells = []
        for name in _rows(model.invisibleRootItem()):
            parent = name.parent() or model.invisibleRootItem()
            for column in BADGE_COLUMNS:
                cell = parent.child(name.row(), column)
                if cell is not None:
                    cells.append((column, cell))
        return cells

    def _set_badge_texts(self, level: int) -> None:
        """Show the badges' texts of `level` (0: the longest)."""
        for _column, cell in self._badge_cells():
            text = cell.data(TextRoles[level])
            if isinstance(text, str) and cell.text() != text:
                cell.setText(text)

    def _measure_badges(self) -> dict[tuple[int, int], int]:
        metrics = QFontMetrics(badge_font(self.tree.font()))
        header = self.tree.header()
        widths = {
            (column, level): header.sectionSizeHint(column)
            for column in BADGE_COLUMNS
            for level in range(len(TextRoles))
        }
        for column, cell in self._badge_cells():
            for level, role in enumerate(TextRoles):
                text = cell.data(role)
                if isinstance(text, str) and text:
                    width = badge_size(metrics, text).width() + 2 * CELL_MARGIN
                    widths[column, level] = max(widths[column, level], width)
        return widths

    @property
    def model(self) -> QStandardItemModel | None:
        return self._model

    def selected_target(self) -> object:
        """The GgufModel or RepoFile of the selected row, if any."""
        index = self.tree.currentIndex()
        return index.siblingAtColumn(0).data(TargetRole) if index.isValid() else None

    def _selected_paths(self) -> tuple[str, ...]:
        index = self.tree.currentIndex()
        paths = index.siblingAtColumn(0).data(PathsRole) if index.isValid() else None
        return paths if isinstance(paths, tuple) else ()

    def is_downloaded(self, paths: tuple[str, ...]) -> bool:
        return bool(paths) and all(path in self._local_paths for path in paths)

    def _selection_changed(self) -> None:
        self._update_buttons()

    def _update_buttons(self) -> None:
        from app.hub.repo_files import GgufModel

        target = self.selected_target()
        have = self.is_downloaded(self._selected_paths())
        self.download_button.setEnabled(target is not None and not have)
        self.download_button.setToolTip("Already downloaded" if have else "")
        self._local_gguf = None
        self.chat_button.hide()
        details = self._details
        if (
            have
            and isinstance(target, GgufModel)
            and not target.is_projector
            and details is not None
            and self.cache_dir is not None
            and details.sha
        ):
            from app.downloads.cache import snapshot_folder

            folder = snapshot_folder(self.cache_dir(), details.repo_id, details.sha)
            self._local_gguf = folder / target.parts[0].path
            self.chat_button.show()

    def check_downloaded(self) -> None:
        """Mark the files that are in the cache (after a download completed, or from before)
        "downloaded ✓"; the look on disk runs on a worker."""
        details = self._details
        if details is None or not details.sha or self.cache_dir is None:
            self._update_buttons()
            return
        spawn(self._find_local(details, self.cache_dir))

    async def _find_local(self, details: ModelDetails, cache_dir: Callable[[], Path]) -> None:
        from app.downloads.cache import snapshot_folder

        def find() -> frozenset[str]:
            folder = snapshot_folder(cache_dir(), details.repo_id, details.sha or "")
            if not folder.is_dir():
                return frozenset()
            return frozenset(file.path for file in details.files if (folder / file.path).is_file())

        try:
            local = await run_blocking(find)
        except (AppError, OSError):
            return  # a malformed id or an unreadable cache: nothing is marked, Download works
        if self._details is not details or self._model is None:
            return  # another model was opened meanwhile
        self._local_paths = local
        model = self._model
        for name in _rows(model.invisibleRootItem()):
            paths = name.data(PathsRole)
            have = isinstance(paths, tuple) and self.is_downloaded(paths)
            parent = name.parent() or model.invisibleRootItem()
            cell = parent.child(name.row(), LOCAL)
            if cell is not None:
                for role, text in zip(TextRoles, LOCAL_TEXTS, strict=True):
                    cell.setData(text if have else "", role)
                cell.setText(DOWNLOADED if have else "")
                cell.setData(Tone.GOOD if have else None, ToneRole)
                cell.setToolTip(tooltip_html("In the local model cache" if have else ""))
        self._hide_empty_columns()
        self._update_buttons()
        await self._check_own(details, cache_dir, local)

    async def _check_own(
        self, details: ModelDetails, cache_dir: Callable[[], Path], local: frozenset[str]
    ) -> None:
        """ModelDeck's own header check of the files on disk, added to their Scan badges."""
        from app.downloads.cache import snapshot_folder
        from app.library.own_check import checks_file, own_check

        def check() -> dict[str, OwnCheck]:
            folder = snapshot_folder(cache_dir(), details.repo_id, details.sha or "")
            return {path: own_check(folder / path) for path in sorted(local) if checks_file(path)}

        if not any(checks_file(path) for path in local):
            return
        try:
            checks = await run_blocking(check)
        except (AppError, OSError):
            return
        if self._details is not details or self._model is None:
            return
        model = self._model
        for name in _rows(model.invisibleRootItem()):
            paths = name.data(PathsRole)
            own = [checks[path] for path in paths or () if path in checks]
            parent = name.parent() or model.invisibleRootItem()
            cell = parent.child(name.row(), SCAN)
            scan = cell.data(ScanRole) if cell is not None else None
            if own and cell is not None and isinstance(scan, FileScan):
                set_scan(cell, scan, max(own, key=lambda item: item.level.rank))
        self._hide_empty_columns()

    def _chat_clicked(self) -> None:
        if self._local_gguf is not None:
            self.chatRequested.emit(self._local_gguf)

    def _download_selected(self) -> None:
        from app.downloads import plan_files, plan_gguf
        from app.hub.repo_files import GgufModel

        target = self.selected_target()
        if self._details is None or target is None:
            return
        if self._details.sha is None and self._selected_paths():
            self.filesRequested.emit(self._details, self._selected_paths())
            return
        try:
            if isinstance(target, GgufModel):
                plan = plan_gguf(self._details, target)
            else:
                plan = plan_files(self._details, [getattr(target, "path", "")])
        except (AppError, ValueError) as exc:
            self._say(str(exc))
            return
        self._request_download(plan)

    def _request_download(self, plan: DownloadPlan) -> None:
        """Download `plan`, after a second "yes" when the hub flagged one of its files."""
        details = self._details
        security = details.security if details is not None else None
        flagged = flagged_files(security, [file.path for file in plan.files])
        if not flagged:
            self.downloadRequested.emit(plan)
            return
        spawn(self._confirm_flagged(plan, flagged))

    async def _confirm_flagged(
        self, plan: DownloadPlan, flagged: list[tuple[str, FileScan]]
    ) -> None:
        path, scan = flagged[0]
        others = f" (and {len(flagged) - 1} more)" if len(flagged) > 1 else ""
        box = confirmation_box(
            self,
            "Download a flagged file?",
            f"The hub's security scan flagged {path}{others} as {scan.level.value}: "
            f"{scan.finding}\n\nA flagged file may harm this computer if a program loads it. "
            "Download it anyway?",
            action="Download anyway",
        )
        self.asking = box
        try:
            confirmed = await ask(box)
        finally:
            self.asking = None
        if confirmed and self._details is not None and self._details.repo_id == plan.repo_id:
            self.downloadRequested.emit(plan)

    # -- diffusers pipelines -----------------------------------------------------------------

    def _variant_changed(self) -> None:
        self._safetensors_fallback = False
        self._check_pipeline()

    def _check_pipeline(self) -> None:
        """Say before the download when the chosen variant has pickle-only components."""
        self._check = None
        self.pipeline_notice.hide()
        self.safetensors_button.hide()
        details = self._details
        if details is None or not self._is_pipeline:
            return
        # Imported here, for pipelines only: the download package costs ~25 ms to import,
        # a stall when a model first opens (the app's start imports it on a worker anyway).
        from app.downloads.plan import check_pipeline

        variant = self.variant.currentData()
        try:
            check = check_pipeline(details, variant)
        except AppError as exc:
            self.pipeline_note.setText(clip(str(exc), LONG_CHARS))
            self.pipeline_notice.show()
            return
        self._check = check
        if check.runs:
            return
        names = ", ".join(check.pickle_components)
        chosen = variant or "the default weights"
        if self._safetensors_fallback:
            self.pipeline_note.setText(
                clip(
                    f"Using safetensors: {names} will come from the default weights "
                    f"({chosen} has only pickles there).",
                    LONG_CHARS,
                )
            )
            self.pipeline_notice.show()
            return
        text = (
            f"In {chosen}, {names} {'has' if len(check.pickle_components) == 1 else 'have'} "
            "only pickle weights (.bin), which ModelDeck does not load (a pickle can run code): "
            "this pipeline would download but not run."
        )
        alternative = check.alternative
        if alternative is None:
            text += " The repository has no safetensors weights for it."
        else:
            other, fallback = alternative
            if fallback and other == variant:
                text += f" Its default weights have safetensors for {names}."
            else:
                text += f" {other or 'The default weights'} has safetensors everywhere."
            self.safetensors_button.show()
        self.pipeline_note.setText(clip(text, LONG_CHARS))
        self.pipeline_notice.show()

    def _use_safetensors(self) -> None:
        check = self._check
        if check is None or check.alternative is None:
            return
        variant, fallback = check.alternative
        index = self.variant.findData(variant)
        if index >= 0 and index != self.variant.currentIndex():
            self.variant.setCurrentIndex(index)  # checks again, with no fallback
        self._safetensors_fallback = fallback
        self._check_pipeline()

    def _download_pipeline(self) -> None:
        from app.downloads import plan_diffusers

        if self._details is None:
            return
        try:
            plan = plan_diffusers(
                self._details,
                self.variant.currentData(),
                safetensors_fallback=self._safetensors_fallback,
            )
        except (AppError, ValueError) as exc:
            self._say(str(exc))
            return
        self._request_download(plan)

    def _say(self, text: str) -> None:
        self.problem.setText(clip(text, LONG_CHARS))
        mark_error(self.problem, True)

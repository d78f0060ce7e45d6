"""Civitai's part of Settings: NSFW shown or not, the models folder and its layout, the API key.

The settings are `app.hub.civitai.settings.CivitaiSettings` (stored in the app database) and
the key is kept like the Hugging Face token (the OS keyring, or a private file). Reading the
keyring may block, so it happens on a worker when the box is first shown.
"""

from __future__ import annotations

from PySide6.QtCore import Signal
from PySide6.QtGui import QShowEvent
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QFileDialog,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLineEdit,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from app.core import Core
from app.errors import AppError
from app.hub.civitai.credentials import CivitaiTokenStore, civitai_token_store
from app.hub.civitai.settings import (
    CivitaiSettings,
    FolderKind,
    FolderLayout,
    load_civitai_settings,
    save_civitai_settings,
)
from app.hub.credentials import TokenSource
from ui.icons import themed_icon
from ui.style import mark_error
from ui.tasks import run_blocking, spawn
from ui.widgets import plain_label

_LAYOUT_LABELS = {
    FolderLayout.COMFYUI: "ModelDeck / ComfyUI (checkpoints, loras, vae, embeddings)",
    FolderLayout.A1111: "AUTOMATIC1111 / Forge (Stable-diffusion, Lora, VAE, ../embeddings)",
}


class CivitaiSettingsBox(QGroupBox):
    """Edits `CivitaiSettings` and the Civitai API key; `changed` after a save."""

    changed = Signal()

    def __init__(self, core: Core, parent: QWidget | None = None) -> None:
        super().__init__("Civitai", parent)
        self._core = core
        self._tokens: CivitaiTokenStore = civitai_token_store(core.database.path.parent)
        settings = load_civitai_settings(core.database)
        self._status_shown = False

        self.show_nsfw = QCheckBox("Show NSFW models (off: they are neither listed nor shown)")
        self.show_nsfw.setChecked(settings.show_nsfw)
        self.models_dir = QLineEdit(settings.models_dir or "")
        self.models_dir.setPlaceholderText(f"default: {CivitaiSettings().resolved_models_dir()}")
        self.models_dir.setAccessibleName("Civitai models folder")
        choose = QPushButton(themed_icon("folder"), "Choose…")
        self.layout_choice = QComboBox()
        for layout, label in _LAYOUT_LABELS.items():
            self.layout_choice.addItem(label, layout.value)
        self.layout_choice.setCurrentIndex(self.layout_choice.findData(settings.layout.value))
        self.layout_choice.setAccessibleName("Folder layout")
        self.folders = plain_label(word_wrap=True, selectable=True, shrinkable=True)
        self.key = QLineEdit()
        self.key.setEchoMode(QLineEdit.EchoMode.Password)
        self.key.setPlaceholderText("a Civitai API key (for files whose creators require sign-in)")
        self.key.setAccessibleName("Civitai API key")
        self.save_key_button = QPushButton(themed_icon("key"), "Save key")
        self.forget_key_button = QPushButton(themed_icon("delete"), "Forget key")
        self.key_status = plain_label(word_wrap=True, shrinkable=True)
        self.apply_button = QPushButton(themed_icon("save"), "Apply Civitai settings")
        self.feedback = plain_label(word_wrap=True, shrinkable=True)

        folder_row = QHBoxLayout()
        folder_row.addWidget(self.models_dir, 1)
        folder_row.addWidget(choose)
        key_row = QHBoxLayout()
        key_row.addWidget(self.key, 1)
        key_row.addWidget(self.save_key_button)
        key_row.addWidget(self.forget_key_button)
        apply_row = QHBoxLayout()
        apply_row.addWidget(self.apply_button)
        apply_row.addWidget(self.feedback, 1)
        # A field and the lines that explain it share one row (as on the rest of the page):
        # QFormLayout gives a wrapped label of its own row too much height.
        layout_box = QVBoxLayout()
        layout_box.addWidget(self.layout_choice)
        layout_box.addWidget(self.folders)
        key_box = QVBoxLayout()
        key_box.addLayout(key_row)
        key_box.addWidget(self.key_status)
        form = QFormLayout(self)
        form.addRow("Content", self.show_nsfw)
        form.addRow("Models folder", folder_row)
        form.addRow("Layout", layout_box)
        form.addRow("API key", key_box)
        form.addRow(apply_row)
        self._show_folders(settings)

        choose.clicked.connect(self._choose_folder)
        self.apply_button.clicked.connect(self.apply)
        self.save_key_button.clicked.connect(self._save_key_clicked)
        self.forget_key_button.clicked.connect(self._forget_key_clicked)

    def showEvent(self, event: QShowEvent) -> None:
        super().showEvent(event)
        if not self._status_shown:
            self._status_shown = True
            spawn(self._show_key_status())

    def chosen(self) -> CivitaiSettings:
        """The settings as the fields show them."""
        return CivitaiSettings(
            show_nsfw=self.show_nsfw.isChecked(),
            models_dir=self.models_dir.text().strip() or None,
            layout=FolderLayout(self.layout_choice.currentData()),
        )

    def apply(self) -> None:
        spawn(self._apply())

    async def _apply(self) -> None:
        chosen = self.chosen()
        database = self._core.database
        try:
            await run_blocking(save_civitai_settings, database, chosen)
        except AppError as exc:
            self._say(str(exc), error=True)
            return
        saved = await run_blocking(load_civitai_settings, database)
        self._show_folders(saved)
        self._say("Saved. " + ("NSFW models are shown." if saved.show_nsfw else "NSFW is hidden."))
        self._core.models.refresh()  # the library lists the models folder
        self.changed.emit()

    def _show_folders(self, settings: CivitaiSettings) -> None:
        kinds = (FolderKind.CHECKPOINTS, FolderKind.LORA, FolderKind.VAE, FolderKind.EMBEDDINGS)
        self.folders.setText(
            "\n".join(f"{kind.value}: {settings.folder_for(kind)}" for kind in kinds)
        )

    def _choose_folder(self) -> None:
        folder = QFileDialog.getExistingDirectory(
            self, "Civitai models folder", self.models_dir.text()
        )
        if folder:
            self.models_dir.setText(folder)

    def _save_key_clicked(self) -> None:
        spawn(self._save_key(self.key.text()))

    def _forget_key_clicked(self) -> None:
        spawn(self._save_key(""))

    async def _save_key(self, key: str) -> None:
        try:
            where = await run_blocking(self._tokens.save, key)
        except Exception as exc:  # the keyring backends raise their own error types
            self._say(f"The key could not be saved: {type(exc).__name__}", error=True)
            return
        self.key.clear()
        if not key.strip():
            self._say("Civitai key forgotten.")
        elif where is TokenSource.APP_FILE:
            self._say(
                "No system keyring was found, so the key is kept in a file only you can read: "
                f"{self._tokens.fallback_file}"
            )
        else:
            self._say("Civitai key saved in the system keyring.")
        await self._show_key_status()
        self.changed.emit()

    async def _show_key_status(self) -> None:
        value, source = await run_blocking(self._tokens.resolve)
        self.key_status.setText(
            f"A key is in use, from {source.value}."
            if value
            else "No key: files whose creators require sign-in cannot be downloaded "
            "(CIVITAI_TOKEN is honoured too)."
        )

    def _say(self, text: str, *, error: bool = False) -> None:
        self.feedback.setText(text)
        mark_error(self.feedback, error)

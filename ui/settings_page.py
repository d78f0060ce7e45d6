"""Settings: the hub endpoint, the access token, data folders and the default context length."""

from __future__ import annotations

from PySide6.QtCore import Qt, QUrl, Signal
from PySide6.QtGui import QDesktopServices, QShowEvent
from PySide6.QtWidgets import (
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLineEdit,
    QMessageBox,
    QPushButton,
    QScrollArea,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from app import paths
from app.core import Core
from app.errors import AppError
from app.hub.credentials import ResolvedToken, TokenSource
from app.hub.endpoint import (
    DEFAULT_ENDPOINT,
    EndpointOrigin,
    choose_endpoint,
    may_carry_token,
    same_endpoint,
)
from ui import theme
from ui.civitai_settings import CivitaiSettingsBox
from ui.confirm import ask, confirmation_box
from ui.icons import themed_icon
from ui.style import make_notice, mark_error
from ui.tasks import run_blocking, spawn
from ui.widgets import heading_label, plain_label


class SettingsPage(QWidget):
    """Edits `Core` settings; emits `hubChanged` when what Discover talks to has changed."""

    hubChanged = Signal()

    def __init__(self, core: Core, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._core = core
        self.asking: QMessageBox | None = None  # the confirmation on screen, if any

        self.endpoint = QLineEdit(core.settings.hub_endpoint or "")
        self.endpoint.setAccessibleName("Hub endpoint")
        self.endpoint.setPlaceholderText(
            f"empty: HF_ENDPOINT, else {DEFAULT_ENDPOINT}  (now: {core.endpoint})"
        )
        # Which endpoint wins (--endpoint, the saved one, HF_ENDPOINT) and why: plain text,
        # it quotes URLs from the command line and the environment.
        self.endpoint_source = plain_label(word_wrap=True)
        self.endpoint_source.setAccessibleName("Which endpoint is used")
        self.token = QLineEdit()
        self.token.setEchoMode(QLineEdit.EchoMode.Password)
        self.token.setPlaceholderText("hf_…  (a read token is enough)")
        self.token.setAccessibleName("Access token")
        self.save_token_button = QPushButton(themed_icon("key"), "Save token")
        self.clear_token_button = QPushButton(themed_icon("delete"), "Forget token")
        # Texts that quote the endpoint, paths and the hub's answers: plain text, never HTML.
        self.token_status = plain_label(word_wrap=True)
        # Which endpoint the saved token goes to: the one it was saved for, and only that one.
        self.token_binding = plain_label(word_wrap=True, shrinkable=True)
        self.keep_token_button = QPushButton()
        # Shown when the saved token belongs to another endpoint.
        self.cache_dir = QLineEdit(core.settings.hf_cache_dir or "")
        self.cache_dir.setPlaceholderText(
            f"default: {paths.hf_cache_dir()} (shared with other tools)"
        )
        browse = QPushButton(themed_icon("folder"), "Choose…")
        self.data_dir = plain_label(str(core.database.path.parent), selectable=True)
        self.context_length = QSpinBox()
        self.context_length.setRange(256, 1_048_576)
        self.context_length.setSingleStep(1024)
        self.context_length.setValue(core.settings.default_context_length)
        self.context_length.setMaximumWidth(160)
        self.apply_button = QPushButton(themed_icon("save"), "Apply")
        self.feedback = plain_label(word_wrap=True, shrinkable=True)

        token_row = QHBoxLayout()
        token_row.addWidget(self.token, 1)
        token_row.addWidget(self.save_token_button)
        token_row.addWidget(self.clear_token_button)
        cache_row = QHBoxLayout()
        cache_row.addWidget(self.cache_dir, 1)
        cache_row.addWidget(browse)
        open_cache = QPushButton(themed_icon("open"), "Open")
        cache_row.addWidget(open_cache)
        data_row = QHBoxLayout()
        data_row.addWidget(self.data_dir, 1)
        open_data = QPushButton(themed_icon("open"), "Open")
        data_row.addWidget(open_data)

        # A field and the lines that explain it share one row: QFormLayout gives a wrapped
        # label of its own row the height of a much narrower one, leaving gaps.
        endpoint_box = QVBoxLayout()
        endpoint_box.addWidget(self.endpoint)
        endpoint_box.addWidget(self.endpoint_source)
        token_box = QVBoxLayout()
        token_box.addLayout(token_row)
        for widget in (self.token_binding, self.keep_token_button, self.token_status):
            token_box.addWidget(widget)
        self.keep_token_button.hide()
        self.form = form = QFormLayout()
        form.addRow("Hub endpoint", endpoint_box)
        form.addRow("Access token", token_box)
        form.addRow("Model cache (HF cache)", cache_row)
        form.addRow("App data", data_row)
        form.addRow("Context length for fit estimates", self.context_length)
        # The page scrolls: with Civitai's settings it is taller than a 600-pixel window.
        content = QWidget()
        scroll = QScrollArea()
        scroll.setWidgetResizable(True)
        scroll.setFrameShape(QScrollArea.Shape.NoFrame)
        scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        outer = QVBoxLayout(self)
        outer.setContentsMargins(0, 0, 0, 0)
        outer.addWidget(scroll)
        layout = QVBoxLayout(content)
        layout.setContentsMargins(*(theme.PAGE_MARGIN,) * 4)
        layout.setSpacing(theme.SPACING)
        layout.addWidget(heading_label("Settings"))
        layout.addLayout(form)
        buttons = QHBoxLayout()
        buttons.addWidget(self.apply_button)
        buttons.addWidget(self.feedback, 1)
        layout.addLayout(buttons)
        # Civitai's settings (NSFW, models folder, API key) are saved by their own button.
        self.civitai = CivitaiSettingsBox(core)
        self.civitai.changed.connect(self.hubChanged)  # Discover searches Civitai again
        layout.addWidget(self.civitai)
        layout.addStretch(1)
        scroll.setWidget(content)

        self.apply_button.clicked.connect(self.apply)
        self.endpoint.returnPressed.connect(self.apply)
        # Bound methods, not lambdas: PySide tracks them weakly, so the page can be torn down.
        self.save_token_button.clicked.connect(self._save_token_clicked)
        self.clear_token_button.clicked.connect(self._forget_token_clicked)
        self.keep_token_button.clicked.connect(self._keep_token_clicked)
        browse.clicked.connect(self._choose_cache_dir)
        open_cache.clicked.connect(self._open_cache_dir)
        open_data.clicked.connect(self._open_data_dir)
        self._show_endpoint_source()

    def _show_endpoint_source(self) -> None:
        choice = choose_endpoint(self._core.settings.hub_endpoint, in_use=self._core.endpoint)
        self.endpoint_source.setText(choice.explanation)
        # An override is worth a glance: the field does not show what is in use then. (It
        # lasts the whole run, so the band never has to come off.)
        if choice.origin is EndpointOrigin.OVERRIDE and not self.endpoint_source.property("notice"):
            make_notice(self.endpoint_source)

    def showEvent(self, event: QShowEvent) -> None:
        # Reading the keyring may block: do it when the page is first looked at, off-thread.
        super().showEvent(event)
        spawn(self._show_token_status())

    def apply(self) -> None:
        """Validate and store the endpoint, cache folder and context length."""
        spawn(self._apply())

    async def _apply(self) -> None:
        changes = {
            "hub_endpoint": self.endpoint.text().strip() or None,
            "hf_cache_dir": self.cache_dir.text().strip() or None,
            "default_context_length": self.context_length.value(),
        }
        try:
            # On a worker: a new endpoint or cache folder restarts the download queue, which
            # waits for its transfers to stop.
            settings = await run_blocking(lambda: self._core.update_settings(**changes))
        except AppError as exc:
            self._say(str(exc), error=True)
            return
        self.endpoint.setText(settings.hub_endpoint or "")
        self._show_endpoint_source()
        choice = choose_endpoint(settings.hub_endpoint, in_use=self._core.endpoint)
        if choice.origin is EndpointOrigin.OVERRIDE:
            self._say(f"Saved. This run still uses {choice.url} (--endpoint).")
        else:
            self._say(f"Saved. Using {self._core.endpoint}.")
        await self._show_token_status()  # a token is bound to its endpoint
        self.hubChanged.emit()

    def _save_token_clicked(self) -> None:
        spawn(self._save_token(self.token.text()))

    def _forget_token_clicked(self) -> None:
        spawn(self._forget_token())

    async def _forget_token(self) -> None:
        """Forgetting cannot be undone (the token has to be made again on the hub): ask, with
        "Keep it" as the answer Enter and Esc give."""
        self.asking = confirmation_box(
            self,
            "Forget token",
            f"Forget the access token saved for {self._core.endpoint}? Gated and private "
            "models will need a new one.",
            action="Forget token",
            keep="Keep it",
        )
        try:
            if not await ask(self.asking):
                self._say("The token is kept.")
                return
        finally:
            self.asking = None
        await self._save_token("")

    def _keep_token_clicked(self) -> None:
        spawn(self._keep_token())

    def _open_cache_dir(self) -> None:
        folder = self.cache_dir.text().strip() or str(paths.hf_cache_dir())
        QDesktopServices.openUrl(QUrl.fromLocalFile(folder))

    def _open_data_dir(self) -> None:
        QDesktopServices.openUrl(QUrl.fromLocalFile(self.data_dir.text()))

    async def _save_token(self, token: str) -> None:
        try:
            where = await run_blocking(self._core.save_token, token)
        except Exception as exc:  # the keyring backends raise their own error types
            self._say(f"The token could not be saved: {type(exc).__name__}", error=True)
            return
        self.token.clear()
        self._say("Token saved." if token.strip() else "Token forgotten.")
        if where is TokenSource.APP_FILE and token.strip():
            self._say(
                "No system keyring was found, so the token is kept in a file only you can "
                f"read: {self._core.tokens.fallback_file}"
            )
        await self._show_token_status()
        self.hubChanged.emit()

    async def _keep_token(self) -> None:
        try:
            await run_blocking(self._core.keep_token_for_endpoint)
        except Exception as exc:  # the keyring backends raise their own error types
            self._say(f"The token could not be kept: {type(exc).__name__}", error=True)
            return
        self._say(f"The saved token now goes to {self._core.endpoint}.")
        await self._show_token_status()
        self.hubChanged.emit()

    async def _show_token_status(self) -> None:
        core = self._core

        def read() -> tuple[ResolvedToken, str | None]:
            saved = core.tokens.saved()  # the endpoint only: the value stays on the worker
            return core.token, saved.endpoint if saved else None

        resolved, saved_for = await run_blocking(read)
        endpoint = core.endpoint
        self.token_binding.setText(token_binding_text(endpoint, saved_for))
        elsewhere = saved_for is not None and not same_endpoint(saved_for, endpoint)
        self.keep_token_button.setText(f"Keep the saved token for {endpoint}")
        self.keep_token_button.setVisible(elsewhere)
        if resolved.value:
            self.token_status.setText(f"A token is in use, from {resolved.source.value}.")
        else:
            self.token_status.setText(
                "No token: public models only. Gated and private models need one "
                "(HF_TOKEN and `hf auth login` are honoured too)."
            )

    def _choose_cache_dir(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Model cache folder", self.cache_dir.text())
        if folder:
            self.cache_dir.setText(folder)

    def _say(self, text: str, *, error: bool = False) -> None:
        self.feedback.setText(text)
        mark_error(self.feedback, error)


def token_binding_text(endpoint: str, saved_for: str | None) -> str:
    """The line under the token field: which endpoint the saved token goes to, and the rule
    that no token goes over plain http to another machine.

    Args:
        endpoint: the endpoint in use.
        saved_for: the endpoint the saved token belongs to; None: no token is saved.
    """
    never = "A token is never sent over plain http to another machine."
    if saved_for is None:
        text = f"A token saved here is bound to {endpoint} and sent only there. {never}"
    elif same_endpoint(saved_for, endpoint):
        text = f"The saved token is bound to {saved_for} and sent only there. {never}"
    else:
        text = f"The saved token belongs to {saved_for}, so it is not sent to {endpoint}. {never}"
    if not may_carry_token(endpoint):
        text += f" {endpoint} is plain http to another machine: no token goes there."
    return text

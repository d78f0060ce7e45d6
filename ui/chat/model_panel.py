"""The right-hand panel: which model answers (a local GGUF, or a remote endpoint), how it is
loaded, the system prompt, sampling, and the chat template. Its `bar` (picker, Load, Unload,
status) is shown by the page above the conversation; the panel itself folds away.

Loading plans first (`plan_load`: the context clamped to the model, GPU layers chosen, a model
that cannot fit refused) and then loads in the engine's child process, all off the GUI thread.
Settings are remembered per model (`ConversationStore.save_preset`, keyed by
`ModelRef.preset_key`) and come back when that model is picked again. Which engine answers is
the `ChatController`'s to keep: this panel shows it and tells the controller what was chosen.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtWidgets import (
    QCheckBox,
    QFileDialog,
    QGroupBox,
    QPlainTextEdit,
    QPushButton,
    QScrollArea,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from app.chat.controller import Answerer, ChatController
from app.core import Core
from app.errors import AppError
from ui.badges import Tone
from ui.chat.load_form import LoadForm, LoadOptions, PickedModel
from ui.chat.model_bar import ModelBar
from ui.chat.remote_form import RemoteForm
from ui.chat.sampling_form import SamplingForm
from ui.chat.server_panel import ServerPanel
from ui.chat.template_picker import TemplatePicker
from ui.library_model import GgufChatModels, LibraryModel
from ui.style import make_notice, mark_error, set_font
from ui.tasks import run_blocking, spawn
from ui.widgets import LONG_CHARS, PlainLabel, clip, let_shrink

if TYPE_CHECKING:
    from app.chat.conversations import ModelRef
    from app.chat.load_plan import LoadPlan
    from app.chat.local import LocalChatEngine
    from app.chat.remote import RemoteEndpoint
    from app.chat.session import ChatEngine
    from app.llm.engine import LoadedModel
    from app.llm.messages import LoadSettings

PANEL_WIDTH = 340
REMOTE_SETTING = "chat.remote_endpoint"  # the last endpoint used: {"url", "model"}
REMOTE_TEST_TIMEOUT_S = 10.0


def _section(title: str, *widgets: QWidget) -> QGroupBox:
    box = QGroupBox(title)
    layout = QVBoxLayout(box)
    for widget in widgets:
        layout.addWidget(widget)
    return box


def describe_load(name: str, loaded: LoadedModel) -> str:
    """One line after a load: where the layers went, the context, how long it took."""
    trained = loaded.trained_context_length
    context = f"context {loaded.context_length:,}"
    if trained and trained != loaded.context_length:
        context += f" (trained {trained:,})"
    return f"{name}: {loaded.placement} · {context} · loaded in {loaded.load_seconds:.2f} s"


class ModelPanel(QScrollArea):
    """Picks, loads and configures the model the chat talks to.

    Args:
        core: the core.
        models: the library's models as the window shares them (default: a model of this
            panel's own over `core.models`); the picker lists its GGUF chat models.
        controller: the chat's controller, shared with the Chat page (default: one of this
            panel's own over the core's conversations and local engine).
    """

    engineChanged = Signal(object)  # the ChatEngine that answers from now on
    loadFinished = Signal(bool)  # after each load attempt: whether a model is loaded
    unloaded = Signal()  # after Unload
    remoteChecked = Signal(bool)  # after "Test connection": whether the server answered
    modelsListed = Signal(int)  # GGUF models listed, after each refresh of the library
    presetApplied = Signal()  # after a picked model's saved settings were looked up (and shown)
    promptRequested = Signal()

    def __init__(
        self,
        core: Core,
        models: LibraryModel | None = None,
        parent: QWidget | None = None,
        *,
        controller: ChatController | None = None,
    ) -> None:
        super().__init__(parent)
        self._core = core
        self.controller = controller or ChatController(lambda: core.conversations, lambda: core.llm)
        self.library = models if models is not None else LibraryModel(core.models, self)
        self.chat_models = GgufChatModels(self.library, self)

        self.active_label = PlainLabel("No model yet: pick one and press Load.")
        let_shrink(self.active_label)  # names a model from its file's metadata
        self.active_label.setWordWrap(True)
        set_font(self.active_label, bold=True)

        self.load_form = LoadForm()
        self.load_button = QPushButton("Load")
        self.load_button.setToolTip("Load the picked model with the settings in the panel")
        self.bar = ModelBar(self.load_form.model, self.load_form.open_button, self.load_button)
        self.busy = self.bar.busy
        self.load_status = PlainLabel()
        let_shrink(self.load_status)
        self.load_status.setWordWrap(True)
        self.load_status.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.notes = PlainLabel()
        self.notes.setWordWrap(True)
        make_notice(self.notes)
        self.notes.hide()
        local = QWidget()
        local_layout = QVBoxLayout(local)
        local_layout.addWidget(self.load_form)
        local_layout.addWidget(self.load_status)
        local_layout.addWidget(self.notes)
        local_layout.addStretch(1)

        self.remote_form = RemoteForm()
        last = core.database.get_setting(REMOTE_SETTING)
        if isinstance(last, dict):
            self.remote_form.url.setText(str(last.get("url", "")))
            self.remote_form.model.setCurrentText(str(last.get("model", "")))
        remote = QWidget()
        remote_layout = QVBoxLayout(remote)
        remote_layout.addWidget(self.remote_form)
        remote_layout.addStretch(1)

        self.source = QTabWidget()
        self.source.addTab(local, "Local model")
        self.source.addTab(remote, "Remote endpoint")

        self.system_prompt = QPlainTextEdit()
        self.system_prompt.setPlaceholderText("How the assistant should behave (this conversation)")
        self.system_prompt.setTabChangesFocus(True)
        self.system_prompt.setMaximumHeight(6 * self.system_prompt.fontMetrics().lineSpacing())
        self.sampling = SamplingForm()
        self.template = TemplatePicker()
        self.prompt_button = QPushButton("Prompt as the model sees it…")
        self.prompt_button.setAccessibleName("Show the prompt as the model sees it")
        self.prompt_button.setEnabled(False)
        self.server_panel = ServerPanel(core)
        self.ctrl_enter = QCheckBox("Ctrl+Enter sends (Enter adds a line)")
        self.ctrl_enter.setToolTip("Off: Enter sends and Shift+Enter adds a line")
        self.ctrl_enter.setChecked(core.settings.chat_send_with_ctrl_enter)

        content = QWidget()
        layout = QVBoxLayout(content)
        layout.addWidget(self.active_label)
        layout.addWidget(_section("Model", self.source))
        layout.addWidget(self.server_panel)
        layout.addWidget(_section("System prompt", self.system_prompt))
        layout.addWidget(_section("Sampling", self.sampling))
        layout.addWidget(_section("Chat template", self.template, self.prompt_button))
        layout.addWidget(_section("Keyboard", self.ctrl_enter))
        layout.addStretch(1)
        self.setWidget(content)
        self.setWidgetResizable(True)
        self.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        # Wide enough for every field beside the vertical scroll bar: nothing is cut off.
        needed = (
            content.minimumSizeHint().width()
            + self.verticalScrollBar().sizeHint().width()
            + 2 * self.frameWidth()
        )
        self.setMinimumWidth(max(PANEL_WIDTH, needed))
        self.setMaximumWidth(max(PANEL_WIDTH, needed) + 200)

        self.load_button.clicked.connect(self.load)
        self.bar.unload_button.clicked.connect(lambda: spawn(self._unload()))
        self.load_form.openFileRequested.connect(self.choose_file)
        self.load_form.modelPicked.connect(self._model_picked)
        self.remote_form.testRequested.connect(lambda: spawn(self._test_remote()))
        self.remote_form.useRequested.connect(lambda: spawn(self._use_remote()))
        self.template.changed.connect(self._apply_template)
        self.prompt_button.clicked.connect(self.promptRequested)
        self.loadFinished.connect(
            lambda _ok: self.server_panel.set_model_loaded(self.controller.local_model is not None)
        )
        self.server_panel.expandedChanged.connect(self._server_panel_toggled)
        self.library.refreshed.connect(self._list_models)
        self.library.refreshFailed.connect(lambda text: self._say(text, error=True))
        self.refresh_models()

    # -- what the chat uses --------------------------------------------------------------

    @property
    def engine(self) -> ChatEngine | None:
        """The engine that answers: the loaded local model, or the remote endpoint in use."""
        return self.controller.engine

    @property
    def local_engine(self) -> LocalChatEngine | None:
        """The local engine, when a local model answers."""
        return self.controller.local_engine

    def model_ref(self) -> ModelRef | None:
        """What the conversation records as its model."""
        return self.controller.model_ref()

    def load_settings(self) -> LoadSettings | None:
        return self.controller.load_settings()

    def set_busy(self, busy: bool) -> None:
        """While a reply streams, the model cannot change under it."""
        self.load_button.setEnabled(not busy)
        self.bar.unload_button.setEnabled(not busy and self.controller.local_model is not None)
        self.remote_form.use_button.setEnabled(not busy)

    def save_preset(self) -> None:
        """Remember the settings shown for the model in use."""
        ref = self.model_ref()
        if ref is None:
            return
        try:
            preset: dict[str, Any] = {"sampling": self.sampling.to_preset()}
        except ValueError:
            return
        if ref.kind == "local":
            preset["load"] = self.load_form.options().to_preset()
            preset["template"] = self.template.to_preset()
        key = ref.preset_key
        spawn(run_blocking(lambda: self._core.conversations.save_preset(key, preset)))

    def close_engines(self) -> None:
        """Close the remote client (the local engine belongs to the core, which closes it)."""
        self.controller.close()

    # -- local models --------------------------------------------------------------------

    def refresh_models(self) -> None:
        """Scan the library again (on a worker); the picker follows, as every page does."""
        self.library.refresh()

    def pick(self, path: Path) -> None:
        """Pick the GGUF at `path` (listed already, or added)."""
        self.source.setCurrentIndex(0)
        self.load_form.pick(PickedModel.from_path(path))

    def choose_file(self) -> None:
        file, _ = QFileDialog.getOpenFileName(
            self, "Open a GGUF model", "", "GGUF models (*.gguf);;All files (*)"
        )
        if file:
            self.pick(Path(file))

    def load(self) -> None:
        """Plan and load the picked model (on workers); `loadFinished` says how it went."""
        spawn(self._load())

    def _list_models(self) -> None:
        models = [
            model
            for entry in self.chat_models.entries()
            if (model := PickedModel.from_entry(entry)) is not None
        ]
        self.load_form.set_models(models)
        self.modelsListed.emit(len(models))

    def _model_picked(self, model: PickedModel | None) -> None:
        if model is not None:
            spawn(self._apply_preset(model.ref))

    async def _apply_preset(self, ref: ModelRef) -> None:
        preset = await run_blocking(lambda: self._core.conversations.load_preset(ref.preset_key))
        if not preset:
            self.presetApplied.emit()
            return
        load, sampling, template = (preset.get(key) for key in ("load", "sampling", "template"))
        if isinstance(load, dict) and ref.kind == "local":
            self.load_form.apply_preset(load)
        if isinstance(sampling, dict):
            self.sampling.apply_preset(sampling)
        if isinstance(template, dict) and ref.kind == "local":
            self.template.apply_preset(template)
            self._apply_template()
        self.presetApplied.emit()

    async def _load(self) -> None:
        from app.chat.load_problem import explain_load_failure

        model = self.load_form.picked()
        if model is None:
            self._say("Pick a GGUF model first (or open a file).", error=True)
            self.bar.set_status("No model picked", Tone.CAUTION)
            self.loadFinished.emit(False)
            return
        self.bar.problem.clear()
        options = self.load_form.options()
        self._set_loading(True, f"Loading {model.name}…")
        note: str | None = None
        try:
            self.controller.set_template_override(self.template.override())
            engine = await run_blocking(self.controller.local)
            plan = await run_blocking(self._plan, engine, model.path, options)
            # While serving, through the server: its clients hear "loading" meanwhile.
            loaded = await run_blocking(self.server_panel.loader(engine), plan.settings)
            note = await run_blocking(self._template_note, engine)
        except (AppError, RuntimeError, OSError, MemoryError) as exc:
            problem = explain_load_failure(model.name, exc)
            self._set_loading(False, f"Not loaded: {problem.summary}", error=True)
            self.bar.problem.show_problem(problem)
            if self.controller.local_failed():
                self.engineChanged.emit(None)
            self._show_status()
            self.loadFinished.emit(self.engine is not None)
            return
        self._set_loading(False, describe_load(model.name, loaded))
        notes = [*plan.notes, *([note] if note else [])]
        self.notes.setText("\n".join(notes))
        self.notes.setVisible(bool(notes))
        self.controller.use_local(model.ref)
        self._show_answerer(f"Chatting with {model.name} ({loaded.placement})")
        self.save_preset()
        self.loadFinished.emit(True)

    async def _unload(self) -> None:
        """Unload the local model (on a worker): its memory is free, nothing local answers."""
        self._set_loading(True, "Unloading…")
        try:
            changed = await run_blocking(self.controller.unload_local)
        except (AppError, RuntimeError) as exc:
            self._set_loading(False, f"Not unloaded: {exc}", error=True)
            return
        self._set_loading(False, "Unloaded: pick a model and press Load to chat again.")
        self.notes.hide()
        self.server_panel.set_model_loaded(False)
        if changed:
            self.active_label.setText("No model loaded.")
            self.prompt_button.setEnabled(False)
            self.engineChanged.emit(self.engine)
        self._show_status()
        self.unloaded.emit()

    def _plan(self, engine: LocalChatEngine, path: Path, options: LoadOptions) -> LoadPlan:
        """On a worker: the load plan (starting the engine to learn what it can do)."""
        from app.chat.load_plan import plan_load
        from app.hardware import read_machine_memory
        from app.library.projectors import projector_beside

        return plan_load(
            path,
            context_length=options.context_length,
            gpu_layers=options.gpu_layers,
            threads=options.threads,
            kv_cache_type=options.kv_cache_type,
            flash_attention=options.flash_attention,
            capabilities=engine.capabilities(),
            machine=read_machine_memory(),
            projector=projector_beside(path),  # a vision model loads seeing
        )

    @staticmethod
    def _template_note(engine: LocalChatEngine) -> str | None:
        """Why a fallback template is used, or why the override fails (None: all is well)."""
        from app.errors import ChatTemplateError

        try:
            return engine.render([{"role": "user", "content": "Hello"}]).note
        except ChatTemplateError as exc:
            return str(exc)

    def _apply_template(self) -> None:
        self.controller.set_template_override(self.template.override())

    # -- remote endpoints ----------------------------------------------------------------

    async def _test_remote(self) -> None:
        from app.chat.remote import RemoteEngine

        try:
            endpoint = self.remote_form.endpoint()
        except AppError as exc:
            self.remote_form.say(str(exc), error=True)
            self.remoteChecked.emit(False)
            return
        self.remote_form.say(f"Asking {endpoint.base_url}…")
        self.remote_form.test_button.setEnabled(False)
        engine = RemoteEngine(endpoint, timeout=REMOTE_TEST_TIMEOUT_S)
        try:
            models = await run_blocking(engine.list_models)
            line = await run_blocking(engine.check)
        except AppError as exc:
            self.remote_form.say(str(exc), error=True)
            self.remoteChecked.emit(False)
            return
        finally:
            self.remote_form.test_button.setEnabled(True)
            await run_blocking(engine.close)
        self.remote_form.set_models(models)
        self.remote_form.say(line)
        self.remoteChecked.emit(True)

    async def _use_remote(self) -> None:
        try:
            endpoint = self.remote_form.endpoint()
        except AppError as exc:
            self.remote_form.say(str(exc), error=True)
            return
        if not endpoint.model:
            self.remote_form.say(
                "Name the model to ask for (Test connection lists them).", error=True
            )
            return
        endpoint = await run_blocking(lambda: self._remember_endpoint(endpoint))
        await run_blocking(self.controller.use_remote, endpoint)
        self.remote_form.say(f"Replies now come from {endpoint.label}.")
        self._show_answerer(f"Chatting with {endpoint.label} (remote)")
        ref = self.model_ref()
        if ref is not None:
            await self._apply_preset(ref)

    def _remember_endpoint(self, endpoint: RemoteEndpoint) -> RemoteEndpoint:
        """Keep a typed API key in the keyring, or use the one kept for this URL; remember
        the URL and model for the next start (on a worker: the keyring may block)."""
        keys = self._core.endpoint_keys
        if endpoint.api_key:
            keys.save(endpoint.base_url, endpoint.api_key)
        else:
            endpoint = keys.with_key(endpoint)
        self._core.database.set_setting(
            REMOTE_SETTING, {"url": endpoint.base_url, "model": endpoint.model}
        )
        return endpoint

    # -- display -------------------------------------------------------------------------

    def _server_panel_toggled(self, expanded: bool) -> None:
        if expanded:  # once the layout has made room for it
            QTimer.singleShot(0, self, lambda: self.ensureWidgetVisible(self.server_panel))

    def _show_answerer(self, text: str) -> None:
        """Show which engine answers now (the controller was just told) and say so."""
        self.active_label.setText(clip(text, LONG_CHARS))  # quotes a name from a model file
        self.prompt_button.setEnabled(self.controller.answerer is Answerer.LOCAL)
        self.bar.problem.clear()
        self._show_status()
        self.engineChanged.emit(self.engine)

    def _show_status(self) -> None:
        """The bar's badge: what answers now (the full line in its tooltip)."""
        answerer = self.controller.answerer
        loaded = self.controller.local_model
        if answerer is Answerer.REMOTE:
            self.bar.set_status("Remote", Tone.ACCENT, tooltip=self.active_label.text())
        elif answerer is Answerer.LOCAL and loaded is not None:
            place = "GPU" if loaded.gpu_layers_placed else "CPU"
            self.bar.set_status(f"Loaded · {place}", Tone.GOOD, tooltip=self.load_status.text())
        elif self.bar.problem.isVisibleTo(self):
            self.bar.set_status("Load failed", Tone.BAD, tooltip=self.bar.problem.message.text())
        else:
            self.bar.set_status("Not loaded", Tone.NEUTRAL)
        self.bar.unload_button.setEnabled(loaded is not None and self.load_button.isEnabled())

    def _set_loading(self, loading: bool, text: str, *, error: bool = False) -> None:
        self.bar.set_loading(loading)
        self.load_button.setEnabled(not loading)
        self.load_form.setEnabled(not loading)
        for widget in (self.bar.picker, self.bar.open_button, self.bar.unload_button):
            widget.setEnabled(not loading)
        if loading:
            self.notes.hide()
            self.bar.set_status("Loading…", Tone.ACCENT, tooltip=text)
        self._say(text, error=error)

    def _say(self, text: str, *, error: bool = False) -> None:
        self.load_status.setText(clip(text, LONG_CHARS))
        mark_error(self.load_status, error)

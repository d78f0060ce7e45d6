"""Serve on the local API: a switch that puts the loaded model — or, with "Serve the whole
library", every chat model of the library, each loaded when a request names it — behind an
OpenAI-compatible server (`core.server`), where it listens, its URL, its queue, the models
loaded (their memory and idle time), and a log of the requests.

Starting and stopping block (binding, open streams ending), so they run on workers. The
server's thread hands each logged request to a plain deque; the panel's timer drains it and
reads the queue every `POLL_MS` while the server runs, so a burst of requests costs one repaint.
"""

from __future__ import annotations

import collections
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtGui import QFontDatabase, QGuiApplication, QTextBlockFormat, QTextCursor
from PySide6.QtWidgets import (
    QCheckBox,
    QFormLayout,
    QFrame,
    QHBoxLayout,
    QLineEdit,
    QPushButton,
    QSpinBox,
    QTextEdit,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from app.core import Core
from app.errors import AppError
from ui.style import mark_error
from ui.tasks import run_blocking, spawn
from ui.widgets import plain_label

if TYPE_CHECKING:
    from app.chat.local import LocalChatEngine
    from app.llm.engine import LoadedModel
    from app.llm.messages import LoadSettings
    from app.serving import ModelServer, RequestLogEntry
    from app.serving.model_pool import ModelPool, PooledModel

# `app.serving.DEFAULT_HOST` / `DEFAULT_PORT`, repeated: importing app.serving (and the engine
# modules under it) waits until the switch is used.
DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8080
POLL_MS = 250  # how often the queue line and the log catch up while serving
LOG_LINES = 500  # the log panel keeps this many requests
LOG_VISIBLE_LINES = 8
MODELS_EVERY_POLLS = 4  # the loaded-models table reads each engine's memory: once a second
TITLE = "Serve on the local API"
NO_MODEL = "Load a local model to serve it."
NONE_LOADED = "No model loaded yet: a request naming one loads it."
LOADED_TITLE = "Loaded models:"


def format_pooled(model: PooledModel) -> str:
    """Two lines of the loaded-models table, the figures indented under the name:

    Qwen2.5-0.5B-Instruct-GGUF · idle 12 s
      472 MB (estimate 320 MB) · pid 4242
    """
    from app.units import format_bytes

    state = model.state.value
    if model.idle_s is not None:
        state = f"idle {_duration(model.idle_s)}"
    elif model.waiting:
        state += f", {model.waiting} waiting"
    figures = []
    if model.resident_bytes is not None:
        memory = format_bytes(model.resident_bytes)
        if model.estimate_bytes is not None:
            memory += f" (estimate {format_bytes(model.estimate_bytes)})"
        figures.append(memory)
    elif model.estimate_bytes is not None:
        figures.append(f"estimate {format_bytes(model.estimate_bytes)}")
    if model.pid is not None:
        figures.append(f"pid {model.pid}")
    return f"{model.model_id} · {state}\n  " + " · ".join(figures or ["starting"])


def format_pool(models: Sequence[PooledModel]) -> str:
    """The loaded-models table (or a line saying none is loaded yet)."""
    if not models:
        return NONE_LOADED
    return "\n".join([LOADED_TITLE, *(format_pooled(model) for model in models)])


def _duration(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:.0f} s"
    if seconds < 3600:
        return f"{seconds // 60:.0f} min {seconds % 60:.0f} s"
    return f"{seconds // 3600:.0f} h {seconds % 3600 // 60:.0f} min"


def format_entry(entry: RequestLogEntry) -> str:
    """One log line: "14:03:07 POST /v1/chat/completions 200 410 ms 3 tok 127.0.0.1:5123"
    (a number and its unit joined by a no-break space, so a narrow panel wraps between them)."""
    status = str(entry.status) if entry.status else "—"  # the client left before any status
    seconds = entry.duration_s
    duration = f"{seconds * 1000:.0f}\u00a0ms" if seconds < 1 else f"{seconds:.2f}\u00a0s"
    parts = [
        time.strftime("%H:%M:%S", time.localtime(entry.time)),
        entry.method,
        entry.path,
        status,
        duration,
    ]
    if entry.tokens is not None:
        parts.append(f"{entry.tokens}\u00a0tok")
    if entry.outcome and entry.outcome not in ("stop", "length"):
        parts.append(entry.outcome)
    if entry.client:
        parts.append(entry.client)
    return " ".join(parts)


class ServerPanel(QWidget):
    """A collapsible section: the switch, where to listen, and what the server is doing.

    The switch is offered once a local model is loaded (`set_model_loaded`); the model panel
    asks `loader` how to load, so a Load while serving tells API clients "loading" (503).
    """

    switched = Signal(bool)  # after each start or stop attempt: whether the server runs
    expandedChanged = Signal(bool)

    def __init__(self, core: Core, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._core = core
        self._server: ModelServer | None = None
        self._remove_listener: Callable[[], None] | None = None
        # Filled on the server's thread, drained on the GUI thread (deque appends are atomic).
        self._arrived: collections.deque[RequestLogEntry] = collections.deque(maxlen=LOG_LINES)
        self._model_loaded = False
        self._changing = False  # a start or stop is under way

        self.header = QToolButton()
        self.header.setText(TITLE)
        self.header.setArrowType(Qt.ArrowType.RightArrow)
        self.header.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextBesideIcon)
        self.header.setAutoRaise(True)

        self.switch = QCheckBox("Serve this model (OpenAI-compatible API)")
        self.whole_library = QCheckBox("Serve the whole library")
        self.whole_library.setToolTip(
            "Every chat model in the library, by its library name: a request naming one loads "
            "it in an engine of its own. A model is never unloaded while it answers."
        )
        self.max_loaded = QSpinBox()
        self.max_loaded.setRange(0, 64)
        self.max_loaded.setSpecialValueText("as many as fit in memory")
        self.max_loaded.setToolTip(
            "The least recently used idle model is unloaded to make room for another"
        )
        self.idle_unload = QSpinBox()
        self.idle_unload.setRange(0, 7 * 24 * 3600)
        self.idle_unload.setSingleStep(60)
        self.idle_unload.setSuffix(" s")
        self.idle_unload.setSpecialValueText("never")
        self.host = QLineEdit(DEFAULT_HOST)
        self.host.setToolTip(
            "127.0.0.1: this machine only. 0.0.0.0: every network this machine is on "
            "(needs an API key)."
        )
        self.port = QSpinBox()
        self.port.setRange(0, 65535)
        self.port.setValue(DEFAULT_PORT)
        self.port.setSpecialValueText("any free port")
        self.api_key = QLineEdit()
        self.api_key.setEchoMode(QLineEdit.EchoMode.Password)
        self.api_key.setPlaceholderText("needed beyond 127.0.0.1")
        self.api_key.setToolTip("Clients send it as a bearer token (the openai client's api_key)")
        # Saved in the settings when the server starts (modeldeck serve uses them too).
        self.origins = QLineEdit(", ".join(core.settings.api_allowed_origins))
        self.origins.setPlaceholderText("none: no web page may use it")
        self.origins.setToolTip(
            "Web pages that may call the API from a browser, e.g. http://localhost:3000 "
            "(separate several with commas). Pages from anywhere else are refused."
        )
        fields = QFormLayout()
        fields.setContentsMargins(0, 0, 0, 0)
        fields.addRow("Host", self.host)
        fields.addRow("Port", self.port)
        fields.addRow("API key", self.api_key)
        fields.addRow("Web origins", self.origins)
        fields.addRow(self.whole_library)
        fields.addRow("Models loaded", self.max_loaded)
        fields.addRow("Unload idle after", self.idle_unload)

        # Quotes errors and model names: plain text, never HTML.
        self.status = plain_label(word_wrap=True, selectable=True, shrinkable=True)
        self.url = QLineEdit()
        self.url.setReadOnly(True)
        self.url.setToolTip("The base URL for OpenAI clients")
        self.copy_button = QPushButton("Copy")
        self.copy_button.setToolTip("Copy the URL")
        url_row = QWidget()
        url_layout = QHBoxLayout(url_row)
        url_layout.setContentsMargins(0, 0, 0, 0)
        url_layout.addWidget(self.url, 1)
        url_layout.addWidget(self.copy_button)
        self.url_row = url_row
        # Ollama's and Anthropic's clients take the bare root (they add /api/… and /v1/…).
        self.other_urls = plain_label(word_wrap=True, selectable=True, shrinkable=True)
        self.other_urls.setToolTip("The base URLs for Ollama and Anthropic clients")
        self.queue = plain_label()
        # The library's loaded models, one line each (plain text: model names come from files).
        self.loaded_models = plain_label(word_wrap=True, selectable=True, shrinkable=True)
        # A QTextEdit, not a QPlainTextEdit: only it indents the wrapped part of a line.
        self.log = QTextEdit()
        self.log.setReadOnly(True)
        self.log.setAcceptRichText(False)
        self.log.document().setMaximumBlockCount(LOG_LINES)
        self.log.setPlaceholderText("Requests show here.")
        font = QFontDatabase.systemFont(QFontDatabase.SystemFont.FixedFont)
        font.setPointSizeF(max(6.0, self.font().pointSizeF() - 1))
        self.log.setFont(font)
        self.loaded_models.setFont(font)
        indent = self.log.fontMetrics().horizontalAdvance("00:00:00 ")
        self._line_format = QTextBlockFormat()
        self._line_format.setLeftMargin(indent)  # wrapped parts start under the method
        self._line_format.setTextIndent(-indent)
        self.log.setFixedHeight(
            LOG_VISIBLE_LINES * self.log.fontMetrics().lineSpacing() + 2 * self.log.frameWidth() + 8
        )

        self.body = QFrame()
        self.body.setFrameShape(QFrame.Shape.StyledPanel)
        body = QVBoxLayout(self.body)
        body.addWidget(self.switch)
        body.addLayout(fields)
        body.addWidget(self.status)
        body.addWidget(self.url_row)
        body.addWidget(self.other_urls)
        body.addWidget(self.queue)
        body.addWidget(self.loaded_models)
        body.addWidget(self.log)
        self.body.hide()
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(2)
        layout.addWidget(self.header)
        layout.addWidget(self.body)

        self._poll = QTimer(self)
        self._poll.setInterval(POLL_MS)
        self._poll.timeout.connect(self._refresh)
        self._polls = 0

        self.whole_library.toggled.connect(lambda _on: self._update_controls())

        self.header.clicked.connect(lambda: self.set_expanded(not self.expanded))
        self.switch.clicked.connect(self._switch_clicked)
        self.copy_button.clicked.connect(self.copy_url)
        self._show_stopped()

    # -- public --------------------------------------------------------------------------

    @property
    def running(self) -> bool:
        return self._server is not None and self._server.running

    @property
    def expanded(self) -> bool:
        return not self.body.isHidden()

    def set_expanded(self, expanded: bool) -> None:
        """Show or fold away everything under the title."""
        self.header.setArrowType(Qt.ArrowType.DownArrow if expanded else Qt.ArrowType.RightArrow)
        self.body.setVisible(expanded)
        self.expandedChanged.emit(expanded)

    def set_model_loaded(self, loaded: bool) -> None:
        """Offer the switch only while a local model is loaded (it can always be turned off)."""
        self._model_loaded = loaded
        self._update_controls()

    def loader(self, engine: LocalChatEngine) -> Callable[[LoadSettings], LoadedModel]:
        """How a Load goes: through the server while it runs, so its clients are told
        "loading" (503 with Retry-After) instead of waiting on the engine."""
        server = self._server
        if server is not None and server.running and server.served.engine is engine:
            return server.load
        return engine.load

    def copy_url(self) -> None:
        QGuiApplication.clipboard().setText(self.url.text())
        self._say("Copied the URL.")

    def shutdown(self) -> None:
        """The window closes: stop listening (blocks up to a few seconds for open streams)."""
        self._poll.stop()
        if self._remove_listener is not None:
            self._remove_listener()
            self._remove_listener = None
        if self._server is not None:
            self._server.stop(timeout=2.0)

    # -- start and stop ------------------------------------------------------------------

    def _switch_clicked(self, checked: bool) -> None:
        spawn(self._start() if checked else self._stop())

    async def _start(self) -> None:
        from app.serving import UnprotectedBindError
        from app.settings import validate_origins

        host = self.host.text().strip() or DEFAULT_HOST
        port = self.port.value()
        api_key = self.api_key.text().strip() or None
        self._set_changing(True)
        self._say(f"Starting on {host}…")
        try:
            origins = validate_origins(self.origins.text().replace(",", " ").split())
            if origins != self._core.settings.api_allowed_origins:
                await run_blocking(lambda: self._core.update_settings(api_allowed_origins=origins))
            self.origins.setText(", ".join(origins))
            server = await run_blocking(lambda: self._core.server)
            self._listen(server)
            pool = (
                await run_blocking(self._library_pool) if self.whole_library.isChecked() else None
            )
            server.serve_library(pool)
            url = await run_blocking(
                lambda: server.start(host, port, api_key, allowed_origins=origins)
            )
        except UnprotectedBindError as exc:
            self._failed(f"{exc.message} Set an API key, or serve on 127.0.0.1.")
            return
        except (AppError, OSError, ImportError) as exc:
            self._failed(str(exc))
            return
        self._set_changing(False)
        self.switch.setChecked(True)
        self.url.setText(url)
        self.url.setCursorPosition(0)
        self.url_row.show()
        urls = server.api_urls()
        if urls is not None:
            self.other_urls.setText(f"Ollama: {urls.ollama}\nAnthropic: {urls.anthropic}")
            self.other_urls.show()
        everywhere = host in ("0.0.0.0", "::")
        self._say(
            "Listening on every network: other machines use this machine's address."
            if everywhere
            else "Listening. Clients need the API key."
            if api_key
            else "Listening on this machine only."
        )
        if pool is not None:
            count = len(await run_blocking(pool.listing))
            self._say(f"{self.status.text()} Serving {count} library models by name.")
            self.loaded_models.setText(NONE_LOADED)
        self.header.setText(f"{TITLE} · on")
        self._refresh()
        self._poll.start()
        self.switched.emit(True)

    async def _stop(self) -> None:
        server = self._server
        self._set_changing(True)
        self._say("Stopping…")
        try:
            if server is not None:
                await run_blocking(server.stop)
        finally:
            self._set_changing(False)
        self._show_stopped()
        self._say("Stopped.")
        self.switched.emit(False)

    def _library_pool(self) -> ModelPool:
        """On a worker: a pool over the library's models (scanned first if no page has yet),
        with the limits asked for."""
        from app.serving.library_models import LibraryModels
        from app.serving.model_pool import ModelPool, PoolLimits

        core = self._core
        if not core.models.scanned:
            core.models.refresh()
        limits = PoolLimits(
            max_loaded=self.max_loaded.value() or None,
            idle_unload_s=self.idle_unload.value() or None,
        )
        return ModelPool(
            LibraryModels(lambda: core.models.entries, lambda: core.library), limits=limits
        )

    def _listen(self, server: ModelServer) -> None:
        if self._server is not server:
            if self._remove_listener is not None:
                self._remove_listener()
            self._server = server
            self._remove_listener = server.log.add_listener(self._arrived.append)

    def _failed(self, text: str) -> None:
        self._set_changing(False)
        self._show_stopped()
        self._say(text, error=True)
        self.switched.emit(False)

    # -- display -------------------------------------------------------------------------

    def _refresh(self) -> None:
        """On the timer: the queue line, new log lines, and a server that ended on its own."""
        self._drain_log()
        server = self._server
        if server is None or not server.running:
            if self.switch.isChecked() and not self._changing:
                self._show_stopped()
                self._say("The server stopped.", error=True)
                self.switched.emit(False)
            return
        line = f"Queue: {server.queue_length} waiting"
        if server.loading:
            line += " · loading a model (clients get 503)"
        elif server.busy:
            line += " · answering a request"
        else:
            line += " · idle"
        self.queue.setText(line)
        pool = server.pool
        self._polls += 1
        if pool is not None and self._polls % MODELS_EVERY_POLLS == 1:
            self.loaded_models.setText(format_pool(pool.snapshot()))

    def _drain_log(self) -> None:
        if not self._arrived:
            return
        bar = self.log.verticalScrollBar()
        following = bar.value() == bar.maximum()  # not when the person scrolled up to read
        cursor = QTextCursor(self.log.document())
        cursor.movePosition(QTextCursor.MoveOperation.End)
        while self._arrived:
            if self.log.document().isEmpty():
                cursor.setBlockFormat(self._line_format)
            else:
                cursor.insertBlock(self._line_format)
            cursor.insertText(format_entry(self._arrived.popleft()))
        if following:
            bar.setValue(bar.maximum())

    def _show_stopped(self) -> None:
        self._poll.stop()
        self._drain_log()
        self.switch.setChecked(False)
        self.url.clear()
        self.url_row.hide()
        self.other_urls.clear()
        self.other_urls.hide()
        self.queue.hide()
        self.loaded_models.hide()
        self.loaded_models.clear()
        self.header.setText(TITLE)
        self._update_controls()

    def _set_changing(self, changing: bool) -> None:
        self._changing = changing
        self._update_controls()

    def _update_controls(self) -> None:
        running = self.running
        library = self.whole_library.isChecked()
        servable = self._model_loaded or library
        self.switch.setEnabled(not self._changing and (running or servable))
        self.switch.setText(
            "Serve the library (OpenAI-compatible API)"
            if library
            else "Serve this model (OpenAI-compatible API)"
        )
        self.switch.setToolTip("" if servable else "Load a local model first")
        editable = not running and not self._changing
        for field in (self.host, self.port, self.api_key, self.origins, self.whole_library):
            field.setEnabled(editable)
        for field in (self.max_loaded, self.idle_unload):
            field.setEnabled(editable and library)
        self.queue.setVisible(running)
        server = self._server
        self.loaded_models.setVisible(running and server is not None and server.pool is not None)
        shown = self.status.text()
        if not servable and not running and not shown:
            self._say(NO_MODEL)
        elif servable and shown == NO_MODEL:
            self._say("")

    def _say(self, text: str, *, error: bool = False) -> None:
        self.status.setText(text)
        self.status.setVisible(bool(text))
        mark_error(self.status, error)

"""Downloads from hubs whose files the HF download queue cannot hold: ModelScope's go into
ModelScope's own cache (`app.downloads.modelscope`), resumed and sha256-verified like any.

The transfer runs on a worker thread; its progress is kept in plain numbers there and read by
a timer on the GUI thread (at most 5 times a second), so a fast download never floods the
event loop and no widget is touched from the worker.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable

from PySide6.QtCore import QObject, QTimer, Signal

from app.core import Core
from app.errors import AppError
from app.hub.models import ModelDetails
from app.hub.modelscope.api import ModelScopeClient
from app.units import format_bytes
from ui.tasks import run_blocking, spawn

PROGRESS_INTERVAL_MS = 200


class HubDownloads(QObject):
    """Runs ModelScope downloads one at a time and reports them in one line of text."""

    progressed = Signal(str)  # a line for the status label
    finished = Signal(str, bool)  # the final line; True when it is an error

    def __init__(
        self,
        core: Core,
        client: Callable[[], ModelScopeClient],
        parent: QObject | None = None,
    ) -> None:
        super().__init__(parent)
        self._core = core
        self._client = client
        self._lock = threading.Lock()
        self._done = 0
        self._total = 0
        self._label = ""
        self.task: asyncio.Task[None] | None = None
        self._timer = QTimer(self)
        self._timer.setInterval(PROGRESS_INTERVAL_MS)
        self._timer.timeout.connect(self._show_progress)

    @property
    def busy(self) -> bool:
        return self.task is not None and not self.task.done()

    def start(self, details: ModelDetails, paths: tuple[str, ...]) -> asyncio.Task[None] | None:
        """Download `paths` of the ModelScope model `details` describes (None: one is running)."""
        if self.busy:
            self.finished.emit("A ModelScope download is running; wait for it to end.", True)
            return None
        sizes = {file.path: file.size or 0 for file in details.files}
        with self._lock:
            self._done, self._total = 0, sum(sizes.get(path, 0) for path in paths)
            self._label = details.repo_id
        self.task = spawn(self._run(details.repo_id, paths))
        self._timer.start()
        return self.task

    async def _run(self, repo_id: str, paths: tuple[str, ...]) -> None:
        from app.downloads.modelscope import pull_modelscope

        per_file: dict[str, int] = {}

        def report(path: str, done: int, _size: int) -> None:  # on the worker thread
            per_file[path] = done
            with self._lock:
                self._done = sum(per_file.values())

        def pull() -> str:
            pulled = pull_modelscope(self._client(), repo_id, list(paths), on_progress=report)
            self._core.models.refresh()  # the library lists ModelScope's cache
            return (
                f"Downloaded {repo_id} ({format_bytes(pulled.size)}, sha256 verified) "
                f"into ModelScope's cache: {pulled.folder}"
            )

        try:
            message = await run_blocking(pull)
        except AppError as exc:
            self._timer.stop()
            self.finished.emit(f"{repo_id}: {exc}", True)
            return
        self._timer.stop()
        self.finished.emit(message, False)

    def _show_progress(self) -> None:
        with self._lock:
            done, total, label = self._done, self._total, self._label
        self.progressed.emit(
            f"Downloading {label} from ModelScope: {format_bytes(done)} of {format_bytes(total)}"
        )

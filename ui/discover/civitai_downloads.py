"""Downloads of Civitai files from Discover: into the Civitai models folder of their kind,
resumed and verified by sha256 (`app.downloads.civitai.pull_civitai`, the CLI's workflow).

Civitai's details name no commit, so the Files tab asks for their files by path
(`filesRequested`) and Discover hands a Civitai model here. The transfer runs on a worker
thread; its progress is kept in plain numbers there and read by a timer on the GUI thread (at
most 5 times a second), so a fast download never floods the event loop.
"""

from __future__ import annotations

import asyncio
import threading

from PySide6.QtCore import QObject, QTimer, Signal

from app.core import Core
from app.errors import AppError
from app.hub.models import ModelDetails
from app.units import format_bytes
from ui.tasks import run_blocking, spawn

PROGRESS_INTERVAL_MS = 200


def is_civitai(details: ModelDetails) -> bool:
    """Whether `details` describe a Civitai model (its id is `civitai:ID`)."""
    return details.repo_id.startswith("civitai:")


class CivitaiDownloads(QObject):
    """Runs Civitai downloads one at a time and reports them in one line of text."""

    progressed = Signal(str)  # a line for the status label
    finished = Signal(str, bool)  # the final line; True when it is an error

    def __init__(self, core: Core, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._core = core
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
        """Download the file of `paths` (one; none: the primary file) of the Civitai version
        `details` describe. None when one is running already or more files were chosen."""
        if self.busy:
            self.finished.emit("A Civitai download is running; wait for it to end.", True)
            return None
        if len(paths) > 1:
            self.finished.emit("Choose one Civitai file at a time.", True)
            return None
        civitai = details.card_data.get("civitai")
        version = civitai.get("version_id") if isinstance(civitai, dict) else None
        revision = str(version) if isinstance(version, int) else None
        sizes = {file.path: file.size or 0 for file in details.files}
        with self._lock:
            self._done = 0
            self._total = sizes.get(paths[0], 0) if paths else 0
            self._label = details.repo_id
        file_name = paths[0] if paths else None
        self.task = spawn(self._run(details.repo_id, revision, file_name))
        self._timer.start()
        return self.task

    async def _run(self, repo_id: str, revision: str | None, file_name: str | None) -> None:
        from app.downloads.civitai import pull_civitai
        from app.hub.civitai.provider import civitai_provider
        from app.hub.civitai.settings import load_civitai_settings

        def report(done: int) -> None:  # on the worker thread
            with self._lock:
                self._done = done

        def pull() -> str:
            database = self._core.database
            hub = civitai_provider(database)
            try:
                plan, path = pull_civitai(
                    hub,
                    repo_id,
                    settings=load_civitai_settings(database),
                    revision=revision,
                    file_name=file_name,
                    on_progress=report,
                )
            finally:
                hub.close()
            self._core.models.refresh()  # the library lists the Civitai models folder
            size = format_bytes(path.stat().st_size)
            return (
                f"Downloaded {path.name} of {plan.label.split()[0]} ({size}, sha256 "
                f"verified) into {path.parent}"
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
        of_total = f" of {format_bytes(total)}" if total else ""
        self.progressed.emit(f"Downloading {label} from Civitai: {format_bytes(done)}{of_total}")

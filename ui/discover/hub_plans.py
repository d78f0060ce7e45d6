"""Plans of downloads from hubs without commits (Civitai, ModelScope), for the one queue.

Their details name no commit, so the Files tab asks for files by path (`filesRequested`);
this plans them on a worker thread (Civitai: the version and its file, into the models folder
of its kind; ModelScope: the listed files, into the SDK's cache) and hands the plan on as
`planned`, which Discover connects to the window's download queue like any Hugging Face plan:
the job shows, pauses, resumes and survives a restart on the Downloads page.
"""

from __future__ import annotations

from collections.abc import Callable

from PySide6.QtCore import QObject, Signal

from app.core import Core
from app.downloads import DownloadPlan
from app.errors import AppError
from app.hub.models import ModelDetails
from app.hub.modelscope.api import ModelScopeClient
from ui.tasks import run_blocking, spawn


def is_civitai(details: ModelDetails) -> bool:
    """Whether `details` describe a Civitai model (its id is `civitai:ID`)."""
    return details.repo_id.startswith("civitai:")


class HubDownloadPlanner(QObject):
    """Turns a Civitai or ModelScope file choice into a `DownloadPlan`, off the GUI thread."""

    planned = Signal(object)  # a DownloadPlan, for the queue
    failed = Signal(str)  # one line for the status label

    def __init__(
        self,
        core: Core,
        modelscope_client: Callable[[], ModelScopeClient],
        parent: QObject | None = None,
    ) -> None:
        super().__init__(parent)
        self._core = core
        self._modelscope_client = modelscope_client

    def start(self, details: ModelDetails, paths: tuple[str, ...]) -> None:
        """Plan `paths` of the model `details` describe; `planned` or `failed` follows."""
        if is_civitai(details) and len(paths) > 1:
            self.failed.emit("Choose one Civitai file at a time.")
            return
        spawn(self._plan(details, paths))

    async def _plan(self, details: ModelDetails, paths: tuple[str, ...]) -> None:
        def plan() -> DownloadPlan:
            if is_civitai(details):
                return self._plan_civitai(details, paths[0] if paths else None)
            return self._plan_modelscope(details.repo_id, paths)

        try:
            made = await run_blocking(plan)
        except AppError as exc:
            self.failed.emit(f"{details.repo_id}: {exc}")
            return
        self.planned.emit(made)

    def _plan_civitai(self, details: ModelDetails, file_name: str | None) -> DownloadPlan:
        from app.downloads.civitai import plan_civitai_download
        from app.hub.civitai.provider import civitai_provider
        from app.hub.civitai.settings import load_civitai_settings

        civitai = details.card_data.get("civitai")
        version = civitai.get("version_id") if isinstance(civitai, dict) else None
        database = self._core.database
        hub = civitai_provider(database)
        try:
            model, chosen = hub.version(
                details.repo_id, revision=str(version) if isinstance(version, int) else None
            )
            download = plan_civitai_download(
                model,
                chosen,
                endpoint=hub.endpoint,
                settings=load_civitai_settings(database),
                file_name=file_name,
            )
        finally:
            hub.close()
        return download.job_plan(endpoint=hub.endpoint)

    def _plan_modelscope(self, repo_id: str, paths: tuple[str, ...]) -> DownloadPlan:
        from app.downloads.modelscope import plan_modelscope
        from app.hub.modelscope.layout import ModelScopeRoots

        root = ModelScopeRoots.for_this_user().current
        return plan_modelscope(self._modelscope_client(), repo_id, list(paths), root=root)

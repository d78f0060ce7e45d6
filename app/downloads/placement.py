"""Where the files of one queued job go, and how each is fetched, for every hub.

The queue (`DownloadManager`) is the same for all hubs: states, retries, pause and cancel,
persistence. What differs is here, chosen by the plan's source: a Hugging Face file goes into
the HF cache (`CachedFile`), a ModelScope file into the SDK's cache (`ModelScopeTarget`), both
through `fetch_file`; a Civitai file into the models folder of its kind (`CivitaiTarget`,
through `fetch_civitai_file`: Civitai lists sizes in kilobytes and names the file only in its
answer, which `fetch_file`'s exact-size transfer cannot take).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from app.downloads.cache import CachedFile, repo_folder, write_ref
from app.downloads.civitai import CivitaiTarget, discard_civitai_partial, fetch_civitai_file
from app.downloads.modelscope import ModelScopeTarget, modelscope_file_url, modelscope_token
from app.downloads.plan import DownloadPlan
from app.downloads.sources import CivitaiSource, ModelScopeSource
from app.downloads.transfer import (
    RetryPolicy,
    StopSignal,
    TransferTarget,
    discard_partial,
    fetch_file,
)
from app.store import Database


@dataclass(frozen=True)
class Placement:
    """The place of `plan`'s files: the HF cache under `cache_dir`, or the plan's source."""

    plan: DownloadPlan
    cache_dir: Path

    @property
    def folder(self) -> Path:
        """The folder the files go under (made before a run; its disk's free space counts)."""
        source = self.plan.source
        if isinstance(source, CivitaiSource):
            return source.folder
        if isinstance(source, ModelScopeSource):
            return source.root
        return repo_folder(self.cache_dir, self.plan.repo_id)

    def is_complete(self, index: int) -> bool:
        """Whether the `index`-th file is in place already."""
        target = self._target(index)
        # A Civitai file is known complete only by hashing it all; the transfer does that
        # once, when it runs, rather than at every start of the queue.
        return not isinstance(target, CivitaiTarget) and target.is_complete()

    def partial_size(self, index: int) -> int:
        return self._target(index).partial_size()

    def fetch(
        self,
        index: int,
        *,
        endpoint: str,
        hf_token: str | None,
        database: Database,
        policy: RetryPolicy,
        stop: StopSignal,
        on_progress: Callable[[int], None],
    ) -> None:
        """Fetch the `index`-th file (resumed, retried, verified). Raises what the hub's
        transfer raises (`fetch_file`, `fetch_civitai_file`)."""
        target = self._target(index)
        planned = self.plan.files[index]
        if isinstance(target, CivitaiTarget):
            from app.hub.civitai.provider import civitai_provider

            hub = civitai_provider(database, endpoint=endpoint)
            try:
                fetch_civitai_file(
                    target, client=hub.client, policy=policy, stop=stop, on_progress=on_progress
                )
            finally:
                hub.close()
            return
        source = self.plan.source
        fetch_file(
            target,
            planned,
            endpoint=endpoint,
            token=modelscope_token() if isinstance(source, ModelScopeSource) else hf_token,
            policy=policy,
            stop=stop,
            on_progress=on_progress,
            url=(
                modelscope_file_url(source, self.plan.repo_id, planned.path)
                if isinstance(source, ModelScopeSource)
                else None
            ),
        )
        if source is None and self.plan.ref:
            write_ref(self.cache_dir, self.plan.repo_id, self.plan.ref, self.plan.revision)

    def discard(self, index: int) -> bool:
        """Delete the `index`-th file's partial bytes, unless a download writes them now."""
        target = self._target(index)
        if isinstance(target, CivitaiTarget):
            return discard_civitai_partial(target)
        return discard_partial(target)

    def _target(self, index: int) -> CivitaiTarget | ModelScopeTarget | TransferTarget:
        plan, planned = self.plan, self.plan.files[index]
        source = plan.source
        if isinstance(source, CivitaiSource):
            return CivitaiTarget.of_job(f"{plan.repo_id} {planned.path}", source, planned)
        if isinstance(source, ModelScopeSource):
            return ModelScopeTarget.of_job(plan.repo_id, source, index, planned)
        return CachedFile(
            cache_dir=self.cache_dir,
            repo_id=plan.repo_id,
            revision=plan.revision,
            path=planned.path,
            etag=planned.etag,
        )

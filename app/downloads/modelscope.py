"""Downloads from ModelScope into ModelScope's own cache, as jobs of the app's download queue.

`plan_modelscope` makes the queue's plan; each file then goes through `fetch_file` like a
Hugging Face file: resumed from a partial file with a stable name after any crash or kill,
retried, and moved into place only when its sha256 matches what ModelScope listed. Only the
place differs (`ModelScopeTarget`): the partial file and the verified file wait in the SDK's
own temporary folder, and the finished file lands where the `modelscope` SDK looks for it
(`app.hub.modelscope.layout`), recorded in its `.msc` index so that `snapshot_download` does
not fetch it again.
"""

from __future__ import annotations

import fnmatch
import os
import stat
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from app.downloads.cache import ensure_inside
from app.downloads.plan import DownloadPlan, PlannedFile, check_plan
from app.downloads.sources import ModelScopeSource
from app.errors import RepoFileNotFoundError
from app.hub.models import RepoFile
from app.hub.modelscope.api import DEFAULT_REVISION, ModelScopeClient, ModelScopeFile
from app.hub.modelscope.layout import (
    TEMPORARY_FOLDER,
    cached_paths,
    model_folder,
    record_file,
    temporary_folder,
)
from app.hub.repo_files import group_gguf_models
from app.hub.untrusted import (
    UnsafeHubDataError,
    check_file_path,
    check_repo_id,
    check_sha256,
    check_size,
)


@dataclass(frozen=True, kw_only=True)
class ModelScopeTarget:
    """One file of one ModelScope model in the SDK's cache (a `TransferTarget`)."""

    root: Path  # the SDK's models folder (`ModelScopeRoots.current`)
    model_id: str
    path: str  # in the repository
    sha256: str
    file_revision: str  # the commit ModelScope lists for the file (what `.msc` records)

    @classmethod
    def of_job(
        cls, model_id: str, source: ModelScopeSource, index: int, file: PlannedFile
    ) -> ModelScopeTarget:
        """The target of the `index`-th file of a queued ModelScope job."""
        assert file.sha256 is not None  # check_plan refuses a ModelScope file without one
        return cls(
            root=source.root,
            model_id=model_id,
            path=file.path,
            sha256=file.sha256,
            file_revision=source.file_revisions[index],
        )

    def __post_init__(self) -> None:
        check_repo_id(self.model_id)
        check_file_path(self.path, repo_id=self.model_id)
        if check_sha256(self.sha256, repo_id=self.model_id) != self.sha256:
            raise UnsafeHubDataError(
                f"{self.model_id}: a sha256 in upper case; plans use lower case.",
                repo_id=self.model_id,
                field="sha256",
                value=self.sha256,
            )

    @property
    def cache_dir(self) -> Path:
        return self.root / TEMPORARY_FOLDER

    @property
    def repo_id(self) -> str:
        return self.model_id

    @property
    def revision(self) -> str:
        return DEFAULT_REVISION

    @property
    def folder(self) -> Path:
        """The model's folder, where the SDK (and its users) find its files."""
        return model_folder(self.root, self.model_id)

    @property
    def final(self) -> Path:
        return self.folder / self.path

    @property
    def blob(self) -> Path:
        return temporary_folder(self.root, self.model_id) / self.sha256

    @property
    def partial(self) -> Path:
        return self.blob.with_name(f"{self.sha256}.incomplete")

    @property
    def lock(self) -> Path:
        owner, _, name = self.model_id.partition("/")
        return self.cache_dir / ".locks" / owner / name / f"{self.sha256}.lock"

    def is_complete(self) -> bool:
        """Whether the file is in place and the SDK's index names it at this revision."""
        if _is_regular_file(self.blob):
            return True
        return (
            _is_regular_file(self.final)
            and cached_paths(self.folder).get(self.path) == self.file_revision
        )

    def partial_size(self) -> int:
        try:
            info = os.lstat(self.partial)
        except OSError:
            return 0
        return info.st_size if stat.S_ISREG(info.st_mode) else 0

    def ensure_inside(self, path: Path) -> None:
        """Refuse to write `path` unless it stays in the temporary folder or the model's."""
        base = self.cache_dir if _is_below(self.cache_dir, path) else self.folder
        ensure_inside(base, path)

    def link(self, *, new_blob: bool) -> None:
        """Move the verified file into the model's folder and record it in `.msc`."""
        if _is_regular_file(self.blob):
            self.ensure_inside(self.final)
            self.final.parent.mkdir(parents=True, exist_ok=True)
            self.ensure_inside(self.final)  # a link planted while the folders were made
            os.replace(self.blob, self.final)
        record_file(self.folder, self.model_id, self.path, self.file_revision)


def modelscope_token() -> str | None:
    """The ModelScope SDK's token (`MODELSCOPE_API_TOKEN`), sent to ModelScope only."""
    return os.environ.get("MODELSCOPE_API_TOKEN") or None


def modelscope_file_url(source: ModelScopeSource, model_id: str, path: str) -> str:
    """The download URL of one file of a queued job."""
    return ModelScopeClient(endpoint=source.endpoint).file_url(
        model_id, path, revision=source.revision
    )


def choose_files(files: Sequence[ModelScopeFile], patterns: Sequence[str]) -> list[ModelScopeFile]:
    """The files that `patterns` name (all of them for no pattern), as `plan_files` chooses:
    an exact path, a glob, or a GGUF model's name or quantization (with all its parts).

    Raises:
        RepoFileNotFoundError: a pattern matches nothing.
    """
    if not patterns:
        return list(files)
    repo_files = [RepoFile(path=file.path, size=file.size) for file in files]
    models = group_gguf_models(repo_files)
    chosen: set[str] = set()
    for pattern in patterns:
        matched = {
            f.path for f in files if f.path == pattern or fnmatch.fnmatchcase(f.path, pattern)
        }
        for model in models:
            parts = {part.path for part in model.parts}
            names = {model.name.casefold(), (model.quantization or "").casefold()}
            # A model named by its quantization, or one part of a split model: all its parts.
            if pattern.casefold() in names or matched & parts:
                matched |= parts
        if not matched:
            raise RepoFileNotFoundError(
                f"The ModelScope model has no file matching {pattern!r}.",
                repo_id="",
                path=pattern,
                hint="`modeldeck info --hub modelscope` lists its files.",
            )
        chosen |= matched
    return [file for file in files if file.path in chosen]


def plan_modelscope(
    client: ModelScopeClient,
    model_id: str,
    patterns: Sequence[str] = (),
    *,
    root: Path,
    revision: str = DEFAULT_REVISION,
) -> DownloadPlan:
    """The download queue's plan of the files `patterns` name (`choose_files`), into the
    SDK's cache under `root`.

    Raises:
        RepoNotFoundError, RepoFileNotFoundError, GatedRepoError, HubUnreachableError,
        RateLimitedError, HubResponseError: from the listing.
        UnsafeHubDataError: a listed name, size or hash the cache cannot safely hold, or a
            file without a sha256 (it could not be verified, so it is not fetched).
    """
    model_id = check_repo_id(model_id)
    listed = client.walk_files(model_id, revision=revision)
    files: list[PlannedFile] = []
    revisions: list[str] = []
    for file in choose_files(listed, patterns):
        path = check_file_path(file.path, repo_id=model_id)
        if file.sha256 is None:
            raise UnsafeHubDataError(
                f"{model_id}: ModelScope lists no sha256 for {path}, so it cannot be verified.",
                repo_id=model_id,
                field="Sha256",
                value=None,
            )
        sha256 = check_sha256(file.sha256, repo_id=model_id)
        size = check_size(file.size, repo_id=model_id, path=path)
        files.append(PlannedFile(path=path, size=size, sha256=sha256, etag=sha256))
        revisions.append(file.revision or revision)
    label = ", ".join(patterns) if patterns else "all files"
    plan = DownloadPlan(
        repo_id=model_id,
        revision=revision,
        label=label,
        files=tuple(files),
        ref=None,
        source=ModelScopeSource(
            endpoint=client.endpoint,
            root=root,
            revision=revision,
            file_revisions=tuple(revisions),
        ),
    )
    check_plan(plan)
    return plan


def _is_regular_file(path: Path) -> bool:
    try:
        return stat.S_ISREG(os.lstat(path).st_mode)
    except OSError:
        return False


def _is_below(folder: Path, path: Path) -> bool:
    base, written = os.path.abspath(folder), os.path.abspath(path)
    return os.path.commonpath([base, written]) == base and base != written

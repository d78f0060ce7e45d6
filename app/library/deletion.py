"""Deleting a model, planned first: what goes, how many bytes come back, who else loses it.

- The HF cache: huggingface_hub's own strategy (`delete_revisions` when every model of a
  revision goes, else `delete_files`), so the cache stays consistent for other tools.
- Imports: the record is forgotten; the file is deleted only when asked for.
- Extra folders: the files are deleted (unless the folder is read-only).
- Other apps (LM Studio, Ollama, GPT4All): deleted only with a second confirmation; for
  Ollama, every tag (manifest) using the blob goes with it.
- A location that is not there (an unplugged drive) is never touched.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from app.library.catalog import Location, Source
from app.library.errors import DeleteFailedError, DeleteRefusedError
from app.library.found import Found
from app.library.records import LibraryRecords

if TYPE_CHECKING:
    from huggingface_hub import CachedFileInfo, DeleteCacheStrategy, HFCacheInfo

NOT_CONNECTED = "not there now (an unplugged drive?): nothing is deleted"
READ_ONLY = "the folder is read-only: the file stays"
IN_HF_CACHE = "the file is in the Hugging Face cache: delete it from there"
KEEP_IMPORTED = "the record is forgotten; the file stays"
SAME_FILE = "the same file as another copy above"


@dataclass(frozen=True, kw_only=True)
class DeleteStep:
    """What happens at one place (all HF cache locations of a model form one step)."""

    source: Source
    locations: tuple[Location, ...]
    paths: tuple[Path, ...]  # removed from disk (files, or folders with what is inside)
    bytes_freed: int
    forget_imports: tuple[Path, ...] = ()  # import records dropped
    needs_second_confirmation: bool = False  # another app's files
    note: str | None = None  # why less than everything happens here, for a person
    hf_strategies: tuple[DeleteCacheStrategy, ...] = ()  # the HF cache step's plan


@dataclass(frozen=True, kw_only=True)
class DeletePlan:
    """Everything `Library.execute` would do for one model (or several); nothing happened yet."""

    entry_keys: tuple[str, ...]
    name: str  # for a person: the model's name, or "3 models"
    steps: tuple[DeleteStep, ...]

    @property
    def paths(self) -> tuple[Path, ...]:
        return tuple(path for step in self.steps for path in step.paths)

    @property
    def bytes_freed(self) -> int:
        return sum(step.bytes_freed for step in self.steps)

    @property
    def needs_second_confirmation(self) -> bool:
        return any(step.needs_second_confirmation for step in self.steps)

    @property
    def other_apps(self) -> tuple[str, ...]:
        """The apps that would lose files, e.g. ("Ollama",)."""
        labels = (step.source.label for step in self.steps if step.needs_second_confirmation)
        return tuple(dict.fromkeys(labels))


@dataclass(frozen=True, kw_only=True)
class PlanContext:
    """What the last scan knew, needed to plan: the cache report and who shares a revision."""

    hf_info: HFCacheInfo | None
    hf_cache_dir: Path
    revision_models: dict[tuple[str, str], list[Found]]  # (repo_id, commit) -> its models


def plan_delete(
    keys: tuple[str, ...],
    name: str,
    chosen: Sequence[Found],
    context: PlanContext,
    *,
    delete_imported_files: bool,
) -> DeletePlan:
    """The plan for deleting the chosen copies of some models (see the module docstring)."""
    steps: list[DeleteStep] = []
    hf = [found for found in chosen if found.location.source is Source.HF_CACHE]
    if hf:
        steps.append(_hf_step(hf, context))
    claimed: set[str] = set()  # one file reached twice (import and folder) is deleted once
    for found in chosen:
        if found.location.source is not Source.HF_CACHE:
            steps.append(_file_step(found, context, delete_imported_files, claimed))
    return DeletePlan(entry_keys=keys, name=name, steps=tuple(steps))


def carry_out(plan: DeletePlan, records: LibraryRecords, *, confirm_other_apps: bool) -> int:
    """Execute a plan; returns the bytes freed.

    Raises:
        DeleteRefusedError: the plan deletes another app's files, not confirmed (nothing done).
        DeleteFailedError: the system refused a deletion (the steps before it are done).
    """
    if plan.needs_second_confirmation and not confirm_other_apps:
        apps = ", ".join(plan.other_apps)
        raise DeleteRefusedError(
            f"{plan.name} is also used by {apps}; deleting its files there was not confirmed.",
            hint="Confirm a second time, or leave that location out of the plan.",
        )
    freed = 0
    for step in plan.steps:
        if step.hf_strategies:
            for strategy in step.hf_strategies:
                strategy.execute()
            freed += step.bytes_freed
        elif step.paths:
            freed += _remove(step)
        for path in step.forget_imports:
            records.forget_import(path)
    records.forget_seen(path for step in plan.steps for path in step.paths)
    return freed


def _hf_step(found: Sequence[Found], context: PlanContext) -> DeleteStep:
    locations = tuple(item.location for item in found)
    if context.hf_info is None:
        return DeleteStep(
            source=Source.HF_CACHE, locations=locations, paths=(), bytes_freed=0, note=NOT_CONNECTED
        )
    by_repo: dict[str, list[Found]] = {}
    for item in found:
        by_repo.setdefault(item.location.repo_id or "", []).append(item)
    going = {id(item) for item in found}
    strategies = []
    for repo_id, items in by_repo.items():
        # A report of this repo alone: commit hashes are not unique across repos (a
        # duplicated repo shares its history), and `delete_revisions` matches by hash only.
        report = dataclasses.replace(
            context.hf_info,
            repos=frozenset(r for r in context.hf_info.repos if r.repo_id == repo_id),
        )
        strategies.append(_repo_strategy(report, items, context, going))
    paths = sorted(
        {path for s in strategies for path in (*s.repos, *s.snapshots, *s.files, *s.refs, *s.blobs)}
    )
    return DeleteStep(
        source=Source.HF_CACHE,
        locations=locations,
        paths=tuple(paths),
        bytes_freed=sum(strategy.expected_freed_size for strategy in strategies),
        hf_strategies=tuple(strategies),
    )


def _repo_strategy(
    report: HFCacheInfo, items: Sequence[Found], context: PlanContext, going: set[int]
) -> DeleteCacheStrategy:
    """Whole revisions when every model in them goes (README, config and all), else files.

    One strategy per repo, so a blob shared by two revisions that both go is deleted, and
    counted, once.
    """
    whole: list[str] = []
    partial: list[CachedFileInfo] = []
    for item in items:
        revision = (item.location.repo_id or "", item.location.revision or "")
        siblings = context.revision_models.get(revision, [item])
        if all(id(sibling) in going for sibling in siblings):
            whole.append(revision[1])
        else:
            partial.extend(item.cache_files)
    if not partial:
        return report.delete_revisions(*dict.fromkeys(whole))
    files = [*partial]
    for item in items:
        if item.location.revision in whole:
            files.extend(item.cache_files)
    return report.delete_files(*files)


def _file_step(
    found: Found, context: PlanContext, delete_imported_files: bool, claimed: set[str]
) -> DeleteStep:
    location = found.location
    source = location.source
    forget = (location.path,) if source is Source.IMPORT else ()
    other_app = location.owned_by_other_app

    def step(paths: Sequence[Path] = (), size: int = 0, note: str | None = None) -> DeleteStep:
        return DeleteStep(
            source=source,
            locations=(location,),
            paths=tuple(paths),
            bytes_freed=size,
            forget_imports=forget,
            needs_second_confirmation=other_app and bool(paths),
            note=note,
        )

    if source is Source.IMPORT and not delete_imported_files:
        return step(note=KEEP_IMPORTED)
    if not location.present or not os.path.lexists(location.path):
        return step(note=NOT_CONNECTED)
    real = os.path.realpath(location.path)
    cache = context.hf_cache_dir
    if _is_inside(Path(real), Path(os.path.realpath(cache))) or _is_inside(location.path, cache):
        return step(note=IN_HF_CACHE)
    if not all(os.access(part.parent, os.W_OK) for part in found.parts):
        return step(note=READ_ONLY)
    if real in claimed:
        return step(note=SAME_FILE)
    claimed.add(real)
    paths = [*found.parts, *found.managed_paths]
    return step(paths, sum(_bytes_at(path) for path in paths))


def _remove(step: DeleteStep) -> int:
    freed = 0
    for path in step.paths:
        # Checked again now: a drive unplugged since the plan is left alone.
        if not os.path.lexists(path):
            continue
        size = _bytes_at(path)
        try:
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path)
            else:
                path.unlink()
        except OSError as exc:
            raise DeleteFailedError(
                f"Could not delete {path}: {exc.strerror or exc}.",
                hint="Check that no other program uses it and that you may change that folder.",
            ) from exc
        freed += size
    return freed


def _bytes_at(path: Path) -> int:
    try:
        if path.is_symlink():
            return 0  # removing a link frees nothing
        if path.is_dir():
            return sum(
                (Path(folder) / name).stat().st_size
                for folder, _dirs, names in os.walk(path)
                for name in names
            )
        return path.stat().st_size
    except OSError:
        return 0


def _is_inside(path: Path, folder: Path) -> bool:
    return path == folder or folder in path.parents

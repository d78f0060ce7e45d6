"""`modeldeck outdated [--json]` and `modeldeck update MODEL [--yes]`.

    modeldeck outdated                 the cached models whose branch moved on upstream
    modeldeck update org/model         fetch only the files that changed, into a new snapshot
    modeldeck update org/model --yes   ... and then delete the old revision

`update` downloads through the same queue as `pull` (verified, resumable: run it again after
an interruption); the old snapshot is left as it is, and `refs/<branch>` keeps naming it, until
every file of the new one is in place. Then the old revision's delete plan is printed, and
carried out with `--yes`. A model pulled at a pinned commit is never outdated.

Exit status: 0 done (or nothing to do); 1 error; 3 no such model in the cache; 5 hub
unreachable; 130 interrupted (run the same command again to continue).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING, TextIO

from app.units import format_bytes

if TYPE_CHECKING:
    from app.core import Core
    from app.downloads.plan import DownloadPlan
    from app.library.updates import ModelUpdate, TrackedRevision

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_NOT_FOUND = 3
EXIT_OFFLINE = 5
EXIT_INTERRUPTED = 130

_WAIT_S = 0.2


def register(
    subparsers: argparse._SubParsersAction[argparse.ArgumentParser],
    *,
    parents: Sequence[argparse.ArgumentParser] = (),
) -> None:
    """Add `outdated` and `update` to a parser's subcommands."""
    outdated = subparsers.add_parser(
        "outdated",
        parents=list(parents),
        help="list cached models that have a newer commit on the hub",
        description="Compare each model in the Hugging Face cache with the current commit of "
        "the branch it was pulled from. Models pulled at a pinned commit are left out.",
    )
    outdated.add_argument("--json", action="store_true", help="print one JSON object")
    update = subparsers.add_parser(
        "update",
        parents=list(parents),
        help="download only the changed files of an outdated model",
        description="Download the files that changed upstream into a new snapshot (the rest "
        "is reused), then show what deleting the old revision frees.",
    )
    update.add_argument("model", metavar="MODEL", help="the repository, e.g. org/model-GGUF")
    update.add_argument(
        "--yes", action="store_true", help="delete the old revision once the new one is complete"
    )


def run_outdated(core: Core, args: argparse.Namespace, out: TextIO = sys.stdout) -> int:
    """Check every tracked revision now (no throttle) and list the outdated ones."""
    from app.library.updates import UpdateRecords, check_updates, tracked_revisions

    revisions = tracked_revisions(core.settings.resolved_cache_dir())
    report = check_updates(core.hub, revisions)
    UpdateRecords(core.database).save(report)
    if args.json:
        payload = {
            "outdated": [update.to_json() for update in report.outdated],
            "checked": len(report.updates),
            "unchecked": [
                {"repo_id": u.repo_id, "reason": u.reason, "offline": u.offline}
                for u in report.unchecked
            ],
        }
        out.write(json.dumps(payload, indent=2) + "\n")
    else:
        for update in report.outdated:
            out.write(f"{update.repo_id} ({update.ref}): {_summary(update)}\n")
        if not report.outdated:
            out.write(f"All {len(report.updates)} tracked models are up to date.\n")
        for unchecked in report.unchecked:
            _warn(f"{unchecked.repo_id}: not checked: {unchecked.reason}")
    if revisions and len(report.unchecked) == len(revisions):  # not one answer
        return EXIT_OFFLINE if any(u.offline for u in report.unchecked) else EXIT_ERROR
    return EXIT_OK


def run_update(core: Core, args: argparse.Namespace, out: TextIO = sys.stdout) -> int:
    """Update one model: fetch what changed, then offer (or carry out) the old revision's delete."""
    from app.model_updates import UpdateError, UpdateFailure, finish_update, prepare_update

    cache_dir = core.settings.resolved_cache_dir()
    try:
        prepared = prepare_update(core.hub, core.database, cache_dir, args.model)
    except UpdateError as exc:
        status = {
            UpdateFailure.NOT_FOUND: EXIT_NOT_FOUND,
            UpdateFailure.OFFLINE: EXIT_OFFLINE,
        }.get(exc.failure, EXIT_ERROR)
        return _fail(str(exc), status)
    local, update = prepared.local, prepared.update
    if prepared.plan is None:
        out.write(f"{local.repo_id} is up to date ({local.ref} at {local.commit[:12]}).\n")
        return EXIT_OK
    out.write(f"{local.repo_id}: {_summary(update)}\n")
    status = _download(core, prepared.plan)
    if status != EXIT_OK:
        return status
    # Only now does the branch name the new snapshot: until here the old one was the model.
    folder = finish_update(core.hub, core.database, cache_dir, prepared)
    out.write(
        f"Updated {local.repo_id} to {update.remote_commit[:12]}: fetched "
        f"{len(update.changed)} file{'s' if len(update.changed) != 1 else ''} "
        f"({format_bytes(update.download_size)}), reused {len(update.kept)}; now at {folder}\n"
    )
    return _offer_delete(core, local, args.yes, out)


def _download(core: Core, plan: DownloadPlan) -> int:
    from app.commands.foreground import download_in_foreground
    from app.downloads.status import JobState

    outcome = download_in_foreground(core, plan, poll_s=_WAIT_S)
    if outcome.refused is not None:
        return _fail(str(outcome.refused), EXIT_ERROR)
    status = outcome.status
    if outcome.interrupted or status is None or status.state is JobState.PAUSED:
        return _fail(
            "interrupted: the update is paused; the old revision is untouched. Run the same "
            "command again to continue.",
            EXIT_INTERRUPTED,
        )
    if status.state is not JobState.COMPLETED:
        message = status.error or f"the download ended {status.state}"
        kind = status.error_kind
        return _fail(
            f"{message} (the old revision is untouched)",
            EXIT_OFFLINE if kind == "offline" else EXIT_ERROR,
        )
    return EXIT_OK


def _offer_delete(core: Core, old: TrackedRevision, yes: bool, out: TextIO) -> int:
    from app.library.errors import LibraryError
    from app.model_updates import old_revision_delete_plan

    library = core.library
    try:
        plan = old_revision_delete_plan(library, old)
    except LibraryError as exc:
        return _fail(str(exc), EXIT_ERROR)
    if plan is None:
        return EXIT_OK
    out.write(
        f"The old revision {old.commit[:12]} frees {format_bytes(plan.bytes_freed)} "
        "(files shared with the new one stay):\n"
    )
    for path in plan.paths:
        out.write(f"  {path}\n")
    if not yes:
        out.write("Kept. Delete it with `modeldeck rm`, or update with --yes next time.\n")
        return EXIT_OK
    try:
        freed = library.execute(plan)
    except LibraryError as exc:
        return _fail(str(exc), EXIT_ERROR)
    out.write(f"Deleted the old revision ({format_bytes(freed)} freed).\n")
    return EXIT_OK


def _summary(update: ModelUpdate) -> str:
    text = f"{update.summary} ({update.local_commit[:12]} -> {update.remote_commit[:12]})"
    if update.removed:
        text += f"; {len(update.removed)} removed upstream"
    return text


def _warn(message: str) -> None:
    sys.stderr.write(f"modeldeck: {' '.join(message.split())}\n")
    sys.stderr.flush()


def _fail(message: str, status: int) -> int:
    _warn(message)
    return status

"""`modeldeck pull --hub modelscope`: files of a ModelScope model into ModelScope's own cache.

A job of the same download queue as a Hugging Face pull (Ctrl+C pauses it; the next run or
the window's Downloads page continues it from the bytes on disk; each file's sha256 verified;
exit statuses are `pull`'s), into the folder the `modelscope` SDK uses (`MODELSCOPE_CACHE`
honoured), so its tools see the files; the library lists them from there.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import TYPE_CHECKING, TextIO

from app.units import format_bytes

if TYPE_CHECKING:
    from app.core import Core

EXIT_OK = 0


def run(core: Core, args: argparse.Namespace, out: TextIO = sys.stdout) -> int:
    """Pull what `args` names from ModelScope through the download queue (a job of this
    process's own, shown in the window's Downloads too); planning errors propagate to the
    CLI's handlers."""
    from app.commands.foreground import download_in_foreground
    from app.commands.pull import report_for, settle
    from app.downloads.modelscope import modelscope_token, plan_modelscope
    from app.hub.modelscope.api import DEFAULT_REVISION, ModelScopeClient
    from app.hub.modelscope.layout import ModelScopeRoots, model_folder
    from app.hub.modelscope.provider import modelscope_endpoint

    client = ModelScopeClient(endpoint=modelscope_endpoint(args.endpoint), token=modelscope_token())
    root = ModelScopeRoots.for_this_user().current
    plan = plan_modelscope(
        client, args.repo_id, args.patterns, root=root, revision=args.revision or DEFAULT_REVISION
    )
    report = report_for(out, as_json=args.json)
    outcome = download_in_foreground(core, plan, poll_s=0.1, on_progress=report.progress)
    code = settle(outcome, report)
    if code is not None:
        return code
    folder = model_folder(root, plan.repo_id)
    files = [file.path for file in plan.files]
    if args.json:
        record = {
            "event": "done",
            "hub": "modelscope",
            "repo_id": plan.repo_id,
            "folder": str(folder),
            "files": files,
            "size": plan.total_size,
            "state": "done",
        }
        out.write(json.dumps(record) + "\n")
    else:
        out.write(
            f"{plan.repo_id}: {len(files)} files, {format_bytes(plan.total_size)}, "
            f"verified, in {folder}\n"
        )
    return EXIT_OK

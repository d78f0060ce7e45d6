"""`modeldeck pull --hub civitai` and `modeldeck identify`: Civitai files, headless.

`pull civitai:ID[@VERSION] [FILE]` downloads a version's primary file (or FILE) into the
models folder of its kind, resumed after any interruption and verified by its sha256, with
its provenance beside it. `identify MODEL` looks a local file up on Civitai by its sha256 and
records what it is. Both use the same core as the window (`app.downloads.civitai`,
`app.hub.civitai.identify`); a pull is a job of the app's download queue, so Ctrl+C pauses it,
the next run (or the window's Downloads page) continues it, and exit statuses are `pull`'s.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

from app.units import format_bytes

if TYPE_CHECKING:
    from app.core import Core
    from app.hub.civitai.provider import CivitaiHub
    from app.store import Database

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_FLAGGED = 6


def register_identify(
    subparsers: argparse._SubParsersAction[argparse.ArgumentParser],
    *,
    parents: Sequence[argparse.ArgumentParser] = (),
) -> None:
    """Add `identify` to the CLI's subcommands (`parents`: `--endpoint`, for Civitai here)."""
    identify = subparsers.add_parser(
        "identify",
        parents=list(parents),
        help="look a local model file up on Civitai by its sha256 and record its provenance",
        description="Hash a local model file, ask Civitai which model version holds a file "
        "with that sha256, and write what it is beside the file (<name>.civitai.info).",
    )
    identify.add_argument("model", type=Path, help="a model file, e.g. a .safetensors")
    identify.add_argument("--json", action="store_true", help="print JSON")


def civitai_hub(database: Database, endpoint: str | None) -> CivitaiHub:
    """The Civitai provider with the user's settings and saved key."""
    from app.hub.civitai.provider import civitai_provider

    return civitai_provider(database, endpoint=endpoint)


def run_pull(core: Core, args: argparse.Namespace, out: TextIO = sys.stdout) -> int:
    """Download what `args` names from Civitai through the download queue (a job of this
    process's own, shown in the window's Downloads too); planning errors propagate to the
    CLI's handlers."""
    from app.commands.foreground import download_in_foreground
    from app.commands.pull import report_for, settle
    from app.downloads.civitai import (
        FlaggedFileError,
        PickleRefusedError,
        landed_file,
        plan_civitai_download,
    )
    from app.hub.civitai.settings import load_civitai_settings

    if len(args.patterns) > 1:
        sys.stderr.write("modeldeck: a Civitai pull takes one file name at most\n")
        return EXIT_ERROR
    hub = civitai_hub(core.database, args.endpoint)
    try:
        model, version = hub.version(args.repo_id, revision=args.revision)
        download = plan_civitai_download(
            model,
            version,
            endpoint=hub.endpoint,
            settings=load_civitai_settings(core.database),
            file_name=args.patterns[0] if args.patterns else None,
            allow_flagged=args.allow_unsafe,
        )
    except (PickleRefusedError, FlaggedFileError) as exc:
        sys.stderr.write(f"modeldeck: {' '.join(str(exc).split())}\n")
        return EXIT_FLAGGED
    finally:
        hub.close()
    report = report_for(out, as_json=args.json)
    outcome = download_in_foreground(
        core, download.job_plan(endpoint=hub.endpoint), poll_s=0.1, on_progress=report.progress
    )
    code = settle(outcome, report)
    if code is not None:
        return code
    path = landed_file(download.target)
    size = path.stat().st_size
    label = f"civitai:{model.id}@{version.id}"
    if args.json:
        record = {
            "event": "done",
            "hub": "civitai",
            "repo_id": label,
            "path": str(path),
            "size": size,
            "sha256": download.sha256,
            "base_model": version.base_model,
            "trained_words": list(version.trained_words),
            "state": "done",
        }
        out.write(json.dumps(record) + "\n")
    else:
        out.write(
            f"Downloaded {path.name} ({format_bytes(size)}) of {label}, sha256 verified, "
            f"into {path.parent}\n"
        )
    return EXIT_OK


def run_identify(core: Core, args: argparse.Namespace, out: TextIO = sys.stdout) -> int:
    """Identify `args.model` on Civitai and record it; hub errors go to the CLI's handlers."""
    from app.hub.civitai.identify import identify_file
    from app.hub.civitai.provenance import sidecar_path

    path: Path = args.model
    if not path.is_file():
        sys.stderr.write(f"modeldeck: {path} is not a file\n")
        return EXIT_ERROR
    hub = civitai_hub(core.database, args.endpoint)
    try:
        provenance = identify_file(path, hub.client)
    finally:
        hub.close()
    if args.json:
        out.write(json.dumps({**provenance.to_json(), "path": str(path)}) + "\n")
    else:
        out.write("\n".join(provenance.lines()) + f"\nrecorded in {sidecar_path(path)}\n")
    return EXIT_OK
